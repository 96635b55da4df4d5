using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>
/// Address spaces: mm_struct and its page tables (a PGD whose kernel half is the kernel's, tables below allocated on
/// demand as pte_alloc does), VMAs in the vm_area_struct cache, page map counts, and switch_mm with Linux's per-CPU
/// ASID slots so that each address space runs under its own PCID and CR3 is written with the no-flush bit when the
/// slot's TLB contents are still valid.
/// </summary>
public sealed partial class Kernel
{
    /// <summary>TLB_NR_DYN_ASIDS: address spaces each CPU keeps PCIDs for.</summary>
    public const int TlbNrDynAsids = 6;
    /// <summary>TASK_SIZE for 4-level paging (and DEFAULT_MAP_WINDOW with 5-level): the end of user space.</summary>
    public const ulong TaskSize = 0x7FFF_FFFF_F000UL;
    /// <summary>STACK_TOP with address-space randomisation off.</summary>
    public const ulong StackTop = TaskSize;
    /// <summary>vm.mmap_min_addr.</summary>
    public const ulong MmapMinAddr = 0x10000;
    /// <summary>stack_guard_gap: 256 pages kept free below a stack.</summary>
    public const ulong StackGuardGap = 256UL << 12;
    /// <summary>RLIMIT_STACK: 8 MiB.</summary>
    public const ulong StackRlimit = 8UL << 20;

    internal const ulong PteAddr = 0x000F_FFFF_FFFF_F000UL;
    internal const ulong PtePresent = 1, PteRw = 2, PteUser = 4, PteAccessed = 0x20, PteDirty = 0x40, PteProtNone = 0x100;
    internal const ulong PteNx = 1UL << 63;
    private const ulong PageMask = 0xFFF;

    /// <summary>Address spaces alive.</summary>
    public int MmCount { get; private set; }

    // ------------------------------------------------------------------ mm_struct

    internal MmStruct MmAlloc()
    {
        var u = User;
        ulong obj = KmemCacheAlloc(u.MmCache, Gfp.Kernel, "mm_alloc");
        if (obj == 0) throw new OutOfMemoryInKernel();
        ulong? pgd = Pages.AllocPages(Gfp.Kernel | Gfp.Zero, 0, PageAllocator.NumaNoNode, "pgd_alloc");
        if (pgd is null) { KmemCacheFree(u.MmCache, obj, "mm_alloc"); throw new OutOfMemoryInKernel(); }
        // pgd_ctor: the kernel half of the PGD is a copy of the kernel's (its entries never change after boot).
        Span<byte> half = stackalloc byte[2048];
        Memory.ReadBytes(PhysToVirt(PageTables.Pgd) + 2048, half);
        Memory.WriteBytes(PhysToVirt(pgd.Value) + 2048, half);
        var mm = new MmStruct(pgd.Value, u.NextContextId++) { SlabObject = obj, MmapBase = TaskSize - (128UL << 20) };
        Memory.Write(obj, 8, pgd.Value); // mm->pgd (the physical address here)
        MmCount++;
        return mm;
    }

    /// <summary>mmput → exit_mmap: unmaps every VMA, frees the page tables, the PGD and the mm_struct.</summary>
    internal void MmFree(MmStruct mm)
    {
        var u = User;
        for (int i = 0; i < u.LoadedMm.Length; i++)
            if (u.LoadedMm[i] == mm) SwitchMm(null, i);
        foreach (var v in mm.Vmas.ToArray()) UnmapVma(mm, v, flush: false);
        mm.Vmas.Clear();
        FreeTables(mm, 0, TaskSize);
        Pages.FreePages(mm.Pgd, 0, "pgd_free");
        KmemCacheFree(u.MmCache, mm.SlabObject, "mmput");
        for (int c = 0; c < u.Asids.GetLength(0); c++)
            for (int s = 0; s < TlbNrDynAsids; s++)
                if (u.Asids[c, s].CtxId == mm.ContextId) u.Asids[c, s] = default;
        MmCount--;
    }

    // ------------------------------------------------------------------ page tables of an mm

    internal ulong ReadPhys(ulong pa) => Memory.Read(PhysToVirt(pa), 8);
    internal void WritePhys(ulong pa, ulong v) => Memory.Write(PhysToVirt(pa), 8, v);

