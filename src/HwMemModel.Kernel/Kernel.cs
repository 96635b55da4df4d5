using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>Boot options of the kernel model.</summary>
public sealed record KernelOptions
{
    /// <summary>NUMA nodes, 1 to 64; RAM is split between them in equal contiguous parts.</summary>
    public int Nodes { get; init; } = 1;
    /// <summary>
    /// Sizes of the NUMA nodes in address order (each a multiple of 2 MiB, together the RAM size); null splits RAM
    /// into <see cref="Nodes"/> equal parts. When given, its count is the node count.
    /// </summary>
    public IReadOnlyList<ulong>? NodeSizes { get; init; }
    /// <summary>CPU contexts sharing the kernel page tables, 1 to 64.</summary>
    public int Cpus { get; init; } = 1;
    /// <summary>5-level paging and the 5-level layout.</summary>
    public bool FiveLevel { get; init; }
    /// <summary>When set, KASLR of the direct map, vmalloc and vmemmap bases from this seed.</summary>
    public ulong? KaslrSeed { get; init; }
    /// <summary>TLB geometry of every CPU (default: <see cref="TlbGeometry.Default"/>).</summary>
    public TlbGeometry? Tlb { get; init; }
    /// <summary>CPU features (default: <see cref="CpuFeatures.Default"/>).</summary>
    public CpuFeatures? Features { get; init; }
}

/// <summary>
/// A Linux-style kernel booted over a machine's physical bus: it reads the memory map, builds the kernel page tables
/// in RAM (direct map, kernel text, preallocated vmalloc upper levels), programs IA32_PAT as Linux does, puts every
/// CPU in long mode on those tables and hands the free RAM to the buddy allocator.
/// </summary>
public sealed partial class Kernel
{
    /// <summary>The IA32_PAT value Linux programs: WB WC UC- UC WB WP UC- WT.</summary>
    public const ulong LinuxPat = 0x0407_0506_0007_0106UL;
    private const ulong MiB = 1UL << 20;
    /// <summary>Physical span of the kernel image (text then data), from CONFIG_PHYSICAL_START.</summary>
    public const ulong KernelImageSize = 8 * MiB;

    private readonly List<CpuContext> _cpus = [];
    private readonly List<(ulong Start, ulong End)> _ram = [];
    private ulong _earlyNext, _earlyStart;
    private PageAllocator? _pages;
    private readonly ulong[] _directMapBytes = new ulong[3];

    private Kernel(PhysicalBus bus, KernelOptions options)
    {
        Bus = bus;
        Options = options;
        Memory = new KernelMemory(() => CurrentCpu);
    }

    /// <summary>The machine's bus.</summary>
    public PhysicalBus Bus { get; }
    /// <summary>The options booted with.</summary>
    public KernelOptions Options { get; }
    /// <summary>dmesg.</summary>
    public KernelLog Log { get; } = new();
    /// <summary>The virtual memory layout.</summary>
    public KernelLayout Layout { get; private set; } = null!;
    /// <summary>The kernel page tables.</summary>
    public KernelPageTables PageTables { get; private set; } = null!;
    /// <summary>The buddy allocator.</summary>
    public PageAllocator Pages => _pages ?? throw new InvalidOperationException("The page allocator is not up yet.");
    /// <summary>Kernel-mode memory access through the current CPU's MMU.</summary>
    public KernelMemory Memory { get; }
    /// <summary>The CPU contexts.</summary>
    public IReadOnlyList<CpuContext> Cpus => _cpus;
    /// <summary>The CPU the model's calls run on (index into <see cref="Cpus"/>).</summary>
    public int CurrentCpuIndex { get; set; }
    /// <summary>The current CPU.</summary>
    public CpuContext CurrentCpu => _cpus[CurrentCpuIndex];
    /// <summary>One past the highest usable RAM address.</summary>
    public ulong RamEnd { get; private set; }
    /// <summary>Usable RAM ranges [start, end) from the memory map.</summary>
    public IReadOnlyList<(ulong Start, ulong End)> Ram => _ram;
    /// <summary>Physical range of boot-time page tables [start, end).</summary>
    public (ulong Start, ulong End) EarlyPageTables => (_earlyStart, _earlyNext);

