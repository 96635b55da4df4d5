using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

public sealed class BuddyInfoTests
{
    /// <summary>
    /// Node 0: pfns 1-31 (DMA: orders 0,1,2,3,4 once each) and [16, 28) MiB (DMA32: three order-10 blocks).
    /// Node 1: [4 GiB, 4 GiB + 4 MiB + 12 KiB) (Normal: order 10 at 4 GiB, order 1 at +4 MiB, order 0 at +4 MiB + 8 KiB).
    /// </summary>
    private static PageAllocHarness Layout() => new(2,
        new PhysRange(0x1000, 0x20000, 0), new PhysRange(16 * MiB, 28 * MiB, 0), new PhysRange(4 * GiB, 4 * GiB + 4 * MiB + 12 * KiB, 1));

    [Test]
    public void Buddyinfo_prints_one_line_per_populated_zone_in_proc_format()
    {
        Assert.That(Layout().Allocator.FormatBuddyInfo(), Is.EqualTo(
            "Node 0, zone      DMA      1      1      1      1      1      0      0      0      0      0      0 \n" +
            "Node 0, zone    DMA32      0      0      0      0      0      0      0      0      0      0      3 \n" +
            "Node 1, zone   Normal      1      1      0      0      0      0      0      0      0      0      1 \n"));
    }

    [Test]
    public void Buddyinfo_follows_a_split()
    {
        var h = Layout();
        h.Allocator.AllocPages(Gfp.Kernel | Gfp.Dma32, 0);   // splits the order-10 block at 16 MiB
        Assert.That(h.Allocator.FormatBuddyInfo().Split('\n')[1], Is.EqualTo(
            "Node 0, zone    DMA32      1      1      1      1      1      1      1      1      1      1      2 "));
    }

    [Test]
    public void Freeing_every_other_page_leaves_only_order_0_blocks()
    {
        var h = OneNode((4 * GiB, 4 * GiB + 4 * MiB));
        var pages = Enumerable.Range(0, 1024).Select(_ => h.Allocator.AllocPages(Gfp.Kernel, 0)!.Value).ToArray();
        for (int i = 0; i < pages.Length; i += 2) h.Allocator.FreePages(pages[i], 0);
        Assert.That(h.Allocator.FormatBuddyInfo(), Is.EqualTo(
            "Node 0, zone   Normal    512      0      0      0      0      0      0      0      0      0      0 \n"));
    }
}
