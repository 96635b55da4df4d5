using HwMemModel.Kernel;
using HwMemModel.Mmu;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.Vmalloc;

public sealed class VmallocTests
{
    [Test]
    public void Vmalloc_rounds_to_pages_and_adds_a_guard_page_to_the_area()
    {
        var k = Boot();
        ulong va = k.Vmalloc(10_000);
        var area = k.FindVmArea(va)!;
        Assert.That(va, Is.EqualTo(k.Layout.VmallocStart), "the first area takes the lowest address");
        Assert.That(area.Address, Is.EqualTo(va));
        Assert.That(area.Pages, Has.Count.EqualTo(3));
        Assert.That(area.Size, Is.EqualTo(4 * Page), "vm->size counts the guard page");
        Assert.That(area.MappedSize, Is.EqualTo(3 * Page));
        Assert.That(area.Flags, Is.EqualTo(VmFlags.Alloc));
        Assert.That(k.IsVmallocAddr(va), Is.True);
    }

    [Test]
    public void Vmalloc_memory_is_virtually_contiguous_and_each_page_is_a_page_kernel_pte()
    {
        var k = Boot();
        ulong va = k.Vmalloc(5 * Page);
        var pages = k.FindVmArea(va)!.Pages;
        for (int i = 0; i < 5; i++)
        {
            ulong pageVa = va + (ulong)i * Page;
            Assert.That(Translate(k, pageVa + 0x123), Is.EqualTo(pages[i] + 0x123));
            var leaf = k.PageTables.Lookup(pageVa)!.Value;
            Assert.That(leaf.Level, Is.EqualTo(1), "a 4 KiB PTE");
            Assert.That(leaf.Entry & ~0x000F_FFFF_FFFF_F000UL, Is.EqualTo(0x8000_0000_0000_0163UL), "P|RW|A|D|G|NX");
            Assert.That(leaf.Entry & 0x000F_FFFF_FFFF_F000UL, Is.EqualTo(pages[i]));
        }
        // One write stream across all five pages through the MMU reads back whole.
        var data = Enumerable.Range(0, 5 * 4096).Select(i => (byte)(i * 7)).ToArray();
        k.Memory.WriteBytes(va, data);
        var back = new byte[data.Length];
        k.Memory.ReadBytes(va, back);
        Assert.That(back, Is.EqualTo(data));
        // ...and the bytes sit in the scattered physical pages.
        Assert.That(k.Memory.Read(k.PhysToVirt(pages[3]) + 5, 1), Is.EqualTo((ulong)unchecked((byte)((3 * 4096 + 5) * 7))));
    }

    [Test]
    public void Vmalloc_pages_are_physically_scattered_once_the_buddy_allocator_is_fragmented()
    {
        var k = Boot();
        var held = new List<ulong>();
        for (int i = 0; i < 64; i++) held.Add(k.Pages.AllocPages(Gfp.Kernel, 0)!.Value);
        for (int i = 0; i < 64; i += 2) k.Pages.FreePages(held[i], 0);
        ulong va = k.Vmalloc(16 * Page);
        var pages = k.FindVmArea(va)!.Pages;
        Assert.That(pages.Distinct().Count(), Is.EqualTo(16));
        bool scattered = Enumerable.Range(0, 15).Any(i => pages[i + 1] != pages[i] + Page);
        Assert.That(scattered, Is.True, "some neighbouring virtual pages are not neighbours in physical memory");
        for (int i = 0; i < 16; i++) Assert.That(Translate(k, va + (ulong)i * Page), Is.EqualTo(pages[i]));
    }

    [Test]
    public void The_guard_page_after_an_area_faults_not_present()
    {
        var k = Boot();
        ulong va = k.Vmalloc(2 * Page);
        ulong guard = va + 2 * Page;
        var f = ReadFault(k, guard);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(f.ErrorCode & PageFaultErrorCode.Present, Is.EqualTo(PageFaultErrorCode.None));
        var ex = Assert.Throws<KernelStopException>(() => k.Memory.Write(guard, 8, 1));
        Assert.That(ex!.Report, Does.Contain($"BUG: unable to handle page fault for address: {guard:x16}"));
        Assert.That(ex.Report, Does.Contain("not-present page"));
        // The next area starts after the guard page.
        Assert.That(k.Vmalloc(Page), Is.EqualTo(guard + Page));
    }

