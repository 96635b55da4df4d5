using System.Numerics;

namespace HwMemModel.Kernel;

/// <summary>
/// A slab cache (struct kmem_cache): objects of one size carved out of slabs of 2^order physically contiguous pages
/// from the buddy allocator, laid out as SLUB lays them out. Created by <see cref="Kernel.KmemCacheCreate"/>; the
/// kmalloc size classes are caches too (<see cref="IsKmalloc"/>).
/// </summary>
/// <remarks>
/// <para>
/// Object layout (mm/slub.c calculate_sizes), one slot of <see cref="Size"/> bytes per object, slots back to back
/// from the start of the slab:
/// [left red zone: <see cref="RedLeftPad"/> bytes, SLAB_RED_ZONE only] [object: <see cref="ObjectSize"/> bytes]
/// [right red zone up to <see cref="InUse"/>, at least one word with SLAB_RED_ZONE] [free-pointer word when it may
/// not overlay the object: SLAB_POISON, a constructor, or a red-zoned object smaller than a word] [one more word with
/// SLAB_RED_ZONE] [padding to <see cref="Align"/>]. The object address is the slot address plus
/// <see cref="RedLeftPad"/>.
/// </para>
/// <para>
/// Slab order (calculate_order): the smallest order from get_order(min_objects × size) up to
/// PAGE_ALLOC_COSTLY_ORDER (3) that wastes at most 1/16 of the slab, then 1/8, then 1/4; min_objects is
/// 4 × (fls(CPUs) + 1). <see cref="MinOrder"/> (get_order(size)) is the fallback order when the preferred one cannot
/// be allocated. Free pointers are not written into RAM: the model keeps each slab's free list and in-use bits in its
/// own memory, so a stray guest write can corrupt object bytes (and be reported) but never the allocator.
/// </para>
/// </remarks>
public sealed class KmemCache
{
    internal const uint WordSize = 8;
    internal const int PageShift = 12;
    internal const int SlubMaxOrder = 3;          // PAGE_ALLOC_COSTLY_ORDER
    internal const int MaxObjsPerPage = 32767;
    internal const int MinPartialLimit = 5;       // MIN_PARTIAL
    internal const int MaxPartialLimit = 10;      // MAX_PARTIAL

    internal readonly KmemCacheNode[] Nodes;
    internal readonly bool Debug;                 // SLAB_RED_ZONE or SLAB_POISON: the slow, checking paths
    internal readonly bool ObjectPoison;          // __OBJECT_POISON: POISON and no constructor
    internal readonly Gfp AllocFlags;             // s->allocflags: zone modifiers from SLAB_CACHE_DMA / DMA32
    internal readonly uint SlotSize;              // == Size, a field for the fast path
    internal readonly uint RedPad;                // == RedLeftPad
    internal long Active;                         // allocated objects
    internal long Total;                          // objects in all slabs
    internal long SlabCount;                      // slabs
    internal bool Destroyed;

    private KmemCache(string name, uint objectSize, uint align, SlabFlags flags, Action<ulong>? ctor, bool kmalloc,
        int nodeCount, uint size, uint inUse, uint offset, uint redLeftPad, int order, int minOrder)
    {
        Name = name;
        ObjectSize = objectSize;
        Align = align;
        Flags = flags;
        Constructor = ctor;
        IsKmalloc = kmalloc;
        Size = SlotSize = size;
        InUse = inUse;
        FreePointerOffset = offset;
        RedLeftPad = RedPad = redLeftPad;
        Order = order;
        MinOrder = minOrder;
        ObjectsPerSlab = ObjectsFor(order, size);
        // kmem_cache_open: min_partial = clamp(ilog2(size) / 2, MIN_PARTIAL, MAX_PARTIAL).
        MinPartial = Math.Max(MinPartialLimit, Math.Min(MaxPartialLimit, BitOperations.Log2(size) / 2));
        Debug = (flags & (SlabFlags.RedZone | SlabFlags.Poison)) != 0;
        ObjectPoison = (flags & SlabFlags.Poison) != 0 && ctor is null;
        AllocFlags = (flags & SlabFlags.CacheDma) != 0 ? Gfp.Dma : (flags & SlabFlags.CacheDma32) != 0 ? Gfp.Dma32 : Gfp.None;
        Nodes = new KmemCacheNode[nodeCount];
        for (int i = 0; i < nodeCount; i++) Nodes[i] = new KmemCacheNode();
    }

