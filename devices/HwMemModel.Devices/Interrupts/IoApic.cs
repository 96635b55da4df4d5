using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Interrupts;

/// <summary>An interrupt message an I/O APIC sends towards the local APICs, decoded from a redirection entry.</summary>
/// <param name="Pin">The input pin (0-23) that caused it.</param>
/// <param name="Vector">The vector (entry bits 0-7); for ExtINT delivery the vector comes from the PIC instead.</param>
/// <param name="DeliveryMode">Entry bits 8-10: 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT.</param>
/// <param name="LogicalDestination">Entry bit 11: the destination is a logical (not physical) APIC ID.</param>
/// <param name="Destination">Entry bits 56-63.</param>
/// <param name="LevelTriggered">Entry bit 15: level-triggered (the local APIC must broadcast its EOI).</param>
/// <param name="ActiveLow">Entry bit 13: the input polarity (informational: inputs are given as asserted levels).</param>
public readonly record struct IoApicInterrupt(int Pin, byte Vector, int DeliveryMode, bool LogicalDestination,
    byte Destination, bool LevelTriggered, bool ActiveLow);

/// <summary>
/// The I/O APIC of QEMU 7.2's pc machine (hw/intc/ioapic.c): 24 pins, version 0x20, reached through IOREGSEL (offset
/// 0x00) and IOWIN (offset 0x10) in a 4 KiB window whose offsets decode modulo 0x100; offset 0x40 is the EOI register
/// of version 0x20.
/// </summary>
/// <remarks>
/// Registers (observed on QEMU 7.2): 0 ID (bits 24-27, reset 0), 1 version 0x00170020, 2 arbitration (reads as the
/// ID), 0x10 + 2n / 0x11 + 2n redirection entry n (reset 0x00000000_00010000: masked). Remote IRR (bit 14) and delivery
/// status (bit 12) are read-only; unknown registers read 0; IOWIN accesses that are not 32 bits wide read 0 and are
/// ignored; IOREGSEL is 8 bits wide. Inputs arrive through <see cref="SetIrq"/>; pin 0 is not reachable because
/// QEMU maps ISA IRQ 0 to pin 2. Delivery to the CPUs is the <see cref="InterruptRequested"/> event.
/// </remarks>
public sealed class IoApic : IMmioDevice
{
    /// <summary>Number of input pins.</summary>
    public const int PinCount = 24;

    /// <summary>The version register's version field.</summary>
    public const int Version = 0x20;

    private const ulong Masked = 1UL << 16, LevelTrigger = 1UL << 15, RemoteIrr = 1UL << 14, DeliveryStatus = 1UL << 12;
    private const ulong ReadOnlyBits = RemoteIrr | DeliveryStatus;

    private readonly ulong[] _redirection = new ulong[PinCount];
    private byte _ioRegSel;
    private byte _id;
    private uint _irr;

