using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Interrupts;

/// <summary>
/// The cascaded pair of 8259A interrupt controllers of the PC as QEMU 7.2 models them (hw/intc/i8259.c,
/// i8259_common.c): the master at ports 0x20-0x21 (<see cref="Master"/>), the slave at 0xA0-0xA1 (<see cref="Slave"/>)
/// on the master's input 2, and the edge/level control registers at 0x4D0-0x4D1 (<see cref="Elcr"/>).
/// </summary>
/// <remarks>
/// ISA IRQs 0-7 enter the master, 8-15 the slave (<see cref="SetIrq"/>). The master's INTR output is
/// <see cref="Intr"/>; the CPU acknowledges with <see cref="Acknowledge"/>, which returns the vector as QEMU's
/// pic_read_irq does (spurious IRQ 7 or 15 when nothing is pending). Reset: IMR 0x00 on both (observed on QEMU 7.2),
/// IRR/ISR 0, vector base 0. ELCR: master mask 0xF8, slave 0xDE (IRQs 0-2, 8 and 13 are always edge-triggered);
/// the ELCR survives resets and ICW1.
/// </remarks>
public sealed class Pic8259
{
    /// <summary>Creates the pair in its reset state.</summary>
    public Pic8259()
    {
        Master = new Pic8259Chip(this, isMaster: true);
        Slave = new Pic8259Chip(this, isMaster: false);
        Elcr = new ElcrPorts(this);
    }

    /// <summary>The master controller (ports 0x20-0x21, "pic1").</summary>
    public Pic8259Chip Master { get; }

    /// <summary>The slave controller (ports 0xA0-0xA1, "pic2").</summary>
    public Pic8259Chip Slave { get; }

    /// <summary>The two ELCR bytes at ports 0x4D0 (master) and 0x4D1 (slave).</summary>
    public IMmioDevice Elcr { get; }

    /// <summary>The master's INTR output to the CPU.</summary>
    public bool Intr { get; private set; }

    /// <summary>Raised with the new level whenever <see cref="Intr"/> changes.</summary>
    public event Action<bool>? IntrChanged;

    /// <summary>Drives ISA interrupt input <paramref name="irq"/> (0-15) to <paramref name="level"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="irq"/> is outside 0-15.</exception>
    public void SetIrq(int irq, bool level)
    {
        if ((uint)irq > 15)
        {
            DeviceThrow.OutOfRange(nameof(irq), irq, $"The PIC pair has ISA IRQ inputs 0 to 15; {irq} is not one.");
        }

        (irq < 8 ? Master : Slave).SetInput(irq & 7, level);
    }

    /// <summary>
    /// The interrupt acknowledge cycle (INTA): returns the vector the CPU receives and moves the interrupt into service.
    /// Without a pending request it returns the spurious vector (master base + 7, or slave base + 7 when the cascade
    /// input is pending but the slave has nothing).
    /// </summary>
    public int Acknowledge()
    {
        int irq = Master.GetIrq();
        int vector;
        if (irq >= 0)
        {
            if (irq == 2)
            {
                int slaveIrq = Slave.GetIrq();
                if (slaveIrq >= 0)
                {
                    Slave.IntAck(slaveIrq);
                }
                else
                {
                    slaveIrq = 7;
                }

                vector = Slave.VectorBase + slaveIrq;
            }
            else
            {
                vector = Master.VectorBase + irq;
            }

            Master.IntAck(irq);
        }
        else
        {
            vector = Master.VectorBase + 7;
        }

        return vector;
    }

    /// <summary>The vector <see cref="Acknowledge"/> would return now, without acknowledging; null when nothing is pending.</summary>
    public int? PeekVector()
    {
        int irq = Master.GetIrq();
        if (irq < 0)
        {
            return null;
        }

        if (irq == 2)
        {
            int slaveIrq = Slave.GetIrq();
            return Slave.VectorBase + (slaveIrq >= 0 ? slaveIrq : 7);
        }

        return Master.VectorBase + irq;
    }

    /// <summary>Resets both controllers (the ELCR is kept, as on QEMU).</summary>
    public void Reset()
    {
        Master.Reset();
        Slave.Reset();
    }

    internal void OnOutputChanged(Pic8259Chip chip, bool level)
    {
        if (chip == Slave)
        {
            Master.SetInput(2, level);
        }
        else if (level != Intr)
        {
            Intr = level;
            IntrChanged?.Invoke(level);
        }
    }

