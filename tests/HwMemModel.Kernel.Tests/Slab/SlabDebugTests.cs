namespace HwMemModel.Kernel.Tests.Slab;

public sealed class SlabDebugTests
{
    private const string Rule = "=============================================================================";

    [Test]
    public void Double_free_is_reported_and_ignored()
    {
        var k = SlabTestKernel.Boot();
        var c64 = k.KmallocSlab(64);
        ulong p = k.Kmalloc(64, Gfp.Kernel);
        ulong other = k.Kmalloc(64, Gfp.Kernel);
        k.Kfree(p);
        int mark = k.Log.Lines.Count;
        k.Kfree(p);
        var lines = k.LogSince(mark);
        Assert.That(lines[0], Is.EqualTo(Rule));
        Assert.That(lines[1], Is.EqualTo("BUG kmalloc-64 (Not tainted): Object already free"));
        Assert.That(lines, Does.Contain($"Object 0x{p:x16} @offset=0 fp=0x{p + 128:x16}"), "fp: the next free object, the third");
        Assert.That(lines.Any(l => l.StartsWith("Slab 0x", StringComparison.Ordinal) && l.Contains("objects=64 used=1 ", StringComparison.Ordinal)));
        Assert.That(lines.Any(l => l.StartsWith($"Object   {p:x16}: ", StringComparison.Ordinal)), "hex dump of the object");
        Assert.That(lines, Does.Contain(" Double_free_is_reported_and_ignored"), "the call trace names the caller");
        Assert.That(lines[^1], Is.EqualTo($"FIX kmalloc-64: Object at 0x{p:x16} not freed"));
        Assert.That(c64.ActiveObjects, Is.EqualTo(1), "the model's counts are intact");
        ulong a = k.Kmalloc(64, Gfp.Kernel), b = k.Kmalloc(64, Gfp.Kernel);
        Assert.That(new[] { a, b, other }, Is.Unique, "the free list was not corrupted");

        mark = k.Log.Lines.Count;
        k.Kfree(a);
        k.Kfree(a);
        Assert.That(k.LogSince(mark), Does.Contain("BUG kmalloc-64 (Tainted: G    B             ): Object already free"));
    }

