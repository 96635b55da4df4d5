using BenchmarkDotNet.Attributes;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Issue 5's device-path figures on the default machine: one readl of a device register through an ioremap
/// mapping (TLB hit, MMIO dispatch, the device's register map).
/// </summary>
[MemoryDiagnoser]
public class MmioBenchmarks
{
    private const int Reads = 1000;
    private SimulatedMachine _machine = null!;
    private ulong _regs;

    [GlobalSetup]
    public void Setup()
    {
        _machine = SimulatedMachine.Build(MachineDescription.Default);
        _regs = _machine.Kernel.IoRemap(MachineDescription.DefaultDmaBase, 0x1000);
    }

    [GlobalCleanup]
    public void Cleanup() => _machine.Dispose();

    /// <summary>readl of the DMA engine's ID register (per read).</summary>
    [Benchmark(OperationsPerInvoke = Reads)]
    public uint ReadL()
    {
        uint x = 0;
        for (int i = 0; i < Reads; i++) x ^= _machine.Kernel.ReadL(_regs);
        return x;
    }
}
