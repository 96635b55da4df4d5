using HwMemModel.Mmu;

namespace HwMemModel.Kernel.Tests.Slab;

public sealed class KmallocTests
{
    private const ulong MiB = SlabTestKernel.MiB;

    [Test]
    public void Kmalloc_memory_is_in_the_direct_map()
    {
        var k = SlabTestKernel.Boot();
        foreach (ulong size in new ulong[] { 1, 100, 4096, 8192, 8193, 1 << 20 })
        {
            ulong p = k.Kmalloc(size, Gfp.Kernel);
            Assert.That(p, Is.GreaterThanOrEqualTo(k.Layout.PageOffset), $"kmalloc({size})");
            ulong pa = k.VirtToPhys(p);
            Assert.That(pa, Is.EqualTo(p - k.Layout.PageOffset));
            Assert.That(k.PhysToVirt(pa), Is.EqualTo(p));
            Assert.That(k.CurrentCpu.Mmu.Translate(p, AccessKind.Write, Privilege.Supervisor, out var t).IsFault, Is.False);
            Assert.That(t.PhysicalAddress, Is.EqualTo(pa), "the MMU agrees with __pa");
        }
    }

    [Test]
    public void Large_kmalloc_pages_are_physically_consecutive_in_the_page_tables()
    {
        var k = SlabTestKernel.Boot();
        const ulong size = 200 * 1024;   // order 6: 64 pages
        ulong p = k.Kmalloc(size, Gfp.Kernel);
        Assert.That(p, Is.Not.Zero);
        ulong firstPfn = k.VmallocToPfn(p)!.Value;   // lookup_address in the kernel page tables in RAM
        for (ulong off = 0; off < size; off += 4096)
        {
            Assert.That(k.VmallocToPfn(p + off), Is.EqualTo(firstPfn + off / 4096), $"page at +0x{off:x}");
            k.CurrentCpu.Mmu.Translate(p + off, AccessKind.Read, Privilege.Supervisor, out var t);
            Assert.That(t.PhysicalAddress, Is.EqualTo((firstPfn << 12) + off));
        }
        Assert.That(k.Ksize(p), Is.EqualTo(256UL * 1024), "2^get_order(size) pages");
    }

