using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using HwMemModel.Kernel;
using ScottPlot;

namespace HwMemModel.Cli.Plots;

/// <summary>
/// <c>hwmem map</c>: a picture of the kernel model's virtual address space after booting it on the default machine and
/// a small workload, one row per segment (direct map, the used part of the vmalloc space, kernel image) with address
/// labels, regions coloured by kind and memory type, and a legend. JSON schema (<c>--json</c>):
/// <c>{machine, segments: [{name, start, end, note}], regions: [{segment, start, end, size, kind, memoryType, pageSize,
/// caller, physAddr}]}</c>, addresses as "0x..." strings, <c>end</c> exclusive.
/// </summary>
internal static class MapCommand
{
    private const string Command = "map";

    /// <summary>Adds the command to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        var output = new Option<string>("--out") { Description = "The picture to write: FILE.png or FILE.svg.", Required = true };
        var json = new Option<bool>("--json")
        {
            Description = "Print the regions as JSON instead of the text listing: {machine, segments: [{name, start, end, note}], regions: [{segment, start, end, size, kind, memoryType, pageSize, caller, physAddr}]}.",
        };
        var cmd = new Command(Command,
            "Boot the kernel model on the default machine, do a few vmallocs, an ioremap of the HPET (UC-), an ioremap_wc and kmallocs, and draw its virtual address space "
            + "(direct map, vmalloc areas, ioremap areas, guard pages, kernel image) coloured by kind and memory type (PNG or SVG by extension); print the regions.");
        cmd.Options.Add(output);
        cmd.Options.Add(json);
        cmd.SetAction(r => Execute(r.GetValue(output)!, r.GetValue(json), stdout, stderr));
        root.Subcommands.Add(cmd);
    }

    private static int Execute(string path, bool json, TextWriter stdout, TextWriter stderr)
    {
        if (PlotImage.FormatOf(path) is not { } format)
        {
            stderr.WriteLine($"hwmem {Command}: --out must end in .png or .svg");
            return HwmemCommand.ExitUsage;
        }
        KernelMap map;
        try
        {
            map = KernelMap.Build();
        }
        catch (KernelStopException e)
        {
            stderr.WriteLine($"hwmem {Command}: the kernel model stopped: {e.Message.ReplaceLineEndings(" ")}");
            return HwmemCommand.ExitKernelStop;
        }
        if (!PlotImage.TryWrite(() => PlotImage.Save(BuildPlot(map), path, format, 1400, 200 + 190 * map.Segments.Count), Command, path, stderr))
            return PlotCommands.ExitCannotWrite;
        if (json) stdout.WriteLine(ToJson(map));
        else
        {
            stdout.Write(FormatListing(map));
            stdout.WriteLine($"wrote {path}");
        }
        return 0;
    }

    private static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    private static string MachineText(KernelMap map)
        => $"default machine, {map.Kernel.RamEnd >> 20} MiB RAM, {map.Kernel.PageTables.Levels}-level paging";

    /// <summary>The JSON document of the map.</summary>
    internal static string ToJson(KernelMap map)
    {
        var doc = new Dictionary<string, object?>
        {
            ["machine"] = MachineText(map),
            ["segments"] = map.Segments.Select(s => new Dictionary<string, object?>
            {
                ["name"] = s.Name, ["start"] = Hex(s.Start), ["end"] = Hex(s.End), ["note"] = s.Note,
            }).ToArray(),
            ["regions"] = map.Regions.Select(r => new Dictionary<string, object?>
            {
                ["segment"] = r.Segment,
                ["start"] = Hex(r.Start),
                ["end"] = Hex(r.End),
                ["size"] = r.End - r.Start,
                ["kind"] = r.Kind,
                ["memoryType"] = r.MemoryType,
                ["pageSize"] = r.PageSize,
                ["caller"] = r.Caller,
                ["physAddr"] = r.PhysAddr is { } pa ? Hex(pa) : null,
            }).ToArray(),
        };
        return JsonSerializer.Serialize(doc, PlotCommands.JsonOptions);
    }

    /// <summary>The text listing: each segment and its regions.</summary>
    internal static string FormatListing(KernelMap map)
    {
        var sb = new StringBuilder();
        var ic = CultureInfo.InvariantCulture;
        sb.Append(ic, $"kernel virtual address space ({MachineText(map)})\n");
        foreach (var s in map.Segments)
        {
            sb.Append(ic, $"{s.Name}: 0x{s.Start:x16}-0x{s.End - 1:x16} ({s.Note})\n");
            foreach (var r in map.Regions.Where(r => r.Segment == s.Name))
            {
                string extra = (r.PhysAddr is { } pa ? $" phys 0x{pa:x}" : "") + (r.Caller is { } c ? $" {c}" : "");
                sb.Append(ic, $"  0x{r.Start:x16}-0x{r.End - 1:x16} {Size(r.End - r.Start),9} {r.Kind,-11} {r.MemoryType ?? "-",-3} {r.PageSize ?? "-",-2}{extra}\n");
            }
        }
        return sb.ToString();
    }

    private static string Size(ulong b) => b >= 1UL << 20 && b % (1UL << 20) == 0 ? $"{b >> 20} MiB"
        : b >= 1UL << 10 && b % (1UL << 10) == 0 ? $"{b >> 10} KiB"
        : $"{b} B";

    /// <summary>The legend text and fill colour of a region.</summary>
    private static (string Label, Color Color) Style(MapRegion r) => r.Kind switch
    {
        "direct-map" => ($"direct map, {r.MemoryType}, {r.PageSize} pages", r.PageSize switch
        {
            "4K" => Colors.LightSkyBlue,
            "2M" => Colors.SteelBlue,
            _ => Colors.Navy,
        }),
        "kmalloc" => ("kmalloc object (in the direct map)", Colors.Black),
        "vmalloc" => ($"vmalloc area, {r.MemoryType}", Colors.MediumSeaGreen),
        "vmap" => ($"vmap area, {r.MemoryType}", Colors.Teal),
        "ioremap" => ($"ioremap area, {r.MemoryType}", r.MemoryType switch
        {
            "UC-" => Colors.Crimson,
            "UC" => Colors.DarkRed,
            "WC" => Colors.Orange,
            "WT" => Colors.Gold,
            "WB" => Colors.SlateBlue,
            _ => Colors.HotPink,
        }),
        "guard" => ("guard page (unmapped)", Colors.LightGray),
        "kernel-text" => ($"kernel text, {r.MemoryType}, RX", Colors.MediumPurple),
        _ => ($"kernel data, {r.MemoryType}, RW NX", Colors.Plum),
    };

    /// <summary>
    /// One row per segment: the regions as bars scaled to the row (a region under 0.4% of its row is drawn 0.4% wide to
    /// stay visible), the row's range and length under it, wide regions named inside, narrow mapped ones called out
    /// below, and a legend of kinds and memory types.
    /// </summary>
    private static Plot BuildPlot(KernelMap map)
    {
        var plot = new Plot();
        var legend = new Dictionary<string, Color>();
        const double RowPitch = 2.2, Half = 0.4, MinWidth = 0.004, LabelWidthPerChar = 0.0055;
        for (int i = 0; i < map.Segments.Count; i++)
        {
            var s = map.Segments[i];
            double y = -i * RowPitch;
            double span = s.End - s.Start;
            var frame = plot.Add.Rectangle(0, 1, y - Half, y + Half);
            frame.FillColor = Colors.WhiteSmoke;
            frame.LineColor = Colors.Gray;
            int callouts = 0;
            bool kmallocCalledOut = false;
            foreach (var r in map.Regions.Where(r => r.Segment == s.Name))
            {
                var (label, color) = Style(r);
                legend.TryAdd(label, color);
                double x1 = (r.Start - s.Start) / span, x2 = (r.End - s.Start) / span;
                if (x2 - x1 < MinWidth) x2 = x1 + MinWidth;
                bool marker = r.Kind == "kmalloc";
                var bar = plot.Add.Rectangle(x1, x2, marker ? y + Half * 0.3 : y - Half, y + Half);
                bar.FillColor = color;
                bar.LineColor = marker ? color : Colors.Black.WithAlpha(0.5);
                bar.LineWidth = marker ? 0 : 0.5f;
                if (r.Kind == "guard") continue;
                string name = Describe(r);
                if (!marker && (x2 - x1) > name.Length * LabelWidthPerChar)
                {
                    var inside = plot.Add.Text(name, (x1 + x2) / 2, y);
                    inside.Alignment = Alignment.MiddleCenter;
                    inside.LabelFontSize = 12;
                    inside.LabelFontColor = r.Kind is "direct-map" && r.PageSize != "4K" || r.Kind == "kernel-text" ? Colors.White : Colors.Black;
                }
                else if (x2 - x1 < 0.05 && !(marker && kmallocCalledOut))
                {
                    kmallocCalledOut |= marker;
                    double ty = y - Half - 0.45 - 0.3 * (callouts++ % 2);
                    var note = plot.Add.Text(marker ? "kmalloc objects" : name, x1, ty);
                    note.Alignment = x1 < 0.12 ? Alignment.UpperLeft : x1 > 0.88 ? Alignment.UpperRight : Alignment.UpperCenter;
                    note.LabelFontSize = 11;
                    note.LabelFontColor = color == Colors.Black ? Colors.Black : color.Darken(0.3);
                    var tick = plot.Add.Line(x1, ty, x1, y - Half);
                    tick.LineColor = Colors.Gray;
                    tick.LineWidth = 1;
                }
            }
            var title = plot.Add.Text($"{s.Name}: {s.Note}", 0, y + Half + 0.1);
            title.Alignment = Alignment.LowerLeft;
            title.LabelFontSize = 15;
            title.LabelBold = true;
            var left = plot.Add.Text($"0x{s.Start:x16}", 0, y - Half - 0.1);
            left.Alignment = Alignment.UpperLeft;
            left.LabelFontSize = 12;
            var right = plot.Add.Text($"0x{s.End - 1:x16}", 1, y - Half - 0.1);
            right.Alignment = Alignment.UpperRight;
            right.LabelFontSize = 12;
            var length = plot.Add.Text($"row length {Size((ulong)span)}", 0.5, y - Half - 0.1);
            length.Alignment = Alignment.UpperCenter;
            length.LabelFontSize = 12;
        }
        plot.HideAxesAndGrid();
        plot.Axes.SetLimits(-0.01, 1.01, -(map.Segments.Count - 1) * RowPitch - 1.4, 1.2);
        plot.Title($"Kernel virtual address space ({MachineText(map)}), one row per segment, each row to its own scale");
        foreach (var (label, color) in legend)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = label, FillColor = color, OutlineColor = Colors.Black, OutlineWidth = 0.5f });
        plot.ShowLegend(Edge.Bottom);
        return plot;
    }

    /// <summary>A short name for a region drawn in the picture.</summary>
    private static string Describe(MapRegion r) => r.Kind switch
    {
        "direct-map" => $"direct map {r.PageSize} pages",
        "ioremap" => $"{r.Caller}: ioremap{(r.MemoryType == "WC" ? "_wc" : "")} 0x{r.PhysAddr:x} ({r.MemoryType}) {Size(r.End - r.Start)}",
        "vmalloc" or "vmap" => $"{r.Caller} {Size(r.End - r.Start)}",
        "kernel-text" => "kernel text",
        "kernel-data" => "kernel data",
        _ => r.Kind,
    };
}
