using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Building;

/// <summary>
/// Layout of a 64 KiB BIOS image. The ROM ends at 4 GiB and is aliased at 0xF0000-0xFFFFF; all code runs
/// from the alias so that the identity map of the first GiB covers it in long mode.
/// <code>
/// 0xF0000  64-bit code (entry64)            0xFC000  extra sections (data, code copied to RAM)
/// 0xF8000  32-bit code (entry32)            0xFF000  16-bit code and the GDT
/// 0xFFFF0  reset vector: jmp far F000:F000
/// </code>
/// RAM use: 0x500 holds EDX at reset, 0x1000-0x3FFF the identity page tables, the stack ends at 0x80000.
/// </summary>
internal static class BiosRom
{
    public const ulong Code64 = 0xF_0000;
    public const ulong Code32 = 0xF_8000;
    public const ulong ExtraStart = 0xF_C000;
    public const ulong Code16 = 0xF_F000;
    public const ulong ResetVector = 0xF_FFF0;
    public const uint ResetEdx = 0x500;
    public const uint Pml4 = 0x1000;
    public const uint StackTop = 0x8_0000;

    /// <summary>Offset in segment F000 of the optional real-mode body (linear <see cref="RealModeLoad"/>).</summary>
    public const ushort RealModeOffset = 0xC000;

    /// <summary>Where the real-mode body is stored: the start of the extra-section area, 0xFC000.</summary>
    public const ulong RealModeLoad = ExtraStart;

    /// <summary>SP (with SS = 0) while the real-mode body runs.</summary>
    public const ushort RealModeStackTop = 0x7000;

    /// <summary>
    /// Builds a BIOS image. <paramref name="body32"/> runs in 32-bit protected mode with flat segments, a stack
    /// and COM1 programmed, before the switch to long mode; <paramref name="body64"/> runs in long mode with the
    /// first GiB identity-mapped and must end with <see cref="Asm.Exit"/>.
    /// </summary>
    public static byte[] Build(Action<Asm>? body32, Action<Asm> body64, params SectionSpec[] extra) =>
        Build(null, body32, body64, extra);

    /// <summary>
    /// Like <see cref="Build(Action{Asm}?, Action{Asm}, SectionSpec[])"/>, and when <paramref name="body16"/> is
    /// given, the reset code first sets SS:SP = 0:<see cref="RealModeStackTop"/> and far-calls F000:<see
    /// cref="RealModeOffset"/>, where <paramref name="body16"/> is assembled (16-bit, real mode, stored at
    /// <see cref="RealModeLoad"/>; its label addresses are offsets in segment F000). It must end with RETF and
    /// may use RAM freely apart from 0x500 and its stack.
    /// </summary>
    public static byte[] Build(Action<Asm>? body16, Action<Asm>? body32, Action<Asm> body64, params SectionSpec[] extra)
    {
        var sections = new List<SectionSpec>
        {
            new("code64", 64, Code64, asm => Emit64(asm, body64)),
            new("code32", 32, Code32, asm => Emit32(asm, body32)),
            new("code16", 16, Code16, asm => Emit16(asm, body16 is not null)),
            new("reset", 16, ResetVector, EmitReset),
        };
        if (body16 is not null)
        {
            sections.Add(new("real16", 16, RealModeOffset, body16, RealModeLoad));
        }

        sections.AddRange(extra);
        var link = Linker.Link([.. sections]);
        var rom = new byte[Platform.BiosSize];
        link.CopyTo(rom, Platform.BiosAlias);
        return rom;
    }

    private static void EmitReset(Asm asm)
    {
        // CS base is 0xFFFF0000 here; the far jump reloads CS = 0xF000 (base 0xF0000, the alias).
        asm.A.jmp(0xF000, (uint)(Code16 - Platform.BiosAlias));
        asm.A.db(new byte[11]);
    }

    private static void Emit16(Asm asm, bool realModeBody)
    {
        var a = asm.A;
        var gdt = asm.NewLabel("gdt");
        var gdtr = asm.NewLabel("gdtr");
        a.cli();
        a.cld();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(__dword_ptr[(ulong)ResetEdx], edx);
        if (realModeBody)
        {
            a.mov(ss, ax);
            a.mov(sp, RealModeStackTop);
            a.call((ushort)(Platform.BiosAlias >> 4), RealModeOffset);
            a.cli();
            a.cld();
            a.xor(ax, ax);
            a.mov(ds, ax);
        }

        // o32 lgdt cs:[gdtr]: the 32-bit operand size loads all 32 bits of the base.
        var lgdt = Iced.Intel.Instruction.Create(
            Iced.Intel.Code.Lgdt_m1632,
            new Iced.Intel.MemoryOperand(Iced.Intel.Register.None, Iced.Intel.Register.None, 1, (long)(asm.AddressOf(gdtr) - Platform.BiosAlias), 2));
        lgdt.SegmentPrefix = Iced.Intel.Register.CS;
        a.AddInstruction(lgdt);
        a.mov(eax, cr0);
        a.or(eax, LongMode.Cr0Pe);
        a.mov(cr0, eax);

        // jmp dword 0x08:entry32 (66 EA imm32 imm16).
        a.db(0x66, 0xEA);
        a.dd(checked((uint)asm.Sym("entry32")));
        a.dw(Gdt.Code32);

        asm.Bind(ref gdt);
        foreach (var entry in Gdt.Entries)
        {
            a.dq(entry);
        }

        asm.Bind(ref gdtr);
        a.dw(Gdt.Limit);
        a.dd(checked((uint)asm.AddressOf(gdt)));
    }

    private static void Emit32(Asm asm, Action<Asm>? body32)
    {
        var a = asm.A;
        asm.Global("entry32");
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(esp, StackTop);
        Runtime.EmitSerialInit(asm);
        var main = asm.NewLabel("main32");
        a.jmp(main);
        Runtime.Emit(asm);
        asm.Bind(ref main);
        body32?.Invoke(asm);
        LongMode.EmitEnter(asm, Pml4, asm.Sym("entry64"));
    }

    private static void Emit64(Asm asm, Action<Asm> body64)
    {
        var a = asm.A;
        asm.Global("entry64");
        LongMode.EmitSegments64(asm, StackTop);
        var main = asm.NewLabel("main64");
        a.jmp(main);
        Runtime.Emit(asm);
        asm.Bind(ref main);
        body64(asm);
    }
}
