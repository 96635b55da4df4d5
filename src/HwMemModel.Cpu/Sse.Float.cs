using System.Runtime.Intrinsics;
using Iced.Intel;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>
/// SSE/SSE2 floating point: scalar and packed add, subtract, multiply, divide, square root, min, max, compares,
/// COMISS/UCOMISS/COMISD/UCOMISD and the conversions. Results are IEEE 754 exact in every MXCSR rounding mode (RC), with
/// DAZ and FTZ and all six exception flags; a flag whose mask bit is clear raises #XM (CR4.OSXMMEXCPT=1) or #UD and
/// leaves the destination unchanged. Double-precision add/sub/mul/div/sqrt with RC=nearest and neither DAZ nor FTZ take
/// a fast path through .NET's IEEE double arithmetic when operands and result are normal numbers, the inexact flag then
/// coming from an exact error term (two-sum or fused multiply-add). RCPPS/RCPSS/RSQRTPS/RSQRTSS return the correctly
/// rounded reciprocal (hardware returns a 12-bit approximation whose exact bits differ).
/// </summary>
public sealed partial class X86Cpu
{
    private int SseRc => (int)(_mxcsr >> 13) & 3;
    private bool Daz => (_mxcsr & 0x40) != 0;
    private bool Ftz => (_mxcsr & 0x8000) != 0;

    /// <summary>Records SIMD exception flags; an unmasked one raises #XM (or #UD when CR4.OSXMMEXCPT=0) before anything is written.</summary>
    private void SseSignal(FpFlags flags)
    {
        if (flags == 0) return;
        uint unmasked = (uint)flags & ~(_mxcsr >> 7) & 0x3F;
        _mxcsr |= (uint)flags;
        if (unmasked == 0) return;
        if ((Context.Cr4Value & Cr4.OSXMMEXCPT) != 0) throw Fault(XmVector, "unmasked SIMD floating-point exception");
        throw Fault(Vectors.UD, "unmasked SIMD floating-point exception with CR4.OSXMMEXCPT=0");
    }

    private FpValue Unpack(ulong bits, bool dbl) => dbl ? SoftFloat.FromDouble(bits, Daz) : SoftFloat.FromSingle((uint)bits, Daz);

    private ulong Pack(in FpValue v, bool dbl, ref FpFlags flags)
        => dbl ? SoftFloat.ToDouble(in v, SseRc, ref flags, Ftz) : SoftFloat.ToSingle(in v, SseRc, ref flags, Ftz);

