using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Misc;

/// <summary>
/// System control port A at 0x92 as QEMU's pc machine models it (<c>port92</c>): bit 1 drives the A20 gate, a rising
/// edge of bit 0 resets the machine. Reads return the last value written (0 after reset, observed on QEMU 7.2).
/// A reset is modelled as a stop request with exit status 0, which is what QEMU does with <c>-no-reboot</c>.
/// </summary>
public sealed class Port92 : IMmioDevice
{
    private readonly StopRequest _stop;
    private byte _value;

    /// <summary>Creates the port.</summary>
    /// <param name="stop">Receives the reset (stop) request.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stop"/> is null.</exception>
    public Port92(StopRequest stop) => _stop = DeviceThrow.NotNull(stop, nameof(stop), "Port 0x92");

    /// <inheritdoc />
    public string Name => "port92";

    /// <inheritdoc />
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <inheritdoc />
    public AccessConstraints Impl => AccessConstraints.Exactly(1);

    /// <summary>Whether bit 1 (fast A20 gate) is set.</summary>
    public bool A20 => (_value & 2) != 0;

    /// <summary>Raised with the new level whenever a write drives the A20 line (QEMU drives it on every write).</summary>
    public event Action<bool>? A20Changed;

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = _value;
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        byte old = _value;
        _value = (byte)value;
        A20Changed?.Invoke(A20);
        if ((_value & 1) != 0 && (old & 1) == 0)
        {
            _stop.Request(0,
                $"port 0x92: guest set the fast reset bit (wrote 0x{_value:x2}); QEMU with -no-reboot exits with status 0 on a reset");
        }

        return BusStatus.Ok;
    }

    /// <summary>The machine reset clears bit 0 (QEMU's port92_reset); the A20 bit stays.</summary>
    public void Reset() => _value &= unchecked((byte)~1);
}
