using HwMemModel.Bus;
using HwMemModel.Devices.Serial;

namespace HwMemModel.Devices.Tests;

public sealed class UartTests
{
    private const ushort Com1 = 0x3F8;
    private const ushort Rbr = Com1, Ier = Com1 + 1, Iir = Com1 + 2, Fcr = Com1 + 2, Lcr = Com1 + 3, Mcr = Com1 + 4,
        Lsr = Com1 + 5, Msr = Com1 + 6, Scr = Com1 + 7;

    private GuestClock _clock = null!;
    private MemoryStream _output = null!;
    private Uart16550 _uart = null!;
    private PortBus _ports = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _output = new MemoryStream();
        _uart = new Uart16550(_output, _clock);
        _ports = BusExtensions.PortsWith(_uart, Com1, 8);
    }

    [Test]
    public void Registers_after_reset_read_as_on_QEMU()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_ports.In(Ier), Is.EqualTo(0x00));
            Assert.That(_ports.In(Iir), Is.EqualTo(0x01), "no interrupt pending");
            Assert.That(_ports.In(Lcr), Is.EqualTo(0x00));
            Assert.That(_ports.In(Mcr), Is.EqualTo(0x08), "OUT2");
            Assert.That(_ports.In(Lsr), Is.EqualTo(0x60), "THR empty and transmitter empty");
            Assert.That(_ports.In(Msr), Is.EqualTo(0xB0), "DCD, DSR, CTS");
            Assert.That(_ports.In(Scr), Is.EqualTo(0x00));
            Assert.That(_uart.IrqLine, Is.False);
        });
    }

    [Test]
    public void Divisor_latch_is_0x000C_after_reset_and_reachable_through_DLAB()
    {
        _ports.Out(Lcr, 0x80);
        Assert.That(_ports.In(Rbr), Is.EqualTo(0x0C));
        Assert.That(_ports.In(Ier), Is.EqualTo(0x00));

        _ports.Out(Rbr, 0x0203, size: 2); // a 16-bit OUT writes DLL and DLM
        Assert.That(_ports.In(Rbr), Is.EqualTo(0x03));
        Assert.That(_ports.In(Ier), Is.EqualTo(0x02));
        Assert.That(_uart.Divisor, Is.EqualTo(0x0203));

        _ports.Out(Lcr, 0x03);
        Assert.That(_ports.In(Ier), Is.EqualTo(0x00), "IER is back once DLAB is clear");
        Assert.That(_output.Length, Is.Zero, "divisor writes do not transmit");
    }

    [Test]
    public void Bytes_written_to_THR_reach_the_output_stream_at_once()
    {
        foreach (char c in "Hi\n")
        {
            _ports.Out(Rbr, c);
            Assert.That(_ports.In(Lsr), Is.EqualTo(0x60), "the transmitter is always ready");
        }

        Assert.That(_output.ToArray(), Is.EqualTo("Hi\n"u8.ToArray()));
        Assert.That(_uart.BytesTransmitted, Is.EqualTo(3));
    }

    [Test]
    public void THR_empty_interrupt_is_acknowledged_by_reading_IIR()
    {
        _ports.Out(Ier, 0x02);
        Assert.That(_uart.IrqLine, Is.True);
        Assert.That(_ports.In(Iir), Is.EqualTo(0x02));
        Assert.That(_ports.In(Iir), Is.EqualTo(0x01), "the read acknowledged THRI");
        Assert.That(_uart.IrqLine, Is.False);

        _ports.Out(Rbr, (byte)'x');
        Assert.That(_ports.In(Iir), Is.EqualTo(0x02), "transmitting empties THR again");
    }

    [Test]
    public void IIR_reports_the_highest_priority_interrupt()
    {
        _ports.Out(Ier, 0x0F);
        Assert.That(_ports.In(Iir), Is.EqualTo(0x02), "THR empty is the only source");

        _uart.EnqueueInput([0x41]);
        Assert.That(_ports.In(Iir), Is.EqualTo(0x04), "received data outranks THR empty");

        // Loopback delivers a second byte while the first is unread: overrun, the highest priority.
        _ports.Out(Mcr, 0x18);
        _ports.Out(Rbr, 0x42);
        Assert.That(_ports.In(Iir), Is.EqualTo(0x06), "receiver line status");
        Assert.That(_ports.In(Lsr) & 0x03, Is.EqualTo(0x03), "DR and OE");
        Assert.That(_ports.In(Iir), Is.EqualTo(0x04), "reading LSR cleared the overrun");
        Assert.That(_ports.In(Rbr), Is.EqualTo(0x42), "the newer byte replaced the older one");
        Assert.That(_ports.In(Iir), Is.EqualTo(0x02), "back to THR empty");
    }

    [Test]
    public void Loopback_feeds_transmitted_bytes_back_to_the_receiver()
    {
        _ports.Out(Mcr, 0x1F);
        Assert.That(_ports.In(Mcr), Is.EqualTo(0x1F));
        Assert.That(_ports.In(Msr), Is.EqualTo(0xF0), "OUT2->DCD, OUT1->RI, RTS->CTS, DTR->DSR");

        _ports.Out(Rbr, 0x41);
        Assert.That(_ports.In(Lsr), Is.EqualTo(0x61));
        Assert.That(_ports.In(Rbr), Is.EqualTo(0x41));
        Assert.That(_output.Length, Is.Zero, "nothing reaches the host");

        _ports.Out(Mcr, 0x13);
        Assert.That(_ports.In(Msr), Is.EqualTo(0x30));
        _ports.Out(Mcr, 0x08);
        Assert.That(_ports.In(Msr), Is.EqualTo(0xB0));
    }

    [Test]
    public void Host_input_waits_while_loopback_is_on()
    {
        _ports.Out(Mcr, 0x18);
        _uart.EnqueueInput([1, 2]);
        Assert.That(_ports.In(Lsr) & 1, Is.Zero);
        _ports.Out(Mcr, 0x08);
        Assert.That(_ports.In(Rbr), Is.EqualTo(1));
        Assert.That(_ports.In(Rbr), Is.EqualTo(2));
    }

    [Test]
    public void Without_FIFO_input_arrives_one_byte_at_a_time()
    {
        _uart.EnqueueInput("ab"u8);
        Assert.That(_ports.In(Lsr) & 1, Is.EqualTo(1));
        Assert.That(_uart.PendingInput, Is.EqualTo(1));
        Assert.That(_ports.In(Rbr), Is.EqualTo('a'));
        Assert.That(_ports.In(Rbr), Is.EqualTo('b'));
        Assert.That(_ports.In(Lsr) & 1, Is.Zero);
        Assert.That(_uart.BytesReceived, Is.EqualTo(2));
    }

    [Test]
    public void FIFO_enable_sets_IIR_bits_and_holds_sixteen_bytes()
    {
        _ports.Out(Fcr, 0x01);
        Assert.That(_ports.In(Iir), Is.EqualTo(0xC1));

        byte[] input = Enumerable.Range(0, 20).Select(i => (byte)(0x30 + i)).ToArray();
        _uart.EnqueueInput(input);
        Assert.That(_uart.PendingInput, Is.EqualTo(4), "the FIFO took 16 bytes");
        var read = new List<byte>();
        while ((_ports.In(Lsr) & 1) != 0)
        {
            read.Add((byte)_ports.In(Rbr));
        }

        Assert.That(read, Is.EqualTo(input));
        Assert.That(_ports.In(Lsr) & 0x02, Is.Zero, "host input never overruns");
    }

    [Test]
    public void FIFO_trigger_level_and_character_timeout()
    {
        _ports.Out(Ier, 0x01);
        _ports.Out(Fcr, 0x81); // FIFO on, trigger at 8 bytes
        _uart.EnqueueInput([1, 2, 3, 4]);
        Assert.That(_ports.In(Iir), Is.EqualTo(0xC1), "below the trigger level");

        long timeout = 4 * _uart.CharacterTimeNanoseconds;
        Assert.That(_uart.CharacterTimeNanoseconds, Is.EqualTo(1_041_660), "9600 baud 8N1: 104166 ns per bit x 10");
        _clock.Advance(timeout - 1);
        _uart.Poll();
        Assert.That(_uart.IrqLine, Is.False);
        _clock.Advance(1);
        _uart.Poll();
        Assert.That(_uart.IrqLine, Is.True);
        Assert.That(_ports.In(Iir), Is.EqualTo(0xCC), "character timeout");

        Assert.That(_ports.In(Rbr), Is.EqualTo(1));
        Assert.That(_ports.In(Iir), Is.EqualTo(0xC1), "reading clears the timeout");

        _uart.EnqueueInput([5, 6, 7, 8, 9, 10]);
        Assert.That(_ports.In(Iir), Is.EqualTo(0xC4), "eight bytes reach the trigger level");
    }

    [Test]
    public void FCR_clear_bits_empty_the_receive_FIFO()
    {
        _ports.Out(Fcr, 0x01);
        _uart.EnqueueInput([1, 2, 3]);
        _ports.Out(Fcr, 0x03);
        Assert.That(_ports.In(Lsr) & 1, Is.Zero);
        Assert.That(_ports.In(Iir), Is.EqualTo(0xC1), "still enabled");
        _ports.Out(Fcr, 0x00);
        Assert.That(_ports.In(Iir), Is.EqualTo(0x01), "FIFO off");
    }

    [Test]
    public void IrqLineChanged_reports_each_change_once()
    {
        var levels = new List<bool>();
        _uart.IrqLineChanged += levels.Add;
        _ports.Out(Ier, 0x02);
        _ports.Out(Ier, 0x02);
        _ports.In(Iir);
        Assert.That(levels, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void Scratch_register_holds_a_byte()
    {
        _ports.Out(Scr, 0x5A);
        Assert.That(_ports.In(Scr), Is.EqualTo(0x5A));
    }

    [Test]
    public void Register_shift_spaces_registers_for_an_MMIO_UART()
    {
        var uart = new Uart16550(_output, _clock, regShift: 2);
        PhysicalBus bus = BusExtensions.MemoryWith(uart, 0x1000_0000, 0x20);
        Assert.That(bus.Load(0x1000_0000 + 5 * 4, 4), Is.EqualTo(0x60), "LSR at offset 0x14");
        Assert.That(bus.Load(0x1000_0000 + 4 * 4, 1), Is.EqualTo(0x08), "MCR at offset 0x10");
        bus.Store(0x1000_0000, 'Z', 4);
        Assert.That(_output.ToArray(), Is.EqualTo("Z"u8.ToArray()));
    }

    [Test]
    public void A_failing_output_stream_is_counted_not_thrown()
    {
        var stream = new MemoryStream();
        var uart = new Uart16550(stream, _clock);
        stream.Dispose();
        PortBus ports = BusExtensions.PortsWith(uart, Com1, 8);
        Assert.DoesNotThrow(() => ports.Out(Rbr, 0x41));
        Assert.That(uart.OutputErrors, Is.EqualTo(1));
        Assert.That(ports.In(Lsr), Is.EqualTo(0x60));
    }

    [Test]
    public void Wide_and_unaligned_accesses_are_served_byte_by_byte()
    {
        _ports.Out(Scr, 0x77);
        Assert.That(_ports.In(Mcr, 4), Is.EqualTo(0x77B06008u), "MCR, LSR, MSR, SCR");
        Assert.That(_ports.In(Scr, 1), Is.EqualTo(0x77));
    }

    [Test]
    public void Register_shift_outside_0_to_3_is_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new Uart16550(Stream.Null, _clock, regShift: 4));
        Assert.That(ex!.Message, Does.StartWith(
            "Register shift 4 is not supported; use 0 (registers 1 byte apart), 1, 2 or 3 (2, 4 or 8 bytes apart)."));
    }

    [Test]
    public void A_read_only_output_stream_is_rejected()
    {
        using var readOnly = new MemoryStream([], writable: false);
        var ex = Assert.Throws<ArgumentException>(() => new Uart16550(readOnly, _clock));
        Assert.That(ex!.Message, Does.StartWith("The UART's output stream cannot be written; pass a writable stream"));
    }

    [Test]
    public void A_null_output_stream_is_rejected()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => new Uart16550(null!, _clock));
        Assert.That(ex!.Message, Does.StartWith("A 16550 UART needs a non-null output."));
    }
}