    /// <summary>One lane of ADD/SUB/MUL/DIV/SQRT/MIN/MAX.</summary>
    private ulong FpLane(Mnemonic op, ulong a, ulong b, bool dbl, ref FpFlags flags)
    {
        if (dbl && (_mxcsr & 0xE040) == 0 && TryFastDouble(op, a, b, ref flags, out ulong fast)) return fast;
        var fmt = dbl ? FpFormat.Double : FpFormat.Single;
        var x = Unpack(a, dbl);
        var y = Unpack(b, dbl);
        FpValue r;
        switch (op)
        {
            case Mnemonic.Addss or Mnemonic.Addsd or Mnemonic.Addps or Mnemonic.Addpd:
                r = SoftFloat.Arith(FpOp.Add, in x, in y, fmt, SseRc, true, ref flags, Ftz); break;
            case Mnemonic.Subss or Mnemonic.Subsd or Mnemonic.Subps or Mnemonic.Subpd:
                r = SoftFloat.Arith(FpOp.Sub, in x, in y, fmt, SseRc, true, ref flags, Ftz); break;
            case Mnemonic.Mulss or Mnemonic.Mulsd or Mnemonic.Mulps or Mnemonic.Mulpd:
                r = SoftFloat.Arith(FpOp.Mul, in x, in y, fmt, SseRc, true, ref flags, Ftz); break;
            case Mnemonic.Divss or Mnemonic.Divsd or Mnemonic.Divps or Mnemonic.Divpd:
                r = SoftFloat.Arith(FpOp.Div, in x, in y, fmt, SseRc, true, ref flags, Ftz); break;
            case Mnemonic.Sqrtss or Mnemonic.Sqrtsd or Mnemonic.Sqrtps or Mnemonic.Sqrtpd:
                r = SoftFloat.SquareRoot(in y, fmt, SseRc, ref flags, Ftz); break;
            case Mnemonic.Rcpss or Mnemonic.Rcpps:
            {
                var one = SoftFloat.FromInt64(1);
                FpFlags ignored = 0;
                r = SoftFloat.Arith(FpOp.Div, in one, in y, fmt, 0, true, ref ignored, false);
                break; // RCP/RSQRT raise no exceptions
            }
            case Mnemonic.Rsqrtss or Mnemonic.Rsqrtps:
            {
                var one = SoftFloat.FromInt64(1);
                FpFlags ignored = 0;
                var s = SoftFloat.SquareRoot(in y, FpFormat.Extended, 0, ref ignored);
                r = SoftFloat.Arith(FpOp.Div, in one, in s, fmt, 0, true, ref ignored, false);
                break;
            }
            default:
            {
                // MIN/MAX: a NaN in either operand (QNaN too, with IE) or two zeros return the second source.
                bool max = op is Mnemonic.Maxss or Mnemonic.Maxsd or Mnemonic.Maxps or Mnemonic.Maxpd;
                if (x.IsNaN || y.IsNaN) { flags |= FpFlags.Invalid; return b; }
                if (x.WasDenormal || y.WasDenormal) flags |= FpFlags.Denormal;
                int c = SoftFloat.Compare(in x, in y);
                bool takeA = max ? c == 1 : c == -1;
                if (takeA) return Daz && x.Class == FpClass.Zero ? ZeroBits(x.Sign, dbl) : a;
                return Daz && y.Class == FpClass.Zero ? ZeroBits(y.Sign, dbl) : b;
            }
        }
        FpFlags packFlags = 0;
        ulong res = Pack(in r, dbl, ref packFlags);
        return res;
    }

    private static ulong ZeroBits(bool sign, bool dbl) => sign ? (dbl ? 1UL << 63 : 1UL << 31) : 0;

