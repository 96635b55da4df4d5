using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;
using KernelModel = HwMemModel.Kernel.Kernel;

namespace HwMemModel.Cli.Plots;

/// <summary>The access patterns <c>hwmem tlb-sweep</c> replays.</summary>
internal enum SweepWorkload
{
    /// <summary>8-byte loads walking a buffer once, front to back.</summary>
    Sequential,
    /// <summary>8-byte loads at uniformly random aligned offsets of a 1 GiB buffer.</summary>
    Random,
    /// <summary>8-byte loads with a fixed stride (4 KiB + 64 B by default) through a 64 MiB buffer, wrapping.</summary>
    Strided,
    /// <summary>kmalloc objects, vmalloc buffers and the direct map of the booted kernel model.</summary>
    KernelMix,
}

/// <summary>One measured point of the sweep: one page size (or the kernel's own mix), one L1 size, with or without the L2.</summary>
/// <param name="PageSize">"4K", "2M", "1G", or "mixed" for the kernel model's own mappings.</param>
/// <param name="TlbEntries">Entries of each L1 data-TLB array.</param>
/// <param name="L2">Whether the unified L2 (STLB) was present.</param>
/// <param name="Accesses">Accesses replayed.</param>
/// <param name="Translations">Translations the MMU counted (<see cref="MmuCounters.Translations"/>).</param>
/// <param name="L1Misses">Misses of the L1 data TLB (<see cref="TlbLevel.TotalMisses"/>).</param>
/// <param name="Misses">Misses of the last TLB level: the STLB with an L2, else the L1 data TLB.</param>
/// <param name="Walks">Page walks (<see cref="MmuCounters.Walks"/>).</param>
/// <param name="WalkReads">Paging-structure entries read by walks (<see cref="MmuCounters.WalkReads"/>).</param>
internal sealed record SweepPoint(string PageSize, int TlbEntries, bool L2, long Accesses, long Translations,
    long L1Misses, long Misses, long Walks, long WalkReads)
{
    /// <summary>Last-level TLB misses per access.</summary>
    public double MissRate => Accesses == 0 ? 0 : (double)Misses / Accesses;
    /// <summary>L1 data-TLB misses per access.</summary>
    public double L1MissRate => Accesses == 0 ? 0 : (double)L1Misses / Accesses;
    /// <summary>Paging-structure reads (page-walk memory references) per access.</summary>
    public double WalkReadsPerAccess => Accesses == 0 ? 0 : (double)WalkReads / Accesses;
    /// <summary>Paging-structure reads per walk.</summary>
    public double WalkReadsPerMiss => Walks == 0 ? 0 : (double)WalkReads / Walks;
}

/// <summary>
/// The TLB sweep: a workload's address trace, generated once from the seed, replayed through fresh
/// <see cref="CpuContext"/>s of different TLB geometries over the same page tables; every figure is read from the
/// MMU's own counters.
/// </summary>
internal sealed class TlbSweep
{
    /// <summary>The workload names, as given on the command line.</summary>
    public static readonly IReadOnlyList<string> WorkloadNames = ["sequential", "random", "strided", "kernel-mix"];
    /// <summary>The L1 data-TLB sizes swept: 4 to 1024 entries, powers of two.</summary>
    public static readonly IReadOnlyList<int> TlbSizes = [4, 8, 16, 32, 64, 128, 256, 512, 1024];
    /// <summary>Associativity of the swept L1 arrays.</summary>
    public const int Ways = 4;
    /// <summary>Default stride of the strided workload: 4 KiB + 64 B, so every access lands on a new 4 KiB page and a new cache line.</summary>
    public const ulong DefaultStride = 4096 + 64;

    private const ulong KiB = 1UL << 10, MiB = 1UL << 20, GiB = 1UL << 30;
    private const ulong RandomBuffer = 1 * GiB;
    private const ulong StridedBuffer = 64 * MiB;
    // Synthetic machine: sparse RAM, page tables from a pool at 16 MiB, the buffer at PA 4 GiB mapped at VA 0x7000_0000_0000.
    private const ulong TablePool = 16 * MiB, TablePoolSize = 16 * MiB;
    private const ulong DataPa = 4 * GiB, DataVa = 0x0000_7000_0000_0000UL;

