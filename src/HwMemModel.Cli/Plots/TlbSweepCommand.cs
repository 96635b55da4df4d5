using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using HwMemModel.Kernel;
using ScottPlot;

namespace HwMemModel.Cli.Plots;

/// <summary>
/// <c>hwmem tlb-sweep</c>: replays a workload over L1 data-TLB sizes 4 to 1024 (4-way), with and without the default
/// STLB, for 4 KiB, 2 MiB and 1 GiB mappings, and plots the miss rate and the page-walk memory references per access
/// against the TLB size, one series per page size. JSON schema (<c>--json</c>):
/// <c>{workload, description, accesses, seed, ways, l2, points: [{pageSize, tlbEntries, l2, missRate, l1MissRate,
/// walkReadsPerAccess, walkReadsPerMiss, misses, l1Misses, walks, walkReads, translations}]}</c>.
/// </summary>
internal static class TlbSweepCommand
{
    private const string Command = "tlb-sweep";
    /// <summary>Most accesses per point.</summary>
    public const long MaxAccesses = 10_000_000;

    /// <summary>Adds the command to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        var workload = new Option<string>("--workload")
        {
            Description = $"The access pattern: {string.Join(", ", TlbSweep.WorkloadNames)}.",
            Required = true,
        };
        var output = new Option<string>("--out") { Description = "The plot to write: FILE.png or FILE.svg.", Required = true };
        var json = new Option<bool>("--json")
        {
            Description = "Print the data as JSON instead of the text table: {workload, description, accesses, seed, ways, l2, points: [{pageSize, tlbEntries, l2, missRate, l1MissRate, walkReadsPerAccess, walkReadsPerMiss, misses, l1Misses, walks, walkReads, translations}]}.",
        };
        var accesses = new Option<long>("--accesses") { Description = "Accesses replayed per point (default 200000).", DefaultValueFactory = _ => 200_000 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random parts of the trace (default 1).", DefaultValueFactory = _ => 1 };
        var stride = new Option<ulong>("--stride") { Description = "Stride in bytes of the strided workload, a multiple of 8 (default 4160: 4 KiB + 64 B).", DefaultValueFactory = _ => TlbSweep.DefaultStride };
        var cmd = new Command(Command,
            "Replay a workload (sequential, random, strided, kernel-mix) over L1 data-TLB sizes 4-1024 (4-way, with and without the default STLB) and 4K/2M/1G pages; "
            + "plot the TLB miss rate and the page-walk memory references per access against the TLB size (PNG or SVG by extension), and print the table.");
        cmd.Options.Add(workload);
        cmd.Options.Add(output);
        cmd.Options.Add(json);
        cmd.Options.Add(accesses);
        cmd.Options.Add(seed);
        cmd.Options.Add(stride);
        cmd.SetAction(r => Execute(r.GetValue(workload)!, r.GetValue(output)!, r.GetValue(json), r.GetValue(accesses), r.GetValue(seed), r.GetValue(stride), stdout, stderr));
        root.Subcommands.Add(cmd);
    }

    private static int Execute(string workloadName, string path, bool json, long accesses, ulong seed, ulong stride, TextWriter stdout, TextWriter stderr)
    {
        if (TlbSweep.ParseWorkload(workloadName) is not { } workload)
        {
            stderr.WriteLine($"hwmem {Command}: unknown workload '{workloadName}'; workloads: {string.Join(", ", TlbSweep.WorkloadNames)}.");
            return HwmemCommand.ExitUsage;
        }
        if (PlotImage.FormatOf(path) is not { } format)
        {
            stderr.WriteLine($"hwmem {Command}: --out must end in .png or .svg");
            return HwmemCommand.ExitUsage;
        }
        if (accesses is < 1 or > MaxAccesses)
        {
            stderr.WriteLine($"hwmem {Command}: --accesses {accesses} is out of range; give 1 to {MaxAccesses}.");
            return HwmemCommand.ExitUsage;
        }
        if (stride == 0 || stride % 8 != 0 || stride > 64UL << 20)
        {
            stderr.WriteLine($"hwmem {Command}: --stride {stride} is not allowed; give a multiple of 8 from 8 to 67108864 (64 MiB).");
            return HwmemCommand.ExitUsage;
        }

        var sweep = TlbSweep.Create(workload, accesses, seed, stride);
        IReadOnlyList<SweepPoint> points;
        try
        {
            points = ConsoleProgress.Run(stdout, $"tlb-sweep {TlbSweep.Name(workload)}", sweep.PointCount, step => sweep.Run(step));
        }
        catch (KernelStopException e)
        {
            stderr.WriteLine($"hwmem {Command}: the kernel model stopped: {e.Message.ReplaceLineEndings(" ")}");
            return HwmemCommand.ExitKernelStop;
        }

        if (!PlotImage.TryWrite(() => PlotImage.Save(BuildPlot(sweep, points), path, format, 1200, 1000), Command, path, stderr))
            return PlotCommands.ExitCannotWrite;

        if (json) stdout.WriteLine(ToJson(sweep, points));
        else
        {
            stdout.Write(FormatTable(sweep, points));
            stdout.WriteLine($"wrote {path}");
        }
        return 0;
    }

