using System.Text;
using HwMemModel.Bus;
using HwMemModel.Cli;
using HwMemModel.Firmware;
using HwMemModel.Machine;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

/// <summary><c>hwmem run --kernel IMAGE --initrd "FILE ARGS"</c>: modules as QEMU's -initrd loads them.</summary>
public sealed class InitrdTests
{
    [Test]
    public void Modules_are_in_memory_and_listed_in_the_multiboot_information_with_their_strings()
    {
        var image = FirmwareImages.Get("multiboot-elf");
        string dir = Path.Combine(Path.GetTempPath(), $"hwmem-initrd-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            string kernel = Path.Combine(dir, image.FileName), m0 = Path.Combine(dir, "initrd.img"), m1 = Path.Combine(dir, "second.bin"), snap = Path.Combine(dir, "s.snap");
            File.WriteAllBytes(kernel, image.Bytes);
            File.WriteAllBytes(m0, Encoding.ASCII.GetBytes("module zero contents"));
            File.WriteAllBytes(m1, [1, 2, 3, 4, 5]);
            var (code, _, err) = Run("run", "--kernel", kernel, "--initrd", $"{m0} root=/dev/ram0,{m1}", "--max-instructions", "0", "--save-snapshot", snap);
            Assert.That(code, Is.EqualTo(RunCommand.ExitInstructionLimit), err);
            var bus = MachineSnapshot.Load(snap).Bus;
            ulong Read32(ulong pa) { bus.Read(pa, 4, out ulong v, BusAttributes.Debugger); return v; }
            string ReadString(ulong pa)
            {
                var sb = new StringBuilder();
                for (ulong a = pa; ; a++) { bus.Read(a, 1, out ulong b, BusAttributes.Debugger); if (b == 0) break; sb.Append((char)b); }
                return sb.ToString();
            }
            byte[] ReadBytes(ulong pa, int n) { var b = new byte[n]; bus.ReadBytes(pa, b, BusAttributes.Debugger); return b; }

            // Multiboot spec 3.3: flags bit 3 = mods_count (+20) and mods_addr (+24) valid; each module 16 bytes:
            // mod_start, mod_end, string, reserved. The information structure is where EBX points (0x9500 on QEMU).
            const ulong Info = 0x9500;
            Assert.That(Read32(Info) & 8, Is.EqualTo(8UL), "flags bit 3");
            Assert.That(Read32(Info + 20), Is.EqualTo(2UL), "mods_count");
            ulong mods = Read32(Info + 24);
            Assert.That(ReadString(Read32(mods + 8)), Is.EqualTo($"{m0} root=/dev/ram0"));
            Assert.That(ReadString(Read32(mods + 16 + 8)), Is.EqualTo(m1));
            ulong start0 = Read32(mods), end0 = Read32(mods + 4);
            Assert.That(end0 - start0, Is.EqualTo(20UL));
            Assert.That(ReadBytes(start0, 20), Is.EqualTo(Encoding.ASCII.GetBytes("module zero contents")));
            Assert.That(start0 & 0xFFF, Is.Zero, "modules are page aligned");
            Assert.That(ReadBytes(Read32(mods + 16), 5), Is.EqualTo(new byte[] { 1, 2, 3, 4, 5 }));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void Initrd_errors_are_usage_errors_with_the_reason()
    {
        var (code, _, err) = Run("run", "--bios", "/nonexistent.bin", "--initrd", "/x");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.Contain("--initrd applies only to --kernel"));
        var (code2, _, err2) = Run("run", "--kernel", "/nonexistent.elf", "--initrd", "/nonexistent-module arg");
        Assert.That(code2, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err2, Does.Contain("--initrd:").And.Contain("/nonexistent-module"));
    }
}

public sealed class RunDeviceOptionTests
{
    [Test]
    public void Devices_on_request_are_added_and_unknown_ones_refused()
    {
        var image = FirmwareImages.Get("hello");
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-dev-{Environment.ProcessId}-{image.FileName}");
        File.WriteAllBytes(path, image.Bytes);
        try
        {
            var o = new StringWriter();
            var e = new StringWriter();
            int code = HwmemCommand.Run(["run", "--bios", path, "--device", "pc-testdev", "--device", "shutdown-port"], o, e);
            Assert.That(code, Is.EqualTo(image.QemuExitStatus), e.ToString());
            Assert.That(o.ToString(), Is.EqualTo(image.SdmSerialOutput));
            var e2 = new StringWriter();
            Assert.That(HwmemCommand.Run(["run", "--bios", path, "--device", "floppy"], new StringWriter(), e2), Is.EqualTo(HwmemCommand.ExitUsage));
            Assert.That(e2.ToString(), Does.Contain("--device 'floppy' is not one the model adds on request; give pc-testdev"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}

public sealed class RunSmpOptionTests
{
    [TestCase("0")]
    [TestCase("65")]
    public void Smp_outside_1_to_64_is_a_usage_error(string n)
    {
        var e = new StringWriter();
        Assert.That(HwmemCommand.Run(["run", "--bios", "/nonexistent.bin", "--smp", n], new StringWriter(), e), Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(e.ToString(), Does.Contain($"--smp {n} is out of range; give 1 to 64 CPUs."));
    }

    [Test]
    public void Smp_4_starts_three_application_processors()
    {
        var image = FirmwareImages.Get("smp");
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-smp-{Environment.ProcessId}.bin");
        File.WriteAllBytes(path, image.Bytes);
        try
        {
            var o = new StringWriter();
            int code = HwmemCommand.Run(["run", "--bios", path, "--smp", "4"], o, new StringWriter());
            Assert.That(code, Is.EqualTo(FirmwareImages.QemuSuccessExitStatus));
            Assert.That(o.ToString(), Does.Contain("smp: application processors started: 3 of 3"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void X2apic_option_runs_the_same_xapic_firmware()
    {
        // --x2apic only adds the capability (CPUID.1:ECX bit 21, IA32_APIC_BASE.EXTD): firmware that stays in xAPIC
        // mode runs as without it.
        var image = FirmwareImages.Get("smp");
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-x2apic-{Environment.ProcessId}.bin");
        File.WriteAllBytes(path, image.Bytes);
        try
        {
            var o = new StringWriter();
            int code = HwmemCommand.Run(["run", "--bios", path, "--smp", "2", "--x2apic"], o, new StringWriter());
            Assert.That(code, Is.EqualTo(FirmwareImages.QemuSuccessExitStatus));
            Assert.That(o.ToString(), Does.Contain("smp: fixed IPI 0x40 handled by: 1"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
