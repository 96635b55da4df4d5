using HwMemModel.Bus;

namespace HwMemModel.Devices.Misc;

/// <summary>
/// QEMU's <c>ioport80</c> on the pc machine: port 0x80, the POST-code / I/O-delay port. Writes are swallowed (firmware
/// uses OUT 0x80 as a short delay) and reads return all ones (0xFF per byte, observed on QEMU 7.2).
/// </summary>
public sealed class IoPort80 : IMmioDevice
{
    /// <inheritdoc />
    public string Name => "ioport80";

    /// <inheritdoc />
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <inheritdoc />
    public AccessConstraints Impl => new(1, 4, Unaligned: true);

    /// <summary>The last value written (0 before any write), for tests and POST-code displays.</summary>
    public uint LastValue { get; private set; }

    /// <summary>Number of writes received.</summary>
    public long WriteCount { get; private set; }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        LastValue = (uint)value;
        WriteCount++;
        return BusStatus.Ok;
    }
}
