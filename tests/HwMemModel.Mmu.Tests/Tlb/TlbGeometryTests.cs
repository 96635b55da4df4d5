using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// TLB organisation: set-associative arrays with LRU replacement, split L1 (ITLB/DTLB) and a unified L2, page sizes
/// an array does not hold cached as fractured smaller entries (SDM Vol. 3A §4.10.2.3), counters and flush kinds.
/// </summary>
public sealed class TlbGeometryTests
{
    private const ulong Va = 0x4000_0000;

    // ------------------------------------------------------------------ LRU replacement

    [Test]
    public void Least_recently_used_entry_is_evicted_from_a_full_set()
    {
        // Tiny: DTLB-4K has 8 entries, 2 ways -> 4 sets, set = VPN mod 4; no STLB.
        var rig = new TlbRig(TlbGeometry.Tiny);
        ulong p0 = Va, p1 = Va + 0x4000, p2 = Va + 0x8000;   // VPNs 0x40000, 0x40004, 0x40008: all set 0
        ulong f0 = rig.Map4K(p0);
        rig.Map4K(p1);
        rig.Map4K(p2);
        rig.Read(p0);
        rig.Read(p1);
        rig.Read(p0);                                        // p1 is now the LRU way
        rig.Read(p2);                                        // evicts p1
        ulong n0 = rig.NewFrame4K(), n1 = rig.NewFrame4K();
        rig.Retarget(p0, 1, n0);
        rig.Retarget(p1, 1, n1);
        Assert.That(rig.WalksOf(() => Assert.That(rig.Read(p0), Is.EqualTo(TlbRig.Marker(f0)), "p0 still cached")), Is.Zero);
        Assert.That(rig.WalksOf(() => Assert.That(rig.Read(p1), Is.EqualTo(TlbRig.Marker(n1)), "p1 was evicted: walks and sees the new PTE")), Is.EqualTo(1));
        Assert.That(rig.Mmu.DataTlb.Arrays.Single(a => a.Config.Name == "DTLB-4K").Counters.Evictions, Is.EqualTo(2), "p1 by p2, then p2 by p1");
    }