    /// <summary>Boots the kernel model over <paramref name="bus"/>.</summary>
    public static Kernel Boot(PhysicalBus bus, KernelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        options ??= new KernelOptions();
        if (options.NodeSizes is { } sizes)
        {
            if (sizes.Count is < 1 or > 64 || sizes.Any(z => z == 0 || z % PageGeometry.Page2M != 0))
                throw new ArgumentOutOfRangeException(nameof(options), "KernelOptions.NodeSizes must list 1 to 64 sizes, each a non-zero multiple of 2 MiB.");
            options = options with { Nodes = sizes.Count };
        }
        if (options.Nodes is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(options), options.Nodes, "KernelOptions.Nodes must be 1 to 64.");
        if (options.Cpus is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(options), options.Cpus, "KernelOptions.Cpus must be 1 to 64.");
        var k = new Kernel(bus, options);
        k.BootCore();
        return k;
    }

    private void BootCore()
    {
        foreach (var e in Bus.E820Table())
        {
            Log.Print($"BIOS-e820: [mem 0x{e.Start:x16}-0x{e.Last:x16}] {(e.Type == E820Type.Usable ? "usable" : "reserved")}");
            if (e.Type != E820Type.Usable) continue;
            ulong start = (e.Start + 0xFFF) & ~0xFFFUL, end = (e.Start + e.Size) & ~0xFFFUL;
            if (end > start) _ram.Add((start, end));
        }
        if (_ram.Count == 0) throw new ArgumentException("The machine has no RAM in its memory map; the kernel needs at least 32 MiB.");
        ulong imageStart = KernelLayout.PhysicalStart, imageEnd = imageStart + KernelImageSize;
        if (!_ram.Any(r => r.Start <= imageStart && r.End >= imageEnd + 4 * MiB))
            throw new ArgumentException($"The kernel image is loaded at 0x{imageStart:x} (CONFIG_PHYSICAL_START) and needs RAM at 0x{imageStart:x}-0x{imageEnd + 4 * MiB - 1:x} "
                + "for itself and its boot page tables; give the machine at least 32 MiB of RAM from 1 MiB up.");
        RamEnd = _ram.Max(r => r.End);
        Layout = new KernelLayout(Options.FiveLevel, RamEnd, Options.KaslrSeed);
        _earlyStart = _earlyNext = imageEnd;

        PageTables = new KernelPageTables(this, AllocTablePage, Options.FiveLevel);
        var features = Options.Features ?? CpuFeatures.Default;
        BuildDirectMap(features.Pages1G);
        // Kernel text (read-only, executable) and data (read-write, NX) at __START_KERNEL_map + phys, 2 MiB pages.
        for (ulong pa = imageStart; pa < imageEnd; pa += PageGeometry.Page2M)
            PageTables.Map(KernelLayout.StartKernelMap + pa, pa, PageSize.Size2M,
                pa < imageStart + KernelImageSize / 2 ? KernelPageTables.PageKernelRox : KernelPageTables.PageKernel);
        // preallocate_vmalloc_pages: the level below the top for the whole vmalloc area, so top-level entries never change.
        ulong topSpan = 1UL << PageGeometry.LevelShift(PageTables.Levels);
        for (ulong va = Layout.VmallocStart & ~(topSpan - 1); va <= Layout.VmallocEnd && va >= Layout.VmallocStart - topSpan; va += topSpan)
            PageTables.EntryFor(va, PageTables.Levels - 1, allocate: true);

        for (int i = 0; i < Options.Cpus; i++)
        {
            var cpu = new CpuContext(Bus, i, Options.Features, Options.Tlb);
            EnterKernelPaging(cpu);
            _cpus.Add(cpu);
        }
        Log.Print("x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT  ");
        PageTables.ThroughDirectMap = true;

        _pages = new PageAllocator(FreeRanges(imageStart), Options.Nodes, Log, (pa, bytes) => Memory.Fill(PhysToVirt(pa), 0, bytes));
        long totalK = _ram.Sum(r => (long)(r.End - r.Start)) / 1024;
        Log.Print($"Memory: {_pages.FreePageCount * 4}K/{totalK}K available");
    }

