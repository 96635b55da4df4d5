using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Timers;

/// <summary>
/// The High Precision Event Timer as QEMU 7.2 models it (hw/timer/hpet.c): a 64-bit main counter at 100 MHz (one
/// tick per 10 guest nanoseconds) and three comparators with one-shot and periodic modes, level or edge interrupts
/// routed to ISA/GSI lines (or to IRQ 0 and 8 in legacy replacement mode), and FSB (message) delivery.
/// </summary>
/// <remarks>
/// <para>Register map (32-bit registers; a 64-bit access is split into two, low half first): 0x000 capabilities
/// (0x8086A201: revision 1, 3 timers, 64-bit counter, legacy replacement capable, vendor 0x8086), 0x004 period
/// (0x00989680 fs), 0x010 configuration (bit 0 enable, bit 1 legacy replacement), 0x020 interrupt status (level
/// interrupts only; write 1 to clear), 0x0F0/0x0F4 main counter (writable; counts only while enabled), 0x100 + 0x20n
/// timer n: configuration and capabilities (reset 0x00000004_00000030: IRQ 2 routable, 64-bit capable, periodic
/// capable; bits 1-3, 6, 8-14 writable), comparator at +8, FSB route at +0x10. Accesses of 1 or 2 bytes read 0 and
/// are ignored, as observed on QEMU.</para>
/// <para>Time: QEMU arms a host timer per comparator; here each timer keeps a deadline in guest nanoseconds and
/// <see cref="Poll"/> runs the expiry, with the comparator arithmetic of QEMU's hpet_timer. A periodic comparator
/// advances past the current count when it fires (QEMU's loop uses "after", which with exact timing would fire the
/// same period twice; the HPET specification advances on the match). A comparator at or behind the counter fires one
/// tick later (QEMU's signed difference), so enabling a timer whose comparator still holds the reset value ~0 fires
/// almost at once, as on QEMU. Polling late fires a periodic timer once and skips the missed periods, as QEMU does
/// when its timer callback runs late.</para>
/// </remarks>
public sealed class Hpet : IMmioDevice, ITimedDevice
{
    /// <summary>The counter period in femtoseconds (10 ns).</summary>
    public const uint PeriodFemtoseconds = 10_000_000;

    /// <summary>Guest nanoseconds per counter tick.</summary>
    public const long NanosecondsPerTick = 10;

    /// <summary>Number of interrupt routes (lines) the HPET can drive.</summary>
    public const int IrqLineCount = 32;

    /// <summary>The ISA IRQ the RTC uses, where legacy replacement routes timer 1.</summary>
    public const int RtcIsaIrq = 8;

    private const ulong CfgEnable = 0x1, CfgLegacy = 0x2, CfgWriteMask = 0x3;
    private const ulong TnLevel = 1 << 1, TnEnable = 1 << 2, TnPeriodic = 1 << 3, TnPeriodicCap = 1 << 4;
    private const ulong TnSizeCap = 1 << 5, TnSetVal = 1 << 6, Tn32Bit = 1 << 8, TnRouteMask = 0x3E00;
    private const int TnRouteShift = 9;
    private const ulong TnFsbEnable = 1 << 14, TnFsbCap = 1 << 15, TnCfgWriteMask = 0x7F4E;

    private readonly GuestClock _clock;
    private readonly Timer[] _timers;
    private readonly uint _intCap;
    private readonly ulong _capability;
    private ulong _config;
    private ulong _isr;
    private ulong _counter; // the counter while halted, or its value at _enabledAt while enabled
    private long _enabledAt;
    private uint _lineLevels;
    private bool _legacyRtcLevel;

