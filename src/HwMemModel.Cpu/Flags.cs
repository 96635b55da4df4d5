using System.Numerics;
using System.Runtime.CompilerServices;

namespace HwMemModel.Cpu;

/// <summary>RFLAGS bit masks.</summary>
public static class RFlags
{
    /// <summary>Carry.</summary>
    public const ulong CF = 1 << 0;
    /// <summary>Always 1.</summary>
    public const ulong Fixed1 = 1 << 1;
    /// <summary>Parity.</summary>
    public const ulong PF = 1 << 2;
    /// <summary>Auxiliary carry.</summary>
    public const ulong AF = 1 << 4;
    /// <summary>Zero.</summary>
    public const ulong ZF = 1 << 6;
    /// <summary>Sign.</summary>
    public const ulong SF = 1 << 7;
    /// <summary>Trap (single step).</summary>
    public const ulong TF = 1 << 8;
    /// <summary>Interrupt enable.</summary>
    public const ulong IF = 1 << 9;
    /// <summary>Direction.</summary>
    public const ulong DF = 1 << 10;
    /// <summary>Overflow.</summary>
    public const ulong OF = 1 << 11;
    /// <summary>I/O privilege level (two bits).</summary>
    public const ulong IOPL = 3 << 12;
    /// <summary>Nested task.</summary>
    public const ulong NT = 1 << 14;
    /// <summary>Resume.</summary>
    public const ulong RF = 1 << 16;
    /// <summary>Virtual-8086 mode.</summary>
    public const ulong VM = 1 << 17;
    /// <summary>Alignment check / SMAP override.</summary>
    public const ulong AC = 1 << 18;
    /// <summary>Virtual interrupt flag.</summary>
    public const ulong VIF = 1 << 19;
    /// <summary>Virtual interrupt pending.</summary>
    public const ulong VIP = 1 << 20;
    /// <summary>CPUID available.</summary>
    public const ulong ID = 1 << 21;
    /// <summary>The six arithmetic flags.</summary>
    public const ulong Arith = CF | PF | AF | ZF | SF | OF;
    /// <summary>Bits software can change with POPF at CPL 0 (VM and RF are handled apart).</summary>
    public const ulong Writable = Arith | TF | IF | DF | IOPL | NT | AC | ID | VIF | VIP;
}

/// <summary>How the arithmetic flags are kept until something reads them.</summary>
internal enum CcOp : byte
{
    /// <summary>The six flags are in <c>_ccEager</c>.</summary>
    Eager,
    /// <summary>ADD: dst = src1 + src2.</summary>
    Add,
    /// <summary>ADC: dst = src1 + src2 + CF.</summary>
    Adc,
    /// <summary>SUB/CMP/NEG: dst = src1 - src2.</summary>
    Sub,
    /// <summary>SBB: dst = src1 - src2 - CF.</summary>
    Sbb,
    /// <summary>AND/OR/XOR/TEST: CF=OF=AF=0 (AF as QEMU leaves it).</summary>
    Logic,
    /// <summary>INC: dst = src1 + 1, CF kept in <c>_ccCarry</c>.</summary>
    Inc,
    /// <summary>DEC: dst = src1 - 1, CF kept in <c>_ccCarry</c>.</summary>
    Dec,
    /// <summary>MUL/IMUL: dst = low half of the product, src1 = 1 when it overflowed (QEMU's CC_OP_MUL).</summary>
    Mul,
}

public sealed partial class X86Cpu
{
    private static readonly byte[] Parity = BuildParity();

    private ulong _flagsRest = RFlags.Fixed1; // every bit but the six arithmetic ones
    private CcOp _ccOp = CcOp.Eager;
    private int _ccSize = 4;
    private ulong _ccDst, _ccSrc1, _ccSrc2, _ccEager;
    private bool _ccCarry;
    private bool _eagerHasResult;
    private ulong _eagerDst;
    private int _eagerSize = 4;

