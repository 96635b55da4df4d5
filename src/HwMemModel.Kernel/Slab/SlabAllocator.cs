using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace HwMemModel.Kernel;

/// <summary>
/// The SLUB-style slab allocator behind <see cref="Kernel"/>'s kmalloc and kmem_cache API (mm/slab_common.c,
/// mm/slub.c). Slab pages come from the buddy allocator and are addressed through the direct map; object bytes live in
/// emulated RAM and every access the allocator makes to them goes through <see cref="KernelMemory"/> (the MMU).
/// Allocation state (free lists, in-use bits, counters) lives here, out of reach of guest writes.
/// </summary>
/// <remarks>
/// Simplifications, all invisible to callers except through timing: no per-CPU slabs or per-CPU partial lists (every
/// slab with a free object is on its node's partial list; allocation takes the head), no cache merging (aliases), no
/// freelist randomisation, no memcg, KASAN, KFENCE or SLAB_STORE_USER tracking, no kmalloc-rcl/-cg types
/// (__GFP_RECLAIMABLE and __GFP_ACCOUNT allocations use kmalloc-N).
/// </remarks>
internal sealed partial class SlabAllocator
{
    internal const ulong ZeroSizePtr = 16;
    internal const ulong KmallocMaxCacheSize = 8192;
    internal const ulong KmallocMaxSize = 4UL << 20;
    private const int KmallocShiftHigh = 13;
    private const Gfp SlabBugMask = Gfp.Dma32 | Gfp.HighMem;   // GFP_SLAB_BUG_MASK
    // GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK: what new_slab passes on to the page allocator from the caller's mask.
    private const Gfp SlabPageMask = Gfp.Reclaim | Gfp.High | Gfp.Io | Gfp.Fs | Gfp.NoWarn | Gfp.RetryMayFail | Gfp.NoFail
        | Gfp.NoRetry | Gfp.MemAlloc | Gfp.NoMemAlloc | Gfp.HardWall | Gfp.ThisNode;

    // kmalloc_size_index: (size - 1) / 8 → kmalloc index for sizes 1..192 (index 1 is kmalloc-96, 2 is kmalloc-192).
    private static readonly byte[] SizeIndex = [3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2];

    private readonly Kernel _kernel;
    private readonly KernelMemory _mem;
    private readonly PageAllocator _pages;
    private readonly KernelLog _log;
    private readonly FaultInjection _failslab;
    private readonly ulong _pageOffset;
    private readonly ulong _ramEnd;
    private readonly ulong _vmemmap;
    private readonly int _nodeCount;
    private readonly int _cpus;
    private readonly SlabPageMap _map;
    private readonly List<KmemCache> _caches = [];   // slab_caches in creation order; slabinfo lists the newest first
    private readonly KmemCache[] _kmalloc = new KmemCache[KmallocShiftHigh + 1];
    private readonly KmemCache[] _kmallocDma = new KmemCache[KmallocShiftHigh + 1];

