using System.CommandLine;
using System.Globalization;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Cli;

/// <summary>The <c>hwmem</c> command line.</summary>
public static class HwmemCommand
{
    /// <summary>Exit status for a bad argument.</summary>
    public const int ExitUsage = 2;
    /// <summary>Exit status when the walk faults (the explanation is still printed).</summary>
    public const int ExitFault = 3;
    /// <summary>Exit status for a machine description that cannot be built (the message names the JSON path).</summary>
    public const int ExitMachineDescription = 5;
    /// <summary>Exit status when the kernel model stopped (an oops or a panic; the report is printed).</summary>
    public const int ExitKernelStop = 7;
    /// <summary>Exit status for an error of the tool itself (EX_SOFTWARE); --verbose prints the stack trace.</summary>
    public const int ExitInternal = 70;

    /// <summary>Parses and runs <paramref name="args"/>, writing to the given writers; returns the exit status.</summary>
    /// <param name="args">The command line.</param>
    /// <param name="stdout">Standard output for text.</param>
    /// <param name="stderr">Standard error.</param>
    /// <param name="rawStdout">Standard output as bytes (guest serial output); <paramref name="stdout"/> is used when null.</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, Stream? rawStdout = null)
    {
        var root = new RootCommand("hwmem: an exact model of x86-64 paging, TLBs and the physical bus.");

        var demo = new Command("demo", "The main job on the built-in default machine: walks and explanations on a built-in page-table set, a missing flush caught by the coherence checker, the TLB counters, the kernel model (kmalloc, vmalloc, ioremap, /proc views, ptdump), the devices with their drivers bound (UART, HPET, a DMA transfer, virtio-blk I/O, /proc/interrupts) and two firmware runs.");
        demo.SetAction(_ => Demo.Run(stdout));
        root.Subcommands.Add(demo);

        var vaArg = new Argument<string>("VA") { Description = "Virtual address, hex (0x...) or decimal; '_' separators allowed." };
        var access = new Option<string>("--access") { Description = "read, write or fetch.", DefaultValueFactory = _ => "read" };
        access.AcceptOnlyFromAmong("read", "write", "fetch");
        var user = new Option<bool>("--user") { Description = "A user-mode (CPL 3) access." };
        var walkMachine = KernelViews.MachineOption();
        walkMachine.Description = "Walk the kernel model's page tables (CPU 0) on this machine (a JSON description, or 'default' for the built-in one) instead of the built-in demo page-table set.";
        var walkJson = KernelViews.JsonOption();
        var walkSnapshot = new Option<string?>("--snapshot") { Description = "Walk in a snapshot written by hwmem run --save-snapshot (its RAM and CPU 0's paging state; a cold TLB)." };
        var implicitOpt = new Option<bool>("--implicit") { Description = "An implicit supervisor-mode access (descriptor-table style)." };
        var walk = new Command("walk", "Explain the walk of VA level by level (entry address, raw value, decoded flags) with the verdict in words: on the built-in demo page-table set, or with --machine on the kernel model's page tables.");
        walk.Arguments.Add(vaArg);
        walk.Options.Add(walkMachine);
        walk.Options.Add(walkJson);
        walk.Options.Add(walkSnapshot);
        walk.Options.Add(access);
        walk.Options.Add(user);
        walk.Options.Add(implicitOpt);
        walk.SetAction(r =>
        {
            string text = r.GetValue(vaArg)!;
            if (!TryParseAddress(text, out ulong va))
            {
                stderr.WriteLine($"hwmem walk: '{text}' is not an address; give a hex (0x...) or decimal number below 2^64.");
                return ExitUsage;
            }
            if (r.GetValue(user) && r.GetValue(implicitOpt))
            {
                stderr.WriteLine("hwmem walk: --user and --implicit exclude each other; an implicit access is a supervisor-mode access.");
                return ExitUsage;
            }
            var kind = r.GetValue(access) switch { "write" => AccessKind.Write, "fetch" => AccessKind.Execute, _ => AccessKind.Read };
            var priv = r.GetValue(user) ? Privilege.User : r.GetValue(implicitOpt) ? Privilege.ImplicitSupervisor : Privilege.Supervisor;
            WalkExplanation e;
            if (r.GetValue(walkMachine) is not null && r.GetValue(walkSnapshot) is not null)
            {
                stderr.WriteLine("hwmem walk: --machine and --snapshot exclude each other; give one.");
                return ExitUsage;
            }
            if (r.GetValue(walkSnapshot) is { } snap)
            {
                try
                {
                    e = MachineSnapshot.Load(snap).Cpu.Mmu.Explain(va, kind, priv);
                }
                catch (InvalidDataException ex)
                {
                    stderr.WriteLine($"hwmem walk: {ex.Message}");
                    return ExitUsage;
                }
            }
            else if (r.GetValue(walkMachine) is { } file)
            {
                using var built = KernelViews.Build(file == "default" ? null : file);
                e = built.Machine.Kernel.Cpus[0].Mmu.Explain(va, kind, priv);
            }
            else
            {
                e = DemoPageTables.Create().Cpu.Mmu.Explain(va, kind, priv);
            }
            if (r.GetValue(walkJson)) stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(KernelViews.WalkData(e), KernelViews.Json));
            else stdout.Write(e.ToString());
            return e.Fault.IsFault ? ExitFault : 0;
        });
        root.Subcommands.Add(walk);

