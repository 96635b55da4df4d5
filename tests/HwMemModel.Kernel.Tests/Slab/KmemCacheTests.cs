namespace HwMemModel.Kernel.Tests.Slab;

public sealed class KmemCacheTests
{
    [Test]
    public void Layout_follows_slub_calculate_sizes()
    {
        var k = SlabTestKernel.Boot();
        // No flags: size rounded to a word, free pointer in the middle of the object.
        var plain = k.KmemCacheCreate("plain", 20, 0, SlabFlags.None, null)!;
        Assert.That((plain.Size, plain.Align, plain.InUse, plain.FreePointerOffset, plain.RedLeftPad), Is.EqualTo((24u, 8u, 24u, 8u, 0u)));
        Assert.That((plain.ObjectsPerSlab, plain.Order), Is.EqualTo((170, 0)), "4096 / 24, waste 16 <= 4096/16");
        // SLAB_HWCACHE_ALIGN: a 64-byte line, halved while the object fits in half of it.
        Assert.That(k.KmemCacheCreate("hw20", 20, 0, SlabFlags.HwcacheAlign, null)!.Size, Is.EqualTo(32u));
        Assert.That(k.KmemCacheCreate("hw100", 100, 0, SlabFlags.HwcacheAlign, null)!.Size, Is.EqualTo(128u));
        Assert.That(k.KmemCacheCreate("al", 40, 256, SlabFlags.None, null)!.Size, Is.EqualTo(256u));
        // SLAB_RED_ZONE | SLAB_POISON on 64 bytes: +8 right red zone (size == object_size) = inuse 72, free pointer
        // outside (poison) at 72 = 80, one more word = 88, left pad 8 = 96.
        var dbg = k.KmemCacheCreate("dbg", 64, 0, SlabFlags.RedZone | SlabFlags.Poison, null)!;
        Assert.That((dbg.InUse, dbg.FreePointerOffset, dbg.RedLeftPad, dbg.Size), Is.EqualTo((72u, 72u, 8u, 96u)));
        Assert.That(dbg.Ksize, Is.EqualTo(64u), "debug caches report the object size");
        // SLAB_RED_ZONE on 60 bytes: 64 (the 4-byte gap is the right red zone), pointer at 24, +8, left pad 8 = 80.
        var rz = k.KmemCacheCreate("rz60", 60, 0, SlabFlags.RedZone, null)!;
        Assert.That((rz.InUse, rz.FreePointerOffset, rz.Size), Is.EqualTo((64u, 24u, 80u)));
    }

