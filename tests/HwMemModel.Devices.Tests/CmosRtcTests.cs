using HwMemModel.Bus;
using HwMemModel.Devices.Timers;

namespace HwMemModel.Devices.Tests;

public sealed class CmosRtcTests
{
    private const ulong MiB = 1 << 20;

    private GuestClock _clock = null!;

    [SetUp]
    public void SetUp() => _clock = new GuestClock();

    private (CmosRtc Rtc, PortBus Ports) Create(ulong ramSize = 128 * MiB, DateTime? start = null)
    {
        var rtc = new CmosRtc(_clock, ramSize, start);
        return (rtc, BusExtensions.PortsWith(rtc, 0x70, 2));
    }

    private static uint Cmos(PortBus ports, byte index)
    {
        ports.Out(0x70, index);
        return ports.In(0x71);
    }

    private static void SetCmos(PortBus ports, byte index, byte value)
    {
        ports.Out(0x70, index);
        ports.Out(0x71, value);
    }

    [Test]
    public void Status_registers_reset_as_on_QEMU()
    {
        (_, PortBus ports) = Create();
        Assert.That(Cmos(ports, 0x0A), Is.EqualTo(0x26));
        Assert.That(Cmos(ports, 0x0B), Is.EqualTo(0x02), "24-hour, BCD");
        Assert.That(Cmos(ports, 0x0C), Is.EqualTo(0x00));
        Assert.That(Cmos(ports, 0x0D), Is.EqualTo(0x80), "valid RAM and time");
        Assert.That(ports.In(0x70), Is.EqualTo(0xFF), "the index port reads 0xFF");
    }

    [Test]
    public void Time_starts_at_2000_01_01_by_default()
    {
        (_, PortBus ports) = Create();
        Assert.That(Cmos(ports, 0x00), Is.EqualTo(0x00));
        Assert.That(Cmos(ports, 0x02), Is.EqualTo(0x00));
        Assert.That(Cmos(ports, 0x04), Is.EqualTo(0x00));
        Assert.That(Cmos(ports, 0x06), Is.EqualTo(0x07), "Saturday");
        Assert.That(Cmos(ports, 0x07), Is.EqualTo(0x01));
        Assert.That(Cmos(ports, 0x08), Is.EqualTo(0x01));
        Assert.That(Cmos(ports, 0x09), Is.EqualTo(0x00));
        Assert.That(Cmos(ports, 0x32), Is.EqualTo(0x20));
    }

    [Test]
    public void Time_advances_with_guest_nanoseconds_in_BCD()
    {
        (CmosRtc rtc, PortBus ports) = Create();
        _clock.Advance(3_723_500_000_000); // 1 h 2 min 3.5 s
        Assert.That(Cmos(ports, 0x04), Is.EqualTo(0x01));
        Assert.That(Cmos(ports, 0x02), Is.EqualTo(0x02));
        Assert.That(Cmos(ports, 0x00), Is.EqualTo(0x03));
        Assert.That(rtc.Now, Is.EqualTo(new DateTime(2000, 1, 1, 1, 2, 3, 500)));
    }

    [Test]
    public void Dates_roll_over_through_a_leap_day()
    {
        (_, PortBus ports) = Create(start: new DateTime(2024, 2, 28, 23, 59, 59));
        _clock.Advance(2_000_000_000);
        Assert.That(Cmos(ports, 0x07), Is.EqualTo(0x29));
        Assert.That(Cmos(ports, 0x08), Is.EqualTo(0x02));
        Assert.That(Cmos(ports, 0x09), Is.EqualTo(0x24));
        Assert.That(Cmos(ports, 0x06), Is.EqualTo(0x05), "Thursday");
        Assert.That(Cmos(ports, 0x00), Is.EqualTo(0x01));
    }

