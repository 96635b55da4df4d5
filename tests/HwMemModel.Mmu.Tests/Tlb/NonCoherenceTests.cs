using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// The TLB is not coherent with the page tables (SDM Vol. 3A §4.10.2, §4.10.4.3): a cached translation is used until
/// it is invalidated. Page faults invalidate what was used for the faulting address (§4.10.4.1), so a fault caused by
/// a stale entry happens at most once. A write through an entry cached with D=0 walks again to set D (§4.8).
/// </summary>
public sealed class NonCoherenceTests
{
    private const ulong Va = 0x4000_0000, Other = 0x4000_1000;

    [Test]
    public void Cleared_present_bit_without_flush_still_translates_to_old_frame()
    {
        var rig = new TlbRig();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~1UL);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
    }

    [Test]
    public void Cleared_present_bit_faults_after_invlpg()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~1UL);
        rig.Mmu.Invlpg(Va);
        var r = rig.Mmu.Read(Va, 8, Privilege.Supervisor, out _);
        Assert.That(r.Fault.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(r.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.None), "supervisor read of a not-present page: error code 0");
        Assert.That(r.Fault.Address, Is.EqualTo(Va));
    }

    [Test]
    public void Cleared_present_bit_of_pde_without_flush_still_translates_cached_page()
    {
        var rig = new TlbRig();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) & ~1UL);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
    }

    [Test]
    public void Pte_made_writable_without_flush_faults_once_then_write_succeeds()
    {
        var rig = new TlbRig();
        rig.Map4K(Va, PteFlags.None);                  // read-only, supervisor
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) | (ulong)PteFlags.Writable);
        var first = rig.Mmu.Write(Va, 8, 0x77, Privilege.Supervisor);
        Assert.That(first.Fault.Kind, Is.EqualTo(FaultKind.PageFault), "the cached entry still says read-only (CR0.WP=1)");
        Assert.That(first.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.Write));
        var second = rig.Mmu.Write(Va, 8, 0x77, Privilege.Supervisor);
        Assert.That(second.Ok, Is.True, "the fault invalidated the entry: the retry walks and sees R/W=1");
        Assert.That(rig.Entry(Va, 1) & TlbRig.D, Is.EqualTo(TlbRig.D));
    }

    [Test]
    public void Page_fault_drops_global_tlb_entry_for_the_faulting_page()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        rig.Map4K(Va, PteFlags.Global);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) | (ulong)PteFlags.Writable);
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Fault.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Ok, Is.True);
    }

    [Test]
    public void Page_fault_drops_tlb_entry_for_the_faulting_page_only()
    {
        var rig = new TlbRig();
        rig.Map4K(Va, PteFlags.None);
        ulong o1 = rig.Map4K(Other);
        rig.Read(Va);
        rig.Read(Other);
        rig.Retarget(Other, 1, rig.NewFrame4K());
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Fault.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(rig.Read(Other), Is.EqualTo(TlbRig.Marker(o1)), "the fault on Va leaves Other's entry (SDM: entries for the faulting page number)");
    }

    [Test]
    public void Page_fault_drops_paging_structure_cache_entries_used_for_the_faulting_address()
    {
        var rig = new TlbRig();
        rig.Map4K(Va, TlbRig.RW | PteFlags.User);
        rig.Map4K(Other, TlbRig.RW | PteFlags.User);
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) & ~(ulong)PteFlags.User);   // PDE: supervisor only
        rig.Read(Va);                                                  // PDE cache: rights without U/S
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) | (ulong)PteFlags.User);    // now user-accessible; no flush
        var first = rig.Mmu.Read(Other, 8, Privilege.User, out _);
        Assert.That(first.Fault.Kind, Is.EqualTo(FaultKind.PageFault), "the walk for Other starts from the cached PDE and its stale U/S=0");
        Assert.That(first.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.User));
        var second = rig.Mmu.Read(Other, 8, Privilege.User, out _);
        Assert.That(second.Ok, Is.True, "the fault invalidated the PDE-cache entry it used");
    }

    [Test]
    public void Page_fault_is_counted_as_a_page_fault_flush()
    {
        var rig = new TlbRig();
        long before = rig.Mmu.Counters.Flushes(FlushKind.PageFault);
        rig.Mmu.Read(0x7000_0000, 8, Privilege.Supervisor, out _);
        rig.Mmu.Read(0x7000_1000, 8, Privilege.Supervisor, out _);
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.PageFault), Is.EqualTo(before + 2));
        Assert.That(rig.Mmu.Counters.PageFaults, Is.EqualTo(2));
    }

    [Test]
    public void Write_through_entry_cached_clean_walks_again_and_sets_dirty()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Read(Va);
        Assert.That(rig.Entry(Va, 1) & TlbRig.D, Is.Zero);
        long rewalks = rig.Mmu.Counters.DirtyRewalks;
        Assert.That(rig.WalksOf(() => Assert.That(rig.Mmu.Write(Va, 8, 5, Privilege.Supervisor).Ok)), Is.EqualTo(1));
        Assert.That(rig.Mmu.Counters.DirtyRewalks, Is.EqualTo(rewalks + 1));
        Assert.That(rig.Entry(Va, 1) & (TlbRig.A | TlbRig.D), Is.EqualTo(TlbRig.A | TlbRig.D));
        Assert.That(rig.WalksOf(() => rig.Mmu.Write(Va + 8, 8, 6, Privilege.Supervisor)), Is.Zero, "now cached dirty");
    }

    [Test]
    public void Write_through_2m_entry_cached_clean_sets_dirty_in_the_pde()
    {
        var rig = new TlbRig();
        const ulong big = 0x4020_0000;
        rig.Map2M(big);
        rig.Read(big + 0x1_0000);
        Assert.That(rig.Mmu.Write(big + 0x2_0000, 4, 5, Privilege.Supervisor).Ok);
        Assert.That(rig.Entry(big, 2) & (TlbRig.A | TlbRig.D), Is.EqualTo(TlbRig.A | TlbRig.D));
    }

    [Test]
    public void Write_through_1g_entry_cached_clean_sets_dirty_in_the_pdpte()
    {
        var rig = new TlbRig();
        const ulong big = 0x80_0000_0000;
        rig.Map1G(big);
        rig.Read(big + 0x1234_5000);
        Assert.That(rig.Entry(big, 3) & TlbRig.D, Is.Zero);
        Assert.That(rig.Mmu.Write(big + 0x0765_4000, 4, 5, Privilege.Supervisor).Ok);
        Assert.That(rig.Entry(big, 3) & (TlbRig.A | TlbRig.D), Is.EqualTo(TlbRig.A | TlbRig.D));
    }

    [Test]
    public void Dirty_bit_cleared_without_flush_is_not_set_again_through_dirty_entry()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Ok);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~TlbRig.D);
        Assert.That(rig.Mmu.Write(Va, 8, 2, Privilege.Supervisor).Ok);
        Assert.That(rig.Entry(Va, 1) & TlbRig.D, Is.Zero, "SDM §4.10.4.3: without invalidation the processor may not set D again");
        rig.Mmu.Invlpg(Va);
        Assert.That(rig.Mmu.Write(Va, 8, 3, Privilege.Supervisor).Ok);
        Assert.That(rig.Entry(Va, 1) & TlbRig.D, Is.EqualTo(TlbRig.D), "after INVLPG the write walks and sets D");
    }

    [Test]
    public void Accessed_bit_cleared_without_flush_is_not_set_again_by_cached_reads()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Read(Va);
        rig.SetEntry(Va, 1, rig.Entry(Va, 1) & ~TlbRig.A);
        rig.Read(Va);
        Assert.That(rig.Entry(Va, 1) & TlbRig.A, Is.Zero);
        rig.Mmu.Invlpg(Va);
        rig.Read(Va);
        Assert.That(rig.Entry(Va, 1) & TlbRig.A, Is.EqualTo(TlbRig.A));
    }

    [Test]
    public void Remapped_2m_page_without_flush_still_reads_old_frame()
    {
        var rig = new TlbRig();
        const ulong big = 0x4020_0000;
        ulong g1 = rig.Map2M(big);
        rig.Read(big + 0x5000);
        rig.Retarget(big, 2, rig.NewFrame2M());
        Assert.That(rig.Read(big + 0x5000), Is.EqualTo(TlbRig.Marker(g1 + 0x5000)));
        Assert.That(rig.Read(big + 0x7000), Is.EqualTo(TlbRig.Marker(g1 + 0x7000)), "another 4 KiB piece of the same cached 2 MiB translation");
    }
}
