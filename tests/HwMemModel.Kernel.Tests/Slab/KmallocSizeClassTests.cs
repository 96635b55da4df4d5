namespace HwMemModel.Kernel.Tests.Slab;

public sealed class KmallocSizeClassTests
{
    // include/linux/slab.h kmalloc_index / mm/slab_common.c kmalloc_size_index: sizes up to 192 by 8-byte steps
    // (65-96 → kmalloc-96, 129-192 → kmalloc-192), above that the next power of two.
    [TestCase(1UL, "kmalloc-8")]
    [TestCase(8UL, "kmalloc-8")]
    [TestCase(9UL, "kmalloc-16")]
    [TestCase(16UL, "kmalloc-16")]
    [TestCase(17UL, "kmalloc-32")]
    [TestCase(24UL, "kmalloc-32")]
    [TestCase(32UL, "kmalloc-32")]
    [TestCase(33UL, "kmalloc-64")]
    [TestCase(64UL, "kmalloc-64")]
    [TestCase(65UL, "kmalloc-96")]
    [TestCase(96UL, "kmalloc-96")]
    [TestCase(97UL, "kmalloc-128")]
    [TestCase(128UL, "kmalloc-128")]
    [TestCase(129UL, "kmalloc-192")]
    [TestCase(192UL, "kmalloc-192")]
    [TestCase(193UL, "kmalloc-256")]
    [TestCase(256UL, "kmalloc-256")]
    [TestCase(257UL, "kmalloc-512")]
    [TestCase(512UL, "kmalloc-512")]
    [TestCase(513UL, "kmalloc-1k")]
    [TestCase(1024UL, "kmalloc-1k")]
    [TestCase(1025UL, "kmalloc-2k")]
    [TestCase(2048UL, "kmalloc-2k")]
    [TestCase(2049UL, "kmalloc-4k")]
    [TestCase(4096UL, "kmalloc-4k")]
    [TestCase(4097UL, "kmalloc-8k")]
    [TestCase(8192UL, "kmalloc-8k")]
    public void Size_maps_to_the_kmalloc_index_class(ulong size, string expected)
    {
        var k = SlabTestKernel.Boot();
        Assert.That(k.KmallocSlab(size).Name, Is.EqualTo(expected));
        ulong p = k.Kmalloc(size, Gfp.Kernel);
        Assert.That(k.SlabCacheOf(p)!.Name, Is.EqualTo(expected));
        ulong classSize = expected switch
        {
            "kmalloc-1k" => 1024, "kmalloc-2k" => 2048, "kmalloc-4k" => 4096, "kmalloc-8k" => 8192,
            _ => ulong.Parse(expected["kmalloc-".Length..], System.Globalization.CultureInfo.InvariantCulture),
        };
        Assert.That(k.Ksize(p), Is.EqualTo(classSize), "ksize is the class size");
    }

    [Test]
    public void Gfp_dma_uses_dma_kmalloc_caches_with_zone_dma_pages()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(100, Gfp.Kernel | Gfp.Dma);
        Assert.That(k.SlabCacheOf(p)!.Name, Is.EqualTo("dma-kmalloc-128"));
        Assert.That(k.VirtToPhys(p), Is.LessThan(16 * SlabTestKernel.MiB), "ZONE_DMA is below 16 MiB");
        ulong large = k.Kmalloc(64 * 1024, Gfp.Kernel | Gfp.Dma);
        Assert.That(k.VirtToPhys(large) + 64 * 1024, Is.LessThanOrEqualTo(16 * SlabTestKernel.MiB));
    }

    [Test]
    public void Gfp_dma32_has_no_cache_and_is_fixed_up_with_linux_message()
    {
        var k = SlabTestKernel.Boot();
        int mark = k.Log.Lines.Count;
        ulong p = k.Kmalloc(64, Gfp.Kernel | Gfp.Dma32);
        Assert.That(k.SlabCacheOf(p)!.Name, Is.EqualTo("kmalloc-64"));
        // kmalloc_fix_flags: GFP_SLAB_BUG_MASK dropped, GFP_KERNEL is 0xcc0.
        Assert.That(k.LogSince(mark), Does.Contain("Unexpected gfp: 0x4 (GFP_DMA32). Fixing up to gfp: 0xcc0 (GFP_KERNEL). Fix your code!"));
    }

    // calculate_order for one CPU: min_objects = 4 * (fls(1) + 1) = 8, slub_max_order 3, at most 1/16 waste.
    [TestCase(8UL, 512, 0)]
    [TestCase(16UL, 256, 0)]
    [TestCase(32UL, 128, 0)]
    [TestCase(64UL, 64, 0)]
    [TestCase(96UL, 42, 0)]
    [TestCase(128UL, 32, 0)]
    [TestCase(192UL, 21, 0)]
    [TestCase(256UL, 16, 0)]
    [TestCase(512UL, 8, 0)]
    [TestCase(1024UL, 8, 1)]
    [TestCase(2048UL, 8, 2)]
    [TestCase(4096UL, 8, 3)]
    [TestCase(8192UL, 4, 3)]
    public void Kmalloc_cache_slab_geometry_follows_slub_calculate_order(ulong size, int objectsPerSlab, int order)
    {
        var s = SlabTestKernel.Boot().KmallocSlab(size);
        Assert.That((s.Size, s.ObjectsPerSlab, s.Order), Is.EqualTo(((uint)size, objectsPerSlab, order)));
    }

    [Test]
    public void More_cpus_raise_min_objects_and_the_slab_order()
    {
        // 4 CPUs: min_objects = 4 * (fls(4) + 1) = 16, so kmalloc-2k needs 32 KiB: order 3, 16 objects.
        var s = SlabTestKernel.Boot(new KernelOptions { Cpus = 4 }).KmallocSlab(2048);
        Assert.That((s.ObjectsPerSlab, s.Order), Is.EqualTo((16, 3)));
    }

    [Test]
    public void Power_of_two_classes_are_naturally_aligned()
    {
        var k = SlabTestKernel.Boot();
        foreach (ulong size in new ulong[] { 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192 })
            for (int i = 0; i < 3; i++)
                Assert.That(k.Kmalloc(size, Gfp.Kernel) % size, Is.Zero, $"kmalloc({size})");
        Assert.That(k.Kmalloc(96, Gfp.Kernel) % 8, Is.Zero);
    }
}
