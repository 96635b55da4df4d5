using System.Text;
using HwMemModel.Bus;
using HwMemModel.Cpu;
using HwMemModel.Mmu;

namespace HwMemModel.Cli.Gdb;

/// <summary>
/// The present mappings of the current CR3 in the style of Linux's ptdump (/sys/kernel/debug/page_tables): one line per
/// run of pages with the same effective rights, the same leaf level and contiguous physical addresses, with the
/// range, its size, the flags (USR, RW/ro, PWT, PCD, PSE, PAT, GLB, NX/x), the leaf level and the physical start. The
/// tables are read from RAM with debugger bus accesses: no TLB fill, no Accessed/Dirty update. USR and RW are the
/// combined rights of all levels, NX is set when any level sets XD; the other flags are the leaf's.
/// </summary>
internal static class GdbPageTableDump
{
    private const ulong P = 1, RW = 2, US = 4, PWT = 8, PCD = 0x10, PS = 0x80, G = 0x100, PatSmall = 0x80, PatLarge = 0x1000;
    private const ulong XD = 1UL << 63;

    /// <summary>At most this many lines; the rest is counted.</summary>
    public const int MaxLines = 2000;
    /// <summary>At most this many paging-structure entries are read (recursive or shared tables can multiply them).</summary>
    public const long MaxEntries = 1L << 22;

    private sealed class Run
    {
        public ulong Start, End, Pa, Flags;
        public int Level;
        public bool Open;
        public long Lines, Skipped, Pages4K;
    }

    /// <summary>The dump for <paramref name="cpu"/>'s current paging state.</summary>
    public static string Format(X86Cpu cpu)
    {
        var ctx = cpu.Context;
        if (!ctx.PagingEnabled) return "paging is off (CR0.PG=0): linear addresses are physical addresses\n";
        if (!ctx.LongModeActive) return "CR0.PG=1 without IA-32e mode: 32-bit and PAE paging are not modelled\n";
        var sb = new StringBuilder();
        int levels = ctx.FiveLevel ? 5 : 4;
        int width = levels == 5 ? 57 : 48;
        sb.Append($"CR3=0x{ctx.Cr3Value:x} ({levels}-level paging), present mappings:\n");
        var attrs = new BusAttributes(RequesterKind.Debugger, ctx.Id);
        var run = new Run();
        ulong addrMask = ctx.AddressMask;
        long entries = 0;

        void Flush()
        {
            if (!run.Open) return;
            run.Open = false;
            if (run.Lines++ >= MaxLines) { run.Skipped++; return; }
            ulong size = run.End - run.Start;
            sb.Append($"0x{run.Start:x16}-0x{run.End:x16} {SizeText(size),9} {FlagText(run.Flags, run.Level)} pa 0x{run.Pa:x}\n");
        }

        void Leaf(ulong va, ulong size, ulong pa, ulong flags, int level)
        {
            run.Pages4K += (long)(size >> 12);
            if (run.Open && run.End == va && run.Flags == flags && run.Level == level && run.Pa + (run.End - run.Start) == pa)
            {
                run.End = va + size;
                return;
            }
            Flush();
            run.Open = true;
            run.Start = va;
            run.End = va + size;
            run.Pa = pa;
            run.Flags = flags;
            run.Level = level;
        }

        void Table(ulong tablePa, int level, ulong baseVa, ulong rights)
        {
            int shift = 12 + 9 * (level - 1);
            for (int i = 0; i < 512 && entries < MaxEntries; i++)
            {
                entries++;
                if (cpu.Context.Bus.Read(tablePa + (ulong)i * 8, 8, out ulong e, attrs) != BusStatus.Ok || (e & P) == 0) continue;
                ulong va = baseVa + ((ulong)i << shift);
                if (level == levels) va = (ulong)((long)(va << (64 - width)) >> (64 - width)); // canonical
                ulong eff = level == levels ? (e & (RW | US)) | (e & XD) : (rights & e & (RW | US)) | ((rights | e) & XD);
                bool leaf = level == 1 || (level <= 3 && (e & PS) != 0);
                if (!leaf)
                {
                    Table(e & addrMask, level - 1, va, eff);
                    continue;
                }
                ulong size = 1UL << shift;
                ulong pa = e & addrMask & ~(size - 1);
                ulong pat = level == 1 ? e & PatSmall : e & PatLarge;
                ulong flags = eff | (e & (PWT | PCD | G)) | (level > 1 ? PS : 0) | (pat != 0 ? PatLarge : 0);
                Leaf(va, size, pa, flags, level);
            }
        }

        Table(ctx.TopLevelTable, levels, 0, 0);
        Flush();
        if (entries >= MaxEntries) sb.Append($"... stopped after reading {MaxEntries} entries\n");
        if (run.Skipped > 0) sb.Append($"... {run.Skipped} more lines not shown\n");
        if (run.Lines == 0) sb.Append("(no present mappings)\n");
        sb.Append($"{run.Pages4K * 4} KiB mapped\n");
        return sb.ToString();
    }

    private static string SizeText(ulong size)
    {
        const string units = "BKMGTPE";
        int unit = 0;
        while (size != 0 && (size & 1023) == 0 && unit < units.Length - 1) { size >>= 10; unit++; }
        return $"{size}{units[unit]}";
    }

    private static string FlagText(ulong f, int level)
    {
        var sb = new StringBuilder();
        sb.Append((f & US) != 0 ? "USR " : "    ");
        sb.Append((f & RW) != 0 ? "RW " : "ro ");
        sb.Append((f & PWT) != 0 ? "PWT " : "    ");
        sb.Append((f & PCD) != 0 ? "PCD " : "    ");
        sb.Append((f & PS) != 0 ? "PSE " : "    ");
        sb.Append((f & PatLarge) != 0 ? "PAT " : "    ");
        sb.Append((f & G) != 0 ? "GLB " : "    ");
        sb.Append((f & XD) != 0 ? "NX " : "x  ");
        sb.Append(level switch { 1 => "pte", 2 => "pmd", _ => "pud" });
        return sb.ToString();
    }
}
