using System.Buffers;
using System.Buffers.Binary;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Common.Registers;

namespace HwMemModel.Devices.Dma;

/// <summary>
/// A memory-to-memory DMA engine of this project's own design (compatible "hwmem,dma-engine"): the driver puts
/// 32-byte descriptors (<see cref="DmaDescriptor"/>: copy or fill) in a ring in RAM and rings a doorbell; the engine
/// performs them as a bus master through its <see cref="DmaPort"/>, writes each descriptor's status back, and raises
/// a level interrupt. Every bus access it makes goes through the <see cref="PhysicalBus"/>, so a descriptor
/// pointing at a device window or at nothing is refused with an error status rather than touching MMIO.
/// </summary>
/// <remarks>
/// <para><b>Register map</b> (4 KiB window; 32-bit registers take 4-byte accesses, the two 64-bit registers take 4-
/// or 8-byte accesses; all aligned; other accesses and undefined offsets read 0, ignore writes and are reported to
/// the <see cref="DeviceLog"/>; writes changing reserved bits are reported and leave them 0):</para>
/// <list type="table">
/// <item><term>0x000 ID (RO)</term><description>0x414D4448.</description></item>
/// <item><term>0x004 VERSION (RO)</term><description>0x00010000.</description></item>
/// <item><term>0x008 CAPS (RO)</term><description>0x00180C20: 7:0 descriptor size 32, 15:8 log2 max ring size 12, 23:16 log2 max length 24.</description></item>
/// <item><term>0x010 CONTROL, reset 0</term><description>bit 0 ENABLE (RW): process descriptors; bit 1 RESET (write-only, reads 0):
/// writing 1 resets the whole engine (every register to its reset value, a transfer in flight abandoned; the other bits of that write are
/// discarded); bit 8 DONE_IE (RW); bit 9 ERROR_IE (RW).</description></item>
/// <item><term>0x014 STATUS, reset 0</term><description>bit 0 DONE (W1C): set when a descriptor with the Interrupt flag completes OK;
/// bit 1 ERROR (W1C): set when processing stops on an error; bit 2 BUSY (RO): a descriptor is in flight; bits 15:8 LAST_ERROR (RO):
/// the <see cref="DmaStatusCode"/> of the last error (kept until reset).</description></item>
/// <item><term>0x020 RING_BASE (64-bit RW), reset 0</term><description>bus address of descriptor 0; bits 4:0 reserved (descriptors are 32-byte aligned).</description></item>
/// <item><term>0x028 RING_SIZE, reset 0</term><description>bits 15:0 (RW): number of descriptors, a power of two from 2 to 4096.</description></item>
/// <item><term>0x030 HEAD (RO), reset 0</term><description>bits 15:0: index of the next descriptor the engine will process.</description></item>
/// <item><term>0x034 TAIL (RW), reset 0</term><description>bits 15:0: doorbell, one past the last descriptor posted; every write rings it.</description></item>
/// <item><term>0x040 ERROR_ADDR (64-bit RO), reset 0</term><description>bus address the last error concerns: the refused source or destination
/// address, the descriptor address for fetch and write-back errors, RING_BASE for ring configuration errors.</description></item>
/// <item><term>0x048 ERROR_INDEX (RO), reset 0</term><description>bits 15:0: ring index of the descriptor the last error concerns (TAIL for a bad tail).</description></item>
/// <item><term>0x050 COMPLETED (RO), reset 0</term><description>descriptors completed with status OK since reset, wrapping at 2^32.</description></item>
/// </list>
/// <para><b>Ring.</b> Descriptor i is at RING_BASE + 32 i. The ring holds work while HEAD != TAIL (so at most
/// RING_SIZE - 1 descriptors are outstanding). The driver fills descriptors with status 0 and writes TAIL; while
/// ENABLE is set and ERROR is clear the engine processes descriptors in order: it fetches descriptor HEAD, performs
/// it, writes its status (bytes 2-3), advances HEAD modulo RING_SIZE, increments COMPLETED (status OK) and sets DONE
/// if the descriptor asks for it. Change RING_BASE and RING_SIZE only while the ring is idle.</para>
/// <para><b>Errors.</b> A transfer is all or nothing (<see cref="DmaPort"/>): a copy whose source or destination, or a
/// fill whose destination, is not entirely RAM (unmapped, a device window, ROM for a write, beyond MAXPHYADDR)
/// transfers nothing. A bad opcode, a length above 16 MiB or a refused transfer writes the error code into the
/// descriptor, advances HEAD past it, and then halts: ERROR, LAST_ERROR, ERROR_ADDR and ERROR_INDEX are set and the
/// error is reported to the <see cref="DeviceLog"/>. If the descriptor cannot be fetched, or RING_SIZE or TAIL is
/// invalid when there is work, the engine halts the same way without touching the ring and HEAD stays. The ring
/// stays halted until the driver clears STATUS.ERROR (write 1; processing resumes at HEAD at once) or resets the
/// engine (CONTROL.RESET). Disabling (ENABLE = 0) lets a descriptor in flight finish and starts no new one.</para>
/// <para><b>Interrupt.</b> <see cref="IrqLine"/> is high while (DONE and DONE_IE) or (ERROR and ERROR_IE), and
/// falls when the driver clears the status bits (write 1 to clear) or the enable bits.</para>
/// <para><b>Timing</b> (deterministic, guest time only). A descriptor starts when the doorbell, ENABLE or the
/// clearing of ERROR finds work, or when the previous descriptor completes; it completes
/// <c>setup + ceil(length × 1000 / bytesPerMicrosecond)</c> ns after its start (0 ns for zero-length or invalid
/// descriptors; <c>bytesPerMicrosecond</c> 0 means no per-byte time). Memory is read and written at completion,
/// which happens in <see cref="Poll"/> or on the next register access, whichever comes first at or after the
/// completion time; a chain of descriptors starts each one at its predecessor's completion time, however late the
/// engine is polled. With setup 0 and bytesPerMicrosecond 0 the doorbell write performs the work before it returns.</para>
/// </remarks>
public sealed class DmaEngine : IMmioDevice, ITimedDevice
{
    /// <summary>The device-tree compatible string of this design.</summary>
    public const string Compatible = "hwmem,dma-engine";

