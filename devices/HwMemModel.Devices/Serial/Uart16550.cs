using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Serial;

/// <summary>
/// A 16550A UART as QEMU 7.2's <c>serial</c> device models it (hw/char/serial.c): eight byte registers, a 16-byte
/// receive FIFO, interrupt identification by priority, loopback, and a transmitter that is always ready: a byte
/// written to THR reaches the host output stream at once and LSR reads 0x60 again straight after.
/// </summary>
/// <remarks>
/// Reset values (observed on QEMU 7.2): IER 0x00, IIR 0x01, LCR 0x00, MCR 0x08 (OUT2), LSR 0x60, MSR 0xB0
/// (DCD, DSR, CTS: QEMU's stdio backend reports no modem lines, so the reset value stays), SCR 0x00, divisor latch
/// 0x000C (9600 baud from the 115,200 baud base). Host input enters through <see cref="EnqueueInput"/> and moves
/// into the receiver whenever it can take a byte, as QEMU's character backend does. Not thread-safe: call every
/// member from the machine's thread.
/// </remarks>
public sealed class Uart16550 : IMmioDevice, ITimedDevice
{
    /// <summary>Receive and transmit FIFO depth in bytes.</summary>
    public const int FifoLength = 16;

    /// <summary>The baud base: the divisor latch divides this rate (1.8432 MHz / 16).</summary>
    public const int BaudBase = 115200;

    private const byte IerRdi = 0x01, IerThri = 0x02, IerRlsi = 0x04, IerMsi = 0x08;
    private const byte IirNoInt = 0x01, IirMsi = 0x00, IirThri = 0x02, IirRdi = 0x04, IirRlsi = 0x06, IirCti = 0x0C;
    private const byte IirId = 0x06, IirFifoEnabled = 0xC0;
    private const byte LcrDlab = 0x80;
    private const byte McrLoop = 0x10, McrOut2 = 0x08;
    private const byte LsrDr = 0x01, LsrOe = 0x02, LsrBi = 0x10, LsrThre = 0x20, LsrTemt = 0x40, LsrIntAny = 0x1E;
    private const byte MsrDcd = 0x80, MsrDsr = 0x20, MsrCts = 0x10, MsrAnyDelta = 0x0F;
    private const byte FcrEnable = 0x01, FcrRxReset = 0x02, FcrTxReset = 0x04;

    private readonly Stream _output;
    private readonly GuestClock _clock;
    private readonly int _regShift;
    private readonly Queue<byte> _hostInput = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<byte> _liveInput = new();
    private readonly byte[] _rxFifo = new byte[FifoLength];
    private int _rxHead;
    private int _rxCount;
    private int _rxTriggerLevel = 1;

    private byte _rbr, _ier, _iir, _lcr, _mcr, _lsr, _msr, _scr, _fcr;
    private ushort _divisor;
    private bool _thrInterruptPending;
    private bool _timeoutPending;
    private long _timeoutDeadline = long.MaxValue;
    private long _charTimeNs;