    private static bool TryFastDouble(Mnemonic op, ulong ab, ulong bb, ref FpFlags flags, out ulong result)
    {
        result = 0;
        double a = BitConverter.UInt64BitsToDouble(ab), b = BitConverter.UInt64BitsToDouble(bb);
        const double tiny = 1.0 / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62) / (1L << 62); // 2^-930
        double r;
        bool inexact;
        switch (op)
        {
            case Mnemonic.Addsd or Mnemonic.Addpd or Mnemonic.Subsd or Mnemonic.Subpd:
            {
                if (!double.IsNormal(a) || !double.IsNormal(b)) return false;
                if (op is Mnemonic.Subsd or Mnemonic.Subpd) b = -b;
                r = a + b;
                if (r == 0) { result = 0; return true; } // x + (−x) with RC=nearest is +0, exact
                if (!double.IsNormal(r) || Math.Abs(r) < tiny) return false;
                double bv = r - a;
                double err = (a - (r - bv)) + (b - bv);
                inexact = err != 0;
                break;
            }
            case Mnemonic.Mulsd or Mnemonic.Mulpd:
                if (!double.IsNormal(a) || !double.IsNormal(b)) return false;
                r = a * b;
                if (!double.IsNormal(r) || Math.Abs(r) < tiny) return false;
                inexact = Math.FusedMultiplyAdd(a, b, -r) != 0;
                break;
            case Mnemonic.Divsd or Mnemonic.Divpd:
                if (!double.IsNormal(a) || !double.IsNormal(b)) return false;
                r = a / b;
                if (!double.IsNormal(r) || Math.Abs(r) < tiny) return false;
                inexact = Math.FusedMultiplyAdd(-r, b, a) != 0;
                break;
            case Mnemonic.Sqrtsd or Mnemonic.Sqrtpd:
                if (!double.IsNormal(b) || b < 0) return false;
                r = Math.Sqrt(b);
                inexact = Math.FusedMultiplyAdd(-r, r, b) != 0;
                break;
            default:
                return false;
        }
        if (inexact) flags |= FpFlags.Precision;
        result = BitConverter.DoubleToUInt64Bits(r);
        return true;
    }

    private bool ExecuteSseFloat(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        var m = i.Mnemonic;
        FpFlags flags = 0;
        switch (m)
        {
            case Mnemonic.Addss: case Mnemonic.Subss: case Mnemonic.Mulss: case Mnemonic.Divss: case Mnemonic.Sqrtss:
            case Mnemonic.Minss: case Mnemonic.Maxss: case Mnemonic.Rcpss: case Mnemonic.Rsqrtss:
            {
                var b = XmmOrMem(ref d, 1);
                var a = Dst(ref d);
                uint r = (uint)FpLane(m, a.AsUInt32().GetElement(0), b.AsUInt32().GetElement(0), false, ref flags);
                SseSignal(flags);
                Dst(ref d) = a.AsUInt32().WithElement(0, r).AsByte();
                return true;
            }
            case Mnemonic.Addsd: case Mnemonic.Subsd: case Mnemonic.Mulsd: case Mnemonic.Divsd: case Mnemonic.Sqrtsd:
            case Mnemonic.Minsd: case Mnemonic.Maxsd:
            {
                var b = XmmOrMem(ref d, 1);
                var a = Dst(ref d);
                ulong r = FpLane(m, a.AsUInt64().GetElement(0), b.AsUInt64().GetElement(0), true, ref flags);
                SseSignal(flags);
                Dst(ref d) = a.AsUInt64().WithElement(0, r).AsByte();
                return true;
            }
            case Mnemonic.Addps: case Mnemonic.Subps: case Mnemonic.Mulps: case Mnemonic.Divps: case Mnemonic.Sqrtps:
            case Mnemonic.Minps: case Mnemonic.Maxps: case Mnemonic.Rcpps: case Mnemonic.Rsqrtps:
            {
                var b = XmmOrMem(ref d, 1).AsUInt32();
                var a = Dst(ref d).AsUInt32();
                var r = a;
                for (int k = 0; k < 4; k++) r = r.WithElement(k, (uint)FpLane(m, a.GetElement(k), b.GetElement(k), false, ref flags));
                SseSignal(flags);
                Dst(ref d) = r.AsByte();
                return true;
            }
            case Mnemonic.Addpd: case Mnemonic.Subpd: case Mnemonic.Mulpd: case Mnemonic.Divpd: case Mnemonic.Sqrtpd:
            case Mnemonic.Minpd: case Mnemonic.Maxpd:
            {
                var b = XmmOrMem(ref d, 1).AsUInt64();
                var a = Dst(ref d).AsUInt64();
                var r = Vector128.Create(FpLane(m, a.GetElement(0), b.GetElement(0), true, ref flags), FpLane(m, a.GetElement(1), b.GetElement(1), true, ref flags));
                SseSignal(flags);
                Dst(ref d) = r.AsByte();
                return true;
            }
            case Mnemonic.Cmpss: case Mnemonic.Cmpsd: case Mnemonic.Cmpps: case Mnemonic.Cmppd:
            {
                bool dbl = m is Mnemonic.Cmpsd or Mnemonic.Cmppd;
                int lanes = m == Mnemonic.Cmpps ? 4 : m == Mnemonic.Cmppd ? 2 : 1;
                int pred = i.Immediate8 & 7;
                var b = XmmOrMem(ref d, 1);
                var a = Dst(ref d);
                var r = a;
                for (int k = 0; k < lanes; k++)
                {
                    bool t;
                    if (dbl)
                    {
                        t = ComparePredicate(Unpack(a.AsUInt64().GetElement(k), true), Unpack(b.AsUInt64().GetElement(k), true), pred, ref flags);
                        r = r.AsUInt64().WithElement(k, t ? ulong.MaxValue : 0).AsByte();
                    }
                    else
                    {
                        t = ComparePredicate(Unpack(a.AsUInt32().GetElement(k), false), Unpack(b.AsUInt32().GetElement(k), false), pred, ref flags);
                        r = r.AsUInt32().WithElement(k, t ? uint.MaxValue : 0).AsByte();
                    }
                }
                SseSignal(flags);
                Dst(ref d) = r;
                return true;
            }
            case Mnemonic.Comiss: case Mnemonic.Ucomiss: case Mnemonic.Comisd: case Mnemonic.Ucomisd:
            {
                bool dbl = m is Mnemonic.Comisd or Mnemonic.Ucomisd;
                var b = XmmOrMem(ref d, 1).AsUInt64().GetElement(0);
                var a = _xmm[Xi(i.Op0Register)].AsUInt64().GetElement(0);
                var x = Unpack(a, dbl);
                var y = Unpack(b, dbl);
                bool quiet = m is Mnemonic.Ucomiss or Mnemonic.Ucomisd;
                if (x.Class == FpClass.SNaN || y.Class == FpClass.SNaN || (!quiet && (x.IsNaN || y.IsNaN))) flags |= FpFlags.Invalid;
                if (x.WasDenormal || y.WasDenormal) flags |= FpFlags.Denormal;
                int c = SoftFloat.Compare(in x, in y);
                SseSignal(flags);
                SetEager(c switch { 2 => RFlags.ZF | RFlags.PF | RFlags.CF, -1 => RFlags.CF, 0 => RFlags.ZF, _ => 0 });
                return true;
            }

            // ---------------------------------------------------------- conversions
            case Mnemonic.Cvtsi2ss:
            case Mnemonic.Cvtsi2sd:
            {
                int size = OpSize(in i, 1);
                long v = SignExtend(ReadOp(ref d, 1, size), size);
                var x = SoftFloat.FromInt64(v);
                bool dbl = m == Mnemonic.Cvtsi2sd;
                ulong r = Pack(in x, dbl, ref flags);
                SseSignal(flags);
                Dst(ref d) = dbl ? Dst(ref d).AsUInt64().WithElement(0, r).AsByte() : Dst(ref d).AsUInt32().WithElement(0, (uint)r).AsByte();
                return true;
            }
            case Mnemonic.Cvtss2sd:
            case Mnemonic.Cvtsd2ss:
            {
                bool toDouble = m == Mnemonic.Cvtss2sd;
                var s = XmmOrMem(ref d, 1).AsUInt64().GetElement(0);
                var x = Unpack(s, !toDouble);
                if (x.WasDenormal) flags |= FpFlags.Denormal;
                ulong r = Pack(in x, toDouble, ref flags);
                SseSignal(flags);
                Dst(ref d) = toDouble ? Dst(ref d).AsUInt64().WithElement(0, r).AsByte() : Dst(ref d).AsUInt32().WithElement(0, (uint)r).AsByte();
                return true;
            }
            case Mnemonic.Cvtss2si: case Mnemonic.Cvttss2si:
            case Mnemonic.Cvtsd2si: case Mnemonic.Cvttsd2si:
            {
                bool dbl = m is Mnemonic.Cvtsd2si or Mnemonic.Cvttsd2si;
                var s = XmmOrMem(ref d, 1).AsUInt64().GetElement(0);
                var x = Unpack(s, dbl);
                if (x.WasDenormal) flags |= FpFlags.Denormal;
                int bits = RegSize(i.Op0Register) * 8;
                long r = SoftFloat.ToInt(in x, bits, SseRc, m is Mnemonic.Cvttss2si or Mnemonic.Cvttsd2si, ref flags);
                SseSignal(flags);
                WriteReg(i.Op0Register, bits == 32 ? (uint)r : (ulong)r);
                return true;
            }
            case Mnemonic.Cvtdq2pd:
            {
                var s = XmmOrMem(ref d, 1).AsInt32();
                var x0 = SoftFloat.FromInt64(s.GetElement(0));
                var x1 = SoftFloat.FromInt64(s.GetElement(1));
                Dst(ref d) = Vector128.Create(Pack(in x0, true, ref flags), Pack(in x1, true, ref flags)).AsByte();
                return true;
            }
            case Mnemonic.Cvtdq2ps:
            {
                var s = XmmOrMem(ref d, 1).AsInt32();
                var r = Vector128<uint>.Zero;
                for (int k = 0; k < 4; k++)
                {
                    var x = SoftFloat.FromInt64(s.GetElement(k));
                    r = r.WithElement(k, (uint)Pack(in x, false, ref flags));
                }
                SseSignal(flags);
                Dst(ref d) = r.AsByte();
                return true;
            }
            case Mnemonic.Cvtps2dq: case Mnemonic.Cvttps2dq:
            case Mnemonic.Cvtpd2dq: case Mnemonic.Cvttpd2dq:
            {
                bool dbl = m is Mnemonic.Cvtpd2dq or Mnemonic.Cvttpd2dq;
                bool trunc = m is Mnemonic.Cvttps2dq or Mnemonic.Cvttpd2dq;
                var s = XmmOrMem(ref d, 1);
                var r = Vector128<int>.Zero;
                for (int k = 0; k < (dbl ? 2 : 4); k++)
                {
                    var x = dbl ? Unpack(s.AsUInt64().GetElement(k), true) : Unpack(s.AsUInt32().GetElement(k), false);
                    if (x.WasDenormal) flags |= FpFlags.Denormal;
                    r = r.WithElement(k, (int)SoftFloat.ToInt(in x, 32, SseRc, trunc, ref flags));
                }
                SseSignal(flags);
                Dst(ref d) = r.AsByte();
                return true;
            }
            case Mnemonic.Cvtps2pd:
            {
                var s = XmmOrMem(ref d, 1).AsUInt32();
                var x0 = Unpack(s.GetElement(0), false);
                var x1 = Unpack(s.GetElement(1), false);
                if (x0.WasDenormal || x1.WasDenormal) flags |= FpFlags.Denormal;
                var r = Vector128.Create(Pack(in x0, true, ref flags), Pack(in x1, true, ref flags));
                SseSignal(flags);
                Dst(ref d) = r.AsByte();
                return true;
            }
            case Mnemonic.Cvtpd2ps:
            {
                var s = XmmOrMem(ref d, 1).AsUInt64();
                var x0 = Unpack(s.GetElement(0), true);
                var x1 = Unpack(s.GetElement(1), true);
                if (x0.WasDenormal || x1.WasDenormal) flags |= FpFlags.Denormal;
                var r = Vector128.Create((uint)Pack(in x0, false, ref flags), (uint)Pack(in x1, false, ref flags), 0u, 0u);
                SseSignal(flags);
                Dst(ref d) = r.AsByte();
                return true;
            }
            default:
                return false;
        }
    }

    /// <summary>CMPccSS/SD/PS/PD predicates 0-7: EQ, LT, LE, UNORD, NEQ, NLT, NLE, ORD; LT/LE/NLT/NLE signal on QNaNs too.</summary>
    private static bool ComparePredicate(FpValue a, FpValue b, int pred, ref FpFlags flags)
    {
        bool signalling = pred is 1 or 2 or 5 or 6;
        if (a.Class == FpClass.SNaN || b.Class == FpClass.SNaN || (signalling && (a.IsNaN || b.IsNaN))) flags |= FpFlags.Invalid;
        if (a.WasDenormal || b.WasDenormal) flags |= FpFlags.Denormal;
        int c = SoftFloat.Compare(in a, in b);
        return pred switch
        {
            0 => c == 0,
            1 => c == -1,
            2 => c is -1 or 0,
            3 => c == 2,
            4 => c != 0,
            5 => c is not -1,
            6 => c is 1 or 2,
            _ => c != 2,
        };
    }
}