    private TlbSweep(SweepWorkload workload, long accesses, ulong seed, ulong stride)
    {
        Workload = workload;
        Accesses = accesses;
        Seed = seed;
        Stride = stride;
    }

    /// <summary>The workload.</summary>
    public SweepWorkload Workload { get; }
    /// <summary>Accesses per point.</summary>
    public long Accesses { get; }
    /// <summary>The seed of the random parts of the trace.</summary>
    public ulong Seed { get; }
    /// <summary>The stride of the strided workload.</summary>
    public ulong Stride { get; }

    /// <summary>Parses a workload name; null when unknown.</summary>
    public static SweepWorkload? ParseWorkload(string name) => name switch
    {
        "sequential" => SweepWorkload.Sequential,
        "random" => SweepWorkload.Random,
        "strided" => SweepWorkload.Strided,
        "kernel-mix" => SweepWorkload.KernelMix,
        _ => null,
    };

    /// <summary>The command-line name of <paramref name="workload"/>.</summary>
    public static string Name(SweepWorkload workload) => WorkloadNames[(int)workload];

    /// <summary>Creates a sweep.</summary>
    public static TlbSweep Create(SweepWorkload workload, long accesses, ulong seed, ulong stride = DefaultStride)
        => new(workload, accesses, seed, stride);

    /// <summary>A sentence describing the workload, for the report and the plot.</summary>
    public string Description => Workload switch
    {
        SweepWorkload.Sequential => $"8-byte loads, one pass front to back over {Bytes(SequentialBytes)}",
        SweepWorkload.Random => $"8-byte loads at random 8-byte-aligned offsets of a {Bytes(RandomBuffer)} buffer",
        SweepWorkload.Strided => $"8-byte loads with a stride of {Stride} B through a {Bytes(StridedBuffer)} buffer, wrapping",
        _ => "kernel model on the default machine: 40% kmalloc objects (30% of them writes), 30% streaming over vmalloc buffers, 30% random direct-map reads",
    };

    /// <summary>The page sizes swept: the three mapping sizes, or the kernel's own mix.</summary>
    public IReadOnlyList<string> PageSizes => Workload == SweepWorkload.KernelMix ? ["mixed"] : ["4K", "2M", "1G"];

    /// <summary>Points the sweep measures.</summary>
    public int PointCount => PageSizes.Count * TlbSizes.Count * 2;

    /// <summary>The L2 used for the "with L2" points: the default geometry's STLB.</summary>
    public static string L2Description
    {
        get
        {
            var l2 = TlbGeometry.Default.UnifiedL2;
            return string.Join(" + ", l2.Select(a => $"{a.Entries}x{a.Ways}-way ({string.Join("/", a.PageSizes.Select(s => s.Label()))})"));
        }
    }

    /// <summary>The geometry of one point: L1 data arrays of <paramref name="entries"/> entries for each page size, the default ITLB, the default STLB or none, paging-structure caches on.</summary>
    public static TlbGeometry Geometry(int entries, bool l2) => new()
    {
        InstructionL1 = TlbGeometry.Default.InstructionL1,
        DataL1 =
        [
            new("DTLB-4K", entries, Math.Min(Ways, entries), PageSize.Size4K),
            new("DTLB-2M", entries, Math.Min(Ways, entries), PageSize.Size2M),
            new("DTLB-1G", entries, Math.Min(Ways, entries), PageSize.Size1G),
        ],
        UnifiedL2 = l2 ? TlbGeometry.Default.UnifiedL2 : [],
    };

    private ulong SequentialBytes => Math.Max(4 * KiB, ((ulong)Accesses * 8 + 4 * KiB - 1) & ~(4 * KiB - 1));

