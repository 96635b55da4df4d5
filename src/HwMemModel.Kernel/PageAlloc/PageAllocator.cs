using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace HwMemModel.Kernel;

/// <summary>
/// The buddy page allocator (mm/page_alloc.c): per-node zones DMA, DMA32 and Normal, orders 0 to 10 with split and
/// merge, per-zone free lists, zone fallback (Normal → DMA32 → DMA), GFP semantics, fail_page_alloc fault injection
/// and Linux's "page allocation failure" report. Allocation state lives in the model (like struct page); the
/// memory itself is emulated RAM, zeroed for __GFP_ZERO through the supplied callback.
/// </summary>
/// <remarks>
/// <para>
/// State. Every page frame from the lowest to the highest managed pfn (rounded out to 4 MiB) has a 2-byte
/// descriptor, the model's struct page: bits 0-3 the order of the block it heads, bit 4 PageBuddy (head of a free
/// block), bit 5 head of an allocated block, bits 8-15 the zone index (node × 3 + zone type; 0xFF for a frame the
/// allocator does not manage: holes, reserved RAM). Pages that are not block heads carry only their zone.
/// Free lists are intrusive doubly linked lists: the links of a free block of order k live in per-order arrays
/// indexed by (pfn offset &gt;&gt; k), allocated lazily in chunks of 4096 blocks, so memory goes only to link slots
/// that are used. A fully free 64 GiB machine costs 2 bytes per page (32 MiB) plus 128 KiB of order-10 links.
/// </para>
/// <para>
/// Policy. Allocation walks the zonelist of the preferred node (NUMA_NO_NODE means node 0, the local node of CPU 0):
/// the node's zones from the highest the GFP mask allows down to DMA, then the other nodes in the order
/// preferred+1, …, last, 0, …, preferred−1 (equal SLIT distances; Linux's find_next_best_node prefers the next node
/// up), unless __GFP_THISNODE. In a zone it takes the smallest free block of at least the order (the head of that
/// free list), keeps the lower half and pushes the upper halves to the lower-order lists (expand). A free merges
/// with its buddy (pfn ^ (1 &lt;&lt; order)) while the buddy is a free block of the same order in the same zone, up
/// to order 10, and puts the result at the head of its list (LIFO; Linux's "merge likely → tail" heuristic, per-CPU
/// page lists, migrate types and shuffling are not modelled). Boot hands each free range over as maximal naturally
/// aligned blocks in the order memblock_free_all does, to the tail of the lists (FPI_TO_TAIL), so a fresh allocator
/// hands out the lowest addresses first.
/// </para>
/// <para>
/// Not thread-safe (zone->lock is the caller's business: the model runs one CPU at a time).
/// </para>
/// </remarks>
public sealed partial class PageAllocator
{
    /// <summary>MAX_PAGE_ORDER: the largest order, 10 (4 MiB blocks).</summary>
    public const int MaxOrder = 10;
    /// <summary>NUMA_NO_NODE.</summary>
    public const int NumaNoNode = -1;
    /// <summary>PAGE_SIZE.</summary>
    public const ulong PageSize = 4096;
    /// <summary>Largest node count the model accepts (MAX_NUMNODES of a NODES_SHIFT=6 kernel).</summary>
    public const int MaxNodes = 64;

    private const int PageShift = 12;
    private const int Orders = MaxOrder + 1;
    private const int ZonesPerNode = 3;
    private const ulong DmaLimitPfn = (16UL << 20) >> PageShift;   // MAX_DMA_PFN
    private const ulong Dma32LimitPfn = (4UL << 30) >> PageShift;  // MAX_DMA32_PFN

    // The model's struct page, 2 bytes per frame.
    private const int OrderMask = 0x0F;
    private const int BuddyFlag = 0x10;   // PageBuddy: head of a free block of order (m & OrderMask)
    private const int HeadFlag = 0x20;    // head of an allocated block of order (m & OrderMask)
    private const int ZoneShift = 8;
    private const int NoZone = 0xFF;
    private const ushort Unmanaged = NoZone << ZoneShift;

    // Free-list links: per order, chunks of 4096 (prev, next) pairs indexed by (offset >> order).
    private const int ChunkShift = 12;
    private const int ChunkMask = (1 << ChunkShift) - 1;
    private const int ChunkInts = 2 << ChunkShift;
    private const long DefaultReleaseChunksAboveInts = 4L << 20;  // keep up to 16 MiB of link chunks before releasing empty ones
    private const int ChunkPoolMax = 64;

