namespace HwMemModel.Mmu;

/// <summary>One set-associative TLB array: entries, ways and the page sizes it holds.</summary>
/// <param name="Name">Name used in counters and reports, e.g. "DTLB-4K".</param>
/// <param name="Entries">Total entries; a multiple of <paramref name="Ways"/>.</param>
/// <param name="Ways">Associativity; equal to <paramref name="Entries"/> for a fully associative array.</param>
/// <param name="PageSizes">Page sizes the array caches.</param>
public sealed record TlbArrayConfig(string Name, int Entries, int Ways, params PageSize[] PageSizes);

/// <summary>
/// TLB geometry: split L1 instruction and data TLBs, a unified L2 (STLB), and paging-structure caches.
/// A page size with no array in a level is cached there as fractured pieces of the largest smaller size
/// (as processors do with 1 GiB pages in the ITLB), or not at all when no smaller array exists.
/// </summary>
public sealed class TlbGeometry
{
    /// <summary>L1 instruction TLB arrays.</summary>
    public IReadOnlyList<TlbArrayConfig> InstructionL1 { get; init; } = [];
    /// <summary>L1 data TLB arrays.</summary>
    public IReadOnlyList<TlbArrayConfig> DataL1 { get; init; } = [];
    /// <summary>Unified second-level TLB arrays (may be empty).</summary>
    public IReadOnlyList<TlbArrayConfig> UnifiedL2 { get; init; } = [];
    /// <summary>Whether paging-structure caches (PML5E, PML4E, PDPTE and PDE caches) are modelled.</summary>
    public bool PagingStructureCaches { get; init; } = true;
    /// <summary>Entries of the PML5E cache (5-level paging only).</summary>
    public int Pml5CacheEntries { get; init; } = 2;
    /// <summary>Entries of the PML4E cache.</summary>
    public int Pml4CacheEntries { get; init; } = 4;
    /// <summary>Entries of the PDPTE cache.</summary>
    public int PdptCacheEntries { get; init; } = 8;
    /// <summary>Entries of the PDE cache.</summary>
    public int PdCacheEntries { get; init; } = 32;

    /// <summary>
    /// The default: close to an Intel Golden Cove (12th-generation Core) performance core.
    /// ITLB 256×4K 8-way and 32×2M 8-way; DTLB 96×4K 6-way, 32×2M 4-way, 8×1G fully associative;
    /// STLB 2048 4K/2M entries 16-way and 1024×1G 8-way; PDE cache 32, PDPTE cache 8, PML4E cache 4, PML5E cache 2.
    /// </summary>
    public static TlbGeometry Default { get; } = new()
    {
        InstructionL1 = [new("ITLB-4K", 256, 8, PageSize.Size4K), new("ITLB-2M", 32, 8, PageSize.Size2M)],
        DataL1 = [new("DTLB-4K", 96, 6, PageSize.Size4K), new("DTLB-2M", 32, 4, PageSize.Size2M), new("DTLB-1G", 8, 8, PageSize.Size1G)],
        UnifiedL2 = [new("STLB-4K/2M", 2048, 16, PageSize.Size4K, PageSize.Size2M), new("STLB-1G", 1024, 8, PageSize.Size1G)],
    };

    /// <summary>No TLB and no paging-structure caches: every access walks.</summary>
    public static TlbGeometry None { get; } = new() { PagingStructureCaches = false };

    /// <summary>A small geometry for tests and teaching: 8-entry 2-way L1s per size, no L2.</summary>
    public static TlbGeometry Tiny { get; } = new()
    {
        InstructionL1 = [new("ITLB-4K", 8, 2, PageSize.Size4K), new("ITLB-2M", 4, 4, PageSize.Size2M)],
        DataL1 = [new("DTLB-4K", 8, 2, PageSize.Size4K), new("DTLB-2M", 4, 4, PageSize.Size2M), new("DTLB-1G", 2, 2, PageSize.Size1G)],
        PdCacheEntries = 4,
        PdptCacheEntries = 2,
        Pml4CacheEntries = 2,
    };

    /// <summary>Checks the geometry: entries a positive multiple of ways, a power-of-two number of sets, each page size in one array per level, cache sizes 0 or more.</summary>
    /// <exception cref="ArgumentException">The geometry cannot be built; the message says which array and what is allowed.</exception>
    public void Validate()
    {
        foreach (var list in new[] { InstructionL1, DataL1, UnifiedL2 })
        {
            var seen = new HashSet<PageSize>();
            foreach (var a in list)
            {
                if (a.Entries <= 0 || a.Ways <= 0 || a.Entries % a.Ways != 0)
                    throw new ArgumentException($"TLB array '{a.Name}' has {a.Entries} entries and {a.Ways} ways; entries must be a positive multiple of ways.");
                int sets = a.Entries / a.Ways;
                if ((sets & (sets - 1)) != 0)
                    throw new ArgumentException($"TLB array '{a.Name}' has {sets} sets; the number of sets (entries / ways) must be a power of two.");
                if (a.PageSizes.Length == 0)
                    throw new ArgumentException($"TLB array '{a.Name}' holds no page size; give at least one of 4K, 2M, 1G.");
                foreach (var s in a.PageSizes)
                    if (!seen.Add(s))
                        throw new ArgumentException($"Page size {s.Label()} appears in two arrays of one TLB level ('{a.Name}'); each size may be held by one array per level.");
            }
        }
        foreach (var (n, v) in new[] { ("Pml5CacheEntries", Pml5CacheEntries), ("Pml4CacheEntries", Pml4CacheEntries), ("PdptCacheEntries", PdptCacheEntries), ("PdCacheEntries", PdCacheEntries) })
            if (v < 0)
                throw new ArgumentException($"{n} is {v}; paging-structure cache sizes must be 0 or more.");
    }
}
