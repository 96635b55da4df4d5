using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Machine.Tests;

/// <summary>
/// Bad input at the APICs and the CPU count: each answered as the hardware or QEMU 7.2 answers (hw/intc/apic.c), with a
/// device-log line for the guest's mistake, or an exception naming the rule for host misuse.
/// </summary>
public sealed class ApicBadInputTests
{
    private static void SendIpi(PcMachine m, uint icrLow, byte destination)
    {
        var apic = m.Chipset.ApicBus[0];
        apic.Write(0x310, 4, (ulong)destination << 24, BusAttributes.Host);
        apic.Write(0x300, 4, icrLow, BusAttributes.Host);
    }

    [Test]
    public void An_ipi_to_an_absent_apic_id_is_dropped_and_reported()
    {
        var m = PcMachine.Create(new PcMachineOptions { Cpus = 2 });

        SendIpi(m, 0x0000_4040, 5); // fixed, vector 0x40, physical destination 5

        Assert.That(m.Chipset.ApicBus.Apics.Any(a => a.IsRequested(0x40)), Is.False);
        Assert.That(m.Chipset.ApicBus[0].Esr, Is.Zero, "no ESR bit: a Pentium 4 or later xAPIC has no send-accept error (QEMU sets none)");
        Assert.That(m.DeviceLog.Entries, Does.Contain("apic: IPI from CPU 0 (Fixed, vector 0x40) to absent APIC ID 0x5 dropped"));
    }

    [Test]
    public void An_ipi_to_a_logical_destination_nobody_has_is_dropped_and_reported()
    {
        var m = PcMachine.Create(new PcMachineOptions { Cpus = 2 });

        SendIpi(m, 0x0000_4840, 0x10); // logical (flat), no LDR set

        Assert.That(m.DeviceLog.Entries, Does.Contain("apic: IPI from CPU 0 (Fixed, vector 0x40) to logical destination 0x10 matches no APIC; dropped"));
    }

    [Test]
    public void An_init_to_an_absent_apic_id_starts_nothing()
    {
        var m = PcMachine.Create(new PcMachineOptions { Cpus = 2 });

        SendIpi(m, 0x0000_4500, 9);

        Assert.That(m.AllCpus[1].WaitingForStartup, Is.True);
        Assert.That(m.DeviceLog.Entries, Does.Contain("apic: IPI from CPU 0 (Init, vector 0x00) to absent APIC ID 0x9 dropped"));
    }

    [Test]
    public void A_broadcast_with_nobody_else_on_a_one_cpu_machine_is_not_a_mistake()
    {
        var m = PcMachine.Create();

        m.Chipset.ApicBus[0].Write(0x300, 4, 0x000C_4500, BusAttributes.Host); // INIT, all excluding self

        Assert.That(m.DeviceLog.Entries, Is.Empty);
    }

    [TestCase((byte)0x08, 0x8000UL)]
    [TestCase((byte)0xFF, 0xFF000UL)]
    public void A_start_up_vector_is_an_address_below_1_mib(byte vector, ulong start)
    {
        var m = PcMachine.Create(new PcMachineOptions { Cpus = 2 });

        SendIpi(m, 0x0000_4500, 1);
        SendIpi(m, 0x0000_4600u | vector, 1);

        var ap = m.AllCpus[1];
        Assert.That(ap.WaitingForStartup, Is.False);
        Assert.That(ap.GetSegment(HwMemModel.Cpu.SegmentIndex.CS).Base + ap.Rip, Is.EqualTo(start));
        Assert.That(m.DeviceLog.Entries, Is.Empty, "0xC0-0xFF (option ROMs, BIOS) are legal vectors");
    }

    [TestCase((byte)0xA0)]
    [TestCase((byte)0xBF)]
    public void A_start_up_vector_in_the_vga_window_starts_there_as_on_qemu_with_a_report(byte vector)
    {
        var m = PcMachine.Create(new PcMachineOptions { Cpus = 2 });

        SendIpi(m, 0x0000_4500, 1);
        SendIpi(m, 0x0000_4600u | vector, 1);

        var ap = m.AllCpus[1];
        Assert.That(ap.WaitingForStartup, Is.False);
        Assert.That(ap.GetSegment(HwMemModel.Cpu.SegmentIndex.CS).Base, Is.EqualTo((ulong)vector << 12));
        Assert.That(m.DeviceLog.Entries, Has.One.EqualTo(
            $"apic: start-up IPI vector 0x{vector:x2} starts CPU 1 at 0x{vector:x2}000, in the VGA window 0xA0000-0xBFFFF " +
            "(the SDM reserves vectors 0xA0-0xBF); started there anyway, as QEMU does"));
    }

    [TestCase(0)]
    [TestCase(65)]
    public void A_cpu_count_outside_1_to_64_is_refused_with_the_rule(int cpus)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => PcMachine.Create(new PcMachineOptions { Cpus = cpus }));
        Assert.That(e!.Message, Does.StartWith($"Cpus is {cpus}; the machine takes 1 to 64 CPUs (QEMU's -smp)."));
    }

    [Test]
    public void A_local_apic_base_that_ia32_apic_base_cannot_hold_is_refused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LocalApic(new GuestClock(), 0, 0xFEE0_0800));
        Assert.That(e!.Message, Does.StartWith("APIC base 0xfee00800 cannot be held by IA32_APIC_BASE; give a multiple of 4 KiB below 2^52"));
    }
}
