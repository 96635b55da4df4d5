using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Timers;

/// <summary>
/// The 8254 programmable interval timer as QEMU 7.2 models it (hw/timer/i8254.c, i8254_common.c): three 16-bit
/// channels clocked at 1.193182 MHz, counted from guest time (<c>ticks = elapsed ns × 1193182 / 10^9</c>), with the
/// control word at port 0x43 (mode, access lobyte/hibyte/both, counter latch, read-back) and channel 0's output
/// driving ISA IRQ 0.
/// </summary>
/// <remarks>
/// Reset state (QEMU): every channel in mode 3 with count 0x10000 loaded at power-on, access mode 0 (reads return
/// the low byte), gates high except channel 2's (port 0x61 bit 0). Read-back status is
/// <c>OUT &lt;&lt; 7 | access &lt;&lt; 4 | mode &lt;&lt; 1 | BCD</c> (0x86 per channel after reset on QEMU). Output
/// levels follow QEMU's pit_get_out, including its mode 2 output, which is high only on the tick the count reloads.
/// Modes 6 and 7 are kept as written and behave as QEMU's code does (counting like mode 2, output like mode 0).
/// BCD counting and the null-count flag are not modelled (QEMU neither). The gate only restarts modes 1, 2, 3 and
/// 5 on a rising edge.
/// </remarks>
public sealed class Pit8254 : IMmioDevice, ITimedDevice
{
    /// <summary>The input clock in Hz.</summary>
    public const long InputFrequency = 1_193_182;

    private const int RwLsb = 1, RwMsb = 2, RwWord0 = 3, RwWord1 = 4;

    private readonly GuestClock _clock;
    private readonly Channel[] _channels = new Channel[3];
    private bool _irqEnabled = true;

    /// <summary>Creates the PIT in its reset state, counting from the clock's current time.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="clock"/> is null.</exception>
    public Pit8254(GuestClock clock)
    {
        _clock = DeviceThrow.NotNull(clock, nameof(clock), "The 8254 PIT");
        for (int i = 0; i < 3; i++)
        {
            _channels[i] = new Channel();
        }

        Reset();
    }

    /// <inheritdoc />
    public string Name => "pit";

    /// <inheritdoc />
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <summary>Byte registers.</summary>
    public AccessConstraints Impl => AccessConstraints.Exactly(1);

    /// <summary>Channel 0's output as last driven on the IRQ line.</summary>
    public bool IrqLevel { get; private set; }

    /// <summary>Raised with the new level whenever channel 0 drives its output (ISA IRQ 0 on the pc machine).</summary>
    public event Action<bool>? IrqChanged;

    /// <summary>
    /// Whether channel 0 drives its interrupt line. The HPET turns this off in legacy replacement mode (QEMU's
    /// pit_irq_control); turning it back on re-evaluates the output at once.
    /// </summary>
    public bool IrqEnabled
    {
        get => _irqEnabled;
        set
        {
            if (value == _irqEnabled)
            {
                return;
            }

            _irqEnabled = value;
            Channel c = _channels[0];
            if (value)
            {
                UpdateIrqTimer(c, _clock.Nanoseconds);
            }
            else
            {
                c.NextTransition = -1;
            }
        }
    }

    /// <inheritdoc />
    public long NextDeadline
    {
        get
        {
            long next = _channels[0].NextTransition;
            return next < 0 || !_irqEnabled ? long.MaxValue : next;
        }
    }

    /// <summary>Returns all channels to the reset state, loading count 0x10000 in mode 3 at the current guest time.</summary>
    public void Reset()
    {
        long now = _clock.Nanoseconds;
        for (int i = 0; i < 3; i++)
        {
            Channel c = _channels[i];
            c.Mode = 3;
            c.Gate = i != 2;
            c.CountLoadTime = now;
            c.Count = 0x10000;
            c.RwMode = 0;
            c.ReadState = 0;
            c.WriteState = 0;
            c.WriteLatch = 0;
            c.LatchedCount = 0;
            c.CountLatched = 0;
            c.StatusLatched = false;
            c.Status = 0;
            c.Bcd = false;
            c.NextTransition = -1;
        }

        UpdateIrqTimer(_channels[0], now);
    }