    internal SlabAllocator(Kernel kernel, FaultInjection failslab)
    {
        _kernel = kernel;
        _mem = kernel.Memory;
        _pages = kernel.Pages;
        _log = kernel.Log;
        _failslab = failslab;
        _pageOffset = kernel.Layout.PageOffset;
        _vmemmap = kernel.Layout.VmemmapStart;
        _ramEnd = kernel.Ram.Max(r => r.End);
        _nodeCount = _pages.NodeCount;
        _cpus = kernel.Options.Cpus;
        _map = new SlabPageMap(_ramEnd >> KmemCache.PageShift);
        // create_kmalloc_caches (6.6+): per type, kmalloc-96 and kmalloc-192 first, then the powers of two 8 to 8k.
        foreach (bool dma in new[] { false, true })
        {
            var table = dma ? _kmallocDma : _kmalloc;
            foreach (int index in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 })
            {
                uint size = index switch { 1 => 96, 2 => 192, _ => 1u << index };
                string name = (dma ? "dma-kmalloc-" : "kmalloc-") + (size >= 1024 ? $"{size / 1024}k" : size.ToString(CultureInfo.InvariantCulture));
                // create_boot_cache: natural alignment for power-of-two sizes.
                uint align = BitOperations.IsPow2(size) ? size : KmemCache.WordSize;
                var cache = KmemCache.Create(name, size, align, dma ? SlabFlags.CacheDma : SlabFlags.None, null, kmalloc: true, _nodeCount, _cpus)!;
                table[index] = cache;
                _caches.Add(cache);
            }
        }
    }

    internal IReadOnlyList<KmemCache> Caches => _caches;

    // ---------------------------------------------------------------- kmalloc

    /// <summary>kmalloc_slab: the size class for <paramref name="size"/> (1 to 8192) and the mask's kmalloc type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal KmemCache KmallocSlab(ulong size, Gfp gfp)
    {
        int index = size <= 192 ? SizeIndex[(int)(size - 1) >> 3] : 64 - BitOperations.LeadingZeroCount(size - 1);
        return ((gfp & Gfp.Dma) != 0 ? _kmallocDma : _kmalloc)[index];
    }

    internal ulong Kmalloc(ulong size, Gfp gfp, int node, string caller)
    {
        if (size - 1 < KmallocMaxCacheSize) return Alloc(KmallocSlab(size, gfp), gfp, node, caller);
        if (size == 0) return ZeroSizePtr;
        return KmallocLarge(size, gfp, node, caller);
    }

    // __kmalloc_large_node: order get_order(size) straight from the page allocator (__GFP_COMP), no failslab.
    private ulong KmallocLarge(ulong size, Gfp gfp, int node, string caller)
    {
        // KMALLOC_MAX_SIZE is the largest block; beyond it the order is above MAX_PAGE_ORDER and __alloc_pages refuses
        // with its one-time WARN_ON_ONCE_GFP (the page allocator reports it).
        int order = KmemCache.GetOrder(size);
        if ((gfp & SlabBugMask) != 0) gfp = FixFlags(gfp);
        ulong? pa = _pages.AllocPages(gfp | Gfp.Comp, order, node, caller);
        if (pa is not { } p) return 0;
        var large = new LargeKmalloc(p, _pageOffset + p, order, size);
        _map.Set(p >> KmemCache.PageShift, 1UL << order, large);
        return large.Va;
    }

    // ---------------------------------------------------------------- allocation

    internal ulong Alloc(KmemCache s, Gfp gfp, int node, string caller)
    {
        if (_failslab.Probability != 0 && ShouldFailslab(s, gfp)) return 0;
        while (true)
        {
            Slab? slab = null;
            var nodes = s.Nodes;
            if (node < 0)
            {
                for (int i = 0; i < nodes.Length && slab is null; i++) slab = nodes[i].Partial;
            }
            else
            {
                slab = nodes[node].Partial;
            }
            slab ??= NewSlab(s, gfp, node, caller);
            if (slab is null) return 0;

            int index = slab.FreeStack[--slab.FreeCount];
            slab.Allocated[index] = true;
            s.Active++;
            if (slab.FreeCount == 0) RemovePartial(nodes[slab.Node], slab);
            ulong obj = slab.Va + (ulong)index * s.SlotSize + s.RedPad;
            if (s.Debug && !AllocDebug(s, slab, obj, caller)) continue;   // "Marking all objects used": try another slab
            if ((gfp & Gfp.Zero) != 0) Zero(obj, s.ObjectSize);
            return obj;
        }
    }

    // memset(obj, 0, size) through the MMU; small objects from a small zeroed buffer.
    private void Zero(ulong va, uint bytes)
    {
        if (bytes <= 512)
        {
            Span<byte> zero = stackalloc byte[512];
            _mem.WriteBytes(va, zero[..(int)bytes]);
        }
        else
        {
            _mem.Fill(va, 0, bytes);
        }
    }

    private bool ShouldFailslab(KmemCache s, Gfp gfp)
    {
        // should_failslab (mm/failslab.c): never for __GFP_NOFAIL; the fault_attr consumes object_size from "space".
        if ((gfp & Gfp.NoFail) != 0) return false;
        long timesBefore = _failslab.Times;
        if (!_failslab.ShouldFail(s.ObjectSize)) return false;
        if ((gfp & Gfp.NoWarn) == 0)
        {
            // fail_dump (lib/fault-inject.c), verbose=2 without the stack.
            _log.Print("FAULT_INJECTION: forcing a failure.");
            _log.Print(string.Create(CultureInfo.InvariantCulture,
                $"name {_failslab.Name}, interval {_failslab.Interval}, probability {_failslab.Probability}, space {_failslab.Space}, times {timesBefore}"));
        }
        return true;
    }

    // new_slab / allocate_slab: the preferred order without warnings or retries, then the minimum order with the
    // caller's own mask (so __GFP_NOFAIL holds there).
    private Slab? NewSlab(KmemCache s, Gfp gfp, int node, string caller)
    {
        if ((gfp & SlabBugMask) != 0) gfp = FixFlags(gfp);
        if (s.Constructor is not null && (gfp & Gfp.Zero) != 0)
            _log.WarnOnce("slub:new_slab:ctor+__GFP_ZERO", "------------[ cut here ]------------", "mm/slub.c:new_slab");
        Gfp flags = (gfp & SlabPageMask) | s.AllocFlags | (s.Order > 0 ? Gfp.Comp : Gfp.None);
        Gfp first = (flags | Gfp.NoWarn | Gfp.NoRetry) & ~Gfp.NoFail;
        if ((first & Gfp.DirectReclaim) != 0 && s.Order > s.MinOrder) first = (first | Gfp.NoMemAlloc) & ~Gfp.Reclaim;
        int order = s.Order;
        ulong? pa = _pages.AllocPages(first, order, node, caller);
        if (pa is null)
        {
            order = s.MinOrder;
            if (order == 0) flags &= ~Gfp.Comp;
            pa = _pages.AllocPages(flags, order, node, caller);
        }
        if (pa is not { } p)
        {
            SlabOutOfMemory(s, gfp, node);
            return null;
        }

        int objects = KmemCache.ObjectsFor(order, s.SlotSize);
        var slab = new Slab(s, p, _pageOffset + p, _pages.NodeOf(p), order, objects);
        if (s.Debug || s.Constructor is not null)
        {
            try
            {
                SetupSlab(s, slab);
            }
            catch
            {
                _pages.FreePages(p, order, caller);
                throw;
            }
        }
        _map.Set(p >> KmemCache.PageShift, 1UL << order, slab);
        var n = s.Nodes[slab.Node];
        slab.AllIndex = n.All.Count;
        n.All.Add(slab);
        AddPartial(n, slab);
        s.Total += objects;
        s.SlabCount++;
        return slab;
    }

    // setup_slab_debug (POISON_INUSE over the slab), then per object setup_object_debug (inactive red zones and
    // poison) and the constructor.
    private void SetupSlab(KmemCache s, Slab slab)
    {
        if ((s.Flags & SlabFlags.Poison) != 0) _mem.Fill(slab.Va, PoisonInuse, slab.Bytes);
        for (int i = 0; i < slab.Objects; i++)
        {
            ulong obj = slab.ObjectAddress(i);
            if (s.Debug) InitObject(s, obj, RedInactive);
            s.Constructor?.Invoke(obj);
        }
    }

    private Gfp FixFlags(Gfp gfp)
    {
        // kmalloc_fix_flags (mm/slab_common.c): this is why kmalloc(GFP_DMA32) gives no DMA32 memory.
        Gfp invalid = gfp & SlabBugMask, fixedMask = gfp & ~SlabBugMask;
        _log.Print($"Unexpected gfp: {HexMask(invalid)} ({GfpNames.Format(invalid)}). Fixing up to gfp: {HexMask(fixedMask)} ({GfpNames.Format(fixedMask)}). Fix your code!");
        return fixedMask;
    }

    private void SlabOutOfMemory(KmemCache s, Gfp gfp, int node)
    {
        // slab_out_of_memory (mm/slub.c), not rate limited.
        if ((gfp & Gfp.NoWarn) != 0) return;
        _log.Print($"SLUB: Unable to allocate memory on node {node}, gfp={HexMask(gfp)}({GfpNames.Format(gfp)})");
        _log.Print($"  cache: {s.Name}, object size: {s.ObjectSize}, buffer size: {s.Size}, default order: {s.Order}, min order: {s.MinOrder}");
        if (s.MinOrder > KmemCache.GetOrder(s.ObjectSize))
            _log.Print($"  {s.Name} debugging increased min order, use slab_debug=O to disable.");
        for (int i = 0; i < s.Nodes.Length; i++)
        {
            var n = s.Nodes[i];
            long slabs = n.All.Count, objs = 0, free = 0;
            foreach (var slab in n.All)
            {
                objs += slab.Objects;
                free += slab.FreeCount;
            }
            _log.Print($"  node {i}: slabs: {slabs}, objs: {objs}, free: {free}");
        }
    }

    // ---------------------------------------------------------------- free

    internal void Kfree(ulong va, string caller)
    {
        if (va <= ZeroSizePtr) return;   // ZERO_OR_NULL_PTR
        ulong pa = va - _pageOffset;
        if (va < _pageOffset || pa >= _ramEnd)
        {
            NonLinearAddress(va, caller);
            return;
        }
        object? owner = _map.Get(pa >> KmemCache.PageShift);
        if (owner is Slab slab) SlabFree(slab.Cache, slab, va, caller);
        else if (owner is LargeKmalloc large) FreeLarge(large, va, caller);
        else NotKmalloc(va, caller);
    }

    internal void KmemCacheFree(KmemCache s, ulong va, string caller)
    {
        // cache_from_obj / virt_to_cache, always checked (SLAB_CONSISTENCY_CHECKS behaviour).
        ulong pa = va - _pageOffset;
        var slab = va >= _pageOffset && pa < _ramEnd ? _map.Get(pa >> KmemCache.PageShift) as Slab : null;
        if (slab is null)
        {
            _log.WarnOnce("slab:virt_to_cache", "virt_to_cache: Object is not a Slab page!", "mm/slab.h:virt_to_cache");
            return;
        }
        if (slab.Cache != s)
        {
            _log.Warn($"cache_from_obj: Wrong slab cache. {s.Name} but object is from {slab.Cache.Name}", "mm/slab.h:cache_from_obj");
        }
        SlabFree(slab.Cache, slab, va, caller);
    }

    private void SlabFree(KmemCache s, Slab slab, ulong va, string caller)
    {
        ulong rel = va - slab.Va - s.RedPad;
        ulong index = rel / s.SlotSize;
        if (va < slab.Va + s.RedPad || rel - index * s.SlotSize != 0 || index >= (ulong)slab.Objects)
        {
            InvalidObjectPointer(s, slab, va, caller);
            return;
        }
        int i = (int)index;
        if (!slab.Allocated[i])
        {
            ObjectErr(s, slab, va, "Object already free", caller);
            SlabFix(s, $"Object at 0x{va:x16} not freed");
            return;
        }
        if (s.Debug && !FreeDebug(s, slab, va, caller)) return;

        slab.Allocated[i] = false;
        slab.FreeStack[slab.FreeCount++] = i;
        s.Active--;
        var n = s.Nodes[slab.Node];
        if (slab.FreeCount == slab.Objects && n.NrPartial >= s.MinPartial)
        {
            DiscardSlab(s, slab);
            return;
        }
        if (!slab.OnPartial) AddPartial(n, slab);
    }

    private void FreeLarge(LargeKmalloc large, ulong va, string caller)
    {
        if (va != large.Va)
        {
            // Linux frees the whole folio here; the model refuses an interior pointer and says so.
            _log.Warn($"kfree: 0x{va:x16} points {va - large.Va} bytes into the {large.Size}-byte kmalloc at 0x{large.Va:x16}, not at its start; not freed",
                "mm/slub.c:free_large_kmalloc");
            return;
        }
        _map.Set(large.Pa >> KmemCache.PageShift, 1UL << large.Order, null);
        _pages.FreePages(large.Pa, large.Order, caller);
    }

    // discard_slab / free_slab: the debug checks of __free_slab, then the pages back to the buddy allocator.
    private void DiscardSlab(KmemCache s, Slab slab)
    {
        var n = s.Nodes[slab.Node];
        if (slab.OnPartial) RemovePartial(n, slab);
        var last = n.All[^1];
        n.All[slab.AllIndex] = last;
        last.AllIndex = slab.AllIndex;
        n.All.RemoveAt(n.All.Count - 1);
        if (s.Debug)
        {
            SlabPadCheck(s, slab, "__free_slab");
            for (int i = 0; i < slab.Objects; i++)
                if (!slab.Allocated[i]) CheckObject(s, slab, slab.ObjectAddress(i), RedInactive, "__free_slab");
        }
        _map.Set(slab.Pa >> KmemCache.PageShift, 1UL << slab.Order, null);
        s.Total -= slab.Objects;
        s.SlabCount--;
        _pages.FreePages(slab.Pa, slab.Order, "__free_slab");
    }

    private static void AddPartial(KmemCacheNode n, Slab slab)
    {
        slab.Prev = null;
        slab.Next = n.Partial;
        if (n.Partial is not null) n.Partial.Prev = slab;
        n.Partial = slab;
        slab.OnPartial = true;
        n.NrPartial++;
    }

    private static void RemovePartial(KmemCacheNode n, Slab slab)
    {
        if (slab.Prev is not null) slab.Prev.Next = slab.Next;
        else n.Partial = slab.Next;
        if (slab.Next is not null) slab.Next.Prev = slab.Prev;
        slab.Prev = slab.Next = null;
        slab.OnPartial = false;
        n.NrPartial--;
    }

    // ---------------------------------------------------------------- ksize, caches

    internal ulong Ksize(ulong va, string caller)
    {
        if (va <= ZeroSizePtr) return 0;
        ulong pa = va - _pageOffset;
        if (va < _pageOffset || pa >= _ramEnd)
        {
            NonLinearAddress(va, caller);
            return 0;
        }
        switch (_map.Get(pa >> KmemCache.PageShift))
        {
            case Slab slab:
                return slab.Cache.Ksize;
            case LargeKmalloc large:
                return 4096UL << large.Order;
            default:
                // __ksize: WARN_ON(folio_size(folio) <= KMALLOC_MAX_CACHE_SIZE) for a page that is no slab.
                _log.Warn("------------[ cut here ]------------", "mm/slab_common.c:__ksize");
                return 0;
        }
    }

    /// <summary>The owner of the page at <paramref name="va"/>, for tests and tools: its cache, or null.</summary>
    internal KmemCache? CacheOf(ulong va)
    {
        ulong pa = va - _pageOffset;
        if (va < _pageOffset || pa >= _ramEnd) return null;
        return (_map.Get(pa >> KmemCache.PageShift) as Slab)?.Cache;
    }

    internal KmemCache? Create(string name, ulong size, ulong align, SlabFlags flags, Action<ulong>? ctor, string caller)
    {
        const SlabFlags permitted = SlabFlags.ConsistencyChecks | SlabFlags.RedZone | SlabFlags.Poison | SlabFlags.HwcacheAlign
            | SlabFlags.CacheDma | SlabFlags.CacheDma32 | SlabFlags.Panic;
        // kmem_cache_sanity_check (CONFIG_DEBUG_VM) and the model's own refusals of what would crash Linux:
        // size 0, an alignment that is not a power of two.
        if (size == 0 || size > KmallocMaxSize || (align & (align - 1)) != 0 || align > KmallocMaxSize)
        {
            _log.Print($"kmem_cache_create({name}) integrity check failed");
            return CreateFailed(name, flags, caller);
        }
        if ((flags & ~permitted) != 0 || (flags & (SlabFlags.CacheDma | SlabFlags.CacheDma32)) == (SlabFlags.CacheDma | SlabFlags.CacheDma32))
            return CreateFailed(name, flags, caller);
        var cache = KmemCache.Create(name, (uint)size, (uint)align, flags, ctor, kmalloc: false, _nodeCount, _cpus);
        if (cache is null) return CreateFailed(name, flags, caller);
        _caches.Add(cache);
        return cache;
    }

    private KmemCache? CreateFailed(string name, SlabFlags flags, string caller)
    {
        const int einval = -22;
        if ((flags & SlabFlags.Panic) != 0)
        {
            string panic = $"Kernel panic - not syncing: kmem_cache_create_usercopy: Failed to create slab '{name}'. Error {einval}";
            _log.Print(panic);
            throw new KernelStopException(panic);
        }
        _log.Print($"kmem_cache_create_usercopy({name}) failed with error {einval}");
        DumpStack(caller);
        return null;
    }

    internal void Destroy(KmemCache s, string caller)
    {
        // shutdown_cache / __kmem_cache_shutdown / free_partial: empty slabs go back, slabs with objects are listed.
        bool remaining = false;
        for (int node = 0; node < s.Nodes.Length; node++)
        {
            foreach (var slab in s.Nodes[node].All.ToArray())
            {
                if (slab.InUse == 0)
                {
                    DiscardSlab(s, slab);
                    continue;
                }
                remaining = true;
                SlabErr(s, slab, $"Objects remaining in {s.Name} on __kmem_cache_shutdown()", caller);
                for (int i = 0; i < slab.Objects; i++)
                    if (slab.Allocated[i])
                    {
                        ulong obj = slab.ObjectAddress(i);
                        _log.Print($"Object 0x{obj:x16} @offset={obj - slab.Va}");
                    }
            }
        }
        if (remaining)
        {
            _log.Warn($"kmem_cache_destroy {s.Name}: Slab cache still has objects when called from {caller}", "mm/slab_common.c:kmem_cache_destroy");
            return;
        }
        _caches.Remove(s);
        s.Destroyed = true;
    }

    internal int Shrink(KmemCache s)
    {
        // __kmem_cache_do_shrink: every empty slab on the partial lists goes back to the page allocator.
        int ret = 0;
        foreach (var n in s.Nodes)
        {
            for (var slab = n.Partial; slab is not null;)
            {
                var next = slab.Next;
                if (slab.InUse == 0) DiscardSlab(s, slab);
                slab = next;
            }
            if (n.NrPartial != 0 || n.All.Count != 0) ret = 1;
        }
        return ret;
    }

    internal int Validate(KmemCache s, string caller)
    {
        // validate_slab_cache: check_slab, then every object against the value its state implies.
        int errors = 0;
        foreach (var n in s.Nodes)
            foreach (var slab in n.All.ToArray())
            {
                if (!SlabPadCheck(s, slab, caller)) errors++;
                for (int i = 0; i < slab.Objects; i++)
                    if (!CheckObject(s, slab, slab.ObjectAddress(i), slab.Allocated[i] ? RedActive : RedInactive, caller))
                    {
                        errors++;
                        break;
                    }
            }
        return errors;
    }

    internal string FormatSlabInfo()
    {
        // slab_show / cache_show (mm/slab_common.c) with SLUB's get_slabinfo: tunables and shared are 0, active_slabs = num_slabs.
        var sb = new StringBuilder();
        sb.Append("slabinfo - version: 2.1\n");
        sb.Append("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>");
        sb.Append(" : tunables <limit> <batchcount> <sharedfactor>");
        sb.Append(" : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
        for (int i = _caches.Count - 1; i >= 0; i--)
        {
            var s = _caches[i];
            sb.Append(CultureInfo.InvariantCulture, $"{s.Name,-17} {s.Active,6} {s.Total,6} {s.Size,6} {s.ObjectsPerSlab,4} {1 << s.Order,4}");
            sb.Append(CultureInfo.InvariantCulture, $" : tunables {0,4} {0,4} {0,4}");
            sb.Append(CultureInfo.InvariantCulture, $" : slabdata {s.SlabCount,6} {s.SlabCount,6} {0,6}\n");
        }
        return sb.ToString();
    }

    private static string HexMask(Gfp gfp) => gfp == Gfp.None ? "0" : $"0x{(uint)gfp:x}";   // %#x
}
