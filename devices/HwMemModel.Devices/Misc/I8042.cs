using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Misc;

/// <summary>
/// The i8042 keyboard controller as QEMU 7.2 models it (hw/input/pckbd.c) with a PS/2 keyboard and mouse that answer
/// commands but never produce key or motion data. Two one-port devices: <see cref="DataPort"/> (0x60) and
/// <see cref="CommandPort"/> (0x64, status on read).
/// </summary>
/// <remarks>
/// Reset values observed on QEMU 7.2: status 0x18 (command/data flag and keyboard unlocked; the system flag appears
/// after the 0xAA self-test), controller mode 0x03, output port 0xCF, data port 0x00. Command 0xFE, any pulse command
/// 0xF0-0xFF with bit 0 clear, or an output-port write with bit 0 clear resets the machine; the model asks for a stop
/// with exit status 0, which is what QEMU does with <c>-no-reboot</c>.
/// </remarks>
public sealed class I8042
{
    private const byte StatusOutputFull = 0x01, StatusSystem = 0x04, StatusCommand = 0x08, StatusUnlocked = 0x10;
    private const byte StatusMouseOutputFull = 0x20;
    private const byte ModeKeyboardInterrupt = 0x01, ModeMouseInterrupt = 0x02, ModeDisableKeyboard = 0x10;
    private const byte ModeDisableMouse = 0x20, ModeTranslate = 0x40;
    private const byte OutportReset = 0x01, OutportA20 = 0x02, OutportOnes = 0xCC;

    private readonly StopRequest _stop;
    private readonly Queue<(byte Value, bool Aux)> _output = new();
    private byte _status;
    private byte _mode;
    private byte _outport;
    private byte _outputData;
    private bool _outputIsAux;
    private byte _pendingCommand;
    private byte _keyboardArgumentFor;
    private byte _mouseArgumentFor;
    private int _scancodeSet = 2;

    /// <summary>Creates the controller in its reset state.</summary>
    /// <param name="stop">Receives the reset (stop) request.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stop"/> is null.</exception>
    public I8042(StopRequest stop)
    {
        _stop = DeviceThrow.NotNull(stop, nameof(stop), "The i8042 controller");
        DataPort = new Port(this, isCommand: false);
        CommandPort = new Port(this, isCommand: true);
        Reset();
    }

    /// <summary>Port 0x60: output buffer on read, data (keyboard bytes or a command's argument) on write.</summary>
    public IMmioDevice DataPort { get; }

    /// <summary>Port 0x64: status register on read, controller command on write.</summary>
    public IMmioDevice CommandPort { get; }

    /// <summary>The status register.</summary>
    public byte Status => _status;

    /// <summary>The controller mode ("command byte").</summary>
    public byte Mode => _mode;

    /// <summary>The controller output port (bit 0 reset line, active low; bit 1 A20 gate).</summary>
    public byte OutputPort => _outport;

    /// <summary>Whether the controller's A20 output is set.</summary>
    public bool A20 => (_outport & OutportA20) != 0;

    /// <summary>The keyboard interrupt (ISA IRQ 1) level.</summary>
    public bool Irq1 { get; private set; }

    /// <summary>The mouse interrupt (ISA IRQ 12) level.</summary>
    public bool Irq12 { get; private set; }

    /// <summary>Raised with the ISA IRQ number (1 or 12) and the new level when an interrupt output changes.</summary>
    public event Action<int, bool>? IrqChanged;

    /// <summary>Raised with the new level when the controller drives the A20 line (commands 0xDD/0xDF, output-port writes).</summary>
    public event Action<bool>? A20Changed;

    /// <summary>Returns the controller to its reset state (QEMU's kbd_reset); the self-test flag is cleared.</summary>
    public void Reset()
    {
        _mode = ModeKeyboardInterrupt | ModeMouseInterrupt;
        _status = StatusCommand | StatusUnlocked;
        _outport = OutportReset | OutportA20 | OutportOnes;
        _output.Clear();
        _outputData = 0;
        _outputIsAux = false;
        _pendingCommand = 0;
        _keyboardArgumentFor = 0;
        _mouseArgumentFor = 0;
        _scancodeSet = 2;
        UpdateIrq();
    }

