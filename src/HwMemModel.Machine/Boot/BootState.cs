namespace HwMemModel.Machine.Boot;

/// <summary>How the CPU starts executing the loaded image.</summary>
public enum BootMode
{
    /// <summary>
    /// The processor's reset state (<c>-bios</c>): real mode, CS selector 0xF000 with base 0xFFFF0000, IP 0xFFF0.
    /// The CPU model's reset supplies every register; <see cref="BootState"/> carries nothing more.
    /// </summary>
    RealModeReset,

    /// <summary>
    /// 32-bit protected mode with flat 4 GiB segments and paging off (<c>-kernel</c>, multiboot): the state QEMU's
    /// multiboot option ROM leaves when it jumps to the kernel.
    /// </summary>
    Protected32,
}

/// <summary>
/// A segment register as the loader leaves it, hidden part included: selector, base, limit in bytes (granularity
/// applied) and attributes in the layout of descriptor bits 40-47 and 52-55 (type 0-3, S 4, DPL 5-6, P 7, AVL 12,
/// L 13, D/B 14, G 15), the layout VMX, QEMU and the CPU model's <c>SegmentRegister</c> use.
/// </summary>
/// <param name="Selector">The visible selector.</param>
/// <param name="Base">The segment base.</param>
/// <param name="Limit">The largest valid offset, in bytes.</param>
/// <param name="Attributes">Access rights: type (0-3), S (4), DPL (5-6), P (7), AVL (12), L (13), D/B (14), G (15).</param>
public readonly record struct SegmentState(ushort Selector, ulong Base, uint Limit, ushort Attributes)
{
    /// <inheritdoc />
    public override string ToString() => $"sel=0x{Selector:x4} base=0x{Base:x} limit=0x{Limit:x} attr=0x{Attributes:x4}";
}

/// <summary>GDTR or IDTR as the loader leaves it.</summary>
/// <param name="Base">Linear base address of the table.</param>
/// <param name="Limit">Limit in bytes (size minus one).</param>
public readonly record struct DescriptorTableState(ulong Base, ushort Limit)
{
    /// <inheritdoc />
    public override string ToString() => $"base=0x{Base:x} limit=0x{Limit:x}";
}

/// <summary>
/// The CPU state an image loader hands to the CPU model. For <see cref="BootMode.RealModeReset"/> only
/// <see cref="Mode"/> and <see cref="Eip"/> matter (the CPU's reset state supplies the rest); for
/// <see cref="BootMode.Protected32"/> every member describes what QEMU 7.2 leaves when its multiboot option ROM
/// (pc-bios/optionrom/multiboot.S) jumps to a kernel.
/// </summary>
public sealed record BootState
{
    /// <summary>CS selector QEMU's multiboot option ROM loads: GDT entry 1, flat 4 GiB 32-bit code.</summary>
    public const ushort MultibootCodeSelector = 0x08;

    /// <summary>DS/ES/FS/GS/SS selector QEMU's multiboot option ROM loads: GDT entry 2, flat 4 GiB data.</summary>
    public const ushort MultibootDataSelector = 0x10;

    /// <summary>The value EAX holds when a multiboot kernel starts (multiboot 0.6.96 §3.2).</summary>
    public const uint MultibootBootloaderMagic = 0x2BAD_B002;

    /// <summary>
    /// Flat 4 GiB 32-bit code segment: execute/read, DPL 0, present, D=1, G=1 (descriptor 0x00CF9A000000FFFF). QEMU's
    /// TCG leaves the accessed bit of the code descriptor clear, so the type is 0xA.
    /// </summary>
    public static SegmentState FlatCode { get; } = new(MultibootCodeSelector, 0, 0xFFFF_FFFF, 0xC09A);

    /// <summary>
    /// Flat 4 GiB data segment: read/write, accessed, DPL 0, present, B=1, G=1 (descriptor 0x00CF92000000FFFF with the
    /// accessed bit the segment load sets, as LAR shows on QEMU).
    /// </summary>
    public static SegmentState FlatData { get; } = new(MultibootDataSelector, 0, 0xFFFF_FFFF, 0xC093);

    /// <summary>
    /// The state for <c>-bios</c>: the processor's reset state (real mode, CS selector 0xF000, CS base 0xFFFF0000,
    /// IP 0xFFF0). A20 is enabled: QEMU's CPU reset sets an all-ones A20 mask (a write to 0xFFFF:0010 does not wrap
    /// to 0), although port 0x92 reads 0x00.
    /// </summary>
    public static BootState Reset { get; } = new()
    {
        Mode = BootMode.RealModeReset,
        Eip = 0xFFF0,
        Eflags = 0x0000_0002,
        A20Enabled = true,
    };

