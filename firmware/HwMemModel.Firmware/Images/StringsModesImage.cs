using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>strings-modes</c> BIOS image: instructions in each CPU mode the boot passes through.
/// <para>
/// Real mode (called from the reset code): 16-bit arithmetic, PUSHA/POPA, ENTER/LEAVE, LOOP/LOOPE/LOOPNE (CX and
/// ECX), JCXZ, XLAT (with DS and ES bases), far CALL/RETF (direct and through memory), INT n, INT3, INTO and #DE
/// through an IVT in RAM with IRET, string moves with segment bases and 32-bit addressing. Results are stored in
/// RAM and printed from 32-bit code.
/// </para>
/// <para>
/// 32-bit protected mode: a GDT in RAM with non-flat data segments (base 0x100000 with a byte-granular limit,
/// expand-down, read-only, a limited stack segment, not-present and execute-only descriptors) and an IDT that
/// reports the vector, the error code and the registers at the fault. Then REP string instructions with DF=0/1,
/// REPE/REPNE termination, counts 0 and 1, and 16-bit address size (0x67) with SI/DI/CX wrapping in a segment based
/// at 0x200000.
/// </para>
/// <para>
/// Long mode: REP MOVSQ/STOSQ, string instructions across a page boundary whose two pages map to frames in reverse
/// order, and #PF in the middle of REP MOVSB/STOSQ and of a page-straddling MOVSQ, with RCX/RSI/RDI at the fault.
/// </para>
/// </summary>
internal sealed class StringsModesImage
{
    public const string Description =
        "BIOS: real mode (16-bit ALU, PUSHA/POPA, ENTER/LEAVE, LOOPcc, XLAT, far CALL/RETF, INT n/INT3/INTO/#DE via an IVT with IRET), 32-bit protected mode (segment bases, limits, expand-down, read-only, #GP/#SS/#NP with error codes, registers at the fault), REP string instructions (DF=0/1, REPE/REPNE, counts 0/1, 16-bit address size wrapping), and long-mode REP MOVSQ/STOSQ across reversed pages and #PF in the middle of REP; exits 0";

    // Real mode.
    private const ushort Results16 = 0x8000;
    private const ushort XlatTable = 0x8800;

    // 32-bit protected mode.
    private const uint GdtRam = 0x9000;
    private const uint GdtrRam = 0x9100;
    private const uint IdtrRam = 0x9110;
    private const uint IdtRam = 0x9800;
    private const uint Vars = 0xA000;
    private const uint RecoverEip = Vars;
    private const uint RecoverEsp = Vars + 4;
    private const uint VVector = Vars + 8;
    private const uint VError = Vars + 12;
    private const uint VEip = Vars + 16;
    private const uint VRegs = Vars + 0x20; // PUSHAD image: EDI ESI EBP ESP EBX EDX ECX EAX
    private const uint VFaultRef = Vars + 0x40;
    private const uint SFlags = Vars + 0x50;
    private const uint SEsi = Vars + 0x54;
    private const uint SEdi = Vars + 0x58;
    private const uint SEcx = Vars + 0x5C;
    private const uint SEax = Vars + 0x60;

    private const uint LimitedBase = 0x10_0000;
    private const uint Src = 0x11_0000;
    private const uint Dst = 0x11_1000;
    private const uint Seg16Base = 0x20_0000;

    private const ushort SelLimited = 0x30;
    private const ushort SelExpandDown = 0x38;
    private const ushort SelBase2M = 0x40;
    private const ushort SelStack = 0x48;
    private const ushort SelNotPresent = 0x50;
    private const ushort SelReadOnly = 0x58;
    private const ushort SelExecOnly = 0x60;
    private const int GdtEntries = 13;

    // Long mode.
    private const ulong Pdpt = 0x30_0000;
    private const ulong Pd = 0x30_1000;
    private const ulong Pt = 0x30_2000;
    private const ulong FrameA = 0x30_3000;
    private const ulong FrameB = 0x30_4000;
    private const ulong Va = 0x80_0000_0000;
    private const uint LmVars = 0xB000;
    private const uint LmRcx = LmVars;
    private const uint LmRsi = LmVars + 8;
    private const uint LmRdi = LmVars + 16;
    private const uint LmErr = LmVars + 24;
    private const uint LmCr2 = LmVars + 32;
    private const uint LmRip = LmVars + 40;
    private const uint LmFaulted = LmVars + 48;
    private const uint LmFlags = LmVars + 56;

    private static readonly string[] VectorNames =
    [
        "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF", "15",
        "MF", "AC", "MC", "XM", "VE", "CP", "22", "23", "24", "25", "26", "27", "HV", "VC", "SX", "31",
    ];

    private readonly Asm _asm;
    private readonly Assembler _a;
    private readonly List<RealLine> _realLines = [];
    private int _realOffset;

    private StringsModesImage(Asm asm)
    {
        _asm = asm;
        _a = asm.A;
    }

    private sealed record RealLine(string Title, List<(string Name, int Offset, int Size)> Values);

    public static byte[] Build()
    {
        // A dry run of the real-mode body gives the list of values it stores, which the 32-bit code prints.
        var dry = new StringsModesImage(new Asm(16, BiosRom.RealModeOffset, new Dictionary<string, ulong>(), null));
        dry.Real16();
        var realLines = dry._realLines;
        return BiosRom.Build(
            asm => new StringsModesImage(asm).Real16(),
            asm => new StringsModesImage(asm).Body32(realLines),
            asm => new StringsModesImage(asm).Body64());
    }

    // ================================================================ real mode

    private void Line(string title) => _realLines.Add(new RealLine(title, []));

    private ulong Slot(string name, int size)
    {
        var offset = _realOffset;
        _realOffset += size;
        if (_realOffset > 0x700)
        {
            throw new InvalidOperationException("real-mode result area full");
        }

        _realLines[^1].Values.Add((name, offset, size));
        return (ulong)(Results16 + offset);
    }

    private void Save(string name, AssemblerRegister16 reg) => _a.mov(__word_ptr[Slot(name, 2)], reg);

    private void Save(string name, AssemblerRegister32 reg) => _a.mov(__dword_ptr[Slot(name, 4)], reg);

    private void SaveFlags(string name = "f")
    {
        _a.pushf();
        _a.pop(__word_ptr[Slot(name, 2)]);
    }

    private void SaveMem(string name, AssemblerMemoryOperand word)
    {
        _a.push(word);
        _a.pop(__word_ptr[Slot(name, 2)]);
    }

