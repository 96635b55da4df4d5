namespace HwMemModel.Kernel;

/// <summary>
/// Flags of <see cref="Kernel.KmemCacheCreate"/> with Linux's SLAB_* values (include/linux/slab.h, 2.6 to 6.7; 6.8
/// renumbered them as bit positions of an enum, which changes the numbers but not the meaning).
/// </summary>
[Flags]
public enum SlabFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>
    /// SLAB_CONSISTENCY_CHECKS (slub_debug=F). Accepted and implied: the model always makes the checks its metadata
    /// allows (double free, invalid pointer, wrong cache) because they cost it nothing.
    /// </summary>
    ConsistencyChecks = 0x0000_0100,
    /// <summary>SLAB_RED_ZONE: red zones around each object, 0xbb (SLUB_RED_INACTIVE) while free, 0xcc (SLUB_RED_ACTIVE) while allocated.</summary>
    RedZone = 0x0000_0400,
    /// <summary>SLAB_POISON: free objects filled with 0x6b (POISON_FREE) ending in 0xa5 (POISON_END); padding 0x5a (POISON_INUSE).</summary>
    Poison = 0x0000_0800,
    /// <summary>SLAB_HWCACHE_ALIGN: align objects on a cache line (64 bytes), halved while the object fits in half.</summary>
    HwcacheAlign = 0x0000_2000,
    /// <summary>SLAB_CACHE_DMA: slab pages from ZONE_DMA.</summary>
    CacheDma = 0x0000_4000,
    /// <summary>SLAB_CACHE_DMA32: slab pages from ZONE_DMA32 (or below).</summary>
    CacheDma32 = 0x0000_8000,
    /// <summary>SLAB_PANIC: a failure to create the cache panics (the model stops with <see cref="KernelStopException"/>).</summary>
    Panic = 0x0004_0000,
}
