using System.Diagnostics;
using System.Text;
using HwMemModel.Cpu;
using HwMemModel.Firmware;
using HwMemModel.Machine;

namespace HwMemModel.Conformance.Tests;

/// <summary>
/// Runs every firmware image on the model and compares serial output and exit status with QEMU 7.2: with the
/// recording in firmware/expected (always), and with a live qemu-system-x86_64 when one is on the PATH. Lines where
/// QEMU deviates from the SDM (listed in PLATFORM.md and NAME.divergences) are compared with the SDM's line instead.
/// </summary>
public class FirmwareConformanceTests
{
    private const long Budget = 200_000_000;

    /// <summary>
    /// Every image but the speed workloads <c>bench</c>, <c>smp-bench</c> and <c>smp-spin</c> (which is <c>smp</c> plus a loop): bench's ~1 billion instructions are a speed workload (hwmem bench, BENCHMARKS.md),
    /// minutes in a Debug test run; its checksum is compared with QEMU's by <c>hwmem bench</c> instead.
    /// </summary>
    public static IEnumerable<string> ImageNames() => FirmwareImages.All.Select(i => i.Name).Where(n => n is not ("bench" or "smp-bench" or "smp-spin"));

    /// <summary>Runs <paramref name="image"/> on the model with <paramref name="cpus"/> CPUs (the image's reference count when null).</summary>
    internal static (string Serial, int? Exit, RunResult Result) RunOnModel(FirmwareImage image, int? cpus = null)
        => RunOnMachine(image, new PcMachineOptions { Cpus = cpus ?? image.Cpus }).Outcome;

    /// <summary>Runs <paramref name="image"/> on a machine made with <paramref name="options"/> (serial output captured) and returns the machine too.</summary>
    internal static ((string Serial, int? Exit, RunResult Result) Outcome, PcMachine Machine) RunOnMachine(FirmwareImage image, PcMachineOptions options)
    {
        var serial = new MemoryStream();
        options = options with { SerialOutput = serial };
        string path = "/images/" + image.FileName;
        var machine = image.Kind == ImageKind.Bios
            ? PcMachine.FromBios(image.Bytes, path, options)
            : PcMachine.FromMultiboot(image.Bytes, path, null, options);
        var result = machine.Run(Budget);
        return ((Encoding.Latin1.GetString(serial.ToArray()), PcMachine.QemuExitStatus(result, machine.Stop), result), machine);
    }

    [TestCaseSource(nameof(ImageNames))]
    public void ModelMatchesQemuRecording(string name)
    {
        var image = FirmwareImages.Get(name);
        var (serial, exit, result) = RunOnModel(image);
        Assert.That(image.SdmSerialOutput, Is.Not.Null, "the recording exists");
        Assert.That(serial, Is.EqualTo(image.SdmSerialOutput), $"serial output of {name}; run ended: {result.Kind}: {result.Report}");
        Assert.That(exit, Is.EqualTo(image.QemuExitStatus), $"exit status of {name}; run ended: {result.Kind}: {result.Report}");
    }

    [TestCaseSource(nameof(ImageNames))]
    [Category("Qemu")]
    public void ModelMatchesLiveQemu(string name)
    {
        string? qemu = Qemu.Find();
        if (qemu is null) Assert.Ignore("qemu-system-x86_64 is not on the PATH; the recorded QEMU results are compared instead (ModelMatchesQemuRecording)");
        var image = FirmwareImages.Get(name);
        var (qemuSerial, qemuExit) = Qemu.Run(qemu, image);
        // Replace QEMU's documented SDM divergences by the SDM's lines, then compare.
        foreach (var d in image.KnownDivergences) qemuSerial = qemuSerial.Replace(d.QemuLine, d.SdmLine, StringComparison.Ordinal);
        var (serial, exit, result) = RunOnModel(image);
        Assert.That(serial, Is.EqualTo(qemuSerial), $"serial output of {name}; model run ended: {result.Kind}: {result.Report}");
        Assert.That(exit, Is.EqualTo(qemuExit), $"exit status of {name}");
    }

    [TestCaseSource(nameof(ImageNames))]
    public void RunsAreDeterministic(string name)
    {
        var image = FirmwareImages.Get(name);
        var a = RunOnModel(image);
        var b = RunOnModel(image);
        Assert.That(b.Serial, Is.EqualTo(a.Serial));
        Assert.That(b.Result.Instructions, Is.EqualTo(a.Result.Instructions));
    }
}

