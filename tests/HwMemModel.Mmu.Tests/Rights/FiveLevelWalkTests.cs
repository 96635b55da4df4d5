using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>5-level paging (CR4.LA57): 57-bit linear addresses, PML5 indexed by bits 56:48 (SDM Vol. 3A §4.5).</summary>
public sealed class FiveLevelWalkTests
{
    private const PteFlags RwUser = PteFlags.Writable | PteFlags.User;

    [TestCase(0x00AB_CDEF_1234_5678UL)]  // low half, PML5 index 0xAB
    [TestCase(0xFF12_3456_789A_BCDEUL)]  // high half, PML5 index 0x112
    [TestCase(0x0000_0000_0040_0010UL)]  // PML5 index 0
    public void Read_through_pml5_reaches_the_page_and_sets_accessed_at_all_five_levels(ulong va)
    {
        var m = new TestMachine(fiveLevel: true);
        const ulong pa = 0x0567_8000UL;
        m.Tables.Map(va & ~0xFFFUL, pa, PageSize.Size4K, RwUser);
        m.Bus.Write(pa | (va & 0xFF8), 8, 0x0123_4567_89AB_CDEFUL, BusAttributes.Host);

        var r = m.Mmu.Read(va & ~7UL, 8, Privilege.User, out ulong value);

        Assert.That(r.Ok, Is.True, r.ToString());
        Assert.That(value, Is.EqualTo(0x0123_4567_89AB_CDEFUL));
        Assert.That(m.Mmu.Translate(va, AccessKind.Read, Privilege.User, out var t).IsFault, Is.False);
        Assert.That(t.PhysicalAddress, Is.EqualTo(pa | (va & 0xFFF)));
        for (int level = 5; level >= 1; level--)
        {
            ulong e = m.Tables.ReadEntry(va, level);
            Assert.That(e & 0x20, Is.EqualTo(0x20UL), $"A set in the {PageGeometry.EntryName(level)}");
            Assert.That(e & 0x40, Is.Zero, $"D not set in the {PageGeometry.EntryName(level)} by a read");
        }
        ulong pml5Index = (va >> 48) & 511;
        Assert.That(m.Tables.EntryAddress(va, 5), Is.EqualTo(m.Tables.Root + pml5Index * 8), "the PML5E is indexed by bits 56:48");
    }

    [Test]
    public void Write_through_pml5_sets_dirty_only_in_the_leaf()
    {
        var m = new TestMachine(fiveLevel: true);
        const ulong va = 0x00A3_4567_8900_0000UL;
        m.Tables.Map(va, 0x0600_0000UL, PageSize.Size4K, RwUser);
        Assert.That(m.Mmu.Write(va + 8, 8, 1, Privilege.User).Ok, Is.True);
        Assert.That(m.Tables.ReadEntry(va, 1) & 0x60, Is.EqualTo(0x60UL), "A and D in the PTE");
        for (int level = 5; level >= 2; level--)
            Assert.That(m.Tables.ReadEntry(va, level) & 0x60, Is.EqualTo(0x20UL), $"A only in the {PageGeometry.EntryName(level)}");
    }

    [TestCase(PageSize.Size2M, 0x00F0_0000_0020_0000UL, 0x0060_0000UL)]
    [TestCase(PageSize.Size1G, 0xFFF0_0000_4000_0000UL, 0x4000_0000UL)]
    public void Large_pages_translate_under_5_level_paging(PageSize size, ulong va, ulong pa)
    {
        var m = new TestMachine(fiveLevel: true);
        m.Tables.Map(va, pa, size, RwUser);
        ulong offset = size.Bytes() - 0x18;
        var f = m.Mmu.Translate(va + offset, AccessKind.Write, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That((t.PhysicalAddress, t.PageSize), Is.EqualTo((pa + offset, size)));
        Assert.That(m.Tables.ReadEntry(va, size.LeafLevel()) & 0x60, Is.EqualTo(0x60UL));
        Assert.That(m.Tables.ReadEntry(va, 5) & 0x20, Is.EqualTo(0x20UL));
    }

    [Test]
    public void Addresses_differing_only_in_bits_56_to_48_map_to_different_pages()
    {
        var m = new TestMachine(fiveLevel: true);
        const ulong a = 0x0001_0000_0000_0000UL, b = 0x0002_0000_0000_0000UL;
        m.Tables.Map(a, 0x0070_0000UL, PageSize.Size4K, RwUser);
        m.Tables.Map(b, 0x0080_0000UL, PageSize.Size4K, RwUser);
        Assert.That(m.Mmu.Translate(a + 4, AccessKind.Read, Privilege.User, out var ta).IsFault, Is.False);
        Assert.That(m.Mmu.Translate(b + 4, AccessKind.Read, Privilege.User, out var tb).IsFault, Is.False);
        Assert.That((ta.PhysicalAddress, tb.PhysicalAddress), Is.EqualTo((0x0070_0004UL, 0x0080_0004UL)));
        var f = m.Mmu.Translate(0x0003_0000_0000_0000UL, AccessKind.Read, Privilege.User, out _);
        Assert.That((f.Kind, (uint)f.ErrorCode, f.Level), Is.EqualTo((FaultKind.PageFault, 0x4u, 5)), "the PML5E for index 3 is not present");
    }

    [TestCase(false, true, false, AccessKind.Read, Privilege.User, 0x5u)]        // U/S=0 in the PML5E
    [TestCase(true, false, false, AccessKind.Write, Privilege.User, 0x7u)]       // R/W=0 in the PML5E
    [TestCase(true, false, false, AccessKind.Write, Privilege.Supervisor, 0x3u)] // R/W=0 in the PML5E, CR0.WP=1
    [TestCase(true, true, true, AccessKind.Execute, Privilege.User, 0x15u)]      // XD in the PML5E
    [TestCase(true, true, true, AccessKind.Read, Privilege.User, null)]
    public void Pml5e_rights_take_part_in_the_combined_rights(bool user, bool writable, bool xd, AccessKind kind, Privilege privilege, uint? code)
    {
        var rig = new RightsRig(PageSize.Size4K, 0x00CD_0000_0000_1000UL, 0x0090_0000UL, fiveLevel: true);
        rig.WriteEntry(5, rig.NonLeafValue(5, new EntryRights(writable, user, xd)));
        var f = rig.Mmu.Translate(rig.Va, kind, privilege, out _);
        if (code is { } c)
        {
            Assert.That((f.Kind, (uint)f.ErrorCode), Is.EqualTo((FaultKind.PageFault, c)), f.ToString());
            Assert.That(rig.ReadEntry(1) & 0x60, Is.Zero, "the faulting access leaves the PTE unchanged");
        }
        else
            Assert.That(f.IsFault, Is.False, f.ToString());
    }

    [Test]
    public void Explain_under_5_level_paging_lists_the_pml5e_first()
    {
        var m = new TestMachine(fiveLevel: true);
        const ulong va = 0x00AB_0000_0000_0000UL;
        m.Tables.Map(va, 0x00A0_0000UL, PageSize.Size4K, RwUser);
        var e = m.Mmu.Explain(va, AccessKind.Read, Privilege.User);
        Assert.That(e.Steps.Select(s => s.Level), Is.EqualTo(new[] { 5, 4, 3, 2, 1 }));
        Assert.That(e.Steps[0].Name, Is.EqualTo("PML5E"));
        Assert.That(e.Steps[0].EntryAddress, Is.EqualTo(m.Tables.Root + 0xAB * 8));
        Assert.That(e.ControlState, Does.Contain("5-level"));
    }
}
