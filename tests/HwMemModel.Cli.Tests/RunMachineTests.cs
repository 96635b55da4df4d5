using HwMemModel.Cli;
using HwMemModel.Firmware;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

/// <summary><c>hwmem run --machine FILE.json</c>: firmware on a described machine.</summary>
public sealed class RunMachineTests
{
    [TestCase("hello")]
    [TestCase("hpet")]
    [TestCase("paging")]
    public void Firmware_on_the_default_machine_description_behaves_as_on_the_built_in_machine(string name)
    {
        var image = FirmwareImages.Get(name);
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-{Environment.ProcessId}-{image.FileName}");
        File.WriteAllBytes(path, image.Bytes);
        try
        {
            var (code, output, err) = Run("run", "--bios", path, "--machine", Path.Combine(RepoRoot(), "docs", "machines", "default.json"));
            Assert.That(output, Is.EqualTo(image.SdmSerialOutput), err);
            Assert.That(code, Is.EqualTo(image.QemuExitStatus));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void A_bad_description_stops_before_running_with_the_json_path()
    {
        var image = FirmwareImages.Get("hello");
        string dir = Path.Combine(Path.GetTempPath(), $"hwmem-runm-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            string bios = Path.Combine(dir, image.FileName), json = Path.Combine(dir, "m.json");
            File.WriteAllBytes(bios, image.Bytes);
            File.WriteAllText(json, """{ "Machine": { "Devices": [ { "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 99 } ] } }""");
            var (code, output, err) = Run("run", "--bios", bios, "--machine", json);
            Assert.That(code, Is.EqualTo(HwmemCommand.ExitMachineDescription));
            Assert.That(output, Is.Empty);
            Assert.That(err, Does.Contain("$.Machine.Devices[0].Irq: 99 is out of range"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
