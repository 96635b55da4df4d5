using System.Buffers.Binary;

namespace HwMemModel.Devices.Dma;

/// <summary>Operation codes of a <see cref="DmaDescriptor"/> (byte 0).</summary>
public enum DmaOpcode : byte
{
    /// <summary>Memory to memory: <see cref="DmaDescriptor.Length"/> bytes from the source to the destination, as if
    /// the whole source were read before the destination is written (overlapping ranges behave like memmove).</summary>
    Copy = 0x01,

    /// <summary>Fills <see cref="DmaDescriptor.Length"/> destination bytes with the 8-byte fill pattern repeated
    /// (destination byte i = pattern byte i mod 8); for a byte fill, repeat the byte in all eight.</summary>
    Fill = 0x02,
}

/// <summary>Flags of a <see cref="DmaDescriptor"/> (byte 1).</summary>
[Flags]
public enum DmaDescriptorFlags : byte
{
    /// <summary>No flag.</summary>
    None = 0,

    /// <summary>Set STATUS.DONE when the descriptor completes successfully (an interrupt if CONTROL.DONE_IE is set).</summary>
    Interrupt = 0x01,
}

/// <summary>
/// The status the engine writes back into a descriptor (bytes 2-3) and keeps in STATUS.LAST_ERROR (errors only).
/// Error codes are <c>(where &lt;&lt; 4) | reason</c> for refused transfers: where 2 = source, 3 = destination,
/// 4 = descriptor fetch, 5 = status write-back; reason 1 = unmapped, 2 = not memory (a device window, or ROM for a
/// write), 3 = beyond the physical address space.
/// </summary>
public enum DmaStatusCode : ushort
{
    /// <summary>Not processed yet: the driver writes 0 when it posts the descriptor.</summary>
    Pending = 0x0000,

    /// <summary>Completed successfully.</summary>
    Ok = 0x0001,

    /// <summary>Byte 0 holds no known <see cref="DmaOpcode"/>; nothing transferred.</summary>
    BadOpcode = 0x0010,

    /// <summary>Length above <see cref="DmaEngine.MaxTransferLength"/> (16 MiB); nothing transferred.</summary>
    BadLength = 0x0011,

    /// <summary>The source range is (partly) unmapped; nothing transferred.</summary>
    SourceUnmapped = 0x0021,

    /// <summary>The source range (partly) decodes to a device window (MMIO); nothing transferred.</summary>
    SourceNotMemory = 0x0022,

    /// <summary>The source range goes beyond the physical address space; nothing transferred.</summary>
    SourceOutOfRange = 0x0023,

    /// <summary>The destination range is (partly) unmapped; nothing transferred.</summary>
    DestinationUnmapped = 0x0031,

    /// <summary>The destination range (partly) decodes to a device window (MMIO) or ROM; nothing transferred.</summary>
    DestinationNotMemory = 0x0032,

    /// <summary>The destination range goes beyond the physical address space; nothing transferred.</summary>
    DestinationOutOfRange = 0x0033,

    /// <summary>The descriptor could not be fetched: unmapped (STATUS.LAST_ERROR only, no write-back).</summary>
    RingUnmapped = 0x0041,

    /// <summary>The descriptor could not be fetched: it lies in a device window (STATUS.LAST_ERROR only).</summary>
    RingNotMemory = 0x0042,

    /// <summary>The descriptor could not be fetched: beyond the physical address space (STATUS.LAST_ERROR only).</summary>
    RingOutOfRange = 0x0043,

    /// <summary>The status write-back was refused: unmapped (STATUS.LAST_ERROR only).</summary>
    WriteBackUnmapped = 0x0051,

    /// <summary>The status write-back was refused: the ring is not writable memory (ROM or MMIO) (STATUS.LAST_ERROR only).</summary>
    WriteBackNotMemory = 0x0052,

    /// <summary>The status write-back was refused: beyond the physical address space (STATUS.LAST_ERROR only).</summary>
    WriteBackOutOfRange = 0x0053,

