using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// Invalidation by MOV to CR3, CR4 and CR0 (SDM Vol. 3A §4.10.4.1) and the use of PCID and global tags
/// (§4.10.1, §4.10.2.4). Leaves are retargeted in RAM without a flush; the frame read tells whether the cached
/// translation survived.
/// </summary>
public sealed class ControlRegisterInvalidationTests
{
    private const ulong Va = 0x4000_0000, Other = 0x4000_1000, Global = 0x4000_2000;

    // ------------------------------------------------------------------ MOV to CR3, CR4.PCIDE = 0

    [Test]
    public void Mov_cr3_without_pcids_drops_non_global_entries()
    {
        var rig = new TlbRig(pcide: false);
        rig.Map4K(Va);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.LoadCr3(0);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
    }

    [Test]
    public void Mov_cr3_without_pcids_keeps_global_entries()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: false);
        ulong g1 = rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.Read(Global);
        rig.Retarget(Global, 1, rig.NewFrame4K());
        rig.LoadCr3(0);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g1)));
    }

    [TestCase(PageSize.Size2M)]
    [TestCase(PageSize.Size1G)]
    public void Mov_cr3_keeps_global_large_page_entries_and_invlpg_drops_them(PageSize size)
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        ulong va = size == PageSize.Size2M ? 0x4020_0000UL : 0x80_0000_0000UL;
        int level = size.LeafLevel();
        ulong frame = size == PageSize.Size2M ? rig.Map2M(va, TlbRig.RW | PteFlags.Global) : rig.Map1G(va, TlbRig.RW | PteFlags.Global);
        ulong moved = size == PageSize.Size2M ? rig.NewFrame2M() : 0UL;   // 1 GiB: the first GiB of RAM (offset 0x3000 is below the table pool)
        rig.Poke(frame + 0x3000, 0x0A);
        rig.Poke(moved + 0x3000, 0x0B);
        Assert.That(rig.Read(va + 0x3000), Is.EqualTo(0x0AUL));
        rig.Retarget(va, level, moved);
        rig.LoadCr3(0);
        Assert.That(rig.Read(va + 0x3000), Is.EqualTo(0x0AUL), "G in a large-page leaf makes the entry global too");
        rig.Mmu.Invlpg(va + 0x10_0000);
        Assert.That(rig.Read(va + 0x3000), Is.EqualTo(0x0BUL));
    }

    [Test]
    public void Global_bit_without_cr4_pge_does_not_survive_mov_cr3()
    {
        var rig = new TlbRig(extraCr4: 0, pcide: false);
        rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.Read(Global);
        ulong g2 = rig.NewFrame4K();
        rig.Retarget(Global, 1, g2);
        rig.LoadCr3(0);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g2)), "G is honoured only with CR4.PGE=1");
    }

    [Test]
    public void Mov_cr3_without_pcids_drops_paging_structure_cache_entries()
    {
        var rig = new TlbRig(pcide: false);
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.Read(Va);
        rig.LoadCr3(0);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Other)), Is.EqualTo(4));
    }

    [Test]
    public void Mov_cr3_is_counted_as_a_cr3_flush()
    {
        var rig = new TlbRig(pcide: false);
        long before = rig.Mmu.Counters.Flushes(FlushKind.Cr3Load);
        rig.LoadCr3(0);
        rig.LoadCr3(0);
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr3Load), Is.EqualTo(before + 2));
    }

    // ------------------------------------------------------------------ MOV to CR3, CR4.PCIDE = 1

    [Test]
    public void Mov_cr3_with_pcids_drops_non_global_entries_of_the_new_pcid()
    {
        var rig = new TlbRig(pcide: true);
        rig.Map4K(Va);
        rig.LoadCr3(2);
        rig.Read(Va);
        rig.LoadCr3(1);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.LoadCr3(2);                     // bit 63 clear: PCID 2's entries go
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
    }

    [Test]
    public void Mov_cr3_with_pcids_keeps_entries_of_the_previous_pcid()
    {
        var rig = new TlbRig(pcide: true);
        ulong f1 = rig.Map4K(Va);
        rig.LoadCr3(1);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        rig.LoadCr3(2);
        rig.LoadCr3(1, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)), "the load of PCID 2 invalidates only PCID 2");
    }

    [Test]
    public void Mov_cr3_with_pcids_keeps_global_entries()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: true);
        ulong g1 = rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.LoadCr3(1);
        rig.Read(Global);
        rig.Retarget(Global, 1, rig.NewFrame4K());
        rig.LoadCr3(1);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g1)));
    }

    [Test]
    public void Mov_cr3_with_bit63_keeps_entries_of_the_new_pcid()
    {
        var rig = new TlbRig(pcide: true);
        ulong f1 = rig.Map4K(Va);
        rig.LoadCr3(2);
        rig.Read(Va);
        rig.LoadCr3(1);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        rig.LoadCr3(2, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
    }

    [Test]
    public void Mov_cr3_with_bit63_keeps_paging_structure_cache_entries()
    {
        var rig = new TlbRig(pcide: true);
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.LoadCr3(1);
        rig.Read(Va);
        rig.LoadCr3(1, noFlush: true);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Other)), Is.EqualTo(1), "the PDE cache entry of PCID 1 survived");
    }

    [Test]
    public void Mov_cr3_with_bit63_does_not_store_bit63()
    {
        var rig = new TlbRig(pcide: true);
        rig.LoadCr3(7, noFlush: true);
        Assert.That(rig.Cpu.Cr3Value, Is.EqualTo(rig.Tables.Root | 7));
        Assert.That(rig.Cpu.CurrentPcid, Is.EqualTo(7));
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr3LoadNoFlush), Is.EqualTo(1));
    }

    [Test]
    public void Non_global_entry_is_not_used_under_another_pcid()
    {
        var rig = new TlbRig(pcide: true);
        rig.Map4K(Va);
        rig.LoadCr3(1);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.LoadCr3(2, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "PCID 1's entry does not match PCID 2: the walk sees the new PTE");
    }

    [Test]
    public void Global_entry_is_used_under_another_pcid()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: true);
        ulong g1 = rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.LoadCr3(1);
        rig.Read(Global);
        rig.Retarget(Global, 1, rig.NewFrame4K());
        rig.LoadCr3(2);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g1)));
    }

    [Test]
    public void Paging_structure_cache_entries_are_used_only_under_their_pcid()
    {
        var rig = new TlbRig(pcide: true);
        const ulong third = 0x4000_3000;
        rig.Map4K(Va);
        rig.Map4K(Other);
        ulong t1 = rig.Map4K(third);
        rig.LoadCr3(1);
        rig.Read(Va);                       // PDE cache of PCID 1 points at the original page table
        // A new page table for the same 2 MiB region, mapping Other and third to new frames.
        ulong newPt = rig.Tables.AllocateTable();
        ulong otherNew = rig.NewFrame4K(), thirdNew = rig.NewFrame4K();
        rig.Poke(newPt + 1 * 8, otherNew | 3);
        rig.Poke(newPt + 3 * 8, thirdNew | 3);
        ulong pde = rig.Entry(Va, 2);
        rig.SetEntry(Va, 2, (pde & ~0x000F_FFFF_FFFF_F000UL) | newPt);
        rig.LoadCr3(2, noFlush: true);
        Assert.That(rig.Read(Other), Is.EqualTo(TlbRig.Marker(otherNew)), "PCID 2 cannot use PCID 1's PDE-cache entry");
        rig.LoadCr3(1, noFlush: true);
        Assert.That(rig.Read(third), Is.EqualTo(TlbRig.Marker(t1)), "PCID 1 still walks from its cached PDE (old page table)");
    }

    // ------------------------------------------------------------------ MOV to CR4

    [Test]
    public void Clearing_pge_drops_global_entries()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.Read(Global);
        ulong g2 = rig.NewFrame4K();
        rig.Retarget(Global, 1, g2);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.PGE);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g2)));
    }

    [Test]
    public void Setting_pge_drops_entries_of_all_pcids()
    {
        var rig = new TlbRig(extraCr4: 0, pcide: true);
        rig.Map4K(Va);
        rig.LoadCr3(2);
        rig.Read(Va);
        rig.LoadCr3(1);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.PGE);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "current PCID 1");
        rig.LoadCr3(2, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "PCID 2");
    }

    [Test]
    public void Changing_pge_drops_paging_structure_cache_entries()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.Read(Va);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.PGE);
        Assert.That(rig.PscEntries, Is.Zero);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Other)), Is.EqualTo(4));
    }

    [Test]
    public void Clearing_pcide_drops_entries_of_all_pcids_including_globals()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: true);
        rig.Map4K(Va);
        rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.LoadCr3(2);
        rig.Read(Va);
        rig.Read(Global);
        ulong f2 = rig.NewFrame4K(), g2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Retarget(Global, 1, g2);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.PCIDE);
        Assert.That(rig.TlbEntries, Is.Zero);
        Assert.That(rig.PscEntries, Is.Zero);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g2)), "global entry dropped");
        // Back to PCID 2 without a flush: its entry must be gone too.
        rig.Cpu.SetCr3(rig.Tables.Root);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.PCIDE);
        rig.LoadCr3(2, noFlush: true);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)), "PCID 2's entry dropped");
    }

    [Test]
    public void Setting_pcide_keeps_entries_of_pcid0()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE, pcide: false);
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.PCIDE);
        Assert.That(rig.Cpu.CurrentPcid, Is.Zero);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)), "setting PCIDE is not an invalidating change (SDM §4.10.4.1 lists PGE, PCIDE 1 to 0, PAE, SMEP 0 to 1)");
    }

    [Test]
    public void Setting_smep_drops_entries_of_the_current_pcid()
    {
        var rig = new TlbRig(pcide: true);
        rig.Map4K(Va);
        rig.LoadCr3(1);
        rig.Read(Va);
        ulong f2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        long before = rig.Mmu.Counters.Flushes(FlushKind.Cr4Change);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.SMEP);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr4Change), Is.EqualTo(before + 1));
    }

    [Test]
    public void Setting_smep_drops_paging_structure_cache_entries_of_the_current_pcid()
    {
        var rig = new TlbRig(pcide: true);
        rig.Map4K(Va);
        rig.Map4K(Other);
        rig.LoadCr3(1);
        rig.Read(Va);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.SMEP);
        Assert.That(rig.WalkReadsOf(() => rig.Read(Other)), Is.EqualTo(4));
    }

    [Test]
    public void Clearing_smep_or_toggling_smap_does_not_invalidate()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE | Cr4.SMEP);
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        long before = rig.Mmu.Counters.Flushes(FlushKind.Cr4Change);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.SMEP);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.SMAP);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.SMAP);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr4Change), Is.EqualTo(before));
    }

    [Test]
    public void Changing_pae_with_paging_off_is_an_invalidating_cr4_change()
    {
        var rig = new TlbRig();
        rig.Cpu.SetCr0(rig.Cpu.Cr0Value & ~Cr0.PG);
        long before = rig.Mmu.Counters.Flushes(FlushKind.Cr4Change);
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.PAE);
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr4Change), Is.EqualTo(before + 1));
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.PAE);
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr4Change), Is.EqualTo(before + 2));
    }

    // ------------------------------------------------------------------ MOV to CR0

    [Test]
    public void Clearing_pg_drops_everything_including_globals()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE);
        rig.Map4K(Va);
        rig.Map4K(Global, TlbRig.RW | PteFlags.Global);
        rig.Read(Va);
        rig.Read(Global);
        ulong f2 = rig.NewFrame4K(), g2 = rig.NewFrame4K();
        rig.Retarget(Va, 1, f2);
        rig.Retarget(Global, 1, g2);
        ulong cr0 = rig.Cpu.Cr0Value;
        long before = rig.Mmu.Counters.Flushes(FlushKind.Cr0PagingChange);
        rig.Cpu.SetCr0(cr0 & ~Cr0.PG);
        Assert.That(rig.TlbEntries, Is.Zero);
        Assert.That(rig.PscEntries, Is.Zero);
        rig.Cpu.SetCr0(cr0);
        Assert.That(rig.Cpu.LongModeActive, Is.True);
        Assert.That(rig.Read(Global), Is.EqualTo(TlbRig.Marker(g2)));
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr0PagingChange), Is.EqualTo(before + 2), "PG 1 to 0, then PG 0 to 1");
    }

    [Test]
    public void Cr0_write_that_keeps_pg_does_not_invalidate()
    {
        var rig = new TlbRig();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);
        rig.Retarget(Va, 1, rig.NewFrame4K());
        long before = rig.Mmu.Counters.Flushes(FlushKind.Cr0PagingChange);
        rig.Cpu.SetCr0(rig.Cpu.Cr0Value ^ Cr0.WP);
        rig.Cpu.SetCr0(rig.Cpu.Cr0Value ^ Cr0.AM);
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)));
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr0PagingChange), Is.EqualTo(before));
    }
}
