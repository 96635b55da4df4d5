using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

/// <summary>Bad frees are reported in Linux's bad_page shape and change nothing. One order-10 block at 4 MiB (pfn 0x400).</summary>
public sealed class BadFreeTests
{
    private PageAllocHarness _h = null!;
    private PageAllocator A => _h.Allocator;

    [SetUp]
    public void SetUp() => _h = OneNode((4 * MiB, 8 * MiB));

    /// <summary>Frees badly and checks that the state is unchanged and the report is the expected one.</summary>
    private void AssertIgnoredWithReport(Action badFree, string pfn, string reason)
    {
        string buddyInfo = A.FormatBuddyInfo();
        long free = A.FreePageCount;
        int lines = _h.Log.Lines.Count;
        badFree();
        Assert.That(A.FormatBuddyInfo(), Is.EqualTo(buddyInfo));
        Assert.That(A.FreePageCount, Is.EqualTo(free));
        _h.AssertConsistent();
        var added = _h.Log.Lines.Skip(lines).Where(l => l != "Disabling lock debugging due to kernel taint").ToArray();
        Assert.That(added, Is.EqualTo(new[] { $"BUG: Bad page state in process probe  pfn:{pfn}", $"page dumped because: {reason}" }));
    }

    [Test]
    public void A_double_free_of_a_page_is_reported_and_ignored()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value, b = A.AllocPages(Gfp.Kernel, 0)!.Value;
        A.FreePages(b, 0);
        AssertIgnoredWithReport(() => A.FreePages(b, 0, "probe"), "00401", "page is already free (double free): it heads a free block of order 0");
        // The allocator still works: the next allocation hands b out once, then freeing both merges to order 10.
        Assert.That(A.AllocPages(Gfp.Kernel, 0), Is.EqualTo(b));
        A.FreePages(a, 0);
        A.FreePages(b, 0);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
    }

    [Test]
    public void A_double_free_after_merging_is_reported_against_the_merged_block()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value;
        ulong b = A.AllocPages(Gfp.Kernel, 0)!.Value;
        A.FreePages(a, 0);
        A.FreePages(b, 0);
        AssertIgnoredWithReport(() => A.FreePages(b, 0, "probe"), "00401", "page is already free (double free): it is inside the free block of order 10 at pfn 00400");
        AssertIgnoredWithReport(() => A.FreePages(a, 0, "probe"), "00400", "page is already free (double free): it heads a free block of order 10");
    }

    [Test]
    public void Taint_is_announced_once()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value;
        A.FreePages(a, 0);
        A.FreePages(a, 0, "probe");
        A.FreePages(a, 0, "probe");
        Assert.That(_h.Log.Lines.Count(l => l == "Disabling lock debugging due to kernel taint"), Is.EqualTo(1));
        Assert.That(_h.Log.Lines.Count(l => l.StartsWith("BUG: Bad page state in process probe", StringComparison.Ordinal)), Is.EqualTo(2));
    }

    [Test]
    public void A_free_with_the_wrong_order_is_reported_and_ignored()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 1)!.Value;
        AssertIgnoredWithReport(() => A.FreePages(a, 0, "probe"), "00400", "page was allocated with order 1, freed with order 0");
        AssertIgnoredWithReport(() => A.FreePages(a, 2, "probe"), "00400", "page was allocated with order 1, freed with order 2");
        A.FreePages(a, 1);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
    }

    [Test]
    public void A_free_of_a_page_inside_an_allocated_block_is_reported_and_ignored()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 2)!.Value;
        AssertIgnoredWithReport(() => A.FreePages(a + 3 * Page, 0, "probe"), "00403", "page is inside the block of order 2 allocated at pfn 00400, not its first page");
    }

    [Test]
    public void An_unaligned_free_is_reported_and_ignored()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value;
        AssertIgnoredWithReport(() => A.FreePages(a + 0x800, 0, "probe"), "00400", "freed address 0x400800 is not page aligned");
    }

    [TestCase(0x10000000UL, "10000")]
    [TestCase(0x1000UL, "00001")]
    [TestCase(0x800000UL, "00800")]
    public void A_free_of_memory_the_allocator_does_not_manage_is_reported_and_ignored(ulong pa, string pfn)
    {
        A.AllocPages(Gfp.Kernel, 0);
        AssertIgnoredWithReport(() => A.FreePages(pa, 0, "probe"), pfn, $"0x{pa:x} is not memory the page allocator manages");
    }

    [TestCase(11)]
    [TestCase(-1)]
    public void A_free_with_an_order_outside_0_to_10_is_reported_and_ignored(int order)
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value;
        AssertIgnoredWithReport(() => A.FreePages(a, order, "probe"), "00400", $"freed with order {order}; orders are 0 to 10 (MAX_PAGE_ORDER)");
    }

    [Test]
    public void A_free_in_a_hole_between_ranges_is_reported()
    {
        var h = OneNode((4 * MiB, 5 * MiB), (6 * MiB, 8 * MiB));
        h.Allocator.FreePages(5 * MiB, 0, "probe");
        Assert.That(h.Log.Lines[1], Is.EqualTo("page dumped because: 0x500000 is not memory the page allocator manages"));
        h.AssertConsistent();
    }
}
