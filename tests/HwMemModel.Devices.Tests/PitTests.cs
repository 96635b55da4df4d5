using HwMemModel.Bus;
using HwMemModel.Devices.Timers;

namespace HwMemModel.Devices.Tests;

public sealed class PitTests
{
    private GuestClock _clock = null!;
    private Pit8254 _pit = null!;
    private PcSpeakerPort _port61 = null!;
    private PortBus _ports = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _pit = new Pit8254(_clock);
        _port61 = new PcSpeakerPort(_pit);
        _ports = new PortBus();
        _ports.Add("pit", 0x40, 4, _pit);
        _ports.Add("pcspk", 0x61, 1, _port61);
    }

    [Test]
    public void Read_back_status_after_reset_is_0x86_for_every_channel()
    {
        _ports.Out(0x43, 0xEE); // read-back, status only, channels 0-2
        Assert.That(_ports.In(0x40), Is.EqualTo(0x86), "output high, mode 3 (observed on QEMU 7.2)");
        Assert.That(_ports.In(0x41), Is.EqualTo(0x86));
        Assert.That(_ports.In(0x42), Is.EqualTo(0x86));
        Assert.That(_ports.In(0x43), Is.Zero, "the control word is write-only");
    }

    [Test]
    public void Latched_count_reads_back_low_then_high_byte()
    {
        _ports.Out(0x43, 0x34); // channel 0, lobyte/hibyte, mode 2
        _ports.Out(0x40, 0x34);
        _ports.Out(0x40, 0x12);
        _clock.Advance(1_000_000); // 1 ms = 1193 input clocks (1,193,182 Hz)
        _ports.Out(0x43, 0x00);   // latch channel 0
        _clock.Advance(5_000_000);
        uint low = _ports.In(0x40);
        uint high = _ports.In(0x40);
        Assert.That((high << 8) | low, Is.EqualTo(0x1234u - 1193), "the count when latched");
    }

    [Test]
    public void Read_back_latches_status_then_count()
    {
        _ports.Out(0x43, 0x34);
        _ports.Out(0x40, 0x00);
        _ports.Out(0x40, 0x10); // 0x1000
        _clock.Advance(100_000); // 119 clocks
        _ports.Out(0x43, 0xC2); // read-back: latch count and status of channel 0
        Assert.That(_ports.In(0x40), Is.EqualTo(0x34), "mode 2, lobyte/hibyte, output low between reloads (QEMU)");
        Assert.That(_ports.In(0x40) | (_ports.In(0x40) << 8), Is.EqualTo(0x1000u - 119));
    }

    [Test]
    public void Unlatched_word_reads_alternate_low_and_high_bytes()
    {
        _ports.Out(0x43, 0x30); // mode 0
        _ports.Out(0x40, 0x00);
        _ports.Out(0x40, 0x20); // 0x2000
        Assert.That(_ports.In(0x40), Is.EqualTo(0x00));
        Assert.That(_ports.In(0x40), Is.EqualTo(0x20));
        _clock.Advance(1_000_000);
        Assert.That(_ports.In(0x40) | (_ports.In(0x40) << 8), Is.EqualTo(0x2000u - 1193));
    }

    [Test]
    public void Lobyte_and_hibyte_only_access_modes()
    {
        _ports.Out(0x43, 0x10); // channel 0, lobyte only, mode 0
        _ports.Out(0x40, 0x50);
        Assert.That(_pit.GetReload(0), Is.EqualTo(0x50));
        Assert.That(_ports.In(0x40), Is.EqualTo(0x50));
        Assert.That(_ports.In(0x40), Is.EqualTo(0x50));

        _ports.Out(0x43, 0x60); // channel 1, hibyte only, mode 0
        _ports.Out(0x41, 0x01);
        Assert.That(_pit.GetReload(1), Is.EqualTo(0x100));
        Assert.That(_ports.In(0x41), Is.EqualTo(0x01));
    }

    [Test]
    public void A_count_of_zero_means_65536()
    {
        _ports.Out(0x43, 0x34);
        _ports.Out(0x40, 0);
        _ports.Out(0x40, 0);
        Assert.That(_pit.GetReload(0), Is.EqualTo(0x10000));
    }

    [Test]
    public void Mode_0_raises_IRQ_0_when_the_count_expires()
    {
        var levels = new List<bool>();
        _pit.IrqChanged += levels.Add;
        _ports.Out(0x43, 0x30);
        _ports.Out(0x40, 100);
        _ports.Out(0x40, 0);
        Assert.That(levels, Is.EqualTo(new[] { false }), "loading mode 0 drops the output");

        // 100 clocks = 83,809.6 ns.
        _clock.Advance(83_809);
        _pit.Poll();
        Assert.That(_pit.IrqLevel, Is.False);
        _clock.Advance(1);
        _pit.Poll();
        Assert.That(levels, Is.EqualTo(new[] { false, true }));
        Assert.That(_pit.NextDeadline, Is.EqualTo(long.MaxValue), "mode 0 fires once");
    }

    [Test]
    public void Mode_3_gives_one_rising_edge_per_period()
    {
        int edges = 0;
        _pit.IrqChanged += level => edges += level ? 1 : 0;
        _ports.Out(0x43, 0x36);
        _ports.Out(0x40, 1193 & 0xFF);
        _ports.Out(0x40, 1193 >> 8); // ~1 kHz
        for (int i = 0; i < 10_000; i++)
        {
            _clock.Advance(1000);
            _pit.Poll();
        }

        Assert.That(edges, Is.EqualTo(10));
    }

    [Test]
    public void Disabling_the_IRQ_stops_transitions()
    {
        var levels = new List<bool>();
        _pit.IrqChanged += levels.Add;
        _pit.IrqEnabled = false;
        Assert.That(_pit.NextDeadline, Is.EqualTo(long.MaxValue));
        _clock.Advance(100_000_000);
        _pit.Poll();
        Assert.That(levels, Is.Empty);
    }

    [Test]
    public void Port_61_toggles_refresh_and_shows_channel_2()
    {
        Assert.That(_ports.In(0x61), Is.EqualTo(0x30), "observed on QEMU 7.2");
        Assert.That(_ports.In(0x61), Is.EqualTo(0x20));

        _ports.Out(0x61, 0x03);
        Assert.That(_pit.GetGate(2), Is.True);
        Assert.That(_ports.In(0x61) & 0x03, Is.EqualTo(0x03));

        _ports.Out(0x43, 0xB0); // channel 2, mode 0
        _ports.Out(0x42, 10);
        _ports.Out(0x42, 0);
        Assert.That(_ports.In(0x61) & 0x20, Is.Zero, "output low while counting");
        _clock.Advance(10_000);
        Assert.That(_ports.In(0x61) & 0x20, Is.EqualTo(0x20));
    }

    [Test]
    public void Every_port_and_size_is_served_without_throwing()
    {
        for (ushort port = 0x40; port <= 0x43; port++)
        {
            foreach (int size in new[] { 1, 2, 4 })
            {
                for (uint value = 0; value < 256; value += 17)
                {
                    Assert.DoesNotThrow(() => _ports.Write(port, size, value, BusExtensions.Cpu0));
                    Assert.DoesNotThrow(() => _ports.Read(port, size, out _, BusExtensions.Cpu0));
                    _clock.Advance(997);
                    Assert.DoesNotThrow(_pit.Poll);
                }
            }
        }
    }

    [Test]
    public void Channels_outside_0_to_2_are_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _pit.SetGate(3, true));
        Assert.That(ex!.Message, Does.StartWith("The 8254 has channels 0, 1 and 2; 3 is not one."));
    }
}
