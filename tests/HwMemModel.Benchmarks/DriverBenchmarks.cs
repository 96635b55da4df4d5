using BenchmarkDotNet.Attributes;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using Microsoft.Extensions.DependencyInjection;

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

/// <summary>
/// Issue 5's block figure: 4 KiB reads through the virtio-blk driver on the default machine — a 3-descriptor
/// chain in the coherent ring, the doorbell, the device's DMA, the completion interrupt through the IOAPIC and the
/// local APIC, the handler, and the copy out of the bounce buffer.
/// </summary>
[MemoryDiagnoser]
public class VirtioBlkBenchmarks
{
    private const int Reads = 64;
    private ServiceProvider _provider = null!;
    private HwMemModel.Drivers.Block.VirtioBlkDisk _disk = null!;
    private readonly byte[] _buffer = new byte[4096];

    [GlobalSetup]
    public void Setup()
    {
        var services = new ServiceCollection().AddHwMemModel(MachineDescription.Default);
        services.AddPlatformDriver<HwMemModel.Drivers.Block.VirtioBlkDriver>();
        _provider = services.BuildServiceProvider();
        _provider.StartHwMemModel();
        _disk = _provider.GetRequiredService<HwMemModel.Drivers.Block.VirtioBlkDriver>().Disks["virtio0"];
    }

    [GlobalCleanup]
    public void Cleanup() => _provider.Dispose();

    /// <summary>One 4 KiB read (8 sectors) through the driver, per read.</summary>
    [Benchmark(OperationsPerInvoke = Reads)]
    public int Read4K()
    {
        int rc = 0;
        for (int i = 0; i < Reads; i++) rc |= _disk.ReadSectors((ulong)(i * 8), _buffer);
        return rc;
    }
}
