using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Platform;

namespace HwMemModel.Devices.Timers;

/// <summary>
/// The MC146818 real-time clock and its 128 bytes of CMOS RAM as QEMU 7.2 models them (hw/rtc/mc146818rtc.c), at
/// ports 0x70 (index; bit 7 is the NMI mask and is not part of the index) and 0x71 (data). The clock starts at a
/// fixed date given to the constructor (never the host clock) and advances with guest time.
/// </summary>
/// <remarks>
/// <para>Registers: 0x00-0x09 time, date and alarm (BCD and 24-hour unless register B says otherwise), 0x32 century
/// (0x37 is an alias: QEMU redirects the index to 0x32), A 0x26 (32.768 kHz divider, 1024 Hz rate; bit 7 UIP is set
/// during the last 244 µs of every guest second while the clock runs), B 0x02 (24-hour, BCD), C 0x00 (flags, cleared
/// by reading), D 0x80 (valid RAM and time). Reading port 0x70 returns 0xFF.</para>
/// <para>QEMU's pc machine fills these bytes (pc_cmos_init): 0x14 equipment 0x06 (FPU, PS/2 mouse), 0x15/0x16 base
/// memory 640 KiB, 0x17/0x18 and 0x30/0x31 memory above 1 MiB in KiB capped at 65,535, 0x34/0x35 memory above 16 MiB
/// in 64 KiB units capped at 65,535, 0x38 0x30 and 0x3D 0x12 (boot order "cad"), 0x5B-0x5D memory above 4 GiB in
/// 64 KiB units, 0x5F CPU count - 1. Memory is split below and above 4 GiB as the i440FX machine does
/// (<see cref="PcRamLayout"/>).</para>
/// <para>Update-ended, alarm and periodic interrupts set register C's flags and drive IRQ 8; they are computed from
/// guest time when the CMOS is accessed or <see cref="Poll"/> runs.</para>
/// </remarks>
public sealed class CmosRtc : IMmioDevice, ITimedDevice
{
    /// <summary>Size of the CMOS RAM in bytes.</summary>
    public const int CmosSize = 128;

    /// <summary>Register indices.</summary>
    public const int Seconds = 0x00, SecondsAlarm = 0x01, Minutes = 0x02, MinutesAlarm = 0x03, Hours = 0x04,
        HoursAlarm = 0x05, DayOfWeek = 0x06, DayOfMonth = 0x07, Month = 0x08, Year = 0x09,
        RegisterA = 0x0A, RegisterB = 0x0B, RegisterC = 0x0C, RegisterD = 0x0D, Century = 0x32, IbmPs2Century = 0x37;

    private const long NsPerSecond = 1_000_000_000;
    private const long UipHoldNs = 8 * NsPerSecond / 32768;
    private const byte ASetBits = 0x70, AUip = 0x80;
    private const byte BSet = 0x80, BPie = 0x40, BAie = 0x20, BUie = 0x10, BBinary = 0x04, B24Hour = 0x02;
    private const byte CIrqf = 0x80, CPf = 0x40, CAf = 0x20, CUf = 0x10, CMask = 0x70;

    private readonly GuestClock _clock;
    private readonly byte[] _cmos = new byte[CmosSize];
    private byte _index;
    private long _baseRtc;     // guest RTC seconds at _lastUpdate
    private long _lastUpdate;  // guest ns when _baseRtc was set
    private long _offset;      // sub-second phase in ns
    private long _checkedSecond;
    private long _nextPeriodic = long.MaxValue;

