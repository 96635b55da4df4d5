using HwMemModel.Firmware.Building;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>alu-flags</c> BIOS image: integer instruction results and the full low 12 bits of RFLAGS, including the
/// flags the SDM leaves undefined, for a table of operations, operand sizes and operand values.
/// <para>
/// 64-bit part: a table driver. Each group is a stub (the instruction under test and RET), a name, a set of cases
/// (x, y, z) and which registers to print. For a case it loads RAX = x, RBX = y, RDX = z (each with
/// <see cref="Garbage"/> above the group's operand width, so that partial-register writes show), RCX = z with
/// garbage above bit 7 (CL is the count), RDI = a 512-byte buffer's middle (filled from a pattern; with
/// MemInit, qword [RDI] = RAX), then POPFQ, the stub, PUSHFQ. Each case runs twice, with RFLAGS = 0x002 (all
/// status flags clear) and 0x8D7 (CF PF AF ZF SF OF set). Line format:
/// <c>NAME x[,y][,z]: outputs f=FLAGS | outputs f=FLAGS</c>, where the second run is printed as <c>=</c> when it
/// equals the first, memory outputs are printed as <c>m[i]=qword</c> for every qword that differs from the
/// pattern (i relative to RDI, in qwords) and FLAGS is RFLAGS &amp; 0xFFF.
/// </para>
/// <para>
/// 32-bit part (before long mode): DAA DAS AAA AAS AAM AAD for chosen EAX values under four flag states, and one
/// hash per flag state over all 256 AL values.
/// </para>
/// </summary>
internal sealed class AluFlagsImage
{
    public const string Description =
        "BIOS: integer ALU semantics and full RFLAGS (undefined flags included) for ADD..TEST, INC/DEC/NEG/NOT, shifts and rotates, SHLD/SHRD, MUL/IMUL/DIV/IDIV, BT*, BSF/BSR/POPCNT/LZCNT/TZCNT, BSWAP, XADD, CMPXCHG*, CBW.., SETcc/CMOVcc/Jcc, LAHF/SAHF in long mode (8/16/32/64-bit, register and memory forms, each with all status flags clear and set), and DAA/DAS/AAA/AAS/AAM/AAD in 32-bit protected mode; exits 0";

    /// <summary>Bits above an operand's width in every input register.</summary>
    public const ulong Garbage = 0xA5A5_A5A5_A5A5_A5A5;

    private const ulong GarbageAboveCl = Garbage & ~0xFFUL;
    private const uint RunA = 0x2_2000;
    private const uint RunB = 0x2_2400;
    private const int RunQwords = 8 + 64;
    private const uint FlagsIn = 0x2_1F00;
    private const uint Buffer = 0x2_0000;
    private const uint BufferMiddle = Buffer + 256;
    private const uint Pattern = 0x2_1000;
    private const uint CcResults = 0x2_3000;
    private const ulong FlagsClear = 0x002;
    private const ulong FlagsSet = 0x8D7;

    private const int SizeOfGroup = 16;
    private const int SizeOfCase = 24;

    private static readonly int[] Sizes = [8, 16, 32, 64];

    private readonly Asm _asm;
    private readonly Assembler _a;

    private AluFlagsImage(Asm asm)
    {
        _asm = asm;
        _a = asm.A;
    }

    /// <summary>Registers printed after a case.</summary>
    [Flags]
    private enum Out : byte
    {
        None = 0,
        Rax = 1,
        Rbx = 2,
        Rcx = 4,
        Rdx = 8,
        Mem = 16,
    }

    /// <summary>Inputs printed, and whether qword [RDI] starts as RAX.</summary>
    [Flags]
    private enum In : byte
    {
        None = 0,
        X = 1,
        Y = 2,
        Z = 4,
        MemInit = 8,
    }

    public static byte[] Build()
    {
        var groups = Groups();
        return BiosRom.Build(asm => new AluFlagsImage(asm).Body32(), asm => new AluFlagsImage(asm).Body64(groups));
    }

    private sealed record Case(ulong X, ulong Y, ulong Z);

    private sealed record Group(string Name, Action<Assembler> Stub, IReadOnlyList<Case> Cases, int MaskIndex, Out Outputs, In Inputs);

    // ---------------------------------------------------------------- operand values

    private static ulong Mask(int s) => s == 64 ? ulong.MaxValue : (1UL << s) - 1;

    private static ulong Min(int s) => 1UL << (s - 1);

    private static ulong Max(int s) => Min(s) - 1;

    private static ulong Neg1(int s) => Mask(s);

    private static ulong R1(int s) => s switch { 8 => 0xB7, 16 => 0xC35A, 32 => 0x9E37_79B9, _ => 0x9E37_79B9_7F4A_7C15 };

    private static ulong R2(int s) => s switch { 8 => 0x6D, 16 => 0x5AC3, 32 => 0x7F4A_7C15, _ => 0x6A09_E667_F3BC_C908 };

    private static ulong R3(int s) => s switch { 8 => 0xE1, 16 => 0x8E2F, 32 => 0x3141_5927, _ => 0xB504_F333_F9DE_6484 };

    private static int SizeIndex(int s) => s switch { 8 => 0, 16 => 1, 32 => 2, _ => 3 };

    private static Register Ra(int s) => s switch { 8 => Register.AL, 16 => Register.AX, 32 => Register.EAX, _ => Register.RAX };

    private static Register Rb(int s) => s switch { 8 => Register.BL, 16 => Register.BX, 32 => Register.EBX, _ => Register.RBX };

    private static Register Rd(int s) => s switch { 8 => Register.DL, 16 => Register.DX, 32 => Register.EDX, _ => Register.RDX };

    private static Code C(string name) => Enum.Parse<Code>(name);

    private static MemoryOperand AtRdi => new(Register.RDI);

    private static Action<Assembler> Ins(Func<Instruction> make) => a => a.AddInstruction(make());

    private static Case[] Pairs(int s, params (ulong X, ulong Y)[] pairs) =>
        [.. pairs.Select(p => new Case(p.X & Mask(s), p.Y & Mask(s), 0))];