    /// <summary>Size of the register window in bytes (4 KiB).</summary>
    public const ulong WindowSize = 0x1000;

    /// <summary>Value of the ID register.</summary>
    public const uint IdValue = 0x414D4448;

    /// <summary>Value of the VERSION register (1.0).</summary>
    public const uint VersionValue = 0x0001_0000;

    /// <summary>Value of the CAPS register.</summary>
    public const uint CapabilitiesValue = DmaDescriptor.Size | (12 << 8) | (24 << 16);

    /// <summary>Most descriptors a ring may have.</summary>
    public const int MaxRingSize = 4096;

    /// <summary>Longest transfer in bytes (16 MiB); longer descriptors complete with <see cref="DmaStatusCode.BadLength"/>.</summary>
    public const uint MaxTransferLength = 16 << 20;

    /// <summary>CONTROL bits.</summary>
    public const uint ControlEnable = 1 << 0, ControlReset = 1 << 1, ControlDoneIe = 1 << 8, ControlErrorIe = 1 << 9;

    /// <summary>STATUS bits (LAST_ERROR is bits 15:8).</summary>
    public const uint StatusDone = 1 << 0, StatusError = 1 << 1, StatusBusy = 1 << 2;

    private readonly GuestClock _clock;
    private readonly DmaPort _port;
    private readonly DeviceLog _log;
    private readonly RegisterMap<DmaEngineRegister> _regs;
    private readonly long _setupNs;
    private readonly long _bytesPerUs;

    private readonly RegisterField _enable, _doneIe, _errorIe;
    private readonly RegisterField _done, _error, _lastError;
    private readonly RegisterField _ringSize, _head, _tail, _errorIndex, _completed;
    private readonly Register _ringBase, _errorAddress;