    private void Real16()
    {
        var a = _a;
        var asm = _asm;
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.cld();

        Line("real: add ax=0x7fff,1:");
        a.mov(ax, 0x7FFF);
        a.add(ax, 1);
        SaveFlags();
        Save("ax", ax);

        Line("real: sub ax=0,1:");
        a.xor(ax, ax);
        a.sub(ax, 1);
        SaveFlags();
        Save("ax", ax);

        Line("real: mul ax=0x1234,bx=0x5678:");
        a.mov(ax, 0x1234);
        a.mov(bx, 0x5678);
        a.mul(bx);
        SaveFlags();
        Save("ax", ax);
        Save("dx", dx);

        Line("real: div dx:ax=0x12:0x3456,bx=0x1234:");
        a.mov(dx, 0x12);
        a.mov(ax, 0x3456);
        a.mov(bx, 0x1234);
        a.div(bx);
        Save("ax", ax);
        Save("dx", dx);

        Line("real: imul al=-5,bl=7:");
        a.mov(ax, 0xFFFB);
        a.mov(bl, 7);
        a.imul(bl);
        SaveFlags();
        Save("ax", ax);

        Line("real: o32 add eax=0x7fffffff,ebx=1:");
        a.mov(eax, 0x7FFF_FFFF);
        a.mov(ebx, 1);
        a.add(eax, ebx);
        SaveFlags();
        Save("eax", eax);

        Line("real: shl ax=0x8001,cl=17 / rcr ax,cl=9:");
        a.mov(ax, 0x8001);
        a.mov(cl, 17);
        a.shl(ax, cl);
        SaveFlags();
        Save("shl", ax);
        a.mov(ax, 0x8001);
        a.mov(cl, 9);
        a.stc();
        a.rcr(ax, cl);
        SaveFlags("f2");
        Save("rcr", ax);

        // PUSHA / POPA.
        Line("real: pusha image (di si bp sp bx dx cx ax):");
        a.mov(ax, 0x1111);
        a.mov(cx, 0x2222);
        a.mov(dx, 0x3333);
        a.mov(bx, 0x4444);
        a.mov(bp, 0x5555);
        a.mov(si, 0x6666);
        a.mov(di, 0x7777);
        Save("sp", sp);
        a.pusha();
        a.mov(bp, sp);
        foreach (var (name, offset) in new[] { ("di", 0), ("si", 2), ("bp", 4), ("sp", 6), ("bx", 8), ("dx", 10), ("cx", 12), ("ax", 14) })
        {
            SaveMem(name, __word_ptr[bp + offset]);
        }

        Line("real: popa:");
        a.mov(__word_ptr[bp + 6], 0xDEAD); // POPA skips the SP slot
        foreach (var reg in new[] { ax, cx, dx, bx, si, di })
        {
            a.xor(reg, reg);
        }

        a.popa();
        Save("ax", ax);
        Save("cx", cx);
        Save("dx", dx);
        Save("bx", bx);
        Save("bp", bp);
        Save("si", si);
        Save("di", di);
        Save("sp", sp);

        // ENTER / LEAVE.
        Line("real: enter 8,0 then leave:");
        a.mov(bp, 0x1234);
        a.enter(8, 0);
        Save("bp", bp);
        Save("sp", sp);
        SaveMem("[bp]", __word_ptr[bp]);
        a.leave();
        Save("bp'", bp);
        Save("sp'", sp);

        Line("real: enter 4,3 then leave:");
        a.mov(__word_ptr[0x6EFE], 0xBEEF);
        a.mov(__word_ptr[0x6EFC], 0xCAFE);
        a.mov(bp, 0x6F00);
        a.enter(4, 3);
        Save("bp", bp);
        Save("sp", sp);
        SaveMem("[bp]", __word_ptr[bp]);
        SaveMem("[bp-2]", __word_ptr[bp - 2]);
        SaveMem("[bp-4]", __word_ptr[bp - 4]);
        SaveMem("[bp-6]", __word_ptr[bp - 6]);
        a.leave();
        Save("bp'", bp);
        Save("sp'", sp);

        // LOOPs.
        Line("real: loop cx=5:");
        a.mov(cx, 5);
        a.xor(ax, ax);
        var l1 = asm.Here();
        a.inc(ax);
        a.loop(l1);
        Save("ax", ax);
        Save("cx", cx);

        Line("real: loope cx=10 while ax==1:");
        a.mov(cx, 10);
        a.xor(ax, ax);
        var l2 = asm.Here();
        a.inc(ax);
        a.cmp(ax, 1);
        a.loope(l2);
        SaveFlags();
        Save("ax", ax);
        Save("cx", cx);

        Line("real: loopne cx=10 until ax==4:");
        a.mov(cx, 10);
        a.xor(ax, ax);
        var l3 = asm.Here();
        a.inc(ax);
        a.cmp(ax, 4);
        a.loopne(l3);
        SaveFlags();
        Save("ax", ax);
        Save("cx", cx);

        Line("real: loop cx=0 (65536 times):");
        a.xor(cx, cx);
        a.xor(eax, eax);
        var l4 = asm.Here();
        a.inc(eax);
        a.loop(l4);
        Save("eax", eax);
        Save("cx", cx);

        Line("real: a32 loop ecx=0x10003:");
        a.mov(ecx, 0x1_0003);
        a.xor(eax, eax);
        var l5 = asm.Here();
        a.inc(eax);
        a.AddInstruction(Instruction.CreateBranch(Code.Loop_rel8_16_ECX, l5.Id));
        Save("eax", eax);
        Save("ecx", ecx);

        Line("real: jcxz with cx=0 / cx=1:");
        var notTaken = asm.NewLabel();
        var taken = asm.NewLabel();
        var jDone = asm.NewLabel();
        a.xor(cx, cx);
        a.mov(ax, 1);
        a.jcxz(taken);
        a.mov(ax, 0);
        asm.Bind(ref taken);
        Save("taken", ax);
        a.mov(cx, 1);
        a.mov(ax, 0);
        a.jcxz(notTaken);
        a.mov(ax, 1);
        a.jmp(jDone);
        asm.Bind(ref notTaken);
        asm.Bind(ref jDone);
        Save("fallthrough", ax);

        // XLAT.
        Line("real: xlat (ds base 0x800, bx=0x8000, al=0x25; es: al=0x26):");
        a.xor(bx, bx);
        var fill = asm.Here();
        a.imul(ax, bx, 3);
        a.add(ax, 7);
        a.mov(__byte_ptr[bx + XlatTable], al);
        a.inc(bx);
        a.cmp(bx, 256);
        a.jb(fill);
        a.mov(ax, 0x0080);
        a.mov(ds, ax);
        a.mov(bx, 0x8000);
        a.mov(ax, 0x1125);
        a.xlatb();
        a.xor(cx, cx);
        a.mov(ds, cx);
        Save("ax", ax);
        a.mov(cx, 0x0080);
        a.mov(es, cx);
        a.mov(ax, 0x2226);
        a.AddInstruction(Instruction.Create(Code.Xlat_m8, new MemoryOperand(Register.BX, Register.AL, 1, 0, 0, false, Register.ES)));
        a.xor(cx, cx);
        a.mov(es, cx);
        Save("es:ax", ax);

        // Far calls.
        var farProc = asm.NewLabel("far_proc");
        var farProc2 = asm.NewLabel("far_proc2");
        Line("real: far call F000:far_proc with one word parameter, retf 2:");
        Save("sp", sp);
        a.push(0x4242);
        a.call(0xF000, (uint)asm.AddressOf(farProc));
        var afterFar = asm.Here();
        Save("sp'", sp);
        a.mov(ax, __word_ptr[Slot("ret ip-after", 2)]);
        a.sub(ax, (ushort)asm.AddressOf(afterFar));
        a.mov(__word_ptr[(ulong)(Results16 + _realOffset - 2)], ax);

        Line("real: far call through memory (m16:16):");
        a.mov(__word_ptr[0x8F00], (ushort)asm.AddressOf(farProc2));
        a.mov(__word_ptr[0x8F02], 0xF000);
        a.xor(ax, ax);
        a.AddInstruction(Instruction.Create(Code.Call_m1616, new MemoryOperand(Register.None, 0x8F00, 2)));
        Save("ax", ax);
        Save("sp", sp);

        // Interrupts through the IVT.
        var int40 = asm.NewLabel("int40");
        var int3h = asm.NewLabel("int3");
        var int4 = asm.NewLabel("into");
        var de = asm.NewLabel("de");
        SetVector(0x40, int40);
        SetVector(3, int3h);
        SetVector(4, int4);
        SetVector(0, de);
        a.mov(__word_ptr[0x8F10], 0);

        Line("real: int 0x40 with flags 0x0cd7; handler sets CF, clears ZF in the saved flags:");
        a.mov(ax, 0x0CD7);
        a.push(ax);
        a.popf();
        a.@int(0x40);
        var afterInt = asm.Here();
        SaveFlags("f after iret");
        a.cld();
        a.mov(ax, __word_ptr[Slot("pushed ip-after", 2)]);
        a.sub(ax, (ushort)asm.AddressOf(afterInt));
        a.mov(__word_ptr[(ulong)(Results16 + _realOffset - 2)], ax);

        Line("real: int3, into with OF=0 and OF=1:");
        a.int3();
        a.push(0x0002);
        a.popf();
        a.into();
        a.push(0x0802);
        a.popf();
        a.into();
        SaveFlags();
        SaveMem("handler calls (int3=1, into=0x10)", __word_ptr[0x8F10]);

        Line("real: div bl=0 and ax=0x1234/bl=2 raise #DE; handler skips the 2-byte DIV:");
        a.mov(ax, 0x1234);
        a.mov(bl, 0);
        var div1 = asm.Here();
        a.div(bl);
        Save("ax", ax);
        a.mov(ax, __word_ptr[0x8F12]);
        a.sub(ax, (ushort)asm.AddressOf(div1));
        Save("ip-div", ax);
        a.mov(ax, 0x1234);
        a.mov(bl, 2);
        var div2 = asm.Here();
        a.div(bl);
        Save("ax'", ax);
        a.mov(ax, __word_ptr[0x8F12]);
        a.sub(ax, (ushort)asm.AddressOf(div2));
        Save("ip-div'", ax);

        // Strings with segment bases.
        Line("real: std; rep movsw ds:si=0900:0016 -> es:di=0a00:0026, cx=4:");
        a.xor(bx, bx);
        var fill2 = asm.Here();
        a.lea(ax, __[bx + 0x100]);
        a.mov(__word_ptr[bx + 0x9000], ax);
        a.mov(__word_ptr[bx + 0xA000], 0);
        a.add(bx, 2);
        a.cmp(bx, 0x40);
        a.jb(fill2);
        a.mov(ax, 0x0900);
        a.mov(ds, ax);
        a.mov(ax, 0x0A00);
        a.mov(es, ax);
        a.mov(si, 0x16);
        a.mov(di, 0x26);
        a.mov(cx, 4);
        a.std();
        a.rep.movsw();
        a.cld();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(es, ax);
        Save("si", si);
        Save("di", di);
        Save("cx", cx);
        SaveMem("[0xa020]", __word_ptr[0xA020]);
        SaveMem("[0xa026]", __word_ptr[0xA026]);
        SaveMem("[0xa028]", __word_ptr[0xA028]);

        Line("real: a32 mov eax,[ebx+ecx*4] ebx=0x8800 ecx=0x10:");
        a.mov(ebx, XlatTable);
        a.mov(ecx, 0x10);
        a.mov(eax, __dword_ptr[ebx + ecx * 4]);
        Save("eax", eax);

        a.retf();

        asm.Later(() =>
        {
            asm.Bind(ref farProc);
            a.push(bp);
            a.mov(bp, sp);
            a.mov(ax, __word_ptr[bp + 2]);
            a.mov(__word_ptr[(ulong)(Results16 + SlotOffset("real: far call F000:far_proc with one word parameter, retf 2:", "ret ip-after"))], ax);
            a.pop(bp);
            a.retf(2);

            asm.Bind(ref farProc2);
            a.mov(ax, cs);
            a.retf();

            asm.Bind(ref int40);
            a.push(bp);
            a.mov(bp, sp);
            a.mov(ax, __word_ptr[bp + 2]);
            a.mov(__word_ptr[(ulong)(Results16 + SlotOffset("real: int 0x40 with flags 0x0cd7; handler sets CF, clears ZF in the saved flags:", "pushed ip-after"))], ax);
            a.or(__word_ptr[bp + 6], 1);
            a.and(__word_ptr[bp + 6], 0xFFBF);
            a.pop(bp);
            a.iret();

            asm.Bind(ref int3h);
            a.inc(__word_ptr[0x8F10]);
            a.iret();

            asm.Bind(ref int4);
            a.add(__word_ptr[0x8F10], 0x10);
            a.iret();

            asm.Bind(ref de);
            a.push(bp);
            a.mov(bp, sp);
            a.push(ax);
            a.mov(ax, __word_ptr[bp + 2]);
            a.mov(__word_ptr[0x8F12], ax);
            a.pop(ax);
            a.add(__word_ptr[bp + 2], 2);
            a.pop(bp);
            a.iret();
        });
    }

