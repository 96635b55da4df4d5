using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary><see cref="Mmu.Explain(ulong, AccessKind, Privilege)"/>: every level visited, the rule in words, no side effects.</summary>
public sealed class WalkExplanationTests
{
    private const ulong Va = 0x0000_0033_4455_6678UL;
    private const ulong Pa = 0x0345_6000UL;

    private static RightsRig Rig() => new(PageSize.Size4K, Va, Pa);

    private static ulong[] Snapshot(RightsRig rig) => rig.PathLevels.Select(rig.ReadEntry).ToArray();

    [Test]
    public void Explain_lists_every_level_with_entry_address_and_raw_value()
    {
        var rig = Rig();
        var e = rig.Mmu.Explain(Va, AccessKind.Read, Privilege.User);
        Assert.That(e.Steps.Select(s => s.Level), Is.EqualTo(new[] { 4, 3, 2, 1 }));
        Assert.That(e.Steps.Select(s => s.Name), Is.EqualTo(new[] { "PML4E", "PDPTE", "PDE", "PTE" }));
        foreach (var s in e.Steps)
        {
            Assert.That(s.EntryAddress, Is.EqualTo(rig.EntryAddress(s.Level)), $"{s.Name} address");
            Assert.That(s.Raw, Is.EqualTo(rig.ReadEntry(s.Level)), $"{s.Name} raw value");
            Assert.That(s.Index, Is.EqualTo((int)((Va >> PageGeometry.LevelShift(s.Level)) & 511)), $"{s.Name} index");
            Assert.That(s.IsLeaf, Is.EqualTo(s.Level == 1));
        }
        Assert.That(e.Fault.IsFault, Is.False);
        Assert.That(e.Translation?.PhysicalAddress, Is.EqualTo(Pa | (Va & 0xFFF)));
        Assert.That(e.ToString(), Does.Contain($"0x{rig.EntryAddress(1):x16}"));
    }

    [Test]
    public void Explain_for_a_2m_leaf_stops_at_the_pde()
    {
        var rig = new RightsRig(PageSize.Size2M, 0x0000_0033_4460_0000UL, 0x0060_0000UL);
        var e = rig.Mmu.Explain(rig.Va, AccessKind.Write, Privilege.Supervisor);
        Assert.That(e.Steps.Select(s => (s.Level, s.IsLeaf)), Is.EqualTo(new[] { (4, false), (3, false), (2, true) }));
        Assert.That(e.Translation?.PageSize, Is.EqualTo(PageSize.Size2M));
    }

