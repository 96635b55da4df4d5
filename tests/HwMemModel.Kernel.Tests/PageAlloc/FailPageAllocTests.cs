using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

public sealed class FailPageAllocTests
{
    private PageAllocHarness _h = null!;
    private PageAllocator A => _h.Allocator;

    [SetUp]
    public void SetUp() => _h = OneNode((4 * MiB, 8 * MiB));

    [Test]
    public void Interval_3_times_1_fails_exactly_the_third_allocation()
    {
        A.FailPageAlloc.Configure(probability: 100, interval: 3, times: 1);
        var got = Enumerable.Range(0, 7).Select(_ => A.AllocPages(Gfp.Kernel, 0, caller: "probe") is not null).ToArray();
        Assert.That(got, Is.EqualTo(new[] { true, true, false, true, true, true, true }));
        Assert.That(A.FailPageAlloc.Injected, Is.EqualTo(1));
        Assert.That(A.FreePageCount, Is.EqualTo(1024 - 6), "the failed call took nothing");
        _h.AssertConsistent();
    }

    [Test]
    public void An_injected_failure_logs_the_fault_injection_notice_and_no_allocation_failure_report()
    {
        // Linux: should_fail_alloc_page fails prepare_alloc_pages, so __alloc_pages returns NULL before warn_alloc.
        A.FailPageAlloc.Configure(probability: 100, interval: 3, times: 1);
        for (int i = 0; i < 3; i++) A.AllocPages(Gfp.Kernel, 0, caller: "probe");
        Assert.That(_h.Log.Lines, Is.EqualTo(new[]
        {
            "FAULT_INJECTION: forcing a failure.",
            "name fail_page_alloc, interval 3, probability 100, space 0, times 1",
        }));
    }

    [Test]
    public void Nowarn_silences_the_notice()
    {
        A.FailPageAlloc.Configure(probability: 100);
        Assert.That(A.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0), Is.Null);
        Assert.That(_h.Log.Lines, Is.Empty);
    }

    [Test]
    public void Nofail_allocations_are_never_injected()
    {
        A.FailPageAlloc.Configure(probability: 100, times: -1);
        Assert.That(A.AllocPages(Gfp.Kernel | Gfp.NoFail, 0), Is.EqualTo(4 * MiB));
        Assert.That(A.AllocPages(Gfp.Kernel, 0), Is.Null);
        Assert.That(A.AllocPages(Gfp.Kernel | Gfp.NoFail, 0), Is.EqualTo(4 * MiB + Page));
        Assert.That(A.FailPageAlloc.Injected, Is.EqualTo(1));
    }

    [Test]
    public void Space_counts_pages_so_an_order_2_call_uses_four()
    {
        // space 6: order 2 (4 pages) passes leaving 2; order 0 (1 page) passes leaving 1; the next call fails.
        A.FailPageAlloc.Configure(probability: 100, space: 6, times: 1);
        Assert.That(A.AllocPages(Gfp.Kernel, 2), Is.Not.Null);
        Assert.That(A.AllocPages(Gfp.Kernel, 0), Is.Not.Null);
        Assert.That(A.AllocPages(Gfp.Kernel, 0), Is.Null);
        Assert.That(_h.Log.Lines[1], Is.EqualTo("name fail_page_alloc, interval 1, probability 100, space 1, times 1"));
    }

    [Test]
    public void Min_order_and_ignore_flags_filter_as_linux_fail_page_alloc_does()
    {
        A.FailPageAlloc.Configure(probability: 100, times: -1);
        A.FailPageAllocMinOrder = 1;
        Assert.That(A.AllocPages(Gfp.Kernel, 0), Is.Not.Null, "below min-order");
        Assert.That(A.AllocPages(Gfp.Kernel | Gfp.NoWarn, 1), Is.Null);
        A.FailPageAllocIgnoreGfpReclaim = true;
        Assert.That(A.AllocPages(Gfp.Kernel, 1), Is.Not.Null, "GFP_KERNEL may reclaim: ignored");
        Assert.That(A.AllocPages(Gfp.AtomicAlloc | Gfp.NoWarn, 1), Is.Null, "GFP_ATOMIC cannot reclaim");
        A.FailPageAllocIgnoreGfpHighMem = true;
        Assert.That(A.AllocPages(Gfp.AtomicAlloc | Gfp.HighMem, 1), Is.Not.Null);
    }

    [Test]
    public void Disabling_the_injector_restores_normal_allocation()
    {
        A.FailPageAlloc.Configure(probability: 100, times: -1);
        Assert.That(A.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0), Is.Null);
        A.FailPageAlloc.Disable();
        Assert.That(A.AllocPages(Gfp.Kernel, 0), Is.EqualTo(4 * MiB));
    }

    [Test]
    public void The_same_seed_injects_the_same_failures()
    {
        bool[] Run()
        {
            var h = OneNode((4 * MiB, 8 * MiB));
            h.Allocator.FailPageAlloc.Configure(probability: 30, seed: 7);
            return Enumerable.Range(0, 200).Select(_ => h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is null).ToArray();
        }
        var first = Run();
        Assert.That(Run(), Is.EqualTo(first));
        Assert.That(first.Count(f => f), Is.InRange(30, 90));
    }
}