    /// <summary>Creates the I/O APIC in its reset state.</summary>
    /// <param name="name">Name used in listings ("IOAPIC 0" as Linux names it).</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    public IoApic(string name = "IOAPIC 0")
    {
        Name = DeviceThrow.NotNull(name, nameof(name), "The I/O APIC");
        Reset();
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Sizes 1-8, aligned (QEMU puts no limit on it).</summary>
    public AccessConstraints Valid => new(1, 8);

    /// <summary>The bus splits 64-bit accesses into two 32-bit ones.</summary>
    public AccessConstraints Impl => new(1, 4);

    /// <summary>The APIC ID (4 bits).</summary>
    public byte Id => _id;

    /// <summary>The register selected by IOREGSEL.</summary>
    public byte RegisterSelect => _ioRegSel;

    /// <summary>The interrupt request bits (pins with a pending request).</summary>
    public uint Irr => _irr;

    /// <summary>Raised for every interrupt message the I/O APIC sends (QEMU's ioapic_service).</summary>
    public event Action<IoApicInterrupt>? InterruptRequested;

    /// <summary>Redirection entry <paramref name="pin"/> (0-23).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pin"/> is outside 0-23.</exception>
    public ulong GetRedirectionEntry(int pin) => _redirection[CheckPin(pin, nameof(pin))];

    /// <summary>Returns to the reset state: ID 0, IOREGSEL 0, no requests, every entry masked.</summary>
    public void Reset()
    {
        _id = 0;
        _ioRegSel = 0;
        _irr = 0;
        Array.Fill(_redirection, Masked);
    }

    /// <summary>
    /// Drives input <paramref name="line"/> to <paramref name="level"/> (asserted or not). Line 0 is routed to pin 2
    /// as QEMU does for ISA IRQ 0. Level-triggered pins follow the input; edge-triggered pins latch a request on an
    /// asserted input unless masked.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="line"/> is outside 0-23.</exception>
    public void SetIrq(int line, bool level)
    {
        int pin = CheckPin(line, nameof(line));
        if (pin == 0)
        {
            pin = 2;
        }

        uint mask = 1u << pin;
        ulong entry = _redirection[pin];
        if ((entry & LevelTrigger) != 0)
        {
            if (level)
            {
                _irr |= mask;
                if ((entry & RemoteIrr) == 0)
                {
                    Service();
                }
            }
            else
            {
                _irr &= ~mask;
            }
        }
        else if (level && (entry & Masked) == 0)
        {
            // The 82093AA ignores edges on masked pins.
            _irr |= mask;
            Service();
        }
    }

    /// <summary>
    /// An EOI for <paramref name="vector"/> (broadcast by a local APIC for a level-triggered interrupt, or written to
    /// the EOI register): clears remote IRR on matching level-triggered entries and re-sends still-asserted ones.
    /// </summary>
    public void EndOfInterrupt(int vector)
    {
        bool resend = false;
        for (int pin = 0; pin < PinCount; pin++)
        {
            ulong entry = _redirection[pin];
            if ((int)(entry & 0xFF) != vector || (entry & LevelTrigger) == 0 || (entry & RemoteIrr) == 0)
            {
                continue;
            }

            _redirection[pin] = entry & ~RemoteIrr;
            if ((entry & Masked) == 0 && (_irr & (1u << pin)) != 0)
            {
                resend = true;
            }
        }

        if (resend)
        {
            Service();
        }
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = (offset & 0xFF) switch
        {
            0x00 => _ioRegSel,
            0x10 when size == 4 => ReadIndirect(),
            _ => 0,
        };
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        switch (offset & 0xFF)
        {
            case 0x00:
                _ioRegSel = (byte)value;
                break;
            case 0x10 when size == 4:
                WriteIndirect((uint)value);
                break;
            case 0x40 when size == 4:
                EndOfInterrupt((int)(value & 0xFF));
                break;
        }

        return BusStatus.Ok;
    }

    private uint ReadIndirect()
    {
        switch (_ioRegSel)
        {
            case 0x00:
            case 0x02:
                return (uint)_id << 24;
            case 0x01:
                return Version | ((PinCount - 1) << 16);
            default:
                int index = (_ioRegSel - 0x10) >> 1;
                if (_ioRegSel < 0x10 || index >= PinCount)
                {
                    return 0;
                }

                ulong entry = _redirection[index];
                return (_ioRegSel & 1) != 0 ? (uint)(entry >> 32) : (uint)entry;
        }
    }

    private void WriteIndirect(uint value)
    {
        switch (_ioRegSel)
        {
            case 0x00:
                _id = (byte)((value >> 24) & 0x0F);
                break;
            case 0x01:
            case 0x02:
                break;
            default:
                int index = (_ioRegSel - 0x10) >> 1;
                if (_ioRegSel < 0x10 || index >= PinCount)
                {
                    break;
                }

                ulong entry = _redirection[index];
                ulong readOnly = entry & ReadOnlyBits;
                entry = (_ioRegSel & 1) != 0
                    ? (entry & 0xFFFFFFFFUL) | ((ulong)value << 32)
                    : (entry & 0xFFFFFFFF00000000UL) | value;
                entry = (entry & ~ReadOnlyBits) | readOnly;
                if ((entry & LevelTrigger) == 0)
                {
                    entry &= ~RemoteIrr; // Remote IRR has no meaning for edge-triggered entries.
                }

                _redirection[index] = entry;
                Service();
                break;
        }
    }

    /// <summary>Sends every deliverable request (QEMU's ioapic_service).</summary>
    private void Service()
    {
        for (int pin = 0; pin < PinCount; pin++)
        {
            uint mask = 1u << pin;
            if ((_irr & mask) == 0)
            {
                continue;
            }

            ulong entry = _redirection[pin];
            if ((entry & Masked) != 0)
            {
                continue;
            }

            bool level = (entry & LevelTrigger) != 0;
            if (level)
            {
                if ((entry & RemoteIrr) != 0)
                {
                    continue; // The CPU is still handling the previous one.
                }

                _redirection[pin] = entry | RemoteIrr;
            }
            else
            {
                _irr &= ~mask;
            }

            InterruptRequested?.Invoke(new IoApicInterrupt(pin, (byte)entry, (int)((entry >> 8) & 7),
                (entry & (1UL << 11)) != 0, (byte)(entry >> 56), level, (entry & (1UL << 13)) != 0));
        }
    }

    private static int CheckPin(int pin, string paramName)
    {
        if ((uint)pin >= PinCount)
        {
            DeviceThrow.OutOfRange(paramName, pin, $"The I/O APIC has pins 0 to 23; {pin} is not one.");
        }

        return pin;
    }
}