    [Test]
    public void Objects_come_from_the_cache_slabs_and_are_distinct()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("objs", 24, 0, SlabFlags.None, null)!;
        var objs = Enumerable.Range(0, 400).Select(_ => k.KmemCacheAlloc(c, Gfp.Kernel)).ToList();
        Assert.That(objs, Is.Unique);
        Assert.That(objs.All(o => k.SlabCacheOf(o) == c));
        Assert.That((c.ActiveObjects, c.TotalObjects, c.Slabs), Is.EqualTo((400L, 510L, 3L)));
        foreach (ulong o in objs) k.KmemCacheFree(c, o);
        Assert.That(c.ActiveObjects, Is.Zero);
    }

    [Test]
    public void Constructor_runs_on_every_object_of_a_new_slab()
    {
        var k = SlabTestKernel.Boot();
        var seen = new List<ulong>();
        KmemCache? c = null;
        c = k.KmemCacheCreate("ctor", 32, 0, SlabFlags.None, obj =>
        {
            seen.Add(obj);
            k.Memory.Write(obj, 8, 0xC0FFEE);
        })!;
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        Assert.That(seen, Has.Count.EqualTo(c.ObjectsPerSlab));
        Assert.That(seen, Does.Contain(p));
        Assert.That(k.Memory.Read(p, 8), Is.EqualTo(0xC0FFEEUL));
        k.KmemCacheFree(c, p);
        k.KmemCacheAlloc(c, Gfp.Kernel);
        Assert.That(seen, Has.Count.EqualTo(c.ObjectsPerSlab), "not on reuse");
        Assert.That(k.ReadKernel(k.KmemCacheZalloc(c, Gfp.Kernel), 32), Is.All.EqualTo((byte)0), "zalloc still zeroes");
    }

    [Test]
    public void Destroy_with_live_objects_is_refused_with_linux_messages()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("leaky", 100, 0, SlabFlags.None, null)!;
        ulong a = k.KmemCacheAlloc(c, Gfp.Kernel);
        ulong b = k.KmemCacheAlloc(c, Gfp.Kernel);
        k.KmemCacheFree(c, a);
        int mark = k.Log.Lines.Count;
        k.KmemCacheDestroy(c);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain("BUG leaky (Not tainted): Objects remaining in leaky on __kmem_cache_shutdown()"));
        Assert.That(lines, Does.Contain($"Object 0x{b:x16} @offset={b - a}"), "b follows a in the same slab");
        Assert.That(lines, Has.No.Member($"Object 0x{a:x16} @offset=0"));
        Assert.That(lines, Does.Contain("kmem_cache_destroy leaky: Slab cache still has objects when called from Destroy_with_live_objects_is_refused_with_linux_messages"));
        Assert.That(lines, Does.Contain("WARNING: CPU: 0 PID: 1 at mm/slab_common.c:kmem_cache_destroy"));
        Assert.That(c.IsDestroyed, Is.False);
        Assert.That(k.SlabCaches, Does.Contain(c));
        Assert.That(k.KmemCacheAlloc(c, Gfp.Kernel), Is.Not.Zero, "the cache is still usable");

        k.KmemCacheFree(c, b);
        k.KmemCacheFree(c, a);
        k.KmemCacheDestroy(c);
        Assert.That(c.IsDestroyed, Is.True);
        Assert.That(k.SlabCaches, Has.No.Member(c));
        Assert.That(k.FormatSlabInfo(), Does.Not.Contain("leaky"));
        Assert.That(() => k.KmemCacheAlloc(c, Gfp.Kernel), Throws.TypeOf<ObjectDisposedException>());
        k.KmemCacheDestroy(null);
    }

    [Test]
    public void Kmalloc_caches_cannot_be_destroyed()
    {
        var k = SlabTestKernel.Boot();
        Assert.That(() => k.KmemCacheDestroy(k.KmallocSlab(64)), Throws.InvalidOperationException);
    }

    [Test]
    public void Bad_create_arguments_fail_with_linux_messages_and_panic_with_slab_panic()
    {
        var k = SlabTestKernel.Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.KmemCacheCreate("zero", 0, 0, SlabFlags.None, null), Is.Null);
        Assert.That(k.KmemCacheCreate("huge", (4u << 20) + 1, 0, SlabFlags.None, null), Is.Null);
        Assert.That(k.KmemCacheCreate("odd", 64, 24, SlabFlags.None, null), Is.Null);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain("kmem_cache_create(zero) integrity check failed"));
        Assert.That(lines, Does.Contain("kmem_cache_create_usercopy(zero) failed with error -22"));
        Assert.That(lines, Does.Contain("kmem_cache_create(huge) integrity check failed"));
        Assert.That(lines, Does.Contain("kmem_cache_create_usercopy(odd) failed with error -22"));
        var stop = Assert.Throws<KernelStopException>(() => k.KmemCacheCreate("must", 0, 0, SlabFlags.Panic, null))!;
        Assert.That(stop.Report, Is.EqualTo("Kernel panic - not syncing: kmem_cache_create_usercopy: Failed to create slab 'must'. Error -22"));
    }

    [Test]
    public void Cache_of_4_mib_objects_uses_max_order_slabs()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("big", 4u << 20, 0, SlabFlags.None, null)!;
        Assert.That((c.Order, c.ObjectsPerSlab), Is.EqualTo((10, 1)));
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        Assert.That(p, Is.Not.Zero);
        k.KmemCacheFree(c, p);
        k.KmemCacheDestroy(c);
    }

    [Test]
    public void Freeing_to_the_wrong_cache_warns_and_frees_to_the_right_one()
    {
        var k = SlabTestKernel.Boot();
        var a = k.KmemCacheCreate("cache_a", 64, 0, SlabFlags.None, null)!;
        var b = k.KmemCacheCreate("cache_b", 64, 0, SlabFlags.None, null)!;
        ulong p = k.KmemCacheAlloc(b, Gfp.Kernel);
        int mark = k.Log.Lines.Count;
        k.KmemCacheFree(a, p);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain("cache_from_obj: Wrong slab cache. cache_a but object is from cache_b"));
        Assert.That(lines, Does.Contain("WARNING: CPU: 0 PID: 1 at mm/slab.h:cache_from_obj"));
        Assert.That(b.ActiveObjects, Is.Zero);
        Assert.That(a.ActiveObjects, Is.Zero);
    }

    [Test]
    public void Kmem_cache_free_of_a_non_slab_address_warns_once()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("c", 64, 0, SlabFlags.None, null)!;
        ulong large = k.Kmalloc(64 * 1024, Gfp.Kernel);
        int mark = k.Log.Lines.Count;
        k.KmemCacheFree(c, large);
        k.KmemCacheFree(c, large);
        var lines = k.LogSince(mark);
        Assert.That(lines.Count(l => l == "virt_to_cache: Object is not a Slab page!"), Is.EqualTo(1));
        Assert.That(k.Ksize(large), Is.EqualTo(64UL * 1024), "still allocated");
    }

    [Test]
    public void Cache_dma_slabs_come_from_zone_dma()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("dma_bufs", 512, 0, SlabFlags.CacheDma, null)!;
        Assert.That(k.VirtToPhys(k.KmemCacheAlloc(c, Gfp.Kernel)), Is.LessThan(16 * SlabTestKernel.MiB));
        var c32 = k.KmemCacheCreate("dma32_bufs", 512, 0, SlabFlags.CacheDma32, null)!;
        Assert.That(k.VirtToPhys(k.KmemCacheAlloc(c32, Gfp.Kernel)), Is.LessThan(4UL << 30));
    }
}
