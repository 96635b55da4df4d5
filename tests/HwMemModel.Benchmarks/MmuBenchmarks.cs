using BenchmarkDotNet.Attributes;
using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Speed targets of the MMU issue: a TLB-hit translation of a data read (≤ 5 ns), a 4-level walk on a cold TLB
/// (≤ 60 ns) and an 8-byte RAM read through translation and bus (≤ 8 ns). Each benchmark runs
/// <see cref="Ops"/> operations per invocation so the figure per operation is the reported mean / Ops.
/// </summary>
[MemoryDiagnoser]
public class MmuBenchmarks
{
    /// <summary>Operations per benchmark invocation.</summary>
    public const int Ops = 1024;
    private const ulong Va = 0x7f00_0000_0000UL;

    private CpuContext _hot = null!;
    private CpuContext _cold = null!;
    private ulong[] _addresses = null!;

    [GlobalSetup]
    public void Setup()
    {
        _hot = Build(TlbGeometry.Default);
        _cold = Build(TlbGeometry.None);
        // 1024 distinct 4 KiB pages spread over 4 MiB: each cold translation walks all 4 levels.
        _addresses = Enumerable.Range(0, Ops).Select(i => Va + (ulong)i * 0x1000 + 0x10).ToArray();
        foreach (var a in _addresses)
        {
            _hot.Mmu.Translate(a, AccessKind.Read, Privilege.Supervisor, out _);
            _cold.Mmu.Translate(a, AccessKind.Read, Privilege.Supervisor, out _); // sets the A bits once
        }
    }

    private static CpuContext Build(TlbGeometry geometry)
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 256UL << 20);
        var t = new PageTableBuilder(bus, 0x100_0000, 0x40_0000);
        t.MapRange(Va, 0x200_0000, (ulong)Ops * 0x1000, PageSize.Size4K, PteFlags.Writable | PteFlags.NoExecute);
        for (int i = 0; i < Ops; i++) bus.Write(0x200_0000UL + (ulong)i * 0x1000, 8, (ulong)i + 1, BusAttributes.Host); // touch the data pages
        var cpu = new CpuContext(bus, 0, null, geometry);
        cpu.EnterLongMode(t.Root);
        return cpu;
    }

    /// <summary>TLB-hit translation of a data read, one page (an L1 DTLB hit every time).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong TlbHitTranslateRead()
    {
        ulong sum = 0;
        var mmu = _hot.Mmu;
        for (int i = 0; i < Ops; i++)
        {
            mmu.Translate(Va + ((ulong)i & 0xFF8), AccessKind.Read, Privilege.Supervisor, out var t);
            sum += t.PhysicalAddress;
        }
        return sum;
    }

    /// <summary>A 4-level walk with no TLB and no paging-structure caches (every translation walks).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong ColdWalk4Level()
    {
        ulong sum = 0;
        var mmu = _cold.Mmu;
        var a = _addresses;
        for (int i = 0; i < a.Length; i++)
        {
            mmu.Translate(a[i], AccessKind.Read, Privilege.Supervisor, out var t);
            sum += t.PhysicalAddress;
        }
        return sum;
    }

    /// <summary>An aligned 8-byte physical read on the bus alone (no translation), for comparison.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong BusRead8()
    {
        ulong sum = 0;
        var bus = _hot.Bus;
        var attrs = BusAttributes.Cpu(0);
        for (int i = 0; i < Ops; i++)
        {
            bus.Read(0x200_0000UL + ((ulong)i & 0xFF8), 8, out ulong v, attrs);
            sum += v;
        }
        return sum;
    }

    /// <summary>An aligned 8-byte read through TLB-hit translation and the bus into RAM.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public ulong Read8ThroughMmuAndBus()
    {
        ulong sum = 0;
        var mmu = _hot.Mmu;
        for (int i = 0; i < Ops; i++)
        {
            mmu.Read(Va + ((ulong)i & 0xFF8), 8, Privilege.Supervisor, out ulong v);
            sum += v;
        }
        return sum;
    }
}
