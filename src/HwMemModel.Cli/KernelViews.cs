using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using HwMemModel.Mmu;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Cli;

/// <summary>
/// The kernel-model views: <c>hwmem ptdump</c>, <c>hwmem proc VIEW</c> and <c>hwmem walk VA --machine FILE</c>. Each
/// builds the machine (the built-in default or a JSON description), boots the kernel model, binds the built-in
/// drivers (so their ioremaps, DMA buffers and interrupts are there to see) and prints the view in Linux's format,
/// or with <c>--json</c> as data (schemas in docs/cli.md).
/// </summary>
public static partial class KernelViews
{
    /// <summary>The /proc views <c>hwmem proc</c> knows.</summary>
    public static readonly string[] Views = ["vmallocinfo", "slabinfo", "buddyinfo", "iomem", "ioports", "meminfo", "interrupts"];

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    /// <summary>The --machine option: a JSON machine description; the built-in default machine when absent.</summary>
    internal static Option<string?> MachineOption() => new("--machine") { Description = "A machine description (JSON, see docs/drivers.md); the built-in default machine when absent." };

    /// <summary>The --json option.</summary>
    internal static Option<bool> JsonOption() => new("--json") { Description = "Print the data as JSON (schemas in docs/cli.md) instead of the text view." };

    /// <summary>Adds <c>ptdump</c> and <c>proc</c> to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout)
    {
        var machine = MachineOption();
        var json = JsonOption();
        var ptdump = new Command("ptdump", "Print the kernel model's page tables as /sys/kernel/debug/page_tables/kernel does (Linux's ptdump), after boot with the built-in drivers bound.");
        ptdump.Options.Add(machine);
        ptdump.Options.Add(json);
        ptdump.SetAction(r =>
        {
            using var m = Build(r.GetValue(machine));
            string text = PtDump.Format(m.Machine.Kernel);
            if (r.GetValue(json)) stdout.WriteLine(JsonSerializer.Serialize(ParsePtDump(text), Json));
            else stdout.Write(text);
            return 0;
        });
        root.Subcommands.Add(ptdump);

        var viewArg = new Argument<string>("VIEW") { Description = $"One of: {string.Join(", ", Views)}." };
        viewArg.AcceptOnlyFromAmong(Views);
        var proc = new Command("proc", "Print a /proc view of the kernel model in Linux's format, after boot with the built-in drivers bound and a little I/O done.");
        proc.Arguments.Add(viewArg);
        var machine2 = MachineOption();
        var json2 = JsonOption();
        proc.Options.Add(machine2);
        proc.Options.Add(json2);
        proc.SetAction(r =>
        {
            using var m = Build(r.GetValue(machine2));
            string view = r.GetValue(viewArg)!;
            if (r.GetValue(json2)) stdout.WriteLine(JsonSerializer.Serialize(ProcData(m.Machine, view), Json));
            else stdout.Write(ProcText(m.Machine, view));
            return 0;
        });
        root.Subcommands.Add(proc);
    }

    /// <summary>A machine with the built-in drivers bound; dispose to unbind and close disks.</summary>
    internal sealed class Built(ServiceProvider provider, SimulatedMachine machine) : IDisposable
    {
        public SimulatedMachine Machine => machine;
        public void Dispose() => provider.Dispose();
    }

    /// <summary>Builds the machine from <paramref name="path"/> (or the default), binds the built-in drivers.</summary>
    /// <exception cref="MachineDescriptionException">The description is invalid.</exception>
    internal static Built Build(string? path)
    {
        var description = path is null ? MachineDescription.Default : MachineDescriptionReader.FromJsonFile(path);
        var provider = new ServiceCollection().AddHwMemModel(description).AddBuiltInDrivers().BuildServiceProvider();
        var machine = provider.StartHwMemModel();
        return new Built(provider, machine);
    }

    internal static string ProcText(SimulatedMachine m, string view) => view switch
    {
        "vmallocinfo" => m.Kernel.FormatVmallocInfo(),
        "slabinfo" => m.Kernel.FormatSlabInfo(),
        "buddyinfo" => m.Kernel.Pages.FormatBuddyInfo(),
        "iomem" => m.Bus.FormatIoMem(),
        "ioports" => m.Ports.FormatIoPorts(),
        "meminfo" => m.Kernel.FormatMemInfo(),
        "interrupts" => m.Kernel.FormatInterrupts(),
        _ => throw new ArgumentOutOfRangeException(nameof(view), view, $"Unknown view; known: {string.Join(", ", Views)}."),
    };