    /// <summary>Runs every point; <paramref name="progress"/> is called after each with a label of the next.</summary>
    public IReadOnlyList<SweepPoint> Run(Action<string>? progress = null)
    {
        var points = new List<SweepPoint>(PointCount);
        if (Workload == SweepWorkload.KernelMix)
        {
            var env = KernelEnvironment.Create(Accesses, Seed);
            RunSizes("mixed", env.NewCpu, env.Trace, env.Writes, points, progress);
            return points;
        }
        var trace = SyntheticTrace(out ulong footprint);
        foreach (var size in new[] { PageSize.Size4K, PageSize.Size2M, PageSize.Size1G })
        {
            var (bus, root) = SyntheticMachine(size, footprint);
            RunSizes(size.Label(), geometry =>
            {
                var cpu = new CpuContext(bus, 0, null, geometry);
                cpu.EnterLongMode(root);
                return cpu;
            }, trace, null, points, progress);
        }
        return points;
    }

    private void RunSizes(string pageSize, Func<TlbGeometry, CpuContext> newCpu, ulong[] trace, bool[]? writes,
        List<SweepPoint> points, Action<string>? progress)
    {
        foreach (bool l2 in new[] { false, true })
            foreach (int entries in TlbSizes)
            {
                progress?.Invoke($"{pageSize} pages, {entries}-entry L1{(l2 ? " + L2" : "")}");
                var cpu = newCpu(Geometry(entries, l2));
                var mmu = cpu.Mmu;
                for (int i = 0; i < trace.Length; i++)
                {
                    ulong va = trace[i];
                    var r = writes is not null && writes[i]
                        ? mmu.Write(va, 8, (ulong)i, Privilege.Supervisor)
                        : mmu.Read(va, 8, Privilege.Supervisor, out _);
                    if (!r.Ok)
                        throw new InvalidOperationException($"The {Name(Workload)} trace access at 0x{va:x} failed: {r}. The workload's mappings are wrong.");
                }
                var c = mmu.Counters;
                var lastLevel = l2 ? mmu.UnifiedTlb : mmu.DataTlb;
                points.Add(new SweepPoint(pageSize, entries, l2, trace.Length, c.Translations,
                    mmu.DataTlb.TotalMisses, lastLevel.TotalMisses, c.Walks, c.WalkReads));
            }
    }

    /// <summary>The synthetic trace as virtual addresses; <paramref name="footprint"/> is the buffer size to map.</summary>
    private ulong[] SyntheticTrace(out ulong footprint)
    {
        var trace = new ulong[Accesses];
        var rng = new SplitMix64(Seed);
        switch (Workload)
        {
            case SweepWorkload.Sequential:
                footprint = SequentialBytes;
                for (long i = 0; i < trace.Length; i++) trace[i] = DataVa + (ulong)i * 8;
                break;
            case SweepWorkload.Random:
                footprint = RandomBuffer;
                for (long i = 0; i < trace.Length; i++) trace[i] = DataVa + rng.Below(RandomBuffer / 8) * 8;
                break;
            default:
                footprint = StridedBuffer;
                ulong offset = 0;
                for (long i = 0; i < trace.Length; i++)
                {
                    trace[i] = DataVa + offset;
                    offset = (offset + Stride) % StridedBuffer & ~7UL;
                }
                break;
        }
        return trace;
    }

