using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>
/// Reserved bits of IA-32e paging-structure entries (SDM Vol. 3A §4.5, Tables 4-15 to 4-20, and §4.7):
/// bits 51:MAXPHYADDR of every entry, XD when EFER.NXE=0, PS in a PML4E/PML5E, bits 29:13 of a 1 GiB leaf and 20:13
/// of a 2 MiB leaf, PS in a PDPTE without 1 GiB page support. A reserved bit in a present entry gives #PF with P=1 and
/// RSVD=1 (QEMU 7.2 reports RSVD without P); reserved bits are not checked in an entry with P=0.
/// </summary>
public sealed class ReservedBitTests
{
    private const ulong Va = 0x0000_0012_3456_7ABCUL;
    private const ulong Pa = 0x0345_6000UL;
    private const PageFaultErrorCode P = PageFaultErrorCode.Present, Rsvd = PageFaultErrorCode.ReservedBit;

    private static RightsRig Rig4K(CpuFeatures? features = null, bool fiveLevel = false, ulong va = Va)
        => new(PageSize.Size4K, va, Pa, fiveLevel, features: features);

    private static void SetBit(RightsRig rig, int level, int bit) => rig.WriteEntry(level, rig.ReadEntry(level) | (1UL << bit));

    private static void AssertReservedFault(RightsRig rig, ulong va, AccessKind kind, Privilege privilege, uint code, int level)
    {
        ulong leafBefore = rig.ReadEntry(rig.LeafLevel);
        var f = rig.Mmu.Translate(va, kind, privilege, out _);
        Assert.Multiple(() =>
        {
            Assert.That(f.Kind, Is.EqualTo(FaultKind.PageFault), f.ToString());
            Assert.That((uint)f.ErrorCode, Is.EqualTo(code), f.ToString());
            Assert.That(f.Address, Is.EqualTo(va), "CR2");
            Assert.That(f.Level, Is.EqualTo(level), "the entry holding the reserved bit");
            Assert.That(rig.ReadEntry(rig.LeafLevel), Is.EqualTo(leafBefore), "the leaf is unchanged (no A, no D)");
        });
    }

    [Test]
    public void Address_bits_at_or_above_maxphyaddr_40_are_reserved_in_every_entry([Values(4, 3, 2, 1)] int level, [Values(40, 44, 51)] int bit)
    {
        var rig = Rig4K();
        SetBit(rig, level, bit);
        AssertReservedFault(rig, Va, AccessKind.Read, Privilege.Supervisor, 0x9, level);
    }

    [Test]
    public void Address_bits_at_or_above_maxphyaddr_are_reserved_in_large_leaves([Values(PageSize.Size2M, PageSize.Size1G)] PageSize size, [Values(40, 51)] int bit)
    {
        var rig = new RightsRig(size, 0x0000_0080_0000_0000UL, 0x4000_0000UL);
        SetBit(rig, rig.LeafLevel, bit);
        AssertReservedFault(rig, rig.Va, AccessKind.Write, Privilege.Supervisor, 0xB, rig.LeafLevel);
    }

    [TestCase(AccessKind.Read, Privilege.Supervisor, 0x9u)]
    [TestCase(AccessKind.Write, Privilege.Supervisor, 0xBu)]
    [TestCase(AccessKind.Read, Privilege.User, 0xDu)]
    [TestCase(AccessKind.Write, Privilege.User, 0xFu)]
    [TestCase(AccessKind.Execute, Privilege.Supervisor, 0x19u)]
    [TestCase(AccessKind.Execute, Privilege.User, 0x1Du)]
    [TestCase(AccessKind.Read, Privilege.ImplicitSupervisor, 0x9u)]
    [TestCase(AccessKind.Write, Privilege.ImplicitSupervisor, 0xBu)]
    public void Reserved_bit_error_code_has_p_and_rsvd_plus_the_access_bits(AccessKind kind, Privilege privilege, uint code)
    {
        var rig = Rig4K();
        rig.Cpu.Cpl = privilege == Privilege.Supervisor ? 0 : 3;
        SetBit(rig, 1, 51);
        AssertReservedFault(rig, Va, kind, privilege, code, 1);
    }

    [Test]
    public void Reserved_bit_fault_is_reported_even_where_rights_would_also_deny()
    {
        // No valid translation exists, so the fault is a reserved-bit fault: user write to a read-only supervisor PTE.
        var rig = Rig4K();
        rig.WriteEntry(1, rig.LeafValue(new EntryRights(false, false, false)) | (1UL << 47));
        AssertReservedFault(rig, Va, AccessKind.Write, Privilege.User, 0xF, 1);
    }