    /// <summary>Creates a UART in its reset state.</summary>
    /// <param name="output">Where transmitted bytes go (the host side of the serial line); must be writable.</param>
    /// <param name="clock">Guest time, used for the receive FIFO's character timeout.</param>
    /// <param name="regShift">
    /// Register spacing as a power of two: 0 for the port-I/O UART (registers one byte apart), 1 to 3 for memory-mapped
    /// variants whose registers are 2, 4 or 8 bytes apart (QEMU's <c>regshift</c>).
    /// </param>
    /// <param name="name">Name used in listings.</param>
    /// <exception cref="ArgumentNullException"><paramref name="output"/> or <paramref name="clock"/> is null.</exception>
    /// <exception cref="ArgumentException">The stream cannot be written or <paramref name="regShift"/> is outside 0-3.</exception>
    public Uart16550(Stream output, GuestClock clock, int regShift = 0, string name = "serial")
    {
        _output = DeviceThrow.NotNull(output, nameof(output), "A 16550 UART");
        _clock = DeviceThrow.NotNull(clock, nameof(clock), "A 16550 UART");
        ArgumentNullException.ThrowIfNull(name);
        if (!output.CanWrite)
        {
            DeviceThrow.Argument(nameof(output), "The UART's output stream cannot be written; pass a writable stream (Stream.Null discards output).");
        }

        if (regShift is < 0 or > 3)
        {
            DeviceThrow.OutOfRange(nameof(regShift), regShift,
                $"Register shift {regShift} is not supported; use 0 (registers 1 byte apart), 1, 2 or 3 (2, 4 or 8 bytes apart).");
        }

        _regShift = regShift;
        Name = name;
        // Port-I/O UART: QEMU implements byte accesses only and splits wider ones (a 16-bit write to DLL sets DLL and DLM).
        Valid = regShift == 0 ? new AccessConstraints(1, 4, Unaligned: true) : new AccessConstraints(1, 8);
        Impl = regShift == 0 ? AccessConstraints.Exactly(1) : new AccessConstraints(1, 8);
        Reset();
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public AccessConstraints Valid { get; }

    /// <inheritdoc />
    public AccessConstraints Impl { get; }

    /// <summary>Register spacing as a power of two (see the constructor).</summary>
    public int RegisterShift => _regShift;

    /// <summary>The interrupt output level (QEMU raises it whenever IIR reports a pending interrupt).</summary>
    public bool IrqLine { get; private set; }

    /// <summary>Raised with the new level whenever <see cref="IrqLine"/> changes.</summary>
    public event Action<bool>? IrqLineChanged;

    /// <summary>Bytes sent to the host output stream.</summary>
    public long BytesTransmitted { get; private set; }

    /// <summary>Bytes the receiver accepted (host input and loopback), including ones later lost to overrun.</summary>
    public long BytesReceived { get; private set; }

    /// <summary>Bytes the host output stream refused with an I/O error (the UART carries on as QEMU does).</summary>
    public long OutputErrors { get; private set; }

    /// <summary>Host input bytes waiting for room in the receiver.</summary>
    public int PendingInput => _hostInput.Count;

    /// <summary>Whether the output stream is flushed after every byte (default true, like QEMU's unbuffered stdio).</summary>
    public bool FlushEachByte { get; set; } = true;

    /// <summary>The divisor latch (DLM:DLL).</summary>
    public ushort Divisor => _divisor;

    /// <summary>The line control register.</summary>
    public byte LineControl => _lcr;

    /// <summary>The modem control register.</summary>
    public byte ModemControl => _mcr;

    /// <summary>The line status register as the guest would read it (without read side effects).</summary>
    public byte LineStatus => _lsr;

    /// <summary>The interrupt enable register.</summary>
    public byte InterruptEnable => _ier;

    /// <summary>Whether the FIFOs are enabled (FCR bit 0).</summary>
    public bool FifoEnabled => (_fcr & FcrEnable) != 0;

    /// <summary>Nanoseconds one character takes on the line at the programmed divisor and frame format.</summary>
    public long CharacterTimeNanoseconds => _charTimeNs;

    /// <inheritdoc />
    public long NextDeadline => _timeoutDeadline;

    /// <summary>Returns every register to its reset value and empties both FIFOs (pending host input is kept).</summary>
    public void Reset()
    {
        _rbr = 0;
        _ier = 0;
        _iir = IirNoInt;
        _lcr = 0;
        _lsr = LsrTemt | LsrThre;
        _msr = MsrDcd | MsrDsr | MsrCts;
        _divisor = 0x0C;
        _mcr = McrOut2;
        _scr = 0;
        _fcr = 0;
        _rxHead = 0;
        _rxCount = 0;
        _rxTriggerLevel = 1;
        _thrInterruptPending = false;
        _timeoutPending = false;
        _timeoutDeadline = long.MaxValue;
        _charTimeNs = 1_000_000_000L / 9600 * 10; // QEMU's reset value (9600 baud, 10-bit frames) until LCR or DLL/DLM is written
        SetIrq(false);
        PumpInput();
    }

    /// <summary>
    /// Queues host input for the guest. Bytes move into the receiver (RBR, or the FIFO when enabled) as long as it
    /// has room, the rest when the guest reads; none arrive in loopback mode.
    /// </summary>
    public void EnqueueInput(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            _hostInput.Enqueue(b);
        }

        PumpInput();
    }

    /// <summary>
    /// Connects a host stream as the line's input. A seekable stream (a file, a memory stream) is read to its end now
    /// and queued, so a run is deterministic; any other stream (a terminal, a pipe) is read by a background reader and
    /// its bytes reach the receiver at the next register access or poll after they arrive.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> is null.</exception>
    /// <exception cref="ArgumentException">The stream cannot be read.</exception>
    public void AttachInput(Stream input)
    {
        DeviceThrow.NotNull(input, nameof(input), "A 16550A UART's input");
        if (!input.CanRead) DeviceThrow.Argument(nameof(input), "The UART's input stream must be readable.");
        if (input.CanSeek)
        {
            using var copy = new MemoryStream();
            input.CopyTo(copy);
            EnqueueInput(copy.ToArray());
            return;
        }

        var reader = new Thread(() =>
        {
            var buffer = new byte[256];
            try
            {
                int n;
                while ((n = input.Read(buffer, 0, buffer.Length)) > 0)
                {
                    for (int i = 0; i < n; i++) _liveInput.Enqueue(buffer[i]);
                }
            }
            catch (IOException)
            {
                // The host closed the line: no more input.
            }
            catch (ObjectDisposedException)
            {
                // Same.
            }
        }) { IsBackground = true, Name = $"{Name} input" };
        reader.Start();
    }

