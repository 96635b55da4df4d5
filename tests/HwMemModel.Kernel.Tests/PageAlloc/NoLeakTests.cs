using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.PageAlloc.PageAllocHarness;

namespace HwMemModel.Kernel.Tests.PageAlloc;

public sealed class NoLeakTests
{
    /// <summary>Two nodes, every zone, ranges that start and end off block boundaries.</summary>
    private static PageAllocHarness Layout() => new(2,
        new PhysRange(64 * KiB, 9 * MiB + 12 * KiB, 0), new PhysRange(12 * MiB, 26 * MiB + 4 * KiB, 0),
        new PhysRange(4 * GiB - 8 * MiB, 4 * GiB + 6 * MiB, 0), new PhysRange(4 * GiB + 6 * MiB, 4 * GiB + 13 * MiB + 20 * KiB, 1));

    private static readonly Gfp[] Masks =
    [
        Gfp.Kernel, Gfp.AtomicAlloc, Gfp.Kernel | Gfp.Dma32, Gfp.Kernel | Gfp.Dma, Gfp.Kernel | Gfp.ThisNode, Gfp.NoWait | Gfp.Zero,
    ];

    [TestCase(1, false)]
    [TestCase(2, false)]
    [TestCase(3, false)]
    [TestCase(4, true)]
    [TestCase(5, true)]
    public void After_freeing_everything_free_counts_and_buddyinfo_return_to_the_start(int seed, bool releaseEmptyLinkChunks)
    {
        var h = Layout();
        var a = h.Allocator;
        if (releaseEmptyLinkChunks) a.LinkChunkReleaseThresholdInts = 0;
        string startInfo = a.FormatBuddyInfo();
        long startFree = a.FreePageCount;
        var startZones = a.Zones.Select(z => z.FreePages).ToArray();
        var rng = new Random(seed);
        var held = new List<(ulong Pa, int Order)>();
        var owner = new Dictionary<ulong, ulong>();   // page -> head of the block holding it
        for (int step = 0; step < 4000; step++)
        {
            if (held.Count > 0 && rng.Next(100) < 45)
            {
                int i = rng.Next(held.Count);
                var (pa, order) = held[i];
                held[i] = held[^1];
                held.RemoveAt(held.Count - 1);
                for (ulong p = pa; p < pa + (Page << order); p += Page) owner.Remove(p);
                a.FreePages(pa, order);
                continue;
            }
            int o = rng.Next(100) switch { < 60 => 0, < 75 => 1, < 85 => 2, < 95 => rng.Next(3, 8), _ => rng.Next(8, 11) };
            var gfp = Masks[rng.Next(Masks.Length)] | Gfp.NoWarn;
            int nid = rng.Next(3) - 1;
            var got = a.AllocPages(gfp, o, nid);
            if (got is not ulong block) continue;
            Assert.That(block % (Page << o), Is.Zero, "naturally aligned");
            if ((gfp & Gfp.Dma) != 0) Assert.That(block + (Page << o), Is.LessThanOrEqualTo(16 * MiB));
            if ((gfp & Gfp.Dma32) != 0) Assert.That(block + (Page << o), Is.LessThanOrEqualTo(4 * GiB));
            if ((gfp & Gfp.ThisNode) != 0) Assert.That(a.NodeOf(block), Is.EqualTo(Math.Max(nid, 0)));
            for (ulong p = block; p < block + (Page << o); p += Page)
                Assert.That(owner.TryAdd(p, block), Is.True, $"page 0x{p:x} handed out twice");
            held.Add((block, o));
            if (step % 500 == 0) h.AssertConsistent();
        }
        Assert.That(a.FreePageCount, Is.EqualTo(startFree - owner.Count));
        h.AssertConsistent();
        foreach (var (pa, order) in held.OrderBy(_ => rng.Next())) a.FreePages(pa, order);

        Assert.That(a.FreePageCount, Is.EqualTo(startFree));
        Assert.That(a.Zones.Select(z => z.FreePages), Is.EqualTo(startZones));
        Assert.That(a.FormatBuddyInfo(), Is.EqualTo(startInfo));
        Assert.That(h.Log.Lines, Is.Empty);
        h.AssertConsistent();
        if (releaseEmptyLinkChunks)
        {
            // Fully merged again: at most one 32 KiB link chunk per free block is left (CheckConsistency checks exactly).
            long blocks = a.Zones.Sum(z => Enumerable.Range(0, 11).Sum(o => z.FreeBlocksOfOrder(o)));
            Assert.That(a.LinkChunkBytes, Is.LessThanOrEqualTo(blocks * 32 * 1024));
        }
    }

    [Test]
    public void Allocating_every_page_then_freeing_all_restores_the_boot_layout()
    {
        var h = Layout();
        var a = h.Allocator;
        string startInfo = a.FormatBuddyInfo();
        var pages = new List<ulong>();
        while (a.AllocPages(Gfp.Kernel | Gfp.NoWarn, 0) is ulong pa) pages.Add(pa);
        Assert.That(pages, Has.Count.EqualTo(a.ManagedPageCount));
        Assert.That(pages.Distinct().Count(), Is.EqualTo(pages.Count));
        Assert.That(a.FreePageCount, Is.Zero);
        h.AssertConsistent();
        for (int i = pages.Count - 1; i >= 0; i--) a.FreePages(pages[i], 0);
        Assert.That(a.FormatBuddyInfo(), Is.EqualTo(startInfo));
        h.AssertConsistent();
    }
}
