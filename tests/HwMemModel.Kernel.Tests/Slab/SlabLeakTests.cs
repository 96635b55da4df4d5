namespace HwMemModel.Kernel.Tests.Slab;

/// <summary>
/// "No leak" for the slab allocator: once every object is freed and every created cache destroyed, the page allocator's
/// free count is back where it started after kmem_cache_shrink of the kmalloc caches. Without the shrink, a cache may
/// keep fewer than min_partial empty slabs per node, as SLUB does, and nothing else.
/// </summary>
public sealed class SlabLeakTests
{
    [Test]
    public void Everything_freed_and_shrunk_returns_every_page()
    {
        var k = SlabTestKernel.Boot(new KernelOptions { Nodes = 2 });
        long start = k.Pages.FreePageCount;
        var rng = new Random(7);
        var live = new List<(KmemCache? Cache, ulong P)>();
        var caches = new[]
        {
            k.KmemCacheCreate("leak_plain", 72, 0, SlabFlags.None, null)!,
            k.KmemCacheCreate("leak_debug", 200, 0, SlabFlags.RedZone | SlabFlags.Poison, null)!,
            k.KmemCacheCreate("leak_hw", 30, 0, SlabFlags.HwcacheAlign, _ => { })!,
        };
        for (int round = 0; round < 3000; round++)
        {
            if (live.Count > 0 && rng.Next(3) == 0)
            {
                int i = rng.Next(live.Count);
                var (cache, p) = live[i];
                live.RemoveAt(i);
                if (cache is null) k.Kfree(p);
                else k.KmemCacheFree(cache, p);
                continue;
            }
            int kind = rng.Next(10);
            int node = rng.Next(3) - 1;
            if (kind < 3)
            {
                var cache = caches[kind];
                live.Add((cache, k.KmemCacheAllocNode(cache, Gfp.Kernel, node)));
            }
            else
            {
                ulong size = kind == 9 ? (ulong)rng.Next(8193, 300_000) : (ulong)rng.Next(1, 8193);
                live.Add((null, k.KmallocNode(size, (kind == 8 ? Gfp.Dma : Gfp.None) | Gfp.Kernel, node)));
            }
        }
        Assert.That(live.All(x => x.P != 0));
        foreach (var (cache, p) in live)
        {
            if (cache is null) k.Kfree(p);
            else k.KmemCacheFree(cache, p);
        }
        foreach (var c in caches) k.KmemCacheDestroy(c);
        Assert.That(caches.All(c => c.IsDestroyed));

        foreach (var c in k.SlabCaches)
        {
            Assert.That(c.ActiveObjects, Is.Zero, c.Name);
            Assert.That(c.Slabs, Is.LessThanOrEqualTo(2 * (c.MinPartial - 1)), $"{c.Name}: fewer than min_partial empty slabs on each of 2 nodes");
        }
        Assert.That(k.Pages.FreePageCount, Is.LessThanOrEqualTo(start));
        foreach (var c in k.SlabCaches) Assert.That(k.KmemCacheShrink(c), Is.Zero, c.Name);
        Assert.That(k.SlabCaches.Sum(c => c.Slabs), Is.Zero);
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(start));
        Assert.That(k.Log.Lines.Any(l => l.StartsWith("BUG ", StringComparison.Ordinal)), Is.False, "no false reports");
    }

    [Test]
    public void A_node_keeps_fewer_than_min_partial_empty_slabs()
    {
        var k = SlabTestKernel.Boot();
        var c64 = k.KmallocSlab(64);
        var objs = Enumerable.Range(0, 64 * 10).Select(_ => k.Kmalloc(64, Gfp.Kernel)).ToList();
        Assert.That(c64.Slabs, Is.EqualTo(10));
        foreach (ulong o in objs) k.Kfree(o);
        // __slab_free: an empty slab is discarded once the node has min_partial (5) partial slabs.
        Assert.That(c64.Slabs, Is.EqualTo(c64.MinPartial - 1));
    }

    [Test]
    public void Destroying_an_empty_cache_returns_its_pages_at_once()
    {
        var k = SlabTestKernel.Boot();
        long start = k.Pages.FreePageCount;
        var c = k.KmemCacheCreate("short_lived", 512, 0, SlabFlags.None, null)!;
        var objs = Enumerable.Range(0, 100).Select(_ => k.KmemCacheAlloc(c, Gfp.Kernel)).ToList();
        Assert.That(k.Pages.FreePageCount, Is.LessThan(start));
        foreach (ulong o in objs) k.KmemCacheFree(c, o);
        k.KmemCacheDestroy(c);
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(start));
    }
}
