using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests;

public sealed class WalkerBasicsTests
{
    private const PteFlags RW = PteFlags.Writable;

    [Test]
    public void Read_through_4k_mapping_reaches_physical_page_and_sets_accessed_only()
    {
        var m = new TestMachine();
        m.Tables.Map(0x4000_0000, 0x20_0000, PageSize.Size4K, RW);
        m.Bus.Write(0x20_0010, 8, 0x1122334455667788, BusAttributes.Host);
        var r = m.Mmu.Read(0x4000_0010, 8, Privilege.Supervisor, out ulong v);
        Assert.That(r.Ok, Is.True, r.ToString());
        Assert.That(v, Is.EqualTo(0x1122334455667788UL));
        ulong pte = m.Tables.ReadEntry(0x4000_0000, 1);
        Assert.That(pte & 0x20, Is.EqualTo(0x20UL), "A set on the PTE");
        Assert.That(pte & 0x40, Is.Zero, "D not set by a read");
        for (int level = 4; level >= 2; level--)
            Assert.That(m.Tables.ReadEntry(0x4000_0000, level) & 0x20, Is.EqualTo(0x20UL), $"A set at level {level}");
    }

    [Test]
    public void Write_through_clean_tlb_entry_walks_again_and_sets_dirty()
    {
        var m = new TestMachine();
        m.Tables.Map(0x4000_0000, 0x20_0000, PageSize.Size4K, RW);
        Assert.That(m.Mmu.Read(0x4000_0000, 4, Privilege.Supervisor, out _).Ok);
        long walks = m.Mmu.Counters.Walks;
        Assert.That(m.Mmu.Write(0x4000_0000, 4, 7, Privilege.Supervisor).Ok);
        Assert.That(m.Mmu.Counters.Walks, Is.EqualTo(walks + 1));
        Assert.That(m.Tables.ReadEntry(0x4000_0000, 1) & 0x40, Is.EqualTo(0x40UL));
        Assert.That(m.Mmu.Write(0x4000_0000, 4, 8, Privilege.Supervisor).Ok);
        Assert.That(m.Mmu.Counters.Walks, Is.EqualTo(walks + 1), "dirty entry: no further walk");
    }

    [Test]
    public void Non_canonical_address_is_gp_not_pf()
    {
        var m = new TestMachine();
        var f = m.Mmu.Translate(0x0000_8000_0000_0000, AccessKind.Read, Privilege.Supervisor, out _);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(f.Rule, Is.EqualTo(FaultRule.NonCanonical));
    }

    [Test]
    public void Reserved_bit_fault_reports_present_and_rsvd()
    {
        var m = new TestMachine();
        m.Tables.Map(0x4000_0000, 0x20_0000, PageSize.Size4K, RW);
        m.Tables.WriteEntry(0x4000_0000, 1, m.Tables.ReadEntry(0x4000_0000, 1) | (1UL << 45));
        var f = m.Mmu.Translate(0x4000_0000, AccessKind.Read, Privilege.Supervisor, out _);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That((uint)f.ErrorCode, Is.EqualTo(0x9u));
        Assert.That(f.Level, Is.EqualTo(1));
    }

    [Test]
    public void Explanation_names_level_and_bit_of_user_write_to_supervisor_pde()
    {
        var m = new TestMachine();
        m.Tables.Map(0x4000_0000, 0x20_0000, PageSize.Size4K, RW | PteFlags.User);
        m.Tables.WriteEntry(0x4000_0000, 2, m.Tables.ReadEntry(0x4000_0000, 2) & ~(ulong)PteFlags.User);
        var e = m.Mmu.Explain(0x4000_0000, AccessKind.Write, Privilege.User);
        Assert.That(e.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User));
        Assert.That(e.Verdict, Does.Contain("user-mode write; the PDE has U/S=0"));
        Assert.That(e.Steps, Has.Count.EqualTo(4));
    }
}

public sealed class RangeAccessTests
{
    [Test]
    public void Page_crossing_write_that_faults_on_the_second_page_writes_nothing_and_reports_cr2_of_that_page()
    {
        var m = new TestMachine();
        m.Tables.Map(0x4000_0000, 0x20_0000, PageSize.Size4K, PteFlags.Writable);
        var r = m.Mmu.Write(0x4000_0FFC, 8, 0x1122334455667788, Privilege.Supervisor);
        Assert.That(r.Fault.Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(r.Fault.Address, Is.EqualTo(0x4000_1000UL));
        Assert.That(r.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Write));
        Assert.That(m.Phys(0x20_0FF8), Is.Zero, "the first page is unchanged");
    }

    [Test]
    public void Range_read_wrapping_past_the_top_of_the_address_space_translates_the_wrapped_part()
    {
        var m = new TestMachine();
        m.Tables.Map(0xFFFF_FFFF_FFFF_F000, 0x20_0000, PageSize.Size4K, PteFlags.Writable);
        m.Bus.Write(0x20_0FFC, 4, 0xAABBCCDD, HwMemModel.Bus.BusAttributes.Host);
        var buf = new byte[8];
        var r = m.Mmu.ReadBytes(0xFFFF_FFFF_FFFF_FFFC, buf, Privilege.Supervisor);
        Assert.That(r.Fault.Kind, Is.EqualTo(FaultKind.PageFault), "address 0 is not mapped");
        Assert.That(r.Fault.Address, Is.Zero);
        m.Tables.Map(0, 0x30_0000, PageSize.Size4K, PteFlags.Writable);
        m.Bus.Write(0x30_0000, 4, 0x11223344, HwMemModel.Bus.BusAttributes.Host);
        Assert.That(m.Mmu.ReadBytes(0xFFFF_FFFF_FFFF_FFFC, buf, Privilege.Supervisor).Ok);
        Assert.That(BitConverter.ToUInt64(buf), Is.EqualTo(0x11223344_AABBCCDDUL));
    }
}
