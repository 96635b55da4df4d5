using HwMemModel.Kernel;
using HwMemModel.Mmu;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.IoRemap;

public sealed class IoRemapTests
{
    private const ulong Device = 0xFED0_0000;
    private const ulong AddrMask = 0x000F_FFFF_FFFF_F000UL;

    public enum Variant { IoRemap, Uc, Wc, Wt, Cache, ProtUc, ProtWp }

    private static ulong Map(Kernel k, Variant v, ulong pa, ulong size) => v switch
    {
        Variant.IoRemap => k.IoRemap(pa, size),
        Variant.Uc => k.IoRemapUc(pa, size),
        Variant.Wc => k.IoRemapWc(pa, size),
        Variant.Wt => k.IoRemapWt(pa, size),
        Variant.Cache => k.IoRemapCache(pa, size),
        Variant.ProtUc => k.IoRemapProt(pa, size, KernelPageTables.PageKernel | 0x18),
        _ => k.IoRemapProt(pa, size, KernelPageTables.PageKernel | 0x88),
    };

    // Linux's PAT: slots WB WC UC- UC WB WP UC- WT; index = PAT<<2 | PCD<<1 | PWT.
    [TestCase(Variant.IoRemap, 0x10UL, 2, MemoryType.UncacheableMinus)]
    [TestCase(Variant.Uc, 0x18UL, 3, MemoryType.Uncacheable)]
    [TestCase(Variant.Wc, 0x08UL, 1, MemoryType.WriteCombining)]
    [TestCase(Variant.Wt, 0x98UL, 7, MemoryType.WriteThrough)]
    [TestCase(Variant.Cache, 0x00UL, 0, MemoryType.WriteBack)]
    [TestCase(Variant.ProtUc, 0x18UL, 3, MemoryType.Uncacheable)]
    [TestCase(Variant.ProtWp, 0x88UL, 5, MemoryType.WriteProtected)]
    public void Each_variant_maps_with_its_pat_bits_and_the_mmu_reports_its_memory_type(Variant variant, ulong cacheBits, int patIndex, MemoryType type)
    {
        var k = Boot();
        ulong va = Map(k, variant, Device, Page);
        Assert.That(va, Is.Not.Zero);
        var leaf = k.PageTables.Lookup(va)!.Value;
        Assert.That(leaf.Level, Is.EqualTo(1));
        Assert.That(leaf.Entry & 0x98, Is.EqualTo(cacheBits));
        Assert.That(leaf.Entry & ~AddrMask & ~0x98UL, Is.EqualTo(KernelPageTables.PageKernel), "PAGE_KERNEL_IO: P|RW|A|D|G|NX");
        Assert.That(leaf.Entry & AddrMask, Is.EqualTo(Device));
        Assert.That(Pat.Index(leaf.Entry, largePage: false), Is.EqualTo(patIndex));
        var f = k.CurrentCpu.Mmu.Translate(va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False);
        Assert.That(t.MemoryType, Is.EqualTo(type));
        Assert.That(t.PhysicalAddress, Is.EqualTo(Device));
    }

    [Test]
    public void Ioremap_is_never_executable()
    {
        var k = Boot();
        ulong va = k.IoRemapProt(Device, Page, KernelPageTables.PageKernelExec);
        Assert.That(k.PageTables.Lookup(va)!.Value.Entry >> 63, Is.EqualTo(1UL));
        Assert.That(k.CurrentCpu.Mmu.Translate(va, AccessKind.Execute, Privilege.Supervisor, out _).Rule, Is.EqualTo(FaultRule.FetchFromNoExecute));
    }

    [Test]
    public void The_offset_inside_the_first_page_is_preserved()
    {
        var k = Boot();
        ulong va = k.IoRemap(Device + 0xFF8, 0x10);
        Assert.That(va & 0xFFF, Is.EqualTo(0xFF8UL));
        Assert.That(Translate(k, va), Is.EqualTo(Device + 0xFF8));
        Assert.That(Translate(k, va + 8), Is.EqualTo(Device + 0x1000), "the span crosses into a second page");
        Assert.That(k.FindVmArea(va)!.Size, Is.EqualTo(3 * Page), "two pages and the guard page");
        Assert.That(k.FindVmArea(va)!.PhysAddr, Is.EqualTo(Device));
    }

