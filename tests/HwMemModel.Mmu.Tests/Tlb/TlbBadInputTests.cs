using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// Host misuse throws with a message saying what is wrong; architectural writes of the same values return #GP(0)
/// and change nothing (SDM Vol. 2A MOV CR, WRMSR; Vol. 3A §2.5, §4.1.1, §4.10.1, §13.12.2).
/// </summary>
public sealed class TlbBadInputTests
{
    private static CpuContext Context(TlbGeometry geometry)
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x100_0000);
        return new CpuContext(bus, 0, null, geometry);
    }

    // ------------------------------------------------------------------ TLB geometry

    [Test]
    public void Geometry_with_entries_not_a_multiple_of_ways_is_rejected()
    {
        var g = new TlbGeometry { DataL1 = [new TlbArrayConfig("DTLB-odd", 10, 4, PageSize.Size4K)] };
        var ex = Assert.Throws<ArgumentException>(() => Context(g));
        Assert.That(ex!.Message, Does.Contain("'DTLB-odd' has 10 entries and 4 ways").And.Contain("multiple of ways"));
    }

    [Test]
    public void Geometry_with_zero_ways_is_rejected()
    {
        var g = new TlbGeometry { InstructionL1 = [new TlbArrayConfig("ITLB-zero", 8, 0, PageSize.Size4K)] };
        var ex = Assert.Throws<ArgumentException>(() => Context(g));
        Assert.That(ex!.Message, Does.Contain("'ITLB-zero'").And.Contain("positive multiple of ways"));
    }

    [Test]
    public void Geometry_with_non_power_of_two_sets_is_rejected()
    {
        var g = new TlbGeometry { UnifiedL2 = [new TlbArrayConfig("STLB-6sets", 12, 2, PageSize.Size4K)] };
        var ex = Assert.Throws<ArgumentException>(() => Context(g));
        Assert.That(ex!.Message, Does.Contain("'STLB-6sets' has 6 sets").And.Contain("power of two"));
    }

    [Test]
    public void Geometry_with_a_page_size_in_two_arrays_of_one_level_is_rejected()
    {
        var g = new TlbGeometry
        {
            DataL1 = [new TlbArrayConfig("D-a", 8, 2, PageSize.Size4K, PageSize.Size2M), new TlbArrayConfig("D-b", 4, 4, PageSize.Size2M)],
        };
        var ex = Assert.Throws<ArgumentException>(() => Context(g));
        Assert.That(ex!.Message, Does.Contain("Page size 2M appears in two arrays of one TLB level ('D-b')"));
    }

    [Test]
    public void Same_page_size_in_different_levels_is_accepted()
    {
        var g = new TlbGeometry
        {
            DataL1 = [new TlbArrayConfig("D", 8, 2, PageSize.Size4K)],
            UnifiedL2 = [new TlbArrayConfig("S", 8, 2, PageSize.Size4K)],
        };
        Assert.DoesNotThrow(() => Context(g));
    }

    [Test]
    public void Geometry_with_an_array_holding_no_page_size_is_rejected()
    {
        var g = new TlbGeometry { DataL1 = [new TlbArrayConfig("D-empty", 8, 2)] };
        var ex = Assert.Throws<ArgumentException>(() => Context(g));
        Assert.That(ex!.Message, Does.Contain("'D-empty' holds no page size"));
    }

    [Test]
    public void Geometry_with_negative_paging_structure_cache_size_is_rejected()
    {
        var g = new TlbGeometry { PdCacheEntries = -1 };
        var ex = Assert.Throws<ArgumentException>(() => Context(g));
        Assert.That(ex!.Message, Does.Contain("PdCacheEntries is -1"));
    }

    // ------------------------------------------------------------------ CR3

    [Test]
    public void SetCr3_with_bit_at_maxphyaddr_is_rejected()
    {
        var rig = new TlbRig();
        ulong cr3 = rig.Cpu.Cr3Value;
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetCr3(rig.Tables.Root | (1UL << 40)));
        Assert.That(ex!.Message, Does.Contain("MAXPHYADDR (40)").And.Contain("bits 63:40 must be 0"));
        Assert.That(rig.Cpu.Cr3Value, Is.EqualTo(cr3));
    }

    [Test]
    public void SetCr3_message_uses_the_cpu_maxphyaddr()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x400_0000);
        var tables = new PageTableBuilder(bus, 0x100_0000, 0x10_0000);
        var cpu = new CpuContext(bus, 0, new CpuFeatures { MaxPhysAddrBits = 46 });
        cpu.EnterLongMode(tables.Root);
        Assert.DoesNotThrow(() => cpu.SetCr3(tables.Root | (1UL << 45)), "bit 45 is below MAXPHYADDR 46");
        var ex = Assert.Throws<ArgumentException>(() => cpu.SetCr3(tables.Root | (1UL << 46)));
        Assert.That(ex!.Message, Does.Contain("MAXPHYADDR (46)"));
    }

    [Test]
    public void WriteCr3_with_bit_above_maxphyaddr_is_gp_and_invalidates_nothing()
    {
        var rig = new TlbRig();
        const ulong va = 0x4000_0000;
        ulong f1 = rig.Map4K(va);
        rig.Read(va);
        rig.Retarget(va, 1, rig.NewFrame4K());
        ulong cr3 = rig.Cpu.Cr3Value;
        long loads = rig.Mmu.Counters.Flushes(FlushKind.Cr3Load);
        var f = rig.Cpu.WriteCr3(rig.Tables.Root | (1UL << 51));
        Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(f.ErrorCode, Is.EqualTo(PageFaultErrorCode.None));
        Assert.That(rig.Cpu.Cr3Value, Is.EqualTo(cr3));
        Assert.That(rig.Mmu.Counters.Flushes(FlushKind.Cr3Load), Is.EqualTo(loads));
        Assert.That(rig.Read(va), Is.EqualTo(TlbRig.Marker(f1)), "the faulting MOV to CR3 did not invalidate");
    }

    // ------------------------------------------------------------------ CR4, CR0, EFER, PAT

    [Test]
    public void SetCr4_with_unsupported_bit_is_rejected()
    {
        var rig = new TlbRig();
        ulong cr4 = rig.Cpu.Cr4Value;
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetCr4(cr4 | (1UL << 13)));   // VMXE: not modelled
        Assert.That(ex!.Message, Does.Contain("sets bit(s) 0x2000 that are reserved or not supported"));
        Assert.That(rig.Cpu.Cr4Value, Is.EqualTo(cr4));
        Assert.That(rig.Cpu.WriteCr4(cr4 | (1UL << 13)).Kind, Is.EqualTo(FaultKind.GeneralProtection));
    }

    [Test]
    public void SetCr4_with_feature_the_cpu_lacks_is_rejected()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x400_0000);
        var tables = new PageTableBuilder(bus, 0x100_0000, 0x10_0000);
        var cpu = new CpuContext(bus, 0, new CpuFeatures { Pcid = false });
        cpu.EnterLongMode(tables.Root);
        var ex = Assert.Throws<ArgumentException>(() => cpu.SetCr4(cpu.Cr4Value | Cr4.PCIDE));
        Assert.That(ex!.Message, Does.Contain("0x20000").And.Contain("not supported by this CPU"));
    }

    [Test]
    public void Clearing_pae_in_long_mode_is_rejected()
    {
        var rig = new TlbRig();
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetCr4(rig.Cpu.Cr4Value & ~Cr4.PAE));
        Assert.That(ex!.Message, Does.Contain("CR4.PAE cannot be cleared while IA-32e mode is active"));
        Assert.That(rig.Cpu.WriteCr4(rig.Cpu.Cr4Value & ~Cr4.PAE).Kind, Is.EqualTo(FaultKind.GeneralProtection));
    }

    [Test]
    public void Changing_la57_in_long_mode_is_rejected()
    {
        var rig = new TlbRig();
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.LA57));
        Assert.That(ex!.Message, Does.Contain("CR4.LA57 cannot change while IA-32e mode is active"));
        var five = new TlbRig(fiveLevel: true);
        Assert.That(five.Cpu.WriteCr4(five.Cpu.Cr4Value & ~Cr4.LA57).Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(five.Cpu.FiveLevel, Is.True);
    }

    [Test]
    public void Setting_pcide_with_nonzero_cr3_low_bits_is_rejected()
    {
        var rig = new TlbRig();
        rig.Cpu.SetCr3(rig.Tables.Root | Cr3.PWT);
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.PCIDE));
        Assert.That(ex!.Message, Does.Contain("Setting CR4.PCIDE requires CR3[11:0] = 0"));
        var f = rig.Cpu.WriteCr4(rig.Cpu.Cr4Value | Cr4.PCIDE);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(rig.Cpu.Cr4Value & Cr4.PCIDE, Is.Zero);
    }

    [Test]
    public void Setting_pcide_outside_long_mode_is_rejected()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x100_0000);
        var cpu = new CpuContext(bus);
        var ex = Assert.Throws<ArgumentException>(() => cpu.SetCr4(Cr4.PAE | Cr4.PCIDE));
        Assert.That(ex!.Message, Does.Contain("CR4.PCIDE can be set only in IA-32e mode"));
    }

    [Test]
    public void SetCr0_with_pg_without_pe_is_rejected()
    {
        var rig = new TlbRig();
        ulong cr0 = rig.Cpu.Cr0Value;
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetCr0(cr0 & ~Cr0.PE));
        Assert.That(ex!.Message, Does.Contain("sets PG without PE"));
        Assert.That(rig.Cpu.Cr0Value, Is.EqualTo(cr0));
        Assert.That(rig.Cpu.WriteCr0(cr0 & ~Cr0.PE).Kind, Is.EqualTo(FaultKind.GeneralProtection));
    }

    [Test]
    public void SetEfer_with_reserved_bit_is_rejected()
    {
        var rig = new TlbRig();
        ulong efer = rig.Cpu.EferValue;
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetEfer(efer | 2));
        Assert.That(ex!.Message, Does.Contain("IA32_EFER value").And.Contain("reserved or unsupported bit(s) 0x2"));
        Assert.That(rig.Cpu.EferValue, Is.EqualTo(efer));
        Assert.That(rig.Cpu.WriteEfer(efer | 2).Kind, Is.EqualTo(FaultKind.GeneralProtection));
    }

    [TestCase(2UL, 0, "0x02")]
    [TestCase(3UL, 0, "0x03")]
    [TestCase(0x0300UL, 1, "0x03")]
    [TestCase(0x0200_0000_0000_0000UL, 7, "0x02")]
    public void SetPat_with_invalid_encoding_is_rejected(ulong bad, int entry, string shown)
    {
        var rig = new TlbRig();
        ulong pat = Pat.PowerOnValue & ~(0xFFUL << (entry * 8)) | bad;
        var ex = Assert.Throws<ArgumentException>(() => rig.Cpu.SetPat(pat));
        Assert.That(ex!.Message, Does.Contain($"IA32_PAT entry {entry} is {shown}").And.Contain("allowed encodings are 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB), 7 (UC-)"));
        Assert.That(rig.Cpu.PatValue, Is.EqualTo(Pat.PowerOnValue));
        Assert.That(rig.Cpu.WritePat(pat).Kind, Is.EqualTo(FaultKind.GeneralProtection));
    }

    // ------------------------------------------------------------------ access size

    [TestCase(3)]
    [TestCase(0)]
    [TestCase(16)]
    public void Read_with_unsupported_size_throws(int size)
    {
        var rig = new TlbRig();
        rig.Map4K(0x4000_0000);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => rig.Mmu.Read(0x4000_0000, size, out _));
        Assert.That(ex!.ParamName, Is.EqualTo("size"));
        Assert.That(ex.Message, Does.Contain("Access size must be 1, 2, 4 or 8 bytes"));
        var ex2 = Assert.Throws<ArgumentOutOfRangeException>(() => rig.Mmu.Write(0x4000_0000, size, 0));
        Assert.That(ex2!.Message, Does.Contain("Access size must be 1, 2, 4 or 8 bytes"));
    }
}