    [Test]
    public void Areas_are_placed_lowest_address_first_and_freed_ranges_merge()
    {
        var k = Boot();
        ulong a = k.Vmalloc(Page), b = k.Vmalloc(3 * Page), c = k.Vmalloc(Page);
        Assert.That(b, Is.EqualTo(a + 2 * Page));
        Assert.That(c, Is.EqualTo(b + 4 * Page));
        k.Vfree(a);
        k.Vfree(b);
        Assert.That(k.Vmalloc(Page), Is.EqualTo(c + 2 * Page), "lazily freed ranges are not reused before the purge");
        k.VmUnmapAliases();
        // a (2 pages) and b (4 pages) merged into one 6-page hole: a 5-page area (+ guard) fits exactly at a.
        Assert.That(k.Vmalloc(5 * Page), Is.EqualTo(a));
        Assert.That(k.Vmalloc(Page), Is.EqualTo(c + 4 * Page), "the hole is full; the next area goes above");
    }

    [Test]
    public void Vzalloc_memory_is_zero_even_on_recycled_pages()
    {
        var k = Boot();
        ulong dirty = k.Vmalloc(8 * Page);
        k.Memory.Fill(dirty, 0xAA, 8 * Page);
        var dirtyPages = k.FindVmArea(dirty)!.Pages.ToHashSet();
        k.Vfree(dirty);
        k.VmUnmapAliases();
        ulong va = k.Vzalloc(8 * Page);
        Assert.That(k.FindVmArea(va)!.Pages.Any(dirtyPages.Contains), Is.True, "the test reuses dirtied pages");
        var bytes = new byte[8 * 4096];
        k.Memory.ReadBytes(va, bytes);
        Assert.That(bytes.All(b => b == 0), Is.True);
    }

    [Test]
    public void Vmalloc32_pages_sit_below_4_GiB_where_plain_vmalloc_takes_high_memory()
    {
        var k = BootWithHighRam();
        ulong plain = k.Vmalloc(64 * Page);
        ulong low = k.Vmalloc32(64 * Page);
        Assert.That(k.FindVmArea(plain)!.Pages.All(pa => pa >= 4 * GiB), Is.True, "GFP_KERNEL prefers ZONE_NORMAL");
        Assert.That(k.FindVmArea(low)!.Pages.All(pa => pa < 4 * GiB), Is.True);
        Assert.That(Translate(k, low + 63 * Page), Is.LessThan(4 * GiB));
    }

    [Test]
    public void VmallocDma_pages_sit_below_16_MiB()
    {
        var k = Boot();
        ulong va = k.VmallocDma(32 * Page);
        Assert.That(va, Is.Not.Zero);
        Assert.That(k.FindVmArea(va)!.Pages.All(pa => pa < 16 * MiB), Is.True);
        Assert.That(k.FindVmArea(k.Vmalloc(32 * Page))!.Pages.All(pa => pa >= 16 * MiB), Is.True);
    }

    [Test]
    public void VmallocNode_and_VzallocNode_take_pages_from_the_node()
    {
        var k = Boot(nodes: 2);
        ulong va = k.VmallocNode(8 * Page, 1);
        ulong z = k.VzallocNode(8 * Page, 0);
        Assert.That(k.FindVmArea(va)!.Pages.All(pa => k.Pages.NodeOf(pa) == 1), Is.True);
        Assert.That(k.FindVmArea(z)!.Pages.All(pa => k.Pages.NodeOf(pa) == 0), Is.True);
        Assert.Throws<ArgumentOutOfRangeException>(() => k.VmallocNode(Page, 2));
    }

