using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>
/// The kernel page tables (init_mm.pgd and below): pages from the allocator, entries in real IA-32e format in
/// emulated RAM. Before paging is on they are written by physical address; afterwards through the direct map by the
/// current CPU's MMU, as the kernel does. No shadow copy exists: every lookup reads RAM.
/// </summary>
public sealed class KernelPageTables
{
    /// <summary>_KERNPG_TABLE: P|RW|A|D for intermediate entries.</summary>
    public const ulong KernPgTable = 0x63;
    /// <summary>__PAGE_KERNEL: P|RW|A|D|G|NX.</summary>
    public const ulong PageKernel = 0x8000_0000_0000_0163UL;
    /// <summary>__PAGE_KERNEL_RO: P|A|G|NX.</summary>
    public const ulong PageKernelRo = 0x8000_0000_0000_0121UL;
    /// <summary>__PAGE_KERNEL_ROX: P|A|G.</summary>
    public const ulong PageKernelRox = 0x121;
    /// <summary>__PAGE_KERNEL_EXEC: P|RW|A|D|G.</summary>
    public const ulong PageKernelExec = 0x163;
    private const ulong AddrMask = 0x000F_FFFF_FFFF_F000UL;

    private readonly Kernel _kernel;
    private readonly Func<ulong> _allocTable;

    internal KernelPageTables(Kernel kernel, Func<ulong> allocTable, bool fiveLevel)
    {
        _kernel = kernel;
        _allocTable = allocTable;
        Levels = fiveLevel ? 5 : 4;
        Pgd = allocTable();
    }

    /// <summary>Physical address of the top-level table (the value of CR3).</summary>
    public ulong Pgd { get; }
    /// <summary>4 or 5.</summary>
    public int Levels { get; }
    /// <summary>Page-table pages allocated so far (the top level included).</summary>
    public int TablePages { get; private set; } = 1;
    internal bool ThroughDirectMap { get; set; }

    /// <summary>Reads the entry at physical address <paramref name="entryPa"/>.</summary>
    public ulong ReadEntry(ulong entryPa)
    {
        if (ThroughDirectMap) return _kernel.Memory.Read(_kernel.PhysToVirt(entryPa), 8);
        _kernel.Bus.Read(entryPa, 8, out ulong v, BusAttributes.Host);
        return v;
    }

    /// <summary>Writes the entry at physical address <paramref name="entryPa"/> (set_pte and friends).</summary>
    public void WriteEntry(ulong entryPa, ulong value)
    {
        if (ThroughDirectMap) _kernel.Memory.Write(_kernel.PhysToVirt(entryPa), 8, value);
        else _kernel.Bus.Write(entryPa, 8, value, BusAttributes.Host);
    }

    /// <summary>Maps one page of <paramref name="size"/> at <paramref name="va"/>, allocating intermediate tables; no TLB flush (none is needed for a new mapping).</summary>
    public void Map(ulong va, ulong pa, PageSize size, ulong protection)
    {
        ulong entryPa = EntryFor(va, size.LeafLevel(), allocate: true)!.Value;
        ulong leaf = (pa & AddrMask & ~(size.Bytes() - 1)) | protection | (size == PageSize.Size4K ? 0 : (ulong)PteFlags.PageSize);
        WriteEntry(entryPa, leaf);
    }

    /// <summary>
    /// The physical address of the entry at <paramref name="level"/> for <paramref name="va"/>; with
    /// <paramref name="allocate"/> missing tables are created, otherwise null when the path is absent or a large
    /// leaf sits above <paramref name="level"/>.
    /// </summary>
    public ulong? EntryFor(ulong va, int level, bool allocate)
    {
        ulong table = Pgd;
        for (int l = Levels; l > level; l--)
        {
            ulong entryPa = table + ((va >> PageGeometry.LevelShift(l)) & 511) * 8;
            ulong e = ReadEntry(entryPa);
            if ((e & 1) == 0)
            {
                if (!allocate) return null;
                ulong next = _allocTable();
                TablePages++;
                e = next | KernPgTable;
                WriteEntry(entryPa, e);
            }
            else if (l <= 3 && (e & (ulong)PteFlags.PageSize) != 0)
            {
                if (!allocate) return null;
                throw new InvalidOperationException($"0x{va:x} is inside a large page at the {PageGeometry.EntryName(l)}; splitting large pages is not modelled.");
            }
            table = e & AddrMask;
        }
        return table + ((va >> PageGeometry.LevelShift(level)) & 511) * 8;
    }

    /// <summary>lookup_address: the leaf entry mapping <paramref name="va"/> and its level, read from RAM; null when unmapped.</summary>
    public (ulong Entry, int Level)? Lookup(ulong va)
    {
        ulong table = Pgd;
        for (int l = Levels; l >= 1; l--)
        {
            ulong e = ReadEntry(table + ((va >> PageGeometry.LevelShift(l)) & 511) * 8);
            if ((e & 1) == 0) return null;
            if (l == 1 || (l <= 3 && (e & (ulong)PteFlags.PageSize) != 0)) return (e, l);
            table = e & AddrMask;
        }
        return null;
    }
}
