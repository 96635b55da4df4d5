using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;
using KernelModel = HwMemModel.Kernel.Kernel;

namespace HwMemModel.Cli.Plots;

/// <summary>One drawn segment of the address space: a row of the picture.</summary>
/// <param name="Name">"direct map", "vmalloc space" or "kernel image".</param>
/// <param name="Start">First address of the row.</param>
/// <param name="End">One past the last address of the row.</param>
/// <param name="Note">What the row shows of the whole region.</param>
internal sealed record MapSegment(string Name, ulong Start, ulong End, string Note);

/// <summary>One region of the kernel's virtual address space.</summary>
/// <param name="Segment">The row it is drawn in.</param>
/// <param name="Start">First address.</param>
/// <param name="End">One past the last address.</param>
/// <param name="Kind">direct-map, vmalloc, vmap, ioremap, guard, kernel-text, kernel-data or kmalloc.</param>
/// <param name="MemoryType">The memory type the page tables and IA32_PAT give ("WB", "UC-", "WC"...), null for a guard page (unmapped).</param>
/// <param name="PageSize">The leaf size ("4K", "2M", "1G") where one size maps the whole region, else null.</param>
/// <param name="Caller">The caller recorded by vmalloc/ioremap/kmalloc, else null.</param>
/// <param name="PhysAddr">The physical base of an ioremap area, else null.</param>
internal sealed record MapRegion(string Segment, ulong Start, ulong End, string Kind, string? MemoryType, string? PageSize, string? Caller, ulong? PhysAddr);

/// <summary>
/// The kernel model's virtual address space after booting it on the default machine and a small workload: three
/// vmallocs, an ioremap of the HPET (UC-), an ioremap_wc of a framebuffer window, and a few kmallocs. Regions come from
/// the kernel page tables (leaf sizes, PAT bits read from RAM), the busy vmap areas and the MMU's own translation.
/// </summary>
internal sealed class KernelMap
{
    /// <summary>Physical base of the HPET registers.</summary>
    public const ulong HpetBase = 0xFED0_0000;
    /// <summary>The write-combining window mapped by the workload: where QEMU's std VGA puts its framebuffer BAR.</summary>
    public const ulong FramebufferBase = 0xFD00_0000;
    private const ulong KiB = 1UL << 10, MiB = 1UL << 20;

    private KernelMap(KernelModel kernel, IReadOnlyList<MapSegment> segments, IReadOnlyList<MapRegion> regions)
    {
        Kernel = kernel;
        Segments = segments;
        Regions = regions;
    }

    /// <summary>The booted kernel.</summary>
    public KernelModel Kernel { get; }
    /// <summary>The rows of the picture.</summary>
    public IReadOnlyList<MapSegment> Segments { get; }
    /// <summary>The regions, row by row, in address order (kmalloc objects after the direct-map runs that hold them).</summary>
    public IReadOnlyList<MapRegion> Regions { get; }

