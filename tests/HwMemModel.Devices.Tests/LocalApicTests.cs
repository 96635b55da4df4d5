using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Devices.Tests;

public sealed class LocalApicTests
{
    private const ulong Base = 0xFEE0_0000;

    private GuestClock _clock = null!;
    private LocalApic _apic = null!;
    private PhysicalBus _bus = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _apic = new LocalApic(_clock);
        _bus = BusExtensions.MemoryWith(_apic, Base, 0x1000);
    }

    private uint Reg(ulong offset) => (uint)_bus.Load(Base + offset);

    private void Set(ulong offset, uint value) => _bus.Store(Base + offset, value);

    [Test]
    public void Registers_after_reset_read_as_on_QEMU()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Reg(0x20), Is.Zero, "ID of CPU 0");
            Assert.That(Reg(0x30), Is.EqualTo(0x0005_0014u), "version 0x14, max LVT 5");
            Assert.That(Reg(0x80), Is.Zero, "TPR");
            Assert.That(Reg(0xA0), Is.Zero, "PPR");
            Assert.That(Reg(0xD0), Is.Zero, "LDR");
            Assert.That(Reg(0xE0), Is.EqualTo(0xFFFF_FFFFu), "DFR");
            Assert.That(Reg(0xF0), Is.EqualTo(0xFFu), "SVR: software-disabled");
            Assert.That(Reg(0x280), Is.Zero, "ESR");
            for (ulong lvt = 0x320; lvt <= 0x370; lvt += 0x10)
            {
                Assert.That(Reg(lvt), Is.EqualTo(0x0001_0000u), $"LVT at 0x{lvt:x} masked");
            }

            Assert.That(Reg(0x380), Is.Zero);
            Assert.That(Reg(0x390), Is.Zero);
            Assert.That(Reg(0x3E0), Is.Zero);
        });
    }

    [Test]
    public void LINT0_is_masked_at_power_on()
    {
        Assert.That(Reg(0x350), Is.EqualTo(0x0001_0000u));
        Assert.That(_apic.AcceptsPicInterrupts, Is.False, "QEMU passes PIC interrupts on only when LINT0 is unmasked");
    }

    [Test]
    public void The_ID_is_the_CPU_index()
    {
        var apic = new LocalApic(_clock, cpuIndex: 3);
        PhysicalBus bus = BusExtensions.MemoryWith(apic, Base, 0x1000);
        Assert.That(bus.Load(Base + 0x20), Is.EqualTo(0x0300_0000UL));
    }

    [Test]
    public void Narrow_reads_return_zero_and_unaligned_reads_combine_aligned_registers()
    {
        Assert.That(_bus.Load(Base + 0x30, 1), Is.Zero);
        Assert.That(_bus.Load(Base + 0x30, 2), Is.Zero);
        Assert.That(_bus.Load(Base + 0x31, 4), Is.EqualTo(0x1400_0500UL), "observed on QEMU 7.2");
    }

    [Test]
    public void An_undefined_register_sets_ESR_bit_7_which_stays_set()
    {
        Assert.That(Reg(0x40), Is.Zero);
        Assert.That(Reg(0x280), Is.EqualTo(0x80u));
        Set(0x280, 0);
        Assert.That(Reg(0x280), Is.EqualTo(0x80u), "QEMU ignores ESR writes");
    }

    [Test]
    public void Writes_to_read_only_registers_do_not_set_ESR()
    {
        foreach (ulong offset in new ulong[] { 0x30, 0x90, 0xA0, 0x100, 0x200, 0x280, 0x390 })
        {
            Set(offset, 0);
        }

        Assert.That(Reg(0x280), Is.Zero);
        Assert.That(Reg(0x30), Is.EqualTo(0x0005_0014u));
        Set(0x40, 0);
        Assert.That(Reg(0x280), Is.EqualTo(0x80u), "an undefined register does");
    }

    [Test]
    public void Written_values_keep_the_bits_QEMU_keeps()
    {
        Set(0xF0, 0x11FF);
        Set(0x80, 0x1FF);
        Set(0xD0, 0xFFFF_FFFF);
        Set(0xE0, 0);
        Set(0x320, 0xFFFF_FFFF);
        Set(0x350, 0xFFFF_FFFF);
        Set(0x3E0, 0xFF);
        Set(0x20, 0xFFFF_FFFF);
        Assert.Multiple(() =>
        {
            Assert.That(Reg(0xF0), Is.EqualTo(0x1FFu), "no directed-EOI bit");
            Assert.That(Reg(0x80), Is.EqualTo(0xFFu));
            Assert.That(Reg(0xD0), Is.EqualTo(0xFF00_0000u));
            Assert.That(Reg(0xE0), Is.EqualTo(0x0FFF_FFFFu));
            Assert.That(Reg(0x320), Is.EqualTo(0xFFFF_FFFFu));
            Assert.That(Reg(0x350), Is.EqualTo(0xFFFF_FFFFu));
            Assert.That(Reg(0x3E0), Is.EqualTo(0x0Bu));
            Assert.That(Reg(0x20), Is.EqualTo(0xFF00_0000u));
        });
    }

    [Test]
    public void One_shot_timer_counts_down_at_1_GHz_divided()
    {
        Set(0x3E0, 0x0B); // divide by 1
        Set(0x320, 0x40); // unmasked, vector 0x40, one-shot
        Set(0x380, 1000);
        _clock.Advance(300);
        Assert.That(Reg(0x390), Is.EqualTo(700u));
        _clock.Advance(700);
        Assert.That(Reg(0x390), Is.Zero);
        Assert.That(_apic.IsRequested(0x40), Is.False, "expires one tick after reaching 0 (QEMU)");
        _clock.Advance(1);
        _apic.Poll();
        Assert.That(_apic.IsRequested(0x40), Is.True);
        Assert.That(_apic.NextDeadline, Is.EqualTo(long.MaxValue));
    }

    [Test]
    public void The_divide_configuration_slows_the_timer()
    {
        Set(0x3E0, 0x03); // divide by 16
        Set(0x380, 1000);
        _clock.Advance(1600);
        Assert.That(Reg(0x390), Is.EqualTo(900u));
    }

    [Test]
    public void Before_the_divide_configuration_is_written_the_timer_runs_undivided()
    {
        Set(0x380, 1000);
        _clock.Advance(100);
        Assert.That(Reg(0x390), Is.EqualTo(900u), "QEMU 7.2 resets its shift to 0 (measured against the HPET)");
        Set(0x3E0, 0);
        Set(0x380, 1000);
        _clock.Advance(100);
        Assert.That(Reg(0x390), Is.EqualTo(950u), "divide by 2 once written");
    }

    [Test]
    public void Periodic_timer_reloads_and_keeps_requesting()
    {
        Set(0x3E0, 0x0B);
        Set(0x320, 0x2_0041);
        Set(0x380, 99);
        _clock.Advance(150);
        Assert.That(Reg(0x390), Is.EqualTo(49u), "99 - 150 mod 100");
        Assert.That(_apic.IsRequested(0x41), Is.True);
        Assert.That(_apic.NextDeadline, Is.EqualTo(200));
    }

    [Test]
    public void Accepted_interrupts_are_acknowledged_by_priority_and_retired_by_EOI()
    {
        var eois = new List<int>();
        _apic.EoiBroadcast += eois.Add;
        Set(0xF0, 0x1FF);
        _apic.AcceptInterrupt(0x31, levelTriggered: true);
        _apic.AcceptInterrupt(0x52, levelTriggered: false);
        Assert.That(_apic.InterruptPending, Is.True);

        Assert.That(_apic.Acknowledge(), Is.EqualTo(0x52));
        Assert.That(Reg(0xA0), Is.EqualTo(0x50u), "PPR follows the in-service class");
        Assert.That(_apic.Acknowledge(), Is.EqualTo(0xFF), "0x31 is below the priority: spurious");
        Set(0xB0, 0);
        Assert.That(eois, Is.Empty, "0x52 was edge-triggered");
        Assert.That(_apic.Acknowledge(), Is.EqualTo(0x31));
        Assert.That(Reg(0x100 + 0x10 * (0x31 / 32)) & (1u << (0x31 % 32)), Is.Not.Zero, "ISR");
        Set(0xB0, 0);
        Assert.That(eois, Is.EqualTo(new[] { 0x31 }));
        Assert.That(_apic.Acknowledge(), Is.EqualTo(-1));
    }

    [Test]
    public void A_software_disabled_APIC_delivers_nothing()
    {
        _apic.AcceptInterrupt(0x40, false);
        Assert.That(_apic.InterruptPending, Is.False);
        Assert.That(_apic.Acknowledge(), Is.EqualTo(-1));
    }

    [Test]
    public void Destination_matching_follows_physical_flat_and_cluster_models()
    {
        Assert.That(_apic.MatchesDestination(0, logical: false), Is.True);
        Assert.That(_apic.MatchesDestination(0xFF, logical: false), Is.True);
        Assert.That(_apic.MatchesDestination(1, logical: false), Is.False);
        Set(0xD0, 0x0200_0000);
        Assert.That(_apic.MatchesDestination(0x03, logical: true), Is.True, "flat");
        Assert.That(_apic.MatchesDestination(0x01, logical: true), Is.False);
        Set(0xE0, 0x0FFF_FFFF); // cluster
        Set(0xD0, 0x1200_0000);
        Assert.That(_apic.MatchesDestination(0x12, logical: true), Is.True);
        Assert.That(_apic.MatchesDestination(0x22, logical: true), Is.False);
    }

    [Test]
    public void ICR_is_stored_and_reported()
    {
        var ipis = new List<ulong>();
        _apic.IpiRequested += ipis.Add;
        Set(0x310, 0x0100_0000);
        Set(0x300, 0x0000_4030);
        Assert.That(Reg(0x300), Is.EqualTo(0x4030u));
        Assert.That(Reg(0x310), Is.EqualTo(0x0100_0000u));
        Assert.That(ipis, Is.EqualTo(new[] { 0x0100_0000_0000_4030UL }));
    }

    [Test]
    public void CPU_index_255_is_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new LocalApic(_clock, cpuIndex: 255));
        Assert.That(ex!.Message, Does.StartWith("CPU index 255 cannot be an xAPIC ID; use 0 to 254 (0xFF is the broadcast ID)."));
    }

    [Test]
    public void Every_offset_and_size_is_served_without_throwing()
    {
        for (ulong offset = 0; offset < 0x1000; offset += 4)
        {
            foreach (int size in new[] { 1, 2, 4, 8 })
            {
                Assert.DoesNotThrow(() => _bus.Read(Base + offset, size, out _, BusExtensions.Cpu0));
                Assert.DoesNotThrow(() => _bus.Write(Base + offset, size, 0xFFFF_FFFF_FFFF_FFFF, BusExtensions.Cpu0));
            }
        }

        Assert.DoesNotThrow(() =>
        {
            _clock.Advance(10_000_000);
            _apic.Poll();
        });
    }
}
