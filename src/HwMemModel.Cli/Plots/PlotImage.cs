using ScottPlot;
using SkiaSharp;

namespace HwMemModel.Cli.Plots;

/// <summary>The picture formats the plotting commands write, chosen by the file extension.</summary>
internal enum PlotFormat
{
    /// <summary>PNG raster image.</summary>
    Png,
    /// <summary>SVG vector image.</summary>
    Svg,
}

/// <summary>Writing ScottPlot figures as PNG or SVG.</summary>
internal static class PlotImage
{
    /// <summary>The format <paramref name="path"/>'s extension names (case-insensitive), or null for any other.</summary>
    public static PlotFormat? FormatOf(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".png" => PlotFormat.Png,
        ".svg" => PlotFormat.Svg,
        _ => null,
    };

    /// <summary>Writes <paramref name="plot"/> to <paramref name="path"/>.</summary>
    public static void Save(Plot plot, string path, PlotFormat format, int width, int height)
    {
        if (format == PlotFormat.Png) plot.SavePng(path, width, height);
        else plot.SaveSvg(path, width, height);
    }

    /// <summary>Writes the subplots of <paramref name="multiplot"/> to <paramref name="path"/>.</summary>
    public static void Save(Multiplot multiplot, string path, PlotFormat format, int width, int height)
    {
        if (format == PlotFormat.Png)
        {
            multiplot.SavePng(path, width, height);
            return;
        }
        using var stream = File.Create(path);
        using (var canvas = SKSvgCanvas.Create(new SKRect(0, 0, width, height), stream))
        {
            canvas.Clear(SKColors.White);
            multiplot.Render(canvas, new PixelRect(0, width, height, 0));
        }
    }

    /// <summary>Runs <paramref name="write"/>; on an I/O error prints one line to <paramref name="stderr"/> and returns false.</summary>
    public static bool TryWrite(Action write, string command, string path, TextWriter stderr)
    {
        try
        {
            write();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"hwmem {command}: cannot write {path}: {OneLine(e.Message)}");
            return false;
        }
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
