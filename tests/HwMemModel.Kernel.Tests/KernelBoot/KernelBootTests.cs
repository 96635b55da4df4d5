using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel.Tests.KernelBoot;

public sealed class KernelBootTests
{
    private const ulong MiB = 1UL << 20, GiB = 1UL << 30;

    private static Kernel BootDefault(ulong ram = 256 * MiB, KernelOptions? options = null)
        => Kernel.Boot(DefaultMachine.CreateBus(ram), options);

    /// <summary>A machine with RAM below 3 GiB and from 4 GiB to 4 GiB + <paramref name="highGiB"/> GiB.</summary>
    private static PhysicalBus BigBus(ulong highGiB)
    {
        var bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        bus.AddRam("low", 0, 0xA0000);
        bus.AddRam("ram", MiB, 3 * GiB - MiB);
        bus.AddRam("high", 4 * GiB, highGiB * GiB);
        return bus;
    }

    [Test]
    public void Direct_map_translates_every_ram_address_to_itself_through_the_mmu()
    {
        var k = BootDefault();
        foreach (ulong pa in new ulong[] { 0x1000, 0x9F000, 0x10_0000, 0x20_0000, 0x123_4568, 0xFFF_F000 - 8 })
        {
            var f = k.CurrentCpu.Mmu.Translate(k.PhysToVirt(pa), AccessKind.Read, Privilege.Supervisor, out var t);
            Assert.That(f.IsFault, Is.False, $"pa 0x{pa:x}: {f}");
            Assert.That(t.PhysicalAddress, Is.EqualTo(pa));
            Assert.That(t.MemoryType, Is.EqualTo(MemoryType.WriteBack));
        }
    }

    [Test]
    public void Direct_map_uses_page_kernel_and_the_largest_aligned_leaves()
    {
        var k = BootDefault();
        var low = k.PageTables.Lookup(k.PhysToVirt(0x5000))!.Value;
        Assert.That(low.Level, Is.EqualTo(1), "below 2 MiB: 4 KiB pages");
        Assert.That(low.Entry & ~0x000F_FFFF_FFFF_F000UL, Is.EqualTo(0x8000_0000_0000_0163UL), "__PAGE_KERNEL");
        var mid = k.PageTables.Lookup(k.PhysToVirt(0x40_0000))!.Value;
        Assert.That(mid.Level, Is.EqualTo(2));
        Assert.That(mid.Entry & ~0x000F_FFFF_FFFF_F000UL, Is.EqualTo(0x8000_0000_0000_01E3UL), "__PAGE_KERNEL_LARGE");
    }

    [Test]
    public void Direct_map_uses_1_GiB_leaves_where_ram_is_1_GiB_aligned()
    {
        var k = Kernel.Boot(BigBus(2));
        Assert.That(k.PageTables.Lookup(k.PhysToVirt(GiB + 0x1234))!.Value.Level, Is.EqualTo(3));
        Assert.That(k.PageTables.Lookup(k.PhysToVirt(5 * GiB))!.Value.Level, Is.EqualTo(3));
        Assert.That(k.PageTables.Lookup(k.PhysToVirt(3 * GiB + 0x1000)), Is.Null, "the PCI hole is not RAM");
    }

    [Test]
    public void Every_cpu_has_linux_pat_and_runs_on_the_kernel_page_tables()
    {
        var k = BootDefault(options: new KernelOptions { Cpus = 3 });
        Assert.That(k.Cpus, Has.Count.EqualTo(3));
        foreach (var cpu in k.Cpus)
        {
            Assert.That(cpu.PatValue, Is.EqualTo(0x0407_0506_0007_0106UL));
            Assert.That(cpu.Cr3Value & ~0xFFFUL, Is.EqualTo(k.PageTables.Pgd));
            Assert.That(cpu.Cr4Value & Cr4.PGE, Is.Not.Zero);
        }
        Assert.That(k.Log.Lines, Has.Member("x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT  "));
    }

    [Test]
    public void Kernel_text_is_executable_and_read_only_and_data_is_writable_and_nx()
    {
        var k = BootDefault();
        var mmu = k.CurrentCpu.Mmu;
        ulong text = KernelLayout.StartKernelMap + KernelLayout.PhysicalStart;
        Assert.That(mmu.Translate(text, AccessKind.Execute, Privilege.Supervisor, out var t).IsFault, Is.False);
        Assert.That(t.PhysicalAddress, Is.EqualTo(KernelLayout.PhysicalStart));
        Assert.That(mmu.Translate(text, AccessKind.Write, Privilege.Supervisor, out _).Rule, Is.EqualTo(FaultRule.SupervisorWriteToReadOnly));
        ulong data = text + Kernel.KernelImageSize / 2;
        Assert.That(mmu.Translate(data, AccessKind.Write, Privilege.Supervisor, out _).IsFault, Is.False);
        Assert.That(mmu.Translate(data, AccessKind.Execute, Privilege.Supervisor, out _).Rule, Is.EqualTo(FaultRule.FetchFromNoExecute));
        Assert.That(k.VirtToPhys(data), Is.EqualTo(KernelLayout.PhysicalStart + Kernel.KernelImageSize / 2));
    }