    /// <summary>Creates an HPET in its reset state.</summary>
    /// <param name="clock">Guest time.</param>
    /// <param name="interruptRouteCapability">
    /// Bit mask of the interrupt lines each timer may be routed to (upper half of the timer configuration). QEMU's pc
    /// (i440FX) machine uses 0x4: IRQ 2 only; q35 uses 0x00FF0104.
    /// </param>
    /// <param name="timerCount">Number of comparators, 3 to 32 (QEMU's default and minimum is 3).</param>
    /// <param name="msiCapable">Whether timer 0 reports FSB delivery capability (QEMU's <c>msi</c> property, off by default).</param>
    /// <exception cref="ArgumentNullException"><paramref name="clock"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timerCount"/> is outside 3-32.</exception>
    public Hpet(GuestClock clock, uint interruptRouteCapability = 0x4, int timerCount = 3, bool msiCapable = false)
    {
        _clock = DeviceThrow.NotNull(clock, nameof(clock), "The HPET");
        if (timerCount is < 3 or > 32)
        {
            DeviceThrow.OutOfRange(nameof(timerCount), timerCount,
                $"An HPET has 3 to 32 timers (QEMU's num_timers); {timerCount} is not allowed.");
        }

        _intCap = interruptRouteCapability;
        _timers = new Timer[timerCount];
        for (int i = 0; i < timerCount; i++)
        {
            _timers[i] = new Timer(i);
        }

        // Revision 1, legacy replacement capable (bit 15), 64-bit counter (bit 13), vendor 0x8086, timers - 1 in 12:8.
        _capability = 0x8086A001UL | ((ulong)(timerCount - 1) << 8) | ((ulong)PeriodFemtoseconds << 32);
        MsiCapable = msiCapable;
        Reset();
    }

    /// <inheritdoc />
    public string Name => "hpet";

    /// <summary>Sizes 1-8, aligned; 1- and 2-byte accesses read 0 and are ignored (observed on QEMU 7.2).</summary>
    public AccessConstraints Valid => new(1, 8);

    /// <summary>32-bit registers: the bus splits 64-bit accesses into two, low half first.</summary>
    public AccessConstraints Impl => new(1, 4);

    /// <summary>The general capabilities and ID register (offset 0x000).</summary>
    public ulong Capabilities => _capability;

    /// <summary>The general configuration register (offset 0x010).</summary>
    public ulong Configuration => _config;

    /// <summary>The general interrupt status register (offset 0x020).</summary>
    public ulong InterruptStatus
    {
        get
        {
            Poll();
            return _isr;
        }
    }

    /// <summary>Whether the main counter runs and interrupts are generated (configuration bit 0).</summary>
    public bool IsEnabled => (_config & CfgEnable) != 0;

    /// <summary>Whether legacy replacement routing is on (configuration bit 1).</summary>
    public bool LegacyReplacement => (_config & CfgLegacy) != 0;

    /// <summary>Whether timer 0 reports FSB capability.</summary>
    public bool MsiCapable { get; }

    /// <summary>Number of comparators.</summary>
    public int TimerCount => _timers.Length;

    /// <summary>The main counter value now.</summary>
    public ulong MainCounter => IsEnabled ? TicksAt(_clock.Nanoseconds) : _counter;

    /// <summary>
    /// Raised with a line number (0-31) and the new level whenever an HPET interrupt output changes. An edge-triggered
    /// timer pulses its line: raised then lowered at once. Lines are GSIs on the pc machine (ISA IRQs below 16).
    /// </summary>
    public event Action<int, bool>? IrqChanged;

    /// <summary>Raised with (address, data) when a timer with FSB delivery fires: a 32-bit write the machine must perform.</summary>
    public event Action<ulong, uint>? FsbMessage;

    /// <summary>
    /// Raised with false when legacy replacement is switched on and true when it is switched off: the PIT's interrupt
    /// output is disabled while the HPET owns IRQ 0 (QEMU's pit_enabled line).
    /// </summary>
    public event Action<bool>? PitEnableChanged;

    /// <inheritdoc />
    public long NextDeadline
    {
        get
        {
            long next = long.MaxValue;
            foreach (Timer t in _timers)
            {
                next = Math.Min(next, t.Deadline);
            }

            return next;
        }
    }

    /// <summary>The level of interrupt line <paramref name="line"/> (0-31).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="line"/> is outside 0-31.</exception>
    public bool GetIrqLevel(int line)
    {
        if ((uint)line >= IrqLineCount)
        {
            DeviceThrow.OutOfRange(nameof(line), line, $"HPET interrupt lines are numbered 0 to 31; {line} is not one.");
        }

        return (_lineLevels & (1u << line)) != 0;
    }

    /// <summary>Timer <paramref name="index"/>'s configuration and capabilities register.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such timer.</exception>
    public ulong GetTimerConfiguration(int index) => TimerAt(index).Config;

