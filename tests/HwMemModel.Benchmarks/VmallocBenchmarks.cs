using BenchmarkDotNet.Attributes;
using HwMemModel.Machine;
using KernelModel = HwMemModel.Kernel.Kernel;

namespace HwMemModel.Benchmarks;

/// <summary>
/// vmalloc and ioremap targets of the kernel issue: Vmalloc+Vfree of 16 KiB ≥ 200,000 pairs/s (≤ 5 µs a pair) and
/// IoRemap+IoUnmap of 4 KiB ≥ 200,000 pairs/s. Each invocation runs <see cref="Ops"/> pairs on a booted kernel (256 MiB,
/// one CPU) in steady state: the lazy purge (one full TLB flush, the pages and ranges given back) runs whenever the
/// lazily freed pages pass lazy_max_pages, so its cost is spread over the pairs as in Linux. The figure per pair is the
/// reported mean / Ops.
/// </summary>
[MemoryDiagnoser]
public class VmallocBenchmarks
{
    /// <summary>Pairs per benchmark invocation.</summary>
    public const int Ops = 1024;
    private const ulong Device = 0xFED0_0000;

    private KernelModel _kernel = null!;

    [GlobalSetup]
    public void Setup()
    {
        _kernel = KernelModel.Boot(DefaultMachine.CreateBus(256UL << 20));
        // Warm up: the page tables for the part of the vmalloc space the steady state cycles through get allocated.
        for (int i = 0; i < 3 * 8192; i++)
        {
            _kernel.Vfree(_kernel.Vmalloc(16 * 1024));
            _kernel.IoUnmap(_kernel.IoRemap(Device, 4096));
        }
    }

    /// <summary>Vmalloc of 16 KiB (4 pages, 4 PTEs) then Vfree (PTEs cleared, range on the lazy list).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong VmallocVfree16K()
    {
        var k = _kernel;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong va = k.Vmalloc(16 * 1024, "bench");
            k.Vfree(va);
            sum += va;
        }
        return sum;
    }

    /// <summary>IoRemap of one 4 KiB page (memtype reservation, area, one PTE) then IoUnmap.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong IoRemapIoUnmap4K()
    {
        var k = _kernel;
        ulong sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            ulong va = k.IoRemap(Device, 4096, "bench");
            k.IoUnmap(va);
            sum += va;
        }
        return sum;
    }
}