    [Test]
    public void User_write_with_supervisor_pde_names_the_pde_and_us_0()
    {
        var rig = Rig();
        rig.WriteEntry(2, rig.NonLeafValue(2, new EntryRights(true, false, false)));
        var e = rig.Mmu.Explain(Va, AccessKind.Write, Privilege.User);
        Assert.That(e.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User));
        Assert.That(e.Fault.Level, Is.EqualTo(2));
        Assert.That(e.Verdict, Does.Contain("PDE").And.Contain("U/S=0"));
        Assert.That(e.Verdict, Does.Contain("0x7"));
    }

    [Test]
    public void Supervisor_write_with_read_only_pdpte_names_the_pdpte_and_wp()
    {
        var rig = Rig();
        rig.WriteEntry(3, rig.NonLeafValue(3, new EntryRights(false, true, false)));
        var e = rig.Mmu.Explain(Va, AccessKind.Write, Privilege.Supervisor);
        Assert.That(e.Fault.Level, Is.EqualTo(3));
        Assert.That(e.Verdict, Does.Contain("PDPTE").And.Contain("R/W=0").And.Contain("CR0.WP=1"));
    }

    [Test]
    public void Smap_fault_is_explained_as_smap()
    {
        var rig = Rig();
        rig.Apply(new RightsControls(Wp: true, Nxe: true, Smep: false, Smap: true, Ac: false, Pke: false, Pkru: 0));
        var e = rig.Mmu.Explain(Va, AccessKind.Read, Privilege.Supervisor);
        Assert.That((uint)e.Fault.ErrorCode, Is.EqualTo(0x1u));
        Assert.That(e.Verdict, Does.Contain("SMAP"));
        Assert.That(e.Verdict, Does.Contain("EFLAGS.AC=0"));
    }

    [Test]
    public void Smep_fault_is_explained_as_smep()
    {
        var rig = Rig();
        rig.Apply(new RightsControls(Wp: true, Nxe: true, Smep: true, Smap: false, Ac: false, Pke: false, Pkru: 0));
        var e = rig.Mmu.Explain(Va, AccessKind.Execute, Privilege.Supervisor);
        Assert.That((uint)e.Fault.ErrorCode, Is.EqualTo(0x11u));
        Assert.That(e.Verdict, Does.Contain("SMEP"));
    }

    [Test]
    public void Protection_key_fault_names_the_key()
    {
        var rig = Rig();
        rig.WriteEntry(1, rig.LeafValue(EntryRights.Permissive, protectionKey: 7));
        rig.Apply(new RightsControls(Wp: true, Nxe: true, Smep: false, Smap: false, Ac: false, Pke: true, Pkru: 1u << 14));
        var e = rig.Mmu.Explain(Va, AccessKind.Read, Privilege.User);
        Assert.That((uint)e.Fault.ErrorCode, Is.EqualTo(0x25u));
        Assert.That(e.Verdict, Does.Contain("protection key 7"));
    }

    [Test]
    public void Reserved_bit_fault_names_the_entry_and_maxphyaddr()
    {
        var rig = Rig();
        rig.WriteEntry(3, rig.ReadEntry(3) | (1UL << 45));
        var e = rig.Mmu.Explain(Va, AccessKind.Read, Privilege.Supervisor);
        Assert.That((uint)e.Fault.ErrorCode, Is.EqualTo(0x9u));
        Assert.That(e.Steps, Has.Count.EqualTo(2), "the walk stops at the PDPTE");
        Assert.That(e.Verdict, Does.Contain("PDPTE").And.Contain("MAXPHYADDR"));
        Assert.That(e.Verdict, Does.Contain("RSVD=1"));
    }

    [Test]
    public void Not_present_fault_names_the_entry()
    {
        var rig = Rig();
        rig.WriteEntry(2, 0);
        var e = rig.Mmu.Explain(Va, AccessKind.Write, Privilege.User);
        Assert.That((uint)e.Fault.ErrorCode, Is.EqualTo(0x6u));
        Assert.That(e.Steps, Has.Count.EqualTo(3));
        Assert.That(e.Verdict, Does.Contain("PDE").And.Contain("P=0"));
    }

    [Test]
    public void Non_canonical_explanation_says_gp()
    {
        var rig = Rig();
        var e = rig.Mmu.Explain(0x0000_8000_0000_0000UL, AccessKind.Read, Privilege.Supervisor);
        Assert.That(e.Fault.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(e.Steps, Is.Empty);
        Assert.That(e.Verdict, Does.Contain("canonical").And.Contain("#GP(0)"));
    }

    [TestCase(AccessKind.Write, Privilege.Supervisor, false)]
    [TestCase(AccessKind.Read, Privilege.User, false)]
    [TestCase(AccessKind.Write, Privilege.User, true)]
    public void Explain_has_no_side_effects(AccessKind kind, Privilege privilege, bool faulting)
    {
        var rig = Rig();
        if (faulting) rig.WriteEntry(1, rig.LeafValue(new EntryRights(false, true, false)));
        // Warm the TLB for another address, so counters and TLB contents are not trivially empty.
        rig.Machine.Tables.Map(0x0000_0033_4455_0000UL, 0x0200_0000UL, PageSize.Size4K, PteFlags.Writable);
        Assert.That(rig.Mmu.Translate(0x0000_0033_4455_0000UL, AccessKind.Read, Privilege.Supervisor, out _).IsFault, Is.False);

        var entries = Snapshot(rig);
        var c = rig.Mmu.Counters;
        var before = (c.Translations, c.Walks, c.WalkReads, c.AccessedDirtyWrites, c.PageFaults, c.WalksFromPagingStructureCache,
            rig.Mmu.DataTlb.Lookups, rig.Mmu.DataTlb.TotalHits, rig.Mmu.DataTlb.TotalMisses, rig.Mmu.InstructionTlb.Lookups,
            ValidEntries(rig.Mmu));

        var e = rig.Mmu.Explain(Va, kind, privilege);
        Assert.That(e.Fault.IsFault, Is.EqualTo(faulting), e.Verdict);

        var after = (c.Translations, c.Walks, c.WalkReads, c.AccessedDirtyWrites, c.PageFaults, c.WalksFromPagingStructureCache,
            rig.Mmu.DataTlb.Lookups, rig.Mmu.DataTlb.TotalHits, rig.Mmu.DataTlb.TotalMisses, rig.Mmu.InstructionTlb.Lookups,
            ValidEntries(rig.Mmu));
        Assert.That(Snapshot(rig), Is.EqualTo(entries), "no A/D written at any level");
        Assert.That(after, Is.EqualTo(before), "MMU and TLB counters and TLB contents unchanged");

        // The explained access itself then behaves as explained and does set A (and D).
        var f = rig.Mmu.Translate(Va, kind, privilege, out _);
        Assert.That(f, Is.EqualTo(e.Fault));
        if (!faulting)
            Assert.That(rig.ReadEntry(1) & 0x60, Is.EqualTo(kind == AccessKind.Write ? 0x60UL : 0x20UL));
    }

    private static int ValidEntries(Mmu mmu)
        => new[] { mmu.InstructionTlb, mmu.DataTlb, mmu.UnifiedTlb }.SelectMany(l => l.Arrays).Sum(a => a.ValidEntries);
}
