using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// The coherence checker (Mmu.CoherenceChecking): on a TLB hit whose cached translation no longer matches the page
/// tables in RAM it reports a StaleTranslationEvent once per cached entry, still using the cached translation.
/// </summary>
public sealed class CoherenceCheckerTests
{
    private const ulong Va = 0x4000_0000;

    private static TlbRig CheckedRig(int cpuId = 0, ulong extraCr4 = Cr4.PGE, bool pcide = false)
    {
        var rig = new TlbRig(extraCr4: extraCr4, pcide: pcide, cpuId: cpuId);
        rig.Mmu.CoherenceChecking = true;
        return rig;
    }

    [Test]
    public void Checker_is_off_by_default_and_reports_nothing()
    {
        var rig = new TlbRig();
        Assert.That(rig.Mmu.CoherenceChecking, Is.False);
        int raised = 0;
        rig.Mmu.StaleTranslationDetected += _ => raised++;
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
        Assert.That(rig.Mmu.StaleTranslations, Is.Empty);
        Assert.That(raised, Is.Zero);
        Assert.That(rig.Mmu.Counters.StaleTranslations, Is.Zero);
    }

    [Test]
    public void Remapped_frame_is_reported_once_as_different_frame()
    {
        var rig = CheckedRig();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va + 0x10);
        ulong cachedLeaf = rig.Entry(Va, 1);                 // with A set by the walk
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        ulong currentLeaf = rig.Entry(Va, 1);
        rig.Poke(f1 + 0x18, 0x1111);
        rig.Poke(f2 + 0x18, 0x2222);
        Assert.That(rig.Read(Va + 0x18), Is.EqualTo(0x1111UL), "the cached translation is still used");
        rig.Read(Va + 0x20);
        rig.Read(Va + 0x18);
        Assert.That(rig.Mmu.StaleTranslations, Has.Count.EqualTo(1), "once per cached entry");
        var e = rig.Mmu.StaleTranslations[0];
        Assert.Multiple(() =>
        {
            Assert.That(e.Kind, Is.EqualTo(StaleKind.DifferentFrame));
            Assert.That(e.VirtualAddress, Is.EqualTo(Va + 0x18));
            Assert.That(e.CachedPhysicalAddress, Is.EqualTo(f1 + 0x18));
            Assert.That(e.CurrentPhysicalAddress, Is.EqualTo(f2 + 0x18));
            Assert.That(e.CachedLeafEntry, Is.EqualTo(cachedLeaf));
            Assert.That(e.CurrentLeafEntry, Is.EqualTo(currentLeaf));
            Assert.That(e.CpuId, Is.Zero);
            Assert.That(e.Pcid, Is.Zero);
            Assert.That(e.Description, Does.Contain("TLB flush is missing"));
        });
        Assert.That(rig.Mmu.Counters.StaleTranslations, Is.EqualTo(1));
    }

    [Test]
    public void Cleared_present_bit_is_reported_as_now_unmapped()
    {
        var rig = CheckedRig();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~1UL);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
        var e = rig.Mmu.StaleTranslations.Single();
        Assert.That(e.Kind, Is.EqualTo(StaleKind.NowUnmapped));
        Assert.That(e.CurrentPhysicalAddress, Is.Null);
        Assert.That(e.CurrentLeafEntry, Is.Zero);
        Assert.That(e.CachedPhysicalAddress, Is.EqualTo(f1));
    }

    [Test]
    public void Cleared_present_bit_of_upper_level_is_reported_as_now_unmapped()
    {
        var rig = CheckedRig();
        rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 3, rig.Entry(Va, 3) & ~1UL);
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations.Single().Kind, Is.EqualTo(StaleKind.NowUnmapped));
    }

    [Test]
    public void Pte_made_read_only_is_reported_as_more_permissive()
    {
        var rig = CheckedRig();
        rig.Map4K(Va, TlbRig.RW);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~(ulong)PteFlags.Writable);
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations.Single().Kind, Is.EqualTo(StaleKind.MorePermissive), "the cached entry allows writes the tables now forbid");
    }

    [Test]
    public void Pde_made_supervisor_only_is_reported_as_more_permissive()
    {
        var rig = CheckedRig();
        rig.Map4K(Va, TlbRig.RW | PteFlags.User);
        rig.Read(Va, privilege: Privilege.User);
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) & ~(ulong)PteFlags.User);
        rig.Read(Va, privilege: Privilege.User);
        Assert.That(rig.Mmu.StaleTranslations.Single().Kind, Is.EqualTo(StaleKind.MorePermissive));
    }

    [Test]
    public void Pte_made_execute_disable_is_reported_as_more_permissive()
    {
        var rig = CheckedRig();
        rig.Map4K(Va, TlbRig.RW);
        rig.Read(Va, AccessKind.Execute);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) | (ulong)PteFlags.NoExecute);
        rig.Read(Va, AccessKind.Execute);
        Assert.That(rig.Mmu.StaleTranslations.Single().Kind, Is.EqualTo(StaleKind.MorePermissive));
    }

    [Test]
    public void Pte_made_writable_is_reported_as_less_permissive()
    {
        var rig = CheckedRig();
        rig.Map4K(Va, PteFlags.None);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) | (ulong)PteFlags.Writable);
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations.Single().Kind, Is.EqualTo(StaleKind.LessPermissive));
    }

    [Test]
    public void Changed_cache_bits_are_reported_as_different_memory_type()
    {
        var rig = CheckedRig();
        rig.Map4K(Va, TlbRig.RW);                  // PAT index 0: WB
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) | (ulong)PteFlags.CacheDisable);   // PAT index 2: UC-
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations.Single().Kind, Is.EqualTo(StaleKind.DifferentMemoryType));
    }

    [Test]
    public void Event_is_raised_through_stale_translation_detected()
    {
        var rig = CheckedRig();
        var seen = new List<StaleTranslationEvent>();
        rig.Mmu.StaleTranslationDetected += seen.Add;
        rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        rig.Read(Va);
        rig.Read(Va);
        Assert.That(seen, Has.Count.EqualTo(1));
        Assert.That(seen[0], Is.SameAs(rig.Mmu.StaleTranslations[0]));
    }

    [Test]
    public void Event_names_the_cpu_and_pcid_of_the_stale_entry()
    {
        var rig = CheckedRig(cpuId: 3, pcide: true);
        rig.LoadCr3(9);
        rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        rig.Read(Va);
        var e = rig.Mmu.StaleTranslations.Single();
        Assert.That(e.CpuId, Is.EqualTo(3));
        Assert.That(e.Pcid, Is.EqualTo(9));
        Assert.That(e.Description, Does.StartWith("CPU 3"));
    }

    [Test]
    public void No_event_when_tables_did_not_change()
    {
        var rig = CheckedRig();
        rig.Map4K(Va);
        rig.Map2M(0x4020_0000);
        rig.Map1G(0x80_0000_0000);
        for (int i = 0; i < 5; i++)
        {
            rig.Read(Va + (ulong)i * 8);
            rig.Read(0x4020_0000 + (ulong)i * 0x1000);
            rig.Read(0x80_0000_0000 + (ulong)i * 0x20_0000, AccessKind.Execute);
            Assert.That(rig.Mmu.Write(Va + (ulong)i * 8, 8, 1, Privilege.Supervisor).Ok);
        }
        Assert.That(rig.Mmu.StaleTranslations, Is.Empty);
    }

    [Test]
    public void No_event_when_only_accessed_and_dirty_bits_changed()
    {
        var rig = CheckedRig();
        rig.Map4K(Va);
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Ok);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~(TlbRig.A | TlbRig.D));
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations, Is.Empty, "A and D are not part of the translation");
    }

    [Test]
    public void No_event_after_invlpg()
    {
        var rig = CheckedRig();
        rig.Map4K(Va);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Mmu.Invlpg(Va);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations, Is.Empty);
    }

    [Test]
    public void No_event_after_cr3_reload_for_upper_level_change()
    {
        var rig = CheckedRig();
        rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) & ~(ulong)PteFlags.Writable);
        rig.LoadCr3(0);
        rig.Read(Va);
        rig.Read(Va);
        Assert.That(rig.Mmu.StaleTranslations, Is.Empty);
    }

    [Test]
    public void Checker_reports_stale_global_entry_used_under_pcid_whose_tables_differ()
    {
        var rig = CheckedRig(pcide: true);
        rig.LoadCr3(1);
        const ulong g = 0x4000_2000;
        ulong g1 = rig.Map4K(g, TlbRig.RW | PteFlags.Global);
        rig.Read(g);
        // A second address space whose tables map g elsewhere; the global entry is still used there.
        var other = new PageTableBuilder(rig.Bus, 0x300_0000, 0x10_0000);
        ulong g2 = rig.NewFrame4K();
        other.Map(g, g2, PageSize.Size4K, TlbRig.RW | PteFlags.Global);
        Assert.That(rig.Cpu.WriteCr3(other.Root | 2).IsFault, Is.False);
        Assert.That(rig.Read(g), Is.EqualTo(TlbRig.Marker(g1)), "a global entry is used under any PCID");
        var e = rig.Mmu.StaleTranslations.Single();
        Assert.That(e.Kind, Is.EqualTo(StaleKind.DifferentFrame));
        Assert.That(e.CurrentPhysicalAddress, Is.EqualTo(g2));
    }
}
