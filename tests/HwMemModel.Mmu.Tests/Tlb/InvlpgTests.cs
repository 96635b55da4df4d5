using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// INVLPG (SDM Vol. 3A §4.10.4.1): drops the TLB entries for the page of its operand that belong to the current
/// PCID, global entries for that page whatever their PCID, and every paging-structure-cache entry of the current PCID.
/// A cached translation is observed by remapping the leaf in RAM (no flush) and reading the frame marker.
/// </summary>
public sealed class InvlpgTests
{
    private const ulong Va = 0x4000_0000, Other = 0x4000_1000;

    [Test]
    public void Remapped_pte_without_flush_still_reads_old_frame()
    {
        var rig = new TlbRig();
        ulong f1 = rig.Map4K(Va);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)), "no flush: the TLB entry still gives the old frame");
    }

    [Test]
    public void Invlpg_drops_entry_for_that_page_for_current_pcid()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Mmu.Invlpg(Va + 0x123);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "after INVLPG the new PTE is used");
    }

    [Test]
    public void Invlpg_keeps_entries_for_other_pages()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        ulong o1 = rig.Map4K(Other);
        rig.Read(Va);
        rig.Read(Other);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        rig.Retarget(Other, 1, rig.NewFrame4K());
        rig.Mmu.Invlpg(Va);
        Assert.That(rig.Read(Other), Is.EqualTo(TlbRig.Marker(o1)), "the entry of another page is not invalidated");
    }

    [Test]
    public void Invlpg_drops_global_entry_for_that_page()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        rig.Map4K(Va, TlbRig.RW | PteFlags.Global);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Mmu.Invlpg(Va);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
    }

    [Test]
    public void Invlpg_drops_global_entry_cached_under_another_pcid()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: true);
        rig.Map4K(Va, TlbRig.RW | PteFlags.Global);
        rig.LoadCr3(1);
        rig.Read(Va);                       // global entry created under PCID 1
        rig.LoadCr3(2);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Mmu.Invlpg(Va);                 // executed under PCID 2
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "under PCID 2");
        rig.LoadCr3(1, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "back under PCID 1 without a flush");
    }

    [Test]
    public void Invlpg_keeps_non_global_entry_of_another_pcid()
    {
        var rig = new TlbRig(pcide: true);
        ulong f1 = rig.Map4K(Va);
        rig.LoadCr3(1);
        rig.Read(Va);                       // non-global entry for PCID 1
        rig.LoadCr3(2);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Mmu.Invlpg(Va);                 // current PCID is 2
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "PCID 2 walks");
        rig.LoadCr3(1, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)), "PCID 1's entry is not associated with the current PCID of the INVLPG");
    }

    [Test]
    public void Invlpg_with_any_address_in_2m_page_drops_its_entry()
    {
        var rig = new TlbRig();
        ulong va = 0x4020_0000;
        rig.Map2M(va);
        rig.Read(va + 0x1000);
        ulong g2 = rig.NewFrame2M();
        rig.Retarget(va, 2, g2);
        rig.Mmu.Invlpg(va + 0x1F_F000);
        Assert.That(rig.Read(va + 0x1000), Is.EqualTo(TlbRig.Marker(g2 + 0x1000)));
    }

    [Test]
    public void Invlpg_drops_all_paging_structure_cache_entries_of_current_pcid()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.Read(Va);                       // PDE cache now holds the 2 MiB region of Va
        // Point the PDE at a new page table that maps Other to another frame; no flush.
        ulong newPt = rig.Tables.AllocateTable();
        ulong fNew = rig.NewFrame4K();
        rig.Poke(newPt + 1 * 8, fNew | 0x3);
        ulong pde = rig.Entry(Va, 2);
        rig.SetEntry(Va, 2, (pde & ~0x000F_FFFF_FFFF_F000UL) | newPt);
        rig.Mmu.Invlpg(0x7000_0000);        // an unrelated, unmapped address
        Assert.That(rig.Read(Other), Is.EqualTo(TlbRig.Marker(fNew)), "the walk re-read the PDE and used the new page table");
    }

    [Test]
    public void Invlpg_of_non_canonical_address_is_a_no_op()
    {
        var rig = new TlbRig();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        int psc = rig.PscEntries;
        rig.Mmu.Invlpg(0x8000_0000_4000_0000);   // bits 47:0 equal Va: masking instead of checking would drop Va's entry
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)), "INVLPG of a non-canonical address is a NOP (SDM Vol. 2A INVLPG)");
        Assert.That(rig.PscEntries, Is.EqualTo(psc), "nor does it drop paging-structure-cache entries");
    }
}
