using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// Paging-structure caches (SDM Vol. 3A §4.10.3): a walk may start from a cached PML5E, PML4E, PDPTE or PDE and then
/// reads only the entries below it. Observed through Counters.WalkReads (paging-structure entries read by walks).
/// </summary>
public sealed class PagingStructureCacheTests
{
    private const ulong Va = 0x4000_0000;            // PML4E 0, PDPTE 1, PDE 0, PTE 0

    [Test]
    public void First_walk_reads_one_entry_per_level()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va)), Is.EqualTo(4));
    }

    [Test]
    public void Second_page_in_same_2m_region_reads_only_the_pte()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map4K(Va + 0x5000);
        rig.Read(Va);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x5000)), Is.EqualTo(1), "PDE-cache hit");
    }

    [Test]
    public void Page_in_another_2m_region_of_same_1g_region_reads_pde_and_pte()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map4K(Va + 0x40_0000);
        rig.Read(Va);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x40_0000)), Is.EqualTo(2), "PDPTE-cache hit");
    }

    [Test]
    public void Page_in_another_1g_region_of_same_512g_region_reads_three_entries()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map4K(0x8000_0000);
        rig.Read(Va);
        Assert.That(rig.WalkReadsOf(() => rig.Read(0x8000_0000)), Is.EqualTo(3), "PML4E-cache hit");
    }

    [Test]
    public void Page_in_another_512g_region_reads_four_entries()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map4K(0x80_4000_0000);
        rig.Read(Va);
        Assert.That(rig.WalkReadsOf(() => rig.Read(0x80_4000_0000)), Is.EqualTo(4));
    }

    [Test]
    public void Large_pages_walk_from_the_cached_upper_levels()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map2M(Va + 0x20_0000);
        rig.Map1G(0xC000_0000);
        rig.Read(Va);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x20_0000)), Is.EqualTo(1), "2 MiB: PDPTE cached, read the PDE leaf");
        Assert.That(rig.WalkReadsOf(() => rig.Read(0xC000_0000)), Is.EqualTo(1), "1 GiB: PML4E cached, read the PDPTE leaf");
    }

    [Test]
    public void Without_paging_structure_caches_every_walk_reads_four_entries()
    {
        var rig = new TlbRig(TlbGeometry.None);
        rig.Map4K(Va);
        rig.Map4K(Va + 0x1000);
        Assert.That(rig.Mmu.PagingStructureCaches, Is.Empty);
        for (int i = 0; i < 3; i++)
        {
            Assert.That(rig.WalkReadsOf(() => rig.Read(Va)), Is.EqualTo(4));
            Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x1000)), Is.EqualTo(4));
        }
        Assert.That(rig.Mmu.Counters.Walks, Is.EqualTo(6), "no TLB either: every access walks");
    }

    [Test]
    public void With_la57_and_no_caches_every_walk_reads_five_entries()
    {
        var rig = new TlbRig(TlbGeometry.None, fiveLevel: true);
        rig.Map4K(Va);
        rig.Map4K(Va + 0x1000);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va)), Is.EqualTo(5));
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x1000)), Is.EqualTo(5));
    }

    [Test]
    public void With_la57_first_walk_reads_five_entries_and_second_page_reads_only_the_pte()
    {
        var rig = new TlbRig(fiveLevel: true);
        rig.Map4K(Va);
        rig.Map4K(Va + 0x1000);
        rig.Map4K(0x80_0000_0000);                 // same PML5E, PML4E 1
        rig.Map4K(0x1_0000_0000_0000);             // PML5E 1
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va)), Is.EqualTo(5));
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x1000)), Is.EqualTo(1));
        Assert.That(rig.WalkReadsOf(() => rig.Read(0x80_0000_0000)), Is.EqualTo(4), "PML5E-cache hit: PML4E, PDPTE, PDE, PTE");
        Assert.That(rig.WalkReadsOf(() => rig.Read(0x1_0000_0000_0000)), Is.EqualTo(5), "another PML5E: full walk");
    }

    [Test]
    public void Changed_pde_is_not_seen_while_cached()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        ulong o1 = rig.Map4K(Va + 0x1000);
        rig.Read(Va);
        // Clear P in the PDE: a walk that re-read it would fault.
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) & ~1UL);
        Assert.That(rig.Read(Va + 0x1000), Is.EqualTo(TlbRig.Marker(o1)), "the walk starts below the cached PDE");
    }

    [Test]
    public void Changed_pde_is_seen_after_cr3_reload()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map4K(Va + 0x1000);
        rig.Read(Va);
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) & ~1UL);
        rig.LoadCr3(0);
        var r = rig.Mmu.Read(Va + 0x1000, 8, Privilege.Supervisor, out _);
        Assert.That(r.Fault.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(r.Fault.Level, Is.EqualTo(2), "not present at the PDE");
    }

    [Test]
    public void Changed_pml4e_is_not_seen_while_cached()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        ulong f = rig.Map4K(0x8000_0000);
        rig.Map4K(0x8000_1000);
        rig.Read(Va);
        rig.SetEntry(Va, 4, rig.Entry(Va, 4) & ~1UL);
        Assert.That(rig.Read(0x8000_0000), Is.EqualTo(TlbRig.Marker(f)), "walk starts from the cached PML4E");
        rig.Mmu.Invlpg(Va);
        var r = rig.Mmu.Read(0x8000_1000, 8, Privilege.Supervisor, out _);
        Assert.That(r.Fault.Kind, Is.EqualTo(FaultKind.PageFault), "INVLPG dropped the PML4E-cache entry");
        Assert.That(r.Fault.Level, Is.EqualTo(4));
    }

    [Test]
    public void Pde_cache_evicts_least_recently_used_region()
    {
        var rig = new TlbRig(TlbGeometry.Tiny);   // PDE cache of 4 entries
        Assert.That(rig.Mmu.PagingStructureCaches.Single(c => c.Level == 2).Capacity, Is.EqualTo(4));
        for (ulong region = 0; region < 5; region++)
        {
            rig.Map4K(Va + region * 0x20_0000);
            rig.Map4K(Va + region * 0x20_0000 + 0x1000);
        }
        for (ulong region = 0; region < 5; region++) rig.Read(Va + region * 0x20_0000);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 4 * 0x20_0000 + 0x1000)), Is.EqualTo(1), "most recent region: PDE-cache hit");
        Assert.That(rig.WalkReadsOf(() => rig.Read(Va + 0x1000)), Is.EqualTo(2), "first region evicted: PDPTE-cache hit only");
    }

    [Test]
    public void Default_geometry_has_pde_pdpte_pml4e_and_pml5e_caches()
    {
        var rig = new TlbRig();
        var caches = rig.Mmu.PagingStructureCaches;
        Assert.That(caches.Select(c => (c.Level, c.Capacity, c.Name)), Is.EqualTo(new[]
        {
            (2, 32, "PDE cache"), (3, 8, "PDPTE cache"), (4, 4, "PML4E cache"), (5, 2, "PML5E cache"),
        }));
    }
}
