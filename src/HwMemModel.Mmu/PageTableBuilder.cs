using HwMemModel.Bus;

namespace HwMemModel.Mmu;

/// <summary>
/// Host helper that builds IA-32e page tables in emulated memory, writing every entry through the bus.
/// Tables come from a physical pool the caller reserves. The walker never consults this object: it only reads RAM.
/// </summary>
public sealed class PageTableBuilder
{
    private readonly PhysicalBus _bus;
    private readonly ulong _poolEnd;
    private ulong _next;

    /// <summary>Creates a builder with tables allocated from [<paramref name="poolBase"/>, +<paramref name="poolSize"/>).</summary>
    /// <param name="bus">The bus to write through.</param>
    /// <param name="poolBase">4 KiB-aligned physical base of the table pool (must be backed by RAM).</param>
    /// <param name="poolSize">Pool size in bytes, a multiple of 4 KiB.</param>
    /// <param name="fiveLevel">Build 5-level tables (the root is a PML5).</param>
    public PageTableBuilder(PhysicalBus bus, ulong poolBase, ulong poolSize, bool fiveLevel = false)
    {
        ArgumentNullException.ThrowIfNull(bus);
        if ((poolBase & 0xFFF) != 0 || (poolSize & 0xFFF) != 0 || poolSize == 0)
            throw new ArgumentException($"The page-table pool (base 0x{poolBase:x}, size 0x{poolSize:x}) must be non-empty and 4 KiB aligned in base and size.");
        _bus = bus;
        _next = poolBase;
        _poolEnd = poolBase + poolSize;
        FiveLevel = fiveLevel;
        Root = AllocateTable();
    }

    /// <summary>Whether the tables are 5-level.</summary>
    public bool FiveLevel { get; }
    /// <summary>Physical address of the PML4 (or PML5): the value for CR3.</summary>
    public ulong Root { get; }
    /// <summary>Number of top level: 5 or 4.</summary>
    public int Levels => FiveLevel ? 5 : 4;
    /// <summary>Tables allocated so far.</summary>
    public int TablesAllocated { get; private set; }
    /// <summary>Flags given to non-leaf entries created by <see cref="Map"/>: P|RW|US by default, so leaves decide.</summary>
    public PteFlags TableFlags { get; set; } = PteFlags.Present | PteFlags.Writable | PteFlags.User;

    /// <summary>Allocates a zeroed 4 KiB table from the pool.</summary>
    public ulong AllocateTable()
    {
        if (_next >= _poolEnd)
            throw new InvalidOperationException($"The page-table pool is exhausted after {TablesAllocated} tables; give the builder a larger pool.");
        ulong pa = _next;
        _next += 0x1000;
        TablesAllocated++;
        Span<byte> zero = stackalloc byte[0x1000];
        zero.Clear();
        _bus.WriteBytes(pa, zero, BusAttributes.Host);
        return pa;
    }

    /// <summary>Maps one page of <paramref name="size"/> at <paramref name="va"/> to <paramref name="pa"/> with <paramref name="flags"/> (P is added; PS is added for large pages).</summary>
    public void Map(ulong va, ulong pa, PageSize size, PteFlags flags, int protectionKey = 0)
    {
        ulong bytes = size.Bytes();
        if ((va & (bytes - 1)) != 0 || (pa & (bytes - 1)) != 0)
            throw new ArgumentException($"A {size.Label()} mapping needs va and pa aligned to 0x{bytes:x} (va 0x{va:x}, pa 0x{pa:x}).");
        int leafLevel = size.LeafLevel();
        ulong table = Root;
        for (int level = Levels; level > leafLevel; level--)
        {
            ulong entryPa = table + Index(va, level) * 8;
            ulong raw = Read(entryPa);
            if ((raw & 1) == 0)
            {
                ulong next = AllocateTable();
                raw = PageTableEntry.Create(next, TableFlags).Raw;
                Write(entryPa, raw);
            }
            else if (level <= 3 && (raw & (ulong)PteFlags.PageSize) != 0)
                throw new InvalidOperationException($"0x{va:x} is already covered by a large page at the {PageGeometry.EntryName(level)}; unmap it first.");
            table = raw & 0x000F_FFFF_FFFF_F000UL;
        }
        var leaf = flags | PteFlags.Present | (size != PageSize.Size4K ? PteFlags.PageSize : 0);
        Write(table + Index(va, leafLevel) * 8, PageTableEntry.Create(pa, leaf, protectionKey).Raw);
    }

    /// <summary>Maps a range with pages of one size.</summary>
    public void MapRange(ulong va, ulong pa, ulong length, PageSize size, PteFlags flags)
    {
        for (ulong off = 0; off < length; off += size.Bytes()) Map(va + off, pa + off, size, flags);
    }

    /// <summary>Physical address of the entry at <paramref name="level"/> for <paramref name="va"/>, or null when an upper level is not present or is a leaf.</summary>
    public ulong? EntryAddress(ulong va, int level)
    {
        ulong table = Root;
        for (int l = Levels; l > level; l--)
        {
            ulong raw = Read(table + Index(va, l) * 8);
            if ((raw & 1) == 0 || (l <= 3 && (raw & (ulong)PteFlags.PageSize) != 0)) return null;
            table = raw & 0x000F_FFFF_FFFF_F000UL;
        }
        return table + Index(va, level) * 8;
    }

    /// <summary>Reads the entry at <paramref name="level"/> for <paramref name="va"/> (0 when the path does not exist).</summary>
    public ulong ReadEntry(ulong va, int level) => EntryAddress(va, level) is { } pa ? Read(pa) : 0;

    /// <summary>Overwrites the entry at <paramref name="level"/> for <paramref name="va"/>; the path must exist.</summary>
    public void WriteEntry(ulong va, int level, ulong raw)
    {
        var pa = EntryAddress(va, level) ?? throw new InvalidOperationException($"No table at level {level} for 0x{va:x}: map it first.");
        Write(pa, raw);
    }

    private static ulong Index(ulong va, int level) => (va >> PageGeometry.LevelShift(level)) & 511;

    private ulong Read(ulong pa)
    {
        _bus.Read(pa, 8, out ulong v, BusAttributes.Host);
        return v;
    }

    private void Write(ulong pa, ulong v) => _bus.Write(pa, 8, v, BusAttributes.Host);
}