    /// <summary>A bus with sparse RAM and page tables mapping the buffer with pages of <paramref name="size"/>, built with <see cref="PageTableBuilder"/>.</summary>
    private static (PhysicalBus Bus, ulong Root) SyntheticMachine(PageSize size, ulong footprint)
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 8 * GiB);
        var tables = new PageTableBuilder(bus, TablePool, TablePoolSize);
        ulong bytes = size.Bytes();
        ulong length = (footprint + bytes - 1) & ~(bytes - 1);
        tables.MapRange(DataVa, DataPa, length, size, PteFlags.Writable | PteFlags.NoExecute);
        return (bus, tables.Root);
    }

    private static string Bytes(ulong b) => b >= GiB && b % GiB == 0 ? $"{b / GiB} GiB"
        : b >= MiB && b % MiB == 0 ? $"{b / MiB} MiB"
        : b >= KiB && b % KiB == 0 ? $"{b / KiB} KiB"
        : $"{b} B";

    /// <summary>
    /// The kernel model booted on the default machine with a small working set — kmalloc objects, vmalloc buffers —
    /// and the trace over them and the direct map. Each point's CPU is a fresh context that loads the kernel's CR3 and
    /// IA32_PAT and enters long mode as the kernel's own CPUs do (CR4.PGE, SMEP, SMAP as the features allow).
    /// </summary>
    private sealed class KernelEnvironment
    {
        private readonly KernelModel _kernel;

        private KernelEnvironment(KernelModel kernel, ulong[] trace, bool[] writes)
        {
            _kernel = kernel;
            Trace = trace;
            Writes = writes;
        }

        public ulong[] Trace { get; }
        public bool[] Writes { get; }

        public static KernelEnvironment Create(long accesses, ulong seed)
        {
            var kernel = KernelModel.Boot(DefaultMachine.CreateBus());
            ulong[] sizes = [32, 64, 128, 256, 512, 1024, 2048];
            var objects = new List<(ulong Va, ulong Size)>();
            for (int i = 0; i < 2048; i++)
            {
                ulong size = sizes[i % sizes.Length];
                ulong p = kernel.Kmalloc(size, Gfp.Kernel, "tlb_sweep_kmalloc");
                if (p == 0) throw new InvalidOperationException("kmalloc failed while building the kernel-mix working set.");
                objects.Add((p, size));
            }
            var vbuffers = new List<ulong>();
            const ulong VbufSize = 256 * KiB;
            for (int i = 0; i < 8; i++)
            {
                ulong p = kernel.Vmalloc(VbufSize, "tlb_sweep_vmalloc");
                if (p == 0) throw new InvalidOperationException("vmalloc failed while building the kernel-mix working set.");
                vbuffers.Add(p);
            }
            var trace = new ulong[accesses];
            var writes = new bool[accesses];
            var rng = new SplitMix64(seed);
            ulong stream = 0, streamTotal = VbufSize * (ulong)vbuffers.Count;
            ulong ramLow = MiB, ramSpan = kernel.RamEnd - MiB;
            for (long i = 0; i < accesses; i++)
            {
                ulong pick = rng.Below(10);
                if (pick < 4)
                {
                    var (va, size) = objects[(int)rng.Below((ulong)objects.Count)];
                    trace[i] = va + rng.Below(size / 8) * 8;
                    writes[i] = rng.Below(10) < 3;
                }
                else if (pick < 7)
                {
                    trace[i] = vbuffers[(int)(stream / VbufSize)] + stream % VbufSize;
                    stream = (stream + 64) % streamTotal;
                }
                else
                {
                    trace[i] = kernel.PhysToVirt(ramLow + rng.Below(ramSpan / 8) * 8);
                }
            }
            return new KernelEnvironment(kernel, trace, writes);
        }

        public CpuContext NewCpu(TlbGeometry geometry)
        {
            var features = _kernel.Options.Features ?? CpuFeatures.Default;
            var cpu = new CpuContext(_kernel.Bus, _kernel.Cpus.Count, _kernel.Options.Features, geometry);
            cpu.SetPat(KernelModel.LinuxPat);
            ulong cr4 = Cr4.PGE | (features.Smep ? Cr4.SMEP : 0) | (features.Smap ? Cr4.SMAP : 0);
            cpu.EnterLongMode(_kernel.PageTables.Pgd, _kernel.Layout.FiveLevel, cr4, nxe: true, writeProtect: true);
            return cpu;
        }
    }
}

/// <summary>SplitMix64: a small, fully specified generator, so a seed gives the same trace on every platform and .NET version.</summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The next 64-bit value.</summary>
    public ulong Next()
    {
        ulong z = _state += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A value in [0, <paramref name="bound"/>) (bound above 0), by multiply-shift.</summary>
    public ulong Below(ulong bound) => (ulong)(((UInt128)Next() * bound) >> 64);
}