    [Test]
    public void Vmalloc_of_zero_bytes_returns_null_with_a_warning_once()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.Vmalloc(0), Is.Zero);
        Assert.That(k.Vzalloc(0), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:__vmalloc_node_range_noprof" }));
    }

    [Test]
    public void Vmalloc_beyond_total_ram_fails_with_linux_message()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        ulong size = 1UL << 40;
        Assert.That(k.Vmalloc(size), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            $"{nameof(Vmalloc_beyond_total_ram_fails_with_linux_message)}: vmalloc error: size {size}, exceeds total pages, mode:0xcc0(GFP_KERNEL), nodemask=(null)",
        }));
        Assert.That(k.Vmalloc(ulong.MaxValue, Gfp.Kernel | Gfp.NoWarn), Is.Zero);
        Assert.That(k.Log.Lines, Has.Count.EqualTo(mark + 1), "__GFP_NOWARN silences it");
    }

    [Test]
    public void Vmalloc_reports_page_exhaustion_and_gives_back_what_it_took()
    {
        var k = Boot();
        var start = Snapshot(k);
        int mark = k.Log.Lines.Count;
        // ZONE_DMA is [1 MiB, 16 MiB): 16 MiB cannot come from it.
        ulong va = k.VmallocDma(16 * MiB);
        Assert.That(va, Is.Zero);
        var lines = LogSince(k, mark);
        Assert.That(lines, Has.Some.Match(@"^Vmalloc_reports_page_exhaustion_and_gives_back_what_it_took: vmalloc error: size \d+, failed to allocate pages, mode:0xcc1\(GFP_KERNEL\|GFP_DMA\), nodemask=\(null\)$"));
        Assert.That(k.VmapAreaCount, Is.Zero);
        k.VmUnmapAliases();
        Assert.That(Leaked(k, start), Is.Zero);
    }

    [Test]
    public void Vfree_of_null_does_nothing()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        k.Vfree(0);
        Assert.That(k.Log.Lines, Has.Count.EqualTo(mark));
    }

    [Test]
    public void Vfree_of_an_unaligned_address_reports_bad_address_then_nonexistent_area()
    {
        var k = Boot();
        ulong va = k.Vmalloc(Page);
        int mark = k.Log.Lines.Count;
        k.Vfree(va + 8);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            $"Trying to vfree() bad address ({va + 8:x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:remove_vm_area",
            $"Trying to vfree() nonexistent vm area ({va + 8:x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:vfree",
        }));
        Assert.That(k.FindVmArea(va), Is.Not.Null, "the area is untouched");
    }

    [Test]
    public void Vfree_of_an_unknown_address_and_double_vfree_report_nonexistent_area()
    {
        var k = Boot();
        ulong va = k.Vmalloc(Page);
        int mark = k.Log.Lines.Count;
        k.Vfree(va + 64 * Page);
        k.Vfree(va);
        k.Vfree(va);
        k.Vfree(k.PhysToVirt(0x200_0000));
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            $"Trying to vfree() nonexistent vm area ({va + 64 * Page:x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:vfree",
            $"Trying to vfree() nonexistent vm area ({va:x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:vfree",
            $"Trying to vfree() nonexistent vm area ({k.PhysToVirt(0x200_0000):x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:vfree",
        }));
    }

    [Test]
    public void Vfree_of_an_address_inside_an_area_frees_the_whole_area_as_find_vmap_area_does()
    {
        var k = Boot();
        ulong va = k.Vmalloc(4 * Page);
        k.Vfree(va + 2 * Page);
        Assert.That(k.FindVmArea(va), Is.Null);
        Assert.That(k.VmapLazyPages, Is.EqualTo(5));
    }

    [Test]
    public void Vmap_maps_the_callers_pages_non_executable_and_vunmap_flushes_at_once()
    {
        var k = Boot();
        var pages = Enumerable.Range(0, 3).Select(_ => k.Pages.AllocPages(Gfp.Kernel, 0)!.Value).ToArray();
        pages = [pages[2], pages[0], pages[1]];
        ulong va = k.Vmap(pages, KernelPageTables.PageKernelExec);
        var area = k.FindVmArea(va)!;
        Assert.That(area.Flags, Is.EqualTo(VmFlags.Map));
        Assert.That(area.Pages, Is.EqualTo(pages));
        for (int i = 0; i < 3; i++)
        {
            Assert.That(Translate(k, va + (ulong)i * Page), Is.EqualTo(pages[i]));
            Assert.That(k.PageTables.Lookup(va + (ulong)i * Page)!.Value.Entry >> 63, Is.EqualTo(1UL), "vmap forces NX");
        }
        Assert.That(k.CurrentCpu.Mmu.Translate(va, AccessKind.Execute, Privilege.Supervisor, out _).Rule, Is.EqualTo(FaultRule.FetchFromNoExecute));

        long flushes = k.TlbShootdowns.Flushes, free = k.Pages.FreePageCount;
        k.Vunmap(va);
        Assert.That(k.TlbShootdowns.Flushes, Is.EqualTo(flushes + 1));
        Assert.That(k.TlbShootdowns.RangeFlushes, Is.EqualTo(1), "3 pages: INVLPG per page");
        Assert.That(ReadFault(k, va).IsFault, Is.True, "no stale translation survives vunmap");
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free), "the pages stay the caller's");
        Assert.That(k.VmapLazyPages, Is.Zero);
        Assert.That(k.Vmap(pages), Is.EqualTo(va), "the range is free again at once");
    }

    [Test]
    public void Vmap_of_no_pages_is_null_and_vunmap_of_an_unknown_area_is_reported()
    {
        var k = Boot();
        Assert.That(k.Vmap([]), Is.Zero);
        int mark = k.Log.Lines.Count;
        k.Vunmap(k.Layout.VmallocStart + 16 * Page);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            $"Trying to vunmap() nonexistent vm area ({k.Layout.VmallocStart + 16 * Page:x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:vunmap",
        }));
        Assert.Throws<ArgumentException>(() => k.Vmap([0x1234]));
    }

    [Test]
    public void Exhausted_vmalloc_space_purges_the_lazy_areas_once_and_retries()
    {
        var k = Boot();
        ulong small = k.Vmalloc(4 * Page);
        // Fill the rest of the 32 TiB space: ioremap areas of 2^n - 4 KiB (2^n with the guard page, aligned to 2^n up to
        // 1 GiB), largest first, until nothing of 8 KiB is left anywhere.
        int mark = k.Log.Lines.Count;
        var big = new List<ulong>();
        for (int shift = 39; shift >= 13; shift--)
        {
            while (true)
            {
                ulong va = k.IoRemap(0x80_0000_0000UL, (1UL << shift) - Page);
                if (va == 0) break;
                big.Add(va);
            }
        }
        Assert.That(LogSince(k, mark), Does.Contain(
            $"vmalloc_node_range for size {8 * KiB} failed: Address range restricted to 0x{k.Layout.VmallocStart:x} - 0x{k.Layout.VmallocEnd:x}"));
        Assert.That(k.Vmalloc(Page, Gfp.Kernel | Gfp.NoWarn), Is.Zero, "no room for a page and its guard");

        k.Vfree(small);
        long flushes = k.TlbShootdowns.Flushes;
        mark = k.Log.Lines.Count;
        Assert.That(k.Vmalloc(4 * Page), Is.EqualTo(small), "after the purge the lazily freed range is reused");
        Assert.That(k.TlbShootdowns.Flushes, Is.EqualTo(flushes + 1), "one purge");
        Assert.That(LogSince(k, mark), Is.Empty);
        foreach (var va in big) k.IoUnmap(va);
        k.VmUnmapAliases();
        Assert.That(k.MemtypeReservations, Is.Empty);
    }

    [TestCase(false, null)]
    [TestCase(true, null)]
    [TestCase(false, 7UL)]
    [TestCase(true, 1234UL)]
    public void Vmalloc_and_ioremap_work_in_every_layout(bool fiveLevel, ulong? kaslrSeed)
    {
        var bus = HwMemModel.Machine.DefaultMachine.CreateBus(256 * MiB);
        var k = Kernel.Boot(bus, new KernelOptions { FiveLevel = fiveLevel, KaslrSeed = kaslrSeed });
        ulong va = k.Vmalloc(3 * Page);
        Assert.That(va, Is.EqualTo(k.Layout.VmallocStart));
        var pages = k.FindVmArea(va)!.Pages;
        for (int i = 0; i < 3; i++) Assert.That(Translate(k, va + (ulong)i * Page), Is.EqualTo(pages[i]));
        ulong io = k.IoRemap(0x80_0000_0000UL, GiB);
        Assert.That(k.PageTables.Lookup(io)!.Value.Level, Is.EqualTo(3));
        Assert.That(Translate(k, io + 5), Is.EqualTo(0x80_0000_0005UL));
        k.Vfree(va);
        k.IoUnmap(io);
        k.VmUnmapAliases();
        Assert.That(ReadFault(k, va).IsFault, Is.True);
        Assert.That(ReadFault(k, io).IsFault, Is.True);
    }

    [Test]
    public void Vfree_of_an_ioremap_area_unmaps_it_but_keeps_the_memtype_as_linux_does()
    {
        var k = Boot();
        ulong io = k.IoRemap(0xFED0_0000, Page);
        k.Vfree(io);
        Assert.That(k.FindVmArea(io), Is.Null);
        Assert.That(k.MemtypeReservations, Has.Count.EqualTo(1), "only iounmap frees the reservation");
    }
}
