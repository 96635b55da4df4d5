using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>enum page_cache_mode with Linux's values (arch/x86/include/asm/pgtable_types.h); the values appear in ioremap's messages.</summary>
public enum CacheMode
{
    /// <summary>_PAGE_CACHE_MODE_WB: write-back.</summary>
    WriteBack = 0,
    /// <summary>_PAGE_CACHE_MODE_WC: write-combining.</summary>
    WriteCombining = 1,
    /// <summary>_PAGE_CACHE_MODE_UC_MINUS: uncached, overridable by an MTRR WC.</summary>
    UncachedMinus = 2,
    /// <summary>_PAGE_CACHE_MODE_UC: uncached.</summary>
    Uncached = 3,
    /// <summary>_PAGE_CACHE_MODE_WT: write-through.</summary>
    WriteThrough = 4,
    /// <summary>_PAGE_CACHE_MODE_WP: write-protected.</summary>
    WriteProtected = 5,
}

/// <summary>Cache modes and the PTE bits Linux's PAT layout (WB WC UC- UC WB WP UC- WT) gives them.</summary>
public static class CacheModes
{
    private const ulong Pwt = 0x8, Pcd = 0x10, Pat4K = 0x80, PatLarge = 0x1000;

    /// <summary>cattr_name: "write-back", "write-combining", "uncached-minus", "uncached", "write-through", "write-protected".</summary>
    public static string Name(this CacheMode mode) => mode switch
    {
        CacheMode.WriteBack => "write-back",
        CacheMode.WriteCombining => "write-combining",
        CacheMode.UncachedMinus => "uncached-minus",
        CacheMode.Uncached => "uncached",
        CacheMode.WriteThrough => "write-through",
        CacheMode.WriteProtected => "write-protected",
        _ => "broken",
    };

    /// <summary>
    /// cachemode2protval for a 4 KiB PTE (<paramref name="large"/> false, PAT at bit 7) or a 2 MiB / 1 GiB leaf (PAT at
    /// bit 12): WB none, WC PWT, UC- PCD, UC PCD|PWT, WP PAT|PWT, WT PAT|PCD|PWT.
    /// </summary>
    public static ulong PteBits(this CacheMode mode, bool large = false)
    {
        ulong pat = large ? PatLarge : Pat4K;
        return mode switch
        {
            CacheMode.WriteBack => 0,
            CacheMode.WriteCombining => Pwt,
            CacheMode.UncachedMinus => Pcd,
            CacheMode.Uncached => Pcd | Pwt,
            CacheMode.WriteProtected => pat | Pwt,
            CacheMode.WriteThrough => pat | Pcd | Pwt,
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown cache mode."),
        };
    }

    /// <summary>pgprot2cachemode: the mode of a 4 KiB PTE's PAT/PCD/PWT bits under Linux's PAT layout (slots 4 and 6 read as WB and UC-).</summary>
    public static CacheMode FromPteBits(ulong pte4K) => ((pte4K >> 5) & 4 | (pte4K >> 3) & 3) switch
    {
        0 => CacheMode.WriteBack,
        1 => CacheMode.WriteCombining,
        2 => CacheMode.UncachedMinus,
        3 => CacheMode.Uncached,
        4 => CacheMode.WriteBack,
        5 => CacheMode.WriteProtected,
        6 => CacheMode.UncachedMinus,
        _ => CacheMode.WriteThrough,
    };

    /// <summary>The memory type the MMU reports for the mode under Linux's PAT (UC- for UC-, and so on).</summary>
    public static MemoryType MemoryType(this CacheMode mode) => mode switch
    {
        CacheMode.WriteBack => Mmu.MemoryType.WriteBack,
        CacheMode.WriteCombining => Mmu.MemoryType.WriteCombining,
        CacheMode.UncachedMinus => Mmu.MemoryType.UncacheableMinus,
        CacheMode.Uncached => Mmu.MemoryType.Uncacheable,
        CacheMode.WriteThrough => Mmu.MemoryType.WriteThrough,
        _ => Mmu.MemoryType.WriteProtected,
    };
}