    private static Case[] BinaryCases(int s) => Pairs(
        s,
        (0, 0),
        (0, 1),
        (1, Neg1(s)),
        (Neg1(s), Neg1(s)),
        (Max(s), 1),
        (Min(s), 1),
        (Min(s), Min(s)),
        (Max(s), Min(s)),
        (Min(s), Max(s)),
        (R1(s), R2(s)),
        (R2(s), R1(s)),
        (R3(s), R3(s)));

    private static Case[] UnaryCases(int s) =>
        [.. new ulong[] { 0, 1, Neg1(s), Max(s), Min(s), R1(s), R2(s) }.Select(v => new Case(v, 0, 0))];

    private static int[] ShiftCounts(int s) => [.. new[] { 0, 1, 2, s - 1, s, s + 1, 31, 63 }.Distinct()];

    private static Case[] ShiftCases(int s) =>
        [.. new[] { Min(s) | 1, R1(s) }.SelectMany(v => ShiftCounts(s).Select(c => new Case(v, 0, (ulong)c)))];

    private static Case[] ShiftBy1Cases(int s) =>
        [.. new[] { Min(s) | 1, R1(s), Max(s) }.Select(v => new Case(v, 0, 0))];

    private static Case[] DoubleShiftCases(int s) =>
        [.. new[] { (R1(s), R2(s)), (Min(s) | 1, R3(s)) }.SelectMany(p => ShiftCounts(s).Select(c => new Case(p.Item1, p.Item2, (ulong)c)))];

    private static Case[] MulCases(int s) => Pairs(
        s,
        (Max(s), 2),
        (Neg1(s), Neg1(s)),
        (Min(s), Min(s)),
        (R1(s), R2(s)),
        (1, Neg1(s)),
        (Min(s), Neg1(s)),
        (2, Min(s)),
        (Max(s), Max(s)));

    private static Case[] SourceCases(int s, params ulong[] values) =>
        [.. values.Select(v => new Case(R3(s), v & Mask(s), 0))];

    private static Case[] DivCases(int s, bool signed)
    {
        // (x = low half of the dividend (AX for 8-bit), y = divisor, z = high half (RDX)).
        var m = Mask(s);
        (ulong X, ulong Y, ulong Z)[] candidates = s == 8
            ? signed
                ? [(0xFFF9, 2, 0), (7, 0xFE, 0), (0xFF80, 1, 0), (0x3F01, 0x7F, 0), (100, 0xF9, 0), (0xFFFF, 0xFF, 0)]
                : [(0x00FF, 0x10, 0), (0x1234, 0x7F, 0), (0xFE01, 0xFF, 0), (0, 1, 0), (0x7FFF, 0x81, 0), (0x5AB7, 0xE1, 0)]
            : signed
                ? [(Neg1(s) - 6, 2, m), (7, Neg1(s) - 1, 0), (Min(s), 1, m), (R1(s), R3(s), m), (100, Neg1(s) - 6, 0), (m, m, m)]
                : [(R1(s), R2(s), 0), (R1(s), R2(s), R2(s) >> 1), (m, m, 0), (m, m, m - 1), (0, 1, 0), (R3(s), 3, 1)];
        foreach (var (x, y, z) in candidates)
        {
            if (!DivFits(s, signed, x, y, z))
            {
                throw new InvalidOperationException($"div{s} case {x:X},{y:X},{z:X} would fault");
            }
        }

        return [.. candidates.Select(c => new Case(c.X & (s == 8 ? 0xFFFFUL : m), c.Y & m, s == 8 ? 0 : c.Z & m))];
    }

    private static bool DivFits(int s, bool signed, ulong x, ulong y, ulong z)
    {
        var m = Mask(s);
        if ((y & m) == 0)
        {
            return false;
        }

        UInt128 dividend = s == 8 ? x & 0xFFFF : ((UInt128)(z & m) << s) | (x & m);
        if (!signed)
        {
            return dividend / (y & m) <= m;
        }

        Int128 sd = s == 8 ? (short)(ushort)dividend : (Int128)(dividend << (128 - 2 * s)) >> (128 - 2 * s);
        Int128 sy = (Int128)((UInt128)(y & m) << (128 - s)) >> (128 - s);
        var q = sd / sy;
        return q >= -(Int128)Min(s) && q <= (Int128)Max(s);
    }

    private static Case[] BitOffsetCases(int s) =>
        [.. new[] { 0L, 5, s - 1, s, s + 5, -1 }.Select(o => new Case(R1(s), (ulong)o & Mask(s), 0))];

    private static Case[] MemBitOffsetCases(int s) =>
        [.. new[] { 0L, 5, s + 3, 100, -1, -100, -s, 300 }.Select(o => new Case(0, (ulong)o & Mask(s), 0))];

    private static Case[] MemCases(int s) =>
    [
        new(R1(s), R2(s), 3),
        new(Max(s), 1, 1),
        new((Min(s) | 1) & Mask(s), Min(s), (ulong)s + 1),
    ];

    // ---------------------------------------------------------------- groups

    private static List<Group> Groups()
    {
        var g = new List<Group>();
        var binary = new[] { "Add", "Adc", "Sub", "Sbb", "And", "Or", "Xor", "Cmp", "Test" };
        var shifts = new[] { "Rol", "Ror", "Rcl", "Rcr", "Shl", "Shr", "Sar" };

        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var cases = BinaryCases(s);
            foreach (var op in binary)
            {
                var code = C($"{op}_rm{s}_r{s}");
                g.Add(new($"{op.ToLowerInvariant()}{s}", Ins(() => Instruction.Create(code, Ra(s), Rb(s))), cases, si, Out.Rax, In.X | In.Y));
            }
        }