    /// <summary>Timer <paramref name="index"/>'s comparator register.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such timer.</exception>
    public ulong GetTimerComparator(int index)
    {
        Poll();
        return TimerAt(index).Cmp;
    }

    /// <summary>Returns the HPET to its reset state (QEMU's hpet_reset): halted, counter 0, comparators ~0.</summary>
    public void Reset()
    {
        foreach (Timer t in _timers)
        {
            DelTimer(t);
            t.Cmp = ulong.MaxValue;
            t.Config = TnPeriodicCap | TnSizeCap | ((ulong)_intCap << 32);
            if (t.Index == 0 && MsiCapable)
            {
                t.Config |= TnFsbCap;
            }

            t.Period = 0;
            t.Fsb = 0;
            t.WrapFlag = false;
        }

        _isr = 0;
        _counter = 0;
        _enabledAt = 0;
        _config = 0;
        PitEnableChanged?.Invoke(true);
    }

    /// <summary>
    /// The PIT's interrupt output, which on the pc machine reaches IRQ 0 through the HPET: forwarded unless legacy
    /// replacement is on.
    /// </summary>
    public void SetLegacyPitInput(bool level)
    {
        if (!LegacyReplacement)
        {
            SetLine(0, level);
        }
    }

    /// <summary>The RTC's interrupt output, forwarded to IRQ 8 unless legacy replacement is on.</summary>
    public void SetLegacyRtcInput(bool level)
    {
        _legacyRtcLevel = level;
        if (!LegacyReplacement)
        {
            SetLine(RtcIsaIrq, level);
        }
    }

    /// <inheritdoc />
    public void Poll()
    {
        long now = _clock.Nanoseconds;
        while (true)
        {
            Timer? due = null;
            foreach (Timer t in _timers)
            {
                if (t.Deadline <= now && (due is null || t.Deadline < due.Deadline))
                {
                    due = t;
                }
            }

            if (due is null)
            {
                return;
            }

            Expire(due, now);
        }
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        Poll();
        value = size == 4 ? ReadRegister(offset) : 0;
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        Poll();
        if (size == 4)
        {
            WriteRegister(offset, (uint)value);
        }

        return BusStatus.Ok;
    }

    private uint ReadRegister(ulong offset)
    {
        if (offset >= 0x100 && offset <= 0x3FF)
        {
            int id = (int)((offset - 0x100) / 0x20);
            if (id >= _timers.Length)
            {
                return 0;
            }

            Timer t = _timers[id];
            return ((offset - 0x100) % 0x20) switch
            {
                0x00 => (uint)t.Config,
                0x04 => (uint)(t.Config >> 32),
                0x08 => (uint)t.Cmp,
                0x0C => (uint)(t.Cmp >> 32),
                0x10 => (uint)t.Fsb,
                0x14 => (uint)(t.Fsb >> 32),
                _ => 0,
            };
        }

        return offset switch
        {
            0x000 => (uint)_capability,
            0x004 => (uint)(_capability >> 32),
            0x010 => (uint)_config,
            0x020 => (uint)_isr,
            0x0F0 => (uint)MainCounter,
            0x0F4 => (uint)(MainCounter >> 32),
            _ => 0,
        };
    }

    private void WriteRegister(ulong offset, uint value)
    {
        long now = _clock.Nanoseconds;
        if (offset >= 0x100 && offset <= 0x3FF)
        {
            int id = (int)((offset - 0x100) / 0x20);
            if (id < _timers.Length)
            {
                WriteTimer(_timers[id], (int)((offset - 0x100) % 0x20), value, now);
            }

            return;
        }

        switch (offset)
        {
            case 0x010:
                WriteConfiguration(value, now);
                break;
            case 0x020:
                ulong clear = value & _isr;
                foreach (Timer t in _timers)
                {
                    if ((clear & (1UL << t.Index)) != 0)
                    {
                        UpdateIrq(t, set: false);
                    }
                }

                break;
            case 0x0F0:
                // Takes effect while halted; while enabled QEMU stores it but the running count ignores it.
                _counter = (_counter & 0xFFFFFFFF00000000UL) | value;
                break;
            case 0x0F4:
                _counter = (_counter & 0xFFFFFFFFUL) | ((ulong)value << 32);
                break;
        }
    }

