namespace HwMemModel.Drivers.Dma;

/// <summary>
/// The "hwmem,dma-engine" programming model as the driver knows it (its own header, from the datasheet in
/// devices/README.md): register offsets in the 4 KiB window, register bits, the 32-byte descriptor layout and the
/// status codes the engine writes back.
/// </summary>
internal static class DmaEngineHw
{
    // Registers (32-bit unless noted; RING_BASE and ERROR_ADDR are 64-bit and take 8-byte accesses).
    public const ulong Id = 0x000, Version = 0x004, Caps = 0x008, Control = 0x010, Status = 0x014;
    public const ulong RingBase = 0x020, RingSize = 0x028, Head = 0x030, Tail = 0x034;
    public const ulong ErrorAddr = 0x040, ErrorIndex = 0x048, Completed = 0x050;

    /// <summary>ID: the bytes "HDMA".</summary>
    public const uint IdValue = 0x414D4448;
    /// <summary>VERSION: major in 31:16, minor in 15:0; this driver knows major 1.</summary>
    public const uint VersionMajor = 1;

    // CAPS fields.
    public const int CapsDescSizeShift = 0, CapsRingLog2Shift = 8, CapsLengthLog2Shift = 16;

    // CONTROL bits.
    public const uint CtrlEnable = 1u << 0, CtrlReset = 1u << 1, CtrlDoneIe = 1u << 8, CtrlErrorIe = 1u << 9;

    // STATUS bits; LAST_ERROR is 15:8.
    public const uint StDone = 1u << 0, StError = 1u << 1, StBusy = 1u << 2;
    public const int StLastErrorShift = 8;

    // Descriptor: +0 u8 opcode, +1 u8 flags, +2 u16 status, +4 u32 length, +8 u64 source, +0x10 u64 destination, +0x18 u64 pattern.
    public const int DescSize = 32;
    public const int DescOpcode = 0x00, DescFlags = 0x01, DescStatus = 0x02, DescLength = 0x04;
    public const int DescSource = 0x08, DescDestination = 0x10, DescPattern = 0x18;
    public const byte OpCopy = 0x01, OpFill = 0x02;
    public const byte FlagInterrupt = 0x01;

    // Descriptor status codes.
    public const ushort StatusPending = 0x0000, StatusOk = 0x0001, StatusBadOpcode = 0x0010, StatusBadLength = 0x0011;
    public const ushort StatusBadRingSize = 0x0060, StatusBadTail = 0x0061;

    /// <summary>Text for a status code: refused transfers are (where &lt;&lt; 4) | reason.</summary>
    public static string Describe(ushort code)
    {
        switch (code)
        {
            case StatusPending: return "not processed";
            case StatusOk: return "ok";
            case StatusBadOpcode: return "bad opcode";
            case StatusBadLength: return "length above the largest transfer";
            case StatusBadRingSize: return "bad RING_SIZE";
            case StatusBadTail: return "TAIL outside the ring";
        }
        string where = (code >> 4) switch
        {
            2 => "source",
            3 => "destination",
            4 => "descriptor fetch",
            5 => "status write-back",
            _ => "unknown",
        };
        string reason = (code & 0xF) switch
        {
            1 => "unmapped",
            2 => "not memory",
            3 => "beyond the physical address space",
            _ => "unknown reason",
        };
        return $"{where} refused ({reason})";
    }
}
