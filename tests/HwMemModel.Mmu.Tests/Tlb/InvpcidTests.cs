using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// INVPCID (SDM Vol. 2A INVPCID; Vol. 3A §4.10.4.1): type 0 = one address of one PCID except globals, 1 = one PCID
/// except globals, 2 = everything including globals, 3 = every PCID except globals; #GP(0) for a type above 3, a
/// descriptor with bits 63:12 set (PCID above 4095), a non-canonical address with type 0, and a nonzero PCID with
/// types 0 and 1 while CR4.PCIDE=0. One page table serves PCIDs 1 and 2 so one leaf is cached under both.
/// </summary>
public sealed class InvpcidTests
{
    private const ulong Va = 0x4000_0000, Other = 0x4000_1000, Global = 0x4000_2000;

    /// <summary>Caches <see cref="Va"/>, <see cref="Other"/> (non-global) and <see cref="Global"/> under PCIDs 1 and 2,
    /// then retargets all three leaves in RAM; the current PCID is 1 on return.</summary>
    private static (TlbRig Rig, ulong VaOld, ulong OtherOld, ulong GlobalOld, ulong VaNew, ulong OtherNew, ulong GlobalNew) Setup()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: true);
        ulong va = rig.Map4K(Va), other = rig.Map4K(Other), global = rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        foreach (ushort pcid in new ushort[] { 2, 1 })
        {
            rig.LoadCr3(pcid);
            rig.Read(Va);
            rig.Read(Other);
            rig.Read(Global);
        }
        ulong vaNew = rig.NewFrame4K(), otherNew = rig.NewFrame4K(), globalNew = rig.NewFrame4K();
        rig.Retarget(Va, 1, vaNew);
        rig.Retarget(Other, 1, otherNew);
        rig.Retarget(Global, 1, globalNew);
        return (rig, va, other, global, vaNew, otherNew, globalNew);
    }

    private static ulong ReadUnder(TlbRig rig, ushort pcid, ulong va)
    {
        rig.LoadCr3(pcid, noFlush: true);
        return rig.Read(va);
    }

    [Test]
    public void Invpcid_type0_drops_that_address_for_the_given_pcid()
    {
        var s = Setup();
        Assert.That(s.Rig.Mmu.Invpcid(0, 2, Va).IsFault, Is.False);
        Assert.That(ReadUnder(s.Rig, 2, Va), Is.EqualTo(TlbRig.Marker(s.VaNew)));
    }

    [Test]
    public void Invpcid_type0_keeps_that_address_for_other_pcids()
    {
        var s = Setup();
        s.Rig.Mmu.Invpcid(0, 2, Va);
        Assert.That(ReadUnder(s.Rig, 1, Va), Is.EqualTo(TlbRig.Marker(s.VaOld)));
    }

    [Test]
    public void Invpcid_type0_keeps_other_addresses_of_the_given_pcid()
    {
        var s = Setup();
        s.Rig.Mmu.Invpcid(0, 2, Va);
        Assert.That(ReadUnder(s.Rig, 2, Other), Is.EqualTo(TlbRig.Marker(s.OtherOld)));
    }

    [Test]
    public void Invpcid_type0_keeps_global_entry()
    {
        var s = Setup();
        s.Rig.Mmu.Invpcid(0, 1, Global);
        Assert.That(ReadUnder(s.Rig, 1, Global), Is.EqualTo(TlbRig.Marker(s.GlobalOld)), "type 0 invalidates mappings except global translations");
    }

    [Test]
    public void Invpcid_type0_drops_paging_structure_cache_entries_for_that_address()
    {
        var rig = new TlbRig(pcide: true);
        rig.LoadCr3(1);
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.Read(Va);
        ulong newPt = rig.Tables.AllocateTable();
        ulong fNew = rig.NewFrame4K();
        rig.Poke(newPt + 1 * 8, fNew | 0x3);
        ulong pde = rig.Entry(Va, 2);
        rig.SetEntry(Va, 2, (pde & ~0x000F_FFFF_FFFF_F000UL) | newPt);
        rig.Mmu.Invpcid(0, 1, Other);       // Other's translation would use the cached PDE
        Assert.That(rig.Read(Other), Is.EqualTo(TlbRig.Marker(fNew)));
    }

    [Test]
    public void Invpcid_type0_with_any_address_in_a_1g_page_drops_its_fractured_itlb_entries()
    {
        var rig = new TlbRig(pcide: true);
        rig.LoadCr3(1);
        const ulong big = 0x80_0000_0000;   // PML4 index 1
        rig.Map1G(big);
        rig.Poke(TlbRig.Frame1G + 0x40_0000, 0x1111);
        rig.Poke(TlbRig.Frame1G + 0x20_0000, 0x2222);
        Assert.That(rig.Read(big + 0x40_0000, AccessKind.Execute), Is.EqualTo(0x1111UL));
        // Make the whole 1 GiB page not present; no flush.
        rig.SetEntry(big, 3, rig.Entry(big, 3) & ~1UL);
        Assert.That(rig.Read(big + 0x40_0000, AccessKind.Execute), Is.EqualTo(0x1111UL), "cached: still translates");
        rig.Mmu.Invpcid(0, 1, big + 0x3FF0_0000);
        var f = rig.Mmu.Translate(big + 0x40_0000, AccessKind.Execute, Privilege.Supervisor, out _);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.PageFault), "SDM: for a large page cached as several entries INVPCID invalidates all of them");
        Assert.That(f.ErrorCode, Is.EqualTo(PageFaultErrorCode.InstructionFetch));
    }

    [Test]
    public void Invpcid_type1_drops_all_non_global_entries_of_the_given_pcid()
    {
        var s = Setup();
        Assert.That(s.Rig.Mmu.Invpcid(1, 2).IsFault, Is.False);
        Assert.That(ReadUnder(s.Rig, 2, Va), Is.EqualTo(TlbRig.Marker(s.VaNew)));
        Assert.That(s.Rig.Read(Other), Is.EqualTo(TlbRig.Marker(s.OtherNew)));
    }

    [Test]
    public void Invpcid_type1_keeps_global_entries()
    {
        var s = Setup();
        s.Rig.Mmu.Invpcid(1, 2);
        Assert.That(ReadUnder(s.Rig, 2, Global), Is.EqualTo(TlbRig.Marker(s.GlobalOld)));
    }

    [Test]
    public void Invpcid_type1_keeps_entries_of_other_pcids()
    {
        var s = Setup();
        s.Rig.Mmu.Invpcid(1, 2);
        Assert.That(ReadUnder(s.Rig, 1, Va), Is.EqualTo(TlbRig.Marker(s.VaOld)));
    }

    [Test]
    public void Invpcid_type1_drops_paging_structure_cache_entries_of_the_given_pcid()
    {
        var rig = new TlbRig(pcide: true);
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.LoadCr3(2);
        rig.Read(Va);
        rig.LoadCr3(1);
        rig.Mmu.Invpcid(1, 2);
        rig.LoadCr3(2, noFlush: true);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Other)), Is.EqualTo(4), "full walk: PCID 2 has no cached PML4E/PDPTE/PDE left");
    }

    [Test]
    public void Invpcid_type2_drops_global_and_non_global_entries_of_all_pcids()
    {
        var s = Setup();
        Assert.That(s.Rig.Mmu.Invpcid(2, 0).IsFault, Is.False);
        Assert.That(s.Rig.TlbEntries, Is.Zero, "no TLB entry of any PCID is left");
        Assert.That(s.Rig.PscEntries, Is.Zero, "no paging-structure-cache entry of any PCID is left");
        Assert.That(s.Rig.Read(Va), Is.EqualTo(TlbRig.Marker(s.VaNew)), "current PCID 1");
        Assert.That(s.Rig.Read(Global), Is.EqualTo(TlbRig.Marker(s.GlobalNew)), "global");
        Assert.That(ReadUnder(s.Rig, 2, Other), Is.EqualTo(TlbRig.Marker(s.OtherNew)), "PCID 2");
    }

    [Test]
    public void Invpcid_type3_drops_non_global_entries_of_all_pcids_but_keeps_globals()
    {
        var s = Setup();
        Assert.That(s.Rig.Mmu.Invpcid(3, 0).IsFault, Is.False);
        Assert.That(s.Rig.Read(Va), Is.EqualTo(TlbRig.Marker(s.VaNew)), "current PCID 1");
        Assert.That(ReadUnder(s.Rig, 2, Other), Is.EqualTo(TlbRig.Marker(s.OtherNew)), "PCID 2");
        Assert.That(s.Rig.Read(Global), Is.EqualTo(TlbRig.Marker(s.GlobalOld)), "global kept");
    }

    [TestCase(4, 0UL, 0x4000_0000UL, TestName = "Invpcid_type_above_3_is_gp")]
    [TestCase(-1, 0UL, 0x4000_0000UL, TestName = "Invpcid_negative_type_is_gp")]
    [TestCase(0, 0x1000UL, 0x4000_0000UL, TestName = "Invpcid_type0_pcid_above_4095_is_gp")]
    [TestCase(1, 0x1000UL, 0UL, TestName = "Invpcid_type1_pcid_above_4095_is_gp")]
    [TestCase(2, 0x1000UL, 0UL, TestName = "Invpcid_type2_pcid_above_4095_is_gp")]
    [TestCase(3, 0xFFFF_FFFF_FFFF_F000UL, 0UL, TestName = "Invpcid_type3_descriptor_bits_63_12_set_is_gp")]
    [TestCase(0, 1UL, 0x0000_8000_0000_0000UL, TestName = "Invpcid_type0_non_canonical_address_is_gp")]
    public void Invpcid_gp_cases_invalidate_nothing(int type, ulong pcid, ulong va)
    {
        var s = Setup();
        long flushesBefore = Enum.GetValues<FlushKind>().Sum(k => s.Rig.Mmu.Counters.Flushes(k));
        var f = s.Rig.Mmu.Invpcid(type, pcid, va);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(f.ErrorCode, Is.EqualTo(PageFaultErrorCode.None), "#GP(0)");
        Assert.That(s.Rig.Read(Va), Is.EqualTo(TlbRig.Marker(s.VaOld)), "nothing invalidated");
        Assert.That(s.Rig.Read(Global), Is.EqualTo(TlbRig.Marker(s.GlobalOld)), "nothing invalidated");
        Assert.That(Enum.GetValues<FlushKind>().Sum(k => s.Rig.Mmu.Counters.Flushes(k)), Is.EqualTo(flushesBefore), "a faulting INVPCID counts no flush");
    }

    [TestCase(0, TestName = "Invpcid_type0_nonzero_pcid_with_pcide_off_is_gp")]
    [TestCase(1, TestName = "Invpcid_type1_nonzero_pcid_with_pcide_off_is_gp")]
    public void Invpcid_nonzero_pcid_with_pcide_off_is_gp(int type)
    {
        var rig = new TlbRig(pcide: false);
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        var f = rig.Mmu.Invpcid(type, 1, Va);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
    }

    [TestCase(2)]
    [TestCase(3)]
    public void Invpcid_types_2_and_3_accept_nonzero_pcid_with_pcide_off(int type)
    {
        var rig = new TlbRig(pcide: false);
        rig.Map4K(Va);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        var f = rig.Mmu.Invpcid(type, 5, 0xDEAD_0000_0000_0000);
        Assert.That(f.IsFault, Is.False, "the PCID and address of the descriptor are not checked for types 2 and 3");
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "PCID 0's mappings invalidated");
    }

    [Test]
    public void Invpcid_type0_with_pcid0_and_pcide_off_drops_the_address()
    {
        var rig = new TlbRig(pcide: false);
        rig.Map4K(Va);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        Assert.That(rig.Mmu.Invpcid(0, 0, Va).IsFault, Is.False);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
    }

    [Test]
    public void Invpcid_type1_ignores_the_descriptor_address()
    {
        var s = Setup();
        var f = s.Rig.Mmu.Invpcid(1, 1, 0x0000_8000_0000_0000);
        Assert.That(f.IsFault, Is.False, "the linear address is used only by type 0");
        Assert.That(s.Rig.Read(Va), Is.EqualTo(TlbRig.Marker(s.VaNew)));
    }
}
