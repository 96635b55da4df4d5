using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests;

/// <summary>A small machine for MMU tests: RAM, a page-table pool at 16 MiB, a CPU context in long mode.</summary>
internal sealed class TestMachine
{
    public const ulong PoolBase = 0x100_0000;
    public const ulong PoolSize = 0x100_0000;

    public TestMachine(ulong ramSize = 0x1000_0000, bool fiveLevel = false, TlbGeometry? tlb = null, CpuFeatures? features = null,
        ulong extraCr4 = Cr4.PGE, bool nxe = true, bool wp = true)
    {
        Bus = new PhysicalBus();
        Bus.AddRam("ram", 0, ramSize);
        Tables = new PageTableBuilder(Bus, PoolBase, PoolSize, fiveLevel);
        Cpu = new CpuContext(Bus, 0, features, tlb);
        Cpu.EnterLongMode(Tables.Root, fiveLevel, extraCr4, nxe, wp);
    }

    public PhysicalBus Bus { get; }
    public PageTableBuilder Tables { get; }
    public CpuContext Cpu { get; }
    public Mmu Mmu => Cpu.Mmu;

    public ulong Phys(ulong pa)
    {
        Bus.Read(pa, 8, out ulong v, BusAttributes.Host);
        return v;
    }
}
