using HwMemModel.Bus;

namespace HwMemModel.Kernel.Tests.IoRemap;

/// <summary>An MMIO device that records every access it receives and answers reads from a byte array.</summary>
internal sealed class RecordingDevice(ulong size, AccessConstraints? valid = null) : IMmioDevice
{
    private readonly byte[] _bytes = new byte[size];

    public List<(bool Write, ulong Offset, int Size, ulong Value)> Accesses { get; } = [];

    public string Name => "recorder";
    public AccessConstraints Valid { get; } = valid ?? AccessConstraints.Any;
    public AccessConstraints Impl => AccessConstraints.Any;

    public byte[] Bytes => _bytes;

    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = 0;
        for (int i = 0; i < size; i++) value |= (ulong)_bytes[offset + (ulong)i] << (8 * i);
        Accesses.Add((false, offset, size, value));
        return BusStatus.Ok;
    }

    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        for (int i = 0; i < size; i++) _bytes[offset + (ulong)i] = (byte)(value >> (8 * i));
        Accesses.Add((true, offset, size, value));
        return BusStatus.Ok;
    }
}