        var iomem = new Command("iomem", "Print the default machine's physical memory map (RAM and ROM, before devices) in /proc/iomem format.");
        var iomemJson = KernelViews.JsonOption();
        iomem.Options.Add(iomemJson);
        iomem.SetAction(r =>
        {
            var bus = DefaultMachine.CreateBus();
            if (r.GetValue(iomemJson))
                stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(bus.MemoryMap().Select(e => new { start = KernelViews.Hex(e.Start), end = KernelViews.Hex(e.Last), name = e.Region.Name, kind = e.Kind.ToString() }), KernelViews.Json));
            else stdout.Write(bus.FormatIoMem());
            return 0;
        });
        root.Subcommands.Add(iomem);

        var e820 = new Command("e820", "Print the default machine's memory map as the e820 table Linux logs at boot.");
        var e820Json = KernelViews.JsonOption();
        e820.Options.Add(e820Json);
        e820.SetAction(r =>
        {
            var bus = DefaultMachine.CreateBus();
            if (r.GetValue(e820Json))
                stdout.WriteLine(System.Text.Json.JsonSerializer.Serialize(bus.E820Table().Select(e => new { start = KernelViews.Hex(e.Start), end = KernelViews.Hex(e.Last), type = e.Type == Bus.E820Type.Usable ? "usable" : "reserved" }), KernelViews.Json));
            else stdout.Write(bus.FormatE820());
            return 0;
        });
        root.Subcommands.Add(e820);

        KernelViews.Add(root, stdout);
        ScriptCommand.Add(root, stdout, stderr);
        RunCommand.Add(root, stdout, stderr, rawStdout);
        ExecCommand.Add(root, stdout, stderr, rawStdout);
        BenchCommand.Add(root, stdout, stderr);
        Plots.PlotCommands.Add(root, stdout, stderr);

        var verbose = new Option<bool>("--verbose") { Description = "On an internal error, print the stack trace too.", Recursive = true };
        root.Options.Add(verbose);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && args.Length > 0)
        {
            foreach (var error in parse.Errors) stderr.WriteLine($"hwmem: {error.Message}");
            return ExitUsage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return ReportError(e, parse.GetValue(verbose), stderr);
        }
    }

    /// <summary>One line per error, a distinct exit status per kind; the stack trace only with --verbose.</summary>
    private static int ReportError(Exception e, bool verbose, TextWriter stderr)
    {
        (string message, int status) = e switch
        {
            Machine.Description.MachineDescriptionException d => ($"hwmem: machine description: {d.Message}", ExitMachineDescription),
            Kernel.KernelStopException k => ($"hwmem: the kernel model stopped:\n{k.Report}", ExitKernelStop),
            IOException or UnauthorizedAccessException => ($"hwmem: {e.Message}", ExitUsage),
            _ => ($"hwmem: internal error: {e.GetType().Name}: {e.Message}{(verbose ? "" : " (run with --verbose for the stack trace)")}", ExitInternal),
        };
        stderr.WriteLine(message);
        if (verbose) stderr.WriteLine(e.ToString());
        return status;
    }

    /// <summary>Parses "0x..." hex or decimal, with optional '_' or '\'' separators.</summary>
    public static bool TryParseAddress(string text, out ulong value)
    {
        string s = text.Trim().Replace("_", "", StringComparison.Ordinal).Replace("'", "", StringComparison.Ordinal);
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && s.Length > 2;
        return ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
