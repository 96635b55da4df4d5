using System.Runtime.CompilerServices;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <content>
/// ioremap and iounmap (arch/x86/mm/ioremap.c): device memory mapped into the vmalloc space with PAGE_KERNEL_IO (NX,
/// global) and the cache bits of the requested mode under Linux's PAT layout, 2 MiB and 1 GiB leaves where the
/// physical address, the virtual address and the size allow, after a PAT memory-type reservation.
/// </content>
public sealed partial class Kernel
{
    private const ulong Size2M = 1UL << 21, Size1G = 1UL << 30;

    /// <summary>ioremap: uncached-minus (UC-) mapping of [<paramref name="pa"/>, +<paramref name="size"/>); the returned address keeps the offset inside the first page; 0 (NULL) on failure.</summary>
    public ulong IoRemap(ulong pa, ulong size, [CallerMemberName] string caller = "")
        => IoRemapCaller(pa, size, CacheMode.UncachedMinus, caller);

    /// <summary>ioremap_uc: strongly uncached (UC).</summary>
    public ulong IoRemapUc(ulong pa, ulong size, [CallerMemberName] string caller = "")
        => IoRemapCaller(pa, size, CacheMode.Uncached, caller);

    /// <summary>ioremap_wc: write-combining.</summary>
    public ulong IoRemapWc(ulong pa, ulong size, [CallerMemberName] string caller = "")
        => IoRemapCaller(pa, size, CacheMode.WriteCombining, caller);

    /// <summary>ioremap_wt: write-through.</summary>
    public ulong IoRemapWt(ulong pa, ulong size, [CallerMemberName] string caller = "")
        => IoRemapCaller(pa, size, CacheMode.WriteThrough, caller);

    /// <summary>ioremap_cache: write-back.</summary>
    public ulong IoRemapCache(ulong pa, ulong size, [CallerMemberName] string caller = "")
        => IoRemapCaller(pa, size, CacheMode.WriteBack, caller);

    /// <summary>
    /// ioremap_prot: the cache mode the PAT/PCD/PWT bits (bits 7, 4, 3) of <paramref name="protection"/> select under
    /// Linux's PAT layout; as on x86, the other bits are ignored (PAGE_KERNEL_IO, NX always).
    /// </summary>
    public ulong IoRemapProt(ulong pa, ulong size, ulong protection, [CallerMemberName] string caller = "")
        => IoRemapCaller(pa, size, CacheModes.FromPteBits(protection), caller);

    /// <summary>
    /// iounmap: releases the memory-type reservation and the ioremap area containing <paramref name="address"/>; the
    /// PTEs are cleared without a flush and the range waits on the lazy list, so after the purge an access faults.
    /// A non-ioremap address (outside the vmalloc space, NULL included) is a WARN_ON_ONCE; an address in the vmalloc
    /// space with no area is "iounmap: bad address".
    /// </summary>
    public void IoUnmap(ulong address, [CallerMemberName] string caller = "")
    {
        if (!IsVmallocAddr(address))
        {
            WarnOnOnce("arch/x86/mm/ioremap.c:iounmap");
            return;
        }
        address &= VmPageMask;
        var va = _vmapBusy.FindContaining(address);
        if (va is null)
        {
            Log.Print($"iounmap: bad address {address:x16}");
            return;
        }
        MemtypeFree(va.PhysAddr, va.PhysAddr + MappedSize(va), caller);
        _vmapBusy.Remove(va);
        FreeUnmapVmapArea(va);
    }

    private ulong IoRemapCaller(ulong physAddr, ulong size, CacheMode pcm, string caller)
    {
        // Don't allow wraparound or zero size.
        ulong last = unchecked(physAddr + size - 1);
        if (size == 0 || last < physAddr) return 0;
        if ((physAddr >> _cpus[0].Features.MaxPhysAddrBits) != 0)
        {
            Log.Print($"ioremap: invalid physical address {physAddr:x}");
            WarnOnOnce("arch/x86/mm/ioremap.c:__ioremap_caller");
            return 0;
        }
        if (IoRemapHitsSystemRam(physAddr, last))
        {
            Log.WarnOnce("ioremap on RAM", $"ioremap on RAM at 0x{physAddr:x16} - 0x{last:x16}", "arch/x86/mm/ioremap.c:__ioremap_caller");
            return 0;
        }

        // Mappings have to be page-aligned.
        ulong offset = physAddr & ~VmPageMask;
        physAddr &= VmPageMask;
        size = unchecked(((last + 1 + VmPageSize - 1) & VmPageMask) - physAddr);

        int err = MemtypeReserve(physAddr, unchecked(physAddr + size), pcm, out var newPcm, caller);
        if (err != 0)
        {
            Log.Print($"ioremap memtype_reserve failed {err}");
            return 0;
        }
        if (pcm != newPcm)
        {
            if (!IsNewMemtypeAllowed(physAddr, size, pcm, newPcm))
            {
                Log.Print($"ioremap error for 0x{physAddr:x}-0x{unchecked(physAddr + size):x}, requested 0x{(int)pcm:x}, got 0x{(int)newPcm:x}");
                MemtypeFree(physAddr, unchecked(physAddr + size), caller);
                return 0;
            }
            pcm = newPcm;
        }

        var va = GetVmArea(size, 1, VmFlags.IoRemap, Gfp.Kernel, caller);
        if (va is null)
        {
            MemtypeFree(physAddr, unchecked(physAddr + size), caller);
            return 0;
        }
        va.PhysAddr = physAddr;
        IoRemapPageRange(va.Start, va.Start + size, physAddr, pcm);
        return va.Start + offset;
    }

