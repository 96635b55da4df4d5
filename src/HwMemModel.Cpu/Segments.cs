namespace HwMemModel.Cpu;

/// <summary>The six segment registers, in the order Iced's <c>Register.ES</c>..<c>Register.GS</c> uses.</summary>
public enum SegmentIndex
{
    /// <summary>ES.</summary>
    ES = 0,
    /// <summary>CS.</summary>
    CS = 1,
    /// <summary>SS.</summary>
    SS = 2,
    /// <summary>DS.</summary>
    DS = 3,
    /// <summary>FS.</summary>
    FS = 4,
    /// <summary>GS.</summary>
    GS = 5,
}

/// <summary>
/// A segment register with its hidden part (the descriptor cache): selector, base, limit (in bytes, granularity
/// already applied) and attributes in the layout of descriptor bits 40-47 (bits 0-7: type, S, DPL, P) and 52-55
/// (bits 12-15: AVL, L, D/B, G), as VMX and QEMU keep them.
/// </summary>
public struct SegmentRegister
{
    /// <summary>The visible selector.</summary>
    public ushort Selector;
    /// <summary>The base address.</summary>
    public ulong Base;
    /// <summary>The limit in bytes (the largest valid offset).</summary>
    public uint Limit;
    /// <summary>Attributes: type (0-3), S (4), DPL (5-6), P (7), AVL (12), L (13), D/B (14), G (15).</summary>
    public ushort Attributes;

    /// <summary>The descriptor privilege level.</summary>
    public readonly int Dpl => (Attributes >> 5) & 3;
    /// <summary>Present.</summary>
    public readonly bool Present => (Attributes & 0x80) != 0;
    /// <summary>D/B: 32-bit default operand size (code) or 32-bit stack pointer (stack).</summary>
    public readonly bool Big => (Attributes & 0x4000) != 0;
    /// <summary>L: a 64-bit code segment.</summary>
    public readonly bool Long => (Attributes & 0x2000) != 0;
    /// <summary>S=1 and type bit 3 set: a code segment.</summary>
    public readonly bool IsCode => (Attributes & 0x18) == 0x18;

    /// <summary>Attributes decoded from a raw 8-byte descriptor.</summary>
    public static ushort AttributesOf(ulong descriptor) => (ushort)(((descriptor >> 40) & 0xFF) | (((descriptor >> 52) & 0xF) << 12));

    /// <summary>Base of a raw 8-byte descriptor (bits 31:0 of the base).</summary>
    public static ulong BaseOf(ulong descriptor) => ((descriptor >> 16) & 0xFFFFFF) | ((descriptor >> 32) & 0xFF000000);

    /// <summary>Limit in bytes of a raw 8-byte descriptor, with granularity applied.</summary>
    public static uint LimitOf(ulong descriptor)
    {
        uint limit = (uint)((descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF0000));
        return (descriptor & (1UL << 55)) != 0 ? (limit << 12) | 0xFFF : limit;
    }

    /// <summary>A register loaded from a raw descriptor.</summary>
    public static SegmentRegister FromDescriptor(ushort selector, ulong descriptor)
        => new() { Selector = selector, Base = BaseOf(descriptor), Limit = LimitOf(descriptor), Attributes = AttributesOf(descriptor) };

    /// <inheritdoc />
    public override readonly string ToString() => $"sel=0x{Selector:x4} base=0x{Base:x} limit=0x{Limit:x} attr=0x{Attributes:x4}";
}

/// <summary>GDTR or IDTR: base and limit.</summary>
public struct DescriptorTableRegister
{
    /// <summary>Linear base address.</summary>
    public ulong Base;
    /// <summary>Limit in bytes.</summary>
    public ushort Limit;

    /// <inheritdoc />
    public override readonly string ToString() => $"base=0x{Base:x} limit=0x{Limit:x}";
}