    /// <summary>RING_SIZE is not a power of two from 2 to 4096 when there is work (STATUS.LAST_ERROR only).</summary>
    BadRingSize = 0x0060,

    /// <summary>TAIL is not below RING_SIZE when there is work (STATUS.LAST_ERROR only).</summary>
    BadTail = 0x0061,
}

/// <summary>
/// One 32-byte descriptor of the <see cref="DmaEngine"/> ring, little-endian:
/// <c>+0x00</c> u8 opcode, <c>+0x01</c> u8 flags, <c>+0x02</c> u16 status (written back by the engine),
/// <c>+0x04</c> u32 length in bytes, <c>+0x08</c> u64 source bus address (copy), <c>+0x10</c> u64 destination bus
/// address, <c>+0x18</c> u64 fill pattern (fill).
/// </summary>
/// <param name="Opcode">The operation (<see cref="DmaOpcode"/>; other values complete with <see cref="DmaStatusCode.BadOpcode"/>).</param>
/// <param name="Flags">Flags; undefined bits are ignored and should be 0.</param>
/// <param name="Status">The status field (0 when posted).</param>
/// <param name="Length">Bytes to transfer; 0 completes at once with <see cref="DmaStatusCode.Ok"/>.</param>
/// <param name="Source">Source bus address (copy only).</param>
/// <param name="Destination">Destination bus address.</param>
/// <param name="FillPattern">The 8-byte pattern a fill repeats, byte 0 first.</param>
public readonly record struct DmaDescriptor(
    DmaOpcode Opcode, DmaDescriptorFlags Flags, DmaStatusCode Status, uint Length, ulong Source, ulong Destination, ulong FillPattern)
{
    /// <summary>Size of a descriptor in bytes.</summary>
    public const int Size = 32;

    /// <summary>Offset of the status field the engine writes back.</summary>
    public const int StatusOffset = 2;

    /// <summary>A copy descriptor.</summary>
    public static DmaDescriptor Copy(ulong source, ulong destination, uint length, bool interrupt = false) =>
        new(DmaOpcode.Copy, interrupt ? DmaDescriptorFlags.Interrupt : DmaDescriptorFlags.None, DmaStatusCode.Pending, length, source, destination, 0);

    /// <summary>A fill descriptor repeating the 8-byte <paramref name="pattern"/>.</summary>
    public static DmaDescriptor Fill(ulong destination, uint length, ulong pattern, bool interrupt = false) =>
        new(DmaOpcode.Fill, interrupt ? DmaDescriptorFlags.Interrupt : DmaDescriptorFlags.None, DmaStatusCode.Pending, length, 0, destination, pattern);

    /// <summary>Decodes the first 32 bytes of <paramref name="bytes"/>.</summary>
    /// <exception cref="ArgumentException">Fewer than 32 bytes.</exception>
    public static DmaDescriptor Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < Size)
        {
            Common.DeviceThrow.Argument(nameof(bytes), $"A DMA descriptor is {Size} bytes; {bytes.Length} were given.");
        }

        return new DmaDescriptor(
            (DmaOpcode)bytes[0],
            (DmaDescriptorFlags)bytes[1],
            (DmaStatusCode)BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[24..]));
    }

    /// <summary>Encodes the descriptor into the first 32 bytes of <paramref name="bytes"/>.</summary>
    /// <exception cref="ArgumentException">Fewer than 32 bytes.</exception>
    public void Encode(Span<byte> bytes)
    {
        if (bytes.Length < Size)
        {
            Common.DeviceThrow.Argument(nameof(bytes), $"A DMA descriptor is {Size} bytes; {bytes.Length} were given.");
        }

        bytes[0] = (byte)Opcode;
        bytes[1] = (byte)Flags;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes[2..], (ushort)Status);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes[4..], Length);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[8..], Source);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[16..], Destination);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[24..], FillPattern);
    }
}