    [Test]
    public void Pages_of_other_sets_do_not_evict()
    {
        var rig = new TlbRig(TlbGeometry.Tiny);
        ulong f0 = rig.Map4K(Va);
        for (ulong i = 1; i <= 3; i++) rig.Map4K(Va + i * 0x1000);   // sets 1, 2, 3
        rig.Read(Va);
        for (ulong i = 1; i <= 3; i++) rig.Read(Va + i * 0x1000);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f0)));
    }

    [Test]
    public void Custom_two_way_set_evicts_lru()
    {
        var g = new TlbGeometry
        {
            DataL1 = [new TlbArrayConfig("D", 2, 2, PageSize.Size4K)],
            PagingStructureCaches = false,
        };
        var rig = new TlbRig(g);
        ulong a = Va, b = Va + 0x1000, c = Va + 0x2000;
        rig.Map4K(a); rig.Map4K(b); rig.Map4K(c);
        rig.Read(a); rig.Read(b); rig.Read(a); rig.Read(c);  // evicts b
        Assert.That(rig.WalksOf(() => rig.Read(a)), Is.Zero);
        Assert.That(rig.WalksOf(() => rig.Read(c)), Is.Zero);
        Assert.That(rig.WalksOf(() => rig.Read(b)), Is.EqualTo(1));
    }

    [Test]
    public void Second_level_tlb_refills_first_level_without_a_walk()
    {
        var g = new TlbGeometry
        {
            DataL1 = [new TlbArrayConfig("D", 2, 2, PageSize.Size4K)],
            UnifiedL2 = [new TlbArrayConfig("S", 16, 4, PageSize.Size4K, PageSize.Size2M)],
        };
        var rig = new TlbRig(g);
        ulong a = Va, b = Va + 0x1000, c = Va + 0x2000;
        ulong fa = rig.Map4K(a); rig.Map4K(b); rig.Map4K(c);
        rig.Read(a); rig.Read(b); rig.Read(c);               // a leaves the DTLB, stays in the STLB
        rig.Retarget(a, 1, rig.NewFrame4K());
        long dtlbMisses = rig.Mmu.DataTlb.Misses(PageSize.Size4K);
        Assert.That(rig.WalksOf(() => Assert.That(rig.Read(a), Is.EqualTo(TlbRig.Marker(fa)))), Is.Zero);
        Assert.That(rig.Mmu.UnifiedTlb.Hits(PageSize.Size4K), Is.EqualTo(1));
        Assert.That(rig.Mmu.DataTlb.Misses(PageSize.Size4K), Is.EqualTo(dtlbMisses + 1));
        Assert.That(rig.WalksOf(() => rig.Read(a)), Is.Zero);
        Assert.That(rig.Mmu.DataTlb.Hits(PageSize.Size4K), Is.EqualTo(1), "refilled into the DTLB");
    }

    [Test]
    public void Page_size_with_no_array_at_or_below_it_is_not_cached()
    {
        var g = new TlbGeometry
        {
            DataL1 = [new TlbArrayConfig("D2M", 4, 4, PageSize.Size2M)],
        };
        var rig = new TlbRig(g);
        rig.Map4K(Va);
        rig.Map2M(Va + 0x20_0000);
        rig.Read(Va);
        rig.Read(Va + 0x20_0000);
        Assert.That(rig.WalksOf(() => rig.Read(Va)), Is.EqualTo(1), "4 KiB: no array can hold it");
        Assert.That(rig.WalksOf(() => rig.Read(Va + 0x20_0000)), Is.Zero, "2 MiB: cached");
    }

    [Test]
    public void Geometry_none_walks_on_every_access()
    {
        var rig = new TlbRig(TlbGeometry.None);
        rig.Map4K(Va);
        Assert.That(rig.Mmu.InstructionTlb.Arrays, Is.Empty);
        Assert.That(rig.Mmu.DataTlb.Arrays, Is.Empty);
        Assert.That(rig.Mmu.UnifiedTlb.Arrays, Is.Empty);
        Assert.That(rig.WalksOf(() => { rig.Read(Va); rig.Read(Va); rig.Read(Va, AccessKind.Execute); }), Is.EqualTo(3));
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "nothing cached: RAM is always used");
    }

    // ------------------------------------------------------------------ 1 GiB pages in the ITLB

    private const ulong Big = 0x80_0000_0000;   // PML4E 1; 1 GiB page -> Frame1G

    [Test]
    public void One_gib_page_is_fractured_into_2m_entries_in_the_itlb()
    {
        var rig = new TlbRig();
        rig.Map1G(Big);
        var itlb4K = rig.Mmu.InstructionTlb.Arrays.Single(a => a.Config.Name == "ITLB-4K");
        var itlb2M = rig.Mmu.InstructionTlb.Arrays.Single(a => a.Config.Name == "ITLB-2M");
        rig.Read(Big + 0x40_1230, AccessKind.Execute);
        Assert.That(itlb2M.ValidEntries, Is.EqualTo(1));
        Assert.That(itlb4K.ValidEntries, Is.Zero);
        Assert.That(rig.WalksOf(() => rig.Read(Big + 0x20_0008, AccessKind.Execute)), Is.Zero, "another 2 MiB piece comes from the STLB's 1 GiB entry");
        Assert.That(itlb2M.ValidEntries, Is.EqualTo(2));
        var f = rig.Mmu.Translate(Big + 0x20_0020, AccessKind.Execute, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False);
        Assert.That(t.PageSize, Is.EqualTo(PageSize.Size1G), "the translation's page size, not the fractured entry's");
        Assert.That(t.PhysicalAddress, Is.EqualTo(TlbRig.Frame1G + 0x20_0020));
    }

    [Test]
    public void One_gib_page_is_held_whole_in_the_dtlb()
    {
        var rig = new TlbRig();
        rig.Map1G(Big);
        rig.Read(Big + 0x1234_5000);
        Assert.That(rig.Mmu.DataTlb.Arrays.Single(a => a.Config.Name == "DTLB-1G").ValidEntries, Is.EqualTo(1));
        Assert.That(rig.WalksOf(() => rig.Read(Big + 0x3000_0000)), Is.Zero);
    }

    [Test]
    public void Invlpg_of_any_address_in_1g_page_drops_its_fractured_itlb_entries()
    {
        var rig = new TlbRig();
        rig.Map1G(Big);
        rig.Poke(TlbRig.Frame1G + 0x40_0000, 0x11);
        rig.Poke(TlbRig.Frame1G + 0x20_0000, 0x22);
        rig.Read(Big + 0x40_0000, AccessKind.Execute);
        rig.Read(Big + 0x20_0000, AccessKind.Execute);
        rig.Read(Big, AccessKind.Read);
        rig.SetEntry(Big, 3, rig.Entry(Big, 3) & ~1UL);     // not present; no flush
        Assert.That(rig.Read(Big + 0x40_0000, AccessKind.Execute), Is.EqualTo(0x11UL), "cached");
        rig.Mmu.Invlpg(Big + 0x3FFF_F000);                   // last 4 KiB of the 1 GiB page
        Assert.That(rig.TlbEntries, Is.Zero, "ITLB pieces, DTLB and STLB entries are all gone");
        foreach (ulong off in new ulong[] { 0x40_0000, 0x20_0000 })
        {
            var f = rig.Mmu.Translate(Big + off, AccessKind.Execute, Privilege.Supervisor, out _);
            Assert.That(f.Kind, Is.EqualTo(FaultKind.PageFault), $"fetch at +0x{off:x}");
        }
    }

    [Test]
    public void Fractured_1g_translation_uses_the_right_frame_offset()
    {
        var rig = new TlbRig(TlbGeometry.Tiny);       // no STLB: the ITLB holds only 2 MiB pieces
        rig.Map1G(Big);
        rig.Poke(TlbRig.Frame1G + 0x2345_6780, 0xABCD);
        rig.Poke(TlbRig.Frame1G + 0x0345_6780, 0x1234);
        Assert.That(rig.Read(Big + 0x2345_6780, AccessKind.Execute), Is.EqualTo(0xABCDUL));
        Assert.That(rig.Read(Big + 0x0345_6780, AccessKind.Execute), Is.EqualTo(0x1234UL));
        Assert.That(rig.Read(Big + 0x2345_6780, AccessKind.Execute), Is.EqualTo(0xABCDUL));
    }

    // ------------------------------------------------------------------ counters

    [Test]
    public void Counters_count_lookups_hits_and_misses_per_level_and_page_size()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map2M(Va + 0x20_0000);
        rig.Map1G(Big);
        for (int i = 0; i < 2; i++)
        {
            rig.Read(Va);
            rig.Read(Va + 0x20_0000);
            rig.Read(Big);
        }
        rig.Read(Va, AccessKind.Execute);
        var d = rig.Mmu.DataTlb;
        var s = rig.Mmu.UnifiedTlb;
        var it = rig.Mmu.InstructionTlb;
        Assert.Multiple(() =>
        {
            Assert.That(d.Lookups, Is.EqualTo(6));
            foreach (var size in new[] { PageSize.Size4K, PageSize.Size2M, PageSize.Size1G })
            {
                Assert.That(d.Misses(size), Is.EqualTo(1), $"DTLB misses {size}");
                Assert.That(d.Hits(size), Is.EqualTo(1), $"DTLB hits {size}");
                Assert.That(s.Misses(size), Is.EqualTo(1), $"STLB misses {size}");
            }
            Assert.That(d.TotalHits, Is.EqualTo(3));
            Assert.That(d.TotalMisses, Is.EqualTo(3));
            Assert.That(it.Lookups, Is.EqualTo(1), "the fetch looks in the ITLB only");
            Assert.That(it.Misses(PageSize.Size4K), Is.EqualTo(1));
            Assert.That(s.Lookups, Is.EqualTo(4), "three DTLB misses and one ITLB miss reach the STLB");
            Assert.That(s.Hits(PageSize.Size4K), Is.EqualTo(1), "the fetch of Va hits the STLB entry made by the data read");
            Assert.That(rig.Mmu.Counters.Walks, Is.EqualTo(3));
        });
    }

    [Test]
    public void Array_counters_count_hits_in_the_array_that_hit()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map1G(Big);
        rig.Read(Va);
        rig.Read(Va);
        rig.Read(Big, AccessKind.Execute);
        rig.Read(Big + 0x100, AccessKind.Execute);
        var d4K = rig.Mmu.DataTlb.Arrays.Single(a => a.Config.Name == "DTLB-4K");
        var itlb2M = rig.Mmu.InstructionTlb.Arrays.Single(a => a.Config.Name == "ITLB-2M");
        Assert.Multiple(() =>
        {
            Assert.That(d4K.Counters.Hits(PageSize.Size4K), Is.EqualTo(1));
            Assert.That(d4K.Counters.TotalHits, Is.EqualTo(1));
            Assert.That(rig.Mmu.DataTlb.Arrays.Sum(a => a.Counters.TotalHits), Is.EqualTo(1), "a hit lands in exactly one array");
            Assert.That(itlb2M.Counters.Hits(PageSize.Size1G), Is.EqualTo(1), "a fractured entry's hit counts under its translation's size");
            Assert.That(rig.Mmu.InstructionTlb.Hits(PageSize.Size1G), Is.EqualTo(1));
        });
    }

    [Test]
    public void Array_counters_count_invalidations()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Read(Va);
        rig.Mmu.Invlpg(Va);
        Assert.That(rig.Mmu.DataTlb.Arrays.Single(a => a.Config.Name == "DTLB-4K").Counters.Invalidations, Is.EqualTo(1));
        Assert.That(rig.Mmu.UnifiedTlb.Arrays.Single(a => a.Config.Name == "STLB-4K/2M").Counters.Invalidations, Is.EqualTo(1));
    }

    [Test]
    public void Flushes_are_counted_by_kind()
    {
        var rig = new TlbRig(pcide: true);
        var kinds = Enum.GetValues<FlushKind>();
        var before = kinds.ToDictionary(k => k, k => rig.Mmu.Counters.Flushes(k));
        rig.Mmu.Invlpg(Va);
        rig.Mmu.Invpcid(0, 1, Va);
        rig.Mmu.Invpcid(1, 1);
        rig.Mmu.Invpcid(2, 0);
        rig.Mmu.Invpcid(3, 0);
        rig.LoadCr3(1);
        rig.LoadCr3(2, noFlush: true);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value ^ Cr4.PGE);
        rig.Mmu.Read(0x7000_0000, 8, Privilege.Supervisor, out _);   // unmapped: #PF
        rig.Mmu.FlushAll();
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.PCIDE);              // PCIDE 1 -> 0: a second CR4 flush
        rig.Cpu.SetCr0(rig.Cpu.Cr0Value & ~Cr0.PG);
        var expected = new Dictionary<FlushKind, long>
        {
            [FlushKind.Invlpg] = 1, [FlushKind.InvpcidAddress] = 1, [FlushKind.InvpcidSingleContext] = 1,
            [FlushKind.InvpcidAllIncludingGlobal] = 1, [FlushKind.InvpcidAllExceptGlobal] = 1, [FlushKind.Cr3Load] = 1,
            [FlushKind.Cr3LoadNoFlush] = 1, [FlushKind.Cr4Change] = 2, [FlushKind.Cr0PagingChange] = 1,
            [FlushKind.PageFault] = 1, [FlushKind.Host] = 1,
        };
        Assert.That(kinds.ToDictionary(k => k, k => rig.Mmu.Counters.Flushes(k) - before[k]), Is.EqualTo(expected));
    }

    [Test]
    public void Host_flush_all_drops_every_entry_including_globals()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        rig.Map4K(Va, TlbRig.RW | PteFlags.Global);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Mmu.FlushAll();
        Assert.That(rig.TlbEntries + rig.PscEntries, Is.Zero);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
    }
}