        // Immediate forms: a sign-extended imm8 and the accumulator short form (or the full-width immediate).
        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var cases = UnaryCases(s).Where(c => c.X is 1 || c.X == R1(s) || c.X == Max(s)).ToArray();
            foreach (var op in new[] { "Add", "Sub", "And", "Cmp", "Adc" })
            {
                var lower = op.ToLowerInvariant();
                var imm8Code = s == 8 ? C($"{op}_rm8_imm8") : C($"{op}_rm{s}_imm8");
                g.Add(new($"{lower}{s} imm8=-0x80", Ins(() => Instruction.Create(imm8Code, Ra(s), -128)), cases, si, Out.Rax, In.X));
                var accCode = s switch { 8 => C($"{op}_AL_imm8"), 16 => C($"{op}_AX_imm16"), 32 => C($"{op}_EAX_imm32"), _ => C($"{op}_RAX_imm32") };
                var immValue = s switch { 8 => 0x7F, 16 => 0x7FF1, _ => int.MinValue + 1 };
                g.Add(new($"{lower}{s} acc,imm=0x{immValue:x}", Ins(() => Instruction.Create(accCode, Ra(s), immValue)), cases, si, Out.Rax, In.X));
            }
        }

        // High-byte registers (AH, BH) and REX byte registers (R8B, R9B).
        {
            Case[] hcases =
            [
                new(0x7F3C, 0x01C3, 0),
                new(0xFF3C, 0x01C3, 1),
                new(0x803C, 0x80C3, 9),
                new(0xB73C, 0x6DC3, 4),
            ];
            foreach (var op in new[] { "Add", "Adc", "Sub", "Xor" })
            {
                var code = C($"{op}_rm8_r8");
                g.Add(new($"{op.ToLowerInvariant()}8 ah,bh", Ins(() => Instruction.Create(code, Register.AH, Register.BH)), hcases, 1, Out.Rax | Out.Rbx, In.X | In.Y));
            }

            g.Add(new("inc8 ah", Ins(() => Instruction.Create(Code.Inc_rm8, Register.AH)), hcases, 1, Out.Rax, In.X));
            g.Add(new("shl8 ah,cl", Ins(() => Instruction.Create(Code.Shl_rm8_CL, Register.AH, Register.CL)), hcases, 1, Out.Rax, In.X | In.Z));
            g.Add(new("rcr8 ah,cl", Ins(() => Instruction.Create(Code.Rcr_rm8_CL, Register.AH, Register.CL)), hcases, 1, Out.Rax, In.X | In.Z));
            g.Add(new("mov8 ah,bh;movzx", a =>
            {
                a.mov(ah, bh);
                a.movzx(ebx, ah);
            }, hcases, 1, Out.Rax | Out.Rbx, In.X | In.Y));

            var rcases = BinaryCases(8).Take(8).ToArray();
            g.Add(new("add8 r8b,r9b", a =>
            {
                a.xchg(rax, r8);
                a.xchg(rbx, r9);
                a.add(r8b, r9b);
                a.xchg(rax, r8);
                a.xchg(rbx, r9);
            }, rcases, 0, Out.Rax, In.X | In.Y));
            g.Add(new("sub8 sil,dl", a =>
            {
                a.xchg(rax, rsi);
                a.sub(sil, dl);
                a.xchg(rax, rsi);
            }, rcases.Select(c => c with { Z = c.Y }).ToArray(), 0, Out.Rax, In.X | In.Z));
        }

        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var cases = UnaryCases(s);
            foreach (var op in new[] { "Inc", "Dec", "Neg", "Not" })
            {
                var code = C($"{op}_rm{s}");
                g.Add(new($"{op.ToLowerInvariant()}{s}", Ins(() => Instruction.Create(code, Ra(s))), cases, si, Out.Rax, In.X));
            }
        }

        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var cases = ShiftCases(s);
            var by1 = ShiftBy1Cases(s);
            foreach (var op in shifts)
            {
                var lower = op.ToLowerInvariant();
                var cl = C($"{op}_rm{s}_CL");
                var one = C($"{op}_rm{s}_1");
                g.Add(new($"{lower}{s} cl", Ins(() => Instruction.Create(cl, Ra(s), Register.CL)), cases, si, Out.Rax, In.X | In.Z));
                g.Add(new($"{lower}{s} 1", Ins(() => Instruction.Create(one, Ra(s), 1)), by1, si, Out.Rax, In.X));
            }

            // SAL's alias encoding (/6).
            var sal = C($"Sal_rm{s}_CL");
            g.Add(new($"sal{s} cl (/6)", Ins(() => Instruction.Create(sal, Ra(s), Register.CL)), cases.Take(8).ToArray(), si, Out.Rax, In.X | In.Z));
        }

        foreach (var s in Sizes.Skip(1))
        {
            var si = SizeIndex(s);
            var cases = DoubleShiftCases(s);
            foreach (var op in new[] { "Shld", "Shrd" })
            {
                var code = C($"{op}_rm{s}_r{s}_CL");
                g.Add(new($"{op.ToLowerInvariant()}{s} cl", Ins(() => Instruction.Create(code, Ra(s), Rb(s), Register.CL)), cases, si, Out.Rax, In.X | In.Y | In.Z));
            }

            var imm = C($"Shld_rm{s}_r{s}_imm8");
            g.Add(new($"shld{s} imm=3", Ins(() => Instruction.Create(imm, Ra(s), Rb(s), 3)), cases.Take(1).ToArray(), si, Out.Rax, In.X | In.Y));
        }

        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var cases = MulCases(s);
            foreach (var op in new[] { "Mul", "Imul" })
            {
                var code = C($"{op}_rm{s}");
                g.Add(new($"{op.ToLowerInvariant()}{s}", Ins(() => Instruction.Create(code, Rb(s))), cases, si, Out.Rax | Out.Rdx, In.X | In.Y));
            }

            if (s > 8)
            {
                var two = C($"Imul_r{s}_rm{s}");
                g.Add(new($"imul{s} r,r", Ins(() => Instruction.Create(two, Ra(s), Rb(s))), cases, si, Out.Rax, In.X | In.Y));
                var src = SourceCases(s, 0, 1, Neg1(s), Max(s), Min(s), R1(s));
                var imm8 = C($"Imul_r{s}_rm{s}_imm8");
                g.Add(new($"imul{s} r,r,-3", Ins(() => Instruction.Create(imm8, Ra(s), Rb(s), -3)), src, si, Out.Rax, In.Y));
                var immCode = s == 16 ? C("Imul_r16_rm16_imm16") : C($"Imul_r{s}_rm{s}_imm32");
                var immValue = s switch { 16 => 0x7FF3, 32 => 0x12345, _ => -0x1234_5678 };
                g.Add(new($"imul{s} r,r,{(immValue < 0 ? "-0x" + (-immValue).ToString("x") : "0x" + immValue.ToString("x"))}", Ins(() => Instruction.Create(immCode, Ra(s), Rb(s), immValue)), src, si, Out.Rax, In.Y));
            }

            foreach (var (op, signed) in new[] { ("Div", false), ("Idiv", true) })
            {
                var code = C($"{op}_rm{s}");
                var divCases = DivCases(s, signed);
                g.Add(new($"{op.ToLowerInvariant()}{s}", Ins(() => Instruction.Create(code, Rb(s))), divCases, s == 8 ? 1 : si, Out.Rax | Out.Rdx, s == 8 ? In.X | In.Y : In.X | In.Y | In.Z));
            }
        }

        foreach (var s in Sizes.Skip(1))
        {
            var si = SizeIndex(s);
            var regCases = BitOffsetCases(s);
            var memCases = MemBitOffsetCases(s);
            foreach (var op in new[] { "Bt", "Bts", "Btr", "Btc" })
            {
                var lower = op.ToLowerInvariant();
                var rr = C($"{op}_rm{s}_r{s}");
                var ri = C($"{op}_rm{s}_imm8");
                g.Add(new($"{lower}{s} r,r", Ins(() => Instruction.Create(rr, Ra(s), Rb(s))), regCases, si, Out.Rax, In.X | In.Y));
                g.Add(new($"{lower}{s} r,{s + 3}", Ins(() => Instruction.Create(ri, Ra(s), s + 3)), regCases.Take(1).ToArray(), si, Out.Rax, In.X));
                g.Add(new($"{lower}{s} m,r", Ins(() => Instruction.Create(rr, AtRdi, Rb(s))), memCases, si, Out.Mem, In.Y));
                g.Add(new($"{lower}{s} m,{s + 3}", Ins(() => Instruction.Create(ri, AtRdi, s + 3)), memCases.Take(1).ToArray(), si, Out.Mem, In.None));
            }
        }

        // QEMU computes BT's undefined flags from the previous instruction's lazy flags state.
        {
            Case[] seqCases =
            [
                new(1, 0xFFFF_FFFF, 0),
                new(0x7FFF_FFFF, 1, 31),
                new(0x8000_0000, 0x8000_0000, 3),
                new(0x9E37_79B9, 0x7F4A_7C15, 5),
                new(0, 0, 0),
                new(0x0F0F_0F0F, 0x1111_1111, 12),
            ];
            (string Name, Action<Assembler> Emit)[] firsts =
            [
                ("add32", a => a.add(eax, ebx)),
                ("sub32", a => a.sub(eax, ebx)),
                ("and32", a => a.and(eax, ebx)),
                ("inc32", a => a.inc(eax)),
                ("imul32", a => a.imul(eax, ebx)),
                ("shl32", a => a.shl(eax, 1)),
                ("sar32", a => a.sar(eax, cl)),
                ("add8", a => a.add(al, bl)),
                ("adc64", a => a.adc(rax, rbx)),
            ];
            foreach (var (name, emit) in firsts)
            {
                g.Add(new($"{name};bt32 r,r", a =>
                {
                    emit(a);
                    a.bt(eax, ecx);
                }, seqCases, 2, Out.Rax, In.X | In.Y | In.Z));
            }

            g.Add(new("add32;bts32 r,r", a =>
            {
                a.add(eax, ebx);
                a.bts(eax, ecx);
            }, seqCases, 2, Out.Rax, In.X | In.Y | In.Z));
            g.Add(new("add32;bsf32", a =>
            {
                a.add(eax, ebx);
                a.bsf(eax, ecx);
            }, seqCases, 2, Out.Rax, In.X | In.Y | In.Z));
            g.Add(new("add32;div32", a =>
            {
                a.add(eax, ebx);
                a.mov(ebx, 7);
                a.xor(edx, edx);
                a.div(ebx);
            }, seqCases, 2, Out.Rax | Out.Rdx, In.X | In.Y));
        }

        foreach (var s in Sizes.Skip(1))
        {
            var si = SizeIndex(s);
            var cases = SourceCases(s, 0, 1, Min(s), Neg1(s), R1(s), 0x10);
            foreach (var op in new[] { "Bsf", "Bsr", "Popcnt", "Lzcnt", "Tzcnt" })
            {
                var code = C($"{op}_r{s}_rm{s}");
                g.Add(new($"{op.ToLowerInvariant()}{s}", Ins(() => Instruction.Create(code, Ra(s), Rb(s))), cases, si, Out.Rax, In.Y));
            }

            var bswap = C($"Bswap_r{s}");
            g.Add(new($"bswap{s}", Ins(() => Instruction.Create(bswap, Ra(s))), UnaryCases(s).Where(c => c.X == R1(s) || c.X == (Min(s) | 1)).ToArray(), si, Out.Rax, In.X));
        }

        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var xadd = C($"Xadd_rm{s}_r{s}");
            g.Add(new($"xadd{s}", Ins(() => Instruction.Create(xadd, Ra(s), Rb(s))), Pairs(s, (1, Neg1(s)), (Max(s), 1), (R1(s), R2(s)), (0, 0)), si, Out.Rax | Out.Rbx, In.X | In.Y));
            var cmpxchg = C($"Cmpxchg_rm{s}_r{s}");
            Case[] cx =
            [
                new(R1(s), R1(s), R2(s)),
                new(R1(s), R2(s), R3(s)),
                new(0, Min(s), 1),
            ];
            g.Add(new($"cmpxchg{s} r,r", Ins(() => Instruction.Create(cmpxchg, Rb(s), Rd(s))), cx, si, Out.Rax | Out.Rbx | Out.Rdx, In.X | In.Y | In.Z));
            var mcx = cx.Select(c => c with { Y = 0 }).ToArray();
            g.Add(new($"cmpxchg{s} m,r (m=acc)", Ins(() => Instruction.Create(cmpxchg, AtRdi, Rd(s))), mcx, si, Out.Rax | Out.Mem, In.X | In.Z | In.MemInit));
            g.Add(new($"cmpxchg{s} m,r (m=pattern)", Ins(() => Instruction.Create(cmpxchg, AtRdi, Rd(s))), mcx, si, Out.Rax | Out.Mem, In.X | In.Z));
        }

        // CMPXCHG8B/16B: the stubs load their own inputs (MOV leaves the flags alone).
        foreach (var equal in new[] { true, false })
        {
            g.Add(new($"cmpxchg8b {(equal ? "equal" : "not equal")}", a =>
            {
                a.mov(rax, 0xA5A5_A5A5_1111_1111);
                a.mov(rdx, 0xA5A5_A5A5_2222_2222);
                a.mov(rbx, 0x5A5A_5A5A_3333_3333);
                a.mov(rcx, 0x5A5A_5A5A_4444_4444);
                a.mov(rsi, equal ? 0x2222_2222_1111_1111UL : 0x6666_6666_5555_5555UL);
                a.mov(__qword_ptr[rdi], rsi);
                a.cmpxchg8b(__qword_ptr[rdi]);
            }, [new(0, 0, 0)], 3, Out.Rax | Out.Rdx | Out.Mem, In.None));
            g.Add(new($"cmpxchg16b {(equal ? "equal" : "not equal")}", a =>
            {
                a.mov(rax, R1(64));
                a.mov(rdx, R2(64));
                a.mov(rbx, R3(64));
                a.mov(rcx, ~R3(64));
                a.mov(rsi, equal ? R1(64) : 0x0123_4567_89AB_CDEF);
                a.mov(__qword_ptr[rdi], rsi);
                a.mov(rsi, R2(64));
                a.mov(__qword_ptr[rdi + 8], rsi);
                a.cmpxchg16b(__xmmword_ptr[rdi]);
            }, [new(0, 0, 0)], 3, Out.Rax | Out.Rdx | Out.Mem, In.None));
        }

        foreach (var (name, code, s) in new[] { ("cbw", Code.Cbw, 8), ("cwde", Code.Cwde, 16), ("cdqe", Code.Cdqe, 32), ("cwd", Code.Cwd, 16), ("cdq", Code.Cdq, 32), ("cqo", Code.Cqo, 64) })
        {
            g.Add(new(name, Ins(() => Instruction.Create(code)), [new(Min(s), 0, 0), new(Max(s), 0, 0)], SizeIndex(s), Out.Rax | Out.Rdx, In.X));
        }

        g.Add(new("sahf", Ins(() => Instruction.Create(Code.Sahf)), [.. new ulong[] { 0x00, 0xFF, 0xD5, 0x2A, 0x41 }.Select(v => new Case(v << 8, 0, 0))], 1, Out.Rax, In.X));
        g.Add(new("lahf", Ins(() => Instruction.Create(Code.Lahf)), [new(0x3C, 0, 0)], 0, Out.Rax, In.X));

        // Memory destinations.
        foreach (var s in Sizes)
        {
            var si = SizeIndex(s);
            var cases = MemCases(s);
            foreach (var op in new[] { "Add", "Adc", "Sub", "Sbb", "And", "Or", "Xor", "Cmp", "Xadd" })
            {
                var code = C($"{op}_rm{s}_r{s}");
                g.Add(new($"{op.ToLowerInvariant()}{s} m,r", Ins(() => Instruction.Create(code, AtRdi, Rb(s))), cases, si, Out.Mem | (op == "Xadd" ? Out.Rbx : Out.None), In.X | In.Y | In.MemInit));
            }

            foreach (var op in new[] { "Inc", "Dec", "Neg", "Not" })
            {
                var code = C($"{op}_rm{s}");
                g.Add(new($"{op.ToLowerInvariant()}{s} m", Ins(() => Instruction.Create(code, AtRdi)), cases, si, Out.Mem, In.X | In.MemInit));
            }

            foreach (var op in new[] { "Shl", "Sar", "Rol", "Rcr" })
            {
                var code = C($"{op}_rm{s}_CL");
                g.Add(new($"{op.ToLowerInvariant()}{s} m,cl", Ins(() => Instruction.Create(code, AtRdi, Register.CL)), cases, si, Out.Mem, In.X | In.Z | In.MemInit));
            }

            if (s > 8)
            {
                var code = C($"Shrd_rm{s}_r{s}_CL");
                g.Add(new($"shrd{s} m,r,cl", Ins(() => Instruction.Create(code, AtRdi, Rb(s), Register.CL)), cases, si, Out.Mem, In.X | In.Y | In.Z | In.MemInit));
            }
        }

        return g;
    }

    // ---------------------------------------------------------------- 64-bit driver

    private void Body64(List<Group> groups)
    {
        var a = _a;
        var asm = _asm;
        var runCase = asm.NewLabel("run_case");
        var printRun = asm.NewLabel("print_run");
        var table = asm.NewLabel("groups");
        var tableEnd = asm.NewLabel("groups_end");
        var masks = asm.NewLabel("masks");

        asm.Print("alu-flags: long mode, flags in 0x2 | 0x8d7, garbage above the operand width 0x");
        a.mov(rdi, Garbage);
        a.call(asm.Rt!.PutHex);
        asm.Print("\n");

        // Pattern: qword i = (i + 1) * 0x9E3779B97F4A7C15.
        a.xor(ecx, ecx);
        a.mov(rbx, 0x9E37_79B9_7F4A_7C15);
        var fill = asm.Here();
        a.lea(rax, __[rcx + 1]);
        a.imul(rax, rbx);
        a.mov(__qword_ptr[rcx * 8 + Pattern], rax);
        a.inc(ecx);
        a.cmp(ecx, 64);
        a.jb(fill);

        a.lea(r12, __[table]);
        a.lea(r13, __[tableEnd]);
        var groupLoop = asm.Here();
        a.mov(r14d, __dword_ptr[r12 + 8]);
        a.movzx(r15d, __byte_ptr[r12 + 12]);
        var caseLoop = asm.Here();
        a.mov(esi, __dword_ptr[r12 + 4]);
        a.call(asm.Rt.Puts);
        a.movzx(ebx, __byte_ptr[r12 + 14]);
        a.xor(ecx, ecx);
        a.mov(al, (byte)' ');
        for (var k = 0; k < 3; k++)
        {
            var skip = asm.NewLabel();
            var noComma = asm.NewLabel();
            a.test(bl, (byte)(1 << k));
            a.jz(skip);
            a.test(ecx, ecx);
            a.jz(noComma);
            a.mov(al, (byte)',');
            asm.Bind(ref noComma);
            a.call(asm.Rt.Putc);
            a.mov(rdi, __qword_ptr[r14 + k * 8]);
            a.call(asm.Rt.PutHex);
            a.mov(ecx, 1);
            asm.Bind(ref skip);
        }

        asm.Print(":");
        a.mov(__qword_ptr[FlagsIn], (int)FlagsClear);
        a.mov(ebp, RunA);
        a.call(runCase);
        a.mov(__qword_ptr[FlagsIn], (int)FlagsSet);
        a.mov(ebp, RunB);
        a.call(runCase);
        a.mov(ebp, RunA);
        a.call(printRun);
        var differ = asm.NewLabel();
        var eol = asm.NewLabel();
        a.mov(esi, RunA);
        a.mov(edi, RunB);
        a.mov(ecx, RunQwords);
        a.repe.cmpsq();
        a.jne(differ);
        asm.Print(" | =");
        a.jmp(eol);
        asm.Bind(ref differ);
        asm.Print(" |");
        a.mov(ebp, RunB);
        a.call(printRun);
        asm.Bind(ref eol);
        asm.Print("\n");
        a.add(r14, SizeOfCase);
        a.dec(r15d);
        a.jnz(caseLoop);
        a.add(r12, SizeOfGroup);
        a.cmp(r12, r13);
        a.jb(groupLoop);

        ConditionCodes();

        asm.Print("alu-flags: done\n");
        asm.Exit(0);

        asm.Later(() =>
        {
            EmitRunCase(runCase, masks);
            EmitPrintRun(printRun);

            var stubs = groups.Select(_ => asm.NewLabel()).ToArray();
            for (var i = 0; i < groups.Count; i++)
            {
                var stub = stubs[i];
                asm.Bind(ref stub);
                groups[i].Stub(a);
                a.ret();
            }

            var sets = new Dictionary<IReadOnlyList<Case>, Label>(ReferenceEqualityComparer.Instance);
            foreach (var group in groups)
            {
                if (!sets.ContainsKey(group.Cases))
                {
                    var label = asm.NewLabel();
                    asm.Bind(ref label);
                    sets.Add(group.Cases, label);
                    foreach (var c in group.Cases)
                    {
                        a.dq(c.X);
                        a.dq(c.Y);
                        a.dq(c.Z);
                    }
                }
            }

            asm.Bind(ref masks);
            a.dq(0xFF);
            a.dq(0xFFFF);
            a.dq(0xFFFF_FFFF);
            a.dq(ulong.MaxValue);

            asm.Bind(ref table);
            for (var i = 0; i < groups.Count; i++)
            {
                var group = groups[i];
                if (group.Cases.Count is 0 or > 255)
                {
                    throw new InvalidOperationException($"group {group.Name}: {group.Cases.Count} cases");
                }

                a.dd(checked((uint)asm.AddressOf(stubs[i])));
                a.dd(checked((uint)asm.AddressOf(asm.Str(group.Name))));
                a.dd(checked((uint)asm.AddressOf(sets[group.Cases])));
                a.db((byte)group.Cases.Count, (byte)group.Outputs, (byte)group.Inputs, (byte)group.MaskIndex);
            }

            asm.Bind(ref tableEnd);
            a.dq(0);
        });
    }

    /// <summary>run_case: R12 = group, R14 = case, RBP = where to store RAX RBX RCX RDX FLAGS, then the buffer.</summary>
    private void EmitRunCase(Label runCase, Label masks)
    {
        var a = _a;
        var asm = _asm;
        asm.Bind(ref runCase);
        a.cld();
        a.mov(esi, Pattern);
        a.mov(edi, Buffer);
        a.mov(ecx, 64);
        a.rep.movsq();
        a.movzx(eax, __byte_ptr[r12 + 15]);
        a.lea(r8, __[masks]);
        a.mov(r8, __qword_ptr[r8 + rax * 8]);
        a.not(r8);
        a.mov(r10, Garbage);
        a.and(r10, r8);
        a.mov(rax, __qword_ptr[r14]);
        a.or(rax, r10);
        a.mov(rbx, __qword_ptr[r14 + 8]);
        a.or(rbx, r10);
        a.mov(rdx, __qword_ptr[r14 + 16]);
        a.or(rdx, r10);
        a.mov(rcx, GarbageAboveCl);
        a.or(rcx, __qword_ptr[r14 + 16]);
        a.mov(edi, BufferMiddle);
        var noInit = asm.NewLabel();
        a.test(__byte_ptr[r12 + 14], (byte)In.MemInit);
        a.jz(noInit);
        a.mov(__qword_ptr[rdi], rax);
        asm.Bind(ref noInit);
        a.mov(r11d, __dword_ptr[r12]);
        a.push(__qword_ptr[FlagsIn]);
        a.popfq();
        a.call(r11);
        a.pushfq();
        a.mov(__qword_ptr[rbp], rax);
        a.mov(__qword_ptr[rbp + 8], rbx);
        a.mov(__qword_ptr[rbp + 16], rcx);
        a.mov(__qword_ptr[rbp + 24], rdx);
        a.pop(rax);
        a.and(eax, 0xFFF);
        a.mov(__qword_ptr[rbp + 32], rax);
        a.xor(eax, eax);
        a.mov(__qword_ptr[rbp + 40], rax);
        a.mov(__qword_ptr[rbp + 48], rax);
        a.mov(__qword_ptr[rbp + 56], rax);
        a.cld();
        a.mov(esi, Buffer);
        a.lea(rdi, __[rbp + 64]);
        a.mov(ecx, 64);
        a.rep.movsq();
        a.ret();
    }

    /// <summary>print_run: RBP = a run's results, R12 = group; prints the selected outputs and the flags.</summary>
    private void EmitPrintRun(Label printRun)
    {
        var a = _a;
        var asm = _asm;
        var rt = asm.Rt!;
        asm.Bind(ref printRun);
        a.push(rbx);
        a.push(rcx);
        a.push(rdi);
        a.movzx(ebx, __byte_ptr[r12 + 13]);
        for (var k = 0; k < 4; k++)
        {
            var skip = asm.NewLabel();
            a.test(bl, (byte)(1 << k));
            a.jz(skip);
            asm.Print(" ");
            a.mov(rdi, __qword_ptr[rbp + k * 8]);
            a.call(rt.PutHex);
            asm.Bind(ref skip);
        }

        var noMem = asm.NewLabel();
        a.test(bl, (byte)Out.Mem);
        a.jz(noMem);
        a.xor(ecx, ecx);
        a.xor(ebx, ebx); // differing qwords seen
        var scan = asm.Here();
        var same = asm.NewLabel();
        var positive = asm.NewLabel();
        a.mov(rdi, __qword_ptr[rbp + rcx * 8 + 64]);
        a.cmp(rdi, __qword_ptr[rcx * 8 + Pattern]);
        a.je(same);
        a.inc(ebx);
        asm.Print(" m[");
        a.lea(rdi, __[rcx - 32]);
        a.test(rdi, rdi);
        a.jns(positive);
        asm.Print("-");
        a.neg(rdi);
        asm.Bind(ref positive);
        a.call(rt.PutDec);
        asm.Print("]=");
        a.mov(rdi, __qword_ptr[rbp + rcx * 8 + 64]);
        a.call(rt.PutHex);
        asm.Bind(ref same);
        a.inc(ecx);
        a.cmp(ecx, 64);
        a.jb(scan);
        a.test(ebx, ebx);
        a.jnz(noMem);
        asm.Print(" m=-");
        asm.Bind(ref noMem);
        asm.Print(" f=");
        a.mov(rdi, __qword_ptr[rbp + 32]);
        a.call(rt.PutHex);
        a.pop(rdi);
        a.pop(rcx);
        a.pop(rbx);
        a.ret();
    }

    /// <summary>SETcc, Jcc and CMOVcc (16/32/64-bit) for the 16 conditions under several flag states.</summary>
    private void ConditionCodes()
    {
        var a = _a;
        var asm = _asm;
        var states = asm.NewLabel("cc_states");
        ulong[] values = [0x002, 0x003, 0x006, 0x012, 0x042, 0x043, 0x082, 0x802, 0x882, 0x8C2, 0x0C7, 0x8D7];
        string[] cc = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];
        const uint jccBase = CcResults + 0x20;
        const uint cmovBase = CcResults + 0x40;

        asm.Print("alu-flags: cc lines: bit n of set/jcc/cmov = condition n (o no b ae e ne be a s ns p np l ge le g)\n");
        a.lea(r12, __[states]);
        a.mov(r13d, values.Length);
        var loop = asm.Here();
        asm.Print("cc f=");
        a.mov(rdi, __qword_ptr[r12]);
        a.call(asm.Rt!.PutHex);
        a.mov(esi, CcResults);
        a.mov(rbx, 0x5A5A_5A5A_5A5A_5A5A);
        a.mov(r8, Garbage);
        a.push(__qword_ptr[r12]);
        a.popfq();
        for (var n = 0; n < 16; n++)
        {
            a.AddInstruction(Instruction.Create(C($"Set{cc[n]}_rm8"), new MemoryOperand(Register.RSI, n)));
        }

        for (var n = 0; n < 16; n++)
        {
            var taken = asm.NewLabel();
            var next = asm.NewLabel();
            EmitJcc(cc[n], taken);
            a.mov(__byte_ptr[(ulong)jccBase + (ulong)n], 0);
            a.jmp(next);
            asm.Bind(ref taken);
            a.mov(__byte_ptr[(ulong)jccBase + (ulong)n], 1);
            asm.Bind(ref next);
        }

        var sizes = new[] { 16, 32, 64 };
        for (var k = 0; k < 3; k++)
        {
            var s = sizes[k];
            for (var n = 0; n < 16; n++)
            {
                a.mov(rax, r8);
                a.AddInstruction(Instruction.Create(C($"Cmov{cc[n]}_r{s}_rm{s}"), Ra(s), Rb(s)));
                a.mov(__qword_ptr[(ulong)cmovBase + (ulong)((k * 16 + n) * 8)], rax);
            }
        }

        a.pushfq();
        a.pop(r9);
        a.cld();

        asm.Print(": set=");
        EmitByteMask(CcResults);
        asm.Print(" jcc=");
        EmitByteMask(jccBase);
        for (var k = 0; k < 3; k++)
        {
            asm.Print($" cmov{sizes[k]}=");
            a.xor(edi, edi);
            a.mov(ecx, 15);
            var bits = asm.Here();
            a.shl(edi, 1);
            a.cmp(__byte_ptr[rcx * 8 + (cmovBase + k * 128)], 0x5A);
            a.sete(al);
            a.movzx(eax, al);
            a.or(edi, eax);
            a.dec(ecx);
            a.jns(bits);
            a.call(asm.Rt.PutHex);
        }

        asm.Print(" hash=");
        a.xor(edi, edi);
        a.xor(ecx, ecx);
        a.mov(rdx, 0x9E37_79B9_7F4A_7C15);
        var hash = asm.Here();
        a.xor(rdi, __qword_ptr[rcx * 8 + cmovBase]);
        a.imul(rdi, rdx);
        a.rol(rdi, 29);
        a.inc(ecx);
        a.cmp(ecx, 48);
        a.jb(hash);
        a.call(asm.Rt.PutHex);
        asm.Print(" f=");
        a.mov(rdi, r9);
        a.and(edi, 0xFFF);
        a.call(asm.Rt.PutHex);
        asm.Print("\n");
        a.add(r12, 8);
        a.dec(r13d);
        a.jnz(loop);

        asm.Later(() =>
        {
            asm.Bind(ref states);
            foreach (var v in values)
            {
                a.dq(v);
            }
        });
    }

    private void EmitJcc(string cc, Label target)
    {
        var a = _a;
        switch (cc)
        {
            case "o": a.jo(target); break;
            case "no": a.jno(target); break;
            case "b": a.jb(target); break;
            case "ae": a.jae(target); break;
            case "e": a.je(target); break;
            case "ne": a.jne(target); break;
            case "be": a.jbe(target); break;
            case "a": a.ja(target); break;
            case "s": a.js(target); break;
            case "ns": a.jns(target); break;
            case "p": a.jp(target); break;
            case "np": a.jnp(target); break;
            case "l": a.jl(target); break;
            case "ge": a.jge(target); break;
            case "le": a.jle(target); break;
            default: a.jg(target); break;
        }
    }

    /// <summary>Prints the 16 bytes (0/1) at <paramref name="address"/> as a mask, bit n = byte n.</summary>
    private void EmitByteMask(uint address)
    {
        var a = _a;
        a.xor(edi, edi);
        a.mov(ecx, 15);
        var bits = _asm.Here();
        a.shl(edi, 1);
        a.movzx(eax, __byte_ptr[rcx + address]);
        a.or(edi, eax);
        a.dec(ecx);
        a.jns(bits);
        a.call(_asm.Rt!.PutHex);
    }

    // ---------------------------------------------------------------- 32-bit BCD part

    private static readonly uint[] BcdValues =
    [
        0xA5A5_1200, 0xA5A5_1209, 0xA5A5_120A, 0xA5A5_120F, 0xA5A5_1219, 0xA5A5_121A,
        0xA5A5_FF99, 0xA5A5_FF9A, 0xA5A5_00A0, 0xA5A5_00F9, 0xA5A5_07FA, 0xA5A5_80FF,
    ];

    private static readonly uint[] BcdFlags = [0x002, 0x003, 0x012, 0x8D7];

    private static readonly uint[] BcdHashFlags = [0x002, 0x003, 0x012, 0x013, 0x8C6, 0x8D7];

    private void Body32()
    {
        var a = _a;
        var asm = _asm;
        var rt = asm.Rt!;
        (string Name, Action Emit)[] ops =
        [
            ("daa", () => a.daa()),
            ("das", () => a.das()),
            ("aaa", () => a.aaa()),
            ("aas", () => a.aas()),
            ("aam 10", () => a.aam(10)),
            ("aam 16", () => a.aam(16)),
            ("aam 7", () => a.aam(7)),
            ("aad 10", () => a.aad(10)),
            ("aad 16", () => a.aad(16)),
            ("aad 0", () => a.aad(0)),
        ];
        var opTable = asm.NewLabel("bcd_ops");
        var values = asm.NewLabel("bcd_values");
        var flags = asm.NewLabel("bcd_flags");
        var hashFlags = asm.NewLabel("bcd_hash_flags");
        var stubs = ops.Select(_ => asm.NewLabel()).ToArray();

        asm.Print("alu-flags: 32-bit protected mode: BCD lines give EAX and f=EFLAGS&0xfff for flags in 0x2 | 0x3 | 0x12 | 0x8d7; hash lines cover AL=0..255 (AH=AL*0x35+0x5a) for flags in 0x2 0x3 0x12 0x13 0x8c6 0x8d7\n");
        a.mov(ebp, checked((uint)asm.AddressOf(opTable)));
        a.mov(edi, (uint)ops.Length);
        var opLoop = asm.Here();
        a.mov(esi, checked((uint)asm.AddressOf(values)));
        a.mov(ecx, (uint)BcdValues.Length);
        var valueLoop = asm.Here();
        a.push(esi);
        a.mov(esi, __dword_ptr[ebp + 4]);
        a.call(rt.Puts);
        a.pop(esi);
        asm.Print(" ");
        a.mov(eax, __dword_ptr[esi]);
        asm.PrintHex(eax);
        asm.Print(":");
        a.xor(ebx, ebx);
        var flagLoop = asm.Here();
        var noBar = asm.NewLabel();
        a.test(ebx, ebx);
        a.jz(noBar);
        asm.Print(" |");
        asm.Bind(ref noBar);
        a.mov(eax, __dword_ptr[esi]);
        a.push(__dword_ptr[ebx * 4 + (long)asm.AddressOf(flags)]);
        a.popfd();
        a.call(__dword_ptr[ebp]);
        a.pushfd();
        a.pop(edx);
        a.and(edx, 0xFFF);
        asm.Print(" ");
        asm.PrintHex(eax);
        asm.Print(" f=");
        asm.PrintHex(edx);
        a.inc(ebx);
        a.cmp(ebx, BcdFlags.Length);
        a.jb(flagLoop);
        asm.Print("\n");
        a.add(esi, 4);
        a.dec(ecx);
        a.jnz(valueLoop);

        // Hash line.
        a.push(esi);
        a.mov(esi, __dword_ptr[ebp + 4]);
        a.call(rt.Puts);
        a.pop(esi);
        asm.Print(" hashes:");
        a.xor(ecx, ecx);
        var hashFlagLoop = asm.Here();
        a.xor(ebx, ebx); // hash
        a.xor(esi, esi); // AL
        var hashLoop = asm.Here();
        a.imul(eax, esi, 0x35);
        a.add(eax, 0x5A);
        a.shl(eax, 8);
        a.movzx(eax, ax);
        a.or(eax, esi);
        a.or(eax, 0xA5A5_0000);
        a.push(__dword_ptr[ecx * 4 + (long)asm.AddressOf(hashFlags)]);
        a.popfd();
        a.call(__dword_ptr[ebp]);
        a.pushfd();
        a.pop(edx);
        a.and(edx, 0xFFF);
        a.xor(ebx, eax);
        a.imul(ebx, ebx, unchecked((int)0x9E37_79B1));
        a.rol(ebx, 13);
        a.xor(ebx, edx);
        a.imul(ebx, ebx, unchecked((int)0x9E37_79B1));
        a.rol(ebx, 13);
        a.inc(esi);
        a.cmp(esi, 256);
        a.jb(hashLoop);
        asm.Print(" ");
        asm.PrintHex(ebx);
        a.inc(ecx);
        a.cmp(ecx, BcdHashFlags.Length);
        a.jb(hashFlagLoop);
        asm.Print("\n");

        a.add(ebp, 8);
        a.dec(edi);
        a.jnz(opLoop);

        asm.Later(() =>
        {
            for (var i = 0; i < ops.Length; i++)
            {
                var stub = stubs[i];
                asm.Bind(ref stub);
                ops[i].Emit();
                a.ret();
            }

            asm.Bind(ref opTable);
            for (var i = 0; i < ops.Length; i++)
            {
                a.dd(checked((uint)asm.AddressOf(stubs[i])));
                a.dd(checked((uint)asm.AddressOf(asm.Str(ops[i].Name))));
            }

            asm.Bind(ref values);
            foreach (var v in BcdValues)
            {
                a.dd(v);
            }

            asm.Bind(ref flags);
            foreach (var v in BcdFlags)
            {
                a.dd(v);
            }

            asm.Bind(ref hashFlags);
            foreach (var v in BcdHashFlags)
            {
                a.dd(v);
            }
        });
    }
}
