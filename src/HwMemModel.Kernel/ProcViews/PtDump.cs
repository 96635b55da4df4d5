using System.Text;

namespace HwMemModel.Kernel;

/// <summary>
/// A dump of the kernel page tables in the format of /sys/kernel/debug/page_tables/kernel (arch/x86/mm/dump_pagetables.c):
/// runs of entries with equal protection and level merged into one line, address-space markers, and the W+X check.
/// The walk reads the tables from RAM through the current CPU's MMU, as the kernel does.
/// </summary>
public static class PtDump
{
    private const ulong PRESENT = 1, RW = 2, USER = 4, PWT = 8, PCD = 0x10, PSE = 0x80, GLOBAL = 0x100, PAT = 0x80, PAT_LARGE = 0x1000;
    private const ulong NX = 1UL << 63;
    private const ulong FlagsMask = 0xFFF0_0000_0000_0FFFUL; // pte_flags: all but the address bits

    private sealed class State
    {
        public int Level;
        public ulong Prot, Eff, Start, Current;
        public int Marker;
        public long Lines, WxPages;
        public ulong FirstWx = ulong.MaxValue;
        public bool Started;
    }

    /// <summary>The markers of the layout, sorted by address.</summary>
    public static IReadOnlyList<(ulong Start, string Name, int MaxLines)> Markers(Kernel kernel)
    {
        bool five = kernel.Layout.FiveLevel;
        return
        [
            (0, "User Space", 0),
            (1UL << 63, "Kernel Space", 0),
            (five ? 0xff10_0000_0000_0000UL : 0xffff_8800_0000_0000UL, "LDT remap", 0),
            (kernel.Layout.PageOffset, "Low Kernel Mapping", 0),
            (kernel.Layout.VmallocStart, "vmalloc() Area", 0),
            (kernel.Layout.VmemmapStart, "Vmemmap", 0),
            (0xffff_fe00_0000_0000UL, "CPU entry Area", 0),
            (0xffff_ff00_0000_0000UL, "ESPfix Area", 16),
            (0xffff_ffef_0000_0000UL, "EFI Runtime Services", 0),
            (KernelLayout.StartKernelMap, "High Kernel Mapping", 0),
            (KernelLayout.ModulesStart, "Modules", 0),
            (0xffff_ffff_ff00_0000UL, "End Modules", 0),
            (0xffff_ffff_ff57_8000UL, "Fixmap Area", 0),
            (ulong.MaxValue, "", 0),
        ];
    }

    /// <summary>The dump, as reading /sys/kernel/debug/page_tables/kernel prints it.</summary>
    public static string Format(Kernel kernel) => Walk(kernel, checkWx: false).Text;

    /// <summary>
    /// ptdump_walk_pgd_level_checkwx: the W+X check. Logs "x86/mm: Found insecure W+X mapping at address ..." once for
    /// the first such run and the verdict line; returns the number of W+X pages.
    /// </summary>
    public static long CheckWx(Kernel kernel)
    {
        var (_, wx, first) = Walk(kernel, checkWx: true);
        if (wx > 0)
        {
            kernel.Log.Warn($"x86/mm: Found insecure W+X mapping at address 0x{first:x16}", "arch/x86/mm/dump_pagetables.c:note_page");
            kernel.Log.Print($"x86/mm: Checked W+X mappings: FAILED, {wx} W+X pages found.");
        }
        else kernel.Log.Print("x86/mm: Checked W+X mappings: passed, no W+X pages found.");
        return wx;
    }

