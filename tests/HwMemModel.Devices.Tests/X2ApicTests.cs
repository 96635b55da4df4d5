using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Devices.Tests;

/// <summary>x2APIC mode (Intel SDM Vol. 3A §10.12) and IA32_APIC_BASE transitions.</summary>
public sealed class X2ApicTests
{
    private const ulong Base = 0xFEE0_0000;
    private const ulong En = LocalApic.ApicBaseEnable, Extd = LocalApic.ApicBaseExtd;

    private GuestClock _clock = null!;
    private LocalApic _apic = null!;
    private List<ApicMessage> _sent = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _apic = new LocalApic(_clock, cpuIndex: 0x25);
        _sent = [];
        _apic.IpiSent += _sent.Add;
    }

    private void EnterX2Apic() => Assert.That(_apic.TrySetApicBase(Base | En | Extd), Is.True);

    private ulong Rd(uint msr)
    {
        Assert.That(_apic.TryReadMsr(msr, out ulong value), Is.True, $"RDMSR 0x{msr:x}");
        return value;
    }

    [Test]
    public void IA32_APIC_BASE_resets_to_FEE00000_enabled_with_BSP_on_CPU_0()
    {
        Assert.That(new LocalApic(_clock).ApicBase, Is.EqualTo(0xFEE0_0900UL), "§10.4.4: BSP flag, EN");
        Assert.That(_apic.ApicBase, Is.EqualTo(0xFEE0_0800UL), "an AP");
        Assert.That(_apic.IsX2ApicMode, Is.False);
    }

    [Test]
    public void Mode_transitions_follow_the_SDM_state_diagram()
    {
        // §10.12.5 Figure 10-27: xAPIC → x2APIC allowed; x2APIC → xAPIC only through disabled; EXTD without EN invalid;
        // disabled → x2APIC directly invalid.
        Assert.That(_apic.TrySetApicBase(Base | Extd), Is.False, "EXTD without EN");
        EnterX2Apic();
        Assert.That(_apic.TrySetApicBase(Base | En), Is.False, "x2APIC → xAPIC");
        Assert.That(_apic.IsX2ApicMode, Is.True, "a refused write changes nothing");
        Assert.That(_apic.TrySetApicBase(Base), Is.True, "x2APIC → disabled");
        Assert.That(_apic.GloballyEnabled, Is.False);
        Assert.That(_apic.IsX2ApicMode, Is.False);
        Assert.That(_apic.TrySetApicBase(Base | En | Extd), Is.False, "disabled → x2APIC");
        Assert.That(_apic.TrySetApicBase(Base | En), Is.True, "disabled → xAPIC");
        Assert.That(_apic.TrySetApicBase(Base | En | Extd), Is.True, "xAPIC → x2APIC");
    }

    [Test]
    public void Reserved_IA32_APIC_BASE_bits_and_missing_x2APIC_support_are_refused()
    {
        Assert.That(_apic.TrySetApicBase(Base | En | 1), Is.False, "bit 0");
        Assert.That(_apic.TrySetApicBase(Base | En | (1UL << 9)), Is.False, "bit 9");
        Assert.That(_apic.TrySetApicBase(Base | En | (1UL << 60)), Is.False, "above MAXPHYADDR 52");
        var noX2 = new LocalApic(_clock) { X2ApicSupported = false };
        Assert.That(noX2.TrySetApicBase(Base | En | Extd), Is.False, "CPUID.1:ECX.x2APIC = 0");
        Assert.That(_apic.TrySetApicBase(0xFED0_0000 | En), Is.True);
        Assert.That(_apic.BaseAddress, Is.EqualTo(0xFED0_0000UL), "relocation is reported to the platform");
    }

    [Test]
    public void MSRs_fault_outside_x2APIC_mode()
    {
        // §10.12.1.2: RDMSR/WRMSR of 0x800-0xBFF when not in x2APIC mode raise #GP.
        Assert.That(_apic.TryReadMsr(0x802, out _), Is.False);
        Assert.That(_apic.TryWriteMsr(0x808, 0), Is.False);
    }

    [Test]
    public void The_ID_is_the_32_bit_x2APIC_ID_and_the_LDR_is_derived_from_it()
    {
        EnterX2Apic();
        Assert.That(Rd(0x802), Is.EqualTo(0x25UL), "§10.12.5.1: x2APIC ID, not shifted");
        // §10.12.10.2: logical x2APIC ID = (x2APIC ID[19:4] << 16) | (1 << x2APIC ID[3:0]).
        Assert.That(Rd(0x80D), Is.EqualTo((2UL << 16) | (1UL << 5)));
        Assert.That(Rd(0x803), Is.EqualTo((ulong)LocalApic.VersionValue), "the same version in both modes");
    }

    [TestCase(0x800u)]
    [TestCase(0x801u)]
    [TestCase(0x809u)] // APR is not in Table 10-6
    [TestCase(0x80Bu)] // EOI is write-only
    [TestCase(0x80Cu)]
    [TestCase(0x80Eu)] // DFR does not exist in x2APIC mode
    [TestCase(0x82Fu)] // CMCI: this APIC has six LVT entries
    [TestCase(0x831u)] // ICR high is merged into 0x830
    [TestCase(0x83Fu)] // SELF IPI is write-only
    [TestCase(0x840u)]
    [TestCase(0xBFFu)]
    public void Reads_of_reserved_or_write_only_MSRs_fault(uint msr)
    {
        EnterX2Apic();
        Assert.That(_apic.TryReadMsr(msr, out ulong value), Is.False);
        Assert.That(value, Is.Zero);
        Assert.That(_apic.Esr, Is.Zero, "§10.12.1.3: illegal accesses fault instead of setting ESR bit 7");
    }

    [TestCase(0x802u, 0UL)] // ID: read-only
    [TestCase(0x803u, 0UL)] // version
    [TestCase(0x80Au, 0UL)] // PPR
    [TestCase(0x80Du, 0UL)] // LDR: read-only in x2APIC mode
    [TestCase(0x80Eu, 0UL)] // DFR
    [TestCase(0x810u, 0UL)] // ISR
    [TestCase(0x820u, 0UL)] // IRR
    [TestCase(0x831u, 0UL)]
    [TestCase(0x839u, 0UL)] // current count
    [TestCase(0x80Bu, 1UL)] // EOI: non-zero
    [TestCase(0x828u, 1UL)] // ESR: non-zero
    [TestCase(0x808u, 0x100UL)] // TPR bits 31:8 reserved
    [TestCase(0x808u, 1UL << 32)] // bits 63:32 reserved except for the ICR
    [TestCase(0x83Fu, 0x130UL)] // SELF IPI bits 31:8 reserved
    [TestCase(0x830u, 0x2030UL)] // ICR bit 13 reserved
    [TestCase(0x830u, 0x1_0030UL)] // ICR bit 16 reserved
    public void Writes_the_SDM_faults_are_refused(uint msr, ulong value)
    {
        EnterX2Apic();
        Assert.That(_apic.TryWriteMsr(msr, value), Is.False);
        Assert.That(_sent, Is.Empty);
    }

    [Test]
    public void Zero_writes_to_EOI_and_ESR_are_accepted_and_EOI_retires_the_highest_ISR_vector()
    {
        EnterX2Apic();
        Assert.That(_apic.TryWriteMsr(0x80F, 0x1FF), Is.True);
        _apic.AcceptInterrupt(0x40, levelTriggered: false);
        Assert.That(_apic.Acknowledge(), Is.EqualTo(0x40));
        Assert.That(_apic.TryWriteMsr(0x80B, 0), Is.True);
        Assert.That(_apic.IsInService(0x40), Is.False);
        Assert.That(_apic.TryWriteMsr(0x828, 0), Is.True);
    }

    [Test]
    public void The_ICR_is_one_64_bit_MSR_with_a_32_bit_destination()
    {
        // §10.12.9: destination in bits 63:32; WRMSR ignores bit 12.
        EnterX2Apic();
        Assert.That(_apic.TryWriteMsr(0x830, 0x0001_0203_0000_5031UL), Is.True);
        Assert.That(_sent, Is.EqualTo(new[]
        {
            new ApicMessage(0x25, 0x31, ApicDeliveryMode.Fixed, false, 0x0001_0203, ApicDestinationShorthand.None,
                Assert: true, LevelTriggered: false),
        }));
        Assert.That(Rd(0x830), Is.EqualTo(0x0001_0203_0000_4031UL));
    }

    [Test]
    public void SELF_IPI_sends_a_fixed_edge_IPI_to_itself()
    {
        // §10.12.11: SELF IPI MSR 0x83F, vector in bits 7:0.
        EnterX2Apic();
        Assert.That(_apic.TryWriteMsr(0x83F, 0x55), Is.True);
        Assert.That(_sent, Is.EqualTo(new[]
        {
            new ApicMessage(0x25, 0x55, ApicDeliveryMode.Fixed, false, 0, ApicDestinationShorthand.Self, true, false),
        }));
        Assert.That(_apic.TryWriteMsr(0x83F, 0x05), Is.True);
        Assert.That(_apic.Esr, Is.EqualTo(LocalApic.EsrSendIllegalVector), "§10.5.3: SELF IPI with an illegal vector");
    }

    [Test]
    public void Read_write_registers_go_through_the_MSRs()
    {
        EnterX2Apic();
        Assert.That(_apic.TryWriteMsr(0x808, 0x20), Is.True);
        Assert.That(Rd(0x808), Is.EqualTo(0x20UL));
        Assert.That(_apic.TryWriteMsr(0x832, 0x0002_0040), Is.True);
        Assert.That(Rd(0x832), Is.EqualTo(0x0002_0040UL));
        Assert.That(_apic.TryWriteMsr(0x838, 1000), Is.True);
        Assert.That(Rd(0x838), Is.EqualTo(1000UL));
        Assert.That(_apic.TryWriteMsr(0x83E, 0xB), Is.True);
        Assert.That(Rd(0x83E), Is.EqualTo(0xBUL));
    }

    [Test]
    public void INIT_reset_keeps_the_mode_and_ID_and_clears_the_rest()
    {
        // §10.4.7.3 / §10.12.5.1: INIT leaves the APIC ID and IA32_APIC_BASE alone.
        EnterX2Apic();
        Assert.That(_apic.TryWriteMsr(0x808, 0x30), Is.True);
        _apic.InitReset();
        Assert.That(_apic.IsX2ApicMode, Is.True);
        Assert.That(Rd(0x802), Is.EqualTo(0x25UL));
        Assert.That(Rd(0x80D), Is.EqualTo((2UL << 16) | (1UL << 5)));
        Assert.That(Rd(0x808), Is.Zero);
        Assert.That(Rd(0x80F), Is.EqualTo(0xFFUL));
    }

    [Test]
    public void MMIO_is_not_served_in_x2APIC_mode()
    {
        // §10.12.2: in x2APIC mode the MMIO interface behaves as a globally disabled xAPIC's.
        PhysicalBus bus = BusExtensions.MemoryWith(_apic, Base, 0x1000);
        EnterX2Apic();
        Assert.That(bus.Load(Base + 0x30), Is.Zero, "version reads 0");
        bus.Store(Base + 0x80, 0x30);
        Assert.That(Rd(0x808), Is.Zero, "TPR write ignored");
        bus.Store(Base + 0x300, 0x4030);
        Assert.That(_sent, Is.Empty, "no IPI through MMIO");
    }
}
