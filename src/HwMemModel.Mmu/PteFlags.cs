namespace HwMemModel.Mmu;

/// <summary>Bits of an IA-32e paging-structure entry (Intel SDM Vol. 3A, tables 4-15 to 4-20).</summary>
[Flags]
public enum PteFlags : ulong
{
    /// <summary>No bits.</summary>
    None = 0,
    /// <summary>Bit 0, P: the entry is present.</summary>
    Present = 1UL << 0,
    /// <summary>Bit 1, R/W: writes allowed (combined over all levels).</summary>
    Writable = 1UL << 1,
    /// <summary>Bit 2, U/S: user-mode accesses allowed (combined over all levels).</summary>
    User = 1UL << 2,
    /// <summary>Bit 3, PWT: page-level write-through (PAT index bit 0).</summary>
    WriteThrough = 1UL << 3,
    /// <summary>Bit 4, PCD: page-level cache disable (PAT index bit 1).</summary>
    CacheDisable = 1UL << 4,
    /// <summary>Bit 5, A: accessed, set by the walker.</summary>
    Accessed = 1UL << 5,
    /// <summary>Bit 6, D: dirty, set on a write through a leaf entry.</summary>
    Dirty = 1UL << 6,
    /// <summary>Bit 7: PS in a PDPTE or PDE (maps a 1 GiB or 2 MiB page); PAT in a 4 KiB PTE; reserved in a PML4E/PML5E.</summary>
    PageSize = 1UL << 7,
    /// <summary>Bit 7 of a 4 KiB PTE: PAT index bit 2.</summary>
    Pat4K = 1UL << 7,
    /// <summary>Bit 8, G: global translation (leaf entries, honoured when CR4.PGE=1).</summary>
    Global = 1UL << 8,
    /// <summary>Bit 12 of a 2 MiB or 1 GiB leaf: PAT index bit 2.</summary>
    PatLarge = 1UL << 12,
    /// <summary>Bit 63, XD: execute-disable (reserved when EFER.NXE=0).</summary>
    NoExecute = 1UL << 63,
}

/// <summary>Page sizes of IA-32e paging.</summary>
public enum PageSize : byte
{
    /// <summary>4 KiB page mapped by a PTE.</summary>
    Size4K = 0,
    /// <summary>2 MiB page mapped by a PDE with PS=1.</summary>
    Size2M = 1,
    /// <summary>1 GiB page mapped by a PDPTE with PS=1.</summary>
    Size1G = 2,
}

/// <summary>Geometry helpers for <see cref="PageSize"/>.</summary>
public static class PageGeometry
{
    /// <summary>Bytes in a 4 KiB page.</summary>
    public const ulong Page4K = 1UL << 12;
    /// <summary>Bytes in a 2 MiB page.</summary>
    public const ulong Page2M = 1UL << 21;
    /// <summary>Bytes in a 1 GiB page.</summary>
    public const ulong Page1G = 1UL << 30;
    /// <summary>Entries in every paging structure.</summary>
    public const int EntriesPerTable = 512;

    /// <summary>log2 of the page size: 12, 21 or 30.</summary>
    public static int Shift(this PageSize size) => 12 + 9 * (int)size;

    /// <summary>The page size in bytes.</summary>
    public static ulong Bytes(this PageSize size) => 1UL << size.Shift();

    /// <summary>"4K", "2M" or "1G".</summary>
    public static string Label(this PageSize size) => size switch { PageSize.Size4K => "4K", PageSize.Size2M => "2M", _ => "1G" };

    /// <summary>The paging-structure level that maps a page of this size as a leaf (1 = PT, 2 = PD, 3 = PDPT).</summary>
    public static int LeafLevel(this PageSize size) => 1 + (int)size;

    /// <summary>Bit position of the lowest linear-address bit that indexes the table at <paramref name="level"/> (1 = PT).</summary>
    public static int LevelShift(int level) => 12 + 9 * (level - 1);

    /// <summary>The conventional name of the entry at a level: PTE, PDE, PDPTE, PML4E, PML5E.</summary>
    public static string EntryName(int level) => level switch
    {
        1 => "PTE",
        2 => "PDE",
        3 => "PDPTE",
        4 => "PML4E",
        _ => "PML5E",
    };
}

/// <summary>A raw paging-structure entry with decoding helpers.</summary>
/// <param name="Raw">The 64-bit value as stored in memory.</param>
public readonly record struct PageTableEntry(ulong Raw)
{
    /// <summary>The entry's flags (all bits other than the address and protection key).</summary>
    public PteFlags Flags => (PteFlags)Raw;
    /// <summary>P.</summary>
    public bool Present => (Raw & 1) != 0;
    /// <summary>R/W.</summary>
    public bool Writable => (Raw & 2) != 0;
    /// <summary>U/S.</summary>
    public bool User => (Raw & 4) != 0;
    /// <summary>A.</summary>
    public bool Accessed => (Raw & 0x20) != 0;
    /// <summary>D (meaningful in leaves).</summary>
    public bool Dirty => (Raw & 0x40) != 0;
    /// <summary>Bit 7 (PS in PDPTE/PDE).</summary>
    public bool PageSizeBit => (Raw & 0x80) != 0;
    /// <summary>G.</summary>
    public bool Global => (Raw & 0x100) != 0;
    /// <summary>XD.</summary>
    public bool NoExecute => (Raw & (1UL << 63)) != 0;
    /// <summary>Protection key, bits 62:59 of a leaf.</summary>
    public int ProtectionKey => (int)((Raw >> 59) & 0xF);

    /// <summary>The physical address held in bits 51:12 (before masking to MAXPHYADDR).</summary>
    public ulong Address => Raw & 0x000F_FFFF_FFFF_F000UL;

    /// <summary>Makes an entry from an address and flags.</summary>
    public static PageTableEntry Create(ulong pa, PteFlags flags, int protectionKey = 0)
        => new((pa & 0x000F_FFFF_FFFF_F000UL) | (ulong)flags | ((ulong)(protectionKey & 0xF) << 59));

    /// <summary>Decodes the flags as text, e.g. "P RW US A D PS G XD pkey=3", naming bit 7 by <paramref name="level"/> and leaf-ness.</summary>
    public string Describe(int level, bool leaf)
    {
        if (!Present) return Raw == 0 ? "not present (empty)" : "not present";
        var parts = new List<string>(12) { "P" };
        parts.Add(Writable ? "RW" : "RO");
        parts.Add(User ? "US" : "SUP");
        if ((Raw & 0x8) != 0) parts.Add("PWT");
        if ((Raw & 0x10) != 0) parts.Add("PCD");
        if (Accessed) parts.Add("A");
        if (leaf && Dirty) parts.Add("D");
        if (PageSizeBit) parts.Add(level == 1 ? "PAT" : "PS");
        if (leaf && Global) parts.Add("G");
        if (leaf && level > 1 && (Raw & 0x1000) != 0) parts.Add("PAT");
        if (NoExecute) parts.Add("XD");
        if (leaf && ProtectionKey != 0) parts.Add($"pkey={ProtectionKey}");
        return string.Join(' ', parts);
    }
}
