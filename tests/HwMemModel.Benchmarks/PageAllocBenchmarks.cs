using BenchmarkDotNet.Attributes;
using HwMemModel.Kernel;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Page-allocator targets of the kernel issue: order-0 alloc+free ≥ 10 million pairs/s (≤ 100 ns a pair) and the
/// allocator's boot over 64 GiB of RAM (&lt; 1 s, &lt; 200 MiB). Each pair benchmark runs <see cref="Ops"/> pairs per
/// invocation, so the figure per pair is the reported mean / Ops.
/// </summary>
[MemoryDiagnoser]
public class PageAllocBenchmarks
{
    /// <summary>Pairs per benchmark invocation.</summary>
    public const int Ops = 1024;
    private const ulong MiB = 1UL << 20, GiB = 1UL << 30;

    private PageAllocator _warm = null!;
    private PageAllocator _fresh = null!;
    private PageAllocator _batch = null!;
    private readonly ulong[] _held = new ulong[Ops];
    private PhysRange[] _ranges64G = null!;

    [GlobalSetup]
    public void Setup()
    {
        // Warm: one page of the first order-10 block stays allocated, so its buddy sits on the order-0 list and a
        // pair is one pop and one push (the common case). Fresh: nothing allocated, so every order-0 allocation
        // splits an order-10 block ten times and every free merges ten times (the worst case).
        _warm = new PageAllocator([new PhysRange(4 * GiB, 4 * GiB + 256 * MiB, 0)], 1, new KernelLog(), (_, _) => { });
        _warm.AllocPages(Gfp.Kernel, 0);
        _fresh = new PageAllocator([new PhysRange(4 * GiB, 4 * GiB + 256 * MiB, 0)], 1, new KernelLog(), (_, _) => { });
        _batch = new PageAllocator([new PhysRange(4 * GiB, 4 * GiB + 256 * MiB, 0)], 1, new KernelLog(), (_, _) => { });
        _ranges64G = [new PhysRange(MiB, 2 * GiB, 0), new PhysRange(4 * GiB, 66 * GiB, 0)];
    }

    /// <summary>Order-0 AllocPages + FreePages with a free buddy page on the order-0 list.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong AllocFreeOrder0Warm()
    {
        var a = _warm;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong pa = a.AllocPages(Gfp.Kernel, 0, PageAllocator.NumaNoNode, "bench")!.Value;
            a.FreePages(pa, 0, "bench");
            sum += pa;
        }
        return sum;
    }

    /// <summary>Order-0 AllocPages + FreePages from a fully merged zone: ten splits and ten merges a pair.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong AllocFreeOrder0SplitMerge()
    {
        var a = _fresh;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong pa = a.AllocPages(Gfp.Kernel, 0, PageAllocator.NumaNoNode, "bench")!.Value;
            a.FreePages(pa, 0, "bench");
            sum += pa;
        }
        return sum;
    }

    /// <summary>1,024 order-0 allocations, then their 1,024 frees (a 4 MiB working set): per pair.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong AllocThenFreeOrder0Batch()
    {
        var a = _batch;
        var held = _held;
        for (int i = 0; i < Ops; i++) held[i] = a.AllocPages(Gfp.Kernel, 0, PageAllocator.NumaNoNode, "bench")!.Value;
        for (int i = 0; i < Ops; i++) a.FreePages(held[i], 0, "bench");
        return held[Ops - 1];
    }

    /// <summary>Builds the allocator over 64 GiB of free RAM ([1 MiB, 2 GiB) and [4 GiB, 66 GiB)).</summary>
    [Benchmark]
    public long Boot64GiB() => new PageAllocator(_ranges64G, 1, new KernelLog(), (_, _) => { }).FreePageCount;
}