    /// <summary>Sets a channel's gate input (channel 2's is port 0x61 bit 0; the others are tied high).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channel"/> is not 0, 1 or 2.</exception>
    public void SetGate(int channel, bool level)
    {
        Channel c = ChannelAt(channel);
        long now = _clock.Nanoseconds;
        if (c.Mode is 1 or 2 or 3 or 5 && !c.Gate && level)
        {
            // Rising edge restarts counting.
            c.CountLoadTime = now;
            if (channel == 0)
            {
                UpdateIrqTimer(c, now);
            }
        }

        c.Gate = level;
    }

    /// <summary>A channel's gate input.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channel"/> is not 0, 1 or 2.</exception>
    public bool GetGate(int channel) => ChannelAt(channel).Gate;

    /// <summary>A channel's output level now.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channel"/> is not 0, 1 or 2.</exception>
    public bool GetOutput(int channel) => GetOut(ChannelAt(channel), _clock.Nanoseconds);

    /// <summary>A channel's current count (what an unlatched read would return, as a 16-bit value).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channel"/> is not 0, 1 or 2.</exception>
    public int GetCount(int channel) => GetCurrentCount(ChannelAt(channel), _clock.Nanoseconds);

    /// <summary>A channel's mode (0-7) as last programmed.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channel"/> is not 0, 1 or 2.</exception>
    public int GetMode(int channel) => ChannelAt(channel).Mode;

    /// <summary>A channel's reload value (1 to 0x10000; a written 0 means 0x10000).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channel"/> is not 0, 1 or 2.</exception>
    public int GetReload(int channel) => ChannelAt(channel).Count;

    /// <inheritdoc />
    public void Poll()
    {
        Channel c = _channels[0];
        long now = _clock.Nanoseconds;
        if (!_irqEnabled || c.NextTransition < 0 || c.NextTransition > now)
        {
            return;
        }

        // Catching up many periods at once: only the last few transitions matter (the interrupt controller latches
        // an edge until it is acknowledged), so start from two periods back.
        long periodNs = TicksToNs(c.Count);
        if (c.Mode is 2 or 3 && now - c.NextTransition > 4 * periodNs)
        {
            UpdateIrqTimer(c, now - 2 * periodNs);
        }

        while (c.NextTransition >= 0 && c.NextTransition <= now)
        {
            UpdateIrqTimer(c, c.NextTransition);
        }
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        Poll();
        value = ReadPort((int)(offset & 3));
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        Poll();
        WritePort((int)(offset & 3), (byte)value);
        return BusStatus.Ok;
    }

    private byte ReadPort(int port)
    {
        if (port == 3)
        {
            return 0; // The control word register is write-only; QEMU returns 0.
        }

        Channel c = _channels[port];
        if (c.StatusLatched)
        {
            c.StatusLatched = false;
            return c.Status;
        }

        if (c.CountLatched != 0)
        {
            switch (c.CountLatched)
            {
                case RwMsb:
                    c.CountLatched = 0;
                    return (byte)(c.LatchedCount >> 8);
                case RwWord0:
                    c.CountLatched = RwMsb;
                    return (byte)c.LatchedCount;
                default:
                    c.CountLatched = 0;
                    return (byte)c.LatchedCount;
            }
        }

        int count = GetCurrentCount(c, _clock.Nanoseconds);
        switch (c.ReadState)
        {
            case RwMsb:
                return (byte)(count >> 8);
            case RwWord0:
                c.ReadState = RwWord1;
                return (byte)count;
            case RwWord1:
                c.ReadState = RwWord0;
                return (byte)(count >> 8);
            default:
                return (byte)count;
        }
    }

    private void WritePort(int port, byte value)
    {
        long now = _clock.Nanoseconds;
        if (port == 3)
        {
            int select = value >> 6;
            if (select == 3)
            {
                // Read-back: bit 5 clear latches counts, bit 4 clear latches status, bits 1-3 select channels.
                for (int i = 0; i < 3; i++)
                {
                    if ((value & (2 << i)) == 0)
                    {
                        continue;
                    }

                    Channel rc = _channels[i];
                    if ((value & 0x20) == 0)
                    {
                        LatchCount(rc, now);
                    }

                    if ((value & 0x10) == 0 && !rc.StatusLatched)
                    {
                        rc.Status = (byte)(((GetOut(rc, now) ? 1 : 0) << 7) | (rc.RwMode << 4) | (rc.Mode << 1) | (rc.Bcd ? 1 : 0));
                        rc.StatusLatched = true;
                    }
                }

                return;
            }

            Channel c = _channels[select];
            int access = (value >> 4) & 3;
            if (access == 0)
            {
                LatchCount(c, now);
            }
            else
            {
                c.RwMode = access;
                c.ReadState = access;
                c.WriteState = access;
                c.Mode = (value >> 1) & 7;
                c.Bcd = (value & 1) != 0;
            }

            return;
        }

        Channel ch = _channels[port];
        switch (ch.WriteState)
        {
            case RwMsb:
                LoadCount(port, value << 8, now);
                break;
            case RwWord0:
                ch.WriteLatch = value;
                ch.WriteState = RwWord1;
                break;
            case RwWord1:
                LoadCount(port, ch.WriteLatch | (value << 8), now);
                ch.WriteState = RwWord0;
                break;
            default:
                LoadCount(port, value, now);
                break;
        }
    }