    /// <summary>The physical address of the PTE for <paramref name="va"/>, allocating tables when asked; 0 when absent.</summary>
    internal ulong UserPte(MmStruct mm, ulong va, bool allocate)
    {
        ulong table = mm.Pgd;
        for (int l = PageTables.Levels; l > 1; l--)
        {
            ulong at = table + ((va >> PageGeometry.LevelShift(l)) & 511) * 8;
            ulong e = ReadPhys(at);
            if ((e & PtePresent) == 0)
            {
                if (!allocate) return 0;
                ulong? t = Pages.AllocPages(Gfp.Kernel | Gfp.Zero, 0, PageAllocator.NumaNoNode, "__pte_alloc");
                if (t is null) return 0;
                mm.PageTablePages++;
                // _PAGE_TABLE: P|RW|US|A|D, so that the leaf decides the rights.
                e = t.Value | PtePresent | PteRw | PteUser | PteAccessed | PteDirty;
                WritePhys(at, e);
            }
            table = e & PteAddr;
        }
        return table + ((va >> 12) & 511) * 8;
    }

    /// <summary>
    /// The physical address of the PTE for <paramref name="va"/>, or 0 with <paramref name="next"/> set to the first
    /// address past the absent table at the highest level where the walk stops (so a sparse range is skipped a PML4,
    /// PDPT or page-directory entry at a time, not 2 MiB at a time).
    /// </summary>
    internal ulong UserPteOrNext(MmStruct mm, ulong va, out ulong next)
    {
        ulong table = mm.Pgd;
        for (int l = PageTables.Levels; l > 1; l--)
        {
            ulong e = ReadPhys(table + ((va >> PageGeometry.LevelShift(l)) & 511) * 8);
            if ((e & PtePresent) == 0)
            {
                ulong span = 1UL << PageGeometry.LevelShift(l);
                next = (va & ~(span - 1)) + span;
                if (next < va) next = ulong.MaxValue; // the end of the address space
                return 0;
            }
            table = e & PteAddr;
        }
        next = va + 4096;
        return table + ((va >> 12) & 511) * 8;
    }

    /// <summary>
    /// free_pgtables: frees the page-table pages under [<paramref name="lo"/>, <paramref name="hi"/>) below
    /// <paramref name="table"/> (a table at <paramref name="level"/> whose first entry maps <paramref name="baseVa"/>)
    /// that hold no entries — a table with no entries is used by no VMA. Only the user half of the PGD is visited.
    /// Returns true when <paramref name="table"/> itself is empty afterwards.
    /// </summary>
    private bool FreeTables(MmStruct mm, ulong table, int level, ulong baseVa, ulong lo, ulong hi)
    {
        int shift = PageGeometry.LevelShift(level);
        int first = (int)Math.Min(511UL, (Math.Max(lo, baseVa) - baseVa) >> shift);
        int last = (int)Math.Min(level == PageTables.Levels ? 255UL : 511UL, (Math.Max(hi, baseVa + 1) - 1 - baseVa) >> shift);
        for (int i = first; i <= last; i++)
        {
            ulong at = table + (ulong)i * 8;
            ulong e = ReadPhys(at);
            if (level > 1 && (e & PtePresent) != 0 && FreeTables(mm, e & PteAddr, level - 1, baseVa + ((ulong)i << shift), lo, hi))
            {
                WritePhys(at, 0);
                Pages.FreePages(e & PteAddr, 0, "free_pgtables");
                mm.PageTablePages--;
            }
        }
        if (level == PageTables.Levels) return false;
        Span<byte> all = stackalloc byte[4096];
        Memory.ReadBytes(PhysToVirt(table), all);
        return !all.ContainsAnyExcept((byte)0);
    }

    private void FreeTables(MmStruct mm, ulong lo, ulong hi) => FreeTables(mm, mm.Pgd, PageTables.Levels, 0, lo, hi);

    // ------------------------------------------------------------------ page map counts

