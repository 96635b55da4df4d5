using HwMemModel.Kernel;
using HwMemModel.Mmu;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.Vmalloc;

public sealed class LazyPurgeTests
{
    [Test]
    public void Vfree_clears_the_ptes_in_ram_without_a_flush_and_defers_the_range()
    {
        var k = Boot();
        ulong va = k.Vmalloc(4 * Page);
        k.Memory.Fill(va, 0x5A, 4 * Page);
        long free = k.Pages.FreePageCount;
        k.Vfree(va);
        for (int i = 0; i < 4; i++) Assert.That(k.PageTables.Lookup(va + (ulong)i * Page), Is.Null, "PTE cleared in RAM");
        Assert.That(k.TlbShootdowns.Flushes, Is.Zero, "no flush at vfree");
        Assert.That(k.VmapLazyPages, Is.EqualTo(5), "four pages and the guard page");
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free + 4), "the pages go back at vfree, as in mm/vmalloc.c");
        Assert.That(k.Vmalloc(Page), Is.EqualTo(va + 5 * Page), "the range is not reused before the purge");
    }

    [Test]
    public void With_the_at_purge_policy_the_pages_are_kept_until_the_purge()
    {
        var k = Boot();
        k.VfreePages = VfreePagePolicy.AtPurge;
        ulong va = k.Vmalloc(4 * Page);
        long free = k.Pages.FreePageCount;
        k.Vfree(va);
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free), "the model keeps the pages until the purge");
        k.VmUnmapAliases();
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free + 4));
    }

    [Test]
    public void A_stale_tlb_entry_reaches_the_freed_page_until_the_purge()
    {
        var k = Boot();
        ulong va = k.Vmalloc(Page);
        k.Memory.Write(va, 8, 0x1122_3344_5566_7788UL);
        ulong pa = k.FindVmArea(va)!.Pages[0];
        k.Vfree(va);

        var mmu = k.CurrentCpu.Mmu;
        mmu.CoherenceChecking = true;
        Assert.That(k.Memory.Read(va, 8), Is.EqualTo(0x1122_3344_5566_7788UL), "the TLB still holds the translation");
        var stale = mmu.StaleTranslations.Single();
        Assert.That(stale.VirtualAddress, Is.EqualTo(va));
        Assert.That(stale.Kind, Is.EqualTo(StaleKind.NowUnmapped));
        Assert.That(stale.CachedPhysicalAddress, Is.EqualTo(pa));

        k.VmUnmapAliases();
        Assert.That(k.TlbShootdowns.Flushes, Is.EqualTo(1));
        Assert.That(k.VmapLazyPages, Is.Zero);
        var ex = Assert.Throws<KernelStopException>(() => k.Memory.Read(va, 8));
        Assert.That(ex!.Report, Does.Contain("not-present page"));
        Assert.That(k.FormatVmallocInfo(), Is.Empty);
    }

    [Test]
    public void With_linux_page_policy_the_stale_entry_reaches_a_page_someone_else_now_owns()
    {
        var k = Boot();
        k.VfreePages = VfreePagePolicy.AtVfree;
        ulong va = k.Vmalloc(Page);
        k.Memory.Write(va, 8, 1);
        ulong pa = k.FindVmArea(va)!.Pages[0];
        long free = k.Pages.FreePageCount;
        k.Vfree(va);
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free + 1), "mm/vmalloc.c frees the pages at vfree");

        ulong reused = k.Pages.AllocPages(Gfp.Kernel, 0)!.Value;
        Assert.That(reused, Is.EqualTo(pa), "the allocator hands the page out again (LIFO)");
        k.Memory.Write(k.PhysToVirt(reused), 8, 0xC0FFEE);
        Assert.That(k.Memory.Read(va, 8), Is.EqualTo(0xC0FFEEUL), "the stale translation reads the new owner's data");
        k.VmUnmapAliases();
        Assert.That(ReadFault(k, va).IsFault, Is.True);
    }

    [Test]
    public void Lazily_freed_pages_past_lazy_max_pages_trigger_one_full_flush_purge()
    {
        var k = Boot();
        Assert.That(k.LazyMaxPages, Is.EqualTo(8192), "fls(1) * 32 MiB / 4 KiB");
        var start = Snapshot(k);
        var areas = Enumerable.Range(0, 32).Select(_ => k.Vmalloc(MiB)).ToList();
        for (int i = 0; i < 31; i++) k.Vfree(areas[i]);
        Assert.That(k.VmapLazyPages, Is.EqualTo(31 * 257));
        Assert.That(k.TlbShootdowns.Flushes, Is.Zero);

        k.Vfree(areas[31]); // 32 * 257 = 8224 > 8192
        Assert.That(k.TlbShootdowns.Flushes, Is.EqualTo(1), "one flush_tlb_kernel_range for all of them");
        Assert.That(k.TlbShootdowns.FullFlushes, Is.EqualTo(1), "the range covers far more than 33 pages");
        Assert.That(k.VmapLazyPages, Is.Zero);
        Assert.That(Leaked(k, start), Is.Zero, "every page is back");
        Assert.That(k.Vmalloc(Page), Is.EqualTo(k.Layout.VmallocStart), "the space is whole again");
    }

    [TestCase(1, 8192)]
    [TestCase(2, 16384)]
    [TestCase(3, 16384)]
    [TestCase(4, 24576)]
    [TestCase(8, 32768)]
    public void Lazy_max_pages_scales_with_fls_of_the_cpu_count(int cpus, long expected)
        => Assert.That(Boot(cpus: cpus).LazyMaxPages, Is.EqualTo(expected));

    [Test]
    public void Flush_of_33_pages_is_invlpg_per_page_on_every_cpu_with_one_ipi()
    {
        var k = Boot(cpus: 2);
        ulong start = k.Layout.VmallocStart;
        k.FlushTlbKernelRange(start, start + 33 * Page);
        var c = k.TlbShootdowns;
        Assert.That((c.Flushes, c.RangeFlushes, c.FullFlushes, c.Invlpgs, c.CpuFullFlushes, c.Ipis), Is.EqualTo((1L, 1L, 0L, 66L, 0L, 1L)));
        foreach (var cpu in k.Cpus) Assert.That(cpu.Mmu.Counters.Flushes(FlushKind.Invlpg), Is.EqualTo(33));
    }

    [Test]
    public void Flush_of_34_pages_is_a_full_flush_on_every_cpu_with_one_ipi()
    {
        var k = Boot(cpus: 2);
        ulong start = k.Layout.VmallocStart;
        k.FlushTlbKernelRange(start, start + 34 * Page);
        var c = k.TlbShootdowns;
        Assert.That((c.Flushes, c.RangeFlushes, c.FullFlushes, c.Invlpgs, c.CpuFullFlushes, c.Ipis), Is.EqualTo((1L, 0L, 1L, 0L, 2L, 1L)));
        foreach (var cpu in k.Cpus)
        {
            Assert.That(cpu.Mmu.Counters.Flushes(FlushKind.Invlpg), Is.Zero);
            Assert.That(cpu.Mmu.Counters.Flushes(FlushKind.InvpcidAllIncludingGlobal), Is.EqualTo(1), "__flush_tlb_all uses INVPCID type 2");
        }
    }

    [Test]
    public void Ipis_count_every_other_cpu_per_flush()
    {
        var k = Boot(cpus: 4);
        ulong start = k.Layout.VmallocStart;
        k.FlushTlbKernelRange(start, start + Page);
        k.FlushTlbKernelRange(start, ulong.MaxValue);
        Assert.That(k.TlbShootdowns.Ipis, Is.EqualTo(6));
        Assert.That(k.TlbShootdowns.Invlpgs, Is.EqualTo(4));
        Assert.That(k.TlbShootdowns.CpuFullFlushes, Is.EqualTo(4));
    }

    [Test]
    public void The_purge_shoots_down_translations_cached_by_other_cpus()
    {
        var k = Boot(cpus: 2);
        ulong va = k.Vmalloc(2 * Page);
        k.CurrentCpuIndex = 1;
        k.Memory.Write(va, 4, 7);
        k.CurrentCpuIndex = 0;
        k.Vfree(va);
        k.CurrentCpuIndex = 1;
        Assert.That(k.Memory.Read(va, 4), Is.EqualTo(7UL), "CPU 1 still has the entry");
        k.CurrentCpuIndex = 0;
        k.VmUnmapAliases();
        Assert.That(k.TlbShootdowns.Ipis, Is.EqualTo(1));
        k.CurrentCpuIndex = 1;
        Assert.That(ReadFault(k, va).IsFault, Is.True, "the IPI reached CPU 1");
    }

    [Test]
    public void Without_invpcid_the_full_flush_toggles_cr4_pge()
    {
        var bus = HwMemModel.Machine.DefaultMachine.CreateBus(256 * MiB);
        var k = Kernel.Boot(bus, new KernelOptions { Features = new CpuFeatures { Pcid = false } });
        ulong va = k.Vmalloc(64 * Page);
        k.Memory.Write(va, 8, 1);
        k.Vfree(va);
        long cr4 = k.CurrentCpu.Mmu.Counters.Flushes(FlushKind.Cr4Change);
        k.VmUnmapAliases();
        Assert.That(k.CurrentCpu.Mmu.Counters.Flushes(FlushKind.Cr4Change), Is.EqualTo(cr4 + 2), "each change of CR4.PGE flushes everything");
        Assert.That(k.CurrentCpu.Cr4Value & Cr4.PGE, Is.EqualTo(Cr4.PGE));
        Assert.That(ReadFault(k, va).IsFault, Is.True);
    }

    [Test]
    public void Purge_of_an_empty_lazy_list_does_not_flush()
    {
        var k = Boot();
        k.VmUnmapAliases();
        Assert.That(k.TlbShootdowns.Flushes, Is.Zero);
    }

    [Test]
    public void Everything_freed_and_purged_returns_the_allocator_to_its_starting_free_count()
    {
        var k = Boot();
        var start = Snapshot(k);
        var vm = new List<ulong>();
        for (int i = 1; i <= 40; i++) vm.Add(i % 3 == 0 ? k.Vzalloc((ulong)i * 3000) : k.Vmalloc((ulong)i * 5000));
        vm.Add(k.Vmalloc32(64 * KiB));
        vm.Add(k.VmallocDma(32 * KiB));
        var own = Enumerable.Range(0, 5).Select(_ => k.Pages.AllocPages(Gfp.Kernel, 0)!.Value).ToArray();
        ulong map = k.Vmap(own);
        ulong io = k.IoRemap(0x8000_0000, 4 * MiB);
        ulong io2 = k.IoRemapWc(0x9000_1000, 3 * Page);
        for (int i = 0; i < vm.Count; i += 2) k.Vfree(vm[i]);
        k.Vunmap(map);
        k.IoUnmap(io);
        for (int i = 1; i < vm.Count; i += 2) k.Vfree(vm[i]);
        k.IoUnmap(io2);
        foreach (var pa in own) k.Pages.FreePages(pa, 0);
        k.VmUnmapAliases();
        Assert.That(k.VmapAreaCount, Is.Zero);
        Assert.That(Leaked(k, start), Is.Zero);
        Assert.That(k.MemtypeReservations, Is.Empty);
    }
}