    internal static object ProcData(SimulatedMachine m, string view)
    {
        var k = m.Kernel;
        return view switch
        {
            "vmallocinfo" => k.VmAreas().Select(a => new
            {
                start = Hex(a.Address), end = Hex(a.Address + a.Size), size = a.Size, caller = a.Caller,
                pages = a.Pages.Count, phys = a.PhysAddr == 0 ? null : Hex(a.PhysAddr), flags = a.Flags.ToString(),
            }).ToArray(),
            "slabinfo" => k.SlabCaches.Where(c => !c.IsDestroyed).Select(c => new
            {
                name = c.Name, activeObjs = c.ActiveObjects, numObjs = c.TotalObjects, objSize = c.Size, objPerSlab = c.ObjectsPerSlab,
                pagesPerSlab = 1 << c.Order, numSlabs = c.Slabs,
            }).ToArray(),
            "buddyinfo" => k.Pages.Zones.Select(z => new
            {
                node = z.Node, zone = z.Name, free = Enumerable.Range(0, PageAllocator.MaxOrder + 1).Select(z.FreeBlocksOfOrder).ToArray(),
            }).ToArray(),
            "iomem" => m.Bus.MemoryMap().Select(e => new { start = Hex(e.Start), end = Hex(e.Last), name = e.Region.Name, kind = e.Kind.ToString() }).ToArray(),
            "ioports" => m.Ports.Ranges.Select(p => new { start = Hex(p.Port), end = Hex(p.Last), name = p.Name }).ToArray(),
            "meminfo" => ParseMemInfo(k.FormatMemInfo()),
            "interrupts" => k.Interrupts().Select(i => new
            {
                irq = i.Irq, vector = Hex((ulong)i.Vector), trigger = i.Trigger, count = i.Count, unhandled = i.Unhandled, actions = i.Actions,
            }).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(view), view, $"Unknown view; known: {string.Join(", ", Views)}."),
        };
    }

    /// <summary>A walk on the kernel model's page tables (CPU 0), as JSON-ready data.</summary>
    internal static object WalkData(WalkExplanation e) => new
    {
        address = Hex(e.VirtualAddress),
        access = e.Kind switch { AccessKind.Read => "read", AccessKind.Write => "write", _ => "fetch" },
        privilege = e.Privilege switch { Privilege.User => "user", Privilege.Supervisor => "supervisor", _ => "implicit" },
        control = e.ControlState,
        levels = e.Steps.Select(s => new { level = s.Name, index = s.Index, entryAddress = Hex(s.EntryAddress), raw = Hex(s.Raw), flags = s.Decoded, leaf = s.IsLeaf }).ToArray(),
        allowed = !e.Fault.IsFault,
        physicalAddress = e.Translation is { } t ? Hex(t.PhysicalAddress) : null,
        pageSize = e.Translation is { } t2 ? t2.PageSize.Label() : null,
        memoryType = e.Translation is { } t3 ? t3.MemoryType.ShortName() : null,
        fault = e.Fault.IsFault ? e.Fault.Kind.ToString() : null,
        errorCode = e.Fault.IsFault && e.Fault.Kind == FaultKind.PageFault ? Hex((ulong)e.Fault.ErrorCode) : null,
        verdict = e.Verdict,
        tlb = e.TlbNote,
    };

    private static object ParsePtDump(string text)
    {
        var rows = new List<object>();
        string section = "";
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("---[ ", StringComparison.Ordinal)) { section = line[5..^5]; continue; }
            var mt = PtDumpLine().Match(line);
            if (!mt.Success) continue;
            string[] words = mt.Groups["rest"].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            rows.Add(new
            {
                section,
                start = mt.Groups["start"].Value,
                end = mt.Groups["end"].Value,
                size = mt.Groups["size"].Value,
                present = words.Length > 1,
                flags = words.Length > 1 ? words[..^1] : [],
                level = words.Length > 0 ? words[^1] : "",
            });
        }
        return rows;
    }

    private static Dictionary<string, string> ParseMemInfo(string text)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0) d[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return d;
    }

    internal static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    [GeneratedRegex(@"^(?<start>0x[0-9a-f]{16})-(?<end>0x[0-9a-f]{16})\s+(?<size>\d+[BKMGTPE])\s(?<rest>.*)$")]
    private static partial Regex PtDumpLine();
}
