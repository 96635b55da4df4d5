using HwMemModel.Bus;
using HwMemModel.Devices.Timers;

namespace HwMemModel.Devices.Tests;

public sealed class HpetTests
{
    private const ulong Base = 0xFED0_0000;
    private const ulong Cap = Base, Cfg = Base + 0x10, Isr = Base + 0x20, Counter = Base + 0xF0;

    private GuestClock _clock = null!;
    private Hpet _hpet = null!;
    private PhysicalBus _bus = null!;
    private IrqLog _irqs = null!;

    private static ulong TimerCfg(int n) => Base + 0x100 + 0x20 * (ulong)n;

    private static ulong TimerCmp(int n) => TimerCfg(n) + 8;

    [SetUp]
    public void SetUp()
    {
        _clock = new GuestClock();
        _hpet = new Hpet(_clock);
        _bus = BusExtensions.MemoryWith(_hpet, Base, 0x400);
        _irqs = new IrqLog();
        _hpet.IrqChanged += _irqs.Record;
    }

    /// <summary>Timer n on IRQ 2, periodic: the comparator is set while one-shot, then set value loads the low half and the period.</summary>
    private void ProgramPeriodic(int n, uint first, uint period)
    {
        _bus.Store(TimerCfg(n), (2 << 9) | 0x4);
        _bus.Store(TimerCmp(n), first);
        _bus.Store(TimerCmp(n) + 4, 0);
        _bus.Store(TimerCfg(n), (2 << 9) | 0x4 | 0x8 | 0x40); // periodic, enabled, set value
        _bus.Store(TimerCmp(n), first);
        if (period != first)
        {
            _bus.Store(TimerCmp(n), period);
        }
    }

    private void Advance(long ns)
    {
        _clock.Advance(ns);
        _hpet.Poll();
    }

    [Test]
    public void Capabilities_read_0x009896808086A201_by_one_64_bit_load()
    {
        Assert.That(_bus.Load(Cap, 8), Is.EqualTo(0x0098_9680_8086_A201UL));
    }

    [Test]
    public void Capabilities_read_the_same_by_two_32_bit_loads()
    {
        Assert.That(_bus.Load(Cap, 4), Is.EqualTo(0x8086_A201UL), "revision 1, 3 timers, 64-bit, legacy capable, vendor 8086");
        Assert.That(_bus.Load(Cap + 4, 4), Is.EqualTo(0x0098_9680UL), "10,000,000 fs = 10 ns");
    }

    [Test]
    public void Byte_and_word_accesses_read_zero_and_are_ignored()
    {
        Assert.That(_bus.Load(Cap, 1), Is.Zero);
        Assert.That(_bus.Load(Cap, 2), Is.Zero);
        _bus.Store(Cfg, 1, 1);
        Assert.That(_hpet.IsEnabled, Is.False);
    }

    [Test]
    public void Timers_reset_as_QEMU_shows()
    {
        for (int n = 0; n < 3; n++)
        {
            Assert.That(_bus.Load(TimerCfg(n), 8), Is.EqualTo(0x0000_0004_0000_0030UL), $"timer {n}: IRQ 2 routable, 64-bit, periodic capable");
            Assert.That(_bus.Load(TimerCmp(n), 8), Is.EqualTo(ulong.MaxValue));
            Assert.That(_bus.Load(TimerCfg(n) + 0x10, 8), Is.Zero, "FSB route");
        }

        Assert.That(_bus.Load(TimerCfg(3), 8), Is.Zero, "there is no timer 3");
        Assert.That(_bus.Load(Cfg, 8), Is.Zero);
        Assert.That(_bus.Load(Isr, 8), Is.Zero);
    }

    [Test]
    public void The_counter_stays_still_while_halted()
    {
        _clock.Advance(1_000_000);
        Assert.That(_bus.Load(Counter, 8), Is.Zero);
    }