    [Test]
    public void Slab_objects_are_physically_contiguous()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(8192, Gfp.Kernel);   // a kmalloc-8k object spans two pages of an order-3 slab
        k.CurrentCpu.Mmu.Translate(p, AccessKind.Read, Privilege.Supervisor, out var a);
        k.CurrentCpu.Mmu.Translate(p + 4096, AccessKind.Read, Privilege.Supervisor, out var b);
        Assert.That(b.PhysicalAddress, Is.EqualTo(a.PhysicalAddress + 4096));
    }

    [Test]
    public void Kzalloc_memory_reads_zero_through_the_mmu_even_when_reused()
    {
        var k = SlabTestKernel.Boot();
        foreach (ulong size in new ulong[] { 40, 256, 3000, 64 * 1024 })
        {
            ulong dirty = k.Kmalloc(size, Gfp.Kernel);
            k.Memory.Fill(dirty, 0xAB, size);
            k.Kfree(dirty);
            ulong p = k.Kzalloc(size, Gfp.Kernel);
            Assert.That(p, Is.EqualTo(dirty), "the freed object (or block) is handed out again");
            Assert.That(k.ReadKernel(p, (int)size), Is.All.EqualTo((byte)0), $"kzalloc({size})");
        }
    }

    [Test]
    public void Kzalloc_node_memory_comes_from_that_node()
    {
        // Two nodes over 256 MiB: node 1 is the upper half (the boot splits RAM in equal 2 MiB-rounded parts).
        var k = SlabTestKernel.Boot(new KernelOptions { Nodes = 2 });
        foreach (ulong size in new ulong[] { 64, 1000, 8192, 100 * 1024 })
        {
            ulong p1 = k.KzallocNode(size, Gfp.Kernel, 1);
            ulong p0 = k.KzallocNode(size, Gfp.Kernel, 0);
            Assert.That(k.VirtToPhys(p1), Is.GreaterThanOrEqualTo(128 * MiB), $"node 1, size {size}");
            Assert.That(k.VirtToPhys(p0) + size, Is.LessThanOrEqualTo(128 * MiB), $"node 0, size {size}");
            Assert.That(k.Pages.NodeOf(k.VirtToPhys(p1)), Is.EqualTo(1));
            Assert.That(k.ReadKernel(p1, (int)size), Is.All.EqualTo((byte)0));
        }
        var cache = k.KmemCacheCreate("per_node", 48, 0, SlabFlags.None, null)!;
        Assert.That(k.VirtToPhys(k.KmemCacheAllocNode(cache, Gfp.Kernel, 1)), Is.GreaterThanOrEqualTo(128 * MiB));
        Assert.That(() => k.KmallocNode(8, Gfp.Kernel, 2), Throws.TypeOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void Kmalloc_zero_returns_zero_size_ptr_and_kfree_of_null_or_zero_size_ptr_does_nothing()
    {
        var k = SlabTestKernel.Boot();
        Assert.That(k.Kmalloc(0, Gfp.Kernel), Is.EqualTo(16UL));
        Assert.That(Kernel.ZeroSizePtr, Is.EqualTo(16UL));
        long free = k.Pages.FreePageCount;
        int mark = k.Log.Lines.Count;
        k.Kfree(0);
        k.Kfree(16);
        k.KfreeSensitive(0);
        Assert.That(k.LogSince(mark), Is.Empty);
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(free));
        Assert.That(k.Ksize(16), Is.Zero);
        Assert.That(k.Ksize(0), Is.Zero);
    }

    [Test]
    public void Krealloc_stays_in_place_within_ksize_and_moves_with_the_contents_beyond()
    {
        var k = SlabTestKernel.Boot();
        var c128 = k.KmallocSlab(128);
        ulong p = k.Kmalloc(100, Gfp.Kernel);   // kmalloc-128
        Assert.That(k.Krealloc(p, 128, Gfp.Kernel), Is.EqualTo(p), "128 <= ksize");
        Assert.That(k.Krealloc(p, 10, Gfp.Kernel), Is.EqualTo(p), "shrinking stays");
        byte[] pattern = Enumerable.Range(0, 128).Select(i => (byte)(i * 7 + 1)).ToArray();
        k.Memory.WriteBytes(p, pattern);
        ulong q = k.Krealloc(p, 129, Gfp.Kernel);
        Assert.That(q, Is.Not.EqualTo(p));
        Assert.That(k.SlabCacheOf(q)!.Name, Is.EqualTo("kmalloc-192"));
        Assert.That(k.ReadKernel(q, 128), Is.EqualTo(pattern), "ksize bytes copied");
        Assert.That(c128.ActiveObjects, Is.Zero, "the old object was freed");

        Assert.That(k.Krealloc(q, 0, Gfp.Kernel), Is.EqualTo(Kernel.ZeroSizePtr), "krealloc(p, 0) frees");
        Assert.That(k.KmallocSlab(192).ActiveObjects, Is.Zero);

        ulong r = k.Krealloc(0, 50, Gfp.Kernel);
        Assert.That(k.SlabCacheOf(r)!.Name, Is.EqualTo("kmalloc-64"), "krealloc(NULL, n) is kmalloc(n)");
        ulong big = k.Krealloc(r, 20000, Gfp.Kernel);
        Assert.That(k.Ksize(big), Is.EqualTo(32768UL), "to a large kmalloc");
        Assert.That(k.Krealloc(Kernel.ZeroSizePtr, 8, Gfp.Kernel), Is.Not.Zero.And.Not.EqualTo(Kernel.ZeroSizePtr));
    }

    [Test]
    public void Failed_krealloc_returns_null_and_keeps_the_object()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(32, Gfp.Kernel);
        k.Memory.Write(p, 8, 0x1122334455667788);
        k.Failslab.Configure(100, times: 1);
        Assert.That(k.Krealloc(p, 1000, Gfp.Kernel), Is.Zero);
        Assert.That(k.Memory.Read(p, 8), Is.EqualTo(0x1122334455667788UL));
        Assert.That(k.KmallocSlab(32).ActiveObjects, Is.EqualTo(1));
    }

    [Test]
    public void Kcalloc_and_kmalloc_array_return_null_on_overflow()
    {
        var k = SlabTestKernel.Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.Kcalloc(ulong.MaxValue / 2 + 1, 2, Gfp.Kernel), Is.Zero);
        Assert.That(k.KmallocArray(1UL << 33, 1UL << 31, Gfp.Kernel), Is.Zero);
        Assert.That(k.LogSince(mark), Is.Empty, "check_mul_overflow fails silently");
        ulong p = k.Kcalloc(10, 10, Gfp.Kernel);
        Assert.That(k.SlabCacheOf(p)!.Name, Is.EqualTo("kmalloc-128"));
        Assert.That(k.ReadKernel(p, 100), Is.All.EqualTo((byte)0));
        Assert.That(k.KmallocArray(0, 5, Gfp.Kernel), Is.EqualTo(Kernel.ZeroSizePtr));
    }

    [Test]
    public void Kmalloc_beyond_kmalloc_max_size_returns_null_with_a_warning()
    {
        var k = SlabTestKernel.Boot();
        ulong max = k.Kmalloc(4 * MiB, Gfp.Kernel);
        Assert.That(max, Is.Not.Zero, "KMALLOC_MAX_SIZE itself is fine");
        Assert.That(k.Ksize(max), Is.EqualTo(4 * MiB));
        int mark = k.Log.Lines.Count;
        Assert.That(k.Kmalloc(4 * MiB + 1, Gfp.Kernel | Gfp.NoWarn), Is.Zero);
        Assert.That(k.LogSince(mark), Is.Empty, "__GFP_NOWARN");
        Assert.That(k.Kmalloc(4 * MiB + 1, Gfp.Kernel), Is.Zero);
        Assert.That(k.Kmalloc(ulong.MaxValue, Gfp.Kernel), Is.Zero);
        var lines = k.LogSince(mark);
        // __alloc_pages: WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp).
        Assert.That(lines.Count(l => l.StartsWith("WARNING: CPU: 0 PID: 1 at ", StringComparison.Ordinal)), Is.EqualTo(1), string.Join('\n', lines));
        Assert.That(lines.Single(l => l.StartsWith("WARNING:", StringComparison.Ordinal)), Does.Contain("__alloc_pages"));
    }

    [Test]
    public void Kmalloc_returns_null_when_pages_run_out_and_nofail_does_not()
    {
        var k = SlabTestKernel.Boot();
        k.Pages.FailPageAlloc.Configure(100, times: -1);
        int mark = k.Log.Lines.Count;
        Assert.That(k.Kmalloc(64, Gfp.Kernel), Is.Zero);
        var lines = k.LogSince(mark);
        Assert.That(lines, Does.Contain("SLUB: Unable to allocate memory on node -1, gfp=0xcc0(GFP_KERNEL)"));
        Assert.That(lines, Does.Contain("  cache: kmalloc-64, object size: 64, buffer size: 64, default order: 0, min order: 0"));
        Assert.That(lines, Does.Contain("  node 0: slabs: 0, objs: 0, free: 0"));
        Assert.That(k.Kmalloc(64, Gfp.Kernel | Gfp.NoWarn), Is.Zero);
        Assert.That(k.Kmalloc(64 * 1024, Gfp.Kernel | Gfp.NoWarn), Is.Zero, "large kmalloc too");

        ulong p = k.Kmalloc(64, Gfp.Kernel | Gfp.NoFail);
        Assert.That(p, Is.Not.Zero, "fail_page_alloc never fails __GFP_NOFAIL");
        Assert.That(k.Kmalloc(64 * 1024, Gfp.Kernel | Gfp.NoFail), Is.Not.Zero);
    }

    [Test]
    public void Exhausted_memory_gives_null_and_nofail_never_returns_null()
    {
        var k = SlabTestKernel.Boot(ram: 64 * MiB);
        long start = k.Pages.FreePageCount;
        var held = new List<ulong>();
        for (ulong size = 4 * MiB; size >= 8; size /= 2)
            for (ulong p; (p = k.Kmalloc(size, Gfp.Kernel | Gfp.NoWarn)) != 0;) held.Add(p);
        Assert.That(k.Kmalloc(8, Gfp.Kernel | Gfp.NoWarn), Is.Zero, "truly exhausted for GFP_KERNEL");
        Assert.That(k.Kmalloc(4096, Gfp.Kernel | Gfp.NoWarn), Is.Zero);

        // __GFP_NOFAIL may dip below the watermarks; when even that is gone the machine stops. It never returns 0.
        ulong got;
        try
        {
            while ((got = k.Kmalloc(4096, Gfp.Kernel | Gfp.NoFail)) != 0) held.Add(got);
            Assert.Fail("kmalloc(__GFP_NOFAIL) returned NULL");
        }
        catch (KernelStopException e)
        {
            Assert.That(e.Report, Does.Contain("Out of memory"));
        }

        foreach (ulong p in held) k.Kfree(p);
        foreach (var c in k.SlabCaches) k.KmemCacheShrink(c);
        Assert.That(k.Pages.FreePageCount, Is.EqualTo(start), "everything back");
    }

    [Test]
    public void Failslab_makes_the_third_kmalloc_fail()
    {
        var k = SlabTestKernel.Boot();
        k.Failslab.Configure(100, interval: 3, times: 1);
        int mark = k.Log.Lines.Count;
        ulong a = k.Kmalloc(32, Gfp.Kernel), b = k.Kmalloc(32, Gfp.Kernel), c = k.Kmalloc(32, Gfp.Kernel), d = k.Kmalloc(32, Gfp.Kernel);
        Assert.That(new[] { a, b, c, d }.Select(x => x != 0), Is.EqualTo(new[] { true, true, false, true }));
        Assert.That(k.LogSince(mark), Is.EqualTo(new[]
        {
            "FAULT_INJECTION: forcing a failure.",
            "name failslab, interval 3, probability 100, space 0, times 1",
        }));
        Assert.That(k.Failslab.Injected, Is.EqualTo(1));
    }

    [Test]
    public void Failslab_spares_nofail_and_large_kmalloc()
    {
        var k = SlabTestKernel.Boot();
        k.Failslab.Configure(100, times: -1);
        Assert.That(k.Kmalloc(32, Gfp.Kernel | Gfp.NoWarn), Is.Zero);
        var cache = k.KmemCacheCreate("fs", 100, 0, SlabFlags.None, null)!;
        Assert.That(k.KmemCacheAlloc(cache, Gfp.Kernel | Gfp.NoWarn), Is.Zero, "kmem_cache_alloc is a slab allocation too");
        Assert.That(k.Kmalloc(32, Gfp.Kernel | Gfp.NoFail), Is.Not.Zero);
        Assert.That(k.Kmalloc(16 * 1024, Gfp.Kernel), Is.Not.Zero, "large kmalloc bypasses failslab");
        Assert.That(k.Failslab.Injected, Is.EqualTo(2));
    }

    [Test]
    public void Kfree_sensitive_zeroes_ksize_bytes_before_freeing()
    {
        var k = SlabTestKernel.Boot();
        ulong p = k.Kmalloc(50, Gfp.Kernel);   // kmalloc-64
        k.Memory.Fill(p, 0xEE, 64);
        k.KfreeSensitive(p);
        Assert.That(k.ReadKernel(p, 64), Is.All.EqualTo((byte)0));
        Assert.That(k.KmallocSlab(64).ActiveObjects, Is.Zero);
    }
}