    private void LoadCount(int channel, int value, long now)
    {
        Channel c = _channels[channel];
        c.Count = value == 0 ? 0x10000 : value;
        c.CountLoadTime = now;
        if (channel == 0)
        {
            UpdateIrqTimer(c, now);
        }
    }

    private void LatchCount(Channel c, long now)
    {
        if (c.CountLatched == 0)
        {
            c.LatchedCount = GetCurrentCount(c, now);
            c.CountLatched = c.RwMode;
        }
    }

    private static long ElapsedTicks(Channel c, long now) =>
        (long)((Int128)(now - c.CountLoadTime) * InputFrequency / 1_000_000_000);

    private static long TicksToNs(long ticks) => (long)((Int128)ticks * 1_000_000_000 / InputFrequency);

    private static int GetCurrentCount(Channel c, long now)
    {
        long d = ElapsedTicks(c, now);
        return c.Mode switch
        {
            0 or 1 or 4 or 5 => (int)((c.Count - d) & 0xFFFF),
            3 => (int)(c.Count - (2 * d % c.Count)),
            _ => (int)(c.Count - (d % c.Count)),
        } & 0xFFFF;
    }

    private static bool GetOut(Channel c, long now)
    {
        long d = ElapsedTicks(c, now);
        return c.Mode switch
        {
            1 => d < c.Count,
            2 => d % c.Count == 0 && d != 0,
            3 => d % c.Count < ((c.Count + 1) >> 1),
            4 or 5 => d == c.Count,
            _ => d >= c.Count,
        };
    }

    /// <summary>Guest time of the output's next transition after <paramref name="now"/>, or -1 when none follows.</summary>
    private static long NextTransitionTime(Channel c, long now)
    {
        long d = ElapsedTicks(c, now);
        long next;
        switch (c.Mode)
        {
            case 2:
            {
                long reloadBase = d / c.Count * c.Count;
                next = d - reloadBase == 0 && d != 0 ? reloadBase + c.Count : reloadBase + c.Count + 1;
                break;
            }

            case 3:
            {
                long reloadBase = d / c.Count * c.Count;
                long half = (c.Count + 1) >> 1;
                next = d - reloadBase < half ? reloadBase + half : reloadBase + c.Count;
                break;
            }

            case 4:
            case 5:
                if (d < c.Count)
                {
                    next = c.Count;
                }
                else if (d == c.Count)
                {
                    next = c.Count + 1;
                }
                else
                {
                    return -1;
                }

                break;
            default: // 0, 1, 6, 7
                if (d >= c.Count)
                {
                    return -1;
                }

                next = c.Count;
                break;
        }

        long time = c.CountLoadTime + TicksToNs(next);
        return time <= now ? now + 1 : time;
    }

    private void UpdateIrqTimer(Channel c, long now)
    {
        if (!_irqEnabled)
        {
            return;
        }

        c.NextTransition = NextTransitionTime(c, now);
        bool level = GetOut(c, now);
        if (level != IrqLevel)
        {
            IrqLevel = level;
            IrqChanged?.Invoke(level);
        }
    }

    private Channel ChannelAt(int channel)
    {
        if ((uint)channel > 2)
        {
            DeviceThrow.OutOfRange(nameof(channel), channel, $"The 8254 has channels 0, 1 and 2; {channel} is not one.");
        }

        return _channels[channel];
    }

    private sealed class Channel
    {
        public int Count;
        public int LatchedCount;
        public int CountLatched;
        public bool StatusLatched;
        public byte Status;
        public int ReadState;
        public int WriteState;
        public int WriteLatch;
        public int RwMode;
        public int Mode;
        public bool Bcd;
        public bool Gate;
        public long CountLoadTime;
        public long NextTransition = -1;
    }
}