    [Test]
    public void Binary_and_12_hour_formats_follow_register_B()
    {
        (_, PortBus ports) = Create(start: new DateTime(2000, 1, 1, 13, 5, 59));
        SetCmos(ports, 0x0B, 0x06);
        Assert.That(Cmos(ports, 0x00), Is.EqualTo(59), "binary");
        Assert.That(Cmos(ports, 0x04), Is.EqualTo(13));
        SetCmos(ports, 0x0B, 0x00);
        Assert.That(Cmos(ports, 0x04), Is.EqualTo(0x81), "1 PM in 12-hour BCD");
    }

    [Test]
    public void UIP_is_set_during_the_last_244_microseconds_of_a_second()
    {
        (_, PortBus ports) = Create();
        _clock.Advance(500_000_000);
        Assert.That(Cmos(ports, 0x0A), Is.EqualTo(0x26));
        _clock.Advance(499_800_000);
        Assert.That(Cmos(ports, 0x0A), Is.EqualTo(0xA6));
        _clock.Advance(200_000);
        Assert.That(Cmos(ports, 0x0A), Is.EqualTo(0x26));
    }

    [Test]
    public void The_time_can_be_set_in_SET_mode()
    {
        (_, PortBus ports) = Create();
        SetCmos(ports, 0x0B, 0x82);
        SetCmos(ports, 0x04, 0x12);
        SetCmos(ports, 0x02, 0x34);
        SetCmos(ports, 0x00, 0x56);
        _clock.Advance(5_000_000_000);
        Assert.That(Cmos(ports, 0x00), Is.EqualTo(0x56), "stopped while SET");
        SetCmos(ports, 0x0B, 0x02);
        _clock.Advance(1_000_000_000);
        Assert.That(Cmos(ports, 0x00), Is.EqualTo(0x57));
        Assert.That(Cmos(ports, 0x02), Is.EqualTo(0x34));
        Assert.That(Cmos(ports, 0x04), Is.EqualTo(0x12));
    }

    [Test]
    public void Index_0x37_is_an_alias_of_the_century_and_the_NMI_bit_is_not_part_of_the_index()
    {
        (CmosRtc rtc, PortBus ports) = Create();
        Assert.That(Cmos(ports, 0x37), Is.EqualTo(0x20));
        Assert.That(rtc.Index, Is.EqualTo(0x32), "QEMU redirects the index");
        Assert.That(Cmos(ports, 0x8A), Is.EqualTo(0x26));
        Assert.That(rtc.NmiMasked, Is.True);
    }

    [Test]
    public void Memory_bytes_for_128_MiB_match_QEMU()
    {
        (_, PortBus ports) = Create(128 * MiB);
        var expected = new Dictionary<byte, uint>
        {
            [0x14] = 0x06, [0x15] = 0x80, [0x16] = 0x02, [0x17] = 0xFF, [0x18] = 0xFF, [0x30] = 0xFF, [0x31] = 0xFF,
            [0x34] = 0x00, [0x35] = 0x07, [0x38] = 0x30, [0x3D] = 0x12, [0x5B] = 0x00, [0x5C] = 0x00, [0x5D] = 0x00,
            [0x5F] = 0x00, [0x10] = 0x00, [0x12] = 0x00,
        };
        foreach ((byte index, uint value) in expected)
        {
            Assert.That(Cmos(ports, index), Is.EqualTo(value), $"CMOS 0x{index:x2} (observed on QEMU 7.2 with -m 128M)");
        }
    }

    [Test]
    public void Memory_bytes_for_16_MiB()
    {
        (_, PortBus ports) = Create(16 * MiB);
        Assert.That(Cmos(ports, 0x17) | (Cmos(ports, 0x18) << 8), Is.EqualTo(15u * 1024), "KiB above 1 MiB");
        Assert.That(Cmos(ports, 0x34) | (Cmos(ports, 0x35) << 8), Is.Zero);
    }

    [Test]
    public void Memory_bytes_for_8_GiB_split_at_3_GiB()
    {
        (_, PortBus ports) = Create(8192 * MiB);
        Assert.That(Cmos(ports, 0x34) | (Cmos(ports, 0x35) << 8), Is.EqualTo((3072u - 16) * 16), "64 KiB units from 16 MiB to 3 GiB");
        uint high = Cmos(ports, 0x5B) | (Cmos(ports, 0x5C) << 8) | (Cmos(ports, 0x5D) << 16);
        Assert.That(high, Is.EqualTo(5u * 1024 * 16), "5 GiB above 4 GiB in 64 KiB units");
    }