    /// <inheritdoc />
    public void Poll()
    {
        if (!_liveInput.IsEmpty)
        {
            while (_liveInput.TryDequeue(out byte b)) _hostInput.Enqueue(b);
            PumpInput();
        }

        if (_clock.Nanoseconds >= _timeoutDeadline)
        {
            _timeoutDeadline = long.MaxValue;
            if (_rxCount > 0)
            {
                _timeoutPending = true;
                UpdateIrq();
            }
        }
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        Poll();
        value = ReadRegister((int)((offset >> _regShift) & 7));
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        Poll();
        WriteRegister((int)((offset >> _regShift) & 7), (byte)value);
        return BusStatus.Ok;
    }

    private byte ReadRegister(int register)
    {
        switch (register)
        {
            case 0:
                if ((_lcr & LcrDlab) != 0)
                {
                    return (byte)_divisor;
                }

                byte data;
                if (FifoEnabled)
                {
                    data = _rxCount == 0 ? (byte)0 : PopRx();
                    if (_rxCount == 0)
                    {
                        _lsr &= unchecked((byte)~(LsrDr | LsrBi));
                    }
                    else
                    {
                        ArmTimeout();
                    }

                    _timeoutPending = false;
                }
                else
                {
                    data = _rbr;
                    _lsr &= unchecked((byte)~(LsrDr | LsrBi));
                }

                UpdateIrq();
                PumpInput();
                return data;
            case 1:
                return (_lcr & LcrDlab) != 0 ? (byte)(_divisor >> 8) : _ier;
            case 2:
                byte iir = _iir;
                if ((iir & IirId) == IirThri)
                {
                    // Reading IIR while it reports THR empty acknowledges that interrupt.
                    _thrInterruptPending = false;
                    UpdateIrq();
                }

                return iir;
            case 3:
                return _lcr;
            case 4:
                return _mcr;
            case 5:
                byte lsr = _lsr;
                if ((_lsr & (LsrBi | LsrOe)) != 0)
                {
                    _lsr &= unchecked((byte)~(LsrBi | LsrOe));
                    UpdateIrq();
                }

                return lsr;
            case 6:
                if ((_mcr & McrLoop) != 0)
                {
                    // Loopback: OUT2 -> DCD, OUT1 -> RI, RTS -> CTS, DTR -> DSR.
                    return (byte)(((_mcr & 0x0C) << 4) | ((_mcr & 0x02) << 3) | ((_mcr & 0x01) << 5));
                }

                byte msr = _msr;
                if ((_msr & MsrAnyDelta) != 0)
                {
                    _msr &= 0xF0;
                    UpdateIrq();
                }

                return msr;
            default:
                return _scr;
        }
    }

    private void WriteRegister(int register, byte value)
    {
        switch (register)
        {
            case 0:
                if ((_lcr & LcrDlab) != 0)
                {
                    _divisor = (ushort)((_divisor & 0xFF00) | value);
                    UpdateParameters();
                }
                else
                {
                    Transmit(value);
                }

                break;
            case 1:
                if ((_lcr & LcrDlab) != 0)
                {
                    _divisor = (ushort)((_divisor & 0x00FF) | (value << 8));
                    UpdateParameters();
                }
                else
                {
                    byte changed = (byte)((_ier ^ value) & 0x0F);
                    _ier = (byte)(value & 0x0F);
                    if ((changed & IerThri) != 0)
                    {
                        // Enabling THRI while THR is empty raises the interrupt again (QEMU, after Bochs; Windows relies on it).
                        _thrInterruptPending = (_ier & IerThri) != 0 && (_lsr & LsrThre) != 0;
                    }

                    if (changed != 0)
                    {
                        UpdateIrq();
                    }
                }

                break;
            case 2:
                WriteFcr(value);
                break;
            case 3:
                _lcr = value;
                UpdateParameters();
                break;
            case 4:
                bool wasLoop = (_mcr & McrLoop) != 0;
                _mcr = (byte)(value & 0x1F);
                if (wasLoop && (_mcr & McrLoop) == 0)
                {
                    PumpInput();
                }

                break;
            case 5:
            case 6:
                break; // LSR and MSR are read-only.
            default:
                _scr = value;
                break;
        }
    }