    private int SlotOffset(string title, string name) =>
        _realLines.First(l => l.Title == title).Values.First(v => v.Name == name).Offset;

    private void SetVector(int vector, Label handler)
    {
        _a.mov(__word_ptr[(ulong)(vector * 4)], (ushort)_asm.AddressOf(handler));
        _a.mov(__word_ptr[(ulong)(vector * 4 + 2)], 0xF000);
    }

    // ================================================================ 32-bit protected mode

    private static ulong Descriptor(uint base_, uint limit, byte access, byte flags) =>
        (limit & 0xFFFFUL)
        | ((base_ & 0xFF_FFFFUL) << 16)
        | ((ulong)access << 40)
        | ((ulong)(limit >> 16 & 0xF) << 48)
        | ((ulong)(flags & 0xF) << 52)
        | ((ulong)(base_ >> 24) << 56);

    private void Body32(List<RealLine> realLines)
    {
        var a = _a;
        var asm = _asm;

        // Table: (string, offset | size << 16 | last-of-line << 24) pairs, ended by a zero string.
        var realTable = asm.NewLabel("real_results");
        var next = asm.NewLabel();
        a.mov(ebx, checked((uint)asm.AddressOf(realTable)));
        var entry = asm.Here();
        a.mov(esi, __dword_ptr[ebx]);
        a.test(esi, esi);
        a.jz(next);
        a.call(asm.Rt!.Puts);
        a.mov(edx, __dword_ptr[ebx + 4]);
        a.movzx(ecx, dx);
        a.mov(eax, __dword_ptr[ecx + Results16]);
        a.bt(edx, 18);
        a.jc(asm.Sym("real_results_dword"));
        a.movzx(eax, ax);
        asm.Global("real_results_dword");
        asm.PrintHex(eax);
        a.bt(edx, 24);
        a.jnc(asm.Sym("real_results_same_line"));
        asm.Print("\n");
        asm.Global("real_results_same_line");
        a.add(ebx, 8);
        a.jmp(entry);
        asm.Bind(ref next);
        asm.Later(() =>
        {
            asm.Bind(ref realTable);
            foreach (var line in realLines)
            {
                for (var i = 0; i < line.Values.Count; i++)
                {
                    var (name, offset, size) = line.Values[i];
                    a.dd(checked((uint)asm.AddressOf(asm.Str((i == 0 ? line.Title : "") + $" {name}="))));
                    a.dd((uint)offset | (uint)size << 16 | (i == line.Values.Count - 1 ? 1u << 24 : 0));
                }
            }

            a.dd(0);
            a.dd(0);
        });

        SetUpGdtAndIdt32();
        SegmentTests();
        StringTests32();
    }

