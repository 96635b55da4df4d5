using HwMemModel.Kernel;

namespace HwMemModel.Kernel.Tests.Vmalloc;

public sealed class VmapAreaTreeTests
{
    private const ulong Page = 4096;

    [Test]
    public void Lowest_fit_lookups_and_order_agree_with_a_linear_scan_under_random_updates()
    {
        var rng = new Random(12345);
        var tree = new VmapAreaTree();
        var reference = new SortedDictionary<ulong, VmapArea>();
        // Ranges on a grid of 64-page slots so they never overlap: each slot holds at most one range.
        for (int step = 0; step < 4000; step++)
        {
            ulong slot = (ulong)rng.Next(0, 512);
            ulong start = slot * 64 * Page + (ulong)rng.Next(0, 8) * Page;
            if (reference.TryGetValue(slot, out var existing))
            {
                if (rng.Next(3) == 0)
                {
                    // Shrink or grow in place, keeping the order (Update).
                    existing.End = existing.Start + (ulong)rng.Next(1, 50) * Page;
                    tree.Update(existing);
                }
                else
                {
                    tree.Remove(existing);
                    reference.Remove(slot);
                }
            }
            else
            {
                var n = new VmapArea(start, start + (ulong)rng.Next(1, 50) * Page);
                tree.Insert(n);
                reference[slot] = n;
            }

            Assert.That(tree.Count, Is.EqualTo(reference.Count));
            ulong size = (ulong)rng.Next(1, 60) * Page;
            ulong align = Page << rng.Next(0, 5);
            var expected = reference.Values.Select(r => (Node: r, At: (r.Start + align - 1) & ~(align - 1)))
                .FirstOrDefault(x => x.At + size <= x.Node.End);
            var got = tree.FindLowestFit(size, align, out ulong at);
            Assert.That(got, Is.SameAs(expected.Node), $"step {step}: lowest fit of {size} aligned {align}");
            if (got is not null) Assert.That(at, Is.EqualTo(expected.At));

            ulong probe = (ulong)rng.Next(0, 512 * 64) * Page + 12;
            Assert.That(tree.FindContaining(probe), Is.SameAs(reference.Values.FirstOrDefault(r => r.Start <= probe && probe < r.End)));
            Assert.That(tree.Below(probe), Is.SameAs(reference.Values.LastOrDefault(r => r.Start < probe)));
            Assert.That(tree.AtOrAbove(probe), Is.SameAs(reference.Values.FirstOrDefault(r => r.Start >= probe)));
        }
        Assert.That(tree.InOrder(), Is.EqualTo(reference.Values));
    }
}