    internal ulong? AllocUserPage(PageKind kind, bool zero, string caller)
    {
        ulong? pa = Pages.AllocPages(Gfp.Kernel | Gfp.HardWall | Gfp.HighMem | Gfp.Movable | (zero ? Gfp.Zero : Gfp.None), 0, PageAllocator.NumaNoNode, caller);
        if (pa is null) return null;
        var u = User;
        int pfn = (int)(pa.Value >> 12);
        u.MapCount[pfn] = 1;
        u.Kind[pfn] = kind;
        return pa;
    }

    internal void GetUserPage(ulong pa) { if (pa != User.ZeroPage) User.MapCount[pa >> 12]++; }

    internal void PutUserPage(ulong pa)
    {
        var u = User;
        if (pa == u.ZeroPage) return;
        int pfn = (int)(pa >> 12);
        if (--u.MapCount[pfn] > 0) return;
        u.Kind[pfn] = PageKind.None;
        Pages.FreePages(pa, 0, "free_unref_page");
    }

    /// <summary>How many PTEs map the page at <paramref name="pa"/> (page_mapcount); 0 for a page that is not a user page.</summary>
    public int PageMapCount(ulong pa) => _user is null || pa >> 12 >= (ulong)_user.MapCount.Length ? 0 : _user.MapCount[pa >> 12];

    /// <summary>The physical address of the shared zero page.</summary>
    public ulong ZeroPage => User.ZeroPage;

    private static void Account(MmStruct mm, PageKind kind, int delta)
    {
        switch (kind)
        {
            case PageKind.Anon: mm.RssAnon += delta; break;
            case PageKind.File: mm.RssFile += delta; break;
            case PageKind.Shmem: mm.RssShmem += delta; break;
        }
        long rss = mm.RssAnon + mm.RssFile + mm.RssShmem;
        if (rss > mm.HiwaterRss) mm.HiwaterRss = rss;
    }

    internal PageKind KindOf(ulong pa) => pa == User.ZeroPage ? PageKind.None : User.Kind[pa >> 12];

    /// <summary>Installs <paramref name="pa"/> through the entry at <paramref name="ptePa"/> (the caller holds a map count for it).</summary>
    internal void SetUserPte(MmStruct mm, ulong ptePa, ulong pa, ulong flags)
    {
        WritePhys(ptePa, pa | flags);
        Account(mm, KindOf(pa), +1);
    }

    /// <summary>Removes a PTE's page: drops its map count and RSS; no TLB flush.</summary>
    internal void ClearUserPte(MmStruct mm, ulong ptePa, ulong pte)
    {
        WritePhys(ptePa, 0);
        if ((pte & (PtePresent | PteProtNone)) == 0) return;
        ulong pa = pte & PteAddr;
        Account(mm, KindOf(pa), -1);
        PutUserPage(pa);
    }

    /// <summary>The PTE protection bits for VMA flags (vm_get_page_prot); writable only when <paramref name="writable"/>.</summary>
    internal static ulong PteProtection(VmaFlags flags, bool writable)
    {
        if ((flags & VmaFlags.AccessMask) == 0) return PteProtNone | PteAccessed;
        ulong p = PtePresent | PteUser | PteAccessed;
        if (writable) p |= PteRw;
        if ((flags & VmaFlags.Exec) == 0) p |= PteNx;
        return p;
    }

    // ------------------------------------------------------------------ VMAs