    private byte ReadData()
    {
        byte value = _outputData;
        if ((_status & StatusOutputFull) != 0)
        {
            _status &= unchecked((byte)~(StatusOutputFull | StatusMouseOutputFull));
            LoadOutput();
        }

        UpdateIrq();
        return value;
    }

    private void WriteCommand(byte command)
    {
        // Pulse commands 0xF0-0xFF: bits 3-0 select output-port bits to pulse low; only bit 0 (reset) matters.
        if ((command & 0xF0) == 0xF0)
        {
            command = (command & 1) == 0 ? (byte)0xFE : (byte)0xFF;
        }

        switch (command)
        {
            case 0x20:
                Queue(_mode, aux: false);
                break;
            case 0x60: // write mode
            case 0xD1: // write output port
            case 0xD2: // write keyboard output buffer
            case 0xD3: // write mouse output buffer
            case 0xD4: // write to mouse
                _pendingCommand = command;
                break;
            case 0xA7:
                _mode |= ModeDisableMouse;
                break;
            case 0xA8:
                _mode &= unchecked((byte)~ModeDisableMouse);
                UpdateIrq();
                break;
            case 0xA9: // mouse interface test: 0 = no error
            case 0xAB: // keyboard interface test
                Queue(0x00, aux: false);
                break;
            case 0xAA: // controller self-test
                _status |= StatusSystem;
                Queue(0x55, aux: false);
                break;
            case 0xAD:
                _mode |= ModeDisableKeyboard;
                UpdateIrq();
                break;
            case 0xAE:
                _mode &= unchecked((byte)~ModeDisableKeyboard);
                UpdateIrq();
                break;
            case 0xC0: // read input port
                Queue(0x80, aux: false);
                break;
            case 0xD0:
                Queue(_outport, aux: false);
                break;
            case 0xDD:
                _outport &= unchecked((byte)~OutportA20);
                A20Changed?.Invoke(false);
                break;
            case 0xDF:
                _outport |= OutportA20;
                A20Changed?.Invoke(true);
                break;
            case 0xFE:
                RequestReset($"i8042: guest pulsed the CPU reset line (command 0x{command:x2} on port 0x64); " +
                    "QEMU with -no-reboot exits with status 0 on a reset");
                break;
            default:
                break; // 0xFF is a no-op; QEMU logs and ignores unknown commands.
        }
    }

    private void WriteData(byte value)
    {
        byte command = _pendingCommand;
        _pendingCommand = 0;
        switch (command)
        {
            case 0:
                KeyboardCommand(value);
                _mode &= unchecked((byte)~ModeDisableKeyboard); // Sending to the keyboard re-enables it.
                UpdateIrq();
                break;
            case 0x60:
                _mode = value;
                UpdateIrq();
                break;
            case 0xD1:
                _outport = value;
                A20Changed?.Invoke((value & OutportA20) != 0);
                if ((value & OutportReset) == 0)
                {
                    RequestReset($"i8042: guest wrote output port 0x{value:x2} with the reset bit clear; " +
                        "QEMU with -no-reboot exits with status 0 on a reset");
                }

                break;
            case 0xD2:
                Queue(value, aux: false);
                break;
            case 0xD3:
                Queue(value, aux: true);
                break;
            case 0xD4:
                MouseCommand(value);
                break;
        }
    }