    [Test]
    public void The_counter_advances_one_tick_per_10_guest_ns_only_while_enabled()
    {
        _clock.Advance(500);
        _bus.Store(Cfg, 1);
        _clock.Advance(12_345);
        Assert.That(_bus.Load(Counter, 8), Is.EqualTo(1234UL));
        Assert.That(_hpet.MainCounter, Is.EqualTo(1234UL));

        _bus.Store(Cfg, 0);
        _clock.Advance(1_000_000);
        Assert.That(_bus.Load(Counter, 8), Is.EqualTo(1234UL), "halted");

        _bus.Store(Cfg, 1);
        _clock.Advance(100);
        Assert.That(_bus.Load(Counter, 4), Is.EqualTo(1244UL), "continues from the halted value");
    }

    [Test]
    public void The_counter_is_writable_while_halted_by_halves_or_whole()
    {
        _bus.Store(Counter, 0x4444_4444);
        _bus.Store(Counter + 4, 0x3333_3333);
        Assert.That(_bus.Load(Counter, 8), Is.EqualTo(0x3333_3333_4444_4444UL));

        _bus.Store(Counter, 0x1111_1111_2222_2222UL, 8);
        Assert.That(_bus.Load(Counter, 4), Is.EqualTo(0x2222_2222UL));
        Assert.That(_bus.Load(Counter + 4, 4), Is.EqualTo(0x1111_1111UL), "observed on QEMU 7.2");

        _bus.Store(Cfg, 1);
        _clock.Advance(10);
        Assert.That(_bus.Load(Counter, 8), Is.EqualTo(0x1111_1111_2222_2223UL));
    }

    [Test]
    public void Configuration_keeps_only_enable_and_legacy_bits()
    {
        _bus.Store(Cfg, 0xFFFF_FFFC);
        Assert.That(_bus.Load(Cfg, 8), Is.Zero);
        _bus.Store(Cfg, 0x3);
        Assert.That(_bus.Load(Cfg, 4), Is.EqualTo(3UL));
        Assert.That(_bus.Load(Cfg + 4, 4), Is.Zero);
    }

    [Test]
    public void Timer_configuration_write_mask_is_0x7F4E()
    {
        _bus.Store(TimerCfg(2), 0xFFFF_FFFF);
        Assert.That(_bus.Load(TimerCfg(2), 4), Is.EqualTo(0x7F7EUL), "observed on QEMU 7.2");
        _bus.Store(TimerCfg(2) + 4, 0xFFFF_FFFF);
        Assert.That(_bus.Load(TimerCfg(2) + 4, 4), Is.EqualTo(0x4UL), "capabilities are read-only");
    }

    [Test]
    public void One_shot_edge_timer_pulses_its_route_at_the_comparator()
    {
        _bus.Store(TimerCfg(0), (2 << 9) | 0x4); // route IRQ 2, enabled, edge
        _bus.Store(TimerCmp(0), 1000);
        _bus.Store(TimerCmp(0) + 4, 0);
        _bus.Store(Cfg, 1);
        Assert.That(_hpet.NextDeadline, Is.EqualTo(10_000));

        Advance(9_999);
        Assert.That(_irqs.Events, Is.Empty);
        Advance(1);
        Assert.That(_irqs.Events, Is.EqualTo(new[] { (2, true), (2, false) }), "a pulse");
        Assert.That(_bus.Load(Isr, 4), Is.Zero, "edge interrupts leave the status clear");

        Advance(10_000_000);
        Assert.That(_irqs.Events, Has.Count.EqualTo(2), "one-shot");
        Assert.That(_hpet.NextDeadline, Is.EqualTo(long.MaxValue));
    }

