using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

/// <summary>One order-10 block at 4 MiB (pfn 0x400, ZONE_DMA): every expectation below is the buddy arithmetic by hand.</summary>
public sealed class BuddySplitMergeTests
{
    private const ulong Block = 4 * MiB;
    private PageAllocHarness _h = null!;
    private PageAllocator A => _h.Allocator;

    [SetUp]
    public void SetUp() => _h = OneNode((Block, Block + 4 * MiB));

    [Test]
    public void Order_0_from_one_order_10_block_leaves_one_block_of_each_order_0_to_9()
    {
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
        var pa = A.AllocPages(Gfp.Kernel, 0);
        Assert.That(pa, Is.EqualTo(Block), "the lower half is kept at every split");
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }));
        Assert.That(A.FreePageCount, Is.EqualTo(1023));
        _h.AssertConsistent();
    }

    [Test]
    public void Freeing_the_page_merges_back_into_one_order_10_block()
    {
        var pa = A.AllocPages(Gfp.Kernel, 0)!.Value;
        A.FreePages(pa, 0);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
        Assert.That(A.FreePageCount, Is.EqualTo(1024));
        _h.AssertConsistent();
    }

    [Test]
    public void The_split_pushes_the_upper_halves_so_order_k_sits_at_block_plus_2_pow_k_pages()
    {
        A.AllocPages(Gfp.Kernel, 0);
        // The halves left by the split: order k at 4 MiB + 4 KiB * 2^k. Take them largest first.
        for (int k = 9; k >= 0; k--)
            Assert.That(A.AllocPages(Gfp.Kernel, k), Is.EqualTo(Block + (Page << k)), $"order {k}");
        Assert.That(A.FreePageCount, Is.Zero);
    }

    [Test]
    public void Consecutive_order_0_allocations_return_ascending_addresses()
    {
        var got = Enumerable.Range(0, 8).Select(_ => A.AllocPages(Gfp.Kernel, 0)).ToArray();
        Assert.That(got, Is.EqualTo(Enumerable.Range(0, 8).Select(i => (ulong?)(Block + (ulong)i * Page)).ToArray()));
    }

    [Test]
    public void Allocation_takes_the_smallest_free_block_that_fits()
    {
        A.AllocPages(Gfp.Kernel, 0);
        // Free now: order 0 at +4K, 1 at +8K, 2 at +16K, ... 9 at +2M. An order-2 request takes +16K, no new split.
        Assert.That(A.AllocPages(Gfp.Kernel, 2), Is.EqualTo(Block + 16 * KiB));
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(new long[] { 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0 }));
    }

    [Test]
    public void A_page_does_not_merge_while_its_buddy_is_allocated()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value, b = A.AllocPages(Gfp.Kernel, 0)!.Value;
        Assert.That(b, Is.EqualTo(a ^ Page), "pfn 0x400 and its buddy 0x400 ^ 1");
        A.FreePages(a, 0);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }));
        A.FreePages(b, 0);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
        _h.AssertConsistent();
    }

    [Test]
    public void A_block_merges_only_with_a_buddy_of_the_same_order()
    {
        ulong a = A.AllocPages(Gfp.Kernel, 0)!.Value;   // pfn 0x400
        ulong b = A.AllocPages(Gfp.Kernel, 0)!.Value;   // pfn 0x401
        ulong c = A.AllocPages(Gfp.Kernel, 1)!.Value;   // pfn 0x402-0x403
        Assert.That(c, Is.EqualTo(Block + 2 * Page));
        A.FreePages(c, 1);   // buddy of (0x402, order 1) is 0x400: two allocated order-0 pages, no merge
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(new long[] { 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }));
        A.FreePages(a, 0);   // buddy 0x401 allocated
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }));
        A.FreePages(b, 0);   // 0x400+0x401 -> order 1, + 0x402 -> order 2, + 0x404 -> 3, ... up to order 10
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
        _h.AssertConsistent();
    }

    [Test]
    public void Buddy_of_an_order_k_block_is_its_pfn_xor_2_pow_k()
    {
        // Split everything into order-3 blocks; pfn p's buddy is p ^ 8. Free the even-numbered blocks first: no merges.
        var blocks = Enumerable.Range(0, 128).Select(_ => A.AllocPages(Gfp.Kernel, 3)!.Value).ToArray();
        Assert.That(blocks, Is.EqualTo(Enumerable.Range(0, 128).Select(i => Block + (ulong)i * 8 * Page).ToArray()));
        for (int i = 0; i < 128; i += 2) A.FreePages(blocks[i], 3);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((3, 64))));
        A.FreePages(blocks[1], 3);   // buddy of pfn 0x408 is 0x400 (free, order 3): merge to order 4 at 0x400
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((3, 63), (4, 1))));
        A.FreePages(blocks[3], 3);   // 0x418 ^ 8 = 0x410 -> order 4 at 0x410, whose buddy 0x400 is order 4 -> order 5
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((3, 62), (5, 1))));
        _h.AssertConsistent();
    }

    [Test]
    public void Allocated_order_is_known_only_at_the_head_of_an_allocated_block()
    {
        ulong pa = A.AllocPages(Gfp.Kernel, 2)!.Value;
        Assert.That(A.AllocatedOrder(pa), Is.EqualTo(2));
        Assert.That(A.AllocatedOrder(pa + Page), Is.Null, "a tail page");
        Assert.That(A.AllocatedOrder(pa + 4 * Page), Is.Null, "a free block");
        Assert.That(A.AllocatedOrder(pa + 1), Is.Null, "not page aligned");
        Assert.That(A.AllocatedOrder(0), Is.Null, "not managed");
        A.FreePages(pa, 2);
        Assert.That(A.AllocatedOrder(pa), Is.Null);
    }

    [Test]
    public void Order_10_takes_the_whole_block_and_frees_it_back()
    {
        Assert.That(A.AllocPages(Gfp.Kernel, 10), Is.EqualTo(Block));
        Assert.That(A.FreePageCount, Is.Zero);
        Assert.That(A.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0), Is.Null);
        A.FreePages(Block, 10);
        Assert.That(_h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
    }

    [Test]
    public void Gfp_zero_zeroes_exactly_the_allocated_range_through_the_callback()
    {
        ulong pa = A.AllocPages(Gfp.Kernel | Gfp.Zero, 2)!.Value;
        Assert.That(_h.Zeroed, Is.EqualTo(new[] { (pa, 4 * Page) }));
        A.AllocPages(Gfp.Kernel, 0);
        Assert.That(_h.Zeroed, Has.Count.EqualTo(1), "no __GFP_ZERO, no zeroing");
        ulong big = A.AllocPages(Gfp.Kernel | Gfp.Zero, 9)!.Value;
        Assert.That(_h.Zeroed[1], Is.EqualTo((big, 2 * MiB)));
    }
}
