using System.Runtime.CompilerServices;

namespace HwMemModel.Kernel;

// kmalloc and the slab allocator (include/linux/slab.h, mm/slab_common.c, mm/slub.c) with .NET casing. Pointers are
// kernel virtual addresses (direct-map addresses of physically contiguous memory); 0 is NULL.
public sealed partial class Kernel
{
    /// <summary>ZERO_SIZE_PTR: what kmalloc(0) returns; <see cref="Kfree"/> ignores it, dereferencing it faults.</summary>
    public const ulong ZeroSizePtr = SlabAllocator.ZeroSizePtr;
    /// <summary>KMALLOC_MAX_CACHE_SIZE: the largest kmalloc served by a slab cache (kmalloc-8k); larger sizes take whole pages.</summary>
    public const ulong KmallocMaxCacheSize = SlabAllocator.KmallocMaxCacheSize;
    /// <summary>KMALLOC_MAX_SIZE: the largest kmalloc, 4 MiB (one block of MAX_PAGE_ORDER).</summary>
    public const ulong KmallocMaxSize = SlabAllocator.KmallocMaxSize;

    private SlabAllocator? _slab;

    /// <summary>
    /// failslab: fault injection consulted once per slab object allocation (kmalloc up to 8 KiB, kmem_cache_alloc), never
    /// for __GFP_NOFAIL; its "space" is consumed by the cache's object size. Large kmallocs are governed by the page
    /// allocator's fail_page_alloc instead, as in Linux. Unlike Linux's default (ignore-gfp-wait=Y) it also fails
    /// allocations that may sleep, so <c>Failslab.Configure(100, interval: 3, times: 1)</c> fails the third GFP_KERNEL
    /// kmalloc. An injected failure logs "FAULT_INJECTION: forcing a failure." and the attributes unless __GFP_NOWARN.
    /// </summary>
    public FaultInjection Failslab { get; } = new("failslab");

    internal SlabAllocator SlabAllocator => _slab ??= new SlabAllocator(this, Failslab);

    /// <summary>slab_caches: every live cache, oldest first (the kmalloc size classes, then those from <see cref="KmemCacheCreate"/>).</summary>
    public IReadOnlyList<KmemCache> SlabCaches => SlabAllocator.Caches;

    /// <summary>
    /// kmalloc: <paramref name="size"/> bytes of physically contiguous memory in the direct map, or 0.
    /// </summary>
    /// <remarks>
    /// Sizes 1 to 8192 come from the size classes kmalloc-8, 16, 32, 64, 96, 128, 192, 256, 512, 1k, 2k, 4k, 8k (65-96
    /// bytes use kmalloc-96, 129-192 kmalloc-192); with __GFP_DMA from the dma-kmalloc-N caches, whose pages are in
    /// ZONE_DMA. __GFP_DMA32 (and __GFP_HIGHMEM) have no caches: when a new slab or a large kmalloc needs pages the flag
    /// is dropped with Linux's "Unexpected gfp: 0x4 (GFP_DMA32). Fixing up to gfp: … Fix your code!". Larger sizes take
    /// 2^get_order(size) pages straight from the page allocator (__GFP_COMP); above 4 MiB the page allocator refuses
    /// the order with its one-time WARNING unless __GFP_NOWARN. size 0 returns <see cref="ZeroSizePtr"/>.
    /// __GFP_ZERO zeroes the object through the MMU. Returns 0 on failure (failslab, no memory; the reports are
    /// "SLUB: Unable to allocate memory on node …" and the page allocator's "page allocation failure"); never 0 with
    /// __GFP_NOFAIL (the page allocator stops the machine instead when memory is truly gone).
    /// </remarks>
    /// <param name="size">Bytes.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="caller">Who allocates (reports name it).</param>
    public ulong Kmalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => SlabAllocator.Kmalloc(size, gfp, PageAllocator.NumaNoNode, caller);

    /// <summary>kzalloc: <see cref="Kmalloc"/> with __GFP_ZERO.</summary>
    /// <param name="size">Bytes.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="caller">Who allocates.</param>
    public ulong Kzalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => SlabAllocator.Kmalloc(size, gfp | Gfp.Zero, PageAllocator.NumaNoNode, caller);

    /// <summary>
    /// kmalloc_node: like <see cref="Kmalloc"/>, with the memory from NUMA node <paramref name="node"/>: the object comes
    /// from a slab of that node (a new slab's pages are asked of that node; the page allocator may fall back to another
    /// node when it has none, as Linux's does without __GFP_THISNODE).
    /// </summary>
    /// <param name="size">Bytes.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="node">Node, or -1 (NUMA_NO_NODE).</param>
    /// <param name="caller">Who allocates.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="node"/> is not a node of this machine.</exception>
    public ulong KmallocNode(ulong size, Gfp gfp, int node, [CallerMemberName] string caller = "")
        => SlabAllocator.Kmalloc(size, gfp, SlabCheckNode(node), caller);

