using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace HwMemModel.Cli.Plots;

/// <summary>
/// The plotting commands, drawn with ScottPlot: <c>hwmem tlb-sweep</c> (TLB miss rate and page-walk references against
/// the TLB size, per page size) and <c>hwmem map</c> (the kernel model's virtual address space). The picture's format
/// follows the extension of <c>--out</c> (.png or .svg).
/// </summary>
public static class PlotCommands
{
    /// <summary>Exit status when the picture cannot be written (EX_CANTCREAT); the message names the file and the reason.</summary>
    public const int ExitCannotWrite = 73;

    /// <summary>JSON output: readable text (no escaping of '+', '&lt;', '&gt;' or non-ASCII), one line.</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Adds <c>tlb-sweep</c> and <c>map</c> to <paramref name="root"/>.</summary>
    /// <param name="root">The root command.</param>
    /// <param name="stdout">Standard output: the table or listing, or the JSON.</param>
    /// <param name="stderr">Standard error: one-line errors.</param>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        TlbSweepCommand.Add(root, stdout, stderr);
        MapCommand.Add(root, stdout, stderr);
    }
}
