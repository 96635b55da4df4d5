using BenchmarkDotNet.Attributes;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using KernelModel = HwMemModel.Kernel.Kernel;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Slab targets of the kernel issue: Kmalloc+Kfree of 64 bytes ≥ 5 million pairs/s (≤ 200 ns a pair) without debug
/// flags. Each benchmark runs <see cref="Ops"/> pairs per invocation, so the figure per pair is the reported mean / Ops.
/// </summary>
[MemoryDiagnoser]
public class SlabBenchmarks
{
    /// <summary>Pairs per benchmark invocation.</summary>
    public const int Ops = 1024;

    private KernelModel _k = null!;
    private KmemCache _cache = null!;
    private KmemCache _debug = null!;
    private readonly ulong[] _held = new ulong[Ops];

    [GlobalSetup]
    public void Setup()
    {
        _k = KernelModel.Boot(DefaultMachine.CreateBus(256UL << 20));
        _cache = _k.KmemCacheCreate("bench_obj", 64, 0, SlabFlags.None, null)!;
        _debug = _k.KmemCacheCreate("bench_debug", 64, 0, SlabFlags.RedZone | SlabFlags.Poison, null)!;
        // Warm: the first slab of each cache exists, so a pair never touches the page allocator.
        _k.Kfree(_k.Kmalloc(64, Gfp.Kernel, "bench"), "bench");
        _k.KmemCacheFree(_cache, _k.KmemCacheAlloc(_cache, Gfp.Kernel, "bench"), "bench");
        _k.KmemCacheFree(_debug, _k.KmemCacheAlloc(_debug, Gfp.Kernel, "bench"), "bench");
    }

    /// <summary>Kmalloc(64, GFP_KERNEL) + Kfree: the 5 million pairs/s target.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong Kmalloc64Kfree()
    {
        var k = _k;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong p = k.Kmalloc(64, Gfp.Kernel, "bench");
            k.Kfree(p, "bench");
            sum += p;
        }
        return sum;
    }

    /// <summary>1024 Kmalloc(64) then 1024 Kfree: 16 slabs filled and emptied, partial-list traffic included.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong Kmalloc64BatchThenKfree()
    {
        var k = _k;
        var held = _held;
        for (int i = 0; i < Ops; i++) held[i] = k.Kmalloc(64, Gfp.Kernel, "bench");
        for (int i = 0; i < Ops; i++) k.Kfree(held[i], "bench");
        return held[Ops - 1];
    }

    /// <summary>Kzalloc(64) + Kfree: zeroing 64 bytes through the MMU.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong Kzalloc64Kfree()
    {
        var k = _k;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong p = k.Kzalloc(64, Gfp.Kernel, "bench");
            k.Kfree(p, "bench");
            sum += p;
        }
        return sum;
    }

    /// <summary>KmemCacheAlloc + KmemCacheFree on a 64-byte cache without debug flags.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong KmemCacheAllocFree()
    {
        var k = _k;
        var c = _cache;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong p = k.KmemCacheAlloc(c, Gfp.Kernel, "bench");
            k.KmemCacheFree(c, p, "bench");
            sum += p;
        }
        return sum;
    }

    /// <summary>The same with SLAB_RED_ZONE | SLAB_POISON: every pair checks and rewrites red zones and poison in RAM.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong KmemCacheAllocFreeDebug()
    {
        var k = _k;
        var c = _debug;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong p = k.KmemCacheAlloc(c, Gfp.Kernel, "bench");
            k.KmemCacheFree(c, p, "bench");
            sum += p;
        }
        return sum;
    }

    /// <summary>Kmalloc(64 KiB) + Kfree: a large kmalloc, an order-4 block from the page allocator and back.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong KmallocLargeKfree()
    {
        var k = _k;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong p = k.Kmalloc(64 * 1024, Gfp.Kernel, "bench");
            k.Kfree(p, "bench");
            sum += p;
        }
        return sum;
    }
}