    [Test]
    public void Level_timer_sets_status_until_written_one()
    {
        _bus.Store(TimerCfg(2), (2 << 9) | 0x6); // level, enabled
        _bus.Store(TimerCmp(2), 100);
        _bus.Store(TimerCmp(2) + 4, 0);
        _bus.Store(Cfg, 1);

        Advance(1000);
        Assert.That(_bus.Load(Isr, 4), Is.EqualTo(4UL));
        Assert.That(_hpet.GetIrqLevel(2), Is.True);

        _bus.Store(Isr, 1); // not timer 2's bit
        Assert.That(_bus.Load(Isr, 4), Is.EqualTo(4UL));
        _bus.Store(Isr, 4);
        Assert.That(_bus.Load(Isr, 4), Is.Zero);
        Assert.That(_hpet.GetIrqLevel(2), Is.False);
    }

    [Test]
    public void Disabled_timer_fires_without_interrupt()
    {
        _bus.Store(TimerCfg(1), (2 << 9) | 0x2); // level, not enabled
        _bus.Store(TimerCmp(1), 10);
        _bus.Store(TimerCmp(1) + 4, 0);
        _bus.Store(Cfg, 1);
        Advance(1000);
        Assert.That(_bus.Load(Isr, 4), Is.Zero);
        Assert.That(_irqs.Events, Is.Empty);
    }

    [Test]
    public void Periodic_timer_fires_every_period_and_advances_its_comparator()
    {
        ProgramPeriodic(0, first: 100, period: 100);
        _bus.Store(Cfg, 1);

        var fired = new List<ulong>();
        _hpet.IrqChanged += (line, level) =>
        {
            if (level)
            {
                fired.Add(_hpet.MainCounter);
            }
        };
        for (int i = 0; i < 350; i++)
        {
            Advance(10);
        }

        Assert.That(fired, Is.EqualTo(new ulong[] { 100, 200, 300 }));
        Assert.That(_bus.Load(TimerCmp(0), 4), Is.EqualTo(400UL));
    }

    [Test]
    public void Periodic_timer_polled_late_fires_once_and_skips_missed_periods()
    {
        ProgramPeriodic(0, first: 100, period: 100);
        _bus.Store(Cfg, 1);

        Advance(10 * 1050);

        Assert.That(_irqs.RisingEdges(2), Is.EqualTo(1));
        Assert.That(_hpet.GetTimerComparator(0), Is.EqualTo(1100UL));
        Assert.That(_hpet.NextDeadline, Is.EqualTo(11_000));
    }

    [Test]
    public void In_periodic_mode_a_comparator_write_without_set_value_changes_only_the_period()
    {
        _bus.Store(TimerCmp(1), 0);
        _bus.Store(TimerCmp(1) + 4, 0);
        _bus.Store(TimerCfg(1), 0x48);
        Assert.That(_bus.Load(TimerCfg(1), 4), Is.EqualTo(0x78UL), "set value reads back until used");

        _bus.Store(TimerCmp(1), 0x2_0000_3000UL, 8);
        Assert.That(_bus.Load(TimerCfg(1), 4), Is.EqualTo(0x38UL), "the low-half write consumed set value");
        Assert.That(_bus.Load(TimerCmp(1), 8), Is.EqualTo(0x3000UL), "the high half went to the period (observed on QEMU)");

        _bus.Store(TimerCmp(1), 0x5000);
        Assert.That(_bus.Load(TimerCmp(1), 4), Is.EqualTo(0x3000UL));
    }

    [Test]
    public void Thirty_two_bit_mode_truncates_the_comparator()
    {
        _bus.Store(TimerCfg(0), 0x100);
        Assert.That(_bus.Load(TimerCmp(0), 8), Is.EqualTo(0xFFFF_FFFFUL));
    }

    [Test]
    public void Enabling_a_timer_whose_comparator_is_behind_fires_one_tick_later()
    {
        _bus.Store(Cfg, 1);
        Advance(5000);
        _bus.Store(TimerCfg(0), (2 << 9) | 0x6); // comparator still ~0: negative difference
        Assert.That(_hpet.NextDeadline, Is.EqualTo(5010));
        Advance(10);
        Assert.That(_bus.Load(Isr, 4), Is.EqualTo(1UL));
    }