    private static byte[] BuildParity()
    {
        var t = new byte[256];
        for (int i = 0; i < 256; i++) t[i] = (byte)((BitOperations.PopCount((uint)i) & 1) == 0 ? 1 : 0);
        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Mask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong SignBit(int size) => 1UL << (size * 8 - 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long SignExtend(ulong v, int size) => size switch
    {
        1 => (sbyte)v,
        2 => (short)v,
        4 => (int)v,
        _ => (long)v,
    };

    /// <summary>The lazy arithmetic-flag state, saved so that a faulting write can leave the flags as they were.</summary>
    private readonly record struct CcState(CcOp Op, int Size, ulong Dst, ulong Src1, ulong Src2, ulong Eager, bool Carry, bool HasResult, ulong EagerDst, int EagerSize);

    private CcState SaveCc() => new(_ccOp, _ccSize, _ccDst, _ccSrc1, _ccSrc2, _ccEager, _ccCarry, _eagerHasResult, _eagerDst, _eagerSize);

    private void RestoreCc(in CcState s)
    {
        _ccOp = s.Op; _ccSize = s.Size; _ccDst = s.Dst; _ccSrc1 = s.Src1; _ccSrc2 = s.Src2; _ccEager = s.Eager; _ccCarry = s.Carry;
        _eagerHasResult = s.HasResult; _eagerDst = s.EagerDst; _eagerSize = s.EagerSize;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetCc(CcOp op, int size, ulong dst, ulong src1, ulong src2)
    {
        _ccOp = op;
        _ccSize = size;
        _ccDst = dst;
        _ccSrc1 = src1;
        _ccSrc2 = src2;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetLogic(int size, ulong result)
    {
        _ccOp = CcOp.Logic;
        _ccSize = size;
        _ccDst = result;
    }

    /// <summary>Sets the six arithmetic flags eagerly (bits outside <see cref="RFlags.Arith"/> ignored).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetEager(ulong arith)
    {
        _ccOp = CcOp.Eager;
        _ccEager = arith & RFlags.Arith;
        _eagerHasResult = false;
    }

    /// <summary>
    /// Sets the flags eagerly and remembers the result they came from (multiplies, shifts, bit counts), as QEMU's
    /// lazy-flags state does: BT* then derives its undefined flags from that result (see <see cref="LazyResult"/>).
    /// </summary>
    private void SetEagerWithResult(ulong arith, ulong dst, int size)
    {
        SetEager(arith);
        _eagerHasResult = true;
        _eagerDst = dst;
        _eagerSize = size;
    }

    /// <summary>
    /// Whether the last flag-setting operation was one QEMU keeps as "result of a given width" (add, adc, sub, sbb,
    /// logic, inc, dec, mul, shl, sar, bit counts), and that result and width.
    /// </summary>
    private bool LazyResult(out ulong dst, out int size)
    {
        if (_ccOp != CcOp.Eager)
        {
            dst = _ccDst;
            size = _ccSize;
            return true;
        }
        dst = _eagerDst;
        size = _eagerSize;
        return _eagerHasResult;
    }

    private static ulong SzpFlags(ulong dst, int size)
    {
        ulong m = Mask(size);
        ulong f = Parity[(int)(dst & 0xFF)] != 0 ? RFlags.PF : 0;
        if ((dst & m) == 0) f |= RFlags.ZF;
        if ((dst & SignBit(size)) != 0) f |= RFlags.SF;
        return f;
    }

    /// <summary>Materialises the six arithmetic flags.</summary>
    private ulong ArithFlags()
    {
        if (_ccOp == CcOp.Eager) return _ccEager;
        int size = _ccSize;
        ulong dst = _ccDst & Mask(size), a = _ccSrc1, b = _ccSrc2, sign = SignBit(size);
        ulong f = SzpFlags(dst, size);
        switch (_ccOp)
        {
            case CcOp.Add:
            case CcOp.Adc:
                if ((((a & b) | ((a | b) & ~dst)) & sign) != 0) f |= RFlags.CF;
                if ((((a ^ dst) & (b ^ dst)) & sign) != 0) f |= RFlags.OF;
                f |= (a ^ b ^ dst) & RFlags.AF;
                break;
            case CcOp.Sub:
            case CcOp.Sbb:
                if ((((~a & b) | (~(a ^ b) & dst)) & sign) != 0) f |= RFlags.CF;
                if ((((a ^ b) & (a ^ dst)) & sign) != 0) f |= RFlags.OF;
                f |= (a ^ b ^ dst) & RFlags.AF;
                break;
            case CcOp.Logic:
                break;
            case CcOp.Inc:
                if (_ccCarry) f |= RFlags.CF;
                if (dst == sign) f |= RFlags.OF;
                if ((dst & 0xF) == 0) f |= RFlags.AF;
                break;
            case CcOp.Dec:
                if (_ccCarry) f |= RFlags.CF;
                if (dst == sign - 1) f |= RFlags.OF;
                if ((dst & 0xF) == 0xF) f |= RFlags.AF;
                break;
            case CcOp.Mul:
                if (a != 0) f |= RFlags.CF | RFlags.OF;
                break;
        }
        return f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool CarryFlag()
    {
        switch (_ccOp)
        {
            case CcOp.Sub:
                return (_ccSrc1 & Mask(_ccSize)) < (_ccSrc2 & Mask(_ccSize));
            case CcOp.Logic:
                return false;
            case CcOp.Inc:
            case CcOp.Dec:
                return _ccCarry;
            case CcOp.Eager:
                return (_ccEager & RFlags.CF) != 0;
            default:
                return (ArithFlags() & RFlags.CF) != 0;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ZeroFlag() => _ccOp == CcOp.Eager ? (_ccEager & RFlags.ZF) != 0 : (_ccDst & Mask(_ccSize)) == 0;

    /// <summary>RFLAGS as software sees it.</summary>
    public ulong Rflags
    {
        get => _flagsRest | ArithFlags();
        set => LoadFlags(value);
    }

    private void LoadFlags(ulong value)
    {
        SetEager(value);
        bool oldAc = (_flagsRest & RFlags.AC) != 0;
        _flagsRest = (value & ~RFlags.Arith & 0x3F_7FD7) | RFlags.Fixed1;
        bool ac = (_flagsRest & RFlags.AC) != 0;
        if (ac != oldAc) Context.AlignmentCheck = ac;
    }

    /// <summary>Evaluates an x86 condition code (0..15, the low nibble of Jcc/SETcc/CMOVcc opcodes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool Condition(int cc)
    {
        // The two commonest cases inline: JE/JNE on any lazy result, JB/JAE after CMP/SUB.
        if (cc is 4 or 5 && _ccOp != CcOp.Eager) return ((_ccDst & Mask(_ccSize)) == 0) == (cc == 4);
        if (cc is 2 or 3 && _ccOp == CcOp.Sub)
        {
            ulong m = Mask(_ccSize);
            return ((_ccSrc1 & m) < (_ccSrc2 & m)) == (cc == 2);
        }
        return ConditionSlow(cc);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool ConditionSlow(int cc)
    {
        if (_ccOp == CcOp.Sub)
        {
            int size = _ccSize;
            ulong m = Mask(size);
            ulong a = _ccSrc1 & m, b = _ccSrc2 & m;
            long sa = SignExtend(a, size), sb = SignExtend(b, size);
            switch (cc)
            {
                case 2: return a < b;
                case 3: return a >= b;
                case 4: return a == b;
                case 5: return a != b;
                case 6: return a <= b;
                case 7: return a > b;
                case 12: return sa < sb;
                case 13: return sa >= sb;
                case 14: return sa <= sb;
                case 15: return sa > sb;
            }
        }
        else if (cc is 4 or 5)
        {
            return ZeroFlag() == (cc == 4);
        }

        ulong f = ArithFlags();
        bool r = (cc >> 1) switch
        {
            0 => (f & RFlags.OF) != 0,
            1 => (f & RFlags.CF) != 0,
            2 => (f & RFlags.ZF) != 0,
            3 => (f & (RFlags.CF | RFlags.ZF)) != 0,
            4 => (f & RFlags.SF) != 0,
            5 => (f & RFlags.PF) != 0,
            6 => ((f & RFlags.SF) != 0) != ((f & RFlags.OF) != 0),
            _ => (f & RFlags.ZF) != 0 || (((f & RFlags.SF) != 0) != ((f & RFlags.OF) != 0)),
        };
        return (cc & 1) == 0 ? r : !r;
    }
}
