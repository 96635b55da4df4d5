namespace HwMemModel.Devices.Dma;

/// <summary>
/// Register offsets of the <see cref="DmaEngine"/>'s 4 KiB window. Registers are 32-bit (4-byte accesses) unless
/// marked 64-bit (4- or 8-byte accesses, the low half at the offset, the high half at +4). See
/// <see cref="DmaEngine"/> for the fields.
/// </summary>
public enum DmaEngineRegister : ulong
{
    /// <summary>ID, read-only, 0x414D4448 (the bytes "HDMA").</summary>
    Id = 0x000,

    /// <summary>VERSION, read-only, 0x00010000 (1.0).</summary>
    Version = 0x004,

    /// <summary>CAPS, read-only, 0x00180C20: descriptor size 32 (bits 7:0), log2 of the largest ring 12 (15:8), log2 of the largest transfer 24 (23:16).</summary>
    Capabilities = 0x008,

    /// <summary>CONTROL: ENABLE (0, RW), RESET (1, write 1), DONE_IE (8, RW), ERROR_IE (9, RW).</summary>
    Control = 0x010,

    /// <summary>STATUS: DONE (0, W1C), ERROR (1, W1C), BUSY (2, RO), LAST_ERROR (15:8, RO).</summary>
    Status = 0x014,

    /// <summary>RING_BASE, 64-bit: bus address of descriptor 0; bits 4:0 reserved (32-byte aligned).</summary>
    RingBase = 0x020,

    /// <summary>RING_SIZE: number of descriptors (bits 15:0, RW), a power of two from 2 to 4096.</summary>
    RingSize = 0x028,

    /// <summary>HEAD (bits 15:0, RO): index of the next descriptor the engine processes.</summary>
    Head = 0x030,

    /// <summary>TAIL (bits 15:0, RW): the doorbell; index one past the last descriptor posted.</summary>
    Tail = 0x034,

    /// <summary>ERROR_ADDR, 64-bit, RO: bus address the last error concerns.</summary>
    ErrorAddress = 0x040,

    /// <summary>ERROR_INDEX (bits 15:0, RO): ring index the last error concerns.</summary>
    ErrorIndex = 0x048,

    /// <summary>COMPLETED (RO): descriptors completed successfully since reset, wrapping at 2^32.</summary>
    Completed = 0x050,
}