/// <summary>The <c>smp</c> image with several CPUs (QEMU's <c>-smp N</c>): INIT and start-up IPIs bring the APs up.</summary>
public sealed class SmpConformanceTests
{
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(16)]
    public void Every_application_processor_starts_from_the_trampoline(int cpus)
    {
        var (serial, exit, result) = FirmwareConformanceTests.RunOnModel(FirmwareImages.Get("smp"), cpus);
        // The image prints fw_cfg's CPU count and how many of the other CPUs counted themselves in.
        Assert.That(serial, Does.Contain($"smp: fw_cfg reports {cpus} CPUs\n"), result.Report);
        Assert.That(serial, Does.Contain($"smp: application processors started: {cpus - 1} of {cpus - 1}\n"), result.Report);
        // Each AP woke from HLT for the fixed IPI, ran its vector 0x40 handler once and wrote EOI.
        Assert.That(serial, Does.Contain($"smp: ready in protected mode with the APIC on: {cpus - 1}\n"), result.Report);
        Assert.That(serial, Does.Contain($"smp: fixed IPI 0x40 handled by: {cpus - 1}\n"), result.Report);
        // An NMI IPI reaches each AP's vector 2 handler (NMIs are not masked by IF).
        Assert.That(serial, Does.Contain($"smp: NMI IPI handled by: {cpus - 1}\n"), result.Report);
        // Each AP's local APIC timer (one-shot, vector 0x41) interrupts its own CPU once.
        Assert.That(serial, Does.Contain($"smp: one-shot APIC timer interrupts (one per AP): {cpus - 1}\n"), result.Report);
        Assert.That(exit, Is.EqualTo(FirmwareImages.QemuSuccessExitStatus));
    }

    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    [Category("Qemu")]
    public void Model_matches_live_qemu_with_several_cpus(int cpus)
    {
        string? qemu = Qemu.Find();
        if (qemu is null) Assert.Ignore("qemu-system-x86_64 is not on the PATH; the SMP start-up is then checked against the image's own rule only");
        var image = FirmwareImages.Get("smp");
        var (qemuSerial, qemuExit) = Qemu.Run(qemu, image, cpus);
        var (serial, exit, _) = FirmwareConformanceTests.RunOnModel(image, cpus);
        Assert.That(serial, Is.EqualTo(qemuSerial));
        Assert.That(exit, Is.EqualTo(qemuExit));
    }

    [Test]
    public void Several_cpus_run_deterministically()
    {
        var a = FirmwareConformanceTests.RunOnModel(FirmwareImages.Get("smp"), 8);
        var b = FirmwareConformanceTests.RunOnModel(FirmwareImages.Get("smp"), 8);
        Assert.That(b.Serial, Is.EqualTo(a.Serial));
        Assert.That(b.Result.Instructions, Is.EqualTo(a.Result.Instructions));
    }
}

/// <summary>The <c>fw-cfg</c> image with several CPUs (QEMU's <c>-smp N</c>): fw_cfg's CPU counts follow N.</summary>
public sealed class FwCfgConformanceTests
{
    [TestCase(2)]
    [TestCase(4)]
    public void Cpu_count_keys_report_the_cpus(int cpus)
    {
        var (serial, exit, result) = FirmwareConformanceTests.RunOnModel(FirmwareImages.Get("fw-cfg"), cpus);
        Assert.That(serial, Does.Contain($"fwcfg: CPUs (key 0x05, 16-bit LE): {cpus}, the byte past its end reads 0x0\n"), result.Report);
        Assert.That(serial, Does.Contain($"fwcfg: maximum CPUs (key 0x0f, 16-bit LE): {cpus}\n"), result.Report);
        Assert.That(exit, Is.EqualTo(FirmwareImages.QemuSuccessExitStatus), result.Report);
    }

    [TestCase(2)]
    [TestCase(4)]
    [Category("Qemu")]
    public void Model_matches_live_qemu_with_several_cpus(int cpus)
    {
        string? qemu = Qemu.Find();
        if (qemu is null) Assert.Ignore("qemu-system-x86_64 is not on the PATH; the CPU count is then checked against the image's own rule only");
        var image = FirmwareImages.Get("fw-cfg");
        var (qemuSerial, qemuExit) = Qemu.Run(qemu, image, cpus);
        var (serial, exit, _) = FirmwareConformanceTests.RunOnModel(image, cpus);
        Assert.That(serial, Is.EqualTo(qemuSerial));
        Assert.That(exit, Is.EqualTo(qemuExit));
    }
}

/// <summary>Finds and runs qemu-system-x86_64 with PLATFORM.md's command line.</summary>
internal static class Qemu
{
    public static string? Find()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var p = Path.Combine(dir, "qemu-system-x86_64");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    public static (string Serial, int Exit) Run(string qemu, FirmwareImage image, int cpus = 1)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hwmem-conformance-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, image.FileName);
        File.WriteAllBytes(file, image.Bytes);
        var psi = new ProcessStartInfo(qemu) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in image.QemuCommandLine(file).Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)) psi.ArgumentList.Add(a);
        if (cpus > 1)
        {
            psi.ArgumentList.Add("-smp");
            psi.ArgumentList.Add(cpus.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.BaseStream;
        var ms = new MemoryStream();
        var copy = output.CopyToAsync(ms);
        if (!p.WaitForExit(60_000))
        {
            p.Kill(true);
            Assert.Fail($"QEMU did not finish {image.Name} within 60 s");
        }
        copy.Wait();
        return (Encoding.Latin1.GetString(ms.ToArray()), p.ExitCode);
    }
}
