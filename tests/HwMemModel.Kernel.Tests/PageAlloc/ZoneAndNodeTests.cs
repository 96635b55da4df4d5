using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

public sealed class ZoneAndNodeTests
{
    /// <summary>DMA [8, 16) MiB, DMA32 [16, 24) MiB, Normal [4 GiB, 4 GiB + 8 MiB): two order-10 blocks each.</summary>
    private static PageAllocHarness ThreeZones() => OneNode((8 * MiB, 24 * MiB), (4 * GiB, 4 * GiB + 8 * MiB));

    [Test]
    public void Gfp_kernel_takes_normal_gfp_dma32_below_4_GiB_gfp_dma_below_16_MiB()
    {
        var a = ThreeZones().Allocator;
        Assert.That(a.AllocPages(Gfp.Kernel, 0), Is.EqualTo(4 * GiB));
        Assert.That(a.AllocPages(Gfp.AtomicAlloc, 0), Is.EqualTo(4 * GiB + Page));
        Assert.That(a.AllocPages(Gfp.Kernel | Gfp.Dma32, 0), Is.EqualTo(16 * MiB));
        Assert.That(a.AllocPages(Gfp.Kernel | Gfp.Dma, 0), Is.EqualTo(8 * MiB));
        Assert.That(a.ZoneOf(8 * MiB).Type, Is.EqualTo(ZoneType.Dma));
        Assert.That(a.Zones.Select(z => z.FreePages), Is.EqualTo(new long[] { 2047, 2047, 2046 }));
    }

    [Test]
    public void Normal_requests_fall_back_to_dma32_then_dma_when_normal_is_empty()
    {
        var a = ThreeZones().Allocator;
        var got = Enumerable.Range(0, 7).Select(_ => a.AllocPages(Gfp.Kernel | Gfp.NoWarn, 10)).ToArray();
        Assert.That(got, Is.EqualTo(new ulong?[] { 4 * GiB, 4 * GiB + 4 * MiB, 16 * MiB, 20 * MiB, 8 * MiB, 12 * MiB, null }));
    }

    [Test]
    public void Dma32_requests_fall_back_to_dma_and_never_take_normal()
    {
        var a = ThreeZones().Allocator;
        var got = Enumerable.Range(0, 5).Select(_ => a.AllocPages(Gfp.Kernel | Gfp.Dma32 | Gfp.NoWarn, 10)).ToArray();
        Assert.That(got, Is.EqualTo(new ulong?[] { 16 * MiB, 20 * MiB, 8 * MiB, 12 * MiB, null }));
        Assert.That(a.Zones[2].FreePages, Is.EqualTo(2048));
    }

    [Test]
    public void Dma_requests_use_only_zone_dma()
    {
        var a = ThreeZones().Allocator;
        var got = Enumerable.Range(0, 3).Select(_ => a.AllocPages(Gfp.Kernel | Gfp.Dma | Gfp.NoWarn, 10)).ToArray();
        Assert.That(got, Is.EqualTo(new ulong?[] { 8 * MiB, 12 * MiB, null }));
        Assert.That(a.Zones[1].FreePages + a.Zones[2].FreePages, Is.EqualTo(4096));
    }

    [Test]
    public void Every_page_handed_out_lies_in_the_zones_the_mask_allows()
    {
        var a = ThreeZones().Allocator;
        for (int i = 0; i < 2048; i++)
        {
            Assert.That(a.AllocPages(Gfp.Kernel | Gfp.Dma, 0), Is.LessThan(16 * MiB));
            Assert.That(a.AllocPages(Gfp.Kernel | Gfp.Dma32, 0), Is.LessThan(4 * GiB));
        }
        Assert.That(a.AllocPages(Gfp.Kernel | Gfp.Dma32 | Gfp.NoWarn, 0), Is.Null, "DMA32 and DMA are used up");
        Assert.That(a.AllocPages(Gfp.Kernel, 0), Is.GreaterThanOrEqualTo(4 * GiB));
    }

    [Test]
    public void Dma_together_with_dma32_is_a_bad_zone_combination()
    {
        var a = ThreeZones().Allocator;
        Assert.Throws<ArgumentException>(() => a.AllocPages(Gfp.Dma | Gfp.Dma32, 0));
    }

    [Test]
    public void The_preferred_node_is_used_and_numa_no_node_means_node_0()
    {
        var a = new PageAllocHarness(2, new PhysRange(4 * GiB, 4 * GiB + 8 * MiB, 0), new PhysRange(4 * GiB + 8 * MiB, 4 * GiB + 16 * MiB, 1)).Allocator;
        ulong p1 = a.AllocPages(Gfp.Kernel, 0, nid: 1)!.Value;
        Assert.That(p1, Is.EqualTo(4 * GiB + 8 * MiB));
        Assert.That(a.NodeOf(p1), Is.EqualTo(1));
        ulong p0 = a.AllocPages(Gfp.Kernel, 0)!.Value;
        Assert.That(a.NodeOf(p0), Is.EqualTo(0));
        Assert.That(a.AllocPages(Gfp.Kernel, 0, nid: 0), Is.EqualTo(4 * GiB + Page));
    }