    [TestCase(0x1000UL, 0x1000UL)]
    [TestCase(0x5000UL, 0x8000UL)]
    [TestCase(0x10_0000UL, 0x10_0000UL)]
    [TestCase(0x30_0000UL, 0x40_0000UL)]
    public void The_virtual_address_is_aligned_to_the_next_power_of_two_of_the_size(ulong size, ulong alignment)
    {
        var k = Boot();
        k.Vmalloc(Page); // VMALLOC_START is taken, so the alignment has work to do
        ulong va = k.IoRemap(0x8000_0000, size);
        Assert.That(va % alignment, Is.Zero);
        Assert.That(va, Is.LessThan(k.Layout.VmallocStart + 2 * alignment + 2 * Page), "the lowest aligned address that fits");
    }

    [Test]
    public void Virtual_alignment_is_capped_at_1_GiB()
    {
        var k = Boot();
        k.Vmalloc(Page);
        ulong va = k.IoRemap(0x80_0000_0000UL, 4 * GiB);
        Assert.That(va, Is.EqualTo(k.Layout.VmallocStart + GiB));
    }

    [Test]
    public void Aligned_2_MiB_spans_use_pmd_leaves_with_the_large_pat_bit_position()
    {
        var k = Boot();
        ulong va = k.IoRemapWt(0x8000_0000, 4 * MiB);
        Assert.That(va % (4 * MiB), Is.Zero);
        foreach (ulong off in new[] { 0UL, 2 * MiB })
        {
            var leaf = k.PageTables.Lookup(va + off)!.Value;
            Assert.That(leaf.Level, Is.EqualTo(2));
            Assert.That(leaf.Entry & 0x80, Is.EqualTo(0x80UL), "PS");
            Assert.That(leaf.Entry & 0x1018, Is.EqualTo(0x1018UL), "WT: PAT (bit 12) | PCD | PWT");
            Assert.That(Pat.Index(leaf.Entry, largePage: true), Is.EqualTo(7));
            Assert.That(leaf.Entry >> 63, Is.EqualTo(1UL));
        }
        k.CurrentCpu.Mmu.Translate(va + 3 * MiB + 5, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That((t.PhysicalAddress, t.PageSize, t.MemoryType), Is.EqualTo((0x8000_0000 + 3 * MiB + 5, PageSize.Size2M, MemoryType.WriteThrough)));
    }

    [Test]
    public void Aligned_1_GiB_spans_use_pud_leaves()
    {
        var k = Boot();
        ulong va = k.IoRemap(0x80_0000_0000UL, GiB);
        var leaf = k.PageTables.Lookup(va)!.Value;
        Assert.That(leaf.Level, Is.EqualTo(3));
        Assert.That(leaf.Entry & 0x1098, Is.EqualTo(0x90UL), "PS | PCD");
        k.CurrentCpu.Mmu.Translate(va + 123 * MiB, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That((t.PhysicalAddress, t.PageSize, t.MemoryType), Is.EqualTo((0x80_0000_0000UL + 123 * MiB, PageSize.Size1G, MemoryType.UncacheableMinus)));
    }

    [Test]
    public void Without_1_GiB_pages_a_1_GiB_span_uses_2_MiB_leaves()
    {
        var bus = HwMemModel.Machine.DefaultMachine.CreateBus(256 * MiB);
        var k = Kernel.Boot(bus, new KernelOptions { Features = new CpuFeatures { Pages1G = false } });
        ulong va = k.IoRemap(0x80_0000_0000UL, GiB);
        Assert.That(k.PageTables.Lookup(va + GiB - 1)!.Value.Level, Is.EqualTo(2));
    }

    [Test]
    public void A_physical_address_off_2_MiB_alignment_gets_4_KiB_ptes()
    {
        var k = Boot();
        ulong va = k.IoRemap(0x8000_1000, 4 * MiB);
        Assert.That(k.PageTables.Lookup(va)!.Value.Level, Is.EqualTo(1));
        Assert.That(k.PageTables.Lookup(va + 4 * MiB - Page)!.Value.Level, Is.EqualTo(1));
        Assert.That(Translate(k, va + 4 * MiB - 1), Is.EqualTo(0x8000_1000 + 4 * MiB - 1));
    }

    [Test]
    public void A_huge_leaf_replaces_an_empty_page_table_left_by_earlier_mappings()
    {
        var k = Boot();
        // 4 KiB mappings fill and then leave the first 2 MiB of the vmalloc space: its page table stays, empty.
        ulong v = k.Vmalloc(MiB);
        k.Memory.Write(v, 8, 1);
        k.Vfree(v);
        k.VmUnmapAliases();
        ulong pmdTable = k.PageTables.EntryFor(k.Layout.VmallocStart, 2, allocate: false)!.Value;
        Assert.That(k.PageTables.ReadEntry(pmdTable) & 1, Is.EqualTo(1UL), "a page table is there");
        long flushes = k.TlbShootdowns.RangeFlushes;
        ulong va = k.IoRemap(0x8000_0000, 2 * MiB);
        Assert.That(va, Is.EqualTo(k.Layout.VmallocStart));
        Assert.That(k.PageTables.Lookup(va)!.Value.Level, Is.EqualTo(2), "pmd_free_pte_page made room for the leaf");
        Assert.That(k.VmallocPageTablePagesFreed, Is.EqualTo(1));
        Assert.That(k.TlbShootdowns.RangeFlushes, Is.EqualTo(flushes + 1), "one INVLPG flush for the paging-structure caches");
        Assert.That(Translate(k, va + 8), Is.EqualTo(0x8000_0008UL));
    }

    [Test]
    public void Ioremap_of_ram_is_refused_with_a_warning_once()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.IoRemap(0x200_0000, Page), Is.Zero);
        Assert.That(k.IoRemap(0x300_0000, Page), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            "ioremap on RAM at 0x0000000002000000 - 0x0000000002000fff",
            "WARNING: CPU: 0 PID: 1 at arch/x86/mm/ioremap.c:__ioremap_caller",
        }));
        Assert.That(k.VmapAreaCount, Is.Zero);
        Assert.That(k.MemtypeReservations, Is.Empty);
    }

    [Test]
    public void A_span_inside_one_ram_page_passes_the_ram_check_as_in_linux()
    {
        // __ioremap_check_ram rounds the clipped range inward to whole pages before asking PageReserved, so a span
        // shorter than a page finds no RAM page; memtype_reserve then tracks the page in its flags.
        var k = Boot();
        ulong va = k.IoRemap(0x300_0010, 0x20);
        Assert.That(va, Is.Not.Zero);
        Assert.That(Translate(k, va), Is.EqualTo(0x300_0010UL));
        Assert.That(k.Log.Lines, Has.None.StartsWith("ioremap on RAM"));
        Assert.That(k.IoRemapWc(0x300_0010, 0x20), Is.Zero, "the RAM page is UC- now");
    }

    [Test]
    public void A_span_that_reaches_into_ram_is_refused()
    {
        var k = Boot();
        ulong ramEnd = k.Ram.Max(r => r.End);
        Assert.That(k.IoRemap(ramEnd - Page, 2 * Page), Is.Zero);
        Assert.That(k.Log.Lines, Has.Some.StartsWith("ioremap on RAM at"));
    }

    [Test]
    public void Reserved_ram_such_as_the_kernel_image_may_be_ioremapped()
    {
        var k = Boot();
        ulong va = k.IoRemap(KernelLayout.PhysicalStart, Page);
        Assert.That(va, Is.Not.Zero);
        Assert.That(k.MemtypeReservations, Is.Empty, "RAM pages track their type in page flags, not in the tree");
        Assert.That(k.IoRemapWc(KernelLayout.PhysicalStart, Page), Is.Zero, "the page is UC- already; WC is refused");
        Assert.That(k.Log.Lines, Has.Some.EqualTo("x86/PAT: reserve_ram_pages_type failed [mem 0x01000000-0x01000fff], track 0x2, req 0x1"));
        k.IoUnmap(va);
        Assert.That(k.IoRemapWc(KernelLayout.PhysicalStart, Page), Is.Not.Zero, "iounmap put the page back to WB");
    }

    [Test]
    public void The_legacy_isa_range_is_untracked_and_mapped_write_back()
    {
        var k = Boot();
        ulong va = k.IoRemap(0xA_0000, 0x2_0000);
        Assert.That(va, Is.Not.Zero);
        Assert.That(k.PageTables.Lookup(va)!.Value.Entry & 0x98, Is.Zero);
        Assert.That(k.MemtypeReservations, Is.Empty);
    }

    [Test]
    public void Zero_size_and_wrapping_spans_return_null_silently()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.IoRemap(Device, 0), Is.Zero);
        Assert.That(k.IoRemap(0xFFFF_FFFF_FFFF_F000UL, 0x2000), Is.Zero);
        Assert.That(k.IoRemap(0x1000, ulong.MaxValue), Is.Zero);
        Assert.That(k.Log.Lines, Has.Count.EqualTo(mark));
    }

    [Test]
    public void A_physical_address_beyond_maxphyaddr_is_invalid()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.IoRemap(1UL << 40, Page), Is.Zero);
        Assert.That(k.IoRemap(3UL << 40, Page), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            "ioremap: invalid physical address 10000000000",
            "WARNING: CPU: 0 PID: 1 at arch/x86/mm/ioremap.c:__ioremap_caller",
            "ioremap: invalid physical address 30000000000",
        }));
    }

    [Test]
    public void Iounmap_removes_the_mapping_and_after_the_purge_an_access_faults()
    {
        var k = Boot();
        ulong va = k.IoRemap(Device + 0x40, 0x40);
        Translate(k, va);
        k.IoUnmap(va);
        Assert.That(k.PageTables.Lookup(va), Is.Null, "the PTE is cleared in RAM");
        Assert.That(k.FindVmArea(va), Is.Null);
        Assert.That(k.MemtypeReservations, Is.Empty);
        Assert.That(k.FormatVmallocInfo(), Does.Contain("unpurged vm_area"));
        Assert.That(Translate(k, va), Is.EqualTo(Device + 0x40), "until the purge the TLB still translates");
        k.VmUnmapAliases();
        var ex = Assert.Throws<KernelStopException>(() => k.ReadL(va));
        Assert.That(ex!.Report, Does.Contain("#PF: error_code(0x0000) - not-present page"));
    }

    [Test]
    public void Iounmap_of_an_address_without_an_area_is_a_bad_address()
    {
        var k = Boot();
        ulong va = k.IoRemap(Device, Page);
        int mark = k.Log.Lines.Count;
        k.IoUnmap(va + 0x10_0000 + 0x123);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { $"iounmap: bad address {va + 0x10_0000:x16}" }));
        Assert.That(k.FindVmArea(va), Is.Not.Null);
    }

    [Test]
    public void Iounmap_of_a_non_ioremap_address_warns_once_and_returns()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        k.IoUnmap(k.PhysToVirt(0x200_0000));
        k.IoUnmap(0);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { "WARNING: CPU: 0 PID: 1 at arch/x86/mm/ioremap.c:iounmap" }));
    }

    [Test]
    public void Iounmap_of_an_inner_address_unmaps_the_whole_area()
    {
        var k = Boot();
        ulong va = k.IoRemap(Device, 4 * Page);
        k.IoUnmap(va + 2 * Page + 4);
        Assert.That(k.FindVmArea(va), Is.Null);
        Assert.That(k.MemtypeReservations, Is.Empty);
    }
}