    [Test]
    public void Free_of_a_pointer_inside_an_object_is_an_invalid_object_pointer()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(64, Gfp.Kernel);
        int mark = k.Log.Lines.Count;
        k.Kfree(p + 8);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain($"BUG kmalloc-64 (Not tainted): Invalid object pointer 0x{p + 8:x16}"));
        Assert.That(lines[^1], Is.EqualTo($"FIX kmalloc-64: Object at 0x{p + 8:x16} not freed"));
        Assert.That(k.KmallocSlab(64).ActiveObjects, Is.EqualTo(1));
        k.Kfree(p);
        Assert.That(k.KmallocSlab(64).ActiveObjects, Is.Zero);
    }

    [Test]
    public void Free_of_a_page_that_holds_no_kmalloc_memory_is_reported_and_ignored()
    {
        var k = SlabTestKernel.Boot();
        ulong pa = k.Pages.AllocPages(Gfp.Kernel, 0)!.Value;
        long free = k.Pages.FreePageCount;
        int mark = k.Log.Lines.Count;
        k.Kfree(k.PhysToVirt(pa) + 0x40);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain("WARNING: CPU: 0 PID: 1 at mm/slub.c:free_large_kmalloc"));
        Assert.That(lines, Does.Contain($"object pointer: 0x{k.PhysToVirt(pa) + 0x40:x16}"));
        Assert.That(lines, Does.Contain("page dumped because: Not a kmalloc allocation"));
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free), "nothing freed");
    }

    [Test]
    public void Double_free_of_a_large_kmalloc_is_not_a_kmalloc_allocation()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(20000, Gfp.Kernel);
        k.Kfree(p);
        long free = k.Pages.FreePageCount;
        int mark = k.Log.Lines.Count;
        k.Kfree(p);
        Assert.That(k.LogSince(mark), Does.Contain("page dumped because: Not a kmalloc allocation"));
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free));
    }

    [Test]
    public void Free_inside_a_large_kmalloc_is_refused()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(20000, Gfp.Kernel);
        int mark = k.Log.Lines.Count;
        k.Kfree(p + 4096);
        Assert.That(k.LogSince(mark)[0], Is.EqualTo($"kfree: 0x{p + 4096:x16} points 4096 bytes into the 20000-byte kmalloc at 0x{p:x16}, not at its start; not freed"));
        Assert.That(k.Ksize(p), Is.EqualTo(32768UL));
    }

    [Test]
    public void Free_of_an_address_outside_the_direct_map_is_reported()
    {
        var k = SlabTestKernel.Boot();
        ulong va = k.Layout.VmallocStart + 0x5000;
        int mark = k.Log.Lines.Count;
        k.Kfree(va);
        Assert.That(k.Ksize(va), Is.Zero);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain($"virt_to_phys used for non-linear address: 0x{va:x16} (Free_of_an_address_outside_the_direct_map_is_reported)"));
        Assert.That(lines, Does.Contain("WARNING: CPU: 0 PID: 1 at arch/x86/mm/physaddr.c:__phys_addr"));
    }

    [Test]
    public void Allocated_poisoned_object_reads_poison_and_free_red_zones_change_value()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("pz", 64, 0, SlabFlags.Poison | SlabFlags.RedZone, null)!;
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        // SLUB poisons on allocation too: 0x6b ... 0xa5, red zones active 0xcc, left pad 8 bytes, right 8 bytes.
        var obj = k.ReadKernel(p, 64);
        Assert.That(obj[..63], Is.All.EqualTo((byte)0x6b));
        Assert.That(obj[63], Is.EqualTo((byte)0xa5));
        Assert.That(k.ReadKernel(p - 8, 8), Is.All.EqualTo((byte)0xcc));
        Assert.That(k.ReadKernel(p + 64, 8), Is.All.EqualTo((byte)0xcc));
        Assert.That(k.ReadKernel(p + 72, 8), Is.All.EqualTo((byte)0x5a), "free-pointer word and padding: POISON_INUSE");
        k.KmemCacheFree(c, p);
        Assert.That(k.ReadKernel(p - 8, 8), Is.All.EqualTo((byte)0xbb));
        Assert.That(k.ReadKernel(p + 64, 8), Is.All.EqualTo((byte)0xbb));
        Assert.That(k.KmemCacheValidate(c), Is.Zero);
    }

    [Test]
    public void Use_after_free_is_caught_by_poison_when_the_object_is_next_allocated()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("uaf", 64, 0, SlabFlags.Poison, null)!;
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);   // first object of a fresh slab: offset 0
        k.KmemCacheFree(c, p);
        k.Memory.Write(p + 10, 2, 0x4242);            // the write after free, through the MMU
        int mark = k.Log.Lines.Count;
        ulong q = k.KmemCacheAlloc(c, Gfp.Kernel);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain("BUG uaf (Not tainted): Poison overwritten"));
        Assert.That(lines, Does.Contain($"0x{p + 10:x16}-0x{p + 11:x16} @offset=10. First byte 0x42 instead of 0x6b"));
        Assert.That(lines.Any(l => l.StartsWith($"Object   {p:x16}: 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 42 42 6b 6b 6b 6b  kkkkkkkkkkBBkkkk", StringComparison.Ordinal)));
        Assert.That(lines, Does.Contain($"FIX uaf: Restoring Poison 0x{p + 10:x16}-0x{p + 11:x16}=0x6b"));
        Assert.That(lines, Does.Contain("FIX uaf: Marking all objects used"));
        Assert.That(q, Is.Not.Zero.And.Not.EqualTo(p), "allocated from a new slab instead");
        Assert.That(k.ReadKernel(p + 10, 2), Is.All.EqualTo((byte)0x6b), "restored");
        Assert.That(c.Slabs, Is.EqualTo(2));
    }

    [Test]
    public void Use_after_free_is_caught_by_validate()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("uaf2", 128, 0, SlabFlags.Poison, null)!;
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        ulong keep = k.KmemCacheAlloc(c, Gfp.Kernel);
        k.KmemCacheFree(c, p);
        k.Memory.Write(p + 127, 1, 0);   // POISON_END clobbered
        int mark = k.Log.Lines.Count;
        Assert.That(k.KmemCacheValidate(c), Is.EqualTo(1));
        Assert.That(k.LogSince(mark), Does.Contain("BUG uaf2 (Not tainted): End Poison overwritten"));
        Assert.That(k.KmemCacheValidate(c), Is.Zero, "restored");
        k.KmemCacheFree(c, keep);
    }

    [Test]
    public void Red_zone_overwrite_beyond_the_object_is_reported_at_free_and_the_object_kept()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("rz", 64, 0, SlabFlags.RedZone, null)!;
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        k.Memory.Write(p + 64, 1, 0x00);   // one byte past the 64-byte object
        int mark = k.Log.Lines.Count;
        k.KmemCacheFree(c, p);
        var lines = k.LogSince(mark);
        // Slot layout: 8-byte left red zone, so the object sits 8 bytes into the slab.
        Assert.That(lines, Does.Contain("BUG rz (Not tainted): Right Redzone overwritten"));
        Assert.That(lines, Does.Contain($"0x{p + 64:x16}-0x{p + 64:x16} @offset=72. First byte 0x0 instead of 0xcc"));
        Assert.That(lines, Does.Contain($"Object 0x{p:x16} @offset=8 fp=0x0000000000000000"));
        Assert.That(lines.Any(l => l.StartsWith($"Redzone  {p + 64:x16}: 00 cc cc cc cc cc cc cc", StringComparison.Ordinal)));
        Assert.That(lines, Does.Contain($"FIX rz: Restoring Right Redzone 0x{p + 64:x16}-0x{p + 64:x16}=0xcc"));
        Assert.That(lines[^1], Is.EqualTo($"FIX rz: Object at 0x{p:x16} not freed"));
        Assert.That(c.ActiveObjects, Is.EqualTo(1), "Linux keeps a corrupted object allocated");
        k.KmemCacheFree(c, p);
        Assert.That(c.ActiveObjects, Is.Zero, "restored red zone: the next free succeeds");
    }

    [Test]
    public void Left_red_zone_underrun_is_reported()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("lrz", 48, 0, SlabFlags.RedZone, null)!;
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        k.Memory.Write(p - 1, 1, 0x11);
        int mark = k.Log.Lines.Count;
        k.Kfree(p);   // kfree works on any slab object
        Assert.That(k.LogSince(mark), Does.Contain("BUG lrz (Not tainted): Left Redzone overwritten"));
        Assert.That(k.LogSince(mark), Does.Contain($"0x{p - 1:x16}-0x{p - 1:x16} @offset=7. First byte 0x11 instead of 0xcc"));
    }

    [Test]
    public void Guest_writes_over_a_slab_cannot_corrupt_the_allocator()
    {
        var k = SlabTestKernel.Boot();
        var c64 = k.KmallocSlab(64);
        var objs = Enumerable.Range(0, 10).Select(_ => k.Kmalloc(64, Gfp.Kernel)).ToList();
        foreach (ulong o in objs.Skip(5)) k.Kfree(o);
        // Scribble over the whole slab page, where SLUB would keep its free pointers.
        ulong slabPage = objs[0] & ~0xFFFUL;
        k.Memory.Fill(slabPage, 0xFF, 4096);
        int mark = k.Log.Lines.Count;
        var more = Enumerable.Range(0, 64).Select(_ => k.Kmalloc(64, Gfp.Kernel)).ToList();
        Assert.That(more.Concat(objs.Take(5)), Is.Unique);
        Assert.That(more.All(o => o % 64 == 0 && k.SlabCacheOf(o) == c64));
        Assert.That(k.LogSince(mark), Is.Empty, "no debug flags, nothing to report");
        Assert.That(c64.ActiveObjects, Is.EqualTo(69));
    }

    [Test]
    public void Slab_padding_overwrite_is_reported_for_poisoned_caches()
    {
        var k = SlabTestKernel.Boot();
        var c = k.KmemCacheCreate("pad", 1000, 0, SlabFlags.Poison, null)!;   // 1008-byte slots in order-1 slabs: 128 bytes of slab padding
        Assert.That((c.Size, c.Order), Is.EqualTo((1008u, 1)));
        ulong p = k.KmemCacheAlloc(c, Gfp.Kernel);
        ulong slabEnd = p + (4096UL << c.Order);
        ulong padStart = slabEnd - (4096UL << c.Order) % c.Size;
        k.Memory.Write(padStart + 3, 1, 0x77);
        int mark = k.Log.Lines.Count;
        k.KmemCacheAlloc(c, Gfp.Kernel);
        Assert.That(k.LogSince(mark), Does.Contain($"BUG pad (Not tainted): Padding overwritten. 0x{padStart + 3:x16}-0x{padStart + 3:x16} @offset={padStart + 3 - p}"));
    }
}
