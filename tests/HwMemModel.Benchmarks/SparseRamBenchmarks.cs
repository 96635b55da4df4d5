using BenchmarkDotNet.Attributes;
using HwMemModel.Bus;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Sparse RAM: a 64 GiB RAM region is built and 64 MiB of it (16,384 pages spread over the whole range) is touched.
/// The memory diagnoser's "Allocated" column is the host memory this costs (target ≤ 100 MiB).
/// </summary>
[MemoryDiagnoser]
public class SparseRamBenchmarks
{
    /// <summary>Builds 64 GiB of RAM and touches 64 MiB of it.</summary>
    [Benchmark]
    public long Build64GiBTouch64MiB()
    {
        var bus = new PhysicalBus(40);
        bus.AddRam("ram", 0, 64UL << 30);
        const int pages = (64 << 20) / 4096;
        ulong stride = (64UL << 30) / pages;
        for (int i = 0; i < pages; i++) bus.Write((ulong)i * stride, 8, (ulong)i + 1, BusAttributes.Host);
        return bus.Regions.Count;
    }

    /// <summary>Builds 64 GiB of RAM and touches nothing (build time alone).</summary>
    [Benchmark]
    public int Build64GiB()
    {
        var bus = new PhysicalBus(40);
        bus.AddRam("ram", 0, 64UL << 30);
        return bus.Regions.Count;
    }
}