    private readonly KernelLog _log;
    private readonly Action<ulong, ulong> _zeroPhysical;
    private readonly FaultInjection _failPageAlloc = new("fail_page_alloc");
    private readonly int _nodeCount;
    private readonly Zone[] _zones;
    private readonly System.Collections.ObjectModel.ReadOnlyCollection<Zone> _zonesView;
    private readonly ulong _basePfn;
    private readonly int _span;
    private readonly ushort[] _page;
    private readonly int[] _head;       // [zone * Orders + order]: offset of the first free block, -1 when empty
    private readonly long[] _nrFree;    // [zone * Orders + order]: free blocks in that list
    private readonly long[] _zoneFree;  // [zone]: free pages
    private readonly long[] _zoneMin;   // [zone]: min watermark, pages
    private readonly int[]?[][] _chunks;   // [order][chunk]
    private readonly int[][] _chunkLive;   // [order][chunk]: free blocks whose links live in the chunk
    private readonly Stack<int[]> _chunkPool = new();
    private readonly int[][] _zonelists;   // [((node * 3 + highest zone) << 1) | thisnode]: zone indexes in fallback order
    private long _chunkIntsLive;
    private long _releaseChunksAboveInts = DefaultReleaseChunksAboveInts;
    private bool _tainted;

    /// <summary>Creates the allocator over <paramref name="freeRanges"/>.</summary>
    /// <param name="freeRanges">Free RAM handed over by boot (memblock), page aligned, not overlapping, in any order.</param>
    /// <param name="nodeCount">Number of NUMA nodes (1 to 64).</param>
    /// <param name="log">The kernel log for reports.</param>
    /// <param name="zeroPhysical">Zeroes [pa, pa+bytes) in emulated RAM (the kernel does it through the direct map).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nodeCount"/> is not 1 to 64, or a range names a node outside it.</exception>
    /// <exception cref="ArgumentException">A range is not page aligned, is reversed, overlaps another, or the ranges span more frames than the model can describe.</exception>
    public PageAllocator(IEnumerable<PhysRange> freeRanges, int nodeCount, KernelLog log, Action<ulong, ulong> zeroPhysical)
    {
        ArgumentNullException.ThrowIfNull(freeRanges);
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(zeroPhysical);
        if (nodeCount is < 1 or > MaxNodes)
            throw new ArgumentOutOfRangeException(nameof(nodeCount), nodeCount, $"nodeCount must be 1 to {MaxNodes} (NUMA nodes).");
        _log = log;
        _zeroPhysical = zeroPhysical;
        _nodeCount = nodeCount;

        var ranges = new List<PhysRange>();
        foreach (var r in freeRanges)
        {
            if ((r.Start & (PageSize - 1)) != 0 || (r.End & (PageSize - 1)) != 0)
                throw new ArgumentException($"Free range [0x{r.Start:x}, 0x{r.End:x}) is not page aligned (4 KiB).", nameof(freeRanges));
            if (r.End < r.Start)
                throw new ArgumentException($"Free range [0x{r.Start:x}, 0x{r.End:x}) ends before it starts.", nameof(freeRanges));
            if ((uint)r.Node >= (uint)nodeCount)
                throw new ArgumentOutOfRangeException(nameof(freeRanges), r.Node, $"Free range [0x{r.Start:x}, 0x{r.End:x}) is on node {r.Node}; nodes are 0 to {nodeCount - 1}.");
            if (r.End > r.Start) ranges.Add(r);
        }
        ranges.Sort((a, b) => a.Start.CompareTo(b.Start));
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Start < ranges[i - 1].End)
                throw new ArgumentException($"Free ranges [0x{ranges[i - 1].Start:x}, 0x{ranges[i - 1].End:x}) and [0x{ranges[i].Start:x}, 0x{ranges[i].End:x}) overlap.", nameof(freeRanges));

        int zoneCount = nodeCount * ZonesPerNode;
        _zones = new Zone[zoneCount];
        for (int z = 0; z < zoneCount; z++) _zones[z] = new Zone(this, z, z / ZonesPerNode, (ZoneType)(z % ZonesPerNode));
        _zonesView = Array.AsReadOnly(_zones);
        _head = new int[zoneCount * Orders];
        Array.Fill(_head, -1);
        _nrFree = new long[zoneCount * Orders];
        _zoneFree = new long[zoneCount];
        _zoneMin = new long[zoneCount];

