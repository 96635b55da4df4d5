using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>
/// Canonical addresses (SDM Vol. 1 §3.3.7.1, Vol. 3A §4.5): with 4-level paging bits 63:48 must be copies of bit 47;
/// with 5-level paging bits 63:57 copies of bit 56. A non-canonical access is #GP(0), never #PF, and does not walk the
/// page tables.
/// </summary>
public sealed class CanonicalAddressTests
{
    private static readonly (AccessKind, Privilege)[] AllAccesses =
    [
        (AccessKind.Read, Privilege.Supervisor), (AccessKind.Write, Privilege.Supervisor), (AccessKind.Execute, Privilege.Supervisor),
        (AccessKind.Read, Privilege.User), (AccessKind.Write, Privilege.User), (AccessKind.Execute, Privilege.User),
        (AccessKind.Read, Privilege.ImplicitSupervisor), (AccessKind.Write, Privilege.ImplicitSupervisor),
    ];

    [TestCase(0x0000_8000_0000_0000UL)]  // bit 47 set, 63:48 clear
    [TestCase(0xFFFF_7FFF_FFFF_FFFFUL)]  // bit 47 clear, 63:48 set
    [TestCase(0x8000_0000_0000_0000UL)]
    [TestCase(0x0001_0000_0000_0000UL)]
    [TestCase(0x00FF_FFFF_FFFF_F000UL)]  // canonical only with 5-level paging
    public void Non_canonical_address_with_4_level_paging_is_gp_not_pf(ulong va)
        => AssertGeneralProtection(new TestMachine(), va);

    [TestCase(0x0100_0000_0000_0000UL)]  // bit 56 set, 63:57 clear
    [TestCase(0xFEFF_FFFF_FFFF_FFFFUL)]  // bit 56 clear, 63:57 set
    [TestCase(0x8000_0000_0000_0000UL)]
    [TestCase(0x7FFF_FFFF_FFFF_FFFFUL)]
    public void Non_canonical_address_with_5_level_paging_is_gp_not_pf(ulong va)
        => AssertGeneralProtection(new TestMachine(fiveLevel: true), va);

    [TestCase(false, 0x0000_7FFF_FFFF_F000UL)]
    [TestCase(false, 0xFFFF_8000_0000_0000UL)]
    [TestCase(true, 0x00FF_FFFF_FFFF_F000UL)]
    [TestCase(true, 0xFF00_0000_0000_0000UL)]
    [TestCase(true, 0x0000_8000_0000_0000UL)]
    public void Canonical_unmapped_address_is_a_not_present_pf(bool fiveLevel, ulong va)
    {
        var m = new TestMachine(fiveLevel: fiveLevel);
        var f = m.Mmu.Translate(va, AccessKind.Write, Privilege.User, out _);
        Assert.That((f.Kind, (uint)f.ErrorCode, f.Address), Is.EqualTo((FaultKind.PageFault, 0x6u, va)), f.ToString());
    }

    [TestCase(0x0000_8000_0000_0000UL)]
    [TestCase(0x00FF_8000_1234_5000UL)]
    [TestCase(0xFF00_7FFF_FFFF_F000UL)]
    public void Address_canonical_only_under_5_level_paging_translates_there_and_is_gp_under_4_level(ulong va)
    {
        const ulong pa = 0x0456_7000UL;
        var five = new TestMachine(fiveLevel: true);
        five.Tables.Map(va, pa, PageSize.Size4K, PteFlags.Writable | PteFlags.User);
        var f5 = five.Mmu.Translate(va + 0x10, AccessKind.Write, Privilege.User, out var t);
        Assert.That(f5.IsFault, Is.False, f5.ToString());
        Assert.That(t.PhysicalAddress, Is.EqualTo(pa + 0x10));

        AssertGeneralProtection(new TestMachine(), va + 0x10);
    }

    [Test]
    public void Non_canonical_access_through_read_and_write_reports_gp_and_touches_nothing()
    {
        var m = new TestMachine();
        m.Tables.Map(0, 0x20_0000, PageSize.Size4K, PteFlags.Writable);
        var r = m.Mmu.Read(0x0000_8000_0000_0000UL, 8, Privilege.Supervisor, out ulong v);
        var w = m.Mmu.Write(0xFFFF_0000_0000_0000UL, 8, 0x55, Privilege.Supervisor);
        Assert.That(r.Fault.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(r.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.None));
        Assert.That(v, Is.Zero);
        Assert.That(w.Fault.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(m.Mmu.Counters.PageFaults, Is.Zero);
    }

    private static void AssertGeneralProtection(TestMachine m, ulong va)
    {
        // Map the address with its upper bits dropped, so a walk that ignored canonicality would succeed.
        ulong low = va & (m.Cpu.FiveLevel ? 0x01FF_FFFF_FFFF_F000UL : 0x0000_FFFF_FFFF_F000UL);
        m.Tables.Map(low, 0x20_0000, PageSize.Size4K, PteFlags.Writable | PteFlags.User);
        foreach (var (kind, privilege) in AllAccesses)
        {
            m.Mmu.FlushAll();
            long walks = m.Mmu.Counters.Walks, pfs = m.Mmu.Counters.PageFaults;
            var f = m.Mmu.Translate(va, kind, privilege, out _);
            string what = $"{SdmAccessRights.Describe(kind, privilege)} at 0x{va:x16}";
            Assert.Multiple(() =>
            {
                Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection), what + ": " + f);
                Assert.That(f.ErrorCode, Is.EqualTo(PageFaultErrorCode.None), what + ": #GP(0) has error code 0");
                Assert.That(f.Vector, Is.EqualTo(13), what);
                Assert.That(m.Mmu.Counters.Walks, Is.EqualTo(walks), what + ": no page walk");
                Assert.That(m.Mmu.Counters.PageFaults, Is.EqualTo(pfs), what + ": no #PF counted");
            });
        }
        Assert.That(m.Tables.ReadEntry(low, 1) & RightsRig.A, Is.Zero, "the PTE of the truncated address was never used");
    }
}