    private sealed class ElcrPorts(Pic8259 owner) : IMmioDevice
    {
        public string Name => "elcr";

        public AccessConstraints Valid => new(1, 4, Unaligned: true);

        public AccessConstraints Impl => AccessConstraints.Exactly(1);

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            value = (offset & 1) == 0 ? owner.Master.Elcr : owner.Slave.Elcr;
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            ((offset & 1) == 0 ? owner.Master : owner.Slave).Elcr = (byte)value;
            return BusStatus.Ok;
        }
    }
}

/// <summary>
/// One 8259A of the pair: IRR, ISR, IMR, the ICW1-ICW4 initialisation sequence, OCW2 (EOI, specific EOI, rotation),
/// OCW3 (IRR/ISR read select, poll, special mask) and auto-EOI, with QEMU 7.2's semantics. Two ports: offset 0
/// (commands; reads IRR or ISR) and offset 1 (IMR and initialisation words).
/// </summary>
public sealed class Pic8259Chip : IMmioDevice
{
    private readonly Pic8259 _owner;
    private readonly byte _elcrMask;
    private byte _lastIrr;
    private byte _priorityAdd;
    private bool _readIsr;
    private bool _poll;
    private bool _specialMask;
    private int _initState;
    private bool _autoEoi;
    private bool _rotateOnAutoEoi;
    private bool _specialFullyNested;
    private bool _init4;
    private bool _singleMode;
    private byte _elcr;

    internal Pic8259Chip(Pic8259 owner, bool isMaster)
    {
        _owner = owner;
        IsMaster = isMaster;
        _elcrMask = isMaster ? (byte)0xF8 : (byte)0xDE;
        Reset();
    }

    /// <inheritdoc />
    public string Name => IsMaster ? "pic1" : "pic2";

    /// <inheritdoc />
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <summary>Byte registers.</summary>
    public AccessConstraints Impl => AccessConstraints.Exactly(1);

    /// <summary>Whether this is the master.</summary>
    public bool IsMaster { get; }

    /// <summary>The interrupt request register.</summary>
    public byte Irr { get; private set; }

    /// <summary>The in-service register.</summary>
    public byte Isr { get; private set; }

    /// <summary>The interrupt mask register (OCW1).</summary>
    public byte Imr { get; private set; }

    /// <summary>The vector base from ICW2 (a multiple of 8).</summary>
    public int VectorBase { get; private set; }

    /// <summary>The INT output level.</summary>
    public bool Output { get; private set; }

    /// <summary>The edge/level control register (bits set: level-triggered); writes are masked to the bits the chipset allows.</summary>
    public byte Elcr
    {
        get => _elcr;
        set => _elcr = (byte)(value & _elcrMask);
    }

    /// <summary>Whether the chip is waiting for initialisation words (after ICW1).</summary>
    public bool Initialising => _initState != 0;

    /// <summary>Resets the chip (QEMU's pic_reset_common); IRR keeps level-triggered inputs and the ELCR is kept.</summary>
    public void Reset()
    {
        _lastIrr = 0;
        Irr &= _elcr;
        Imr = 0;
        Isr = 0;
        _priorityAdd = 0;
        VectorBase = 0;
        _readIsr = false;
        _poll = false;
        _specialMask = false;
        _initState = 0;
        _autoEoi = false;
        _rotateOnAutoEoi = false;
        _specialFullyNested = false;
        _init4 = false;
        _singleMode = false;
        UpdateIrq();
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = ReadPort((int)(offset & 1));
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        WritePort((int)(offset & 1), (byte)value);
        return BusStatus.Ok;
    }

    internal void SetInput(int irq, bool level)
    {
        byte mask = (byte)(1 << irq);
        if ((_elcr & mask) != 0)
        {
            // Level-triggered: IRR follows the input.
            if (level)
            {
                Irr |= mask;
                _lastIrr |= mask;
            }
            else
            {
                Irr &= (byte)~mask;
                _lastIrr &= (byte)~mask;
            }
        }
        else
        {
            // Edge-triggered: a rising edge sets IRR; IRR stays set until acknowledged.
            if (level)
            {
                if ((_lastIrr & mask) == 0)
                {
                    Irr |= mask;
                }

                _lastIrr |= mask;
            }
            else
            {
                _lastIrr &= (byte)~mask;
            }
        }

        UpdateIrq();
    }