    /// <summary>
    /// __ioremap_check_ram over the System RAM in [pa, last]: true when some whole page there is RAM the kernel manages
    /// (not PageReserved). The first 1 MiB, the kernel image and the boot page tables are reserved RAM, which ioremap
    /// may map.
    /// </summary>
    private bool IoRemapHitsSystemRam(ulong pa, ulong last)
    {
        ulong reservedImageStartPfn = KernelLayout.PhysicalStart >> 12, reservedImageEndPfn = (EarlyPageTables.End + 4095) >> 12;
        const ulong lowReservedEndPfn = (1UL << 20) >> 12;
        foreach (var (s, e) in _ram)
        {
            ulong lo = Math.Max(s, pa), hi = Math.Min(e - 1, last);
            if (lo > hi) continue;
            ulong startPfn = (lo + 4095) >> 12, stopPfn = (hi + 1) >> 12;
            if (hi == ulong.MaxValue) stopPfn = 1UL << 52;
            if (stopPfn <= startPfn) continue;
            // Any pfn in [startPfn, stopPfn) outside [0, 1 MiB) and the image + boot page tables?
            ulong a = Math.Max(startPfn, lowReservedEndPfn);
            if (a >= stopPfn) continue;
            if (a < reservedImageStartPfn) return true;
            if (Math.Max(a, reservedImageEndPfn) < stopPfn) return true;
        }
        return false;
    }

    /// <summary>
    /// ioremap_page_range → vmap_range_noflush with max_page_shift PUD_SHIFT: per 1 GiB chunk a PUD leaf when the CPU
    /// has 1 GiB pages and the chunk is whole and aligned in both spaces, else per 2 MiB chunk a PMD leaf, else 4 KiB
    /// PTEs. A lower table left where a huge leaf goes is freed first (pmd_free_pte_page / pud_free_pmd_page).
    /// </summary>
    private void IoRemapPageRange(ulong start, ulong end, ulong physAddr, CacheMode pcm)
    {
        ulong prot4K = KernelPageTables.PageKernel | pcm.PteBits(large: false);
        ulong protLarge = KernelPageTables.PageKernel | pcm.PteBits(large: true);
        bool gbPages = _cpus[0].Features.Pages1G;
        for (ulong va = start; va < end;)
        {
            ulong pa = physAddr + (va - start);
            if (gbPages && (va & (Size1G - 1)) == 0 && (pa & (Size1G - 1)) == 0 && end - va >= Size1G)
            {
                SetHugeLeaf(va, pa, 3, protLarge);
                va += Size1G;
                continue;
            }
            if ((va & (Size2M - 1)) == 0 && (pa & (Size2M - 1)) == 0 && end - va >= Size2M)
            {
                SetHugeLeaf(va, pa, 2, protLarge);
                va += Size2M;
                continue;
            }
            ulong pte = PageTables.EntryFor(va, 1, allocate: true)!.Value;
            ulong stop = Math.Min(end, (va & ~(Size2M - 1)) + Size2M);
            for (; va < stop; va += VmPageSize, pte += 8)
            {
                if (PageTables.ReadEntry(pte) != 0)
                    throw new InvalidOperationException($"ioremap: the PTE for 0x{va:x16} is not empty; the vmalloc space is corrupt.");
                PageTables.WriteEntry(pte, ((physAddr + (va - start)) & PteAddrMask) | prot4K);
            }
        }
    }

    private void SetHugeLeaf(ulong va, ulong pa, int level, ulong protLarge)
    {
        ulong entry = PageTables.EntryFor(va, level, allocate: true)!.Value;
        ulong old = PageTables.ReadEntry(entry);
        if ((old & 1) != 0)
        {
            if ((old & PsBit) != 0)
                throw new InvalidOperationException($"ioremap: a huge leaf already maps 0x{va:x16}; the vmalloc space is corrupt.");
            FreeLowerTables(va, entry, old, level);
        }
        PageTables.WriteEntry(entry, (pa & PteAddrMask) | protLarge | PsBit);
    }

    // pmd_free_pte_page (level 2) / pud_free_pmd_page (level 3): clear the entry, INVLPG one page on every CPU (to drop
    // paging-structure caches), then free the tables below, which must be empty.
    private void FreeLowerTables(ulong va, ulong entry, ulong value, int level)
    {
        ulong table = value & PteAddrMask;
        var ptPages = new List<ulong>();
        if (level == 3)
        {
            for (ulong i = 0; i < 512; i++)
            {
                ulong pmd = PageTables.ReadEntry(table + i * 8);
                if (pmd == 0) continue;
                if ((pmd & PsBit) != 0)
                    throw new InvalidOperationException($"ioremap: a 2 MiB leaf is still mapped under 0x{va:x16}; the vmalloc space is corrupt.");
                ptPages.Add(pmd & PteAddrMask);
                PageTables.WriteEntry(table + i * 8, 0);
            }
        }
        else
        {
            ptPages.Add(table);
            table = 0;
        }
        foreach (ulong pt in ptPages)
            for (ulong i = 0; i < 512; i++)
                if (PageTables.ReadEntry(pt + i * 8) != 0)
                    throw new InvalidOperationException($"ioremap: a page table under 0x{va:x16} still maps pages; the vmalloc space is corrupt.");
        PageTables.WriteEntry(entry, 0);
        FlushTlbKernelRange(va, va + VmPageSize - 1);
        foreach (ulong pt in ptPages) FreeTablePage(pt);
        if (table != 0) FreeTablePage(table);
    }

    private void FreeTablePage(ulong pa)
    {
        Pages.FreePages(pa, 0, "pte_free_kernel");
        VmallocPageTablePagesFreed++;
    }
}
