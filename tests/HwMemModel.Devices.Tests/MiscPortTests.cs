using HwMemModel.Bus;
using HwMemModel.Devices.Misc;

namespace HwMemModel.Devices.Tests;

public sealed class I8042Tests
{
    private StopRequest _stop = null!;
    private I8042 _kbd = null!;
    private PortBus _ports = null!;

    [SetUp]
    public void SetUp()
    {
        _stop = new StopRequest();
        _kbd = new I8042(_stop);
        _ports = new PortBus();
        _ports.Add("keyboard", 0x60, 1, _kbd.DataPort);
        _ports.Add("keyboard", 0x64, 1, _kbd.CommandPort);
    }

    [Test]
    public void Status_and_data_after_reset_read_as_on_QEMU()
    {
        Assert.That(_ports.In(0x64), Is.EqualTo(0x18), "command flag, keyboard unlocked, no data");
        Assert.That(_ports.In(0x60), Is.EqualTo(0x00));
    }

    [Test]
    public void Read_mode_command_returns_the_controller_mode()
    {
        _ports.Out(0x64, 0x20);
        Assert.That(_ports.In(0x64), Is.EqualTo(0x19), "output buffer full");
        Assert.That(_ports.In(0x60), Is.EqualTo(0x03));
        Assert.That(_ports.In(0x64), Is.EqualTo(0x18));
    }

    [Test]
    public void Self_test_answers_0x55_and_sets_the_system_flag()
    {
        _ports.Out(0x64, 0xAA);
        Assert.That(_ports.In(0x64), Is.EqualTo(0x1D));
        Assert.That(_ports.In(0x60), Is.EqualTo(0x55));
        Assert.That(_ports.In(0x64), Is.EqualTo(0x1C));
    }

    [Test]
    public void Output_port_reads_0xCF()
    {
        _ports.Out(0x64, 0xD0);
        Assert.That(_ports.In(0x60), Is.EqualTo(0xCF));
    }

    [Test]
    public void Command_0xFE_requests_a_stop_with_status_0()
    {
        _ports.Out(0x64, 0xFE);
        Assert.That(_stop.IsRequested, Is.True);
        Assert.That(_stop.ExitStatus, Is.Zero);
        Assert.That(_stop.Reason, Is.EqualTo(
            "i8042: guest pulsed the CPU reset line (command 0xfe on port 0x64); QEMU with -no-reboot exits with status 0 on a reset"));
    }

    [TestCase(0xF0, true)]
    [TestCase(0xFC, true)]
    [TestCase(0xF1, false)]
    [TestCase(0xFF, false)]
    public void Pulse_commands_reset_only_when_bit_0_is_pulsed(int command, bool resets)
    {
        _ports.Out(0x64, (uint)command);
        Assert.That(_stop.IsRequested, Is.EqualTo(resets));
    }

    [Test]
    public void Writing_the_output_port_with_bit_0_clear_resets_and_bit_1_drives_A20()
    {
        var a20 = new List<bool>();
        _kbd.A20Changed += a20.Add;
        _ports.Out(0x64, 0xD1);
        _ports.Out(0x60, 0xCD);
        Assert.That(a20, Is.EqualTo(new[] { false }));
        Assert.That(_stop.IsRequested, Is.False);
        _ports.Out(0x64, 0xD1);
        _ports.Out(0x60, 0xCE);
        Assert.That(_stop.IsRequested, Is.True);
        Assert.That(_stop.Reason, Does.StartWith("i8042: guest wrote output port 0xce with the reset bit clear"));
    }

    [Test]
    public void A20_commands()
    {
        _ports.Out(0x64, 0xDD);
        Assert.That(_kbd.A20, Is.False);
        _ports.Out(0x64, 0xDF);
        Assert.That(_kbd.A20, Is.True);
    }

    [Test]
    public void Keyboard_reset_answers_ack_and_self_test_passed_with_IRQ_1()
    {
        var irqs = new IrqLog();
        _kbd.IrqChanged += irqs.Record;
        _ports.Out(0x60, 0xFF);
        Assert.That(_kbd.Irq1, Is.True);
        Assert.That(_ports.In(0x60), Is.EqualTo(0xFA));
        Assert.That(_ports.In(0x60), Is.EqualTo(0xAA));
        Assert.That(_kbd.Irq1, Is.False);
        Assert.That(_ports.In(0x64) & 1, Is.Zero);
    }

    [Test]
    public void Mouse_bytes_answer_on_the_aux_channel_with_IRQ_12()
    {
        _ports.Out(0x64, 0xD4);
        _ports.Out(0x60, 0xF2);
        Assert.That(_ports.In(0x64), Is.EqualTo(0x39), "output full from the mouse");
        Assert.That(_kbd.Irq12, Is.True);
        Assert.That(_ports.In(0x60), Is.EqualTo(0xFA));
        Assert.That(_ports.In(0x60), Is.EqualTo(0x00), "standard mouse ID");
    }

    [Test]
    public void Written_mode_is_read_back()
    {
        _ports.Out(0x64, 0x60);
        _ports.Out(0x60, 0x45);
        _ports.Out(0x64, 0x20);
        Assert.That(_ports.In(0x60), Is.EqualTo(0x45));
    }
}

public sealed class Port92Tests
{
    [Test]
    public void Reads_zero_after_reset_and_bit_0_rising_resets()
    {
        var stop = new StopRequest();
        var port92 = new Port92(stop);
        PortBus ports = BusExtensions.PortsWith(port92, 0x92, 1);
        var a20 = new List<bool>();
        port92.A20Changed += a20.Add;

        Assert.That(ports.In(0x92), Is.Zero, "observed on QEMU 7.2");
        ports.Out(0x92, 0x02);
        Assert.That(ports.In(0x92), Is.EqualTo(0x02));
        Assert.That(a20, Is.EqualTo(new[] { true }));
        Assert.That(stop.IsRequested, Is.False);

        ports.Out(0x92, 0x03);
        Assert.That(stop.IsRequested, Is.True);
        Assert.That(stop.ExitStatus, Is.Zero);
        Assert.That(stop.Reason, Does.StartWith("port 0x92: guest set the fast reset bit (wrote 0x03)"));
    }
}

public sealed class IoPort80Tests
{
    [Test]
    public void Writes_are_swallowed_and_reads_return_all_ones()
    {
        var port80 = new IoPort80();
        PortBus ports = BusExtensions.PortsWith(port80, 0x80, 1);
        ports.Out(0x80, 0x55);
        Assert.That(ports.In(0x80), Is.EqualTo(0xFF), "observed on QEMU 7.2");
        Assert.That(port80.LastValue, Is.EqualTo(0x55u));
        Assert.That(port80.WriteCount, Is.EqualTo(1));
    }
}