    /// <summary>Boots the kernel model on the default machine, runs the workload and collects the regions.</summary>
    public static KernelMap Build()
    {
        var kernel = KernelModel.Boot(DefaultMachine.CreateBus());
        Require(kernel.Vmalloc(16 * KiB, "map_demo_ring_buffer"), "vmalloc");
        Require(kernel.Vzalloc(64 * KiB, "map_demo_table"), "vzalloc");
        Require(kernel.Vmalloc(1 * MiB, "map_demo_log_buffer"), "vmalloc");
        Require(kernel.IoRemap(HpetBase, 0x400, "hpet_enable"), "ioremap");
        Require(kernel.IoRemapWc(FramebufferBase, 1 * MiB, "fb_probe"), "ioremap_wc");
        var kmallocs = new List<(ulong Va, ulong Size)>();
        foreach (ulong size in new ulong[] { 64, 192, 512, 1024, 4096, 8192 })
            kmallocs.Add((Require(kernel.Kmalloc(size, Gfp.Kernel, "map_demo_kmalloc"), "kmalloc"), size));

        var layout = kernel.Layout;
        var cpu = kernel.CurrentCpu;
        var segments = new List<MapSegment>();
        var regions = new List<MapRegion>();

        var direct = new MapSegment("direct map", layout.PageOffset, layout.PageOffset + kernel.RamEnd,
            $"all RAM (0x0-0x{kernel.RamEnd - 1:x}) at page_offset_base");
        segments.Add(direct);
        regions.AddRange(LeafRuns(kernel, cpu, direct, _ => "direct-map"));
        foreach (var (va, size) in kmallocs.OrderBy(k => k.Va))
            regions.Add(new MapRegion(direct.Name, va, va + size, "kmalloc", TypeAt(cpu, va), null, "map_demo_kmalloc", null));

        var areas = kernel.VmAreas();
        ulong used = areas.Count == 0 ? layout.VmallocStart + MiB : areas.Max(a => a.Address + a.Size);
        ulong zoomEnd = layout.VmallocStart + (((used - layout.VmallocStart) * 9 / 8 + 64 * KiB - 1) & ~(64 * KiB - 1));
        var vmalloc = new MapSegment("vmalloc space", layout.VmallocStart, zoomEnd,
            $"the used part of VMALLOC_START-VMALLOC_END (0x{layout.VmallocStart:x}-0x{layout.VmallocEnd:x})");
        segments.Add(vmalloc);
        foreach (var a in areas)
        {
            string kind = (a.Flags & VmFlags.IoRemap) != 0 ? "ioremap" : (a.Flags & VmFlags.Alloc) != 0 ? "vmalloc" : "vmap";
            ulong mappedEnd = a.Address + a.MappedSize;
            regions.Add(new MapRegion(vmalloc.Name, a.Address, mappedEnd, kind, TypeAt(cpu, a.Address), UniformLeafSize(kernel, a.Address, mappedEnd),
                a.Caller, kind == "ioremap" ? a.PhysAddr : null));
            if ((a.Flags & VmFlags.NoGuard) == 0)
                regions.Add(new MapRegion(vmalloc.Name, mappedEnd, a.Address + a.Size, "guard", null, null, a.Caller, null));
        }

        var image = new MapSegment("kernel image", KernelLayout.StartKernelMap + KernelLayout.PhysicalStart,
            KernelLayout.StartKernelMap + KernelLayout.PhysicalStart + KernelModel.KernelImageSize,
            $"__START_KERNEL_map + 0x{KernelLayout.PhysicalStart:x}: text (RX) then data (RW, NX)");
        segments.Add(image);
        regions.AddRange(LeafRuns(kernel, cpu, image, entry => (entry & (ulong)PteFlags.NoExecute) == 0 ? "kernel-text" : "kernel-data"));
        return new KernelMap(kernel, segments, regions);
    }

    private static ulong Require(ulong va, string what)
        => va != 0 ? va : throw new InvalidOperationException($"{what} failed while building the map workload on the default machine.");

    /// <summary>The memory type the MMU gives a supervisor read of <paramref name="va"/> (a side-effect-free walk), or null when unmapped.</summary>
    private static string? TypeAt(CpuContext cpu, ulong va)
        => cpu.Mmu.Explain(va, AccessKind.Read, Privilege.Supervisor).Translation is { } t ? t.MemoryType.ShortName() : null;

    /// <summary>Runs of leaves with the same kind, leaf size and memory type over a segment, from the page tables in RAM.</summary>
    private static IEnumerable<MapRegion> LeafRuns(KernelModel kernel, CpuContext cpu, MapSegment segment, Func<ulong, string> kindOf)
    {
        MapRegion? run = null;
        for (ulong va = segment.Start; va < segment.End;)
        {
            var leaf = kernel.PageTables.Lookup(va);
            ulong step = leaf is { } l ? (1UL << PageGeometry.LevelShift(l.Level)) : PageGeometry.Page4K;
            ulong next = (va & ~(step - 1)) + step;
            if (leaf is { } hit)
            {
                string kind = kindOf(hit.Entry);
                string type = Pat.TypeAt(cpu.PatValue, Pat.Index(hit.Entry, hit.Level > 1)).ShortName();
                string size = ((PageSize)(hit.Level - 1)).Label();
                if (run is not null && run.End == va && run.Kind == kind && run.MemoryType == type && run.PageSize == size)
                    run = run with { End = Math.Min(next, segment.End) };
                else
                {
                    if (run is not null) yield return run;
                    run = new MapRegion(segment.Name, va, Math.Min(next, segment.End), kind, type, size, null, null);
                }
            }
            va = next;
        }
        if (run is not null) yield return run;
    }

    /// <summary>The leaf size mapping all of [start, end) when it is one size, else null.</summary>
    private static string? UniformLeafSize(KernelModel kernel, ulong start, ulong end)
    {
        int? level = null;
        for (ulong va = start; va < end;)
        {
            if (kernel.PageTables.Lookup(va) is not { } leaf) return null;
            if (level is { } lv && lv != leaf.Level) return null;
            level = leaf.Level;
            ulong step = (1UL << PageGeometry.LevelShift(leaf.Level));
            va = (va & ~(step - 1)) + step;
        }
        return level is { } l ? ((PageSize)(l - 1)).Label() : null;
    }
}