    [Test]
    public void Update_ended_interrupt_sets_C_and_IRQ_8_until_C_is_read()
    {
        (CmosRtc rtc, PortBus ports) = Create();
        var levels = new List<bool>();
        rtc.IrqChanged += levels.Add;
        SetCmos(ports, 0x0B, 0x12); // UIE, 24-hour
        Assert.That(rtc.NextDeadline, Is.EqualTo(1_000_000_000));
        _clock.Advance(1_000_000_000);
        rtc.Poll();
        Assert.That(rtc.IrqLevel, Is.True);
        Assert.That(Cmos(ports, 0x0C), Is.EqualTo(0x90), "IRQF and UF");
        Assert.That(rtc.IrqLevel, Is.False);
        Assert.That(Cmos(ports, 0x0C), Is.Zero, "reading cleared C");
        Assert.That(levels, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void Periodic_interrupt_at_1024_Hz()
    {
        (CmosRtc rtc, PortBus ports) = Create();
        SetCmos(ports, 0x0B, 0x42); // PIE
        Assert.That(rtc.NextDeadline, Is.EqualTo(976_563), "32 cycles of 32,768 Hz, rounded up");
        _clock.Advance(976_563);
        rtc.Poll();
        Assert.That(rtc.IrqLevel, Is.True);
        Assert.That(Cmos(ports, 0x0C), Is.EqualTo(0xC0), "IRQF and PF");
    }

    [Test]
    public void Alarm_interrupt_fires_at_the_alarm_time()
    {
        (CmosRtc rtc, PortBus ports) = Create();
        SetCmos(ports, 0x01, 0x05);
        SetCmos(ports, 0x03, 0x00);
        SetCmos(ports, 0x05, 0xC0); // any hour
        SetCmos(ports, 0x0B, 0x22); // AIE
        _clock.Advance(4_000_000_000);
        rtc.Poll();
        Assert.That(rtc.IrqLevel, Is.False);
        _clock.Advance(1_000_000_000);
        rtc.Poll();
        Assert.That(rtc.IrqLevel, Is.True);
        Assert.That(Cmos(ports, 0x0C), Is.EqualTo(0xB0), "IRQF, AF and UF");
    }

    [Test]
    public void Registers_C_and_D_are_read_only_and_plain_bytes_are_memory()
    {
        (_, PortBus ports) = Create();
        SetCmos(ports, 0x0D, 0x00);
        SetCmos(ports, 0x0C, 0xFF);
        Assert.That(Cmos(ports, 0x0D), Is.EqualTo(0x80));
        Assert.That(Cmos(ports, 0x0C), Is.Zero);
        SetCmos(ports, 0x50, 0xA5);
        Assert.That(Cmos(ports, 0x50), Is.EqualTo(0xA5));
    }

    [Test]
    public void Any_guest_time_value_is_accepted_without_throwing()
    {
        (_, PortBus ports) = Create();
        SetCmos(ports, 0x0B, 0x82);
        foreach (byte index in new byte[] { 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32 })
        {
            SetCmos(ports, index, 0xFF);
        }

        SetCmos(ports, 0x0B, 0x02);
        for (int i = 0; i < 128; i++)
        {
            Assert.DoesNotThrow(() => Cmos(ports, (byte)i));
        }
    }

    [Test]
    public void RAM_below_1_MiB_is_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new CmosRtc(_clock, 0x8000));
        Assert.That(ex!.Message, Does.StartWith("RAM size 0x8000 is below 1 MiB; the pc machine's CMOS describes at least 1 MiB of RAM."));
    }

    [Test]
    public void CPU_count_outside_1_to_256_is_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new CmosRtc(_clock, 128 * MiB, cpuCount: 0));
        Assert.That(ex!.Message, Does.StartWith("CPU count 0 is outside 1-256"));
    }
}