    /// <summary>The name (in /proc/slabinfo and every report).</summary>
    public string Name { get; }
    /// <summary>object_size: the bytes a user may use, as asked for.</summary>
    public uint ObjectSize { get; }
    /// <summary>size: the bytes one object takes in a slab, metadata and padding included (slabinfo's objsize).</summary>
    public uint Size { get; }
    /// <summary>align: the object alignment (calculate_alignment: the requested one, a cache line for SLAB_HWCACHE_ALIGN, at least 8).</summary>
    public uint Align { get; }
    /// <summary>The flags the cache was created with.</summary>
    public SlabFlags Flags { get; }
    /// <summary>The constructor run on every object of a new slab, or null.</summary>
    public Action<ulong>? Constructor { get; }
    /// <summary>inuse: offset of the metadata after the object (object size rounded to a word, plus the right red zone).</summary>
    public uint InUse { get; }
    /// <summary>offset: where SLUB would keep the free pointer (the model keeps free lists outside RAM).</summary>
    public uint FreePointerOffset { get; }
    /// <summary>red_left_pad: bytes of left red zone before each object (0 without SLAB_RED_ZONE).</summary>
    public uint RedLeftPad { get; }
    /// <summary>The preferred slab order (oo_order(s->oo)).</summary>
    public int Order { get; }
    /// <summary>The fallback slab order, get_order(size) (oo_order(s->min)).</summary>
    public int MinOrder { get; }
    /// <summary>Objects in a slab of the preferred order (oo_objects(s->oo)).</summary>
    public int ObjectsPerSlab { get; }
    /// <summary>min_partial: empty slabs a node keeps on its partial list before freeing them to the page allocator.</summary>
    public int MinPartial { get; }
    /// <summary>True for the kmalloc-N and dma-kmalloc-N size classes.</summary>
    public bool IsKmalloc { get; }
    /// <summary>True once <see cref="Kernel.KmemCacheDestroy"/> has released the cache.</summary>
    public bool IsDestroyed => Destroyed;
    /// <summary>Allocated objects (slabinfo's active_objs).</summary>
    public long ActiveObjects => Active;
    /// <summary>Objects in all slabs, free or not (slabinfo's num_objs).</summary>
    public long TotalObjects => Total;
    /// <summary>Slabs the cache holds (slabinfo's num_slabs; SLUB reports active_slabs equal to it).</summary>
    public long Slabs => SlabCount;

    /// <summary>slab_ksize: what <see cref="Kernel.Ksize"/> reports for an object: the object size with red zones or poisoning, else the whole slot.</summary>
    public uint Ksize => Debug ? ObjectSize : Size;

    /// <inheritdoc/>
    public override string ToString() => $"kmem_cache {Name} (object {ObjectSize}, size {Size}, order {Order}, {ObjectsPerSlab} per slab)";

    internal static int ObjectsFor(int order, uint size) => (int)((4096UL << order) / size);

    /// <summary>get_order: the smallest order whose block holds <paramref name="size"/> bytes (size ≥ 1).</summary>
    internal static int GetOrder(ulong size) => size <= 4096 ? 0 : 64 - BitOperations.LeadingZeroCount((size - 1) >> PageShift);

    /// <summary>
    /// kmem_cache_open: alignment (calculate_alignment), layout (calculate_sizes) and order (calculate_order).
    /// Null when no order up to MAX_PAGE_ORDER holds an object.
    /// </summary>
    internal static KmemCache? Create(string name, uint objectSize, uint align, SlabFlags flags, Action<ulong>? ctor,
        bool kmalloc, int nodeCount, int cpus)
    {
        // calculate_alignment.
        if ((flags & SlabFlags.HwcacheAlign) != 0)
        {
            uint ralign = 64;   // cache_line_size()
            while (objectSize <= ralign / 2) ralign /= 2;
            align = Math.Max(align, ralign);
        }
        align = Math.Max(align, WordSize);   // ARCH_SLAB_MINALIGN
        align = AlignUp(align, WordSize);

        // calculate_sizes.
        bool redZone = (flags & SlabFlags.RedZone) != 0;
        ulong size = AlignUp(objectSize, WordSize);
        if (redZone && size == objectSize) size += WordSize;
        uint inUse = (uint)size;
        uint offset;
        if ((flags & SlabFlags.Poison) != 0 || (redZone && objectSize < WordSize) || ctor is not null)
        {
            offset = (uint)size;
            size += WordSize;
        }
        else
        {
            offset = (objectSize / 2) & ~(WordSize - 1);
        }
        uint redLeftPad = 0;
        if (redZone)
        {
            size += WordSize;
            redLeftPad = AlignUp(WordSize, align);
            size += redLeftPad;
        }
        size = AlignUp(size, align);
        if (size > uint.MaxValue / 2) return null;
        int order = CalculateOrder((uint)size, cpus);
        if (order < 0) return null;
        return new KmemCache(name, objectSize, align, flags, ctor, kmalloc, nodeCount, (uint)size, inUse, offset,
            redLeftPad, order, GetOrder(size));
    }