    [Test]
    public void Legacy_replacement_routes_timer_0_to_IRQ_0_and_timer_1_to_IRQ_8()
    {
        var pitEnabled = new List<bool>();
        _hpet.PitEnableChanged += pitEnabled.Add;
        _bus.Store(TimerCfg(0), 0x6);
        _bus.Store(TimerCmp(0), 10);
        _bus.Store(TimerCmp(0) + 4, 0);
        _bus.Store(TimerCfg(1), 0x6);
        _bus.Store(TimerCmp(1), 20);
        _bus.Store(TimerCmp(1) + 4, 0);
        _bus.Store(Cfg, 3);
        Assert.That(pitEnabled, Is.EqualTo(new[] { false }));

        Advance(1000);
        Assert.That(_hpet.GetIrqLevel(0), Is.True);
        Assert.That(_hpet.GetIrqLevel(8), Is.True);
        Assert.That(_hpet.GetIrqLevel(2), Is.False);

        _bus.Store(Cfg, 1);
        Assert.That(pitEnabled, Is.EqualTo(new[] { false, true }));
        Assert.That(_hpet.GetIrqLevel(0), Is.False);
    }

    [Test]
    public void Legacy_inputs_pass_through_unless_replaced()
    {
        _hpet.SetLegacyPitInput(true);
        _hpet.SetLegacyRtcInput(true);
        Assert.That(_irqs.Events, Is.EqualTo(new[] { (0, true), (8, true) }));

        _bus.Store(Cfg, 2);
        _hpet.SetLegacyPitInput(false);
        Assert.That(_hpet.GetIrqLevel(0), Is.False, "legacy mode lowered IRQ 0 and blocks the PIT");
    }

    [Test]
    public void FSB_delivery_raises_a_message_instead_of_a_line()
    {
        var messages = new List<(ulong Address, uint Data)>();
        _hpet.FsbMessage += (address, data) => messages.Add((address, data));
        _bus.Store(TimerCfg(0) + 0x10, 0x41);
        _bus.Store(TimerCfg(0) + 0x14, 0xFEE0_0000);
        _bus.Store(TimerCfg(0), 0x4000 | 0x4);
        _bus.Store(TimerCmp(0), 5);
        _bus.Store(TimerCmp(0) + 4, 0);
        _bus.Store(Cfg, 1);
        Advance(100);
        Assert.That(messages, Is.EqualTo(new[] { (0xFEE0_0000UL, 0x41u) }));
        Assert.That(_irqs.Events, Is.Empty);
    }

    [Test]
    public void Halting_the_counter_cancels_pending_timers()
    {
        _bus.Store(TimerCfg(0), (2 << 9) | 0x6);
        _bus.Store(TimerCmp(0), 100);
        _bus.Store(TimerCmp(0) + 4, 0);
        _bus.Store(Cfg, 1);
        _bus.Store(Cfg, 0);
        Advance(10_000);
        Assert.That(_irqs.Events, Is.Empty);
    }

    [Test]
    public void Every_offset_and_size_is_served_without_throwing()
    {
        var random = new Random(7);
        for (ulong offset = 0; offset < 0x400; offset += 4)
        {
            foreach (int size in new[] { 1, 2, 4, 8 })
            {
                ulong pa = Base + offset;
                Assert.DoesNotThrow(() => _bus.Read(pa, size, out _, BusExtensions.Cpu0));
                if (offset != 0x10)
                {
                    ulong value = (ulong)random.NextInt64();
                    Assert.DoesNotThrow(() => _bus.Write(pa, size, value, BusExtensions.Cpu0));
                }
            }
        }

        Assert.DoesNotThrow(() => Advance(1_000_000));
    }

    [Test]
    public void Timer_count_outside_3_to_32_is_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new Hpet(_clock, timerCount: 2));
        Assert.That(ex!.Message, Does.StartWith("An HPET has 3 to 32 timers (QEMU's num_timers); 2 is not allowed."));
    }
}
