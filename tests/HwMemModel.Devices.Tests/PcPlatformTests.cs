using HwMemModel.Bus;
using HwMemModel.Devices.Platform;

namespace HwMemModel.Devices.Tests;

public sealed class PcPlatformTests
{
    private PhysicalBus _memory = null!;
    private PortBus _ports = null!;
    private GuestClock _clock = null!;
    private StopRequest _stop = null!;
    private MemoryStream _serial = null!;
    private PcDevices _devices = null!;

    [SetUp]
    public void SetUp()
    {
        _memory = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        _ports = new PortBus();
        _clock = new GuestClock();
        _stop = new StopRequest();
        _serial = new MemoryStream();
        _devices = PcPlatform.AddDefaultDevices(_memory, _ports, _clock, _stop, _serial, 128UL << 20);
    }

    [Test]
    public void Devices_answer_at_the_platform_addresses()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_ports.In(0x3FD), Is.EqualTo(0x60), "COM1 LSR");
            Assert.That(_ports.In(0x3FC), Is.EqualTo(0x08), "COM1 MCR");
            Assert.That(_memory.Load(0xFED0_0000, 8), Is.EqualTo(0x0098_9680_8086_A201UL), "HPET capabilities");
            Assert.That(_memory.Load(0xFEE0_0030), Is.EqualTo(0x0005_0014UL), "local APIC version");
            Assert.That(_memory.Load(0xFEE0_0350), Is.EqualTo(0x0001_0000UL), "LINT0 masked");
            Assert.That(_ports.In(0x21), Is.Zero, "PIC IMR");
            Assert.That(_ports.In(0x64), Is.EqualTo(0x18), "i8042 status");
            Assert.That(_ports.In(0x61), Is.EqualTo(0x30), "port B");
            Assert.That(_ports.In(0x80), Is.EqualTo(0xFF));
            Assert.That(_ports.In(0x92), Is.Zero);
            Assert.That(_ports.In(0x4D0), Is.Zero, "ELCR");
        });
        _memory.Store(0xFEC0_0000, 1);
        Assert.That(_memory.Load(0xFEC0_0010), Is.EqualTo(0x0017_0020UL), "I/O APIC version");
        _ports.Out(0x70, 0x15);
        Assert.That(_ports.In(0x71), Is.EqualTo(0x80), "640 KiB base memory, low byte");
    }

    [Test]
    public void Port_listing_uses_the_Linux_and_QEMU_names()
    {
        string listing = _ports.FormatIoPorts();
        Assert.That(listing, Is.EqualTo(
            "0020-0021 : pic1\n" +
            "0040-0043 : pit\n" +
            "0060-0060 : keyboard\n" +
            "0061-0061 : pcspk\n" +
            "0064-0064 : keyboard\n" +
            "0070-0071 : rtc0\n" +
            "0080-0080 : dma page reg\n" +
            "0092-0092 : port92\n" +
            "00a0-00a1 : pic2\n" +
            "00f4-00f7 : isa-debug-exit\n" +
            "03f8-03ff : serial\n" +
            "04d0-04d1 : elcr\n" +
            "0510-0511 : fwcfg\n" +
            "0514-051b : fwcfg.dma\n"));
        Assert.That(_memory.Regions.Select(r => r.Name), Is.EquivalentTo(new[] { "IOAPIC 0", "hpet", "Local APIC" }));
    }

    [Test]
    public void Serial_output_and_debug_exit_work_through_the_port_bus()
    {
        foreach (byte b in "ok\n"u8)
        {
            _ports.Out(0x3F8, b);
        }

        _ports.Out(0xF4, 0x10, size: 4);
        Assert.That(_serial.ToArray(), Is.EqualTo("ok\n"u8.ToArray()));
        Assert.That(_stop.ExitStatus, Is.EqualTo(33));
    }

    [Test]
    public void PIT_ticks_reach_the_PIC_but_not_the_CPU_while_LINT0_is_masked()
    {
        InitialisePic();
        AdvanceAndPoll(60_000_000); // more than one 54.9 ms period of the reset count 0x10000
        Assert.That(_devices.Pic.Intr, Is.True);
        Assert.That(_devices.CpuInterruptPending, Is.False, "LINT0 is masked at power-on (observed on QEMU 7.2)");
        _devices.LocalApic.GloballyEnabled = false;
        Assert.That(_devices.CpuInterruptPending, Is.False, "not even with the APIC globally disabled (observed)");
        _devices.LocalApic.GloballyEnabled = true;

        _memory.Store(0xFEE0_0350, 0x700); // LINT0 ExtINT, as SeaBIOS programs it
        Assert.That(_devices.CpuInterruptPending, Is.True);
        Assert.That(_devices.AcknowledgeInterrupt(), Is.EqualTo(0x20));
        Assert.That(_devices.CpuInterruptPending, Is.False);
        Assert.That(_devices.AcknowledgeInterrupt(), Is.EqualTo(0x27), "spurious IRQ 7 from the PIC");
    }

    [Test]
    public void With_LINT0_fixed_the_PIC_still_supplies_the_vector_first()
    {
        InitialisePic();
        _memory.Store(0xFEE0_00F0, 0x1FF);
        _memory.Store(0xFEE0_0350, 0x20); // LINT0 fixed, vector 0x20, unmasked
        AdvanceAndPoll(60_000_000);
        Assert.That(_devices.LocalApic.IsRequested(0x20), Is.True, "the PIC's INTR went through LINT0");
        Assert.That(_devices.CpuInterruptPending, Is.True);
        Assert.That(_devices.AcknowledgeInterrupt(), Is.EqualTo(0x20));
        Assert.That(_devices.Pic.Master.Isr, Is.EqualTo(0x01), "QEMU's apic_check_pic lets the PIC answer");
    }

    [Test]
    public void HPET_legacy_replacement_takes_IRQ_0_from_the_PIT()
    {
        InitialisePic();
        _memory.Store(0xFED0_0010, 2); // legacy replacement, counter halted
        Assert.That(_devices.Pit.IrqEnabled, Is.False);
        AdvanceAndPoll(60_000_000);
        Assert.That(_devices.Pic.Master.Irr & 1, Is.Zero);
    }

    [Test]
    public void HPET_timer_on_IRQ_2_reaches_the_local_APIC_through_the_IO_APIC()
    {
        _memory.Store(0xFEE0_00F0, 0x1FF); // APIC software-enabled
        _memory.Store(0xFEC0_0000, 0x14);  // I/O APIC pin 2, low half
        _memory.Store(0xFEC0_0010, 0x30);  // vector 0x30, edge, physical destination 0
        _memory.Store(0xFED0_0100, (2 << 9) | 0x4);
        _memory.Store(0xFED0_0108, 100);
        _memory.Store(0xFED0_010C, 0);
        _memory.Store(0xFED0_0010, 1);
        Assert.That(_devices.NextDeadline, Is.EqualTo(1000));

        AdvanceAndPoll(1000);
        Assert.That(_devices.LocalApic.IsRequested(0x30), Is.True);
        Assert.That(_devices.CpuInterruptPending, Is.True);
        Assert.That(_devices.AcknowledgeInterrupt(), Is.EqualTo(0x30));
    }

    [Test]
    public void Level_triggered_IO_APIC_interrupts_are_retired_by_the_local_APIC_EOI()
    {
        _memory.Store(0xFEE0_00F0, 0x1FF);
        _memory.Store(0xFEC0_0000, 0x18);  // pin 4 (COM1)
        _memory.Store(0xFEC0_0010, 0x8034); // vector 0x34, level
        _ports.Out(0x3F9, 0x02);            // THR empty interrupt on
        Assert.That(_devices.AcknowledgeInterrupt(), Is.EqualTo(0x34));
        _ports.In(0x3FA);                   // acknowledge THRI at the UART
        _memory.Store(0xFEE0_00B0, 0);      // EOI
        _memory.Store(0xFEC0_0000, 0x18);
        Assert.That(_memory.Load(0xFEC0_0010) & 0x4000, Is.Zero, "remote IRR cleared by the EOI broadcast");
    }

    [Test]
    public void Undefined_ports_and_sizes_never_throw()
    {
        var random = new Random(42);
        ushort[] ports = [0x20, 0x21, 0x40, 0x41, 0x42, 0x43, 0x60, 0x61, 0x70, 0x71, 0x80, 0x92, 0xA0, 0xA1, 0x3F8, 0x3F9,
            0x3FA, 0x3FB, 0x3FC, 0x3FD, 0x3FE, 0x3FF, 0x4D0, 0x4D1];
        for (int i = 0; i < 5000; i++)
        {
            ushort port = ports[random.Next(ports.Length)];
            int size = 1 << random.Next(3);
            uint value = (uint)random.Next();
            if (port is 0x64 or 0x92)
            {
                continue;
            }

            Assert.DoesNotThrow(() => _ports.Write(port, size, value, BusExtensions.Cpu0));
            Assert.DoesNotThrow(() => _ports.Read(port, size, out _, BusExtensions.Cpu0));
            _clock.Advance(random.Next(100_000));
            Assert.DoesNotThrow(_devices.Poll);
        }
    }

    [Test]
    public void Two_machines_fed_the_same_accesses_agree()
    {
        string Run()
        {
            var memory = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
            var ports = new PortBus();
            var clock = new GuestClock();
            PcDevices devices = PcPlatform.AddDefaultDevices(memory, ports, clock, new StopRequest(), Stream.Null, 128UL << 20);
            memory.Store(0xFED0_0010, 1);
            var trace = new System.Text.StringBuilder();
            for (int i = 0; i < 50; i++)
            {
                clock.Advance(123_457);
                devices.Poll();
                ports.Out(0x43, 0);
                trace.Append($"{ports.In(0x40):x2}{ports.In(0x40):x2} {memory.Load(0xFED0_00F0):x} ");
                ports.Out(0x70, 0);
                trace.Append($"{ports.In(0x71):x2} ");
            }

            return trace.ToString();
        }

        string first = Run();
        string second = Run();
        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void A_null_bus_is_rejected()
    {
        var ex = Assert.Throws<ArgumentNullException>(() =>
            PcPlatform.AddDefaultDevices(null!, _ports, _clock, _stop, Stream.Null, 128UL << 20));
        Assert.That(ex!.Message, Does.StartWith("The default machine's device set needs a non-null memory."));
    }

    [Test]
    public void RAM_split_follows_the_i440FX_machine()
    {
        Assert.That(PcRamLayout.Split(128UL << 20), Is.EqualTo((128UL << 20, 0UL)));
        Assert.That(PcRamLayout.Split(0xD000_0000), Is.EqualTo((0xD000_0000UL, 0UL)), "below 3.5 GiB stays low");
        Assert.That(PcRamLayout.Split(0xE000_0000), Is.EqualTo((0xC000_0000UL, 0x2000_0000UL)), "from 3.5 GiB: 3 GiB low");
        Assert.That(PcRamLayout.Split(8UL << 30), Is.EqualTo((0xC000_0000UL, 5UL << 30)));
    }

    private void InitialisePic()
    {
        _ports.Out(0x20, 0x11);
        _ports.Out(0x21, 0x20);
        _ports.Out(0x21, 0x04);
        _ports.Out(0x21, 0x01);
        _ports.Out(0xA0, 0x11);
        _ports.Out(0xA1, 0x28);
        _ports.Out(0xA1, 0x02);
        _ports.Out(0xA1, 0x01);
    }

    private void AdvanceAndPoll(long ns)
    {
        const long Step = 100_000;
        for (long done = 0; done < ns; done += Step)
        {
            _clock.Advance(Math.Min(Step, ns - done));
            _devices.Poll();
        }
    }
}
