using HwMemModel.Cli;
using HwMemModel.Firmware;
using HwMemModel.Machine;
using HwMemModel.Mmu;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

/// <summary><c>hwmem run --save-snapshot</c> and <c>hwmem walk --snapshot</c>.</summary>
public sealed class SnapshotTests
{
    private static string WithoutTlbLine(string text) => string.Join('\n', text.Split('\n').Where(l => !l.StartsWith("  tlb:", StringComparison.Ordinal)));

    [TestCase("demand-paging")]
    [TestCase("paging")]
    public void A_walk_in_the_snapshot_explains_what_the_live_machine_explains_at_the_end_of_the_run(string name)
    {
        var image = FirmwareImages.Get(name);
        string dir = Path.Combine(Path.GetTempPath(), $"hwmem-snap-{Environment.ProcessId}-{name}");
        Directory.CreateDirectory(dir);
        try
        {
            string bios = Path.Combine(dir, image.FileName), snap = Path.Combine(dir, "s.snap");
            File.WriteAllBytes(bios, image.Bytes);
            var (code, _, err) = Run("run", "--bios", bios, "--save-snapshot", snap);
            Assert.That(code, Is.EqualTo(image.QemuExitStatus), err);

            // The same run in-process: its CPU's explanations at the end are the reference.
            var live = PcMachine.FromBios(image.Bytes, bios, new PcMachineOptions { SerialOutput = Stream.Null });
            live.Run();
            Assume.That(live.Context.PagingEnabled, Is.True, "the image ends with paging on");
            foreach (ulong va in new ulong[] { 0x0, 0x1000, 0x200000, 0x40000000, 0x7fff_ffff_f000, 0xffff_8000_0000_0000 })
            {
                foreach (var (access, kind) in new[] { ("read", AccessKind.Read), ("write", AccessKind.Write), ("fetch", AccessKind.Execute) })
                {
                    var (walkCode, output, walkErr) = Run("walk", $"0x{va:x}", "--access", access, "--snapshot", snap);
                    var expected = live.Context.Mmu.Explain(va, kind, Privilege.Supervisor);
                    Assert.That(WithoutTlbLine(output), Is.EqualTo(WithoutTlbLine(expected.ToString())), $"{access} 0x{va:x}: {walkErr}");
                    Assert.That(walkCode, Is.EqualTo(expected.Fault.IsFault ? HwmemCommand.ExitFault : 0));
                }
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void A_file_that_is_not_a_snapshot_is_a_one_line_usage_error()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-notsnap-{Environment.ProcessId}");
        File.WriteAllText(path, "hello");
        try
        {
            var (code, _, err) = Run("walk", "0x1000", "--snapshot", path);
            Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
            Assert.That(err, Does.Contain("is not a HwMemModel snapshot (it does not start with HWMSNAP1)"));
            var (both, _, err2) = Run("walk", "0x1000", "--snapshot", path, "--machine", "default");
            Assert.That(both, Is.EqualTo(HwmemCommand.ExitUsage));
            Assert.That(err2, Does.Contain("--machine and --snapshot exclude each other"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
