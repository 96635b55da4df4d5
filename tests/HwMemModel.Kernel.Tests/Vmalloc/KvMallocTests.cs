using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.Vmalloc;

public sealed class KvMallocTests
{
    private static bool InDirectMap(Kernel k, ulong va) => va >= k.Layout.PageOffset && va < k.Layout.PageOffset + k.Ram.Max(r => r.End);

    [Test]
    public void Small_and_moderate_sizes_come_from_kmalloc()
    {
        var k = Boot();
        ulong small = k.KvMalloc(100, Gfp.Kernel);
        ulong large = k.KvMalloc(64 * KiB, Gfp.Kernel);
        Assert.That(InDirectMap(k, small), Is.True);
        Assert.That(InDirectMap(k, large), Is.True);
        Assert.That(k.VmapAreaCount, Is.Zero);
    }

    [Test]
    public void Sizes_kmalloc_cannot_serve_fall_back_to_vmalloc_without_warnings()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        ulong p = k.KvMalloc(8 * MiB, Gfp.Kernel, "big_table");
        Assert.That(k.IsVmallocAddr(p), Is.True, "above KMALLOC_MAX_SIZE");
        Assert.That(k.FindVmArea(p)!.Pages, Has.Count.EqualTo(2048));
        Assert.That(k.FindVmArea(p)!.Caller, Is.EqualTo("big_table"));
        Assert.That(LogSince(k, mark), Is.Empty, "kmalloc was asked with __GFP_NOWARN");
    }

    [Test]
    public void A_failed_large_kmalloc_falls_back_to_vmalloc()
    {
        var k = Boot();
        k.Pages.FailPageAlloc.Configure(probability: 100, interval: 1, times: 1);
        int mark = k.Log.Lines.Count;
        ulong p = k.KvMalloc(64 * KiB, Gfp.Kernel);
        Assert.That(k.IsVmallocAddr(p), Is.True);
        Assert.That(LogSince(k, mark), Is.Empty, "the injected failure is silent under __GFP_NOWARN");
    }

    [Test]
    public void A_failed_kmalloc_of_at_most_a_page_does_not_fall_back()
    {
        var k = Boot();
        k.Failslab.Configure(probability: 100, interval: 1, times: 1);
        Assert.That(k.KvMalloc(PageAllocator.PageSize, Gfp.Kernel), Is.Zero);
        Assert.That(k.VmapAreaCount, Is.Zero);
    }

    [Test]
    public void Non_blocking_masks_do_not_fall_back_to_vmalloc()
    {
        var k = Boot();
        Assert.That(k.KvMalloc(8 * MiB, Gfp.AtomicAlloc), Is.Zero);
        Assert.That(k.VmapAreaCount, Is.Zero);
    }

    [Test]
    public void Sizes_above_int_max_are_refused_with_a_warning_once()
    {
        var k = Boot(ram: 3 * GiB);
        int mark = k.Log.Lines.Count;
        Assert.That(k.KvMalloc((ulong)int.MaxValue + 1, Gfp.Kernel), Is.Zero);
        Assert.That(k.KvMalloc((ulong)int.MaxValue + 1, Gfp.Kernel | Gfp.NoWarn), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { "WARNING: CPU: 0 PID: 1 at mm/util.c:__kvmalloc_node_noprof" }));
    }

    [Test]
    public void Kvzalloc_memory_is_zero_on_both_paths()
    {
        var k = Boot();
        // Dirty some memory first so zeroing matters.
        ulong dirty = k.Vmalloc(8 * MiB);
        k.Memory.Fill(dirty, 0xEE, 8 * MiB);
        k.Vfree(dirty);
        k.VmUnmapAliases();
        foreach (ulong size in new ulong[] { 200, 64 * KiB, 8 * MiB })
        {
            ulong p = k.KvZalloc(size, Gfp.Kernel);
            var bytes = new byte[size];
            k.Memory.ReadBytes(p, bytes);
            Assert.That(bytes.All(b => b == 0), Is.True, $"{size} bytes");
        }
    }

    [Test]
    public void Kvfree_frees_memory_from_kmalloc_vmalloc_and_kvmalloc()
    {
        var k = Boot();
        k.Kfree(k.Kmalloc(64, Gfp.Kernel)); // the slab allocator is up and kmalloc-64 has a slab
        var kmalloc64 = k.KmallocSlab(64);
        long active = kmalloc64.ActiveObjects, slabs = kmalloc64.Slabs;
        var start = Snapshot(k);
        ulong a = k.Kmalloc(64, Gfp.Kernel);
        ulong b = k.Kmalloc(32 * KiB, Gfp.Kernel);
        ulong c = k.Vmalloc(32 * KiB);
        ulong d = k.KvMalloc(8 * MiB, Gfp.Kernel);
        ulong e = k.KvMalloc(64 * KiB, Gfp.Kernel);
        Assert.That(kmalloc64.ActiveObjects, Is.EqualTo(active + 1));
        int mark = k.Log.Lines.Count;
        foreach (var p in new[] { a, b, c, d, e }) k.KvFree(p);
        k.KvFree(0);
        k.KvFree(Kernel.ZeroSizePtr);
        Assert.That(LogSince(k, mark), Is.Empty);
        Assert.That(kmalloc64.ActiveObjects, Is.EqualTo(active));
        Assert.That(k.VmapAreaCount, Is.Zero);
        k.VmUnmapAliases();
        long keptSlabPages = (kmalloc64.Slabs - slabs) << kmalloc64.Order;
        Assert.That(Leaked(k, start), Is.EqualTo(keptSlabPages));
    }

    [Test]
    public void Kvrealloc_of_a_vmalloc_area_stays_in_place_while_the_pages_suffice()
    {
        var k = Boot();
        ulong p = k.KvMalloc(8 * MiB, Gfp.Kernel);
        k.Memory.Write(p, 8, 0x77);
        Assert.That(k.KvRealloc(p, 8 * MiB - 100, Gfp.Kernel), Is.EqualTo(p));
        ulong grown = k.KvRealloc(p, 9 * MiB, Gfp.Kernel);
        Assert.That(grown, Is.Not.EqualTo(p));
        Assert.That(k.Memory.Read(grown, 8), Is.EqualTo(0x77UL), "the contents moved");
        Assert.That(k.FindVmArea(p), Is.Null, "the old area is freed");
        Assert.That(k.KvRealloc(grown, 0, Gfp.Kernel), Is.Zero);
        Assert.That(k.FindVmArea(grown), Is.Null);
    }

    [Test]
    public void Kvrealloc_shrinking_with_gfp_zero_clears_the_tail()
    {
        var k = Boot();
        ulong p = k.Vmalloc(2 * Page);
        k.Memory.Fill(p, 0xAB, 2 * Page);
        Assert.That(k.KvRealloc(p, Page + 10, Gfp.Kernel | Gfp.Zero), Is.EqualTo(p));
        Assert.That(k.Memory.Read(p + Page + 9, 1), Is.EqualTo(0xABUL));
        Assert.That(k.Memory.Read(p + Page + 10, 1), Is.Zero);
        Assert.That(k.Memory.Read(p + 2 * Page - 1, 1), Is.Zero);
    }

    [Test]
    public void Kvrealloc_of_kmalloc_memory_moves_to_vmalloc_when_kmalloc_cannot_grow_it()
    {
        var k = Boot();
        ulong p = k.KvMalloc(1000, Gfp.Kernel);
        k.Memory.Write(p + 992, 8, 0x1234_5678);
        ulong q = k.KvRealloc(p, 8 * MiB, Gfp.Kernel);
        Assert.That(k.IsVmallocAddr(q), Is.True);
        Assert.That(k.Memory.Read(q + 992, 8), Is.EqualTo(0x1234_5678UL));
        ulong r = k.KvRealloc(0, 100, Gfp.Kernel);
        Assert.That(InDirectMap(k, r), Is.True, "kvrealloc(NULL, n) is kvmalloc(n)");
    }

    [Test]
    public void Kvrealloc_of_an_unknown_vmalloc_address_warns()
    {
        var k = Boot();
        ulong bogus = k.Layout.VmallocStart + 64 * Page;
        int mark = k.Log.Lines.Count;
        Assert.That(k.KvRealloc(bogus, 100, Gfp.Kernel), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            $"Trying to vrealloc() nonexistent vm area ({bogus:x16})",
            "WARNING: CPU: 0 PID: 1 at mm/vmalloc.c:vrealloc_noprof",
        }));
    }

    [Test]
    public void Kvmalloc_array_refuses_overflowing_products()
    {
        var k = Boot();
        Assert.That(k.KvMallocArray(1UL << 33, 1UL << 33, Gfp.Kernel), Is.Zero);
        ulong p = k.KvCalloc(3, 5 * MiB, Gfp.Kernel);
        Assert.That(k.IsVmallocAddr(p), Is.True);
        Assert.That(k.FindVmArea(p)!.Pages, Has.Count.EqualTo(3 * 5 * 256));
    }
}