    // calc_slab_order / calculate_order (mm/slub.c, slub_min_order 0, slub_max_order 3, slub_min_objects 0).
    private static int CalculateOrder(uint size, int cpus)
    {
        int minObjects = 4 * (BitOperations.Log2((uint)Math.Max(cpus, 1)) + 1 + 1);   // 4 * (fls(nr_cpus) + 1)
        int maxObjects = Math.Max(ObjectsFor(SlubMaxOrder, size), 1);
        minObjects = Math.Min(minObjects, maxObjects);
        int minOrder = GetOrder((ulong)minObjects * size);
        if (ObjectsFor(minOrder, size) > MaxObjsPerPage)
            return GetOrder((ulong)size * MaxObjsPerPage) - 1;
        for (uint fraction = 16; fraction > 1; fraction /= 2)
        {
            int order = minOrder;
            for (; order <= SlubMaxOrder; order++)
            {
                ulong slabSize = 4096UL << order;
                if (slabSize % size <= slabSize / fraction) break;
            }
            if (order <= SlubMaxOrder) return order;
        }
        int fallback = GetOrder(size);
        return fallback <= PageAllocator.MaxOrder ? fallback : -1;
    }

    internal static uint AlignUp(uint value, uint align) => (value + align - 1) & ~(align - 1);
    internal static ulong AlignUp(ulong value, ulong align) => (value + align - 1) & ~(align - 1);
}

/// <summary>struct kmem_cache_node: one node's slabs of a cache.</summary>
internal sealed class KmemCacheNode
{
    /// <summary>Head of the partial list (slabs with at least one free object), linked through <see cref="Slab.Prev"/>/<see cref="Slab.Next"/>.</summary>
    internal Slab? Partial;
    internal int NrPartial;
    /// <summary>Every slab of the node (SLUB counts them in nr_slabs; the model also lists them for validation and shutdown).</summary>
    internal readonly List<Slab> All = [];
}

/// <summary>
/// struct slab: 2^order pages holding <see cref="Objects"/> objects. The free list is a stack of object indexes and
/// the in-use bits an array, both in the model's memory.
/// </summary>
internal sealed class Slab
{
    internal readonly KmemCache Cache;
    internal readonly ulong Pa;
    internal readonly ulong Va;        // slab_address
    internal readonly int Node;
    internal readonly int Order;
    internal readonly int Objects;
    internal readonly int[] FreeStack;  // top is FreeStack[FreeCount - 1]: the next object to hand out
    internal int FreeCount;
    internal readonly bool[] Allocated;
    internal Slab? Prev, Next;         // partial list links
    internal bool OnPartial;
    internal int AllIndex;             // position in KmemCacheNode.All

    internal Slab(KmemCache cache, ulong pa, ulong va, int node, int order, int objects)
    {
        Cache = cache;
        Pa = pa;
        Va = va;
        Node = node;
        Order = order;
        Objects = objects;
        FreeStack = new int[objects];
        Allocated = new bool[objects];
        // Address order: object 0 is handed out first, as a fresh SLUB freelist does (no CONFIG_SLAB_FREELIST_RANDOM).
        for (int i = 0; i < objects; i++) FreeStack[i] = objects - 1 - i;
        FreeCount = objects;
    }

    internal int InUse => Objects - FreeCount;
    internal ulong Bytes => 4096UL << Order;
    internal ulong ObjectAddress(int index) => Va + (ulong)index * Cache.SlotSize + Cache.RedPad;
}

/// <summary>A kmalloc above KMALLOC_MAX_CACHE_SIZE: pages straight from the buddy allocator (a large_kmalloc folio).</summary>
internal sealed class LargeKmalloc(ulong pa, ulong va, int order, ulong size)
{
    internal readonly ulong Pa = pa;
    internal readonly ulong Va = va;
    internal readonly int Order = order;
    internal readonly ulong Size = size;
}
