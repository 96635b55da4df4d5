using System.Runtime.CompilerServices;

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
/// The buddy page allocator (mm/page_alloc.c): per-node zones DMA, DMA32 and Normal, orders 0 to 10 with split and
/// merge, per-zone free lists, zone fallback (Normal → DMA32 → DMA), GFP semantics, fail_page_alloc fault injection
/// and Linux's "page allocation failure" report. Allocation state lives in the model (like struct page); the
/// memory itself is emulated RAM, zeroed for __GFP_ZERO through the supplied callback.
/// </summary>
public sealed class PageAllocator
{
    /// <summary>MAX_PAGE_ORDER: the largest order, 10 (4 MiB blocks).</summary>
    public const int MaxOrder = 10;
    /// <summary>NUMA_NO_NODE.</summary>
    public const int NumaNoNode = -1;
    /// <summary>PAGE_SIZE.</summary>
    public const ulong PageSize = 4096;

    /// <summary>Creates the allocator over <paramref name="freeRanges"/>.</summary>
    /// <param name="freeRanges">Free RAM handed over by boot (memblock), page aligned.</param>
    /// <param name="nodeCount">Number of NUMA nodes (1 to 64).</param>
    /// <param name="log">The kernel log for reports.</param>
    /// <param name="zeroPhysical">Zeroes [pa, pa+bytes) in emulated RAM (the kernel does it through the direct map).</param>
    public PageAllocator(IEnumerable<PhysRange> freeRanges, int nodeCount, KernelLog log, Action<ulong, ulong> zeroPhysical)
    {
        throw new NotImplementedException();
    }

    /// <summary>The zones of every node, node-major, DMA first.</summary>
    public IReadOnlyList<Zone> Zones => throw new NotImplementedException();
    /// <summary>Number of NUMA nodes.</summary>
    public int NodeCount => throw new NotImplementedException();
    /// <summary>Free pages in all zones.</summary>
    public long FreePageCount => throw new NotImplementedException();
    /// <summary>Pages managed (free or allocated) in all zones.</summary>
    public long ManagedPageCount => throw new NotImplementedException();
    /// <summary>fail_page_alloc.</summary>
    public FaultInjection FailPageAlloc => throw new NotImplementedException();

    /// <summary>
    /// alloc_pages_node: 2^<paramref name="order"/> contiguous pages; returns the physical address of the first, or
    /// null (never null with __GFP_NOFAIL: a truly exhausted machine stops with <see cref="KernelStopException"/>).
    /// </summary>
    public ulong? AllocPages(Gfp gfp, int order, int nid = NumaNoNode, [CallerMemberName] string caller = "")
        => throw new NotImplementedException();

    /// <summary>__free_pages. A free of a page that is not allocated with that order is reported ("BUG: Bad page state") and ignored.</summary>
    public void FreePages(ulong pa, int order, [CallerMemberName] string caller = "") => throw new NotImplementedException();

    /// <summary>The node of a managed physical address.</summary>
    public int NodeOf(ulong pa) => throw new NotImplementedException();

    /// <summary>/proc/buddyinfo.</summary>
    public string FormatBuddyInfo() => throw new NotImplementedException();
}

/// <summary>One zone of one node.</summary>
public sealed class Zone
{
    internal Zone(int node, ZoneType type) { Node = node; Type = type; }

    /// <summary>NUMA node.</summary>
    public int Node { get; }
    /// <summary>Zone type.</summary>
    public ZoneType Type { get; }
    /// <summary>"DMA", "DMA32" or "Normal".</summary>
    public string Name => Type switch { ZoneType.Dma => "DMA", ZoneType.Dma32 => "DMA32", _ => "Normal" };
    /// <summary>Pages managed by this zone.</summary>
    public long ManagedPages { get; internal set; }
    /// <summary>Free pages.</summary>
    public long FreePages { get; internal set; }
    internal readonly long[] FreeBlocks = new long[PageAllocator.MaxOrder + 1];
    /// <summary>Free blocks of an order.</summary>
    public long FreeBlocksOfOrder(int order) => FreeBlocks[order];
}
