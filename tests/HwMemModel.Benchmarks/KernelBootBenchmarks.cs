using BenchmarkDotNet.Attributes;
using HwMemModel.Bus;
using HwMemModel.Kernel;

namespace HwMemModel.Benchmarks;

/// <summary>Boot of the kernel model on 64 GiB of RAM (target: under 1 s and under 200 MiB of host memory).</summary>
[MemoryDiagnoser]
public class KernelBootBenchmarks
{
    private const ulong MiB = 1UL << 20, GiB = 1UL << 30;

    /// <summary>A pc-like machine with 64 GiB: RAM below 640 KiB, 1 MiB to 3 GiB, and 4 GiB up to 65 GiB.</summary>
    public static PhysicalBus Bus64GiB()
    {
        var bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        bus.AddRam("low", 0, 0xA0000);
        bus.AddRam("ram", MiB, 3 * GiB - MiB);
        bus.AddRam("high", 4 * GiB, 61 * GiB);
        return bus;
    }

    /// <summary>Builds the bus and boots: memory map, page tables in RAM, PAT, CPU, buddy allocator.</summary>
    [Benchmark]
    public long Boot64GiB() => Kernel.Kernel.Boot(Bus64GiB()).Pages.FreePageCount;
}