    /// <summary>find_vma: the first VMA that ends above <paramref name="addr"/>, or null.</summary>
    public static VmArea? FindVma(MmStruct mm, ulong addr)
    {
        var list = mm.Vmas;
        int lo = 0, hi = list.Count - 1;
        VmArea? found = null;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (list[mid].End > addr) { found = list[mid]; hi = mid - 1; }
            else lo = mid + 1;
        }
        return found;
    }

    internal VmArea NewVma(MmStruct mm, ulong start, ulong end, VmaFlags flags, SandboxFile? file = null, ulong pgoff = 0, string? name = null)
    {
        ulong obj = KmemCacheAlloc(User.VmCache, Gfp.Kernel, "vm_area_alloc");
        if (obj == 0) throw new OutOfMemoryInKernel();
        var v = new VmArea(start, end, flags) { File = file, PageOffset = pgoff, Name = name, SlabObject = obj };
        WriteVmaFields(v);
        int i = 0;
        while (i < mm.Vmas.Count && mm.Vmas[i].Start < start) i++;
        mm.Vmas.Insert(i, v);
        return v;
    }

    private void WriteVmaFields(VmArea v)
    {
        Memory.Write(v.SlabObject, 8, v.Start);
        Memory.Write(v.SlabObject + 8, 8, v.End);
        Memory.Write(v.SlabObject + 0x20, 8, (ulong)v.Flags);
    }

    private void FreeVma(MmStruct mm, VmArea v)
    {
        mm.Vmas.Remove(v);
        if (v.Shmem is { } s && --s.Users == 0)
            foreach (ulong pa in s.Pages.Values) PutUserPage(pa);
        KmemCacheFree(User.VmCache, v.SlabObject, "vm_area_free");
    }

    /// <summary>Splits <paramref name="v"/> at <paramref name="addr"/>; returns the new upper part.</summary>
    internal VmArea SplitVma(MmStruct mm, VmArea v, ulong addr)
    {
        var upper = NewVma(mm, addr, v.End, v.Flags, v.File, v.PageOffset + ((addr - v.Start) >> 12), v.Name);
        upper.Shmem = v.Shmem;
        if (v.Shmem is not null) v.Shmem.Users++;
        v.End = addr;
        WriteVmaFields(v);
        return upper;
    }

    private static bool CanMerge(VmArea a, VmArea b) =>
        a.End == b.Start && a.Flags == b.Flags && a.File == b.File && a.Shmem is null && b.Shmem is null && a.Name == b.Name
        && (a.File is null || a.PageOffset + (a.Size >> 12) == b.PageOffset);

    /// <summary>vma_merge: joins <paramref name="v"/> with its neighbours when they continue it exactly.</summary>
    internal VmArea MergeVma(MmStruct mm, VmArea v)
    {
        int i = mm.Vmas.IndexOf(v);
        if (i + 1 < mm.Vmas.Count && CanMerge(v, mm.Vmas[i + 1]))
        {
            var next = mm.Vmas[i + 1];
            v.End = next.End;
            FreeVma(mm, next);
            WriteVmaFields(v);
        }
        if (i > 0 && CanMerge(mm.Vmas[i - 1], v))
        {
            var prev = mm.Vmas[i - 1];
            prev.End = v.End;
            FreeVma(mm, v);
            WriteVmaFields(prev);
            return prev;
        }
        return v;
    }

    /// <summary>Unmaps the pages of [start, end) (zap_page_range), a page table at a time, and flushes them from the TLB.</summary>
    internal void ZapRange(MmStruct mm, ulong start, ulong end, bool flush = true)
    {
        Span<byte> table = stackalloc byte[4096];
        for (ulong va = start; va < end;)
        {
            ulong chunkEnd = Math.Min(end, (va + (1UL << 21)) & ~((1UL << 21) - 1));
            ulong pte = UserPteOrNext(mm, va, out ulong skip);
            if (pte == 0) chunkEnd = Math.Min(end, skip);
            if (pte != 0)
            {
                ulong tablePa = pte & ~PageMask;
                int first = (int)((va >> 12) & 511), last = (int)(((chunkEnd - 1) >> 12) & 511);
                var entries = table.Slice(first * 8, (last - first + 1) * 8);
                Memory.ReadBytes(PhysToVirt(tablePa) + (ulong)first * 8, entries);
                bool any = false;
                for (int i = 0; i < entries.Length; i += 8)
                {
                    ulong e = BitConverter.ToUInt64(entries[i..]);
                    if (e == 0) continue;
                    any = true;
                    if ((e & (PtePresent | PteProtNone)) != 0)
                    {
                        ulong pa = e & PteAddr;
                        Account(mm, KindOf(pa), -1);
                        PutUserPage(pa);
                    }
                }
                if (any)
                {
                    entries.Clear();
                    Memory.WriteBytes(PhysToVirt(tablePa) + (ulong)first * 8, entries);
                }
            }
            va = chunkEnd;
        }
        if (flush) FlushTlbMmRange(mm, start, end);
    }

    private void UnmapVma(MmStruct mm, VmArea v, bool flush)
    {
        ZapRange(mm, v.Start, v.End, flush);
        if ((v.Flags & VmaFlags.Account) != 0) mm.Committed -= (long)(v.Size >> 12);
        FreeVma(mm, v);
    }

    /// <summary>do_vmi_munmap: unmaps [start, end), splitting VMAs at the edges, and frees the emptied page tables.</summary>
    internal void UnmapRange(MmStruct mm, ulong start, ulong end)
    {
        foreach (var v in mm.Vmas.ToArray())
        {
            if (v.End <= start || v.Start >= end) continue;
            var cur = v;
            if (cur.Start < start) cur = SplitVma(mm, cur, start);
            if (cur.End > end) SplitVma(mm, cur, end);
            UnmapVma(mm, cur, flush: true);
        }
        FreeTables(mm, start, end);
    }

    // ------------------------------------------------------------------ TLB and CR3

    /// <summary>
    /// flush_tlb_mm_range: bumps the mm's tlb_gen; on a CPU running the mm, INVLPG each page of a range of at most 33
    /// pages, else a flush of the mm's PCID (CR3 reload without the no-flush bit). CPUs that do not run it catch up
    /// when they next switch to it (their ASID slot's tlb_gen is older).
    /// </summary>
    internal void FlushTlbMmRange(MmStruct mm, ulong start, ulong end)
    {
        var u = User;
        mm.TlbGen++;
        for (int c = 0; c < _cpus.Count; c++)
        {
            if (u.LoadedMm[c] != mm) continue;
            var cpu = _cpus[c];
            if (end > start && end - start <= (ulong)TlbSinglePageFlushCeiling << 12)
            {
                for (ulong va = start; va < end; va += 4096) cpu.Mmu.Invlpg(va);
                TlbShootdowns.Invlpgs += (long)((end - start) >> 12);
            }
            else
            {
                cpu.SetCr3(cpu.Cr3Value & ~Cr3.NoFlush);
                TlbShootdowns.CpuFullFlushes++;
            }
            u.Asids[c, u.LoadedAsid[c]].TlbGen = mm.TlbGen;
        }
    }

    /// <summary>
    /// switch_mm_irqs_off: loads <paramref name="next"/> on CPU <paramref name="cpuIndex"/> (null: back to the kernel
    /// page tables). An mm keeps its ASID slot while it is in the CPU's six most recent; CR3 then carries the PCID
    /// (slot + 1) and bit 63 (no flush) when the slot's tlb_gen is current, else the PCID's entries are flushed.
    /// </summary>
    public void SwitchMm(MmStruct? next, int cpuIndex)
    {
        var u = User;
        var cpu = _cpus[cpuIndex];
        u.LoadedMm[cpuIndex] = next;
        bool pcid = (cpu.Cr4Value & Cr4.PCIDE) != 0;
        if (next is null)
        {
            cpu.SetCr3(PageTables.Pgd | (pcid ? Cr3.NoFlush : 0));
            return;
        }
        int asid = -1;
        bool flush = true;
        for (int s = 0; s < TlbNrDynAsids; s++)
            if (u.Asids[cpuIndex, s].CtxId == next.ContextId)
            {
                asid = s;
                flush = u.Asids[cpuIndex, s].TlbGen < next.TlbGen;
                break;
            }
        if (asid < 0)
        {
            asid = u.NextAsid[cpuIndex]++;
            if (asid >= TlbNrDynAsids) { asid = 0; u.NextAsid[cpuIndex] = 1; }
        }
        u.Asids[cpuIndex, asid] = (next.ContextId, next.TlbGen);
        u.LoadedAsid[cpuIndex] = asid;
        if (!pcid) { cpu.SetCr3(next.Pgd); return; }
        cpu.SetCr3(next.Pgd | (uint)(asid + 1) | (flush ? 0UL : Cr3.NoFlush));
    }

    /// <summary>The mm loaded on CPU <paramref name="cpuIndex"/>, or null when it runs on the kernel page tables.</summary>
    public MmStruct? LoadedMm(int cpuIndex) => User.LoadedMm[cpuIndex];
}

/// <summary>An allocation for a process failed: the system call returns ENOMEM or the fault kills the task.</summary>
internal sealed class OutOfMemoryInKernel() : Exception("out of memory");
