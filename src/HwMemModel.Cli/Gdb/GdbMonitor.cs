using System.Text;
using HwMemModel.Cpu;
using HwMemModel.Mmu;

namespace HwMemModel.Cli.Gdb;

/// <summary>
/// The stub's <c>monitor</c> commands (GDB's <c>qRcmd</c>): the MMU's view of the stopped processor.
/// <c>walk VA [read|write|fetch] [user|supervisor]</c>, <c>ptdump</c> (alias <c>info mem</c>), <c>tlb</c> (alias
/// <c>info tlb</c>) and <c>help</c>. Nothing here changes guest state: walks and dumps read the page tables as a
/// debugger.
/// </summary>
internal static class GdbMonitor
{
    /// <summary>The help text.</summary>
    public const string Help =
        "hwmem monitor commands:\n"
        + "  walk VA [read|write|fetch] [user|supervisor]  explain the page walk of VA for the current CR3 (default: read at the current CPL)\n"
        + "  ptdump                                        present mappings of the current CR3, Linux ptdump style (alias: info mem)\n"
        + "  tlb                                           TLB contents and counters of this CPU's MMU (alias: info tlb)\n"
        + "  help                                          this text\n";

    /// <summary>Runs <paramref name="command"/>; returns its output (an error message for a bad command, never throws for input).</summary>
    public static string Execute(X86Cpu cpu, string command)
    {
        var words = command.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0) return Help;
        string verb = words[0].ToLowerInvariant();
        if (verb == "info" && words.Length == 2)
        {
            switch (words[1].ToLowerInvariant())
            {
                case "tlb": return Tlb(cpu);
                case "mem": return GdbPageTableDump.Format(cpu);
            }
        }
        return verb switch
        {
            "walk" => Walk(cpu, words),
            "ptdump" when words.Length == 1 => GdbPageTableDump.Format(cpu),
            "tlb" when words.Length == 1 => Tlb(cpu),
            "help" or "?" => Help,
            _ => $"unknown monitor command '{command.Trim()}'\n" + Help,
        };
    }

    private static string Walk(X86Cpu cpu, string[] words)
    {
        const string usage = "usage: walk VA [read|write|fetch] [user|supervisor]\n";
        if (words.Length < 2 || !HwmemCommand.TryParseAddress(words[1], out ulong va))
            return (words.Length < 2 ? "walk: give a virtual address\n" : $"walk: '{words[1]}' is not an address; give a hex (0x...) or decimal number below 2^64\n") + usage;
        var kind = AccessKind.Read;
        var privilege = cpu.Context.CurrentPrivilege;
        foreach (var w in words.Skip(2))
        {
            switch (w.ToLowerInvariant())
            {
                case "read": kind = AccessKind.Read; break;
                case "write": kind = AccessKind.Write; break;
                case "fetch" or "exec" or "execute": kind = AccessKind.Execute; break;
                case "user": privilege = Privilege.User; break;
                case "supervisor" or "kernel": privilege = Privilege.Supervisor; break;
                default: return $"walk: unknown word '{w}'\n" + usage;
            }
        }
        return cpu.Context.Mmu.Explain(va, kind, privilege).ToString();
    }

    private static string Tlb(X86Cpu cpu)
    {
        var sb = new StringBuilder();
        var entries = cpu.DebugTlbContents();
        sb.Append($"TLB contents of CPU {cpu.Context.Id} ({entries.Count} valid entries; current PCID {cpu.Context.CurrentPcid}):\n");
        if (entries.Count > 0)
            sb.Append("level array            linear address      physical address    size  pcid  flags\n");
        foreach (var e in entries.OrderBy(e => e.Level).ThenBy(e => e.LinearAddress))
        {
            string size = e.Size == e.TranslationSize ? e.Size.Label() : $"{e.Size.Label()}/{e.TranslationSize.Label()}";
            string flags = $"{(e.User ? "USR" : "   ")} {(e.Writable ? "RW" : "ro")} {(e.NoExecute ? "NX" : "x ")} {(e.Global ? "GLB" : "   ")} {(e.Dirty ? "D" : " ")} {e.MemoryType.ShortName()}";
            sb.Append($"{e.Level,-5} {e.Array,-16} 0x{e.LinearAddress:x16}  0x{e.PhysicalAddress:x16}  {size,-5} {e.Pcid,4}  {flags}\n");
        }
        sb.Append('\n').Append(Report.Counters(cpu.Context.Mmu));
        return sb.ToString();
    }
}
