namespace HwMemModel.Drivers.Dma;

/// <summary>What a <see cref="DmaRequest"/> asks the engine to do (the descriptor opcode).</summary>
public enum DmaOperation : byte
{
    /// <summary>Memory to memory: length bytes from the source to the destination (overlap behaves like memmove).</summary>
    Copy = 0x01,
    /// <summary>Fills length destination bytes with the 8-byte pattern repeated (byte i = pattern byte i mod 8).</summary>
    Fill = 0x02,
}

/// <summary>One transfer of a batch submitted with <see cref="DmaChannel.Submit"/>; create it with <see cref="Copy"/> or <see cref="Fill"/>.</summary>
/// <param name="Operation">Copy or fill.</param>
/// <param name="Destination">Destination bus address.</param>
/// <param name="Source">Source bus address (copy only).</param>
/// <param name="Pattern">The 8-byte fill pattern, byte 0 first (fill only).</param>
/// <param name="Length">Bytes to transfer.</param>
public readonly record struct DmaRequest(DmaOperation Operation, ulong Destination, ulong Source, ulong Pattern, uint Length)
{
    /// <summary>A copy of <paramref name="length"/> bytes from <paramref name="srcBus"/> to <paramref name="dstBus"/>.</summary>
    public static DmaRequest Copy(ulong dstBus, ulong srcBus, uint length) => new(DmaOperation.Copy, dstBus, srcBus, 0, length);

    /// <summary>A fill of <paramref name="length"/> bytes at <paramref name="dstBus"/> with the 8-byte <paramref name="pattern"/> repeated.</summary>
    public static DmaRequest Fill(ulong dstBus, ulong pattern, uint length) => new(DmaOperation.Fill, dstBus, 0, pattern, length);
}
