using HwMemModel.Kernel;
using HwMemModel.Mmu;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.IoRemap;

public sealed class MemtypeTests
{
    private const ulong A = 0xFED0_0000;

    [Test]
    public void The_existing_type_wins_where_linux_allows_it()
    {
        var k = Boot();
        ulong wc = k.IoRemapWc(A, Page);
        ulong uc = k.IoRemap(A, Page); // UC- requested, WC reserved: allowed, mapped WC
        Assert.That(uc, Is.Not.Zero);
        k.CurrentCpu.Mmu.Translate(uc, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(t.MemoryType, Is.EqualTo(MemoryType.WriteCombining));
        Assert.That(k.PageTables.Lookup(uc)!.Value.Entry & 0x98, Is.EqualTo(0x08UL));
        Assert.That(k.MemtypeReservations, Is.EqualTo(new[]
        {
            new MemtypeReservation(A, A + Page, CacheMode.WriteCombining),
            new MemtypeReservation(A, A + Page, CacheMode.WriteCombining),
        }));
        Assert.That(wc, Is.Not.EqualTo(uc));
    }

    [TestCase(CacheMode.WriteBack, CacheMode.UncachedMinus, 0, 2)]
    [TestCase(CacheMode.WriteBack, CacheMode.WriteCombining, 0, 1)]
    [TestCase(CacheMode.WriteBack, CacheMode.WriteThrough, 0, 4)]
    [TestCase(CacheMode.WriteCombining, CacheMode.WriteThrough, 1, 4)]
    public void Downgrades_linux_forbids_are_refused_with_ioremap_error(CacheMode existing, CacheMode requested, int got, int req)
    {
        var k = Boot();
        Assert.That(Map(k, existing), Is.Not.Zero);
        int mark = k.Log.Lines.Count;
        Assert.That(Map(k, requested), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { $"ioremap error for 0x{A:x}-0x{A + Page:x}, requested 0x{req:x}, got 0x{got:x}" }));
        Assert.That(k.MemtypeReservations, Is.EqualTo(new[] { new MemtypeReservation(A, A + Page, existing) }), "the refused reservation is dropped again");
        Assert.That(k.VmapAreaCount, Is.EqualTo(1));
    }

    private static ulong Map(Kernel k, CacheMode mode) => mode switch
    {
        CacheMode.WriteBack => k.IoRemapCache(A, Page),
        CacheMode.WriteCombining => k.IoRemapWc(A, Page),
        CacheMode.UncachedMinus => k.IoRemap(A, Page),
        CacheMode.Uncached => k.IoRemapUc(A, Page),
        _ => k.IoRemapWt(A, Page),
    };

    [Test]
    public void Overlapping_reservations_that_disagree_are_a_conflict()
    {
        var k = Boot();
        Assert.That(k.IoRemapWc(A, Page), Is.Not.Zero);
        Assert.That(k.IoRemap(A + Page, Page), Is.Not.Zero);
        int mark = k.Log.Lines.Count;
        Assert.That(k.IoRemapCache(A, 2 * Page, "probe"), Is.Zero);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            "x86/PAT: probe:1 conflicting memory types fed00000-fed02000 write-combining<->uncached-minus",
            "x86/PAT: memtype_reserve failed [mem 0xfed00000-0xfed01fff], track write-back, req write-back",
            "ioremap memtype_reserve failed -16",
        }));
        Assert.That(k.MemtypeReservations, Has.Count.EqualTo(2));
    }

    [Test]
    public void Memtype_free_needs_an_exact_match_or_a_matching_end()
    {
        var k = Boot();
        Assert.That(k.MemtypeReserve(A, A + 4 * Page, CacheMode.WriteCombining, out var got), Is.Zero);
        Assert.That(got, Is.EqualTo(CacheMode.WriteCombining));
        int mark = k.Log.Lines.Count;
        Assert.That(k.MemtypeFree(A, A + Page, "drv"), Is.EqualTo(-22));
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { "x86/PAT: drv:1 freeing invalid memtype [mem 0xfed00000-0xfed00fff]" }));
        Assert.That(k.MemtypeFree(A + 3 * Page, A + 4 * Page), Is.Zero, "end match: the entry shrinks (mremap)");
        Assert.That(k.MemtypeReservations, Is.EqualTo(new[] { new MemtypeReservation(A, A + 3 * Page, CacheMode.WriteCombining) }));
        Assert.That(k.MemtypeFree(A, A + 3 * Page), Is.Zero);
        Assert.That(k.MemtypeReservations, Is.Empty);
    }

    [Test]
    public void Memtype_reserve_of_an_empty_range_warns()
    {
        var k = Boot();
        int mark = k.Log.Lines.Count;
        Assert.That(k.MemtypeReserve(A, A, CacheMode.UncachedMinus, out _), Is.EqualTo(-22));
        Assert.That(LogSince(k, mark), Is.EqualTo(new[]
        {
            "memtype_reserve failed: [mem 0xfed00000-0xfecfffff], req uncached-minus",
            "WARNING: CPU: 0 PID: 1 at arch/x86/mm/pat/memtype.c:memtype_reserve",
        }));
    }

    [Test]
    public void Ram_after_a_hole_makes_a_range_mixed_and_invalid_as_pat_pagerange_is_ram_counts_it()
    {
        var bus = new HwMemModel.Bus.PhysicalBus(40, HwMemModel.Bus.UnmappedPolicy.Zero);
        bus.AddRam("low", 0, 0xA0000);
        bus.AddRam("ram", MiB, 255 * MiB);
        bus.AddRam("more", 512 * MiB, 64 * MiB);
        var k = Kernel.Boot(bus);
        Assert.That(k.MemtypeReserve(511 * MiB, 513 * MiB, CacheMode.UncachedMinus, out _), Is.EqualTo(-22), "a hole, then RAM");
        Assert.That(k.MemtypeReserve(255 * MiB, 257 * MiB, CacheMode.UncachedMinus, out var got), Is.Zero, "RAM, then a hole: counted as RAM");
        Assert.That(got, Is.EqualTo(CacheMode.UncachedMinus));
        Assert.That(k.MemtypeReservations, Is.Empty, "RAM types live in page flags");
    }

    [Test]
    public void The_pat_memtype_list_has_linux_format_in_start_order()
    {
        var k = Boot();
        k.IoRemapWc(A + 0x10_0000, 2 * Page);
        k.IoRemap(A, Page);
        k.IoRemapUc(0x8000_0000, 2 * MiB);
        Assert.That(k.FormatPatMemtypeList(), Is.EqualTo(
            "PAT memtype list:\n"
            + "PAT: [mem 0x0000000080000000-0x0000000080200000] uncached\n"
            + "PAT: [mem 0x00000000fed00000-0x00000000fed01000] uncached-minus\n"
            + "PAT: [mem 0x00000000fee00000-0x00000000fee02000] write-combining\n"));
    }
}
