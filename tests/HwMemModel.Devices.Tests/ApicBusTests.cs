using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Devices.Tests;

/// <summary>Several local APICs on one bus: per-CPU MMIO and IPI delivery (Intel SDM Vol. 3A §10.6; QEMU apic.c).</summary>
public sealed class ApicBusTests
{
    private const ulong Base = 0xFEE0_0000;

    private GuestClock _clock = null!;
    private ApicBus _apics = null!;
    private PhysicalBus _bus = null!;
    private List<string> _events = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _apics = new ApicBus(_clock, 4);
        _bus = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        _bus.AddMmio(_apics.Name, Base, 0x1000, _apics);
        _events = [];
        _apics.InitRequested += cpu => _events.Add($"INIT {cpu}");
        _apics.StartupRequested += (cpu, vector) => _events.Add($"SIPI {cpu} 0x{vector:x2}");
        _apics.NmiRequested += cpu => _events.Add($"NMI {cpu}");
        _apics.SmiRequested += cpu => _events.Add($"SMI {cpu}");
    }

    private uint Reg(int cpu, ulong offset)
    {
        Assert.That(_bus.Read(Base + offset, 4, out ulong value, BusAttributes.Cpu(cpu)), Is.EqualTo(BusStatus.Ok));
        return (uint)value;
    }

    private void Set(int cpu, ulong offset, uint value) =>
        Assert.That(_bus.Write(Base + offset, 4, value, BusAttributes.Cpu(cpu)), Is.EqualTo(BusStatus.Ok));

    private void SendIpi(int cpu, uint destination, uint low)
    {
        Set(cpu, 0x310, destination << 24);
        Set(cpu, 0x300, low);
    }

    /// <summary>IRR bit <paramref name="vector"/> as <paramref name="cpu"/> reads it through its own registers.</summary>
    private bool IrrBit(int cpu, int vector) => (Reg(cpu, 0x200 + (ulong)(vector >> 5) * 0x10) & (1u << (vector & 31))) != 0;

    [Test]
    public void Each_CPU_reads_its_own_APIC()
    {
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Assert.That(Reg(cpu, 0x20), Is.EqualTo((uint)cpu << 24), $"CPU {cpu}'s ID");
        }

        Set(2, 0x80, 0x40);
        Assert.That(Reg(2, 0x80), Is.EqualTo(0x40u));
        Assert.That(Reg(1, 0x80), Is.Zero, "another CPU's TPR is untouched");
    }

    [Test]
    public void Host_reaches_CPU_0_and_DMA_or_absent_CPUs_reach_nothing()
    {
        Set(0, 0x80, 0x20);
        Assert.That(_bus.Read(Base + 0x80, 4, out ulong host, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        Assert.That(host, Is.EqualTo(0x20UL));
        Assert.That(_bus.Read(Base + 0x30, 4, out ulong dma, BusAttributes.Dma(0)), Is.EqualTo(BusStatus.Ok));
        Assert.That(dma, Is.Zero);
        Assert.That(_bus.Read(Base + 0x30, 4, out ulong absent, BusAttributes.Cpu(9)), Is.EqualTo(BusStatus.Ok));
        Assert.That(absent, Is.Zero);
    }

    [Test]
    public void A_fixed_IPI_lands_in_the_target_IRR()
    {
        SendIpi(0, 2, 0x0000_4041);
        Assert.That(IrrBit(2, 0x41), Is.True);
        Assert.That(IrrBit(0, 0x41) || IrrBit(1, 0x41) || IrrBit(3, 0x41), Is.False);
        Assert.That(Reg(2, 0x180 + 0x20) & 2, Is.Zero, "edge: TMR clear");
    }

    [Test]
    public void Shorthands_select_self_all_and_all_but_self()
    {
        SendIpi(1, 0, (1u << 18) | 0x4050);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0x50)), Is.EqualTo(new[] { false, true, false, false }));
        SendIpi(1, 0, (2u << 18) | 0x4060);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0x60)), Is.EqualTo(new[] { true, true, true, true }));
        SendIpi(1, 0, (3u << 18) | 0x4070);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0x70)), Is.EqualTo(new[] { true, false, true, true }));
    }

    [Test]
    public void Physical_broadcast_0xFF_reaches_every_APIC()
    {
        SendIpi(3, 0xFF, 0x4080);
        Assert.That(Enumerable.Range(0, 4).All(c => IrrBit(c, 0x80)), Is.True);
    }

    [Test]
    public void Logical_flat_destination_selects_by_LDR_bits()
    {
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Set(cpu, 0xD0, (1u << cpu) << 24);
        }

        SendIpi(0, 0b1010, 0x4890);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0x90)), Is.EqualTo(new[] { false, true, false, true }));
    }

    [Test]
    public void Logical_cluster_destination_selects_cluster_and_members()
    {
        uint[] ldr = [0x11, 0x12, 0x21, 0x22];
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Set(cpu, 0xE0, 0x0FFF_FFFF);
            Set(cpu, 0xD0, ldr[cpu] << 24);
        }

        SendIpi(0, 0x23, 0x48A0);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0xA0)), Is.EqualTo(new[] { false, false, true, true }));
        SendIpi(0, 0xF1, 0x48B0);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0xB0)), Is.EqualTo(new[] { true, false, true, false }),
            "cluster 0xF: every cluster (§10.6.2.2)");
    }

    [Test]
    public void Lowest_priority_goes_to_the_first_matching_APIC_as_QEMU()
    {
        // QEMU apic_bus_deliver, APIC_DM_LOWPRI: the first APIC of the destination set (no arbitration).
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Set(cpu, 0xD0, 0x0100_0000u << cpu);
        }

        SendIpi(0, 0b1100, 0x49C0);
        Assert.That(Enumerable.Range(0, 4).Select(c => IrrBit(c, 0xC0)), Is.EqualTo(new[] { false, false, true, false }));
    }

    [Test]
    public void INIT_and_SIPI_raise_per_CPU_events_with_the_vector()
    {
        SendIpi(0, 2, 0x0000_C500); // INIT, level assert
        SendIpi(0, 2, 0x0000_8500); // INIT level de-assert: nothing
        SendIpi(0, 2, 0x0000_0608); // SIPI vector 8 → 0x8000
        SendIpi(0, 0, (3u << 18) | 0x0000_0609); // SIPI to all but self
        SendIpi(1, 3, 0x0000_0400); // NMI
        SendIpi(1, 0, (1u << 18) | 0x0000_0200); // SMI to self
        Assert.That(_events, Is.EqualTo(new[]
        {
            "INIT 2", "SIPI 2 0x08", "SIPI 1 0x09", "SIPI 2 0x09", "SIPI 3 0x09", "NMI 3", "SMI 1",
        }));
    }

    [Test]
    public void A_message_to_an_absent_APIC_ID_goes_nowhere()
    {
        SendIpi(0, 7, 0x4041);
        SendIpi(0, 9, 0x4500);
        Assert.That(Enumerable.Range(0, 4).Any(c => IrrBit(c, 0x41)), Is.False);
        Assert.That(_events, Is.Empty);
        Assert.That(Reg(0, 0x280), Is.Zero, "no error: Pentium 4 and later have no send-accept error (§10.5.3)");
    }

    [Test]
    public void An_illegal_vector_sets_send_error_at_the_sender_and_receive_error_at_the_target()
    {
        SendIpi(0, 1, 0x4005);
        Assert.That(Reg(0, 0x280), Is.EqualTo(0x20u), "§10.5.3 bit 5");
        Assert.That(Reg(1, 0x280), Is.EqualTo(0x40u), "§10.5.3 bit 6");
        Assert.That(IrrBit(1, 5), Is.False);
    }

    [Test]
    public void IO_APIC_messages_are_delivered_by_destination_and_EOI_broadcasts_are_forwarded()
    {
        var eois = new List<int>();
        _apics.EoiBroadcast += eois.Add;
        _apics.DeliverIoApicInterrupt(new IoApicInterrupt(Pin: 4, Vector: 0x34, DeliveryMode: 0, LogicalDestination: false,
            Destination: 3, LevelTriggered: true, ActiveLow: false));
        Assert.That(IrrBit(3, 0x34), Is.True);
        Assert.That(IrrBit(0, 0x34), Is.False);
        Set(3, 0xF0, 0x1FF);
        Assert.That(_apics[3].Acknowledge(), Is.EqualTo(0x34));
        Set(3, 0xB0, 0);
        Assert.That(eois, Is.EqualTo(new[] { 0x34 }));
    }

    [Test]
    public void MSI_writes_are_delivered_by_their_address_and_data()
    {
        // SDM §10.11.1: address bits 19:12 destination, bit 2 destination mode; data 7:0 vector, 10:8 delivery mode.
        _apics.DeliverMsi(Base | (2 << 12), 0x61);
        Assert.That(IrrBit(2, 0x61), Is.True);
        Assert.That(_bus.Write(Base, 4, 0x62, BusAttributes.Dma(0)), Is.EqualTo(BusStatus.Ok));
        Assert.That(IrrBit(0, 0x62), Is.True, "a DMA write at offset 0: MSI to APIC ID 0");
        Set(1, 0x000, 0x0463); // a CPU write at offset 0 is an MSI too (QEMU): NMI to ID 0
        Assert.That(_events, Is.EqualTo(new[] { "NMI 0" }));

        var wide = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        wide.AddMmio(_apics.Name, Base, 0x10_0000, _apics); // QEMU's 1 MiB apic-msi window
        Assert.That(wide.Write(Base | (3 << 12), 4, 0x64, BusAttributes.Cpu(0)), Is.EqualTo(BusStatus.Ok));
        Assert.That(IrrBit(3, 0x64), Is.True);
    }

    [Test]
    public void x2APIC_IPIs_use_32_bit_destinations_and_reach_x2APIC_targets()
    {
        for (int cpu = 0; cpu < 4; cpu++)
        {
            Assert.That(_apics[cpu].TrySetApicBase(Base | LocalApic.ApicBaseEnable | LocalApic.ApicBaseExtd), Is.True);
        }

        Assert.That(_apics[0].TryWriteMsr(0x830, (3UL << 32) | 0x4041), Is.True);
        Assert.That(_apics[3].IsRequested(0x41), Is.True);
        Assert.That(_apics[0].TryWriteMsr(0x830, (0xFFFF_FFFFUL << 32) | 0x4042), Is.True);
        Assert.That(_apics.Apics.All(a => a.IsRequested(0x42)), Is.True, "§10.12.9: 0xFFFFFFFF broadcasts");
        // Logical x2APIC: cluster 0, members 1 << id.
        Assert.That(_apics[0].TryWriteMsr(0x830, (0b0110UL << 32) | 0x4843), Is.True);
        Assert.That(_apics.Apics.Select(a => a.IsRequested(0x43)), Is.EqualTo(new[] { false, true, true, false }));
        Assert.That(_apics[2].TryWriteMsr(0x83F, 0x44), Is.True);
        Assert.That(_apics.Apics.Select(a => a.IsRequested(0x44)), Is.EqualTo(new[] { false, false, true, false }));
    }

    [Test]
    public void Bad_CPU_counts_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ApicBus(_clock, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ApicBus(_clock, 256));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = _apics[4]);
    }
}
