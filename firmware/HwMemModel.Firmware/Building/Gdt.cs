namespace HwMemModel.Firmware.Building;

/// <summary>
/// The flat GDT every image uses. Descriptors have their accessed bit preset, so loading a selector never
/// writes to the table (it may sit in ROM). User data sits right below user code so that the layout also
/// suits SYSRET (STAR[63:48] = <see cref="Code64"/>).
/// </summary>
internal static class Gdt
{
    public const ushort Code32 = 0x08;
    public const ushort Data = 0x10;
    public const ushort Code64 = 0x18;
    public const ushort UserData = 0x20;
    public const ushort UserCode64 = 0x28;
    public const ushort Tss = 0x30;

    /// <summary>Null, 32-bit code, data, 64-bit code, user data (DPL 3), user 64-bit code (DPL 3).</summary>
    public static readonly ulong[] Entries =
    [
        0,
        0x00CF_9B00_0000_FFFF, // base 0, limit 4 GiB, present, DPL 0, code execute/read, accessed, D=1, G=1
        0x00CF_9300_0000_FFFF, // data read/write, accessed, B=1, G=1
        0x00AF_9B00_0000_FFFF, // code, L=1, D=0
        0x00CF_F300_0000_FFFF, // data, DPL 3
        0x00AF_FB00_0000_FFFF, // code, L=1, DPL 3
    ];

    /// <summary>Limit field of a GDTR for <see cref="Entries"/> alone.</summary>
    public static ushort Limit => (ushort)(Entries.Length * 8 - 1);

    /// <summary>A 64-bit available TSS descriptor (16 bytes) as two quadwords.</summary>
    public static (ulong Low, ulong High) TssDescriptor(ulong base_, uint limit)
    {
        var low = (limit & 0xFFFFUL)
            | ((base_ & 0xFF_FFFFUL) << 16)
            | (0x89UL << 40) // present, DPL 0, type 9 (available 64-bit TSS)
            | ((ulong)(limit >> 16 & 0xF) << 48)
            | ((base_ >> 24 & 0xFF) << 56);
        return (low, base_ >> 32);
    }

    /// <summary>The table as bytes.</summary>
    public static byte[] Bytes()
    {
        var bytes = new byte[Entries.Length * 8];
        for (var i = 0; i < Entries.Length; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), Entries[i]);
        }

        return bytes;
    }
}