        // The frame span, rounded out to MAX_PAGE_ORDER blocks so every buddy of a managed block has a descriptor.
        const ulong blockPages = 1UL << MaxOrder;
        ulong firstPfn = ranges.Count > 0 ? ranges[0].Start >> PageShift : 0;
        ulong endPfn = ranges.Count > 0 ? ranges[^1].End >> PageShift : 0;
        _basePfn = firstPfn & ~(blockPages - 1);
        ulong span = ((endPfn + blockPages - 1) & ~(blockPages - 1)) - _basePfn;
        if (span > (ulong)Array.MaxLength - blockPages)
            throw new ArgumentException($"The free ranges span {span} page frames (0x{_basePfn << PageShift:x} to 0x{endPfn << PageShift:x}); the model describes at most {Array.MaxLength - (int)blockPages}.", nameof(freeRanges));
        _span = (int)span;
        _page = new ushort[_span];
        _page.AsSpan().Fill(Unmanaged);

        _chunks = new int[]?[Orders][];
        _chunkLive = new int[Orders][];
        for (int k = 0; k < Orders; k++)
        {
            int n = ((_span >> k) + ChunkMask) >> ChunkShift;
            _chunks[k] = new int[]?[n];
            _chunkLive[k] = new int[n];
        }

        // Zones by physical address, per node; then hand the frames over (memblock_free_all), highest first so that
        // head insertion leaves every list in ascending address order, as Linux's FPI_TO_TAIL does.
        var segments = new List<(int Start, int End, int Zone)>();
        foreach (var r in ranges)
        {
            ulong s = r.Start >> PageShift, e = r.End >> PageShift;
            while (s < e)
            {
                var (type, limit) = s < DmaLimitPfn ? (ZoneType.Dma, DmaLimitPfn) : s < Dma32LimitPfn ? (ZoneType.Dma32, Dma32LimitPfn) : (ZoneType.Normal, ulong.MaxValue);
                ulong segEnd = Math.Min(e, limit);
                int z = r.Node * ZonesPerNode + (int)type;
                int so = (int)(s - _basePfn), eo = (int)(segEnd - _basePfn);
                _page.AsSpan(so, eo - so).Fill((ushort)(z << ZoneShift));
                _zones[z].ManagedPages += eo - so;
                segments.Add((so, eo, z));
                s = segEnd;
            }
        }
        for (int i = segments.Count - 1; i >= 0; i--)
        {
            var (so, eo, z) = segments[i];
            int end = eo;
            while (end > so)
            {
                int order = Math.Min(MaxOrder, Math.Min(BitOperations.TrailingZeroCount(end), BitOperations.Log2((uint)(end - so))));
                int start = end - (1 << order);
                FreeOneBlock(start, order, z);
                end = start;
            }
        }