    /// <summary>
    /// Puts <paramref name="cpu"/> in the state the kernel runs its CPUs in: IA32_PAT as Linux programs it, long mode on
    /// the kernel page tables with CR4.PGE, SMEP, SMAP and PCIDE where the CPU has them, OSFXSR and OSXMMEXCPT (SSE
    /// enabled), CR0.MP, EFER.NXE and EFER.SCE, CR0.WP. A CPU model that was reset (power-on state) is brought back with it.
    /// </summary>
    public void EnterKernelPaging(CpuContext cpu)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        var features = cpu.Features;
        cpu.SetPat(LinuxPat);
        ulong cr4 = Cr4.PGE | Cr4.OSFXSR | Cr4.OSXMMEXCPT | (features.Smep ? Cr4.SMEP : 0) | (features.Smap ? Cr4.SMAP : 0)
            | (features.Pcid ? Cr4.PCIDE : 0);
        cpu.EnterLongMode(PageTables?.Pgd ?? throw new InvalidOperationException("The kernel page tables are not built yet."), Options.FiveLevel, cr4, nxe: true, writeProtect: true);
        cpu.SetCr0(cpu.Cr0Value | Cr0.MP);
        cpu.SetEfer(cpu.EferValue | Efer.SCE);
        if (_user is not null && cpu.Id < _user.LoadedMm.Length) _user.LoadedMm[cpu.Id] = null;
    }

    private void BuildDirectMap(bool pages1G)
    {
        // init_memory_mapping: the ISA range [0, 1 MiB) is always mapped, on its own, then each RAM range above it,
        // each with the largest leaves alignment allows (1 GiB, 2 MiB, else 4 KiB).
        var merged = new List<(ulong Start, ulong End)> { (0, MiB) };
        foreach (var (s, e) in _ram)
            if (e > MiB) merged.Add((Math.Max(s, MiB), e));
        foreach (var (start, end) in merged)
        {
            for (ulong pa = start; pa < end;)
            {
                var size = pages1G && (pa & (PageGeometry.Page1G - 1)) == 0 && end - pa >= PageGeometry.Page1G ? PageSize.Size1G
                    : (pa & (PageGeometry.Page2M - 1)) == 0 && end - pa >= PageGeometry.Page2M ? PageSize.Size2M
                    : PageSize.Size4K;
                PageTables.Map(Layout.PageOffset + pa, pa, size, KernelPageTables.PageKernel);
                _directMapBytes[(int)size] += size.Bytes();
                pa += size.Bytes();
            }
        }
    }

    private IEnumerable<PhysRange> FreeRanges(ulong imageStart)
    {
        // Free RAM: everything but the low 1 MiB (reserved as Linux does), the kernel image and the boot page tables.
        var free = new List<(ulong Start, ulong End)>();
        foreach (var (s, e) in _ram)
            foreach (var piece in Subtract((s, e), [(0, MiB), (imageStart, _earlyNext)]))
                free.Add(piece);
        ulong total = RamEnd;
        ulong per = ((total / (ulong)Options.Nodes) + PageGeometry.Page2M - 1) & ~(PageGeometry.Page2M - 1);
        // Node i ends at bounds[i]: equal parts, or the cumulative NodeSizes; the last node takes the rest.
        var bounds = new ulong[Options.Nodes];
        for (int i = 0; i < bounds.Length; i++)
            bounds[i] = Options.NodeSizes is { } sizes ? (i == 0 ? 0 : bounds[i - 1]) + sizes[i] : (ulong)(i + 1) * per;
        bounds[^1] = ulong.MaxValue;
        foreach (var (s, e) in free)
            for (ulong a = s; a < e;)
            {
                int node = 0;
                while (a >= bounds[node]) node++;
                ulong nodeEnd = Math.Min(e, bounds[node]);
                yield return new PhysRange(a, nodeEnd, node);
                a = nodeEnd;
            }
    }

    private static IEnumerable<(ulong Start, ulong End)> Subtract((ulong Start, ulong End) r, (ulong Start, ulong End)[] holes)
    {
        var pieces = new List<(ulong Start, ulong End)> { r };
        foreach (var h in holes)
        {
            var next = new List<(ulong Start, ulong End)>();
            foreach (var p in pieces)
            {
                if (h.End <= p.Start || h.Start >= p.End) { next.Add(p); continue; }
                if (h.Start > p.Start) next.Add((p.Start, h.Start));
                if (h.End < p.End) next.Add((h.End, p.End));
            }
            pieces = next;
        }
        return pieces;
    }

    private ulong AllocTablePage()
    {
        if (_pages is not null)
        {
            return _pages.AllocPages(Gfp.Kernel | Gfp.Zero, 0, PageAllocator.NumaNoNode, "pte_alloc_kernel")
                ?? throw new KernelStopException("Out of memory allocating a kernel page-table page.");
        }
        // memblock during boot: a bump allocator above the kernel image.
        ulong pa = _earlyNext;
        if (!_ram.Any(r => r.Start <= pa && r.End >= pa + 0x1000))
            throw new KernelStopException($"Kernel panic - not syncing: memblock: cannot allocate a boot page table at 0x{pa:x}");
        _earlyNext += 0x1000;
        Span<byte> zero = stackalloc byte[0x1000];
        zero.Clear();
        Bus.WriteBytes(pa, zero, BusAttributes.Host);
        return pa;
    }

    /// <summary>Bytes of the direct map mapped with each page size (4K, 2M, 1G), as /proc/meminfo's DirectMap lines report.</summary>
    public ulong DirectMapBytes(PageSize size) => _directMapBytes[(int)size];

    /// <summary>__va: the direct-map address of a physical address.</summary>
    public ulong PhysToVirt(ulong pa) => Layout.PageOffset + pa;

    /// <summary>
    /// __pa / virt_to_phys: for direct-map and kernel-text addresses. Other addresses (vmalloc, ioremap) are a bug in the
    /// caller, reported as CONFIG_DEBUG_VIRTUAL does.
    /// </summary>
    public ulong VirtToPhys(ulong va)
    {
        if (va >= Layout.PageOffset && va - Layout.PageOffset < RamEnd) return va - Layout.PageOffset;
        if (va >= KernelLayout.StartKernelMap && va < KernelLayout.ModulesStart) return va - KernelLayout.StartKernelMap;
        throw new ArgumentException($"virt_to_phys used for non-linear address: 0x{va:x16}; use vmalloc_to_pfn for vmalloc and ioremap addresses.");
    }

    /// <summary>is_vmalloc_addr: VMALLOC_START ≤ va &lt; VMALLOC_END.</summary>
    public bool IsVmallocAddr(ulong va) => va >= Layout.VmallocStart && va < Layout.VmallocEnd;

    /// <summary>vmalloc_to_page: the physical address of the page frame (the model's struct page) mapped at <paramref name="va"/>, or null.</summary>
    public ulong? VmallocToPage(ulong va) => VmallocToPfn(va) is { } pfn ? pfn << 12 : null;

    /// <summary>vmalloc_to_pfn: the page frame the kernel page tables map at <paramref name="va"/> (read from RAM), or null.</summary>
    public ulong? VmallocToPfn(ulong va)
    {
        if (PageTables.Lookup(va) is not { } leaf) return null;
        ulong pageBytes = 1UL << PageGeometry.LevelShift(leaf.Level);
        ulong pa = (leaf.Entry & 0x000F_FFFF_FFFF_F000UL & ~(pageBytes - 1)) | (va & (pageBytes - 1));
        return pa >> 12;
    }
}