    private void WriteConfiguration(uint value, long now)
    {
        ulong old = _config;
        ulong newValue = value;
        _config = (newValue & CfgWriteMask) | (old & ~CfgWriteMask);
        if (Activating(old, newValue, CfgEnable))
        {
            _enabledAt = now;
            foreach (Timer t in _timers)
            {
                if (t.Cmp != ulong.MaxValue)
                {
                    SetTimer(t, now);
                }
            }
        }
        else if (Deactivating(old, newValue, CfgEnable))
        {
            _counter = TicksAt(now, wasEnabled: true);
            foreach (Timer t in _timers)
            {
                DelTimer(t);
            }
        }

        if (Activating(old, newValue, CfgLegacy))
        {
            PitEnableChanged?.Invoke(false);
            SetLine(0, false);
            SetLine(RtcIsaIrq, false);
        }
        else if (Deactivating(old, newValue, CfgLegacy))
        {
            SetLine(0, false);
            PitEnableChanged?.Invoke(true);
            SetLine(RtcIsaIrq, _legacyRtcLevel);
        }
    }

    private void WriteTimer(Timer t, int register, uint value, long now)
    {
        switch (register)
        {
            case 0x00:
            {
                ulong old = (uint)t.Config;
                ulong newValue = value;
                if (Activating(old, newValue, TnFsbEnable))
                {
                    UpdateIrq(t, set: false);
                }

                ulong low = (newValue & TnCfgWriteMask) | (old & ~TnCfgWriteMask);
                t.Config = (t.Config & 0xFFFFFFFF00000000UL) | low;
                if ((newValue & Tn32Bit) != 0)
                {
                    t.Cmp = (uint)t.Cmp;
                    t.Period = (uint)t.Period;
                }

                if (Activating(old, newValue, TnEnable) && IsEnabled)
                {
                    SetTimer(t, now);
                }
                else if (Deactivating(old, newValue, TnEnable))
                {
                    DelTimer(t);
                }

                break;
            }

            case 0x08:
            {
                ulong newValue = value;
                if (!t.Periodic || (t.Config & TnSetVal) != 0)
                {
                    t.Cmp = (t.Cmp & 0xFFFFFFFF00000000UL) | newValue;
                }

                if (t.Periodic)
                {
                    newValue &= (t.Is32Bit ? uint.MaxValue : ulong.MaxValue) >> 1;
                    t.Period = (t.Period & 0xFFFFFFFF00000000UL) | newValue;
                }

                t.Config &= ~TnSetVal;
                if (IsEnabled)
                {
                    SetTimer(t, now);
                }

                break;
            }

            case 0x0C:
            {
                ulong newValue = value;
                if (!t.Periodic || (t.Config & TnSetVal) != 0)
                {
                    t.Cmp = (t.Cmp & 0xFFFFFFFFUL) | (newValue << 32);
                }
                else
                {
                    newValue &= (t.Is32Bit ? uint.MaxValue : ulong.MaxValue) >> 1;
                    t.Period = (t.Period & 0xFFFFFFFFUL) | (newValue << 32);
                }

                t.Config &= ~TnSetVal;
                if (IsEnabled)
                {
                    SetTimer(t, now);
                }

                break;
            }

            case 0x10:
                t.Fsb = (t.Fsb & 0xFFFFFFFF00000000UL) | value;
                break;
            case 0x14:
                t.Fsb = (t.Fsb & 0xFFFFFFFFUL) | ((ulong)value << 32);
                break;
        }
    }

    /// <summary>The counter at guest time <paramref name="ns"/>, counting from the last enable.</summary>
    private ulong TicksAt(long ns, bool wasEnabled = false) =>
        IsEnabled || wasEnabled ? unchecked(_counter + (ulong)((ns - _enabledAt) / NanosecondsPerTick)) : _counter;

    /// <summary>Ticks until the comparator matches: at least 1 (a comparator at or behind the counter fires next tick).</summary>
    private static ulong CalculateDiff(Timer t, ulong current)
    {
        if (t.Is32Bit)
        {
            uint diff = unchecked((uint)t.Cmp - (uint)current);
            return (int)diff > 0 ? diff : 1u;
        }
        else
        {
            ulong diff = unchecked(t.Cmp - current);
            return (long)diff > 0 ? diff : 1UL;
        }
    }