    private void KeyboardCommand(byte value)
    {
        if (_keyboardArgumentFor != 0)
        {
            byte command = _keyboardArgumentFor;
            _keyboardArgumentFor = 0;
            Queue(0xFA, aux: false);
            if (command == 0xF0)
            {
                if (value == 0)
                {
                    // Report the scan-code set, in set-1 terms when the controller translates.
                    byte set = (byte)_scancodeSet;
                    Queue((_mode & ModeTranslate) != 0 ? (set switch { 1 => (byte)0x43, 2 => (byte)0x41, _ => (byte)0x3F }) : set, aux: false);
                }
                else if (value is >= 1 and <= 3)
                {
                    _scancodeSet = value;
                }
            }

            return;
        }

        switch (value)
        {
            case 0xED: // set LEDs
            case 0xF0: // scan-code set
            case 0xF3: // typematic rate
                _keyboardArgumentFor = value;
                Queue(0xFA, aux: false);
                break;
            case 0xEE: // echo
                Queue(0xEE, aux: false);
                break;
            case 0xF2: // identify: MF2 keyboard
                Queue(0xFA, aux: false);
                Queue(0xAB, aux: false);
                Queue((_mode & ModeTranslate) != 0 ? (byte)0x41 : (byte)0x83, aux: false);
                break;
            case 0xFF: // reset and self-test
                _scancodeSet = 2;
                Queue(0xFA, aux: false);
                Queue(0xAA, aux: false);
                break;
            case 0xF4 or 0xF5 or 0xF6 or 0xF7 or 0xF8 or 0xF9 or 0xFA or 0xFB or 0xFC or 0xFD:
                Queue(0xFA, aux: false);
                break;
            default:
                Queue(0xFE, aux: false); // resend: not a command the keyboard knows
                break;
        }
    }

    private void MouseCommand(byte value)
    {
        if (_mouseArgumentFor != 0)
        {
            _mouseArgumentFor = 0;
            Queue(0xFA, aux: true);
            return;
        }

        Queue(0xFA, aux: true);
        switch (value)
        {
            case 0xE8: // resolution
            case 0xF3: // sample rate
                _mouseArgumentFor = value;
                break;
            case 0xE9: // status request: stream mode, resolution 2, 100 samples/s
                Queue(0x00, aux: true);
                Queue(0x02, aux: true);
                Queue(0x64, aux: true);
                break;
            case 0xF2: // identify: standard PS/2 mouse
                Queue(0x00, aux: true);
                break;
            case 0xFF:
                Queue(0xAA, aux: true);
                Queue(0x00, aux: true);
                break;
        }
    }

    private void RequestReset(string reason) => _stop.Request(0, reason);

    private void Queue(byte value, bool aux)
    {
        _output.Enqueue((value, aux));
        LoadOutput();
        UpdateIrq();
    }

    private void LoadOutput()
    {
        if ((_status & StatusOutputFull) != 0 || _output.Count == 0)
        {
            return;
        }

        (_outputData, _outputIsAux) = _output.Dequeue();
        _status |= StatusOutputFull;
        if (_outputIsAux)
        {
            _status |= StatusMouseOutputFull;
        }
    }

    private void UpdateIrq()
    {
        bool full = (_status & StatusOutputFull) != 0;
        bool irq1 = full && !_outputIsAux && (_mode & ModeKeyboardInterrupt) != 0;
        bool irq12 = full && _outputIsAux && (_mode & ModeMouseInterrupt) != 0;
        if (irq1 != Irq1)
        {
            Irq1 = irq1;
            IrqChanged?.Invoke(1, irq1);
        }

        if (irq12 != Irq12)
        {
            Irq12 = irq12;
            IrqChanged?.Invoke(12, irq12);
        }
    }

    /// <summary>One of the controller's two ports.</summary>
    private sealed class Port(I8042 owner, bool isCommand) : IMmioDevice
    {
        public string Name => "keyboard";

        public AccessConstraints Valid => new(1, 4, Unaligned: true);

        public AccessConstraints Impl => AccessConstraints.Exactly(1);

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            value = isCommand ? owner._status : owner.ReadData();
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            if (isCommand)
            {
                owner.WriteCommand((byte)value);
            }
            else
            {
                owner.WriteData((byte)value);
            }

            return BusStatus.Ok;
        }
    }
}
