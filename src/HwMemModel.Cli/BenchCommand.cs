using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using HwMemModel.Firmware;
using HwMemModel.Machine;

namespace HwMemModel.Cli;

/// <summary>
/// <c>hwmem bench</c>: guest instructions per second of the CPU model on the built-in <c>bench</c> firmware image
/// (long mode, paging on, ALU work mixed with loads, stores, push/pop and call/ret), and with <c>--qemu</c> the same
/// image on qemu-system-x86_64 (TCG) in the same run, as a ratio. Wall-clock figures: for BENCHMARKS.md, never for
/// tests.
/// </summary>
public static class BenchCommand
{
    /// <summary>Adds the command to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        var qemu = new Option<bool>("--qemu") { Description = "Also run the image on qemu-system-x86_64 (TCG, PLATFORM.md's command line) and print the ratio." };
        var json = new Option<bool>("--json") { Description = "Print the figures as JSON: {image, cpus, instructions, modelSeconds, modelMips, qemuSeconds?, qemuStartupSeconds?, qemuMips?, ratio?}." };
        var quick = new Option<bool>("--quick") { Description = "Only the micro figures (MMU, kernel, devices), not the CPU image run." };
        var smp = new Option<int?>("--smp") { Description = "Run the 'smp-bench' image (every CPU, the APs in long mode, runs the bench loop over its own buffer) with N CPUs (1 to 64) instead of 'bench': guest instructions per second summed over the CPUs." };
        var repeat = new Option<int>("--repeat") { Description = "Runs of each; the fastest counts (default 3).", DefaultValueFactory = _ => 3 };
        var cmd = new Command("bench", "The speed figures of the MMU, kernel and devices issues in one table against their targets, then guest instructions per second of the CPU model on the built-in 'bench' image (64-bit, paging on, ALU and memory mix); --qemu runs QEMU TCG on the same image in the same run and prints the ratio; --quick skips the image.");
        cmd.Options.Add(qemu);
        cmd.Options.Add(json);
        cmd.Options.Add(repeat);
        cmd.Options.Add(quick);
        cmd.Options.Add(smp);
        cmd.SetAction(r => Execute(r.GetValue(qemu), r.GetValue(json), r.GetValue(repeat), r.GetValue(quick), r.GetValue(smp), stdout, stderr));
        root.Subcommands.Add(cmd);
    }

    private static int Execute(bool withQemu, bool json, int repeat, bool quick, int? smp, TextWriter stdout, TextWriter stderr)
    {
        if (repeat is < 1 or > 100)
        {
            stderr.WriteLine($"hwmem bench: --repeat {repeat} is out of range; give 1 to 100.");
            return HwmemCommand.ExitUsage;
        }
        if (smp is < 1 or > 64)
        {
            stderr.WriteLine($"hwmem bench: --smp {smp} is out of range; give 1 to 64 CPUs.");
            return HwmemCommand.ExitUsage;
        }
        string imageName = smp is null ? "bench" : "smp-bench";
        int cpus = smp ?? 1;
        if (BenchFigures.IsDebugBuild())
            stderr.WriteLine("hwmem bench: note: this is a Debug build; build with -c Release for representative figures.");
        var figures = BenchFigures.Measure(repeat);
        if (!json)
        {
            stdout.WriteLine("figure                                                    issue      per op          per second  target          ");
            foreach (var f in figures)
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{f.Name,-57} {f.Issue,-8} {f.NanosecondsPerOp,10:F2} ns {f.PerSecond,15:N0}  {f.Target,-14}  {(f.Met ? "met" : "NOT MET")}"));
            stdout.WriteLine($"(stopwatch, best of {repeat} after a warm-up; BenchmarkDotNet's figures in BENCHMARKS.md are the reference)");
        }
        if (quick)
        {
            if (json) stdout.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?> { ["figures"] = FiguresJson(figures) }, JsonOptions));
            return 0;
        }
        FirmwareImage image;
        try
        {
            image = FirmwareImages.Get(imageName) with { Cpus = cpus };
        }
        catch (KeyNotFoundException)
        {
            stderr.WriteLine($"hwmem bench: the built-in '{imageName}' image is missing from this build.");
            return HwmemCommand.ExitUsage;
        }

        long instructions = 0;
        double best = double.MaxValue;
        for (int i = 0; i < repeat; i++)
        {
            var m = PcMachine.FromBios(image.Bytes, image.FileName, new PcMachineOptions { SerialOutput = Stream.Null, Cpus = cpus });
            var sw = Stopwatch.StartNew();
            var r = m.Run(10_000_000_000);
            double s = sw.Elapsed.TotalSeconds;
            if (PcMachine.QemuExitStatus(r, m.Stop) != 1)
            {
                stderr.WriteLine($"hwmem bench: the {imageName} image did not finish cleanly on the model: {r.Report}");
                return RunCommand.ExitNotModelled;
            }
            instructions = r.Instructions;
            best = Math.Min(best, s);
        }
        double mips = instructions / best / 1e6;

        double? qemuSeconds = null, qemuStartup = null, qemuMips = null, ratio = null;
        if (withQemu)
        {
            string? exe = FindOnPath("qemu-system-x86_64");
            if (exe is null)
            {
                stderr.WriteLine("hwmem bench: --qemu needs qemu-system-x86_64 on the PATH (Debian: apt-get install qemu-system-x86).");
                return HwmemCommand.ExitUsage;
            }
            string dir = Path.Combine(Path.GetTempPath(), "hwmem-bench-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            try
            {
                var hello = FirmwareImages.Get("hello");
                qemuStartup = Enumerable.Range(0, repeat).Min(_ => TimeQemu(exe, hello, dir));
                qemuSeconds = Enumerable.Range(0, repeat).Min(_ => TimeQemu(exe, image, dir));
                double net = Math.Max(qemuSeconds.Value - qemuStartup.Value, 1e-6);
                qemuMips = instructions / net / 1e6;
                ratio = mips / qemuMips;
            }
            finally
            {
                try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }

        if (json)
        {
            var o = new Dictionary<string, object?>
            {
                ["image"] = imageName, ["cpus"] = cpus, ["instructions"] = instructions, ["modelSeconds"] = Math.Round(best, 4), ["modelMips"] = Math.Round(mips, 1),
                ["qemuSeconds"] = qemuSeconds is { } q ? Math.Round(q, 4) : null,
                ["qemuStartupSeconds"] = qemuStartup is { } qs ? Math.Round(qs, 4) : null,
                ["qemuMips"] = qemuMips is { } qm ? Math.Round(qm, 1) : null,
                ["ratio"] = ratio is { } ra ? Math.Round(ra, 3) : null,
                ["figures"] = FiguresJson(figures),
            };
            stdout.WriteLine(JsonSerializer.Serialize(o, JsonOptions));
            return 0;
        }
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"model: {instructions:N0} guest instructions{(smp is null ? "" : $" on {cpus} CPUs ({imageName})")} in {best:F3} s = {mips:F1} million instructions/s (best of {repeat})"));
        if (qemuSeconds is { } qsec)
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"qemu : {qsec:F3} s, of which {qemuStartup:F3} s start-up (the hello image) = {qemuMips:F1} million instructions/s (TCG)"));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ratio model/qemu: {ratio:F3}"));
        }
        return 0;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static object FiguresJson(IReadOnlyList<BenchFigure> figures)
        => figures.Select(f => new Dictionary<string, object>
        {
            ["name"] = f.Name, ["issue"] = f.Issue, ["nsPerOp"] = Math.Round(f.NanosecondsPerOp, 2),
            ["perSecond"] = Math.Round(f.PerSecond), ["target"] = f.Target, ["met"] = f.Met,
        }).ToArray();

    private static double TimeQemu(string exe, FirmwareImage image, string dir)
    {
        string file = Path.Combine(dir, image.FileName);
        File.WriteAllBytes(file, image.Bytes);
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in image.QemuCommandLine(file).Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return sw.Elapsed.TotalSeconds;
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            if (dir.Length == 0) continue;
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }
}
