namespace HwMemModel.Kernel.Tests.Slab;

public sealed class SlabInfoTests
{
    [Test]
    public void Slabinfo_has_the_version_2_1_header_and_cache_show_columns()
    {
        var k = SlabTestKernel.Boot();
        var foo = k.KmemCacheCreate("foo", 24, 0, SlabFlags.None, null)!;
        for (int i = 0; i < 3; i++) k.KmemCacheAlloc(foo, Gfp.Kernel);
        var lines = k.FormatSlabInfo().Split('\n');
        Assert.That(lines[0], Is.EqualTo("slabinfo - version: 2.1"));
        Assert.That(lines[1], Is.EqualTo("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
            + " : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"));
        // "%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu", newest cache first.
        Assert.That(lines[2], Is.EqualTo("foo                    3    170     24  170    1 : tunables    0    0    0 : slabdata      1      1      0"));
        Assert.That(lines, Does.Contain("kmalloc-8k             0      0   8192    4    8 : tunables    0    0    0 : slabdata      0      0      0"));
        Assert.That(lines[^1], Is.Empty, "every line ends in a newline");
        // create_kmalloc_caches (6.6+) makes kmalloc-96 and kmalloc-192 first, so they are listed last.
        Assert.That(lines[^3].Split(' ')[0], Is.EqualTo("kmalloc-192"));
        Assert.That(lines[^2].Split(' ')[0], Is.EqualTo("kmalloc-96"));
        Assert.That(lines.Count(l => l.StartsWith("dma-kmalloc-", StringComparison.Ordinal)), Is.EqualTo(13));
        Assert.That(lines.Skip(2).SkipLast(1), Has.All.Match(@"^\S+\s+\d+ +\d+ +\d+ +\d+ +\d+ : tunables +0 +0 +0 : slabdata +\d+ +\d+ +0$"));
    }

    [Test]
    public void Long_names_are_not_truncated()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("a_name_longer_than_17", 256, 0, SlabFlags.None, null)!;
        k.KmemCacheAlloc(c, Gfp.Kernel);
        Assert.That(k.FormatSlabInfo().Split('\n')[2],
            Is.EqualTo("a_name_longer_than_17      1     16    256   16    1 : tunables    0    0    0 : slabdata      1      1      0"));
    }

    [Test]
    public void Counts_follow_allocations()
    {
        var k = SlabTestKernel.Boot();
        var objs = Enumerable.Range(0, 70).Select(_ => k.Kmalloc(64, Gfp.Kernel)).ToList();
        string Line() => k.FormatSlabInfo().Split('\n').Single(l => l.StartsWith("kmalloc-64 ", StringComparison.Ordinal));
        Assert.That(Line(), Is.EqualTo("kmalloc-64            70    128     64   64    1 : tunables    0    0    0 : slabdata      2      2      0"));
        foreach (ulong o in objs) k.Kfree(o);
        Assert.That(Line(), Does.StartWith("kmalloc-64             0    128 "), "empty slabs stay (min_partial)");
        k.KmemCacheShrink(k.KmallocSlab(64));
        Assert.That(Line(), Is.EqualTo("kmalloc-64             0      0     64   64    1 : tunables    0    0    0 : slabdata      0      0      0"));
    }
}
