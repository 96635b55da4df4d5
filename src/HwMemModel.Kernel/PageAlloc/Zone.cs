namespace HwMemModel.Kernel;

/// <summary>Memory zones of x86-64 Linux.</summary>
public enum ZoneType
{
    /// <summary>ZONE_DMA: below 16 MiB.</summary>
    Dma = 0,
    /// <summary>ZONE_DMA32: below 4 GiB.</summary>
    Dma32 = 1,
    /// <summary>ZONE_NORMAL: the rest.</summary>
    Normal = 2,
}

/// <summary>A physical range [Start, End) of free RAM on a NUMA node, page aligned.</summary>
/// <param name="Start">First byte.</param>
/// <param name="End">One past the last byte.</param>
/// <param name="Node">NUMA node.</param>
public readonly record struct PhysRange(ulong Start, ulong End, int Node);

/// <summary>
/// One zone of one node (struct zone). Its counters are views of the allocator's state; every zone of every node
/// exists, and a zone with no managed pages is "unpopulated" (absent from /proc/buddyinfo and from zonelists).
/// </summary>
public sealed class Zone
{
    private readonly PageAllocator _owner;
    private readonly int _index;

    internal Zone(PageAllocator owner, int index, int node, ZoneType type)
    {
        _owner = owner;
        _index = index;
        Node = node;
        Type = type;
    }

    /// <summary>NUMA node.</summary>
    public int Node { get; }
    /// <summary>Zone type.</summary>
    public ZoneType Type { get; }
    /// <summary>"DMA", "DMA32" or "Normal".</summary>
    public string Name => Type switch { ZoneType.Dma => "DMA", ZoneType.Dma32 => "DMA32", _ => "Normal" };
    /// <summary>Pages managed by this zone (managed_pages): the free RAM handed over at boot.</summary>
    public long ManagedPages { get; internal set; }
    /// <summary>Free pages (NR_FREE_PAGES): the pages in this zone's free lists.</summary>
    public long FreePages => _owner.ZoneFreePages(_index);

    /// <summary>Free blocks of an order (free_area[order].nr_free).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="order"/> is not 0 to 10.</exception>
    public long FreeBlocksOfOrder(int order)
    {
        if ((uint)order > PageAllocator.MaxOrder)
            throw new ArgumentOutOfRangeException(nameof(order), order, $"order must be 0 to {PageAllocator.MaxOrder} (MAX_PAGE_ORDER).");
        return _owner.ZoneFreeBlocks(_index, order);
    }

    /// <summary>
    /// The min watermark in pages (watermark[WMARK_MIN]); 0 (the default) disables the check. An allocation may take
    /// pages from this zone only if at least this many pages stay free afterwards; __GFP_HIGH may dip to half of it
    /// (and to 3/8 of it when it also cannot reclaim, as GFP_ATOMIC), __GFP_MEMALLOC ignores it, and a __GFP_NOFAIL
    /// allocation ignores it before giving up.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public long WatermarkMin
    {
        get => _owner.ZoneWatermarkMin(_index);
        set
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), value, "WatermarkMin is a page count, 0 or more.");
            _owner.SetZoneWatermarkMin(_index, value);
        }
    }

    /// <summary>"Node 0, zone DMA32".</summary>
    public override string ToString() => $"Node {Node}, zone {Name}";
}
