using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

public sealed class PageAllocatorBootTests
{
    [TestCase(0)]
    [TestCase(65)]
    [TestCase(-1)]
    public void Node_count_outside_1_to_64_is_rejected_naming_the_range(int nodes)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new PageAllocator([], nodes, new KernelLog(), (_, _) => { }));
        Assert.That(ex!.ParamName, Is.EqualTo("nodeCount"));
        Assert.That(ex.Message, Does.Contain("1 to 64"));
    }

    [Test]
    public void Sixty_four_nodes_are_accepted()
    {
        var a = new PageAllocator([new PhysRange(4 * MiB, 8 * MiB, 63)], 64, new KernelLog(), (_, _) => { });
        Assert.That(a.NodeCount, Is.EqualTo(64));
        Assert.That(a.Zones, Has.Count.EqualTo(192));
        Assert.That(a.NodeOf(4 * MiB), Is.EqualTo(63));
    }

    [Test]
    public void Unaligned_reversed_overlapping_or_off_node_ranges_are_rejected()
    {
        var log = new KernelLog();
        Assert.Throws<ArgumentException>(() => new PageAllocator([new PhysRange(4 * MiB + 1, 8 * MiB, 0)], 1, log, (_, _) => { }));
        Assert.Throws<ArgumentException>(() => new PageAllocator([new PhysRange(4 * MiB, 8 * MiB - 512, 0)], 1, log, (_, _) => { }));
        Assert.Throws<ArgumentException>(() => new PageAllocator([new PhysRange(8 * MiB, 4 * MiB, 0)], 1, log, (_, _) => { }));
        Assert.Throws<ArgumentException>(() => new PageAllocator([new PhysRange(4 * MiB, 8 * MiB, 0), new PhysRange(6 * MiB, 10 * MiB, 0)], 1, log, (_, _) => { }));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new PageAllocator([new PhysRange(4 * MiB, 8 * MiB, 2)], 2, log, (_, _) => { }));
        Assert.That(ex!.Message, Does.Contain("0 to 1"));
    }

    [Test]
    public void Zones_are_listed_node_major_with_dma_first()
    {
        var h = new PageAllocHarness(2, new PhysRange(4 * MiB, 8 * MiB, 0), new PhysRange(4 * GiB, 4 * GiB + 4 * MiB, 1));
        var zones = h.Allocator.Zones;
        Assert.That(zones.Select(z => (z.Node, z.Type, z.Name)), Is.EqualTo(new[]
        {
            (0, ZoneType.Dma, "DMA"), (0, ZoneType.Dma32, "DMA32"), (0, ZoneType.Normal, "Normal"),
            (1, ZoneType.Dma, "DMA"), (1, ZoneType.Dma32, "DMA32"), (1, ZoneType.Normal, "Normal"),
        }));
        Assert.That(zones.Select(z => z.ManagedPages), Is.EqualTo(new long[] { 1024, 0, 0, 0, 0, 1024 }));
        Assert.That(h.Allocator.ManagedPageCount, Is.EqualTo(2048));
        Assert.That(h.Allocator.FreePageCount, Is.EqualTo(2048));
    }

    [Test]
    public void A_free_range_is_handed_over_as_maximal_naturally_aligned_blocks()
    {
        // pfns 1..31: 1 (order 0), 2-3 (1), 4-7 (2), 8-15 (3), 16-31 (4).
        var h = OneNode((0x1000, 0x20000));
        Assert.That(h.FreeBlocks(0), Is.EqualTo(Counts((0, 1), (1, 1), (2, 1), (3, 1), (4, 1))));
        Assert.That(h.Allocator.Zones[0].ManagedPages, Is.EqualTo(31));
        h.AssertConsistent();
    }

    [Test]
    public void Adjacent_ranges_of_one_node_merge_into_one_block()
    {
        // [4M, 5M) and [5M, 8M) are one order-10 block once both are free, as memblock_free_all's frees merge.
        var h = OneNode((5 * MiB, 8 * MiB), (4 * MiB, 5 * MiB));
        Assert.That(h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
        h.AssertConsistent();
    }

    [Test]
    public void A_range_across_16_MiB_and_4_GiB_is_split_between_zones()
    {
        var h = OneNode((12 * MiB, 20 * MiB), (4 * GiB - 4 * MiB, 4 * GiB + 4 * MiB));
        var zones = h.Allocator.Zones;
        Assert.That(zones.Select(z => z.ManagedPages), Is.EqualTo(new long[] { 1024, 2048, 1024 }));
        Assert.That(h.FreeBlocks(0), Is.EqualTo(Counts((10, 1))));
        Assert.That(h.FreeBlocks(1), Is.EqualTo(Counts((10, 2))));
        Assert.That(h.FreeBlocks(2), Is.EqualTo(Counts((10, 1))));
        Assert.That(h.Allocator.ZoneOf(16 * MiB - Page).Type, Is.EqualTo(ZoneType.Dma));
        Assert.That(h.Allocator.ZoneOf(16 * MiB).Type, Is.EqualTo(ZoneType.Dma32));
        Assert.That(h.Allocator.ZoneOf(4 * GiB - Page).Type, Is.EqualTo(ZoneType.Dma32));
        Assert.That(h.Allocator.ZoneOf(4 * GiB).Type, Is.EqualTo(ZoneType.Normal));
    }

    [Test]
    public void Node_and_zone_of_an_unmanaged_address_are_refused()
    {
        var h = OneNode((4 * MiB, 8 * MiB));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Allocator.NodeOf(8 * MiB));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Allocator.NodeOf(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Allocator.ZoneOf(1UL << 50));
        Assert.That(h.Allocator.NodeOf(8 * MiB - 1), Is.EqualTo(0));
    }

    [Test]
    public void An_allocator_without_free_ranges_fails_every_allocation()
    {
        var h = OneNode();
        Assert.That(h.Allocator.ManagedPageCount, Is.Zero);
        Assert.That(h.Allocator.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0), Is.Null);
        Assert.That(h.Allocator.FormatBuddyInfo(), Is.Empty);
    }

    [TestCase(1)]
    [TestCase(4)]
    public void Boot_over_64_GiB_allocates_less_than_200_MiB_of_host_memory(int nodes)
    {
        // [1 MiB, 2 GiB) and [4 GiB, 66 GiB): 64 GiB less 1 MiB, split evenly between the nodes.
        var ranges = new List<PhysRange>();
        ulong per = 64 * GiB / (ulong)nodes;
        foreach (var (s, e) in new[] { (MiB, 2 * GiB), (4 * GiB, 66 * GiB) })
            for (ulong a = s; a < e;)
            {
                ulong logical = a < 2 * GiB ? a : a - 2 * GiB;
                int node = (int)Math.Min((ulong)nodes - 1, logical / per);
                ulong end = Math.Min(e, a + (per - logical % per));
                ranges.Add(new PhysRange(a, end, node));
                a = end;
            }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var allocator = new PageAllocator(ranges, nodes, new KernelLog(), (_, _) => { });
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(allocator.ManagedPageCount, Is.EqualTo((long)((2 * GiB - MiB + 62 * GiB) / Page)));
        Assert.That(allocator.FreePageCount, Is.EqualTo(allocator.ManagedPageCount));
        Assert.That(bytes, Is.LessThan(200L << 20), $"{bytes / (1 << 20)} MiB");
        TestContext.Out.WriteLine($"{nodes} node(s): {bytes / (double)(1 << 20):F1} MiB allocated, {bytes / (double)allocator.ManagedPageCount:F2} bytes per page");
    }
}