    private void WriteFcr(byte value)
    {
        int fcr = value;
        if (((fcr ^ _fcr) & FcrEnable) != 0)
        {
            // Switching the FIFOs on or off flushes both.
            fcr |= FcrRxReset | FcrTxReset;
        }

        if ((fcr & FcrRxReset) != 0)
        {
            _lsr &= unchecked((byte)~(LsrDr | LsrBi));
            _timeoutDeadline = long.MaxValue;
            _timeoutPending = false;
            _rxHead = 0;
            _rxCount = 0;
        }

        if ((fcr & FcrTxReset) != 0)
        {
            _lsr |= LsrThre;
            _thrInterruptPending = true;
        }

        _fcr = (byte)(fcr & 0xC9); // Only enable, DMA mode and the trigger level stick.
        if (FifoEnabled)
        {
            _iir |= IirFifoEnabled;
            _rxTriggerLevel = (_fcr & 0xC0) switch
            {
                0x00 => 1,
                0x40 => 4,
                0x80 => 8,
                _ => 14,
            };
        }
        else
        {
            _iir &= unchecked((byte)~IirFifoEnabled);
        }

        UpdateIrq();
        PumpInput();
    }

    private void Transmit(byte value)
    {
        _thrInterruptPending = false;
        _lsr &= unchecked((byte)~(LsrThre | LsrTemt));
        UpdateIrq();

        // The transmitter is always ready: the byte (or the whole transmit FIFO, which holds only this byte) goes out
        // at once, after which THR is empty again.
        _lsr |= LsrThre;
        if (!_thrInterruptPending)
        {
            _thrInterruptPending = true;
            UpdateIrq();
        }

        if ((_mcr & McrLoop) != 0)
        {
            Receive(value);
        }
        else
        {
            try
            {
                _output.WriteByte(value);
                if (FlushEachByte)
                {
                    _output.Flush();
                }

                BytesTransmitted++;
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
            {
                OutputErrors++;
            }
        }

        _lsr |= LsrTemt;
    }

    /// <summary>How many bytes the receiver takes now (QEMU's serial_can_receive).</summary>
    private int CanReceive()
    {
        if (FifoEnabled)
        {
            if (_rxCount >= FifoLength)
            {
                return 0;
            }

            return _rxCount <= _rxTriggerLevel ? Math.Max(_rxTriggerLevel - _rxCount, 1) : 1;
        }

        return (_lsr & LsrDr) == 0 ? 1 : 0;
    }

    private void PumpInput()
    {
        while (_hostInput.Count > 0 && (_mcr & McrLoop) == 0 && CanReceive() > 0)
        {
            Receive(_hostInput.Dequeue());
        }
    }

    private void Receive(byte value)
    {
        BytesReceived++;
        if (FifoEnabled)
        {
            if (_rxCount < FifoLength)
            {
                _rxFifo[(_rxHead + _rxCount) % FifoLength] = value;
                _rxCount++;
            }
            else
            {
                _lsr |= LsrOe; // Receive overruns do not overwrite the FIFO.
            }

            _lsr |= LsrDr;
            ArmTimeout();
        }
        else
        {
            if ((_lsr & LsrDr) != 0)
            {
                _lsr |= LsrOe;
            }

            _rbr = value;
            _lsr |= LsrDr;
        }

        UpdateIrq();
    }

    private byte PopRx()
    {
        byte b = _rxFifo[_rxHead];
        _rxHead = (_rxHead + 1) % FifoLength;
        _rxCount--;
        return b;
    }

    /// <summary>The character timeout fires four character times after the last receive or read activity.</summary>
    private void ArmTimeout() => _timeoutDeadline = _clock.Nanoseconds + _charTimeNs * 4;

    private void UpdateParameters()
    {
        if (_divisor == 0)
        {
            return; // QEMU keeps the previous line parameters.
        }

        int frameBits = 1; // start bit
        if ((_lcr & 0x08) != 0)
        {
            frameBits++; // parity
        }

        frameBits += (_lcr & 0x03) + 5 + ((_lcr & 0x04) != 0 ? 2 : 1);
        int speed = BaudBase / _divisor;
        _charTimeNs = 1_000_000_000L / speed * frameBits;
    }

    private void UpdateIrq()
    {
        byte id = IirNoInt;
        if ((_ier & IerRlsi) != 0 && (_lsr & LsrIntAny) != 0)
        {
            id = IirRlsi;
        }
        else if ((_ier & IerRdi) != 0 && _timeoutPending)
        {
            id = IirCti;
        }
        else if ((_ier & IerRdi) != 0 && (_lsr & LsrDr) != 0 && (!FifoEnabled || _rxCount >= _rxTriggerLevel))
        {
            id = IirRdi;
        }
        else if ((_ier & IerThri) != 0 && _thrInterruptPending)
        {
            id = IirThri;
        }
        else if ((_ier & IerMsi) != 0 && (_msr & MsrAnyDelta) != 0)
        {
            id = IirMsi;
        }

        _iir = (byte)(id | (_iir & 0xF0));
        SetIrq(id != IirNoInt);
    }

    private void SetIrq(bool level)
    {
        if (IrqLine == level)
        {
            return;
        }

        IrqLine = level;
        IrqLineChanged?.Invoke(level);
    }
}
