using System.Buffers.Binary;
using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

/// <summary>One access a <see cref="RecordingDevice"/> received.</summary>
internal readonly record struct DeviceAccess(bool IsWrite, ulong Offset, int Size, ulong Value, BusAttributes Attributes);

/// <summary>A test device with a little-endian register file that records every access it receives.</summary>
internal sealed class RecordingDevice : IMmioDevice
{
    private readonly byte[] _registers;

    public RecordingDevice(string name, int registerBytes, AccessConstraints valid, AccessConstraints impl)
    {
        Name = name;
        Valid = valid;
        Impl = impl;
        _registers = new byte[registerBytes];
    }

    public string Name { get; }

    public AccessConstraints Valid { get; }

    public AccessConstraints Impl { get; }

    public List<DeviceAccess> Accesses { get; } = [];

    /// <summary>Status every access returns.</summary>
    public BusStatus Status { get; set; } = BusStatus.Ok;

    /// <summary>Fills the register file with 0x00, 0x11, 0x22, ... so that each byte names its offset.</summary>
    public RecordingDevice WithOffsetPattern()
    {
        for (int i = 0; i < _registers.Length; i++)
        {
            _registers[i] = (byte)(i * 0x11);
        }

        return this;
    }

    public byte[] Registers => _registers;

    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        Span<byte> buffer = stackalloc byte[8];
        buffer.Clear();
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            buffer[i] = at < (ulong)_registers.Length ? _registers[at] : (byte)0;
        }

        value = BinaryPrimitives.ReadUInt64LittleEndian(buffer);
        Accesses.Add(new DeviceAccess(false, offset, size, value, attributes));
        return Status;
    }

    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        Accesses.Add(new DeviceAccess(true, offset, size, value, attributes));
        for (int i = 0; i < size; i++)
        {
            ulong at = offset + (ulong)i;
            if (at < (ulong)_registers.Length)
            {
                _registers[at] = (byte)(value >> (8 * i));
            }
        }

        return Status;
    }
}
