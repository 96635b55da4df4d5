using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// A machine for TLB tests: 2 GiB of sparse RAM, page tables built in RAM, a CPU in IA-32e mode. Every data frame
/// handed out carries a distinct marker in its first qword, so a read through a linear address tells which frame
/// the processor used; tests then rewrite paging-structure entries in RAM (host writes, no flush) and observe
/// whether a cached translation or a fresh walk was used.
/// </summary>
internal sealed class TlbRig
{
    public const ulong RamSize = 0x8000_0000;
    public const ulong PoolBase = 0x100_0000;
    public const ulong PoolSize = 0x100_0000;
    public const ulong Frames4K = 0x400_0000;   // 4 KiB frames from 64 MiB
    public const ulong Frames2M = 0x1000_0000;  // 2 MiB frames from 256 MiB
    public const ulong Frame1G = 0x4000_0000;   // the one 1 GiB frame: 1 GiB..2 GiB
    public const ulong MarkerTag = 0x5A5A_0000_0000_0000UL;
    public const PteFlags RW = PteFlags.Writable;
    public const ulong A = 1UL << 5, D = 1UL << 6;

    private int _next4K, _next2M;

    public TlbRig(TlbGeometry? geometry = null, ulong extraCr4 = Cr4.PGE, bool pcide = false, bool fiveLevel = false, int cpuId = 0)
    {
        Bus = new PhysicalBus();
        Bus.AddRam("ram", 0, RamSize);
        Tables = new PageTableBuilder(Bus, PoolBase, PoolSize, fiveLevel);
        Cpu = new CpuContext(Bus, cpuId, null, geometry);
        Cpu.EnterLongMode(Tables.Root, fiveLevel, extraCr4 | (pcide ? Cr4.PCIDE : 0));
    }

    public PhysicalBus Bus { get; }
    public PageTableBuilder Tables { get; }
    public CpuContext Cpu { get; }
    public Mmu Mmu => Cpu.Mmu;

    /// <summary>The marker stored at the start of the frame at <paramref name="pa"/>.</summary>
    public static ulong Marker(ulong pa) => MarkerTag | pa;

    /// <summary>A fresh 4 KiB frame whose first qword holds its marker.</summary>
    public ulong NewFrame4K()
    {
        ulong pa = Frames4K + (ulong)_next4K++ * 0x1000;
        Poke(pa, Marker(pa));
        return pa;
    }

    /// <summary>A fresh 2 MiB frame; the first qword of each of its 4 KiB pieces holds that piece's marker.</summary>
    public ulong NewFrame2M()
    {
        ulong pa = Frames2M + (ulong)_next2M++ * 0x20_0000;
        for (ulong off = 0; off < 0x20_0000; off += 0x1000) Poke(pa + off, Marker(pa + off));
        return pa;
    }

    /// <summary>Maps a 4 KiB page to a fresh frame and returns the frame.</summary>
    public ulong Map4K(ulong va, PteFlags flags = RW)
    {
        ulong pa = NewFrame4K();
        Tables.Map(va, pa, PageSize.Size4K, flags);
        return pa;
    }

    /// <summary>Maps a 2 MiB page to a fresh frame and returns the frame.</summary>
    public ulong Map2M(ulong va, PteFlags flags = RW)
    {
        ulong pa = NewFrame2M();
        Tables.Map(va, pa, PageSize.Size2M, flags);
        return pa;
    }

    /// <summary>Maps the 1 GiB page at <paramref name="va"/> to <see cref="Frame1G"/>; markers are written on demand with <see cref="Poke"/>.</summary>
    public ulong Map1G(ulong va, PteFlags flags = RW)
    {
        Tables.Map(va, Frame1G, PageSize.Size1G, flags);
        return Frame1G;
    }

    /// <summary>Host write of a qword to physical memory.</summary>
    public void Poke(ulong pa, ulong value) => Bus.Write(pa, 8, value, BusAttributes.Host);

    /// <summary>Host read of a qword of physical memory.</summary>
    public ulong Peek(ulong pa)
    {
        Bus.Read(pa, 8, out ulong v, BusAttributes.Host);
        return v;
    }

    /// <summary>The entry at <paramref name="level"/> on the path of <paramref name="va"/>.</summary>
    public ulong Entry(ulong va, int level) => Tables.ReadEntry(va, level);

    /// <summary>Rewrites the entry at <paramref name="level"/> in RAM, as software would with a plain store: no invalidation.</summary>
    public void SetEntry(ulong va, int level, ulong raw) => Tables.WriteEntry(va, level, raw);

    /// <summary>Points the leaf at <paramref name="level"/> for <paramref name="va"/> at <paramref name="pa"/>, keeping all flag bits; no invalidation.</summary>
    public void Retarget(ulong va, int level, ulong pa)
    {
        ulong raw = Entry(va, level);
        SetEntry(va, level, (raw & ~0x000F_FFFF_FFFF_F000UL) | pa);
    }

    /// <summary>A supervisor qword read that must succeed; returns the value.</summary>
    public ulong Read(ulong va, AccessKind kind = AccessKind.Read, Privilege privilege = Privilege.Supervisor)
    {
        var r = Mmu.Read(va, 8, privilege, out ulong v, kind);
        Assert.That(r.Ok, Is.True, $"{kind} of 0x{va:x} should succeed: {r}");
        return v;
    }

    /// <summary>Loads CR3 with the root table, <paramref name="pcid"/> and, with <paramref name="noFlush"/>, bit 63.</summary>
    public void LoadCr3(ushort pcid, bool noFlush = false)
    {
        var f = Cpu.WriteCr3(Tables.Root | pcid | (noFlush ? Cr3.NoFlush : 0));
        Assert.That(f.IsFault, Is.False, $"MOV to CR3 should succeed: {f}");
    }

    /// <summary>Valid entries in every TLB array of the three levels.</summary>
    public int TlbEntries => new[] { Mmu.InstructionTlb, Mmu.DataTlb, Mmu.UnifiedTlb }.Sum(l => l.Arrays.Sum(a => a.ValidEntries));

    /// <summary>Valid entries in all paging-structure caches.</summary>
    public int PscEntries => Mmu.PagingStructureCaches.Sum(c => c.ValidEntries);

    /// <summary>Paging-structure entries read by the walk(s) that <paramref name="action"/> causes.</summary>
    public long WalkReadsOf(Action action)
    {
        long before = Mmu.Counters.WalkReads;
        action();
        return Mmu.Counters.WalkReads - before;
    }

    /// <summary>Page walks that <paramref name="action"/> causes.</summary>
    public long WalksOf(Action action)
    {
        long before = Mmu.Counters.Walks;
        action();
        return Mmu.Counters.Walks - before;
    }
}
