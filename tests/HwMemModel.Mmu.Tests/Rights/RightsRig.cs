using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>
/// One mapping of one page size whose paging-structure entries the tests rewrite directly in RAM (never through the
/// model's rights code), plus setters for the control state that §4.6 consults.
/// </summary>
internal sealed class RightsRig
{
    public const ulong A = 1UL << 5, D = 1UL << 6, PS = 1UL << 7, XdBit = 1UL << 63;
    public const ulong AddressBits = 0x000F_FFFF_FFFF_F000UL;

    private readonly ulong[] _entryPa;   // index = level (1..Levels)
    private readonly ulong[] _nextTable; // index = level: address held by the non-leaf entry

    public RightsRig(PageSize size, ulong va, ulong pa, bool fiveLevel = false, TlbGeometry? tlb = null, CpuFeatures? features = null)
    {
        Size = size;
        Va = va;
        Pa = pa;
        Machine = new TestMachine(fiveLevel: fiveLevel, tlb: tlb ?? TlbGeometry.Tiny, features: features);
        ulong page = va & ~(size.Bytes() - 1);
        Machine.Tables.Map(page, pa, size, PteFlags.Writable | PteFlags.User);
        Levels = fiveLevel ? 5 : 4;
        LeafLevel = size.LeafLevel();
        _entryPa = new ulong[Levels + 1];
        _nextTable = new ulong[Levels + 1];
        for (int level = Levels; level >= LeafLevel; level--)
        {
            _entryPa[level] = Machine.Tables.EntryAddress(page, level) ?? throw new InvalidOperationException($"no entry at level {level}");
            _nextTable[level] = Machine.Phys(_entryPa[level]) & AddressBits;
        }
    }

    public TestMachine Machine { get; }
    public CpuContext Cpu => Machine.Cpu;
    public Mmu Mmu => Machine.Mmu;
    public PageSize Size { get; }
    public ulong Va { get; }
    public ulong Pa { get; }
    public int Levels { get; }
    public int LeafLevel { get; }

    /// <summary>The entry levels on the path, top first (5 or 4 down to the leaf level).</summary>
    public IEnumerable<int> PathLevels => Enumerable.Range(LeafLevel, Levels - LeafLevel + 1).Reverse();

    public ulong EntryAddress(int level) => _entryPa[level];
    public ulong ReadEntry(int level) => Machine.Phys(_entryPa[level]);
    public void WriteEntry(int level, ulong raw) => Machine.Bus.Write(_entryPa[level], 8, raw, BusAttributes.Host);

    /// <summary>A present non-leaf entry pointing at the original next table, with A=0.</summary>
    public ulong NonLeafValue(int level, EntryRights r) => _nextTable[level] | 1 | Bits(r);

    /// <summary>A present leaf entry with A=D=0 mapping <see cref="Pa"/>.</summary>
    public ulong LeafValue(EntryRights r, int protectionKey = 0, ulong extra = 0)
        => (Pa & AddressBits) | 1 | Bits(r) | (LeafLevel > 1 ? PS : 0) | ((ulong)protectionKey << 59) | extra;

    private static ulong Bits(EntryRights r) => (r.Writable ? 2UL : 0) | (r.User ? 4UL : 0) | (r.NoExecute ? XdBit : 0);

    /// <summary>Sets CR0.WP, EFER.NXE, CR4.SMEP/SMAP/PKE, EFLAGS.AC and PKRU through the host API.</summary>
    public void Apply(RightsControls c)
    {
        ulong cr0 = Cpu.Cr0Value;
        cr0 = c.Wp ? cr0 | Cr0.WP : cr0 & ~Cr0.WP;
        if (cr0 != Cpu.Cr0Value) Cpu.SetCr0(cr0);
        ulong efer = Cpu.EferValue;
        efer = c.Nxe ? efer | Efer.NXE : efer & ~Efer.NXE;
        if (efer != Cpu.EferValue) Cpu.SetEfer(efer);
        ulong cr4 = Cpu.Cr4Value & ~(Cr4.SMEP | Cr4.SMAP | Cr4.PKE);
        if (c.Smep) cr4 |= Cr4.SMEP;
        if (c.Smap) cr4 |= Cr4.SMAP;
        if (c.Pke) cr4 |= Cr4.PKE;
        if (cr4 != Cpu.Cr4Value) Cpu.SetCr4(cr4);
        Cpu.AlignmentCheck = c.Ac;
        Cpu.Pkru = c.Pkru;
    }

    /// <summary>CPL 3 for user and implicit accesses (the interesting implicit case), 0 for explicit supervisor ones.</summary>
    public void SetCplFor(Privilege privilege) => Cpu.Cpl = privilege == Privilege.Supervisor ? 0 : 3;
}