    private void SetTimer(Timer t, long now)
    {
        ulong current = TicksAt(now);
        t.WrapFlag = false;
        ulong diff = CalculateDiff(t, current);
        if (t.Is32Bit && !t.Periodic)
        {
            // A 32-bit one-shot timer also interrupts when the counter wraps at 2^32.
            uint wrapDiff = 0xFFFFFFFFu - (uint)current;
            if (wrapDiff < (uint)diff)
            {
                diff = wrapDiff;
                t.WrapFlag = true;
            }
        }

        t.Deadline = DeadlineAfter(now, diff);
    }

    private static long DeadlineAfter(long now, ulong ticks)
    {
        ulong limit = (ulong)(long.MaxValue - now) / NanosecondsPerTick;
        return ticks >= limit ? long.MaxValue : now + (long)ticks * NanosecondsPerTick;
    }

    private void DelTimer(Timer t)
    {
        t.Deadline = long.MaxValue;
        UpdateIrq(t, set: false);
    }

    /// <summary>The timer callback (QEMU's hpet_timer) run at <paramref name="now"/>.</summary>
    private void Expire(Timer t, long now)
    {
        t.Deadline = long.MaxValue;
        ulong current = TicksAt(now);
        if (t.Periodic && t.Period != 0)
        {
            if (t.Is32Bit)
            {
                uint behind = unchecked((uint)current - (uint)t.Cmp);
                if ((int)behind >= 0)
                {
                    ulong steps = behind / t.Period + 1;
                    t.Cmp = unchecked((uint)(t.Cmp + steps * t.Period));
                }
            }
            else
            {
                ulong behind = unchecked(current - t.Cmp);
                if ((long)behind >= 0)
                {
                    ulong steps = behind / t.Period + 1;
                    t.Cmp = unchecked(t.Cmp + steps * t.Period);
                }
            }

            t.Deadline = DeadlineAfter(now, CalculateDiff(t, current));
        }
        else if (t.Is32Bit && !t.Periodic && t.WrapFlag)
        {
            t.Deadline = DeadlineAfter(now, CalculateDiff(t, current));
            t.WrapFlag = false;
        }

        UpdateIrq(t, set: true);
    }

    private void UpdateIrq(Timer t, bool set)
    {
        int route = t.Index <= 1 && LegacyReplacement
            ? (t.Index == 0 ? 0 : RtcIsaIrq)
            : (int)((t.Config & TnRouteMask) >> TnRouteShift);
        ulong mask = 1UL << t.Index;
        bool fsb = (t.Config & TnFsbEnable) != 0;
        if (!set || (t.Config & TnEnable) == 0 || !IsEnabled)
        {
            _isr &= ~mask;
            if (!fsb)
            {
                SetLine(route, false);
            }
        }
        else if (fsb)
        {
            FsbMessage?.Invoke(t.Fsb >> 32, (uint)t.Fsb);
        }
        else if ((t.Config & TnLevel) != 0)
        {
            _isr |= mask;
            SetLine(route, true);
        }
        else
        {
            _isr &= ~mask;
            SetLine(route, true);
            SetLine(route, false);
        }
    }

    private void SetLine(int line, bool level)
    {
        uint bit = 1u << line;
        if (((_lineLevels & bit) != 0) == level)
        {
            return;
        }

        _lineLevels = level ? _lineLevels | bit : _lineLevels & ~bit;
        IrqChanged?.Invoke(line, level);
    }

    private Timer TimerAt(int index)
    {
        if ((uint)index >= (uint)_timers.Length)
        {
            DeviceThrow.OutOfRange(nameof(index), index, $"This HPET has timers 0 to {_timers.Length - 1}; {index} is not one.");
        }

        return _timers[index];
    }

    private static bool Activating(ulong old, ulong value, ulong mask) => (old & mask) == 0 && (value & mask) != 0;

    private static bool Deactivating(ulong old, ulong value, ulong mask) => (old & mask) != 0 && (value & mask) == 0;

    private sealed class Timer(int index)
    {
        public int Index { get; } = index;

        public ulong Config;
        public ulong Cmp;
        public ulong Fsb;
        public ulong Period;
        public bool WrapFlag;
        public long Deadline = long.MaxValue;

        public bool Periodic => (Config & TnPeriodic) != 0;

        public bool Is32Bit => (Config & Tn32Bit) != 0;
    }
}