    private static (string Text, long WxPages, ulong FirstWx) Walk(Kernel kernel, bool checkWx)
    {
        var sb = new StringBuilder();
        var markers = Markers(kernel);
        var st = new State();
        var pt = kernel.PageTables;
        bool five = pt.Levels == 5;
        int width = five ? 57 : 48;
        ulong Normalize(ulong u) => (ulong)((long)(u << (64 - width)) >> (64 - width));
        // Level numbers as the kernel prints them: 1 pgd, 2 p4d, 3 pud, 4 pmd, 5 pte.
        void Table(ulong tablePa, int hwLevel, ulong effIn, ulong baseVa)
        {
            int dumpLevel = 5 - (hwLevel - 1);
            if (!five && hwLevel == 4) dumpLevel = 1;
            ulong span = 1UL << (12 + 9 * (hwLevel - 1));
            for (int i = 0; i < 512; i++)
            {
                ulong va = baseVa + (ulong)i * span;
                st.Current = Normalize(va);
                bool hole = hwLevel == pt.Levels && i >= 256 && i < 272; // the hypervisor guard hole
                ulong e = hole ? 0 : pt.ReadEntry(tablePa + (ulong)i * 8);
                if (e == 0) { Note(0, 0, dumpLevel); continue; }
                ulong prot = e & FlagsMask;
                ulong eff = hwLevel == pt.Levels ? prot : Effective(effIn, prot);
                bool leaf = hwLevel == 1 || (hwLevel <= 3 && (e & PSE) != 0) || (e & PRESENT) == 0;
                if (leaf) Note(prot, eff, dumpLevel);
                else Table(e & 0x000F_FFFF_FFFF_F000UL, hwLevel - 1, eff, va);
            }
        }
        void Note(ulong prot, ulong eff, int level)
        {
            if (!st.Started)
            {
                st.Started = true;
                st.Prot = prot; st.Eff = eff; st.Level = level; st.Marker = 0; st.Lines = 0; st.Start = 0;
                sb.Append("---[ ").Append(markers[0].Name).Append(" ]---\n");
                return;
            }
            if (prot == st.Prot && eff == st.Eff && level == st.Level && st.Current < markers[st.Marker + 1].Start) return;
            if (checkWx && (st.Eff & RW) != 0 && (st.Eff & NX) == 0 && (st.Prot & PRESENT) != 0)
            {
                if (st.FirstWx == ulong.MaxValue) st.FirstWx = st.Start;
                st.WxPages += (long)((st.Current - st.Start) / 4096);
            }
            var m = markers[st.Marker];
            if (m.MaxLines == 0 || st.Lines < m.MaxLines) Line(sb, st);
            st.Lines++;
            if (st.Current >= markers[st.Marker + 1].Start)
            {
                if (m.MaxLines != 0 && st.Lines > m.MaxLines)
                {
                    long skip = st.Lines - m.MaxLines;
                    sb.Append($"... {skip} entr{(skip == 1 ? "y" : "ies")} skipped ... \n");
                }
                st.Marker++;
                st.Lines = 0;
                sb.Append("---[ ").Append(markers[st.Marker].Name).Append(" ]---\n");
            }
            st.Start = st.Current; st.Prot = prot; st.Eff = eff; st.Level = level;
        }
        Table(pt.Pgd, pt.Levels, 0, 0);
        st.Current = 0; // past the end of the address space (wraps to 0 after the last entry)
        FlushLast(sb, st, checkWx);
        return (sb.ToString(), st.WxPages, st.FirstWx);
    }

    private static void FlushLast(StringBuilder sb, State st, bool checkWx)
    {
        // note_page(.., level 0) at PTRS_PER_PGD*PGD_LEVEL_MULT: the final run ends at the top of the address space.
        if (checkWx && (st.Eff & RW) != 0 && (st.Eff & NX) == 0 && (st.Prot & PRESENT) != 0)
        {
            if (st.FirstWx == ulong.MaxValue) st.FirstWx = st.Start;
            st.WxPages += (long)((0 - st.Start) / 4096);
        }
        st.Current = 0;
        Line(sb, st);
    }

    private static void Line(StringBuilder sb, State st)
    {
        ulong delta = st.Current - st.Start; // wraps for the run ending at 2^64
        const string units = "BKMGTPE";
        int unit = 0;
        while ((delta & 1023) == 0 && unit < units.Length - 1 && delta != 0) { delta >>= 10; unit++; }
        sb.Append($"0x{st.Start:x16}-0x{st.Current:x16}   {delta,9}{units[unit]} ");
        sb.Append(Prot(st.Prot, st.Level));
    }

    private static ulong Effective(ulong a, ulong b) => (a & b & (USER | RW)) | ((a | b) & NX);

    private static string Prot(ulong pr, int level)
    {
        string[] names = ["cr3", "pgd", "p4d", "pud", "pmd", "pte"];
        if ((pr & PRESENT) == 0) return new string(' ', 30) + names[level] + "\n";
        var sb = new StringBuilder();
        sb.Append((pr & USER) != 0 ? "USR " : "    ");
        sb.Append((pr & RW) != 0 ? "RW " : "ro ");
        sb.Append((pr & PWT) != 0 ? "PWT " : "    ");
        sb.Append((pr & PCD) != 0 ? "PCD " : "    ");
        sb.Append(level <= 4 && (pr & PSE) != 0 ? "PSE " : "    ");
        sb.Append((level == 5 && (pr & PAT) != 0) || ((level == 4 || level == 3) && (pr & PAT_LARGE) != 0) ? "PAT " : "    ");
        sb.Append((pr & GLOBAL) != 0 ? "GLB " : "    ");
        sb.Append((pr & NX) != 0 ? "NX " : "x  ");
        sb.Append(names[level]).Append('\n');
        return sb.ToString();
    }
}