    /// <summary>Creates the RTC and fills the CMOS as QEMU's pc machine does.</summary>
    /// <param name="clock">Guest time.</param>
    /// <param name="ramSize">The machine's RAM size in bytes (at least 1 MiB).</param>
    /// <param name="start">The date and time at guest time 0 (its Kind is ignored); default 2000-01-01 00:00:00.</param>
    /// <param name="cpuCount">Number of CPUs, 1 to 256, stored as count - 1 at 0x5F.</param>
    /// <exception cref="ArgumentNullException"><paramref name="clock"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The RAM size is below 1 MiB or the CPU count is outside 1-256.</exception>
    public CmosRtc(GuestClock clock, ulong ramSize, DateTime? start = null, int cpuCount = 1)
    {
        _clock = DeviceThrow.NotNull(clock, nameof(clock), "The CMOS RTC");
        if (ramSize < 1UL << 20)
        {
            DeviceThrow.OutOfRange(nameof(ramSize), ramSize,
                $"RAM size 0x{ramSize:x} is below 1 MiB; the pc machine's CMOS describes at least 1 MiB of RAM.");
        }

        if (cpuCount is < 1 or > 256)
        {
            DeviceThrow.OutOfRange(nameof(cpuCount), cpuCount, $"CPU count {cpuCount} is outside 1-256 (the CMOS stores count - 1 in one byte).");
        }

        DateTime when = start ?? new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        StartTime = when;
        RamSize = ramSize;

        _cmos[RegisterA] = 0x26;
        _cmos[RegisterB] = B24Hour;
        _cmos[RegisterC] = 0x00;
        _cmos[RegisterD] = 0x80;

        _baseRtc = CivilTime.ToEpochSeconds(when.Year, when.Month, when.Day, when.Hour, when.Minute, when.Second);
        _lastUpdate = _clock.Nanoseconds;
        _offset = when.Ticks % TimeSpan.TicksPerSecond * 100;
        _checkedSecond = RtcSeconds(_clock.Nanoseconds);
        RenderTime(_checkedSecond);

        (ulong below, ulong above) = PcRamLayout.Split(ramSize);
        uint baseKiB = (uint)Math.Min(below / 1024, 640);
        SetMemory(0x15, (byte)baseKiB);
        SetMemory(0x16, (byte)(baseKiB >> 8));
        uint extKiB = below > 1UL << 20 ? (uint)Math.Min((below - (1UL << 20)) / 1024, 65535) : 0;
        SetMemory(0x17, (byte)extKiB);
        SetMemory(0x18, (byte)(extKiB >> 8));
        SetMemory(0x30, (byte)extKiB);
        SetMemory(0x31, (byte)(extKiB >> 8));
        uint above16M = below > 16UL << 20 ? (uint)Math.Min((below - (16UL << 20)) / 65536, 65535) : 0;
        SetMemory(0x34, (byte)above16M);
        SetMemory(0x35, (byte)(above16M >> 8));
        ulong high = above / 65536;
        SetMemory(0x5B, (byte)high);
        SetMemory(0x5C, (byte)(high >> 8));
        SetMemory(0x5D, (byte)(high >> 16));
        SetMemory(0x14, 0x06);
        SetMemory(0x38, 0x30);
        SetMemory(0x3D, 0x12);
        SetMemory(0x5F, (byte)(cpuCount - 1));
    }

    /// <inheritdoc />
    public string Name => "rtc0";

    /// <inheritdoc />
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <summary>Byte registers.</summary>
    public AccessConstraints Impl => AccessConstraints.Exactly(1);

    /// <summary>The date and time at guest time 0, as given to the constructor.</summary>
    public DateTime StartTime { get; }

    /// <summary>The RAM size the memory bytes describe.</summary>
    public ulong RamSize { get; }

    /// <summary>The current CMOS index (bits 0-6 of the last write to port 0x70).</summary>
    public byte Index => _index;

    /// <summary>Bit 7 of the last write to port 0x70 (NMI disable); QEMU does not act on it.</summary>
    public bool NmiMasked { get; private set; }

    /// <summary>The IRQ 8 output level.</summary>
    public bool IrqLevel { get; private set; }

    /// <summary>Raised with the new level whenever <see cref="IrqLevel"/> changes.</summary>
    public event Action<bool>? IrqChanged;