    /// <summary>The JSON document of the sweep.</summary>
    internal static string ToJson(TlbSweep sweep, IReadOnlyList<SweepPoint> points)
    {
        var doc = new Dictionary<string, object?>
        {
            ["workload"] = TlbSweep.Name(sweep.Workload),
            ["description"] = sweep.Description,
            ["accesses"] = sweep.Accesses,
            ["seed"] = sweep.Seed,
            ["ways"] = TlbSweep.Ways,
            ["l2"] = TlbSweep.L2Description,
            ["points"] = points.Select(p => new Dictionary<string, object>
            {
                ["pageSize"] = p.PageSize,
                ["tlbEntries"] = p.TlbEntries,
                ["l2"] = p.L2,
                ["missRate"] = p.MissRate,
                ["l1MissRate"] = p.L1MissRate,
                ["walkReadsPerAccess"] = p.WalkReadsPerAccess,
                ["walkReadsPerMiss"] = p.WalkReadsPerMiss,
                ["misses"] = p.Misses,
                ["l1Misses"] = p.L1Misses,
                ["walks"] = p.Walks,
                ["walkReads"] = p.WalkReads,
                ["translations"] = p.Translations,
            }).ToArray(),
        };
        return JsonSerializer.Serialize(doc, PlotCommands.JsonOptions);
    }

    /// <summary>The text report: a header and one line per point.</summary>
    internal static string FormatTable(TlbSweep sweep, IReadOnlyList<SweepPoint> points)
    {
        var sb = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        sb.Append(ic, $"tlb-sweep {TlbSweep.Name(sweep.Workload)}: {sweep.Description}\n");
        sb.Append(ic, $"{sweep.Accesses:N0} accesses per point, seed {sweep.Seed}; L1 DTLB {TlbSweep.Ways}-way per page size; L2 = STLB {TlbSweep.L2Description}; paging-structure caches on\n");
        sb.Append("page  L1 entries  L2   miss rate   L1 miss rate  walk reads/access  walk reads/miss\n");
        foreach (var p in points)
            sb.Append(ic, $"{p.PageSize,-5} {p.TlbEntries,10}  {(p.L2 ? "yes" : "no"),-3}  {p.MissRate,10:F6}  {p.L1MissRate,12:F6}  {p.WalkReadsPerAccess,17:F6}  {p.WalkReadsPerMiss,15:F2}\n");
        return sb.ToString();
    }

    private static readonly Dictionary<string, Color> SeriesColors = new()
    {
        ["4K"] = Colors.RoyalBlue,
        ["2M"] = Colors.DarkOrange,
        ["1G"] = Colors.ForestGreen,
        ["mixed"] = Colors.Purple,
    };

    /// <summary>Two stacked plots sharing the x axis: miss rate on top, walk reads per access below.</summary>
    private static Multiplot BuildPlot(TlbSweep sweep, IReadOnlyList<SweepPoint> points)
    {
        var top = new Plot();
        var bottom = new Plot();
        var multiplot = new Multiplot(top);
        multiplot.AddPlot(bottom);
        double floor = 0.1 / sweep.Accesses;
        string title = string.Create(CultureInfo.InvariantCulture,
            $"TLB sweep, workload '{TlbSweep.Name(sweep.Workload)}' ({sweep.Accesses:N0} accesses, seed {sweep.Seed})");
        Fill(top, points, p => p.MissRate, floor, "TLB misses per access (log scale)");
        Fill(bottom, points, p => p.WalkReadsPerAccess, floor, "page-walk memory references per access (log scale)");
        top.Title(title, 16);
        bottom.XLabel($"L1 data-TLB entries per page size ({TlbSweep.Ways}-way, log2 scale)");
        top.XLabel($"L1 data-TLB entries per page size ({TlbSweep.Ways}-way, log2 scale)");
        top.ShowLegend(Edge.Right);
        bottom.ShowLegend(Edge.Right);
        return multiplot;
    }

    private static void Fill(Plot plot, IReadOnlyList<SweepPoint> points, Func<SweepPoint, double> value, double floor, string yLabel)
    {
        foreach (var group in points.GroupBy(p => (p.PageSize, p.L2)))
        {
            var ordered = group.OrderBy(p => p.TlbEntries).ToArray();
            double[] xs = ordered.Select(p => Math.Log2(p.TlbEntries)).ToArray();
            double[] ys = ordered.Select(p => Math.Log10(Math.Max(value(p), floor))).ToArray();
            var s = plot.Add.ScatterLine(xs, ys, SeriesColors[group.Key.PageSize]);
            s.LineWidth = 2;
            s.MarkerSize = 6;
            s.MarkerShape = group.Key.L2 ? MarkerShape.OpenCircle : MarkerShape.FilledCircle;
            s.LinePattern = group.Key.L2 ? LinePattern.Dashed : LinePattern.Solid;
            string pages = group.Key.PageSize == "mixed" ? "kernel mappings (mixed sizes)" : $"{group.Key.PageSize} pages";
            s.LegendText = group.Key.L2 ? $"{pages}, with L2 (STLB)" : $"{pages}, L1 only";
        }
        var x = new ScottPlot.TickGenerators.NumericManual();
        foreach (int n in TlbSweep.TlbSizes) x.AddMajor(Math.Log2(n), n.ToString(CultureInfo.InvariantCulture));
        plot.Axes.Bottom.TickGenerator = x;
        var y = new ScottPlot.TickGenerators.NumericAutomatic
        {
            IntegerTicksOnly = true,
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            LabelFormatter = PowerOfTen,
        };
        plot.Axes.Left.TickGenerator = y;
        plot.YLabel(yLabel);
        plot.Axes.SetLimitsX(Math.Log2(TlbSweep.TlbSizes[0]) - 0.3, Math.Log2(TlbSweep.TlbSizes[^1]) + 0.3);
    }

    private static string PowerOfTen(double exponent)
    {
        int e = (int)Math.Round(exponent);
        return e switch
        {
            >= 0 => Math.Pow(10, e).ToString("0", CultureInfo.InvariantCulture),
            >= -2 => Math.Pow(10, e).ToString("0.##", CultureInfo.InvariantCulture),
            _ => $"1e{e}",
        };
    }
}