    private void SetUpGdtAndIdt32()
    {
        var a = _a;
        var asm = _asm;
        var entries = new List<ulong>(Gdt.Entries)
        {
            Descriptor(LimitedBase, 0xFFF, 0x93, 0x4),      // 0x30 data, base 1 MiB, limit 0xFFF bytes
            Descriptor(LimitedBase, 0xFFF, 0x97, 0x4),      // 0x38 expand-down data, B=1: offsets 0x1000..0xFFFFFFFF
            Descriptor(Seg16Base, 0xF_FFFF, 0x93, 0xC),     // 0x40 data, base 2 MiB, 4 GiB limit
            Descriptor(0, 0x7_FFFF, 0x93, 0x4),             // 0x48 stack/data, limit 0x7FFFF bytes
            Descriptor(0, 0xF_FFFF, 0x13, 0xC),             // 0x50 not present
            Descriptor(LimitedBase, 0xFFF, 0x91, 0x4),      // 0x58 read-only data
            Descriptor(0, 0xF_FFFF, 0x99, 0xC),             // 0x60 execute-only code
        };
        if (entries.Count != GdtEntries)
        {
            throw new InvalidOperationException("GDT layout");
        }

        for (var i = 0; i < entries.Count; i++)
        {
            a.mov(__dword_ptr[(ulong)(GdtRam + i * 8)], (uint)entries[i]);
            a.mov(__dword_ptr[(ulong)(GdtRam + i * 8 + 4)], (uint)(entries[i] >> 32));
        }

        a.mov(__word_ptr[GdtrRam], (ushort)(entries.Count * 8 - 1));
        a.mov(__dword_ptr[GdtrRam + 2], GdtRam);
        a.lgdt(__[GdtrRam]);

        // IDT: 32 interrupt gates to stubs that push (error code,) vector and jump to the common handler.
        var stubs = Enumerable.Range(0, 32).Select(_ => asm.NewLabel()).ToArray();
        var common = asm.NewLabel("fault32");
        for (var v = 0; v < 32; v++)
        {
            a.mov(eax, checked((uint)asm.AddressOf(stubs[v])));
            a.mov(__word_ptr[(ulong)(IdtRam + v * 8)], ax);
            a.mov(__word_ptr[(ulong)(IdtRam + v * 8 + 2)], Gdt.Code32);
            a.mov(__word_ptr[(ulong)(IdtRam + v * 8 + 4)], 0x8E00);
            a.shr(eax, 16);
            a.mov(__word_ptr[(ulong)(IdtRam + v * 8 + 6)], ax);
        }

        a.mov(__word_ptr[IdtrRam], (ushort)(32 * 8 - 1));
        a.mov(__dword_ptr[IdtrRam + 2], IdtRam);
        a.lidt(__[IdtrRam]);

        asm.Later(() =>
        {
            for (var v = 0; v < 32; v++)
            {
                var stub = stubs[v];
                asm.Bind(ref stub);
                if ((Kernel64.ErrorCodeVectors >> v & 1) == 0)
                {
                    a.push(0);
                }

                a.push(v);
                a.jmp(common);
            }

            // Stack: vector, error, EIP, CS, EFLAGS. Save the registers, the vector and error, then resume.
            asm.Bind(ref common);
            a.pushad();
            a.mov(ax, Gdt.Data);
            a.mov(ds, ax);
            a.mov(es, ax);
            a.cld();
            for (var i = 0; i < 8; i++)
            {
                a.mov(eax, __dword_ptr[esp + i * 4]);
                a.mov(__dword_ptr[(ulong)(VRegs + i * 4)], eax);
            }

            a.mov(eax, __dword_ptr[esp + 32]);
            a.mov(__dword_ptr[VVector], eax);
            a.mov(eax, __dword_ptr[esp + 36]);
            a.mov(__dword_ptr[VError], eax);
            a.mov(eax, __dword_ptr[esp + 40]);
            a.mov(__dword_ptr[VEip], eax);
            a.mov(ax, Gdt.Data);
            a.mov(ss, ax);
            a.mov(fs, ax);
            a.mov(gs, ax);
            a.mov(esp, __dword_ptr[RecoverEsp]);
            a.jmp(__dword_ptr[RecoverEip]);
        });
    }

    /// <summary>Prints the title, runs <paramref name="access"/> with a recovery point, then " ok" (and
    /// <paramref name="success"/>) or the exception.</summary>
    private void Probe32(string title, Action access, Action? success = null, Action? afterFault = null)
    {
        var a = _a;
        var asm = _asm;
        var recover = asm.NewLabel();
        var probe = asm.NewLabel();
        var done = asm.NewLabel();
        asm.Print(title + ":");
        a.mov(__dword_ptr[RecoverEip], checked((uint)asm.AddressOf(recover)));
        a.mov(__dword_ptr[RecoverEsp], esp);
        a.mov(__dword_ptr[VFaultRef], checked((uint)asm.AddressOf(probe)));
        asm.Bind(ref probe);
        access();
        RestoreSegments32();
        asm.Print(" ok");
        success?.Invoke();
        a.jmp(done);
        asm.Bind(ref recover);
        RestoreSegments32();
        a.call(asm.Sym("print_fault32"));
        afterFault?.Invoke();
        asm.Bind(ref done);
        asm.Print("\n");
    }

    private void RestoreSegments32()
    {
        var a = _a;
        a.push(eax);
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(ss, ax);
        a.pop(eax);
        a.cld();
    }

    private void EmitPrintFault32()
    {
        var a = _a;
        var asm = _asm;
        var names = asm.NewLabel();
        var noError = asm.NewLabel();
        asm.Global("print_fault32");
        asm.Print(" #");
        a.mov(eax, __dword_ptr[VVector]);
        a.push(esi);
        a.lea(esi, __[eax * 4 + (long)asm.AddressOf(names)]);
        a.call(asm.Rt!.Puts);
        a.pop(esi);
        a.mov(edx, Kernel64.ErrorCodeVectors);
        a.bt(edx, eax);
        a.jnc(noError);
        asm.Print(" err=");
        a.mov(eax, __dword_ptr[VError]);
        asm.PrintHex(eax);
        asm.Bind(ref noError);
        asm.Print(" eip=probe+");
        a.mov(eax, __dword_ptr[VEip]);
        a.sub(eax, __dword_ptr[VFaultRef]);
        asm.PrintHex(eax);
        a.ret();
        asm.Bind(ref names);
        foreach (var name in VectorNames)
        {
            var bytes = new byte[4];
            for (var i = 0; i < name.Length; i++)
            {
                bytes[i] = (byte)name[i];
            }

            a.db(bytes);
        }
    }

    private void PrintReg32(string name, int pushadIndex)
    {
        _asm.Print($" {name}=");
        _a.mov(eax, __dword_ptr[(ulong)(VRegs + pushadIndex * 4)]);
        _asm.PrintHex(eax);
    }