    [Test]
    public void Maxphyaddr_46_reserves_bits_46_to_51_in_every_entry([Values(4, 3, 2, 1)] int level, [Values(46, 51)] int bit)
    {
        var rig = Rig4K(new CpuFeatures { MaxPhysAddrBits = 46 });
        SetBit(rig, level, bit);
        AssertReservedFault(rig, Va, AccessKind.Read, Privilege.Supervisor, 0x9, level);
    }

    [Test]
    public void Maxphyaddr_46_leaves_bits_40_to_45_of_a_leaf_as_address_bits([Values(40, 45)] int bit)
    {
        var rig = Rig4K(new CpuFeatures { MaxPhysAddrBits = 46 });
        SetBit(rig, 1, bit);
        var f = rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.PhysicalAddress, Is.EqualTo(Pa | (1UL << bit) | (Va & 0xFFF)));
    }

    [Test]
    public void Maxphyaddr_52_has_no_reserved_address_bits()
    {
        var rig = Rig4K(new CpuFeatures { MaxPhysAddrBits = 52 });
        SetBit(rig, 1, 51);
        var f = rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.PhysicalAddress, Is.EqualTo(Pa | (1UL << 51) | (Va & 0xFFF)));
    }

    [Test]
    public void Maxphyaddr_36_reserves_bits_36_to_39([Values(4, 3, 2, 1)] int level, [Values(36, 39)] int bit)
    {
        var bus = new PhysicalBus(36);
        bus.AddRam("ram", 0, 0x1000_0000);
        var tables = new PageTableBuilder(bus, TestMachine.PoolBase, TestMachine.PoolSize);
        tables.Map(Va & ~0xFFFUL, Pa, PageSize.Size4K, PteFlags.Writable | PteFlags.User);
        var cpu = new CpuContext(bus, 0, new CpuFeatures { MaxPhysAddrBits = 36 });
        cpu.EnterLongMode(tables.Root);
        tables.WriteEntry(Va, level, tables.ReadEntry(Va, level) | (1UL << bit));
        var f = cpu.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out _);
        Assert.That((f.Kind, (uint)f.ErrorCode, f.Level), Is.EqualTo((FaultKind.PageFault, 0x9u, level)), f.ToString());
    }

    [Test]
    public void Xd_is_reserved_while_nxe_is_0([Values(4, 3, 2, 1)] int level)
    {
        var rig = Rig4K();
        rig.Cpu.SetEfer(rig.Cpu.EferValue & ~Efer.NXE);
        SetBit(rig, level, 63);
        AssertReservedFault(rig, Va, AccessKind.Read, Privilege.Supervisor, 0x9, level);
    }

    [Test]
    public void Xd_in_the_pml5e_is_reserved_while_nxe_is_0()
    {
        var rig = Rig4K(fiveLevel: true);
        rig.Cpu.SetEfer(rig.Cpu.EferValue & ~Efer.NXE);
        SetBit(rig, 5, 63);
        AssertReservedFault(rig, Va, AccessKind.Write, Privilege.Supervisor, 0xB, 5);
    }

    [Test]
    public void Xd_is_not_reserved_while_nxe_is_1([Values(4, 3, 2, 1)] int level)
    {
        var rig = Rig4K();
        SetBit(rig, level, 63);
        Assert.That(rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out _).IsFault, Is.False);
    }

    [Test]
    public void Ps_in_a_pml4e_is_reserved()
    {
        var rig = Rig4K();
        SetBit(rig, 4, 7);
        AssertReservedFault(rig, Va, AccessKind.Read, Privilege.Supervisor, 0x9, 4);
    }

    [Test]
    public void Ps_in_a_pml5e_is_reserved()
    {
        var rig = Rig4K(fiveLevel: true);
        SetBit(rig, 5, 7);
        AssertReservedFault(rig, Va, AccessKind.Read, Privilege.Supervisor, 0x9, 5);
    }

    [Test]
    public void Ps_in_a_pml4e_under_5_level_paging_is_reserved()
    {
        var rig = Rig4K(fiveLevel: true);
        SetBit(rig, 4, 7);
        AssertReservedFault(rig, Va, AccessKind.Read, Privilege.User, 0xD, 4);
    }

    [Test]
    public void Bits_29_to_13_of_a_1g_leaf_are_reserved([Range(13, 29)] int bit)
    {
        var rig = new RightsRig(PageSize.Size1G, 0x0000_0080_0000_0000UL, 0x4000_0000UL);
        SetBit(rig, 3, bit);
        AssertReservedFault(rig, rig.Va, AccessKind.Read, Privilege.Supervisor, 0x9, 3);
    }

    [Test]
    public void Bits_20_to_13_of_a_2m_leaf_are_reserved([Range(13, 20)] int bit)
    {
        var rig = new RightsRig(PageSize.Size2M, 0x0000_0080_0020_0000UL, 0x0060_0000UL);
        SetBit(rig, 2, bit);
        AssertReservedFault(rig, rig.Va, AccessKind.Read, Privilege.Supervisor, 0x9, 2);
    }

    [Test]
    public void Bit_12_of_a_large_leaf_is_pat_not_reserved([Values(PageSize.Size2M, PageSize.Size1G)] PageSize size)
    {
        var rig = new RightsRig(size, 0x0000_0080_0000_0000UL + 0x1234, 0x4000_0000UL);
        SetBit(rig, rig.LeafLevel, 12);
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.PhysicalAddress, Is.EqualTo(0x4000_0000UL + 0x1234), "bit 12 is not an address bit in a large leaf");
        Assert.That(t.PageSize, Is.EqualTo(size));
    }

    [Test]
    public void Ps_in_a_pdpte_is_reserved_without_1g_page_support()
    {
        var rig = new RightsRig(PageSize.Size1G, 0x0000_0080_0000_0000UL, 0x4000_0000UL, features: new CpuFeatures { Pages1G = false });
        AssertReservedFault(rig, rig.Va, AccessKind.Read, Privilege.Supervisor, 0x9, 3);
    }

    [Test]
    public void Two_mib_pages_still_work_without_1g_page_support()
    {
        var rig = new RightsRig(PageSize.Size2M, 0x0000_0080_0020_0000UL, 0x0060_0000UL, features: new CpuFeatures { Pages1G = false });
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.PageSize, Is.EqualTo(PageSize.Size2M));
    }

    [TestCase(AccessKind.Read, Privilege.Supervisor, 0x0u)]
    [TestCase(AccessKind.Write, Privilege.Supervisor, 0x2u)]
    [TestCase(AccessKind.Read, Privilege.User, 0x4u)]
    [TestCase(AccessKind.Write, Privilege.User, 0x6u)]
    [TestCase(AccessKind.Execute, Privilege.Supervisor, 0x10u)]
    [TestCase(AccessKind.Execute, Privilege.User, 0x14u)]
    public void Not_present_entry_with_reserved_bits_is_a_not_present_fault(AccessKind kind, Privilege privilege, uint code)
    {
        foreach (int level in new[] { 4, 3, 2, 1 })
        {
            var rig = Rig4K();
            // P=0 with bits 51:40, PS, bits 20:13 and XD set: none of them is checked in a not-present entry.
            ulong junk = (rig.ReadEntry(level) & ~1UL) | 0x000F_F000_0000_0000UL | RightsRig.PS | 0x1F_E000UL | RightsRig.XdBit;
            rig.WriteEntry(level, junk);
            var f = rig.Mmu.Translate(Va, kind, privilege, out _);
            Assert.That((f.Kind, (uint)f.ErrorCode, f.Level, f.Address), Is.EqualTo((FaultKind.PageFault, code, level, Va)), $"P=0 at the {PageGeometry.EntryName(level)}: {f}");
            Assert.That(rig.ReadEntry(level), Is.EqualTo(junk), "a not-present entry is not written");
        }
    }

    [Test]
    public void Not_present_entry_with_xd_set_is_not_present_even_when_nxe_is_0()
    {
        var rig = Rig4K();
        rig.Cpu.SetEfer(rig.Cpu.EferValue & ~Efer.NXE);
        rig.WriteEntry(1, (rig.ReadEntry(1) & ~1UL) | RightsRig.XdBit);
        var f = rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out _);
        Assert.That((uint)f.ErrorCode, Is.EqualTo(0x0u), f.ToString());
    }

    [Test]
    public void Reserved_bit_fault_error_code_is_9_not_qemus_8()
    {
        var rig = Rig4K();
        SetBit(rig, 2, 50);
        var f = rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out _);
        Assert.That(f.ErrorCode, Is.EqualTo(P | Rsvd));
    }
}