    private bool _inFlight;
    private long _deadline = long.MaxValue;
    private DmaDescriptor _current;
    private ulong _currentAddress;
    private uint _currentIndex;
    private uint _currentMask;

    /// <summary>Creates an engine in its reset state (disabled, ring empty) with its own bus-master port.</summary>
    /// <param name="bus">The bus its transfers use.</param>
    /// <param name="clock">Guest time.</param>
    /// <param name="log">Where errors and bad register accesses are reported; null keeps them in a private log.</param>
    /// <param name="name">The device name (reports, the DMA port, /proc/iomem).</param>
    /// <param name="requesterId">The requester id of its bus transactions.</param>
    /// <param name="setupNanoseconds">Fixed cost of each non-empty descriptor in guest ns (0 or more).</param>
    /// <param name="bytesPerMicrosecond">Throughput (0 or more; 0 means transfers take no time beyond the set-up).</param>
    /// <exception cref="ArgumentNullException"><paramref name="bus"/> or <paramref name="clock"/> is null.</exception>
    /// <exception cref="ArgumentException">An empty name, or a negative timing option.</exception>
    public DmaEngine(PhysicalBus bus, GuestClock clock, DeviceLog? log = null, string name = "dma0", int requesterId = 0,
        long setupNanoseconds = 100, long bytesPerMicrosecond = 1000)
    {
        DeviceThrow.NotNull(bus, nameof(bus), "The DMA engine");
        _clock = DeviceThrow.NotNull(clock, nameof(clock), "The DMA engine");
        if (string.IsNullOrWhiteSpace(name))
        {
            DeviceThrow.Argument(nameof(name), "The DMA engine needs a non-empty name.");
        }

        if (setupNanoseconds < 0)
        {
            DeviceThrow.OutOfRange(nameof(setupNanoseconds), setupNanoseconds, "The set-up time is 0 ns or more.");
        }

        if (bytesPerMicrosecond < 0)
        {
            DeviceThrow.OutOfRange(nameof(bytesPerMicrosecond), bytesPerMicrosecond,
                "The throughput is 0 (transfers take no time) or a positive number of bytes per microsecond.");
        }

        Name = name;
        _log = log ?? DeviceLog.Discard;
        _port = new DmaPort(bus, name, requesterId);
        _setupNs = setupNanoseconds;
        _bytesPerUs = bytesPerMicrosecond;

        _regs = new RegisterMap<DmaEngineRegister>(name, _log);
        _regs.Define(DmaEngineRegister.Id, 4, "ID", IdValue);
        _regs.Define(DmaEngineRegister.Version, 4, "VERSION", VersionValue);
        _regs.Define(DmaEngineRegister.Capabilities, 4, "CAPS", CapabilitiesValue);
        _regs.Define(DmaEngineRegister.Control, 4, "CONTROL")
            .WithFlag(0, FieldMode.ReadWrite, "ENABLE", out _enable)
            .WithFlag(1, FieldMode.WriteOnly, "RESET")
            .WithFlag(8, FieldMode.ReadWrite, "DONE_IE", out _doneIe)
            .WithFlag(9, FieldMode.ReadWrite, "ERROR_IE", out _errorIe)
            .WithWriteCallback(ControlWritten);
        _regs.Define(DmaEngineRegister.Status, 4, "STATUS")
            .WithFlag(0, FieldMode.WriteOneToClear, "DONE", out _done)
            .WithFlag(1, FieldMode.WriteOneToClear, "ERROR", out _error, changed: ErrorChanged)
            .WithFlag(2, FieldMode.ReadOnly, "BUSY", valueProvider: () => _inFlight)
            .WithField(8, 8, FieldMode.ReadOnly, "LAST_ERROR", out _lastError);
        _ringBase = _regs.Define(DmaEngineRegister.RingBase, 8, "RING_BASE")
            .WithReservedBits(0, 5)
            .WithField(5, 59, FieldMode.ReadWrite, "ADDRESS")
            .WithAccessSizes(4, 8);
        _regs.Define(DmaEngineRegister.RingSize, 4, "RING_SIZE")
            .WithField(0, 16, FieldMode.ReadWrite, "SIZE", out _ringSize);
        _regs.Define(DmaEngineRegister.Head, 4, "HEAD")
            .WithField(0, 16, FieldMode.ReadOnly, "INDEX", out _head);
        _regs.Define(DmaEngineRegister.Tail, 4, "TAIL")
            .WithField(0, 16, FieldMode.ReadWrite, "INDEX", out _tail)
            .WithWriteCallback(_ => Kick());
        _errorAddress = _regs.Define(DmaEngineRegister.ErrorAddress, 8, "ERROR_ADDR")
            .WithField(0, 64, FieldMode.ReadOnly, "ADDRESS")
            .WithAccessSizes(4, 8);
        _regs.Define(DmaEngineRegister.ErrorIndex, 4, "ERROR_INDEX")
            .WithField(0, 16, FieldMode.ReadOnly, "INDEX", out _errorIndex);
        _regs.Define(DmaEngineRegister.Completed, 4, "COMPLETED")
            .WithField(0, 32, FieldMode.ReadOnly, "COUNT", out _completed);
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>4- and 8-byte accesses, aligned.</summary>
    public AccessConstraints Valid => new(4, 8);

    /// <summary>4- and 8-byte accesses, aligned (8-byte accesses reach only the 64-bit registers).</summary>
    public AccessConstraints Impl => new(4, 8);

    /// <summary>The engine's bus-master port (its transfer and error counters).</summary>
    public DmaPort Port => _port;

    /// <summary>Where the engine reports errors and bad register accesses.</summary>
    public DeviceLog Log => _log;

    /// <summary>The level of the completion interrupt: (DONE and DONE_IE) or (ERROR and ERROR_IE).</summary>
    public bool IrqLine { get; private set; }

    /// <summary>Raised with the new level whenever <see cref="IrqLine"/> changes.</summary>
    public event Action<bool>? IrqLineChanged;

    // The host views below show the state as of the last register access or Poll(); they do not advance the engine.

    /// <summary>HEAD: the next descriptor the engine will process.</summary>
    public uint Head => (uint)_head.Value;

    /// <summary>TAIL as last written by the driver.</summary>
    public uint Tail => (uint)_tail.Value;

    /// <summary>COMPLETED: descriptors completed successfully since reset.</summary>
    public uint Completed => (uint)_completed.Value;

    /// <summary>Whether a descriptor is in flight (STATUS.BUSY).</summary>
    public bool IsBusy => _inFlight;

    /// <summary>Whether the ring is halted on an error (STATUS.ERROR).</summary>
    public bool IsHalted => _error.IsSet;

    /// <summary>The STATUS register as a guest read would return it now (without bringing the engine up to date).</summary>
    public uint Status => ((uint)_regs[DmaEngineRegister.Status].Value & ~StatusBusy) | (_inFlight ? StatusBusy : 0);

    /// <summary>STATUS.LAST_ERROR: the code of the last error since reset, or <see cref="DmaStatusCode.Pending"/> (0) for none.</summary>
    public DmaStatusCode LastError => (DmaStatusCode)_lastError.Value;

    /// <summary>ERROR_ADDR: the bus address the last error concerns.</summary>
    public ulong ErrorAddress => _errorAddress.Value;

    /// <inheritdoc />
    public long NextDeadline => _inFlight ? _deadline : long.MaxValue;

    /// <summary>Guest time in ns a descriptor of <paramref name="length"/> valid bytes takes from start to completion.</summary>
    public long TransferNanoseconds(uint length)
    {
        if (length == 0) return 0;
        long perBytes = _bytesPerUs == 0 ? 0 : ((long)length * 1000 + _bytesPerUs - 1) / _bytesPerUs;
        return _setupNs + perBytes;
    }

    /// <summary>Resets the engine (as CONTROL.RESET does): registers to reset values, a transfer in flight abandoned, interrupt low.</summary>
    public void Reset()
    {
        _inFlight = false;
        _deadline = long.MaxValue;
        _regs.Reset();
        UpdateIrq();
    }

    /// <inheritdoc />
    public void Poll()
    {
        Run(_clock.Nanoseconds);
        UpdateIrq();
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        if (_inFlight) Run(_clock.Nanoseconds);
        BusStatus status = _regs.Read(offset, size, out value);
        UpdateIrq();
        return status;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        if (_inFlight) Run(_clock.Nanoseconds);
        BusStatus status = _regs.Write(offset, size, value);
        UpdateIrq();
        return status;
    }

    private void ControlWritten(ulong value)
    {
        if ((value & ControlReset) != 0)
        {
            Reset();
            return;
        }

        Kick();
    }

    private void ErrorChanged(bool was, bool now)
    {
        if (was && !now) Kick();
    }

    /// <summary>Starts work found now (doorbell, enable, error cleared) and completes what is due.</summary>
    private void Kick()
    {
        long now = _clock.Nanoseconds;
        TryStart(now);
        Run(now);
    }

    /// <summary>Completes every descriptor due at or before <paramref name="now"/>, starting each successor at its predecessor's completion time.</summary>
    private void Run(long now)
    {
        while (_inFlight && _deadline <= now)
        {
            long at = _deadline;
            Complete();
            TryStart(at);
        }
    }

    private void TryStart(long at)
    {
        if (_inFlight || !_enable.IsSet || _error.IsSet) return;
        uint head = (uint)_head.Value, tail = (uint)_tail.Value;
        if (head == tail) return;

        ulong ringBase = _ringBase.Value;
        uint size = (uint)_ringSize.Value;
        if (size < 2 || size > MaxRingSize || (size & (size - 1)) != 0)
        {
            Fail(DmaStatusCode.BadRingSize, ringBase, tail,
                $"ring size {size} is not a power of two from 2 to {MaxRingSize} (HEAD {head}, TAIL {tail})");
            return;
        }

        if (tail >= size)
        {
            Fail(DmaStatusCode.BadTail, ringBase, tail, $"TAIL {tail} is outside the ring of {size} descriptors");
            return;
        }

        ulong address = ringBase + (ulong)head * DmaDescriptor.Size;
        Span<byte> bytes = stackalloc byte[DmaDescriptor.Size];
        DmaResult fetched = address < ringBase ? DmaResult.OutOfRange : _port.Read(address, bytes);
        if (fetched != DmaResult.Ok)
        {
            Fail(Code(0x40, fetched), address, head, $"cannot fetch descriptor {head} at 0x{address:x}: {Explain(fetched)}");
            return;
        }

        _current = DmaDescriptor.Decode(bytes);
        _currentAddress = address;
        _currentIndex = head;
        _currentMask = size - 1;
        bool valid = _current.Opcode is DmaOpcode.Copy or DmaOpcode.Fill && _current.Length <= MaxTransferLength;
        _deadline = at + (valid ? TransferNanoseconds(_current.Length) : 0);
        _inFlight = true;
    }

    private void Complete()
    {
        _inFlight = false;
        _deadline = long.MaxValue;
        DmaDescriptor d = _current;
        DmaStatusCode code = Execute(d, out ulong faultAddress, out string? problem);
        DmaResult written = _port.WriteUInt16(_currentAddress + DmaDescriptor.StatusOffset, (ushort)code);
        _head.Value = (_currentIndex + 1) & _currentMask;

        if (code != DmaStatusCode.Ok)
        {
            string writeBack = written == DmaResult.Ok ? "" : $" (its status could not be written back: {Explain(written)})";
            Fail(code, faultAddress, _currentIndex,
                $"descriptor {_currentIndex} at 0x{_currentAddress:x} ({Describe(d)}) failed: {problem}{writeBack}");
            return;
        }

        if (written != DmaResult.Ok)
        {
            ulong at = _currentAddress + DmaDescriptor.StatusOffset;
            Fail(Code(0x50, written), at, _currentIndex,
                $"cannot write the status of descriptor {_currentIndex} at 0x{at:x}: {Explain(written)}");
            return;
        }

        _completed.Value = (uint)(_completed.Value + 1);
        if ((d.Flags & DmaDescriptorFlags.Interrupt) != 0)
        {
            _done.Set();
        }
    }

    private DmaStatusCode Execute(in DmaDescriptor d, out ulong faultAddress, out string? problem)
    {
        faultAddress = 0;
        problem = null;
        if (d.Opcode is not (DmaOpcode.Copy or DmaOpcode.Fill))
        {
            faultAddress = _currentAddress;
            problem = $"opcode 0x{(byte)d.Opcode:x2} is neither copy (0x01) nor fill (0x02)";
            return DmaStatusCode.BadOpcode;
        }

        if (d.Length > MaxTransferLength)
        {
            faultAddress = _currentAddress;
            problem = $"length {d.Length} exceeds the largest transfer of {MaxTransferLength} bytes";
            return DmaStatusCode.BadLength;
        }

        if (d.Length == 0) return DmaStatusCode.Ok;

        int length = (int)d.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            Span<byte> data = buffer.AsSpan(0, length);
            if (d.Opcode == DmaOpcode.Copy)
            {
                DmaResult read = _port.Read(d.Source, data);
                if (read != DmaResult.Ok)
                {
                    faultAddress = d.Source;
                    problem = $"source 0x{d.Source:x} (+{length} bytes) is {Explain(read)}";
                    return (DmaStatusCode)Code(0x20, read);
                }
            }
            else
            {
                Span<byte> pattern = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(pattern, d.FillPattern);
                for (int i = 0; i < length; i += 8)
                {
                    pattern[..Math.Min(8, length - i)].CopyTo(data[i..]);
                }
            }

            DmaResult write = _port.Write(d.Destination, data);
            if (write != DmaResult.Ok)
            {
                faultAddress = d.Destination;
                problem = $"destination 0x{d.Destination:x} (+{length} bytes) is {Explain(write)}";
                return (DmaStatusCode)Code(0x30, write);
            }

            return DmaStatusCode.Ok;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Fail(DmaStatusCode code, ulong address, uint index, string message)
    {
        _lastError.Value = (ulong)code;
        _errorAddress.Value = address;
        _errorIndex.Value = index;
        _error.Set();
        _log.Report(Name, $"{message}; error 0x{(ushort)code:x2}, ring halted until STATUS.ERROR is cleared or the engine is reset");
    }

    private void UpdateIrq()
    {
        bool level = (_done.IsSet && _doneIe.IsSet) || (_error.IsSet && _errorIe.IsSet);
        if (level == IrqLine) return;
        IrqLine = level;
        IrqLineChanged?.Invoke(level);
    }

    private static DmaStatusCode Code(int where, DmaResult result) => (DmaStatusCode)(where | (int)result);

    private static string Explain(DmaResult result) => result switch
    {
        DmaResult.Unmapped => "unmapped (no RAM or device there)",
        DmaResult.NotMemory => "not memory (a device window, or ROM for a write)",
        DmaResult.OutOfRange => "beyond the physical address space",
        _ => result.ToString(),
    };

    private static string Describe(in DmaDescriptor d) => d.Opcode switch
    {
        DmaOpcode.Copy => $"copy of {d.Length} bytes from 0x{d.Source:x} to 0x{d.Destination:x}",
        DmaOpcode.Fill => $"fill of {d.Length} bytes at 0x{d.Destination:x} with 0x{d.FillPattern:x16}",
        _ => $"opcode 0x{(byte)d.Opcode:x2}, {d.Length} bytes",
    };
}