    [Test]
    public void An_exhausted_node_falls_back_to_the_next_unless_thisnode()
    {
        var a = new PageAllocHarness(2, new PhysRange(4 * GiB, 4 * GiB + 8 * MiB, 0), new PhysRange(4 * GiB + 8 * MiB, 4 * GiB + 16 * MiB, 1)).Allocator;
        Assert.That(a.AllocPages(Gfp.Kernel, 10, nid: 1), Is.EqualTo(4 * GiB + 8 * MiB));
        Assert.That(a.AllocPages(Gfp.Kernel, 10, nid: 1), Is.EqualTo(4 * GiB + 12 * MiB));
        Assert.That(a.AllocPages(Gfp.Kernel | Gfp.ThisNode | Gfp.NoWarn, 0, nid: 1), Is.Null);
        Assert.That(a.AllocPages(Gfp.Kernel, 0, nid: 1), Is.EqualTo(4 * GiB), "node 0 after node 1");
        Assert.That(a.AllocPages(Gfp.Kernel | Gfp.ThisNode, 0, nid: 0), Is.EqualTo(4 * GiB + Page));
    }

    [Test]
    public void The_zonelist_is_node_ordered_all_zones_of_the_local_node_first()
    {
        // Node 0: DMA32 [16, 24) MiB and Normal [4 GiB, +4 MiB); node 1: Normal [4 GiB + 4 MiB, +4 MiB).
        var a = new PageAllocHarness(2, new PhysRange(16 * MiB, 24 * MiB, 0), new PhysRange(4 * GiB, 4 * GiB + 4 * MiB, 0),
            new PhysRange(4 * GiB + 4 * MiB, 4 * GiB + 8 * MiB, 1)).Allocator;
        var got = Enumerable.Range(0, 5).Select(_ => a.AllocPages(Gfp.Kernel | Gfp.NoWarn, 10, nid: 0)).ToArray();
        Assert.That(got, Is.EqualTo(new ulong?[] { 4 * GiB, 16 * MiB, 20 * MiB, 4 * GiB + 4 * MiB, null }));
    }

    [Test]
    public void Other_nodes_are_tried_from_the_next_node_up_then_wrapping_around()
    {
        var a = new PageAllocHarness(3, new PhysRange(4 * GiB, 4 * GiB + 4 * MiB, 0), new PhysRange(4 * GiB + 4 * MiB, 4 * GiB + 8 * MiB, 1),
            new PhysRange(4 * GiB + 8 * MiB, 4 * GiB + 12 * MiB, 2)).Allocator;
        var got = Enumerable.Range(0, 3).Select(_ => a.NodeOf(a.AllocPages(Gfp.Kernel, 10, nid: 1)!.Value)).ToArray();
        Assert.That(got, Is.EqualTo(new[] { 1, 2, 0 }));
    }

    [Test]
    public void Blocks_on_either_side_of_a_node_boundary_never_merge()
    {
        // Node 0 [4G, 4G+6M): order 10 at 4G, order 9 at 4G+4M. Node 1 [4G+6M, 4G+8M): order 9 at 4G+6M,
        // the buddy of node 0's order-9 block, but in another zone.
        var h = new PageAllocHarness(2, new PhysRange(4 * GiB, 4 * GiB + 6 * MiB, 0), new PhysRange(4 * GiB + 6 * MiB, 4 * GiB + 8 * MiB, 1));
        Assert.That(h.FreeBlocks(2), Is.EqualTo(Counts((9, 1), (10, 1))));
        Assert.That(h.FreeBlocks(5), Is.EqualTo(Counts((9, 1))));
        ulong pa = h.Allocator.AllocPages(Gfp.Kernel, 9, nid: 1)!.Value;
        Assert.That(pa, Is.EqualTo(4 * GiB + 6 * MiB));
        h.Allocator.FreePages(pa, 9);
        Assert.That(h.FreeBlocks(2), Is.EqualTo(Counts((9, 1), (10, 1))));
        Assert.That(h.FreeBlocks(5), Is.EqualTo(Counts((9, 1))));
        h.AssertConsistent();
    }

    [TestCase(2)]
    [TestCase(-2)]
    [TestCase(64)]
    public void A_node_id_that_is_not_a_node_is_refused(int nid)
    {
        var a = new PageAllocHarness(2, new PhysRange(4 * MiB, 8 * MiB, 0)).Allocator;
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => a.AllocPages(Gfp.Kernel, 0, nid));
        Assert.That(ex!.Message, Does.Contain("0 to 1"));
    }

    [Test]
    public void A_node_without_memory_allocates_from_the_others()
    {
        var a = new PageAllocHarness(2, new PhysRange(4 * MiB, 8 * MiB, 0)).Allocator;
        Assert.That(a.AllocPages(Gfp.Kernel, 0, nid: 1), Is.EqualTo(4 * MiB));
        Assert.That(a.AllocPages(Gfp.Kernel | Gfp.ThisNode | Gfp.NoWarn, 0, nid: 1), Is.Null);
    }
}