    /// <summary>
    /// The clock's current date and time (what the time registers show once refreshed); clamped to
    /// <see cref="DateTime.MinValue"/> or <see cref="DateTime.MaxValue"/> when the guest set a year outside 1-9999.
    /// </summary>
    public DateTime Now
    {
        get
        {
            long now = _clock.Nanoseconds;
            CivilTime t = CivilTime.FromEpochSeconds(RtcSeconds(now));
            if (t.Year < 1)
            {
                return DateTime.MinValue;
            }

            if (t.Year > 9999)
            {
                return DateTime.MaxValue;
            }

            return new DateTime((int)t.Year, t.Month + 1, t.Day, t.Hour, t.Minute, t.Second, DateTimeKind.Unspecified)
                .AddTicks(SubSecondNs(now) / 100);
        }
    }

    /// <inheritdoc />
    public long NextDeadline
    {
        get
        {
            long next = _nextPeriodic;
            if (Running && (_cmos[RegisterB] & (BUie | BAie)) != 0)
            {
                long now = _clock.Nanoseconds;
                next = Math.Min(next, now + (NsPerSecond - SubSecondNs(now)));
            }

            return next;
        }
    }

    private bool Running => (_cmos[RegisterB] & BSet) == 0 && (_cmos[RegisterA] & ASetBits) <= 0x20;

    /// <summary>A CMOS byte without side effects (time registers as last refreshed).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is outside 0-127.</exception>
    public byte GetMemory(int index) => _cmos[CheckIndex(index)];

    /// <summary>Sets a CMOS byte directly, as firmware set-up code does (QEMU's rtc_set_memory).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is outside 0-127.</exception>
    public void SetMemory(int index, byte value) => _cmos[CheckIndex(index)] = value;

    /// <summary>The machine reset (QEMU's rtc_reset): clears PIE, AIE and SQWE, the interrupt flags, and IRQ 8.</summary>
    public void Reset()
    {
        _cmos[RegisterB] &= unchecked((byte)~(BPie | BAie | 0x08));
        _cmos[RegisterC] &= unchecked((byte)~(CUf | CIrqf | CPf | CAf));
        _nextPeriodic = long.MaxValue;
        _checkedSecond = RtcSeconds(_clock.Nanoseconds);
        SetIrq(false);
    }

    /// <inheritdoc />
    public void Poll() => ProcessEvents(_clock.Nanoseconds);

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        long now = _clock.Nanoseconds;
        ProcessEvents(now);
        if ((offset & 1) == 0)
        {
            value = 0xFF;
            return BusStatus.Ok;
        }

        value = ReadData(now);
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        long now = _clock.Nanoseconds;
        ProcessEvents(now);
        byte data = (byte)value;
        if ((offset & 1) == 0)
        {
            _index = (byte)(data & 0x7F);
            NmiMasked = (data & 0x80) != 0;
        }
        else
        {
            WriteData(data, now);
        }