    [Test]
    public void Vmalloc_upper_levels_are_preallocated_so_top_level_entries_never_change()
    {
        var k = BootDefault();
        // 4-level: one PGD entry per 512 GiB over the 32 TiB vmalloc area = 64 entries, all present.
        int present = 0;
        for (ulong va = k.Layout.VmallocStart; va < k.Layout.VmallocEnd; va += 512 * GiB)
            if (k.PageTables.EntryFor(va, 3, allocate: false) is not null) present++;
        Assert.That(present, Is.EqualTo(64));
    }

    [Test]
    public void Five_level_boot_uses_the_5_level_layout_and_la57()
    {
        var k = BootDefault(options: new KernelOptions { FiveLevel = true });
        Assert.That(k.Layout.PageOffset, Is.EqualTo(0xff11_0000_0000_0000UL));
        Assert.That(k.Layout.VmallocStart, Is.EqualTo(0xffa0_0000_0000_0000UL));
        Assert.That(k.CurrentCpu.FiveLevel, Is.True);
        Assert.That(k.CurrentCpu.Mmu.Translate(k.PhysToVirt(0x30_0000), AccessKind.Read, Privilege.Supervisor, out var t).IsFault, Is.False);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x30_0000UL));
    }

    [Test]
    public void Kaslr_moves_the_bases_by_whole_gibibytes_keeps_their_order_and_is_deterministic()
    {
        var a = BootDefault(options: new KernelOptions { KaslrSeed = 7 });
        var b = BootDefault(options: new KernelOptions { KaslrSeed = 7 });
        var c = BootDefault(options: new KernelOptions { KaslrSeed = 8 });
        Assert.That(a.Layout.Randomized, Is.True);
        Assert.That(a.Layout.PageOffset, Is.EqualTo(b.Layout.PageOffset));
        Assert.That(new[] { a.Layout.PageOffset, a.Layout.VmallocStart, a.Layout.VmemmapStart }, Is.Not.EqualTo(new[] { c.Layout.PageOffset, c.Layout.VmallocStart, c.Layout.VmemmapStart }));
        Assert.That(a.Layout.PageOffset % GiB, Is.Zero);
        Assert.That(a.Layout.VmallocStart % GiB, Is.Zero);
        Assert.That(a.Layout.PageOffset, Is.GreaterThanOrEqualTo(0xffff_8880_0000_0000UL));
        Assert.That(a.Layout.PageOffset, Is.LessThan(a.Layout.VmallocStart));
        Assert.That(a.Layout.VmallocEnd, Is.LessThan(a.Layout.VmemmapStart));
        Assert.That(a.CurrentCpu.Mmu.Translate(a.PhysToVirt(0x50_0000), AccessKind.Read, Privilege.Supervisor, out var t).IsFault, Is.False);
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x50_0000UL));
    }

    [Test]
    public void Free_memory_excludes_the_low_megabyte_the_kernel_image_and_boot_page_tables()
    {
        var k = BootDefault();
        long ramPages = k.Ram.Sum(r => (long)(r.End - r.Start)) / 4096;
        var (ptStart, ptEnd) = k.EarlyPageTables;
        long reserved = (long)(0xA0000 / 4096) + (long)((ptEnd - KernelLayout.PhysicalStart) / 4096);
        Assert.That(ptStart, Is.EqualTo(KernelLayout.PhysicalStart + Kernel.KernelImageSize));
        Assert.That(k.Pages.ManagedPageCount, Is.EqualTo(ramPages - reserved));
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(k.Pages.ManagedPageCount));
    }

    [Test]
    public void Boot_on_a_machine_too_small_for_the_kernel_image_says_what_is_needed()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 16 * MiB);
        var ex = Assert.Throws<ArgumentException>(() => Kernel.Boot(bus));
        Assert.That(ex!.Message, Does.Contain("needs RAM at 0x1000000-"));
        Assert.That(ex.Message, Does.Contain("at least 32 MiB"));
    }

    [Test]
    public void Virt_to_phys_of_a_non_linear_address_is_refused_as_debug_virtual_does()
    {
        var k = BootDefault();
        var ex = Assert.Throws<ArgumentException>(() => k.VirtToPhys(k.Layout.VmallocStart + 0x1000));
        Assert.That(ex!.Message, Does.StartWith("virt_to_phys used for non-linear address"));
        Assert.That(k.IsVmallocAddr(k.Layout.VmallocStart), Is.True);
        Assert.That(k.IsVmallocAddr(k.Layout.VmallocEnd), Is.False, "VMALLOC_END is exclusive for is_vmalloc_addr");
    }

    [Test]
    public void Page_tables_are_written_through_the_direct_map_after_boot()
    {
        var k = BootDefault();
        long before = k.CurrentCpu.Mmu.Counters.Translations;
        k.PageTables.Map(k.Layout.VmallocStart + 0x1000, 0x300_0000, PageSize.Size4K, KernelPageTables.PageKernel);
        Assert.That(k.CurrentCpu.Mmu.Counters.Translations, Is.GreaterThan(before), "entries were read and written by the CPU via the direct map");
        Assert.That(k.VmallocToPfn(k.Layout.VmallocStart + 0x1234), Is.EqualTo(0x300_0000UL >> 12));
    }
}
