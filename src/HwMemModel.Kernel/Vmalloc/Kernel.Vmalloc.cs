using System.Numerics;
using System.Runtime.CompilerServices;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>When a vfree'd vmalloc area's pages go back to the buddy allocator.</summary>
public enum VfreePagePolicy
{
    /// <summary>
    /// At vfree, as mm/vmalloc.c does (vfree → remove_vm_area, then __free_page for each page) — the default; only the
    /// virtual range waits for the purge, so until then a stale TLB entry can reach a page the allocator has handed to
    /// someone else (the use-after-free window Linux accepts because nothing may use a vfree'd address).
    /// </summary>
    AtVfree = 0,
    /// <summary>
    /// At the lazy purge, together with the virtual range (a safer teaching variant): until the one TLB flush of the
    /// purge, a stale TLB entry can reach only a page nobody else owns.
    /// </summary>
    AtPurge = 1,
}

/// <content>
/// vmalloc (mm/vmalloc.c): the vmap-area allocator over VMALLOC_START..VMALLOC_END (lowest-address first fit, free
/// ranges merged, a guard page after each area), vmalloc and its variants, vmap/vunmap, vfree, and the lazy purge.
/// </content>
public sealed partial class Kernel
{
    private const ulong VmPageSize = 4096;
    private const ulong VmPageMask = ~(VmPageSize - 1);
    private const ulong PteAddrMask = 0x000F_FFFF_FFFF_F000UL;
    private const ulong PsBit = 0x80;
    private const int PudShift = 30;

    private VmapAreaTree? _vmapFree;
    private readonly VmapAreaTree _vmapBusy = new();
    private readonly List<VmapArea> _vmapPurge = [];
    private long _vmapLazyPages;
    private bool _lazyHoldsPages;
    private readonly HashSet<string> _warnOnOnce = [];

    /// <summary>When a vfree'd vmalloc area's pages go back to the buddy allocator (default: <see cref="VfreePagePolicy.AtVfree"/>, as Linux).</summary>
    public VfreePagePolicy VfreePages { get; set; }

    /// <summary>lazy_max_pages(): fls(number of CPUs) × (32 MiB / PAGE_SIZE); more lazily freed pages trigger a purge.</summary>
    public long LazyMaxPages => (32 - BitOperations.LeadingZeroCount((uint)_cpus.Count)) * (long)((32UL << 20) / VmPageSize);

    /// <summary>vmap_lazy_nr: pages of vmalloc space freed but not yet purged (guard pages included).</summary>
    public long VmapLazyPages => _vmapLazyPages;

    /// <summary>Busy areas in the vmalloc space (vmalloc, vmap and ioremap areas not yet freed).</summary>
    public int VmapAreaCount => _vmapBusy.Count;

    /// <summary>Pages of page tables freed when a huge ioremap mapping replaced a lower-level table (pmd_free_pte_page, pud_free_pmd_page).</summary>
    public int VmallocPageTablePagesFreed { get; private set; }

    private VmapAreaTree FreeVmapTree
    {
        get
        {
            if (_vmapFree is null)
            {
                // The free space is [VMALLOC_START, VMALLOC_END): Linux passes the inclusive VMALLOC_END as the exclusive
                // end of the search, so the last byte is never handed out.
                _vmapFree = new VmapAreaTree();
                _vmapFree.Insert(new VmapArea(Layout.VmallocStart, Layout.VmallocEnd));
            }
            return _vmapFree;
        }
    }

    // ------------------------------------------------------------------ vmalloc family

    /// <summary>vmalloc: <paramref name="size"/> bytes (rounded up to pages) of virtually contiguous memory from GFP_KERNEL pages; 0 (NULL) on failure.</summary>
    public ulong Vmalloc(ulong size, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, Gfp.Kernel, PageAllocator.NumaNoNode, caller);