        return BusStatus.Ok;
    }

    private byte ReadData(long now)
    {
        switch (_index)
        {
            case IbmPs2Century:
                _index = Century;
                goto case Century;
            case Century:
            case Seconds:
            case Minutes:
            case Hours:
            case DayOfWeek:
            case DayOfMonth:
            case Month:
            case Year:
                if (Running)
                {
                    RenderTime(RtcSeconds(now));
                }

                return _cmos[_index];
            case RegisterA:
                byte a = _cmos[RegisterA];
                return Running && SubSecondNs(now) >= NsPerSecond - UipHoldNs ? (byte)(a | AUip) : a;
            case RegisterC:
                byte c = _cmos[RegisterC];
                _cmos[RegisterC] = 0;
                SetIrq(false);
                return c;
            default:
                return _cmos[_index];
        }
    }

    private void WriteData(byte data, long now)
    {
        switch (_index)
        {
            case SecondsAlarm:
            case MinutesAlarm:
            case HoursAlarm:
                _cmos[_index] = data;
                break;
            case IbmPs2Century:
                _index = Century;
                goto case Century;
            case Century:
            case Seconds:
            case Minutes:
            case Hours:
            case DayOfWeek:
            case DayOfMonth:
            case Month:
            case Year:
                _cmos[_index] = data;
                if (Running)
                {
                    SetTimeFromCmos(now);
                }

                break;
            case RegisterA:
                WriteRegisterA(data, now);
                break;
            case RegisterB:
                WriteRegisterB(data, now);
                break;
            case RegisterC:
            case RegisterD:
                break; // read-only
            default:
                _cmos[_index] = data;
                break;
        }
    }

    private void WriteRegisterA(byte data, long now)
    {
        byte oldA = _cmos[RegisterA];
        if ((data & 0x60) == 0x60)
        {
            // Divider held in reset: the clock stops; keep the time it shows.
            if (Running)
            {
                RenderTime(RtcSeconds(now));
            }
        }
        else if ((oldA & 0x60) == 0x60 && (data & ASetBits) <= 0x20 && (_cmos[RegisterB] & BSet) == 0)
        {
            // Leaving divider reset: the first update comes half a second later.
            _offset = NsPerSecond / 2;
            SetTimeFromCmos(now);
        }

        _cmos[RegisterA] = (byte)(data & ~AUip);
        if (((oldA ^ data) & 0x0F) != 0)
        {
            RearmPeriodic(now);
        }

        _checkedSecond = RtcSeconds(now);
    }

    private void WriteRegisterB(byte data, long now)
    {
        byte oldB = _cmos[RegisterB];
        if ((data & BSet) != 0)
        {
            // SET stops updates; the registers keep the time at this moment. UIE cannot be set in SET mode.
            if (Running)
            {
                RenderTime(RtcSeconds(now));
            }

            data &= unchecked((byte)~BUie);
        }
        else if ((oldB & BSet) != 0 && (_cmos[RegisterA] & ASetBits) <= 0x20)
        {
            // Leaving SET: the registers' time starts now, keeping the sub-second phase.
            _offset = SubSecondNs(now);
            SetTimeFromCmos(now);
        }

        // An interrupt flag already set when its enable bit is written raises the interrupt at once.
        if ((data & _cmos[RegisterC] & CMask) != 0)
        {
            _cmos[RegisterC] |= CIrqf;
            SetIrq(true);
        }
        else
        {
            _cmos[RegisterC] &= unchecked((byte)~CIrqf);
            SetIrq(false);
        }

        _cmos[RegisterB] = data;
        if (((oldB ^ data) & BPie) != 0)
        {
            RearmPeriodic(now);
        }

        _checkedSecond = RtcSeconds(now);
    }

    /// <summary>Sets flags in register C for update-ended, alarm and periodic events up to <paramref name="now"/>.</summary>
    private void ProcessEvents(long now)
    {
        byte raised = 0;
        if (Running)
        {
            long current = RtcSeconds(now);
            if (current > _checkedSecond)
            {
                raised |= CUf;
                long first = Math.Max(_checkedSecond + 1, current - 86400 + 1);
                for (long s = first; s <= current; s++)
                {
                    if (AlarmMatches(s))
                    {
                        raised |= CAf;
                        break;
                    }
                }
            }

            _checkedSecond = current;
        }

        if (now >= _nextPeriodic)
        {
            raised |= CPf;
            RearmPeriodic(now);
        }

        if (raised == 0)
        {
            return;
        }

        _cmos[RegisterC] |= raised;
        if ((raised & _cmos[RegisterB] & CMask) != 0)
        {
            _cmos[RegisterC] |= CIrqf;
            SetIrq(true);
        }
    }

    private void RearmPeriodic(long now)
    {
        int code = _cmos[RegisterA] & 0x0F;
        if (code == 0 || (_cmos[RegisterB] & BPie) == 0)
        {
            _nextPeriodic = long.MaxValue;
            return;
        }

        if (code <= 2)
        {
            code += 7;
        }

        long period = 1L << (code - 1); // in 32.768 kHz cycles
        long cycles = (long)((Int128)now * 32768 / NsPerSecond);
        long next = (cycles & ~(period - 1)) + period;
        _nextPeriodic = (long)((Int128)next * NsPerSecond / 32768) + 1;
    }

    private bool AlarmMatches(long rtcSecond)
    {
        long secondOfDay = ((rtcSecond % 86400) + 86400) % 86400;
        int hour = (int)(secondOfDay / 3600), minute = (int)(secondOfDay / 60 % 60), second = (int)(secondOfDay % 60);
        return AlarmField(_cmos[SecondsAlarm], second) && AlarmField(_cmos[MinutesAlarm], minute)
            && AlarmHour(_cmos[HoursAlarm], hour);
    }

    private bool AlarmField(byte alarm, int value) => (alarm & 0xC0) == 0xC0 || FromBcd(alarm) == value;

    private bool AlarmHour(byte alarm, int hour24)
    {
        if ((alarm & 0xC0) == 0xC0)
        {
            return true;
        }

        int h = FromBcd((byte)(alarm & 0x7F));
        if ((_cmos[RegisterB] & B24Hour) == 0)
        {
            h = h % 12 + ((alarm & 0x80) != 0 ? 12 : 0);
        }

        return h == hour24;
    }

    private long RtcSeconds(long now)
    {
        long elapsed = now - _lastUpdate + _offset;
        return _baseRtc + FloorDiv(elapsed, NsPerSecond);
    }

    private long SubSecondNs(long now)
    {
        long elapsed = now - _lastUpdate + _offset;
        return elapsed - FloorDiv(elapsed, NsPerSecond) * NsPerSecond;
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    /// <summary>Writes the time registers for <paramref name="rtcSeconds"/> in the current format (QEMU's rtc_set_cmos).</summary>
    private void RenderTime(long rtcSeconds)
    {
        CivilTime t = CivilTime.FromEpochSeconds(rtcSeconds);
        _cmos[Seconds] = ToBcd(t.Second);
        _cmos[Minutes] = ToBcd(t.Minute);
        if ((_cmos[RegisterB] & B24Hour) != 0)
        {
            _cmos[Hours] = ToBcd(t.Hour);
        }
        else
        {
            int h = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
            _cmos[Hours] = (byte)(ToBcd(h) | (t.Hour >= 12 ? 0x80 : 0));
        }

        _cmos[DayOfWeek] = ToBcd(t.Weekday + 1);
        _cmos[DayOfMonth] = ToBcd(t.Day);
        _cmos[Month] = ToBcd(t.Month + 1);
        long year = t.Year;
        _cmos[Year] = ToBcd((int)(((year % 100) + 100) % 100));
        _cmos[Century] = ToBcd((int)(((year / 100) % 100 + 100) % 100));
    }

    /// <summary>Takes the time registers as the new time from <paramref name="now"/> on (QEMU's rtc_set_time).</summary>
    private void SetTimeFromCmos(long now)
    {
        int hour = FromBcd((byte)(_cmos[Hours] & 0x7F));
        if ((_cmos[RegisterB] & B24Hour) == 0)
        {
            hour %= 12;
            if ((_cmos[Hours] & 0x80) != 0)
            {
                hour += 12;
            }
        }

        long year = FromBcd(_cmos[Year]) + FromBcd(_cmos[Century]) * 100L;
        _baseRtc = CivilTime.ToEpochSeconds(year, FromBcd(_cmos[Month]), FromBcd(_cmos[DayOfMonth]), hour,
            FromBcd(_cmos[Minutes]), FromBcd(_cmos[Seconds]));
        _lastUpdate = now;
        _checkedSecond = RtcSeconds(now);
    }

    private byte ToBcd(int value) =>
        (_cmos[RegisterB] & BBinary) != 0 ? (byte)value : (byte)(((value / 10) << 4) | (value % 10));

    /// <summary>Decodes a register value; -1 for a BCD value with both top bits set (QEMU's "don't care").</summary>
    private int FromBcd(byte value)
    {
        if ((value & 0xC0) == 0xC0)
        {
            return -1;
        }

        return (_cmos[RegisterB] & BBinary) != 0 ? value : ((value >> 4) * 10) + (value & 0x0F);
    }

    private void SetIrq(bool level)
    {
        if (IrqLevel == level)
        {
            return;
        }

        IrqLevel = level;
        IrqChanged?.Invoke(level);
    }

    private static int CheckIndex(int index)
    {
        if ((uint)index >= CmosSize)
        {
            DeviceThrow.OutOfRange(nameof(index), index, $"CMOS indices run from 0 to 127; {index} is outside.");
        }

        return index;
    }
}