        _zonelists = BuildZonelists();
    }

    /// <summary>The zones of every node, node-major, DMA first: zone index = node × 3 + (int)<see cref="ZoneType"/>.</summary>
    public IReadOnlyList<Zone> Zones => _zonesView;
    /// <summary>Number of NUMA nodes.</summary>
    public int NodeCount => _nodeCount;

    /// <summary>Free pages in all zones.</summary>
    public long FreePageCount
    {
        get
        {
            long sum = 0;
            foreach (long f in _zoneFree) sum += f;
            return sum;
        }
    }

    /// <summary>Pages managed (free or allocated) in all zones.</summary>
    public long ManagedPageCount
    {
        get
        {
            long sum = 0;
            foreach (var z in _zones) sum += z.ManagedPages;
            return sum;
        }
    }

    /// <summary>
    /// fail_page_alloc. Consulted once per allocation of order ≥ <see cref="FailPageAllocMinOrder"/>, with size
    /// 2^order pages, and never for __GFP_NOFAIL (should_fail_alloc_page). An injected failure returns null at once,
    /// as prepare_alloc_pages does in Linux: the log gets "FAULT_INJECTION: forcing a failure." and the attributes
    /// (not for __GFP_NOWARN, Linux's FAULT_NOWARN), and no "page allocation failure" report.
    /// </summary>
    public FaultInjection FailPageAlloc => _failPageAlloc;

    /// <summary>
    /// fail_page_alloc's min-order: smaller allocations are never injected. The model's default is 0 so every
    /// allocation is eligible; Linux's default is 1.
    /// </summary>
    public int FailPageAllocMinOrder { get; set; }

    /// <summary>
    /// fail_page_alloc's ignore-gfp-wait: allocations that may reclaim (__GFP_DIRECT_RECLAIM, as GFP_KERNEL) are not
    /// injected. The model's default is false so GFP_KERNEL allocations are eligible; Linux's default is true.
    /// </summary>
    public bool FailPageAllocIgnoreGfpReclaim { get; set; }

    /// <summary>
    /// fail_page_alloc's ignore-gfp-highmem: __GFP_HIGHMEM allocations are not injected. The model's default is false;
    /// Linux's is true (it makes no difference on x86-64, which has no highmem).
    /// </summary>
    public bool FailPageAllocIgnoreGfpHighMem { get; set; }

    /// <summary>
    /// alloc_pages_node: 2^<paramref name="order"/> contiguous pages; returns the physical address of the first, or
    /// null (never null with __GFP_NOFAIL: a truly exhausted machine stops with <see cref="KernelStopException"/>).
    /// </summary>
    /// <remarks>
    /// Zones: __GFP_DMA takes ZONE_DMA only; __GFP_DMA32 takes DMA32, then DMA; anything else Normal, DMA32, DMA.
    /// An order above 10 returns null with a one-time WARNING (not for __GFP_NOWARN), even with __GFP_NOFAIL, as
    /// Linux's WARN_ON_ONCE_GFP in __alloc_pages does. A failed allocation logs Linux's warn_alloc report
    /// ("{caller}: page allocation failure: order:N, mode:0x…(…), nodemask=(null)" and a Mem-Info free-area dump of
    /// the zones the mask allows) unless __GFP_NOWARN, or __GFP_DMA on a machine with no DMA zone. Reports are not
    /// rate-limited. __GFP_NORETRY and __GFP_RETRY_MAYFAIL change nothing: there is no reclaim to retry.
    /// A __GFP_NOFAIL allocation that finds nothing retries ignoring watermarks; if that fails too the model stops
    /// with the out_of_memory report of a machine with no killable process: "{caller} invoked oom-killer:
    /// gfp_mask=0x…(…), order=N, oom_score_adj=0", Mem-Info, "Out of memory and no killable processes...",
    /// "Kernel panic - not syncing: System is deadlocked on memory" (logged, and the exception's report).
    /// </remarks>
    /// <param name="gfp">GFP mask.</param>
    /// <param name="order">0 to 10.</param>
    /// <param name="nid">Preferred node, or <see cref="NumaNoNode"/> for the local node (node 0).</param>
    /// <param name="caller">Who allocates (current->comm in reports).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="order"/> is negative, or <paramref name="nid"/> is not a node.</exception>
    /// <exception cref="ArgumentException"><paramref name="gfp"/> has both __GFP_DMA and __GFP_DMA32 (a bad gfp_zone combination).</exception>
    /// <exception cref="KernelStopException">__GFP_NOFAIL and no block of that order in any allowed zone.</exception>
    public ulong? AllocPages(Gfp gfp, int order, int nid = NumaNoNode, [CallerMemberName] string caller = "")
    {
        if ((uint)order > MaxOrder) return OrderTooLarge(gfp, order, caller);
        if (nid != NumaNoNode && (uint)nid >= (uint)_nodeCount) ThrowBadNode(nid);
        if (_failPageAlloc.Probability != 0 && ShouldFailAllocPage(gfp, order)) return null;

        int[] zonelist = _zonelists[((((nid < 0 ? 0 : nid) * ZonesPerNode) + GfpZone(gfp)) << 1) | ((gfp & Gfp.ThisNode) != 0 ? 1 : 0)];
        foreach (int z in zonelist)
        {
            if (_zoneMin[z] != 0 && !WatermarkOk(z, order, gfp)) continue;
            int off = RmqueueSmallest(z, order);
            if (off >= 0) return Allocated(off, order, gfp);
        }
        return AllocSlowpath(gfp, order, zonelist, caller);
    }

    /// <summary>__free_pages. A free of a page that is not allocated with that order is reported ("BUG: Bad page state") and ignored.</summary>
    /// <remarks>
    /// The free is checked before it touches any list: the address must be page aligned and managed, the order 0 to
    /// 10, and the page the head of an allocated block of exactly that order. Otherwise the log gets
    /// "BUG: Bad page state in process {caller}  pfn:{pfn}" and "page dumped because: {reason}" (the first time also
    /// "Disabling lock debugging due to kernel taint") and nothing changes. The reasons are the model's own words:
    /// Linux finds most of these cases through page flags, refcounts or not at all.
    /// </remarks>
    public void FreePages(ulong pa, int order, [CallerMemberName] string caller = "")
    {
        ulong rel = (pa >> PageShift) - _basePfn;
        if ((pa & (PageSize - 1)) == 0 && rel < (ulong)_span && (uint)order <= MaxOrder)
        {
            int off = (int)rel;
            int m = _page[off];
            if ((m & (HeadFlag | BuddyFlag | OrderMask)) == (HeadFlag | order))
            {
                FreeOneBlock(off, order, m >> ZoneShift);
                return;
            }
        }
        BadFree(pa, order, caller);
    }

    /// <summary>The node of a managed physical address (page_to_nid).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pa"/> is not in a page the allocator manages.</exception>
    public int NodeOf(ulong pa) => ZoneIndexOf(pa) / ZonesPerNode;

    /// <summary>The zone of a managed physical address (page_zone).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pa"/> is not in a page the allocator manages.</exception>
    public Zone ZoneOf(ulong pa) => _zones[ZoneIndexOf(pa)];

    /// <summary>
    /// The order of the allocated block that starts at <paramref name="pa"/> (what folio_order tells kfree of a large
    /// kmalloc), or null when <paramref name="pa"/> is not the first byte of an allocated block.
    /// </summary>
    public int? AllocatedOrder(ulong pa)
    {
        ulong rel = (pa >> PageShift) - _basePfn;
        if ((pa & (PageSize - 1)) != 0 || rel >= (ulong)_span) return null;
        int m = _page[(int)rel];
        return (m & HeadFlag) != 0 ? m & OrderMask : null;
    }

    /// <summary>/proc/buddyinfo: per populated zone "Node %d, zone %8s " then "%6lu " free blocks per order 0 to 10, then a newline.</summary>
    public string FormatBuddyInfo()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var zone in _zones)
        {
            if (zone.ManagedPages == 0) continue;
            sb.Append("Node ").Append(zone.Node).Append(", zone ").Append(zone.Name.PadLeft(8)).Append(' ');
            int b = ZoneBase(zone);
            for (int k = 0; k < Orders; k++) sb.Append(_nrFree[b + k].ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(6)).Append(' ');
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// Empty link chunks are given back (to a small pool, then the GC) only while more than this many link ints are
    /// live, so ordinary churn never allocates; tests set 0 to exercise release and reuse.
    /// </summary>
    internal long LinkChunkReleaseThresholdInts
    {
        get => _releaseChunksAboveInts;
        set => _releaseChunksAboveInts = value;
    }

    /// <summary>Host bytes held by free-list link chunks in use.</summary>
    internal long LinkChunkBytes => _chunkIntsLive * sizeof(int);

    internal long ZoneFreePages(int zone) => _zoneFree[zone];
    internal long ZoneFreeBlocks(int zone, int order) => _nrFree[zone * Orders + order];
    internal long ZoneWatermarkMin(int zone) => _zoneMin[zone];
    internal void SetZoneWatermarkMin(int zone, long pages) => _zoneMin[zone] = pages;

    private int ZoneBase(Zone zone) => (zone.Node * ZonesPerNode + (int)zone.Type) * Orders;

    private int ZoneIndexOf(ulong pa)
    {
        ulong rel = (pa >> PageShift) - _basePfn;
        int z = rel < (ulong)_span ? _page[(int)rel] >> ZoneShift : NoZone;
        if (z == NoZone)
            throw new ArgumentOutOfRangeException(nameof(pa), $"0x{pa:x} is not in a page the page allocator manages.");
        return z;
    }

    // gfp_zone: the highest zone the mask allows.
    private static int GfpZone(Gfp gfp)
    {
        switch (gfp & (Gfp.Dma | Gfp.Dma32))
        {
            case 0: return (int)ZoneType.Normal;
            case Gfp.Dma: return (int)ZoneType.Dma;
            case Gfp.Dma32: return (int)ZoneType.Dma32;
            default: ThrowBadZoneCombination(gfp); return 0;
        }
    }

    private bool WatermarkOk(int z, int order, Gfp gfp)
    {
        // __zone_watermark_ok with the reserves gfp_to_alloc_flags grants; __GFP_MEMALLOC means ALLOC_NO_WATERMARKS.
        if ((gfp & (Gfp.MemAlloc | Gfp.NoMemAlloc)) == Gfp.MemAlloc) return true;
        long min = _zoneMin[z];
        if ((gfp & Gfp.High) != 0)
        {
            min -= min / 2;                                          // ALLOC_MIN_RESERVE
            if ((gfp & Gfp.DirectReclaim) == 0) min -= min / 4;      // ALLOC_NON_BLOCK
        }
        return _zoneFree[z] - (1L << order) >= min;
    }

    private ulong? Allocated(int off, int order, Gfp gfp)
    {
        ulong pa = (_basePfn + (ulong)off) << PageShift;
        if ((gfp & Gfp.Zero) != 0) _zeroPhysical(pa, PageSize << order);
        return pa;
    }

    // __rmqueue_smallest + expand: the head of the smallest non-empty list of at least the order; the lower part is
    // allocated and each upper half goes to the list one order down.
    private int RmqueueSmallest(int z, int order)
    {
        int b = z * Orders;
        for (int k = order; k < Orders; k++)
        {
            int off = _head[b + k];
            if (off < 0) continue;
            Unlink(b + k, k, off);
            int zoneBits = z << ZoneShift;
            while (k > order)
            {
                k--;
                int upper = off + (1 << k);
                _page[upper] = (ushort)(zoneBits | BuddyFlag | k);
                Link(b + k, k, upper);
            }
            _page[off] = (ushort)(zoneBits | HeadFlag | order);
            _zoneFree[z] -= 1L << order;
            return off;
        }
        return -1;
    }

    // __free_one_page: merge with free buddies of the same order and zone, then put the block at the head of its list.
    private void FreeOneBlock(int off, int order, int z)
    {
        int zoneBits = z << ZoneShift;
        int b = z * Orders;
        _zoneFree[z] += 1L << order;
        _page[off] = (ushort)zoneBits;
        while (order < MaxOrder)
        {
            int buddy = off ^ (1 << order);
            if (_page[buddy] != (ushort)(zoneBits | BuddyFlag | order)) break;
            Unlink(b + order, order, buddy);
            _page[buddy] = (ushort)zoneBits;
            off &= ~(1 << order);
            order++;
        }
        _page[off] = (ushort)(zoneBits | BuddyFlag | order);
        Link(b + order, order, off);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Link(int list, int order, int off)
    {
        int e = off >> order;
        int c = e >> ChunkShift, s = (e & ChunkMask) << 1;
        var chunks = _chunks[order];
        var chunk = chunks[c] ?? AcquireChunk(order, c);
        _chunkLive[order][c]++;
        int head = _head[list];
        chunk[s] = -1;
        chunk[s + 1] = head;
        if (head >= 0)
        {
            int he = head >> order;
            chunks[he >> ChunkShift]![(he & ChunkMask) << 1] = off;
        }
        _head[list] = off;
        _nrFree[list]++;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unlink(int list, int order, int off)
    {
        int e = off >> order;
        int c = e >> ChunkShift, s = (e & ChunkMask) << 1;
        var chunks = _chunks[order];
        var chunk = chunks[c]!;
        int prev = chunk[s], next = chunk[s + 1];
        if (prev >= 0)
        {
            int pe = prev >> order;
            chunks[pe >> ChunkShift]![((pe & ChunkMask) << 1) + 1] = next;
        }
        else _head[list] = next;
        if (next >= 0)
        {
            int ne = next >> order;
            chunks[ne >> ChunkShift]![(ne & ChunkMask) << 1] = prev;
        }
        _nrFree[list]--;
        if (--_chunkLive[order][c] == 0 && _chunkIntsLive > _releaseChunksAboveInts) ReleaseChunk(order, c);
    }

    private int[] AcquireChunk(int order, int c)
    {
        var chunk = _chunkPool.Count > 0 ? _chunkPool.Pop() : new int[ChunkInts];
        _chunks[order][c] = chunk;
        _chunkIntsLive += ChunkInts;
        return chunk;
    }

    private void ReleaseChunk(int order, int c)
    {
        var chunk = _chunks[order][c]!;
        _chunks[order][c] = null;
        _chunkIntsLive -= ChunkInts;
        if (_chunkPool.Count < ChunkPoolMax) _chunkPool.Push(chunk);
    }

    private int[][] BuildZonelists()
    {
        var lists = new int[_nodeCount * ZonesPerNode * 2][];
        var buffer = new List<int>();
        for (int node = 0; node < _nodeCount; node++)
            for (int high = 0; high < ZonesPerNode; high++)
                for (int thisNode = 0; thisNode < 2; thisNode++)
                {
                    buffer.Clear();
                    int nodes = thisNode == 1 ? 1 : _nodeCount;
                    for (int i = 0; i < nodes; i++)
                    {
                        int n = (node + i) % _nodeCount;
                        for (int t = high; t >= 0; t--)
                        {
                            int z = n * ZonesPerNode + t;
                            if (_zones[z].ManagedPages > 0) buffer.Add(z);
                        }
                    }
                    lists[((node * ZonesPerNode + high) << 1) | thisNode] = [.. buffer];
                }
        return lists;
    }

    [DoesNotReturn]
    private void ThrowBadNode(int nid) =>
        throw new ArgumentOutOfRangeException(nameof(nid), nid, $"nid must be {NumaNoNode} (NUMA_NO_NODE) or a node, 0 to {_nodeCount - 1}.");

    [DoesNotReturn]
    private static void ThrowBadZoneCombination(Gfp gfp) =>
        throw new ArgumentException($"GFP mask 0x{(uint)gfp:x} ({GfpNames.Format(gfp)}) asks for both __GFP_DMA and __GFP_DMA32 (gfp_zone: bad combination).", nameof(gfp));

    /// <summary>
    /// Checks every invariant of the free lists and page descriptors (for tests): list links, PageBuddy flags,
    /// counts per list and per zone, block alignment, zone membership and that no free block could have merged.
    /// Returns null when consistent, else a description of the first problem.
    /// </summary>
    internal string? CheckConsistency()
    {
        var seen = new HashSet<int>();
        for (int z = 0; z < _zones.Length; z++)
        {
            long pages = 0;
            for (int k = 0; k < Orders; k++)
            {
                int list = z * Orders + k, prev = -1, count = 0;
                for (int off = _head[list]; off >= 0;)
                {
                    if (!seen.Add(off)) return $"zone {z} order {k}: block at offset {off} listed twice";
                    if ((off & ((1 << k) - 1)) != 0) return $"zone {z} order {k}: block at offset {off} is not aligned";
                    if (_page[off] != (ushort)((z << ZoneShift) | BuddyFlag | k)) return $"zone {z} order {k}: descriptor 0x{_page[off]:x} at offset {off}";
                    for (int i = 1; i < 1 << k; i++)
                        if (_page[off + i] != (ushort)(z << ZoneShift)) return $"zone {z} order {k}: page {off + i} of the block at {off} has descriptor 0x{_page[off + i]:x}";
                    if (k < MaxOrder && _page[off ^ (1 << k)] == (ushort)((z << ZoneShift) | BuddyFlag | k)) return $"zone {z} order {k}: block at {off} and its buddy are both free";
                    int e = off >> k;
                    var chunk = _chunks[k][e >> ChunkShift];
                    if (chunk is null) return $"order {k}: no link chunk for offset {off}";
                    if (chunk[(e & ChunkMask) << 1] != prev) return $"zone {z} order {k}: bad prev link at {off}";
                    prev = off;
                    off = chunk[((e & ChunkMask) << 1) + 1];
                    count++;
                }
                if (count != _nrFree[list]) return $"zone {z} order {k}: {count} blocks listed, nr_free {_nrFree[list]}";
                pages += (long)count << k;
            }
            if (pages != _zoneFree[z]) return $"zone {z}: {pages} pages listed, free count {_zoneFree[z]}";
        }
        for (int off = 0; off < _span; off++)
            if ((_page[off] & BuddyFlag) != 0 && !seen.Contains(off)) return $"offset {off} is marked free but in no list";
        for (int k = 0; k < Orders; k++)
            for (int c = 0; c < _chunkLive[k].Length; c++)
            {
                if (_chunkLive[k][c] < 0 || (_chunkLive[k][c] > 0 && _chunks[k][c] is null)) return $"order {k} chunk {c}: live count {_chunkLive[k][c]}";
                if (_releaseChunksAboveInts == 0 && _chunkLive[k][c] == 0 && _chunks[k][c] is not null) return $"order {k} chunk {c}: empty but not released";
            }
        return null;
    }
}