    /// <summary>How the CPU starts.</summary>
    public required BootMode Mode { get; init; }

    /// <summary>The first instruction's offset in CS: 0xFFF0 after reset, the kernel's physical entry for multiboot.</summary>
    public required uint Eip { get; init; }

    /// <summary>EAX: 0x2BADB002 for multiboot.</summary>
    public uint Eax { get; init; }

    /// <summary>EBX: physical address of the multiboot information structure.</summary>
    public uint Ebx { get; init; }

    /// <summary>ECX: QEMU's option ROM jumps through ECX, so it holds the entry address.</summary>
    public uint Ecx { get; init; }

    /// <summary>
    /// EDX: undefined by the specification. QEMU leaves the fw_cfg data port (0x511) in DX and the high half of the
    /// mem_upper value it computed in bits 16-31; the model zeroes it.
    /// </summary>
    public uint Edx { get; init; }

    /// <summary>ESI: undefined by the specification; QEMU leaves 0.</summary>
    public uint Esi { get; init; }

    /// <summary>EDI: undefined by the specification; QEMU leaves an fw_cfg transfer pointer there; the model zeroes it.</summary>
    public uint Edi { get; init; }

    /// <summary>EBP: undefined by the specification; QEMU leaves 0.</summary>
    public uint Ebp { get; init; }

    /// <summary>
    /// ESP: undefined by the specification (the kernel must set up its own stack). QEMU leaves SeaBIOS's option-ROM
    /// stack, 0x6F08; the model uses the same value so that a kernel that pushes before loading ESP behaves alike.
    /// </summary>
    public uint Esp { get; init; }

    /// <summary>EFLAGS: 0x00000002 after reset; 0x00000006 (PF set, IF and DF clear, VM clear) for multiboot on QEMU.</summary>
    public uint Eflags { get; init; }

    /// <summary>CR0 for multiboot: PE and ET (0x11), paging off. Zero means "the CPU's reset value".</summary>
    public uint Cr0 { get; init; }

    /// <summary>CS with its hidden part, or null for the reset state.</summary>
    public SegmentState? Cs { get; init; }

    /// <summary>DS with its hidden part, or null for the reset state.</summary>
    public SegmentState? Ds { get; init; }

    /// <summary>ES with its hidden part, or null for the reset state.</summary>
    public SegmentState? Es { get; init; }

    /// <summary>FS with its hidden part, or null for the reset state.</summary>
    public SegmentState? Fs { get; init; }

    /// <summary>GS with its hidden part, or null for the reset state.</summary>
    public SegmentState? Gs { get; init; }

    /// <summary>SS with its hidden part, or null for the reset state.</summary>
    public SegmentState? Ss { get; init; }

    /// <summary>
    /// GDTR, or null for the reset state. For multiboot QEMU leaves the option ROM's five-entry GDT (limit 0x27) at
    /// 0xC02B8 in the option-ROM area; the specification calls the GDT undefined and the kernel must load its own.
    /// </summary>
    public DescriptorTableState? Gdtr { get; init; }

    /// <summary>IDTR, or null for the reset state. For multiboot QEMU leaves the real-mode IVT (base 0, limit 0x3FF).</summary>
    public DescriptorTableState? Idtr { get; init; }

    /// <summary>Whether the A20 line is enabled (multiboot 0.6.96 §3.2 requires it for the kernel).</summary>
    public bool A20Enabled { get; init; }

    /// <summary>
    /// The multiboot hand-off QEMU 7.2 performs: protected mode without paging (CR0 = 0x11), CS = 0x08 and the data
    /// segments = 0x10 (flat 4 GiB), EAX = 0x2BADB002, EBX = the information structure, ECX = EIP = the entry,
    /// ESP = 0x6F08, EFLAGS = 0x6 (IF clear), A20 enabled.
    /// </summary>
    /// <param name="entry">Physical entry address.</param>
    /// <param name="infoAddress">Physical address of the multiboot information structure.</param>
    public static BootState Multiboot(uint entry, uint infoAddress) => new()
    {
        Mode = BootMode.Protected32,
        Eip = entry,
        Eax = MultibootBootloaderMagic,
        Ebx = infoAddress,
        Ecx = entry,
        Esp = 0x6F08,
        Eflags = 0x0000_0006,
        Cr0 = 0x11,
        Cs = FlatCode,
        Ds = FlatData,
        Es = FlatData,
        Fs = FlatData,
        Gs = FlatData,
        Ss = FlatData,
        Gdtr = new DescriptorTableState(0xC02B8, 0x27),
        Idtr = new DescriptorTableState(0, 0x3FF),
        A20Enabled = true,
    };
}