    private void SegmentTests()
    {
        var a = _a;
        var asm = _asm;
        a.mov(__dword_ptr[LimitedBase + 0x10], 0x1234_5678);
        a.mov(__dword_ptr[LimitedBase + 0xFFC], 0x0BAD_F00D);
        a.mov(__dword_ptr[LimitedBase + 0x1000], 0x5555_AAAA);
        a.mov(__dword_ptr[LimitedBase + 0x2000], 0x600D_CAFE);
        a.mov(__dword_ptr[LimitedBase + 0x800], 0x0800_0800);

        asm.Print("pm: GDT in RAM: 0x30 data base 0x100000 limit 0xfff, 0x38 expand-down (same base/limit, B=1), 0x40 base 0x200000, 0x48 limit 0x7ffff, 0x50 not present, 0x58 read-only, 0x60 execute-only code\n");

        void LoadFs(ushort selector)
        {
            a.mov(ax, selector);
            a.mov(fs, ax);
        }

        Probe32("pm: mov eax,fs:[0x10] (fs=0x30)", () =>
        {
            LoadFs(SelLimited);
            a.mov(eax, __dword_ptr.fs[0x10]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov eax,fs:[0xffc] (last dword inside the limit)", () =>
        {
            LoadFs(SelLimited);
            a.mov(eax, __dword_ptr.fs[0xFFC]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov eax,fs:[0xffd] (crosses the limit)", () =>
        {
            LoadFs(SelLimited);
            a.mov(eax, __dword_ptr.fs[0xFFD]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov al,fs:[0x1000] (beyond the limit)", () =>
        {
            LoadFs(SelLimited);
            a.mov(eax, 0);
            a.mov(al, __byte_ptr.fs[0x1000]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov fs:[0x1000],al (write beyond the limit)", () =>
        {
            LoadFs(SelLimited);
            a.mov(al, 0x77);
            a.mov(__byte_ptr.fs[0x1000], al);
        }, () =>
        {
            asm.Print(" [0x101000]=");
            a.mov(eax, __dword_ptr[LimitedBase + 0x1000]);
            asm.PrintHex(eax);
        });
        Probe32("pm: mov eax,es:[0x800] (expand-down, below the limit)", () =>
        {
            a.mov(ax, SelExpandDown);
            a.mov(es, ax);
            a.mov(eax, __dword_ptr.es[0x800]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov eax,es:[0x2000] (expand-down, above the limit)", () =>
        {
            a.mov(ax, SelExpandDown);
            a.mov(es, ax);
            a.mov(eax, __dword_ptr.es[0x2000]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov eax,gs:[0x10] (read-only segment)", () =>
        {
            a.mov(ax, SelReadOnly);
            a.mov(gs, ax);
            a.mov(eax, __dword_ptr.gs[0x10]);
        }, () => PrintEax32(" eax="));
        Probe32("pm: mov gs:[0x20],eax (read-only segment)", () =>
        {
            a.mov(ax, SelReadOnly);
            a.mov(gs, ax);
            a.mov(__dword_ptr.gs[0x20], eax);
        });
        Probe32("pm: ss=0x48 (limit 0x7ffff), mov eax,[ebp] with ebp=0x7fffc", () =>
        {
            a.mov(ax, SelStack);
            a.mov(ss, ax);
            a.mov(ebp, 0x7_FFFC);
            a.mov(eax, __dword_ptr[ebp]);
        });
        Probe32("pm: ss=0x48 (limit 0x7ffff), mov eax,[ebp] with ebp=0x7fffe (crosses the limit)", () =>
        {
            a.mov(ax, SelStack);
            a.mov(ss, ax);
            a.mov(ebp, 0x7_FFFE);
            a.mov(eax, __dword_ptr[ebp]);
        });
        Probe32("pm: fs=0 (null), mov eax,fs:[0]", () =>
        {
            a.xor(eax, eax);
            a.mov(fs, ax);
            a.mov(eax, __dword_ptr.fs[0]);
        });
        Probe32("pm: mov fs,0x1f8 (beyond the GDT limit)", () => LoadFs(0x1F8));
        Probe32("pm: mov fs,0x50 (not present)", () => LoadFs(SelNotPresent));
        Probe32("pm: mov ds,0x60 (execute-only code)", () =>
        {
            a.mov(ax, SelExecOnly);
            a.mov(ds, ax);
        });
        Probe32("pm: mov ss,0x58 (read-only)", () =>
        {
            a.mov(ax, SelReadOnly);
            a.mov(ss, ax);
        });
        Probe32("pm: mov fs,0x33 (RPL 3 > DPL 0 data)", () => LoadFs(SelLimited | 3));
        Probe32("pm: fs rep movsb esi=0xff0 ecx=0x20 (source crosses the limit)", () =>
        {
            LoadFs(SelLimited);
            a.mov(esi, 0xFF0);
            a.mov(edi, Dst);
            a.mov(ecx, 0x20);
            a.AddInstruction(Instruction.CreateMovsb(32, Register.FS, RepPrefixKind.Repe));
            a.mov(__dword_ptr[VRegs + 6 * 4], ecx);
            a.mov(__dword_ptr[VRegs + 1 * 4], esi);
        }, () =>
        {
            PrintReg32("ecx", 6);
            PrintReg32("esi", 1);
        }, () =>
        {
            PrintReg32("ecx", 6);
            PrintReg32("esi", 1);
            PrintReg32("edi", 0);
        });
    }

    private void PrintEax32(string prefix)
    {
        _asm.Print(prefix);
        _asm.PrintHex(eax);
    }

    // ---------------------------------------------------------------- 32-bit string instructions

    /// <summary>
    /// A string test: buffers reset (SRC = bytes i*7+3, DST = 0xCC), <paramref name="setup"/> sets registers, EFLAGS
    /// = <paramref name="flags"/> (DF included), <paramref name="op"/>, then ESI/EDI relative to SRC/DST (or raw),
    /// ECX, EAX, flags and a hash of the destination area.
    /// </summary>
    private void StringTest32(string title, uint flags, Action setup, Action op, bool raw = false)
    {
        var a = _a;
        var asm = _asm;
        a.call(asm.Sym("reset_buffers32"));
        setup();
        a.push(flags);
        a.popfd();
        op();
        a.pushfd();
        RestoreSegments32();
        a.pop(__dword_ptr[SFlags]);
        a.mov(__dword_ptr[SEsi], esi);
        a.mov(__dword_ptr[SEdi], edi);
        a.mov(__dword_ptr[SEcx], ecx);
        a.mov(__dword_ptr[SEax], eax);
        a.mov(esi, checked((uint)asm.AddressOf(asm.Str(title + ":"))));
        a.mov(ebx, raw ? 1u : 0u);
        a.call(asm.Sym("finish_string32"));
    }

    /// <summary>finish_string32: ESI = title, EBX = 1 for raw ESI/EDI; prints the saved results.</summary>
    private void EmitFinishString32()
    {
        var a = _a;
        var asm = _asm;
        var rel = asm.NewLabel();
        var common = asm.NewLabel();
        asm.Global("finish_string32");
        a.cld();
        RestoreSegments32();
        a.call(asm.Rt!.Puts);
        a.test(ebx, ebx);
        a.jz(rel);
        asm.Print(" esi=");
        a.mov(eax, __dword_ptr[SEsi]);
        asm.PrintHex(eax);
        asm.Print(" edi=");
        a.mov(eax, __dword_ptr[SEdi]);
        asm.PrintHex(eax);
        a.jmp(common);
        asm.Bind(ref rel);
        asm.Print(" esi=src");
        a.mov(eax, __dword_ptr[SEsi]);
        a.mov(edx, Src);
        a.call(asm.Sym("print_rel32"));
        asm.Print(" edi=dst");
        a.mov(eax, __dword_ptr[SEdi]);
        a.mov(edx, Dst);
        a.call(asm.Sym("print_rel32"));
        asm.Bind(ref common);
        asm.Print(" ecx=");
        a.mov(eax, __dword_ptr[SEcx]);
        asm.PrintHex(eax);
        asm.Print(" eax=");
        a.mov(eax, __dword_ptr[SEax]);
        asm.PrintHex(eax);
        asm.Print(" f=");
        a.mov(eax, __dword_ptr[SFlags]);
        a.and(eax, 0xFFF);
        asm.PrintHex(eax);
        asm.Print(" hash=");
        a.call(asm.Sym("hash_buffers32"));
        asm.PrintHex(eax);
        asm.Print("\n");
        a.ret();
    }

    private const uint Cf = 0x001;
    private const uint Zf = 0x040;
    private const uint Df = 0x400;
    private const uint F0 = 0x002;
    private const uint FAll = 0x8D7;

    private void StringTests32()
    {
        var a = _a;
        var asm = _asm;
        asm.Print("str32: buffers: src=0x110000 bytes i*7+3, dst=0x111000 bytes 0xcc; hash covers 0x110f00-0x1112ff and 0x200000-0x20003f, 0x20ffc0-0x20ffff\n");

        void Regs(uint esiOff, uint ediOff, uint count, uint eaxValue = 0)
        {
            a.mov(esi, Src + esiOff);
            a.mov(edi, Dst + ediOff);
            a.mov(ecx, count);
            a.mov(eax, eaxValue);
        }

        StringTest32("rep movsb df=0 ecx=37", F0, () => Regs(3, 5, 37), () => a.rep.movsb());
        StringTest32("rep movsb df=1 ecx=37", F0 | Df, () => Regs(100, 120, 37), () => a.rep.movsb());
        StringTest32("rep movsw df=0 ecx=13", F0, () => Regs(1, 2, 13), () => a.rep.movsw());
        StringTest32("rep movsw df=1 ecx=13", F0 | Df, () => Regs(101, 122, 13), () => a.rep.movsw());
        StringTest32("rep movsd df=0 ecx=9", F0, () => Regs(2, 0, 9), () => a.rep.movsd());
        StringTest32("rep movsd df=1 ecx=9", F0 | Df, () => Regs(102, 121, 9), () => a.rep.movsd());
        StringTest32("rep movsb ecx=0 (flags 0x8d7 kept)", FAll, () => Regs(0, 0, 0), () => a.rep.movsb());
        StringTest32("rep movsb ecx=1", F0, () => Regs(7, 9, 1), () => a.rep.movsb());
        StringTest32("movsb (no rep) ecx=5", F0, () => Regs(7, 9, 5), () => a.movsb());
        StringTest32("rep movsb overlapping dst=src+1 ecx=16", F0, () =>
        {
            a.mov(esi, Src);
            a.mov(edi, Src + 1);
            a.mov(ecx, 16);
        }, () => a.rep.movsb());
        StringTest32("rep stosb df=0 ecx=50 al=0x5a", F0, () => Regs(0, 3, 50, 0x1234_565A), () => a.rep.stosb());
        StringTest32("rep stosb df=1 ecx=50 al=0x5a", F0 | Df, () => Regs(0, 200, 50, 0x1234_565A), () => a.rep.stosb());
        StringTest32("rep stosw df=0 ecx=7", F0, () => Regs(0, 1, 7, 0x1234_5678), () => a.rep.stosw());
        StringTest32("rep stosd df=1 ecx=7", F0 | Df, () => Regs(0, 64, 7, 0x1234_5678), () => a.rep.stosd());
        StringTest32("rep lodsb ecx=5", F0, () => Regs(10, 0, 5, 0xFFFF_FFFF), () => a.rep.lodsb());
        StringTest32("lodsd df=1", F0 | Df, () => Regs(40, 0, 0, 0xFFFF_FFFF), () => a.lodsd());
        StringTest32("lodsw", F0, () => Regs(41, 0, 0, 0xFFFF_FFFF), () => a.lodsw());

        // dst = copy of src with one difference at index 10.
        void CopyWithDifference(int index, bool invertAllButIndex)
        {
            a.push(esi);
            a.push(edi);
            a.push(ecx);
            a.mov(esi, Src);
            a.mov(edi, Dst);
            a.mov(ecx, 64);
            a.rep.movsb();
            if (invertAllButIndex)
            {
                a.mov(ecx, 64);
                var l = asm.Here();
                a.not(__byte_ptr[ecx + (Dst - 1)]);
                a.dec(ecx);
                a.jnz(l);
                a.not(__byte_ptr[Dst + (ulong)index]);
            }
            else
            {
                a.xor(__byte_ptr[Dst + (ulong)index], 0x80);
            }

            a.pop(ecx);
            a.pop(edi);
            a.pop(esi);
        }

        StringTest32("repe cmpsb ecx=20, difference at 10", F0, () =>
        {
            CopyWithDifference(10, false);
            Regs(0, 0, 20);
        }, () => a.repe.cmpsb());
        StringTest32("repe cmpsb ecx=16, all equal", F0, () =>
        {
            CopyWithDifference(40, false);
            Regs(0, 0, 16);
        }, () => a.repe.cmpsb());
        StringTest32("repe cmpsb ecx=0 (flags 0x8d7 kept)", FAll, () => Regs(0, 0, 0), () => a.repe.cmpsb());
        StringTest32("repne cmpsb ecx=20, equal only at 6", F0, () =>
        {
            CopyWithDifference(6, true);
            Regs(0, 0, 20);
        }, () => a.repne.cmpsb());
        StringTest32("repe cmpsd df=1 ecx=8, difference at 4", F0 | Df, () =>
        {
            CopyWithDifference(17, false);
            Regs(28, 28, 8);
        }, () => a.repe.cmpsd());
        StringTest32("cmpsb (no rep)", F0, () => Regs(0, 0, 3), () => a.cmpsb());
        StringTest32("repne scasb al=src[20]", F0, () =>
        {
            a.mov(edi, Src);
            a.mov(ecx, 100);
            a.xor(eax, eax);
            a.mov(al, __byte_ptr[Src + 20]);
        }, () => a.repne.scasb());
        StringTest32("repne scasb not found ecx=30", F0, () => Regs(0, 0, 30, 0x77), () => a.repne.scasb());
        StringTest32("repe scasb al=0xcc, dst[12]=0", FAll, () =>
        {
            a.mov(__byte_ptr[Dst + 12], 0);
            Regs(0, 0, 20, 0xCC);
        }, () => a.repe.scasb());
        StringTest32("repne scasw df=1 ax=0xcccc ecx=5", F0 | Df, () =>
        {
            a.mov(__word_ptr[Dst + 20], 0x1111);
            a.mov(__word_ptr[Dst + 18], 0x2222);
            Regs(0, 20, 5, 0xCCCC);
        }, () => a.repne.scasw());
        StringTest32("fs rep movsb (fs base 0x200000) esi=0x10 ecx=8", F0, () =>
        {
            a.mov(ax, SelBase2M);
            a.mov(fs, ax);
            Regs(0, 0, 8);
            a.mov(esi, 0x10);
        }, () => a.AddInstruction(Instruction.CreateMovsb(32, Register.FS, RepPrefixKind.Repe)), raw: true);
        StringTest32("es rep stosb (es base 0x200000) edi=0x20 ecx=8", F0, () =>
        {
            a.mov(ax, SelBase2M);
            a.mov(es, ax);
            Regs(0, 0, 8, 0xE5);
            a.mov(edi, 0x20);
        }, () => a.rep.stosb(), raw: true);

        // 16-bit address size in 32-bit code: SI/DI/CX only, wrapping at 64 KiB inside the 0x200000 segment.
        void Seg16()
        {
            a.mov(ax, SelBase2M);
            a.mov(ds, ax);
            a.mov(es, ax);
        }

        StringTest32("a16 rep movsb ds=es=0x40 esi=0x1234fffe edi=0x5678fff0 ecx=0xabcd0004", F0, () =>
        {
            Seg16();
            a.mov(esi, 0x1234_FFFE);
            a.mov(edi, 0x5678_FFF0);
            a.mov(ecx, 0xABCD_0004);
            a.xor(eax, eax);
        }, () => a.AddInstruction(Instruction.CreateMovsb(16, Register.None, RepPrefixKind.Repe)), raw: true);
        StringTest32("a16 rep stosw df=1 edi=0x12340002 ecx=0x10003 ax=0x4711", F0 | Df, () =>
        {
            Seg16();
            a.mov(esi, 0);
            a.mov(edi, 0x1234_0002);
            a.mov(ecx, 0x1_0003);
            a.mov(eax, 0x4711);
        }, () => a.AddInstruction(Instruction.CreateStosw(16, RepPrefixKind.Repe)), raw: true);
        StringTest32("a16 repne scasb edi=0xfffc ecx=8 al=0x03 (found at 0x200002)", F0, () =>
        {
            Seg16();
            a.mov(esi, 0);
            a.mov(edi, 0xFFFF_FFFC);
            a.mov(ecx, 8);
            a.mov(eax, 0x03);
        }, () => a.AddInstruction(Instruction.CreateScasb(16, RepPrefixKind.Repne)), raw: true);
        StringTest32("a16 lodsd esi=0xfffe (dword wraps? no: reads 0x20fffe..0x210001)", F0, () =>
        {
            Seg16();
            a.mov(esi, 0xABCD_FFFE);
            a.mov(edi, 0);
            a.mov(ecx, 0);
        }, () => a.AddInstruction(Instruction.CreateLodsd(16, Register.None, RepPrefixKind.None)), raw: true);
        StringTest32("a16 rep movsb ecx=0x10000 cx=0 (nothing moves)", F0, () =>
        {
            Seg16();
            a.mov(esi, 0x10);
            a.mov(edi, 0x20);
            a.mov(ecx, 0x1_0000);
            a.xor(eax, eax);
        }, () => a.AddInstruction(Instruction.CreateMovsb(16, Register.None, RepPrefixKind.Repe)), raw: true);

        asm.Later(() =>
        {
            EmitResetBuffers32();
            EmitHashBuffers32();
            EmitPrintRel32();
            EmitFinishString32();
            EmitPrintFault32();
        });
    }

    private void EmitResetBuffers32()
    {
        var a = _a;
        var asm = _asm;
        asm.Global("reset_buffers32");
        a.pushad();
        a.cld();
        a.xor(ecx, ecx);
        var l = asm.Here();
        a.imul(eax, ecx, 7);
        a.add(eax, 3);
        a.mov(__byte_ptr[ecx + Src], al);
        a.mov(__byte_ptr[ecx + (Dst - 0x100)], 0xCC);
        a.inc(ecx);
        a.cmp(ecx, 0x400);
        a.jb(l);
        // The 16-bit-address-size area: 0x200000.. and ..0x20ffff get bytes i+1 (low end) and 0xf0+i (high end).
        a.xor(ecx, ecx);
        var l2 = asm.Here();
        a.lea(eax, __[ecx + 1]);
        a.mov(__byte_ptr[ecx + Seg16Base], al);
        a.lea(eax, __[ecx + 0xC0]);
        a.mov(__byte_ptr[ecx + (Seg16Base + 0xFFC0)], al);
        a.inc(ecx);
        a.cmp(ecx, 0x40);
        a.jb(l2);
        a.popad();
        a.ret();
    }

    private void EmitHashBuffers32()
    {
        var a = _a;
        var asm = _asm;
        asm.Global("hash_buffers32");
        a.push(ebx);
        a.push(ecx);
        a.push(esi);
        a.xor(eax, eax);
        foreach (var (start, length) in new[] { (Src - 0x100 + 0x1000 - 0x100 + 0x100, 0x400u), (Seg16Base, 0x40u), (Seg16Base + 0xFFC0, 0x40u) })
        {
            a.mov(esi, start);
            a.mov(ecx, length);
            var l = asm.Here();
            a.movzx(ebx, __byte_ptr[esi]);
            a.xor(eax, ebx);
            a.imul(eax, eax, unchecked((int)0x9E37_79B1));
            a.rol(eax, 7);
            a.inc(esi);
            a.dec(ecx);
            a.jnz(l);
        }

        a.pop(esi);
        a.pop(ecx);
        a.pop(ebx);
        a.ret();
    }

    /// <summary>print_rel32: prints "+0x.." or "-0x.." for EAX - EDX.</summary>
    private void EmitPrintRel32()
    {
        var a = _a;
        var asm = _asm;
        asm.Global("print_rel32");
        var negative = asm.NewLabel();
        a.push(eax);
        a.sub(eax, edx);
        a.js(negative);
        asm.Print("+");
        asm.PrintHex(eax);
        a.pop(eax);
        a.ret();
        asm.Bind(ref negative);
        a.neg(eax);
        asm.Print("-");
        asm.PrintHex(eax);
        a.pop(eax);
        a.ret();
    }

    // ================================================================ long mode

    private void Body64()
    {
        var a = _a;
        var asm = _asm;
        var pf = asm.NewLabel("pf_handler");
        Kernel64.EmitIdt(asm, new Dictionary<int, Label> { [14] = pf });

        // PML4[1] -> PDPT -> PD -> PT: page 0 -> frame B, page 1 -> frame A (reversed), page 2 not present.
        a.cld();
        a.mov(edi, (uint)Pdpt);
        a.mov(ecx, 0x5000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        Store(BiosRom.Pml4 + 8, Pdpt | P | RW);
        Store(Pdpt, Pd | P | RW);
        Store(Pd, Pt | P | RW);
        Store(Pt, FrameB | P | RW);
        Store(Pt + 8, FrameA | P | RW);
        Kernel64.EmitFlushTlb(asm);

        asm.Print("lm: va 0x8000000000 page 0 -> frame 0x304000, page 1 -> frame 0x303000, page 2 not present; src=0x110000 (bytes i*7+3), dst=0x111000 (0xcc); hash covers both frames and dst\n");

        void Regs(ulong rsiValue, ulong rdiValue, uint count, ulong raxValue = 0)
        {
            a.mov(rsi, rsiValue);
            a.mov(rdi, rdiValue);
            a.mov(ecx, count);
            a.mov(rax, raxValue);
        }

        StringTest64("rep movsq df=0 rcx=20", F0, () => Regs(Src + 8, Dst + 16, 20), () => a.rep.movsq());
        StringTest64("rep movsq df=1 rcx=20", F0 | Df, () => Regs(Src + 200, Dst + 240, 20), () => a.rep.movsq());
        StringTest64("rep stosq df=0 rcx=33", F0, () => Regs(0, Dst + 3, 33, 0x0123_4567_89AB_CDEF), () => a.rep.stosq());
        StringTest64("rep movsb to va+0xff0 rcx=40 (crosses into the reversed page)", F0, () => Regs(Src, Va + 0xFF0, 40), () => a.rep.movsb());
        StringTest64("rep movsb df=1 to va+0x1010 rcx=40", F0 | Df, () => Regs(Src + 100, Va + 0x1010, 40), () => a.rep.movsb());
        StringTest64("rep movsq to va+0xffc rcx=8", F0, () => Regs(Src, Va + 0xFFC, 8), () => a.rep.movsq());
        StringTest64("movsq to va+0xffc (straddles)", F0, () => Regs(Src + 3, Va + 0xFFC, 0), () => a.movsq());
        StringTest64("rep stosd to va+0xff8 rcx=10", F0, () => Regs(0, Va + 0xFF8, 10, 0xFFFF_FFFF_8765_4321), () => a.rep.stosd());
        StringTest64("rep movsb from va+0xff0 to dst rcx=40", F0, () =>
        {
            FillFrames();
            Regs(Va + 0xFF0, Dst, 40);
        }, () => a.rep.movsb());
        StringTest64("repe cmpsb va+0xff0 vs copy, difference at page 1 offset 5", F0, () =>
        {
            FillFrames();
            a.mov(rsi, Va + 0xFF0);
            a.mov(rdi, Dst);
            a.mov(ecx, 40);
            a.rep.movsb();
            a.xor(__byte_ptr[FrameA + 5], 0x40);
            Regs(Va + 0xFF0, Dst, 40);
        }, () => a.repe.cmpsb());
        StringTest64("rep movsb to va+0x1ff0 rcx=40 (#PF after 16 bytes)", F0, () => Regs(Src, Va + 0x1FF0, 40), () => a.rep.movsb());
        StringTest64("rep movsb from va+0x1ff8 rcx=20 (#PF reading after 8 bytes)", F0, () =>
        {
            FillFrames();
            Regs(Va + 0x1FF8, Dst, 20);
        }, () => a.rep.movsb());
        StringTest64("rep stosq to va+0x1ff0 rcx=4 (#PF after 2 qwords)", F0, () => Regs(0, Va + 0x1FF0, 4, 0x1111_2222_3333_4444), () => a.rep.stosq());
        StringTest64("movsq to va+0x1ffc (straddles into the missing page)", F0, () => Regs(Src, Va + 0x1FFC, 0), () => a.movsq());
        StringTest64("mov [va+0x1ffe],eax (straddles into the missing page)", F0, () => Regs(0, Va + 0x1FFE, 0, 0xAABB_CCDD), () => a.mov(__dword_ptr[rdi], eax));
        StringTest64("rep stosb rcx=0 at the missing page (no access)", FAll, () => Regs(0, Va + 0x2000, 0, 0x11), () => a.rep.stosb());
        StringTest64("a32 rep stosb rdi=0xffffffff00010ff0 rcx=4", F0, () =>
        {
            Regs(0, 0xFFFF_FFFF_0001_0FF0, 4, 0x99);
        }, () => a.AddInstruction(Instruction.CreateStosb(32, RepPrefixKind.Repe)));

        asm.Print("strings-modes: done\n");
        asm.Exit(0);

        asm.Later(() =>
        {
            // #PF: record RCX/RSI/RDI, the error code, CR2 and RIP, then resume at the recovery point.
            asm.Bind(ref pf);
            a.mov(__qword_ptr[LmRcx], rcx);
            a.mov(__qword_ptr[LmRsi], rsi);
            a.mov(__qword_ptr[LmRdi], rdi);
            a.pop(rax);
            a.mov(__qword_ptr[LmErr], rax);
            a.mov(rax, cr2);
            a.mov(__qword_ptr[LmCr2], rax);
            a.mov(rax, __qword_ptr[rsp]);
            a.mov(__qword_ptr[LmRip], rax);
            a.mov(__qword_ptr[LmFaulted], 1);
            Kernel64.EmitResume(asm, Kernel64.RecoverRip);

            EmitResetBuffers64();
            EmitHash64();
            EmitPrintRel64();
        });
    }

    private void Store(ulong address, ulong value)
    {
        _a.mov(rax, value);
        _a.mov(__qword_ptr[address], rax);
    }

    private void FillFrames()
    {
        var a = _a;
        a.push(rcx);
        a.xor(ecx, ecx);
        var l = _asm.Here();
        a.lea(eax, __[rcx * 2 + 0x11]);
        a.mov(__byte_ptr[rcx + (int)FrameA], al);
        a.lea(eax, __[rcx * 4 + 0x22]);
        a.mov(__byte_ptr[rcx + (int)FrameB], al);
        a.inc(ecx);
        a.cmp(ecx, 0x1000);
        a.jb(l);
        a.pop(rcx);
    }

    private void StringTest64(string title, uint flags, Action setup, Action op)
    {
        var a = _a;
        var asm = _asm;
        var recover = asm.NewLabel();
        var probe = asm.NewLabel();
        var done = asm.NewLabel();
        a.call(asm.Sym("reset_buffers64"));
        a.mov(__qword_ptr[LmFaulted], 0);
        setup();
        a.mov(__qword_ptr[LmVars + 64], rax);
        Kernel64.EmitSetRecovery(asm, recover);
        a.lea(rax, __[probe]);
        a.mov(__qword_ptr[Kernel64.FaultRef], rax);
        a.push((int)flags);
        a.popfq();
        a.mov(rax, __qword_ptr[LmVars + 64]);
        asm.Bind(ref probe);
        op();
        a.pushfq();
        a.pop(__qword_ptr[LmFlags]);
        a.mov(__qword_ptr[LmRcx], rcx);
        a.mov(__qword_ptr[LmRsi], rsi);
        a.mov(__qword_ptr[LmRdi], rdi);
        a.mov(__qword_ptr[LmVars + 72], rax);
        a.jmp(done);
        asm.Bind(ref recover);
        a.mov(__qword_ptr[LmFlags], 0);
        a.mov(__qword_ptr[LmVars + 72], 0);
        asm.Bind(ref done);
        Kernel64.EmitClearRecovery(asm);
        a.cld();
        asm.Print(title + ":");
        var noFault = asm.NewLabel();
        var after = asm.NewLabel();
        a.cmp(__qword_ptr[LmFaulted], 0);
        a.je(noFault);
        asm.Print(" #PF err=");
        a.mov(rdi, __qword_ptr[LmErr]);
        asm.PrintHex(rdi);
        asm.Print(" cr2=va");
        a.mov(rdi, __qword_ptr[LmCr2]);
        a.mov(rdx, Va);
        a.call(asm.Sym("print_rel64"));
        asm.Print(" rip=probe");
        a.mov(rdi, __qword_ptr[LmRip]);
        a.mov(rdx, __qword_ptr[Kernel64.FaultRef]);
        a.call(asm.Sym("print_rel64"));
        a.jmp(after);
        asm.Bind(ref noFault);
        asm.Print(" f=");
        a.mov(rdi, __qword_ptr[LmFlags]);
        a.and(edi, 0xFFF);
        asm.PrintHex(rdi);
        asm.Print(" rax=");
        a.mov(rdi, __qword_ptr[LmVars + 72]);
        asm.PrintHex(rdi);
        asm.Bind(ref after);
        asm.Print(" rcx=");
        a.mov(rdi, __qword_ptr[LmRcx]);
        asm.PrintHex(rdi);
        PrintRegionRel(" rsi=", LmRsi);
        PrintRegionRel(" rdi=", LmRdi);
        asm.Print(" hash=");
        a.call(asm.Sym("hash64"));
        asm.PrintHex(rax);
        asm.Print("\n");
    }

    /// <summary>Prints a pointer relative to src, dst or va, whichever region it is in.</summary>
    private void PrintRegionRel(string prefix, uint variable)
    {
        var a = _a;
        var asm = _asm;
        var notVa = asm.NewLabel();
        var notDst = asm.NewLabel();
        var notRaw = asm.NewLabel();
        var rel = asm.NewLabel();
        var end = asm.NewLabel();
        asm.Print(prefix);
        a.mov(rdi, __qword_ptr[variable]);
        a.mov(rax, rdi);
        a.shr(rax, 39);
        a.cmp(rax, 1);
        a.jne(notVa);
        asm.Print("va");
        a.mov(rdx, Va);
        a.jmp(rel);
        asm.Bind(ref notVa);
        a.cmp(rdi, (int)(Src - 0x1000));
        a.jae(notRaw);
        asm.PrintHex(rdi);
        a.jmp(end);
        asm.Bind(ref notRaw);
        a.cmp(rdi, (int)(Dst - 0x800));
        a.jb(notDst);
        asm.Print("dst");
        a.mov(edx, Dst);
        a.jmp(rel);
        asm.Bind(ref notDst);
        asm.Print("src");
        a.mov(edx, Src);
        asm.Bind(ref rel);
        a.call(asm.Sym("print_rel64"));
        asm.Bind(ref end);
    }

    private void EmitResetBuffers64()
    {
        var a = _a;
        var asm = _asm;
        asm.Global("reset_buffers64");
        a.push(rax);
        a.push(rcx);
        a.xor(ecx, ecx);
        var l = asm.Here();
        a.imul(eax, ecx, 7);
        a.add(eax, 3);
        a.mov(__byte_ptr[rcx + Src], al);
        a.mov(__byte_ptr[rcx + (Dst - 0x100)], 0xCC);
        a.inc(ecx);
        a.cmp(ecx, 0x400);
        a.jb(l);
        a.xor(ecx, ecx);
        var l2 = asm.Here();
        a.mov(__byte_ptr[rcx + (int)FrameA], 0xAA);
        a.mov(__byte_ptr[rcx + (int)FrameB], 0xBB);
        a.inc(ecx);
        a.cmp(ecx, 0x1000);
        a.jb(l2);
        a.pop(rcx);
        a.pop(rax);
        a.ret();
    }

    private void EmitHash64()
    {
        var a = _a;
        var asm = _asm;
        asm.Global("hash64");
        a.push(rbx);
        a.push(rcx);
        a.push(rsi);
        a.push(rdx);
        a.xor(eax, eax);
        a.mov(rdx, 0x9E37_79B9_7F4A_7C15);
        foreach (var (start, length) in new[] { ((uint)FrameA, 0x2000u), (Dst - 0x100, 0x400u), (0x1_0FF0u, 0x10u) })
        {
            a.mov(esi, start);
            a.mov(ecx, length);
            var l = asm.Here();
            a.movzx(ebx, __byte_ptr[rsi]);
            a.xor(rax, rbx);
            a.imul(rax, rdx);
            a.rol(rax, 29);
            a.inc(rsi);
            a.dec(ecx);
            a.jnz(l);
        }

        a.pop(rdx);
        a.pop(rsi);
        a.pop(rcx);
        a.pop(rbx);
        a.ret();
    }

    /// <summary>print_rel64: prints "+0x.." or "-0x.." for RDI - RDX.</summary>
    private void EmitPrintRel64()
    {
        var a = _a;
        var asm = _asm;
        asm.Global("print_rel64");
        var negative = asm.NewLabel();
        a.push(rdi);
        a.sub(rdi, rdx);
        a.js(negative);
        asm.Print("+");
        asm.PrintHex(rdi);
        a.pop(rdi);
        a.ret();
        asm.Bind(ref negative);
        a.neg(rdi);
        asm.Print("-");
        asm.PrintHex(rdi);
        a.pop(rdi);
        a.ret();
    }
}
