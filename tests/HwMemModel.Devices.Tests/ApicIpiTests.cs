using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Devices.Tests;

/// <summary>ICR → IPI message decoding on one local APIC in xAPIC mode (Intel SDM Vol. 3A §10.6.1, Figure 10-12).</summary>
public sealed class ApicIpiTests
{
    private const ulong Base = 0xFEE0_0000;

    private GuestClock _clock = null!;
    private LocalApic _apic = null!;
    private PhysicalBus _bus = null!;
    private List<ApicMessage> _sent = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _apic = new LocalApic(_clock, cpuIndex: 2);
        _bus = BusExtensions.MemoryWith(_apic, Base, 0x1000);
        _sent = [];
        _apic.IpiSent += _sent.Add;
    }

    private uint Reg(ulong offset) => (uint)_bus.Load(Base + offset);

    private void Set(ulong offset, uint value) => _bus.Store(Base + offset, value);

    private ApicMessage Send(uint high, uint low)
    {
        Set(0x310, high);
        Set(0x300, low);
        Assert.That(_sent, Has.Count.EqualTo(1), "one message per ICR-low write");
        return _sent[0];
    }

    [Test]
    public void The_ID_register_reads_the_APIC_ID_in_bits_31_24()
    {
        Assert.That(Reg(0x20), Is.EqualTo(0x0200_0000u), "§10.4.6: xAPIC ID in bits 31:24");
        Assert.That(new LocalApic(_clock).Id, Is.Zero, "default ID 0");
    }

    [Test]
    public void A_fixed_physical_IPI_carries_vector_destination_and_modes()
    {
        // §10.6.1: vector 7:0, delivery mode 10:8, destination mode 11, level 14, trigger 15, shorthand 19:18,
        // destination 63:56.
        ApicMessage m = Send(0x0500_0000, 0x0000_4041);
        Assert.That(m, Is.EqualTo(new ApicMessage(2, 0x41, ApicDeliveryMode.Fixed, false, 5, ApicDestinationShorthand.None,
            Assert: true, LevelTriggered: false)));
        Assert.That(_apic.Esr, Is.Zero);
    }

    [TestCase(0x0000_0500u, ApicDeliveryMode.Init)]
    [TestCase(0x0000_0600u, ApicDeliveryMode.StartUp)]
    [TestCase(0x0000_0400u, ApicDeliveryMode.Nmi)]
    [TestCase(0x0000_0200u, ApicDeliveryMode.Smi)]
    [TestCase(0x0000_0100u, ApicDeliveryMode.LowestPriority)]
    public void The_delivery_mode_is_bits_10_8(uint modeBits, ApicDeliveryMode mode)
    {
        ApicMessage m = Send(0x0100_0000, modeBits | 0x4000 | 0x20);
        Assert.That(m.DeliveryMode, Is.EqualTo(mode));
    }

    [TestCase(0u, ApicDestinationShorthand.None)]
    [TestCase(1u, ApicDestinationShorthand.Self)]
    [TestCase(2u, ApicDestinationShorthand.AllIncludingSelf)]
    [TestCase(3u, ApicDestinationShorthand.AllExcludingSelf)]
    public void The_destination_shorthand_is_bits_19_18(uint shorthand, ApicDestinationShorthand expected)
    {
        ApicMessage m = Send(0, (shorthand << 18) | 0x4030);
        Assert.That(m.Shorthand, Is.EqualTo(expected));
        Assert.That(m.SourceCpu, Is.EqualTo(2));
    }

    [Test]
    public void Logical_destination_mode_is_bit_11()
    {
        ApicMessage m = Send(0x0300_0000, 0x0000_4830);
        Assert.That(m.LogicalDestination, Is.True);
        Assert.That(m.Destination, Is.EqualTo(3u));
    }

    [Test]
    public void INIT_level_deassert_is_flagged_as_a_no_op()
    {
        // §10.6.1: INIT level de-assert (level 0, trigger 1) is not supported from the Pentium 4 on; QEMU delivers nothing.
        ApicMessage m = Send(0, 0x000C_8500);
        Assert.That(m.IsInitLevelDeassert, Is.True);
        Assert.That(ApicMessage.FromIcr(0, 0x000C_C500, x2Apic: false).IsInitLevelDeassert, Is.False, "assert");
    }

    [Test]
    public void The_ICR_reads_back_as_written_with_delivery_status_idle()
    {
        // QEMU stores the ICR words as written; delivery is immediate, so bit 12 (delivery status) reads 0 = idle.
        Send(0x0100_0000, 0x0000_4030);
        Assert.That(Reg(0x300) & (1u << 12), Is.Zero);
        Assert.That(Reg(0x300), Is.EqualTo(0x4030u));
        Assert.That(Reg(0x310), Is.EqualTo(0x0100_0000u));
    }

    [TestCase(0x0000_4000u)]
    [TestCase(0x0000_400Fu)]
    [TestCase(0x0000_410Fu)]
    public void A_fixed_or_lowest_priority_IPI_with_vector_0_to_15_sets_send_illegal_vector(uint low)
    {
        // §10.5.3 ESR bit 5: "Set when the local APIC detects an illegal vector (one in the range 0 to 15) in the
        // message that it is sending ... a write to the ICR".
        Send(0x0100_0000, low);
        Assert.That(_apic.Esr, Is.EqualTo(LocalApic.EsrSendIllegalVector));
        Assert.That(Reg(0x280), Is.EqualTo(0x20u));
    }

    [TestCase(0x0000_0500u)]
    [TestCase(0x0000_0400u)]
    public void INIT_and_NMI_ignore_the_vector_field(uint low)
    {
        Send(0x0100_0000, low | 0x4000);
        Assert.That(_apic.Esr, Is.Zero);
    }

    [Test]
    public void A_received_illegal_vector_is_refused_with_receive_illegal_vector()
    {
        // §10.5.3 ESR bit 6: such interrupts are not delivered; the APIC never sets IRR bits 0-15.
        Assert.That(_apic.AcceptMessage(0x0E, levelTriggered: false), Is.False);
        Assert.That(_apic.IsRequested(0x0E), Is.False);
        Assert.That(_apic.Esr, Is.EqualTo(LocalApic.EsrReceiveIllegalVector));
        Assert.That(_apic.AcceptMessage(0x10, levelTriggered: false), Is.True);
        Assert.That(_apic.IsRequested(0x10), Is.True);
    }

    [Test]
    public void Physical_destinations_match_the_ID_and_broadcast()
    {
        Assert.That(_apic.AcceptsDestination(2, logical: false), Is.True);
        Assert.That(_apic.AcceptsDestination(0xFF, logical: false), Is.True, "§10.6.2.1: 0xFF broadcasts");
        Assert.That(_apic.AcceptsDestination(3, logical: false), Is.False);
        Set(0x20, 0x0700_0000);
        Assert.That(_apic.AcceptsDestination(7, logical: false), Is.True, "the written xAPIC ID");
    }

    [Test]
    public void Flat_model_matches_any_common_LDR_bit()
    {
        // §10.6.2.2: flat model (DFR 0xF): delivered when (MDA & LDR) != 0.
        Set(0xD0, 0x0400_0000);
        Assert.That(_apic.AcceptsDestination(0x04, logical: true), Is.True);
        Assert.That(_apic.AcceptsDestination(0x0C, logical: true), Is.True);
        Assert.That(_apic.AcceptsDestination(0x03, logical: true), Is.False);
        Assert.That(_apic.AcceptsDestination(0xFF, logical: true), Is.True);
    }

    [Test]
    public void Cluster_model_matches_cluster_and_member_bits_and_cluster_15_broadcasts()
    {
        // §10.6.2.2: cluster model (DFR 0x0): bits 7:4 cluster, 3:0 members; cluster 0xF reaches all clusters.
        Set(0xE0, 0x0FFF_FFFF);
        Set(0xD0, 0x3200_0000);
        Assert.That(_apic.DestinationFormat, Is.Zero);
        Assert.That(_apic.AcceptsDestination(0x32, logical: true), Is.True);
        Assert.That(_apic.AcceptsDestination(0x36, logical: true), Is.True);
        Assert.That(_apic.AcceptsDestination(0x31, logical: true), Is.False, "no common member bit");
        Assert.That(_apic.AcceptsDestination(0x22, logical: true), Is.False, "another cluster");
        Assert.That(_apic.AcceptsDestination(0xF2, logical: true), Is.True, "broadcast cluster");
    }
}