    /// <summary>The highest-priority request that should interrupt now, or -1 (QEMU's pic_get_irq).</summary>
    internal int GetIrq()
    {
        int priority = GetPriority(Irr & ~Imr);
        if (priority == 8)
        {
            return -1;
        }

        // In special fully nested mode the master ignores the cascade input's in-service bit.
        int mask = Isr;
        if (_specialMask)
        {
            mask &= ~Imr;
        }

        if (_specialFullyNested && IsMaster)
        {
            mask &= ~(1 << 2);
        }

        int current = GetPriority(mask);
        return priority < current ? (priority + _priorityAdd) & 7 : -1;
    }

    internal void IntAck(int irq)
    {
        if (_autoEoi)
        {
            if (_rotateOnAutoEoi)
            {
                _priorityAdd = (byte)((irq + 1) & 7);
            }
        }
        else
        {
            Isr |= (byte)(1 << irq);
        }

        // Level-triggered requests stay in IRR while the input is high.
        if ((_elcr & (1 << irq)) == 0)
        {
            Irr &= (byte)~(1 << irq);
        }

        UpdateIrq();
    }

    private int GetPriority(int mask)
    {
        if ((mask & 0xFF) == 0)
        {
            return 8;
        }

        int priority = 0;
        while ((mask & (1 << ((priority + _priorityAdd) & 7))) == 0)
        {
            priority++;
        }

        return priority;
    }

    private byte ReadPort(int port)
    {
        if (_poll)
        {
            // Poll mode: the read acknowledges the highest request and returns 0x80 | level, or 0.
            _poll = false;
            int irq = GetIrq();
            if (irq < 0)
            {
                return 0;
            }

            IntAck(irq);
            return (byte)(irq | 0x80);
        }

        if (port == 0)
        {
            return _readIsr ? Isr : Irr;
        }

        return Imr;
    }

    private void WritePort(int port, byte value)
    {
        if (port == 0)
        {
            if ((value & 0x10) != 0)
            {
                // ICW1: reset and start the initialisation sequence.
                Reset();
                _initState = 1;
                _init4 = (value & 1) != 0;
                _singleMode = (value & 2) != 0;
            }
            else if ((value & 0x08) != 0)
            {
                // OCW3.
                if ((value & 0x04) != 0)
                {
                    _poll = true;
                }

                if ((value & 0x02) != 0)
                {
                    _readIsr = (value & 1) != 0;
                }

                if ((value & 0x40) != 0)
                {
                    _specialMask = ((value >> 5) & 1) != 0;
                }
            }
            else
            {
                WriteOcw2(value);
            }

            return;
        }

        switch (_initState)
        {
            case 0:
                Imr = value; // OCW1
                UpdateIrq();
                break;
            case 1:
                VectorBase = value & 0xF8; // ICW2
                _initState = _singleMode ? (_init4 ? 3 : 0) : 2;
                break;
            case 2:
                _initState = _init4 ? 3 : 0; // ICW3: the cascade wiring is fixed
                break;
            case 3:
                _specialFullyNested = ((value >> 4) & 1) != 0; // ICW4
                _autoEoi = ((value >> 1) & 1) != 0;
                _initState = 0;
                break;
        }
    }

    private void WriteOcw2(byte value)
    {
        int command = value >> 5;
        switch (command)
        {
            case 0: // rotate in auto-EOI mode: clear
            case 4: // rotate in auto-EOI mode: set
                _rotateOnAutoEoi = command == 4;
                break;
            case 1: // non-specific EOI
            case 5: // rotate on non-specific EOI
                int priority = GetPriority(Isr);
                if (priority != 8)
                {
                    int irq = (priority + _priorityAdd) & 7;
                    Isr &= (byte)~(1 << irq);
                    if (command == 5)
                    {
                        _priorityAdd = (byte)((irq + 1) & 7);
                    }

                    UpdateIrq();
                }

                break;
            case 3: // specific EOI
                Isr &= (byte)~(1 << (value & 7));
                UpdateIrq();
                break;
            case 6: // set priority
                _priorityAdd = (byte)((value + 1) & 7);
                UpdateIrq();
                break;
            case 7: // rotate on specific EOI
                int level = value & 7;
                Isr &= (byte)~(1 << level);
                _priorityAdd = (byte)((level + 1) & 7);
                UpdateIrq();
                break;
            default:
                break; // 2: no operation
        }
    }

    private void UpdateIrq()
    {
        bool level = GetIrq() >= 0;
        if (level == Output)
        {
            return;
        }

        Output = level;
        _owner?.OnOutputChanged(this, level);
    }
}
