using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

public sealed class AllocationFailureTests
{
    /// <summary>Two pages at 4 MiB (pfn 0x400-0x401, one order-1 block in ZONE_DMA).</summary>
    private static PageAllocHarness TwoPages() => OneNode((4 * MiB, 4 * MiB + 2 * Page));

    private static readonly string EmptyDmaLine = "Node 0 DMA: 0*4kB 0*8kB 0*16kB 0*32kB 0*64kB 0*128kB 0*256kB 0*512kB 0*1024kB 0*2048kB 0*4096kB = 0kB";

    [Test]
    public void Exhaustion_returns_null_and_logs_linux_page_allocation_failure_report()
    {
        var h = TwoPages();
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel, 0, caller: "probe"), Is.EqualTo(4 * MiB));
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel, 0, caller: "probe"), Is.EqualTo(4 * MiB + Page));
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel, 0, caller: "probe"), Is.Null);
        Assert.That(h.Log.Lines, Is.EqualTo(new[]
        {
            "probe: page allocation failure: order:0, mode:0xcc0(GFP_KERNEL), nodemask=(null)",
            "Mem-Info:",
            EmptyDmaLine,
        }));
    }

    [Test]
    public void The_report_names_the_calling_member_by_default()
    {
        var h = TwoPages();
        h.Allocator.AllocPages(Gfp.Kernel, 1);
        h.Allocator.AllocPages(Gfp.AtomicAlloc | Gfp.Zero, 0);
        Assert.That(h.Log.Lines[0], Is.EqualTo(
            $"{nameof(The_report_names_the_calling_member_by_default)}: page allocation failure: order:0, mode:0xb20(GFP_ATOMIC|__GFP_ZERO), nodemask=(null)"));
    }

    [Test]
    public void Fragmented_memory_fails_a_larger_order_and_the_dump_shows_the_free_areas()
    {
        var h = TwoPages();
        ulong a = h.Allocator.AllocPages(Gfp.Kernel, 0)!.Value;
        h.Allocator.AllocPages(Gfp.Kernel, 0);
        h.Allocator.FreePages(a, 0);
        Assert.That(h.Allocator.FreePageCount, Is.EqualTo(1));
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel, 1, caller: "probe"), Is.Null);
        Assert.That(h.Log.Lines, Is.EqualTo(new[]
        {
            "probe: page allocation failure: order:1, mode:0xcc0(GFP_KERNEL), nodemask=(null)",
            "Mem-Info:",
            "Node 0 DMA: 1*4kB 0*8kB 0*16kB 0*32kB 0*64kB 0*128kB 0*256kB 0*512kB 0*1024kB 0*2048kB 0*4096kB = 4kB",
        }));
    }

    [Test]
    public void Nowarn_suppresses_the_report()
    {
        var h = TwoPages();
        h.Allocator.AllocPages(Gfp.Kernel, 1);
        Assert.That(h.Allocator.AllocPages(Gfp.NoWait | Gfp.NoWarn, 0), Is.Null);
        Assert.That(h.Log.Lines, Is.Empty);
    }

    [Test]
    public void The_mem_info_dump_lists_only_zones_the_mask_may_use()
    {
        var h = OneNode((4 * MiB, 8 * MiB), (16 * MiB, 20 * MiB), (4 * GiB, 4 * GiB + 4 * MiB));
        h.Allocator.AllocPages(Gfp.Dma, 10);
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.Dma, 0, caller: "isa_probe"), Is.Null);
        Assert.That(h.Log.Lines, Is.EqualTo(new[]
        {
            "isa_probe: page allocation failure: order:0, mode:0xcc1(GFP_KERNEL|GFP_DMA), nodemask=(null)",
            "Mem-Info:",
            EmptyDmaLine,
        }));
    }

    [Test]
    public void Gfp_dma_on_a_machine_without_a_dma_zone_fails_silently_as_linux_does()
    {
        var h = OneNode((16 * MiB, 20 * MiB));
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.Dma, 0), Is.Null);
        Assert.That(h.Log.Lines, Is.Empty, "warn_alloc skips __GFP_DMA when !has_managed_dma()");
    }

    [Test]
    public void Nofail_stops_the_machine_with_an_oom_report_naming_the_caller_when_memory_is_gone()
    {
        var h = TwoPages();
        h.Allocator.AllocPages(Gfp.Kernel, 1);
        var ex = Assert.Throws<KernelStopException>(() => h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoFail, 0, caller: "probe"));
        var expected = new[]
        {
            "probe invoked oom-killer: gfp_mask=0x8cc0(GFP_KERNEL|__GFP_NOFAIL), order=0, oom_score_adj=0",
            "Mem-Info:",
            EmptyDmaLine,
            "Out of memory and no killable processes...",
            "Kernel panic - not syncing: System is deadlocked on memory",
        };
        Assert.That(ex!.Report, Is.EqualTo(string.Join('\n', expected)));
        Assert.That(h.Log.Lines, Is.EqualTo(expected));
    }

    [Test]
    public void Nofail_succeeds_whenever_a_block_exists()
    {
        var h = TwoPages();
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoFail, 1), Is.EqualTo(4 * MiB));
    }

    [Test]
    public void Nofail_stops_even_when_pages_are_free_but_no_block_is_large_enough()
    {
        var h = TwoPages();
        ulong a = h.Allocator.AllocPages(Gfp.Kernel, 0)!.Value;
        h.Allocator.AllocPages(Gfp.Kernel, 0);
        h.Allocator.FreePages(a, 0);
        var ex = Assert.Throws<KernelStopException>(() => h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoFail, 1, caller: "probe"));
        Assert.That(ex!.Report, Does.StartWith("probe invoked oom-killer: gfp_mask=0x8cc0(GFP_KERNEL|__GFP_NOFAIL), order=1,"));
    }

    [Test]
    public void An_order_above_10_warns_once_and_returns_null()
    {
        var h = OneNode((4 * MiB, 8 * MiB));
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel, 11, caller: "probe"), Is.Null);
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoFail, 12, caller: "probe"), Is.Null, "even __GFP_NOFAIL");
        Assert.That(h.Log.Lines, Has.Count.EqualTo(2), "WARN_ON_ONCE");
        Assert.That(h.Log.Lines[0], Does.StartWith("probe: page allocation of order 11 is above MAX_PAGE_ORDER (10)"));
        Assert.That(h.Log.Lines[1], Is.EqualTo("WARNING: CPU: 0 PID: 1 at mm/page_alloc.c:__alloc_pages"));
        Assert.That(h.Allocator.FreePageCount, Is.EqualTo(1024));
    }

    [Test]
    public void An_order_above_10_with_nowarn_is_silent()
    {
        var h = OneNode((4 * MiB, 8 * MiB));
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoWarn, 11), Is.Null);
        Assert.That(h.Log.Lines, Is.Empty);
    }

    [Test]
    public void A_negative_order_is_host_misuse()
    {
        var h = OneNode((4 * MiB, 8 * MiB));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Allocator.AllocPages(Gfp.Kernel, -1));
    }

    [Test]
    public void The_min_watermark_stops_ordinary_allocations_while_atomic_and_nofail_dip_below()
    {
        var h = OneNode((4 * MiB, 8 * MiB));
        h.Allocator.Zones[0].WatermarkMin = 1000;
        for (int i = 0; i < 24; i++) Assert.That(h.Allocator.AllocPages(Gfp.Kernel, 0), Is.Not.Null, $"allocation {i}");
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0), Is.Null, "1000 free: one more would go below min");
        Assert.That(h.Allocator.AllocPages(Gfp.AtomicAlloc, 0), Is.Not.Null, "GFP_ATOMIC may use 5/8 of the reserve");
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.High, 0), Is.Not.Null, "__GFP_HIGH may use half of it");
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoFail, 0), Is.Not.Null);
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.MemAlloc, 0), Is.Not.Null, "__GFP_MEMALLOC ignores watermarks");
        Assert.That(h.Allocator.FreePageCount, Is.EqualTo(996));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Allocator.Zones[0].WatermarkMin = -1);
    }

    [Test]
    public void Gfp_atomic_stops_at_three_eighths_of_the_min_watermark()
    {
        // min 800: GFP_ATOMIC may go down to 800 - 400 - 100 = 300 free pages, so 724 of the 1024 pages.
        var h = OneNode((4 * MiB, 8 * MiB));
        h.Allocator.Zones[0].WatermarkMin = 800;
        int n = 0;
        while (h.Allocator.AllocPages(Gfp.AtomicAlloc | Gfp.NoWarn, 0) is not null) n++;
        Assert.That(n, Is.EqualTo(724));
    }
}