    /// <summary>__vmalloc: like <see cref="Vmalloc(ulong, string)"/> with the caller's GFP mask.</summary>
    public ulong Vmalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, gfp, PageAllocator.NumaNoNode, caller);

    /// <summary>vzalloc: zeroed vmalloc memory.</summary>
    public ulong Vzalloc(ulong size, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, Gfp.Kernel | Gfp.Zero, PageAllocator.NumaNoNode, caller);

    /// <summary>vmalloc_node: pages preferably from NUMA node <paramref name="node"/>.</summary>
    public ulong VmallocNode(ulong size, int node, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, Gfp.Kernel, CheckNode(node), caller);

    /// <summary>vzalloc_node: zeroed pages preferably from NUMA node <paramref name="node"/>.</summary>
    public ulong VzallocNode(ulong size, int node, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, Gfp.Kernel | Gfp.Zero, CheckNode(node), caller);

    /// <summary>vmalloc_32: pages from GFP_DMA32 | GFP_KERNEL, all below 4 GiB (x86-64's meaning; 2.4's i386 used ZONE_NORMAL).</summary>
    public ulong Vmalloc32(ulong size, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, Gfp.Dma32 | Gfp.Kernel, PageAllocator.NumaNoNode, caller);

    /// <summary>
    /// vmalloc_dma (Linux 2.4, removed from mainline; kept as a legacy entry point): pages from ZONE_DMA (GFP_DMA |
    /// GFP_KERNEL), all below 16 MiB.
    /// </summary>
    public ulong VmallocDma(ulong size, [CallerMemberName] string caller = "")
        => VmallocNodeRange(size, VmPageSize, Gfp.Dma | Gfp.Kernel, PageAllocator.NumaNoNode, caller);

    /// <summary>
    /// vmap: maps the pages at <paramref name="pages"/> (page-aligned physical addresses, which the caller keeps
    /// owning) virtually contiguously with <paramref name="protection"/> forced non-executable (pgprot_nx); 0 (NULL)
    /// for no pages or on failure.
    /// </summary>
    public ulong Vmap(IReadOnlyList<ulong> pages, ulong protection = KernelPageTables.PageKernel, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(pages);
        for (int i = 0; i < pages.Count; i++)
            if ((pages[i] & ~VmPageMask) != 0 || (pages[i] & ~PteAddrMask) != 0)
                throw new ArgumentException($"vmap: page {i} at 0x{pages[i]:x} is not a page-aligned physical address.", nameof(pages));
        if ((ulong)pages.Count > (ulong)Pages.ManagedPageCount) return 0;
        ulong size = (ulong)pages.Count * VmPageSize;
        var va = GetVmArea(size, VmPageSize, VmFlags.Map, Gfp.Kernel, caller);
        if (va is null) return 0;
        va.Pages = [.. pages];
        MapPages(va.Start, va.Pages, (protection & ~PteAddrMask) | (ulong)PteFlags.NoExecute);
        return va.Start;
    }

    /// <summary>
    /// vunmap: unmaps a <see cref="Vmap"/> area. As the issue specifies (and Linux before 2.6.28 did), the PTEs are
    /// cleared, flush_tlb_kernel_range runs at once and the range is free again; Linux 6.x defers vunmap's flush to the
    /// lazy purge like vfree's. The pages stay the caller's.
    /// </summary>
    public void Vunmap(ulong address)
    {
        if (address == 0) return;
        var va = RemoveVmArea(address);
        if (va is null)
        {
            Log.Warn($"Trying to vunmap() nonexistent vm area ({address:x16})", "mm/vmalloc.c:vunmap");
            return;
        }
        ulong mappedEnd = va.Start + MappedSize(va);
        UnmapRange(va.Start, mappedEnd);
        FlushTlbKernelRange(va.Start, mappedEnd);
        ReleaseVmapRange(va);
    }

    /// <summary>
    /// vfree: frees the area that contains <paramref name="address"/> (vmalloc, vmap or ioremap; a vmalloc area's pages
    /// go back to the allocator, see <see cref="VfreePages"/>). The PTEs are cleared without a TLB flush and the range
    /// goes on the lazy list until the purge. vfree(NULL) does nothing; an unaligned or unknown address is reported
    /// as Linux reports it.
    /// </summary>
    public void Vfree(ulong address)
    {
        if (address == 0) return;
        var va = RemoveVmArea(address);
        if (va is null)
        {
            Log.Warn($"Trying to vfree() nonexistent vm area ({address:x16})", "mm/vmalloc.c:vfree");
            return;
        }
        if ((va.Flags & VmFlags.Alloc) != 0 && va.NrPages > 0)
        {
            if (VfreePages == VfreePagePolicy.AtVfree)
            {
                FreeAreaPages(va);
            }
            else
            {
                va.FreePagesAtPurge = true;
                _lazyHoldsPages = true;
            }
        }
        FreeUnmapVmapArea(va);
    }

    /// <summary>find_vm_area: the busy area containing <paramref name="address"/>, or null.</summary>
    public VmAreaInfo? FindVmArea(ulong address) => _vmapBusy.FindContaining(address)?.Snapshot();

    /// <summary>All busy areas in address order.</summary>
    public IReadOnlyList<VmAreaInfo> VmAreas() => _vmapBusy.InOrder().Select(v => v.Snapshot()).ToArray();

    /// <summary>
    /// vm_unmap_aliases: purges every lazily freed area now: one flush_tlb_kernel_range over [lowest start, highest
    /// end) on every CPU, then the ranges return to the free space (and, under <see cref="VfreePagePolicy.AtPurge"/>,
    /// the pages to the buddy allocator). Nothing happens when the lazy list is empty.
    /// </summary>
    public void VmUnmapAliases() => PurgeVmapAreaLazy();

    // ------------------------------------------------------------------ internals

    private int CheckNode(int node)
    {
        if (node != PageAllocator.NumaNoNode && (node < 0 || node >= Pages.NodeCount))
            throw new ArgumentOutOfRangeException(nameof(node), node, $"node must be NUMA_NO_NODE (-1) or 0 to {Pages.NodeCount - 1}.");
        return node;
    }

    private ulong VmallocNodeRange(ulong size, ulong align, Gfp gfp, int node, string caller)
    {
        ulong realSize = size;
        if (size == 0)
        {
            WarnOnOnce("mm/vmalloc.c:__vmalloc_node_range_noprof");
            return 0;
        }
        if ((size >> 12) > (ulong)Pages.ManagedPageCount)
        {
            WarnAlloc(gfp, caller, $"vmalloc error: size {realSize}, exceeds total pages");
            return 0;
        }
        var va = GetVmArea(realSize, align, VmFlags.Alloc | VmFlags.Uninitialized, gfp, caller);
        if (va is null)
        {
            WarnAlloc(gfp, caller, $"vmalloc error: size {realSize}, vm_struct allocation failed");
            return 0;
        }

        // __vmalloc_area_node: order-0 pages, __GFP_NOWARN added (vmalloc reports the failure itself).
        if ((gfp & (Gfp.Dma | Gfp.Dma32)) == 0) gfp |= Gfp.HighMem;
        int nr = (int)(MappedSize(va) >> 12);
        var pages = new ulong[nr];
        va.Pages = pages;
        bool purged = false;
        int got = 0;
        while (got < nr)
        {
            ulong? pa = Pages.AllocPages(gfp | Gfp.NoWarn, 0, node, caller);
            if (pa is null && !purged && _lazyHoldsPages)
            {
                // The model keeps vfree'd pages until the purge (VfreePagePolicy.AtPurge); give them back and retry once.
                purged = true;
                PurgeVmapAreaLazy();
                continue;
            }
            if (pa is null) break;
            pages[got++] = pa.Value;
        }
        va.NrPages = got;
        if (got != nr)
        {
            WarnAlloc(gfp, caller, $"vmalloc error: size {(ulong)got * VmPageSize}, failed to allocate pages");
            Vfree(va.Start);
            return 0;
        }
        MapPages(va.Start, pages, KernelPageTables.PageKernel);
        va.Flags &= ~VmFlags.Uninitialized;
        return va.Start;
    }

    /// <summary>__get_vm_area_node: page-aligned size, ioremap alignment, guard page, then alloc_vmap_area.</summary>
    private VmapArea? GetVmArea(ulong size, ulong align, VmFlags flags, Gfp gfp, string caller)
    {
        if (size > ulong.MaxValue - (VmPageSize - 1)) return null;
        size = (size + VmPageSize - 1) & VmPageMask;
        if (size == 0) return null;
        if ((flags & VmFlags.IoRemap) != 0)
        {
            int order = size <= 1 ? 0 : 64 - BitOperations.LeadingZeroCount(size - 1); // get_count_order_long
            align = 1UL << Math.Clamp(order, 12, PudShift);                             // IOREMAP_MAX_ORDER = PUD_SHIFT
        }
        if ((flags & VmFlags.NoGuard) == 0)
        {
            if (size > ulong.MaxValue - VmPageSize) return null;
            size += VmPageSize;
        }
        var va = AllocVmapArea(size, align, gfp);
        if (va is null) return null;
        va.Flags = flags;
        va.Caller = caller;
        return va;
    }

    /// <summary>alloc_vmap_area: lowest-address first fit; when nothing fits, purge the lazy areas once and retry.</summary>
    private VmapArea? AllocVmapArea(ulong size, ulong align, Gfp gfp)
    {
        var free = FreeVmapTree;
        bool purged = false;
        while (true)
        {
            var n = free.FindLowestFit(size, align, out ulong addr);
            if (n is not null) return CarveBusy(free, n, addr, size);
            if (!purged && _vmapPurge.Count > 0)
            {
                purged = true;
                PurgeVmapAreaLazy();
                continue;
            }
            if ((gfp & Gfp.NoWarn) == 0)
                Log.Print($"vmalloc_node_range for size {size} failed: Address range restricted to 0x{Layout.VmallocStart:x} - 0x{Layout.VmallocEnd:x}");
            return null;
        }
    }

    // adjust_va_to_fit_type: take [addr, addr+size) out of the free range n (full fit, left edge, right edge or split).
    private VmapArea CarveBusy(VmapAreaTree free, VmapArea n, ulong addr, ulong size)
    {
        ulong end = addr + size;
        if (n.Start == addr && n.End == end)
        {
            free.Remove(n);
        }
        else if (n.Start == addr)
        {
            n.Start = end;
            free.Update(n);
        }
        else if (n.End == end)
        {
            n.End = addr;
            free.Update(n);
        }
        else
        {
            ulong oldEnd = n.End;
            n.End = addr;
            free.Update(n);
            free.Insert(new VmapArea(end, oldEnd));
        }
        var va = new VmapArea(addr, end);
        _vmapBusy.Insert(va);
        return va;
    }

    /// <summary>remove_vm_area: unlinks the busy area containing <paramref name="address"/> (after Linux's alignment check).</summary>
    private VmapArea? RemoveVmArea(ulong address)
    {
        if ((address & ~VmPageMask) != 0)
        {
            Log.Warn($"Trying to vfree() bad address ({address:x16})", "mm/vmalloc.c:remove_vm_area");
            return null;
        }
        var va = _vmapBusy.FindContaining(address);
        if (va is null) return null;
        _vmapBusy.Remove(va);
        return va;
    }

    private static ulong MappedSize(VmapArea va) => (va.Flags & VmFlags.NoGuard) != 0 ? va.Size : va.Size - VmPageSize;

    /// <summary>free_unmap_vmap_area: PTEs cleared without a TLB flush, the range onto the lazy list, a purge past lazy_max_pages.</summary>
    private void FreeUnmapVmapArea(VmapArea va)
    {
        UnmapRange(va.Start, va.Start + MappedSize(va));
        _vmapPurge.Add(va);
        _vmapLazyPages += (long)(va.Size >> 12);
        if (_vmapLazyPages > LazyMaxPages) PurgeVmapAreaLazy();
    }

    /// <summary>__purge_vmap_area_lazy: one flush over [min start, max end), then every lazy range back to the free space.</summary>
    private bool PurgeVmapAreaLazy()
    {
        if (_vmapPurge.Count == 0) return false;
        ulong start = ulong.MaxValue, end = 0;
        foreach (var va in _vmapPurge)
        {
            if (va.Start < start) start = va.Start;
            if (va.End > end) end = va.End;
        }
        FlushTlbKernelRange(start, end);
        var list = _vmapPurge.ToArray();
        _vmapPurge.Clear();
        _vmapLazyPages = 0;
        _lazyHoldsPages = false;
        Array.Sort(list, static (a, b) => a.Start.CompareTo(b.Start));
        foreach (var va in list)
        {
            if (va.FreePagesAtPurge) FreeAreaPages(va);
            ReleaseVmapRange(va);
        }
        return true;
    }

    private void FreeAreaPages(VmapArea va)
    {
        var pages = va.Pages!;
        for (int i = 0; i < va.NrPages; i++) Pages.FreePages(pages[i], 0, "vfree");
        va.NrPages = 0;
        va.Pages = null;
        va.FreePagesAtPurge = false;
    }

    /// <summary>merge_or_add_vmap_area: the range [va.Start, va.End) back into the free tree, merged with its neighbours.</summary>
    private void ReleaseVmapRange(VmapArea va)
    {
        var free = FreeVmapTree;
        ulong start = va.Start, end = va.End;
        var next = free.AtOrAbove(start);
        var prev = free.Below(start);
        if ((next is not null && next.Start < end) || (prev is not null && prev.End > start))
            throw new InvalidOperationException($"vmalloc: freeing 0x{start:x}-0x{end:x}, which overlaps a free range.");
        bool mergeNext = next is not null && next.Start == end;
        bool mergePrev = prev is not null && prev.End == start;
        if (mergePrev && mergeNext)
        {
            ulong nextEnd = next!.End;
            free.Remove(next);
            prev!.End = nextEnd;
            free.Update(prev);
        }
        else if (mergePrev)
        {
            prev!.End = end;
            free.Update(prev);
        }
        else if (mergeNext)
        {
            next!.Start = start;
            free.Update(next);
        }
        else
        {
            va.Flags = VmFlags.None;
            va.Pages = null;
            va.NrPages = 0;
            va.PhysAddr = 0;
            va.Caller = "";
            free.Insert(va);
        }
    }

    /// <summary>vmap_pages_range: one 4 KiB PTE per page, written into the kernel page tables in RAM; no TLB flush (none is needed for a new mapping).</summary>
    private void MapPages(ulong start, ulong[] pages, ulong protection)
    {
        int i = 0;
        while (i < pages.Length)
        {
            ulong va = start + (ulong)i * VmPageSize;
            ulong pte = PageTables.EntryFor(va, 1, allocate: true)!.Value;
            int inTable = (int)Math.Min(512 - ((va >> 12) & 511), (ulong)(pages.Length - i));
            for (int j = 0; j < inTable; j++, pte += 8)
            {
                if (PageTables.ReadEntry(pte) != 0)
                    throw new InvalidOperationException($"vmap: the PTE for 0x{va + (ulong)j * VmPageSize:x16} is not empty (0x{PageTables.ReadEntry(pte):x}); the vmalloc space is corrupt.");
                PageTables.WriteEntry(pte, (pages[i + j] & PteAddrMask) | protection);
            }
            i += inTable;
        }
    }

    /// <summary>
    /// vunmap_range_noflush: clears every leaf in [start, end) (4 KiB PTEs, and 2 MiB / 1 GiB leaves an ioremap put
    /// there) in the page tables in RAM. No TLB flush; page-table pages stay.
    /// </summary>
    private void UnmapRange(ulong start, ulong end)
    {
        int levels = PageTables.Levels;
        ulong va = start;
        while (va < end)
        {
            // The level below the top is preallocated for the whole vmalloc space.
            ulong entry = PageTables.EntryFor(va, levels - 1, allocate: false)
                ?? throw new InvalidOperationException($"vmalloc: no upper-level table for 0x{va:x16}.");
            int level = levels - 1;
            bool advanced = false;
            while (!advanced)
            {
                ulong e = PageTables.ReadEntry(entry);
                ulong span = 1UL << PageGeometry.LevelShift(level);
                if ((e & 1) == 0)
                {
                    va = (va & ~(span - 1)) + span;
                    advanced = true;
                }
                else if (level == 1)
                {
                    // A run of PTEs in this table.
                    ulong tableEnd = (va & ~((1UL << 21) - 1)) + (1UL << 21);
                    ulong stop = Math.Min(end, tableEnd);
                    for (; va < stop; va += VmPageSize, entry += 8)
                        if (PageTables.ReadEntry(entry) != 0) PageTables.WriteEntry(entry, 0);
                    advanced = true;
                }
                else if (level <= 3 && (e & PsBit) != 0)
                {
                    PageTables.WriteEntry(entry, 0); // pmd_clear_huge / pud_clear_huge
                    va = (va & ~(span - 1)) + span;
                    advanced = true;
                }
                else
                {
                    level--;
                    entry = (e & PteAddrMask) + ((va >> PageGeometry.LevelShift(level)) & 511) * 8;
                }
            }
        }
    }

    private void WarnOnOnce(string where)
    {
        if (_warnOnOnce.Add(where)) Log.Print($"WARNING: CPU: 0 PID: 1 at {where}");
    }

    /// <summary>warn_alloc: "{comm}: {message}, mode:%#x(%pGg), nodemask=(null)" unless __GFP_NOWARN.</summary>
    private void WarnAlloc(Gfp gfp, string caller, string message)
    {
        if ((gfp & Gfp.NoWarn) != 0) return;
        string mode = gfp == Gfp.None ? "0" : $"0x{(uint)gfp:x}";
        Log.Print($"{caller}: {message}, mode:{mode}({GfpNames.Format(gfp)}), nodemask=(null)");
    }
}