    /// <summary>kzalloc_node: <see cref="KmallocNode"/> with __GFP_ZERO.</summary>
    /// <param name="size">Bytes.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="node">Node, or -1 (NUMA_NO_NODE).</param>
    /// <param name="caller">Who allocates.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="node"/> is not a node of this machine.</exception>
    public ulong KzallocNode(ulong size, Gfp gfp, int node, [CallerMemberName] string caller = "")
        => SlabAllocator.Kmalloc(size, gfp | Gfp.Zero, SlabCheckNode(node), caller);

    /// <summary>kmalloc_array: <paramref name="n"/> × <paramref name="size"/> bytes; 0 (silently) when the product overflows.</summary>
    /// <param name="n">Elements.</param>
    /// <param name="size">Bytes per element.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="caller">Who allocates.</param>
    public ulong KmallocArray(ulong n, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
    {
        ulong high = Math.BigMul(n, size, out ulong bytes);
        if (high != 0) return 0;   // check_mul_overflow
        return SlabAllocator.Kmalloc(bytes, gfp, PageAllocator.NumaNoNode, caller);
    }

    /// <summary>kcalloc: <see cref="KmallocArray"/> with __GFP_ZERO.</summary>
    /// <param name="n">Elements.</param>
    /// <param name="size">Bytes per element.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="caller">Who allocates.</param>
    public ulong Kcalloc(ulong n, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => KmallocArray(n, size, gfp | Gfp.Zero, caller);

    /// <summary>
    /// krealloc: <paramref name="p"/> resized to <paramref name="newSize"/>. The same pointer when the new size fits in
    /// <see cref="Ksize"/>; otherwise a new kmalloc, the old ksize bytes copied through the MMU and the old object freed
    /// (on failure 0 and <paramref name="p"/> untouched). krealloc(NULL, n) is kmalloc(n); krealloc(p, 0) frees
    /// <paramref name="p"/> and returns <see cref="ZeroSizePtr"/>.
    /// </summary>
    /// <param name="p">The object, 0 or <see cref="ZeroSizePtr"/>.</param>
    /// <param name="newSize">Bytes.</param>
    /// <param name="gfp">GFP mask for a new allocation.</param>
    /// <param name="caller">Who reallocates.</param>
    public ulong Krealloc(ulong p, ulong newSize, Gfp gfp, [CallerMemberName] string caller = "")
    {
        var slab = SlabAllocator;
        if (newSize == 0)
        {
            slab.Kfree(p, caller);
            return ZeroSizePtr;
        }
        ulong ks = p > ZeroSizePtr ? slab.Ksize(p, caller) : 0;
        if (ks >= newSize) return p;
        ulong ret = slab.Kmalloc(newSize, gfp, PageAllocator.NumaNoNode, caller);
        if (ret == 0) return 0;
        if (ks > 0) SlabCopy(ret, p, ks);
        if (ret != p) slab.Kfree(p, caller);
        return ret;
    }

    /// <summary>
    /// ksize: the usable size of an allocation: the size class for kmalloc (100 → 128), the slot size of a cache object
    /// (the object size with SLAB_RED_ZONE or SLAB_POISON), the page-rounded size of a large kmalloc; 0 for 0 and
    /// <see cref="ZeroSizePtr"/>. An address that is no allocation is reported (a WARNING) and gives 0.
    /// </summary>
    /// <param name="p">The object.</param>
    /// <param name="caller">Who asks.</param>
    public ulong Ksize(ulong p, [CallerMemberName] string caller = "") => SlabAllocator.Ksize(p, caller);

    /// <summary>
    /// kfree: frees what <see cref="Kmalloc"/> (or any slab cache) returned. 0 and <see cref="ZeroSizePtr"/> do nothing.
    /// </summary>
    /// <remarks>
    /// Checked and reported in Linux's words, never corrupting the allocator and never throwing: a pointer that is not the
    /// start of an object of its slab ("BUG kmalloc-64 (Not tainted): Invalid object pointer 0x…"), a double free
    /// ("Object already free"), with SLAB_RED_ZONE/SLAB_POISON overwritten red zones or padding ("Right Redzone
    /// overwritten", then "FIX …: Object at 0x… not freed"), a direct-map page that holds no kmalloc memory (WARNING,
    /// "page dumped because: Not a kmalloc allocation"), an address outside the direct map ("virt_to_phys used for
    /// non-linear address"). A pointer into the middle of a large kmalloc is refused with a WARNING (Linux would free
    /// the whole allocation).
    /// </remarks>
    /// <param name="p">The object.</param>
    /// <param name="caller">Who frees (reports name it).</param>
    public void Kfree(ulong p, [CallerMemberName] string caller = "") => SlabAllocator.Kfree(p, caller);

    /// <summary>kfree_sensitive: zeroes <see cref="Ksize"/> bytes through the MMU, then <see cref="Kfree"/>.</summary>
    /// <param name="p">The object.</param>
    /// <param name="caller">Who frees.</param>
    public void KfreeSensitive(ulong p, [CallerMemberName] string caller = "")
    {
        var slab = SlabAllocator;
        if (p > ZeroSizePtr)
        {
            ulong ks = slab.Ksize(p, caller);
            if (ks > 0) Memory.Fill(p, 0, ks);
        }
        slab.Kfree(p, caller);
    }

    /// <summary>
    /// kmem_cache_create: a cache of <paramref name="size"/>-byte objects, or null (logged: "kmem_cache_create_usercopy(name)
    /// failed with error -22", after "kmem_cache_create(name) integrity check failed" for a size of 0 or above
    /// KMALLOC_MAX_SIZE or an alignment that is not a power of two). With <see cref="SlabFlags.Panic"/> a failure stops
    /// the machine. The layout and slab order follow SLUB (see <see cref="KmemCache"/>).
    /// </summary>
    /// <param name="name">Name in /proc/slabinfo and reports.</param>
    /// <param name="size">Object size in bytes.</param>
    /// <param name="align">Required alignment (0 or a power of two; at least 8 is used).</param>
    /// <param name="flags">SLAB_* flags.</param>
    /// <param name="ctor">Constructor, run on each object (its address) when a slab is created, or null.</param>
    /// <param name="caller">Who creates.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="KernelStopException">Creation failed and <paramref name="flags"/> has <see cref="SlabFlags.Panic"/>.</exception>
    public KmemCache? KmemCacheCreate(string name, uint size, uint align, SlabFlags flags, Action<ulong>? ctor, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(name);
        return SlabAllocator.Create(name, size, align, flags, ctor, caller);
    }

    /// <summary>kmem_cache_alloc: one object of <paramref name="cache"/>, or 0 (see <see cref="Kmalloc"/> for failures and __GFP_ZERO).</summary>
    /// <param name="cache">The cache.</param>
    /// <param name="gfp">GFP mask (zone modifiers are ignored: the cache's SLAB_CACHE_DMA/DMA32 decide).</param>
    /// <param name="caller">Who allocates.</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was destroyed.</exception>
    public ulong KmemCacheAlloc(KmemCache cache, Gfp gfp, [CallerMemberName] string caller = "")
        => SlabAllocator.Alloc(LiveCache(cache), gfp, PageAllocator.NumaNoNode, caller);

    /// <summary>kmem_cache_alloc_node: one object from a slab on <paramref name="node"/>.</summary>
    /// <param name="cache">The cache.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="node">Node, or -1 (NUMA_NO_NODE).</param>
    /// <param name="caller">Who allocates.</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was destroyed.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="node"/> is not a node of this machine.</exception>
    public ulong KmemCacheAllocNode(KmemCache cache, Gfp gfp, int node, [CallerMemberName] string caller = "")
        => SlabAllocator.Alloc(LiveCache(cache), gfp, SlabCheckNode(node), caller);

    /// <summary>kmem_cache_zalloc: <see cref="KmemCacheAlloc"/> with __GFP_ZERO.</summary>
    /// <param name="cache">The cache.</param>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="caller">Who allocates.</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was destroyed.</exception>
    public ulong KmemCacheZalloc(KmemCache cache, Gfp gfp, [CallerMemberName] string caller = "")
        => SlabAllocator.Alloc(LiveCache(cache), gfp | Gfp.Zero, PageAllocator.NumaNoNode, caller);

    /// <summary>
    /// kmem_cache_free: frees an object of <paramref name="cache"/>, with <see cref="Kfree"/>'s checks. An object of another
    /// cache gives Linux's WARNING "cache_from_obj: Wrong slab cache. A but object is from B" and is freed to its own
    /// cache; an address in no slab gives the one-time WARNING "virt_to_cache: Object is not a Slab page!".
    /// </summary>
    /// <param name="cache">The cache.</param>
    /// <param name="p">The object.</param>
    /// <param name="caller">Who frees.</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was destroyed.</exception>
    public void KmemCacheFree(KmemCache cache, ulong p, [CallerMemberName] string caller = "")
        => SlabAllocator.KmemCacheFree(LiveCache(cache), p, caller);

    /// <summary>
    /// kmem_cache_destroy: releases the cache and its empty slabs. With objects still allocated, Linux's report
    /// ("BUG name (…): Objects remaining in name on __kmem_cache_shutdown()", each object listed) and WARNING
    /// "kmem_cache_destroy name: Slab cache still has objects when called from caller"; the cache then stays alive and
    /// usable, and may be destroyed again once its objects are freed (Linux would leak it). Null does nothing.
    /// </summary>
    /// <param name="cache">The cache, or null.</param>
    /// <param name="caller">Who destroys (%pS in the warning).</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was already destroyed.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="cache"/> is a kmalloc size class.</exception>
    public void KmemCacheDestroy(KmemCache? cache, [CallerMemberName] string caller = "")
    {
        if (cache is null) return;
        if (cache.IsKmalloc) throw new InvalidOperationException($"{cache.Name} is a kmalloc cache; kmalloc caches live as long as the kernel.");
        SlabAllocator.Destroy(LiveCache(cache), caller);
    }

    /// <summary>
    /// Shrinks every cache (what <c>echo 1 &gt; /sys/kernel/slab/*/shrink</c> does): empty slabs go back to the page
    /// allocator. Leak checks take /proc/slabinfo and the free page count after this, so slabs a cache keeps for
    /// reuse do not look like leaks.
    /// </summary>
    public void ShrinkSlabCaches()
    {
        foreach (var cache in SlabAllocator.Caches.ToArray()) SlabAllocator.Shrink(cache);
    }

    /// <summary>
    /// kmem_cache_shrink: returns every empty slab of the cache to the page allocator (SLUB otherwise keeps up to
    /// <see cref="KmemCache.MinPartial"/> of them per node). Returns 0 when the cache holds no slab afterwards, else 1.
    /// </summary>
    /// <param name="cache">The cache.</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was destroyed.</exception>
    public int KmemCacheShrink(KmemCache cache) => SlabAllocator.Shrink(LiveCache(cache));

    /// <summary>
    /// /sys/kernel/slab/&lt;cache&gt;/validate: checks every object of the cache (red zones, poison, padding, as its
    /// state implies) and reports what is wrong as SLUB does. Returns the number of problems found.
    /// </summary>
    /// <param name="cache">The cache.</param>
    /// <param name="caller">Who validates.</param>
    /// <exception cref="ObjectDisposedException"><paramref name="cache"/> was destroyed.</exception>
    public int KmemCacheValidate(KmemCache cache, [CallerMemberName] string caller = "") => SlabAllocator.Validate(LiveCache(cache), caller);

    /// <summary>kmalloc_slab: the cache a kmalloc of <paramref name="size"/> (1 to 8192) with <paramref name="gfp"/> uses.</summary>
    /// <param name="size">Bytes, 1 to <see cref="KmallocMaxCacheSize"/>.</param>
    /// <param name="gfp">GFP mask (__GFP_DMA selects dma-kmalloc-N).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0 or above 8192 (no cache serves it).</exception>
    public KmemCache KmallocSlab(ulong size, Gfp gfp = Gfp.Kernel)
    {
        if (size == 0 || size > KmallocMaxCacheSize)
            throw new ArgumentOutOfRangeException(nameof(size), size, "kmalloc caches serve sizes 1 to 8192 (KMALLOC_MAX_CACHE_SIZE).");
        return SlabAllocator.KmallocSlab(size, gfp);
    }

    /// <summary>virt_to_cache without reports: the cache whose slab holds <paramref name="p"/>, or null (large kmalloc, free page, other memory).</summary>
    /// <param name="p">A kernel virtual address.</param>
    public KmemCache? SlabCacheOf(ulong p) => SlabAllocator.CacheOf(p);

    /// <summary>
    /// /proc/slabinfo: "slabinfo - version: 2.1", the "# name            &lt;active_objs&gt; …" header, then one line per cache,
    /// newest first, in cache_show's format "%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu"
    /// (SLUB: tunables 0 0 0, active_slabs = num_slabs, sharedavail 0).
    /// </summary>
    public string FormatSlabInfo() => SlabAllocator.FormatSlabInfo();

    private int SlabCheckNode(int node)
    {
        if (node != PageAllocator.NumaNoNode && (uint)node >= (uint)Pages.NodeCount)
            throw new ArgumentOutOfRangeException(nameof(node), node, $"node must be -1 (NUMA_NO_NODE) or 0 to {Pages.NodeCount - 1}.");
        return node;
    }

    private static KmemCache LiveCache(KmemCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.Destroyed) throw new ObjectDisposedException(cache.Name, $"kmem_cache {cache.Name} was destroyed.");
        return cache;
    }

    private void SlabCopy(ulong destination, ulong source, ulong bytes)
    {
        Span<byte> chunk = stackalloc byte[4096];
        for (ulong done = 0; done < bytes;)
        {
            int n = (int)Math.Min(4096UL, bytes - done);
            Memory.ReadBytes(source + done, chunk[..n]);
            Memory.WriteBytes(destination + done, chunk[..n]);
            done += (ulong)n;
        }
    }
}
