using System.Numerics;

namespace HwMemModel.Cpu;

/// <summary>
/// IEEE 754 floating-point exception flags, in the bit positions that the x87 status word and MXCSR share
/// (SDM Vol. 1 §4.9, §8.1.3, §10.2.3).
/// </summary>
[Flags]
internal enum FpFlags : byte
{
    None = 0,
    /// <summary>IE: invalid operation.</summary>
    Invalid = 1,
    /// <summary>DE: denormal operand.</summary>
    Denormal = 2,
    /// <summary>ZE: divide by zero.</summary>
    ZeroDivide = 4,
    /// <summary>OE: numeric overflow.</summary>
    Overflow = 8,
    /// <summary>UE: numeric underflow.</summary>
    Underflow = 16,
    /// <summary>PE: inexact result (precision).</summary>
    Precision = 32,
}

/// <summary>The class of an unpacked floating-point value.</summary>
internal enum FpClass : byte
{
    Zero,
    /// <summary>A finite non-zero value (normal or denormal), held normalized.</summary>
    Finite,
    Infinity,
    QNaN,
    SNaN,
    /// <summary>An x87 encoding the processor does not support (pseudo-NaN, pseudo-infinity, unnormal): an invalid operand.</summary>
    Unsupported,
}

/// <summary>
/// An unpacked floating-point value: for <see cref="FpClass.Finite"/>, value = Mant × 2^(Exp − 63) with bit 63 of
/// <see cref="Mant"/> set; for NaNs, <see cref="Mant"/> is the significand left-aligned with its integer bit set
/// (bit 62 is the quiet bit), as in the 80-bit format.
/// </summary>
internal struct FpValue
{
    public bool Sign;
    public FpClass Class;
    public bool WasDenormal;
    public int Exp;
    public ulong Mant;

    public static FpValue Zero(bool sign) => new() { Sign = sign, Class = FpClass.Zero };
    public static FpValue Inf(bool sign) => new() { Sign = sign, Class = FpClass.Infinity, Mant = 1UL << 63 };
    /// <summary>The default QNaN ("real indefinite"): negative, quiet bit only.</summary>
    public static FpValue Indefinite => new() { Sign = true, Class = FpClass.QNaN, Mant = 0xC000_0000_0000_0000 };
    public readonly bool IsNaN => Class is FpClass.QNaN or FpClass.SNaN;
}

/// <summary>A binary interchange format: significand precision (with the leading bit), exponent bias and the all-ones biased exponent.</summary>
internal readonly record struct FpFormat(int P, int Bias, int MaxExp)
{
    public static readonly FpFormat Single = new(24, 127, 0xFF);
    public static readonly FpFormat Double = new(53, 1023, 0x7FF);
    public static readonly FpFormat Extended = new(64, 16383, 0x7FFF);
    /// <summary>The extended exponent range with the significand rounded to <paramref name="p"/> bits (x87 precision control).</summary>
    public static FpFormat ExtendedWith(int p) => new(p, 16383, 0x7FFF);
}

/// <summary>A rounded result: biased exponent <see cref="E"/> and a significand of P bits whose bit P−1 is the leading (integer) bit.</summary>
internal readonly record struct FpRounded(bool Sign, int E, ulong Sig);

/// <summary>
/// Software floating point, exact for every rounding mode: add, subtract, multiply, divide and square root are computed
/// with at least two guard bits and a sticky bit, then rounded once to the destination's precision and exponent range.
/// Tininess is detected after rounding (as x86 processors do); a masked underflow delivers the denormal.
/// Rounding-control values are those of the x87 control word and MXCSR: 0 nearest even, 1 down, 2 up, 3 toward zero.
/// </summary>
internal static class SoftFloat
{
    // ------------------------------------------------------------------ unpack

    public static FpValue FromExtended(ulong mant, ushort signExp)
    {
        var v = new FpValue { Sign = (signExp & 0x8000) != 0 };
        int e = signExp & 0x7FFF;
        bool j = (mant >> 63) != 0;
        if (e == 0x7FFF)
        {
            if (!j) { v.Class = FpClass.Unsupported; v.Mant = mant; return v; }
            if ((mant << 1) == 0) { v.Class = FpClass.Infinity; v.Mant = mant; return v; }
            v.Class = (mant & (1UL << 62)) != 0 ? FpClass.QNaN : FpClass.SNaN;
            v.Mant = mant;
            return v;
        }
        if (e == 0)
        {
            if (mant == 0) { v.Class = FpClass.Zero; return v; }
            // Denormal (J=0) or pseudo-denormal (J=1): both mean mant × 2^(1 − 16383 − 63).
            int lz = BitOperations.LeadingZeroCount(mant);
            v.Class = FpClass.Finite;
            v.WasDenormal = true;
            v.Mant = mant << lz;
            v.Exp = 1 - 16383 - lz;
            return v;
        }
        if (!j) { v.Class = FpClass.Unsupported; v.Mant = mant; return v; } // unnormal
        v.Class = FpClass.Finite;
        v.Mant = mant;
        v.Exp = e - 16383;
        return v;
    }

    public static FpValue FromDouble(ulong bits, bool daz = false)
    {
        var v = new FpValue { Sign = (bits >> 63) != 0 };
        int e = (int)(bits >> 52) & 0x7FF;
        ulong frac = bits & 0xF_FFFF_FFFF_FFFFUL;
        if (e == 0x7FF)
        {
            v.Mant = (1UL << 63) | (frac << 11);
            v.Class = frac == 0 ? FpClass.Infinity : (frac & (1UL << 51)) != 0 ? FpClass.QNaN : FpClass.SNaN;
            return v;
        }
        if (e == 0)
        {
            if (frac == 0 || daz) { v.Class = FpClass.Zero; return v; }
            int lz = BitOperations.LeadingZeroCount(frac);
            v.Class = FpClass.Finite;
            v.WasDenormal = true;
            v.Mant = frac << lz;
            v.Exp = 63 - lz - 1074;
            return v;
        }
        v.Class = FpClass.Finite;
        v.Mant = (1UL << 63) | (frac << 11);
        v.Exp = e - 1023;
        return v;
    }

    public static FpValue FromSingle(uint bits, bool daz = false)
    {
        var v = new FpValue { Sign = (bits >> 31) != 0 };
        int e = (int)(bits >> 23) & 0xFF;
        ulong frac = bits & 0x7F_FFFFu;
        if (e == 0xFF)
        {
            v.Mant = (1UL << 63) | (frac << 40);
            v.Class = frac == 0 ? FpClass.Infinity : (frac & (1UL << 22)) != 0 ? FpClass.QNaN : FpClass.SNaN;
            return v;
        }
        if (e == 0)
        {
            if (frac == 0 || daz) { v.Class = FpClass.Zero; return v; }
            int lz = BitOperations.LeadingZeroCount(frac);
            v.Class = FpClass.Finite;
            v.WasDenormal = true;
            v.Mant = frac << lz;
            v.Exp = 63 - lz - 149;
            return v;
        }
        v.Class = FpClass.Finite;
        v.Mant = (1UL << 63) | (frac << 40);
        v.Exp = e - 127;
        return v;
    }

    /// <summary>An exact value for a signed integer.</summary>
    public static FpValue FromInt64(long x)
    {
        if (x == 0) return FpValue.Zero(false);
        ulong m = x < 0 ? (ulong)-x : (ulong)x; // -long.MinValue wraps to 2^63, which is its magnitude
        int lz = BitOperations.LeadingZeroCount(m);
        return new FpValue { Sign = x < 0, Class = FpClass.Finite, Mant = m << lz, Exp = 63 - lz };
    }

    /// <summary>An exact value for an unsigned integer.</summary>
    public static FpValue FromUInt64(ulong m)
    {
        if (m == 0) return FpValue.Zero(false);
        int lz = BitOperations.LeadingZeroCount(m);
        return new FpValue { Class = FpClass.Finite, Mant = m << lz, Exp = 63 - lz };
    }

    // ------------------------------------------------------------------ round and pack

    /// <summary>
    /// Rounds value = <paramref name="m"/> × 2^(<paramref name="exp"/> − 127) (bit 127 of m set), plus a sticky
    /// fraction when <paramref name="sticky"/>, to <paramref name="f"/>. With <paramref name="ftz"/> a tiny result
    /// becomes zero (MXCSR.FTZ with underflow masked).
    /// </summary>
    public static FpRounded Round(bool sign, int exp, UInt128 m, bool sticky, FpFormat f, int rc, ref FpFlags flags, bool ftz = false)
    {
        int e = exp + f.Bias;
        int p = f.P;
        bool tiny = false;
        if (e < 1)
        {
            // Tininess after rounding: tiny unless rounding to P bits with an unbounded exponent reaches 2^emin.
            tiny = e < 0 || !RoundsUpToNextBinade(sign, m, sticky, p, rc);
            if (tiny && ftz)
            {
                flags |= FpFlags.Underflow | FpFlags.Precision;
                return new FpRounded(sign, 0, 0);
            }
        }
        int shift = 128 - p;
        if (e < 1)
        {
            shift += 1 - e;
            e = 0;
        }
        ulong sig;
        bool roundBit, rest;
        if (shift > 128)
        {
            sig = 0;
            roundBit = false;
            rest = true;
        }
        else if (shift == 128)
        {
            sig = 0;
            roundBit = (m >> 127) != 0;
            rest = (m << 1) != 0 || sticky;
        }
        else
        {
            sig = (ulong)(m >> shift);
            UInt128 dropped = m << (128 - shift);
            roundBit = (dropped >> 127) != 0;
            rest = (dropped << 1) != 0 || sticky;
        }
        bool inexact = roundBit || rest;
        bool inc = rc switch
        {
            0 => roundBit && (rest || (sig & 1) != 0),
            1 => inexact && sign,
            2 => inexact && !sign,
            _ => false,
        };
        if (inc)
        {
            sig++;
            if (p == 64 ? sig == 0 : sig == 1UL << p)
            {
                sig = 1UL << (p - 1);
                e++;
            }
            else if (e == 0 && sig == 1UL << (p - 1)) e = 1; // a denormal rounded up to the smallest normal
        }
        if (inexact)
        {
            flags |= FpFlags.Precision;
            if (tiny) flags |= FpFlags.Underflow;
        }
        if (e >= f.MaxExp)
        {
            flags |= FpFlags.Overflow | FpFlags.Precision;
            bool toInf = rc == 0 || (rc == 2 && !sign) || (rc == 1 && sign);
            return toInf ? new FpRounded(sign, f.MaxExp, 1UL << (p - 1)) : new FpRounded(sign, f.MaxExp - 1, p == 64 ? ulong.MaxValue : (1UL << p) - 1);
        }
        return new FpRounded(sign, e, sig);
    }

    private static bool RoundsUpToNextBinade(bool sign, UInt128 m, bool sticky, int p, int rc)
    {
        // All of the top P bits set, and the rounding increments.
        int shift = 128 - p;
        ulong sig = (ulong)(m >> shift);
        ulong ones = p == 64 ? ulong.MaxValue : (1UL << p) - 1;
        if (sig != ones) return false;
        UInt128 dropped = m << (128 - shift);
        bool roundBit = (dropped >> 127) != 0, rest = (dropped << 1) != 0 || sticky;
        return rc switch
        {
            0 => roundBit,
            1 => sign && (roundBit || rest),
            2 => !sign && (roundBit || rest),
            _ => false,
        };
    }

    /// <summary>Rounds a finite value to <paramref name="f"/>.</summary>
    public static FpRounded Round(in FpValue v, FpFormat f, int rc, ref FpFlags flags, bool ftz = false)
        => Round(v.Sign, v.Exp, (UInt128)v.Mant << 64, false, f, rc, ref flags, ftz);

    public static void PackExtended(FpRounded r, int p, out ulong mant, out ushort signExp)
    {
        mant = p == 64 ? r.Sig : r.Sig << (64 - p);
        signExp = (ushort)((r.Sign ? 0x8000 : 0) | r.E);
    }

    public static ulong PackDouble(FpRounded r)
        => (r.Sign ? 1UL << 63 : 0) | ((ulong)r.E << 52) | (r.Sig & 0xF_FFFF_FFFF_FFFFUL);

    public static uint PackSingle(FpRounded r)
        => (r.Sign ? 1u << 31 : 0) | ((uint)r.E << 23) | (uint)(r.Sig & 0x7F_FFFF);

    /// <summary>Packs any value (NaN, infinity, zero or finite) as an extended real, rounding finite values to <paramref name="p"/> bits.</summary>
    public static void ToExtended(in FpValue v, int p, int rc, ref FpFlags flags, out ulong mant, out ushort signExp)
    {
        ushort s = (ushort)(v.Sign ? 0x8000 : 0);
        switch (v.Class)
        {
            case FpClass.Zero: mant = 0; signExp = s; return;
            case FpClass.Infinity: mant = 1UL << 63; signExp = (ushort)(s | 0x7FFF); return;
            case FpClass.QNaN:
            case FpClass.SNaN:
            case FpClass.Unsupported:
                mant = v.Mant | (3UL << 62);
                signExp = (ushort)(s | 0x7FFF);
                return;
            default:
                PackExtended(Round(in v, FpFormat.ExtendedWith(p), rc, ref flags), p, out mant, out signExp);
                return;
        }
    }

    /// <summary>Converts any value to a double (NaNs quieted and truncated; an SNaN sets IE).</summary>
    public static ulong ToDouble(in FpValue v, int rc, ref FpFlags flags, bool ftz = false)
    {
        ulong s = v.Sign ? 1UL << 63 : 0;
        switch (v.Class)
        {
            case FpClass.Zero: return s;
            case FpClass.Infinity: return s | 0x7FF0_0000_0000_0000UL;
            case FpClass.SNaN:
            case FpClass.QNaN:
                if (v.Class == FpClass.SNaN) flags |= FpFlags.Invalid;
                return s | 0x7FF8_0000_0000_0000UL | ((v.Mant >> 11) & 0xF_FFFF_FFFF_FFFFUL);
            case FpClass.Unsupported:
                flags |= FpFlags.Invalid;
                return 0xFFF8_0000_0000_0000UL;
            default:
                return PackDouble(Round(in v, FpFormat.Double, rc, ref flags, ftz));
        }
    }

    /// <summary>Converts any value to a single (NaNs quieted and truncated; an SNaN sets IE).</summary>
    public static uint ToSingle(in FpValue v, int rc, ref FpFlags flags, bool ftz = false)
    {
        uint s = v.Sign ? 1u << 31 : 0;
        switch (v.Class)
        {
            case FpClass.Zero: return s;
            case FpClass.Infinity: return s | 0x7F80_0000u;
            case FpClass.SNaN:
            case FpClass.QNaN:
                if (v.Class == FpClass.SNaN) flags |= FpFlags.Invalid;
                return s | 0x7FC0_0000u | (uint)((v.Mant >> 40) & 0x7F_FFFF);
            case FpClass.Unsupported:
                flags |= FpFlags.Invalid;
                return 0xFFC0_0000u;
            default:
                return PackSingle(Round(in v, FpFormat.Single, rc, ref flags, ftz));
        }
    }

    // ------------------------------------------------------------------ arithmetic on finite values

    /// <summary>A finite non-zero intermediate: value = M × 2^(Exp − 127), bit 127 of M set, plus a sticky fraction.</summary>
    public readonly record struct Wide(bool Sign, int Exp, UInt128 M, bool Sticky);

    /// <summary>Exact sum of two finite non-zero values; null when the sum is exactly zero.</summary>
    public static Wide? Add(in FpValue a, in FpValue b, bool negateB)
    {
        bool sb = b.Sign ^ negateB;
        // Order by magnitude so that |x| >= |y|.
        bool aBigger = a.Exp > b.Exp || (a.Exp == b.Exp && a.Mant >= b.Mant);
        var (xs, xe, xm, ys, ye, ym) = aBigger ? (a.Sign, a.Exp, a.Mant, sb, b.Exp, b.Mant) : (sb, b.Exp, b.Mant, a.Sign, a.Exp, a.Mant);
        UInt128 x = (UInt128)xm << 62;
        UInt128 y = (UInt128)ym << 62;
        int d = xe - ye;
        bool sticky = false;
        if (d >= 128) { sticky = y != 0; y = 0; }
        else if (d > 0)
        {
            sticky = (y << (128 - d)) != 0;
            y >>= d;
        }
        UInt128 s;
        if (xs == ys) s = x + y;
        else
        {
            s = x - y;
            if (sticky) s -= 1; // the true y is larger than the truncated y by a fraction of one unit
        }
        if (s == 0 && !sticky) return null;
        int lz = (int)UInt128.LeadingZeroCount(s);
        return new Wide(xs, xe + 2 - lz, s << lz, sticky);
    }

    public static Wide Mul(in FpValue a, in FpValue b)
    {
        UInt128 p = (UInt128)a.Mant * b.Mant;
        int exp = a.Exp + b.Exp;
        if ((p >> 127) != 0) exp++;
        else p <<= 1;
        return new Wide(a.Sign ^ b.Sign, exp, p, false);
    }

    public static Wide Div(in FpValue a, in FpValue b)
    {
        ulong ma = a.Mant, mb = b.Mant;
        int exp = a.Exp - b.Exp;
        UInt128 num;
        if (ma >= mb) num = (UInt128)ma << 63;
        else
        {
            num = (UInt128)ma << 64;
            exp--;
        }
        UInt128 q = num / mb;
        UInt128 r = num - q * mb;
        UInt128 num2 = r << 64;
        UInt128 q2 = num2 / mb;
        UInt128 r2 = num2 - q2 * mb;
        return new Wide(a.Sign ^ b.Sign, exp, (q << 64) | q2, r2 != 0);
    }

    /// <summary>Square root of a finite positive value.</summary>
    public static Wide Sqrt(in FpValue a)
    {
        int e = a.Exp - 63;
        UInt128 m = a.Mant;
        if ((e & 1) != 0) { m <<= 1; e--; }
        // Digit-by-digit (two radicand bits per root bit): 33 pairs from m (66 bits), then 34 zero pairs.
        UInt128 root = 0, rem = 0;
        const int pairs = 33, extra = 34;
        for (int k = 0; k < pairs + extra; k++)
        {
            int shift = 2 * (pairs - 1 - k);
            ulong pair = shift >= 0 ? (ulong)(m >> shift) & 3 : 0;
            rem = (rem << 2) | pair;
            UInt128 trial = (root << 2) | 1;
            if (rem >= trial)
            {
                rem -= trial;
                root = (root << 1) | 1;
            }
            else root <<= 1;
        }
        // root = floor(sqrt(m × 4^extra)), so sqrt(value) = root × 2^(e/2 − extra).
        int len = 128 - (int)UInt128.LeadingZeroCount(root);
        return new Wide(false, e / 2 - extra + len - 1, root << (128 - len), rem != 0);
    }

    public static FpRounded Round(in Wide w, FpFormat f, int rc, ref FpFlags flags, bool ftz = false)
        => Round(w.Sign, w.Exp, w.M, w.Sticky, f, rc, ref flags, ftz);

    // ------------------------------------------------------------------ integers

    /// <summary>
    /// Rounds a finite value to an integer magnitude with <paramref name="rc"/> (or toward zero when
    /// <paramref name="truncate"/>); false when the magnitude does not fit 64 bits.
    /// </summary>
    public static bool RoundToInteger(in FpValue v, int rc, bool truncate, out ulong magnitude, out bool inexact)
    {
        magnitude = 0;
        inexact = false;
        if (v.Class == FpClass.Zero) return true;
        if (v.Exp >= 64) return false;
        ulong ip;
        bool roundBit, rest;
        if (v.Exp < 0)
        {
            ip = 0;
            roundBit = v.Exp == -1;
            rest = v.Exp < -1 || (v.Mant << 1) != 0;
        }
        else
        {
            ip = v.Exp == 63 ? v.Mant : v.Mant >> (63 - v.Exp);
            ulong frac = v.Exp == 63 ? 0 : v.Mant << (v.Exp + 1);
            roundBit = (frac >> 63) != 0;
            rest = (frac << 1) != 0;
        }
        inexact = roundBit || rest;
        bool inc = truncate ? false : rc switch
        {
            0 => roundBit && (rest || (ip & 1) != 0),
            1 => inexact && v.Sign,
            2 => inexact && !v.Sign,
            _ => false,
        };
        if (inc)
        {
            if (ip == ulong.MaxValue) return false;
            ip++;
        }
        magnitude = ip;
        return true;
    }

    /// <summary>
    /// Converts to a signed integer of <paramref name="bits"/> bits; out of range or NaN gives the integer indefinite
    /// (the most negative value) with IE.
    /// </summary>
    public static long ToInt(in FpValue v, int bits, int rc, bool truncate, ref FpFlags flags)
    {
        long indefinite = bits == 64 ? long.MinValue : -(1L << (bits - 1));
        if (v.Class is not (FpClass.Zero or FpClass.Finite))
        {
            flags |= FpFlags.Invalid;
            return indefinite;
        }
        if (!RoundToInteger(in v, rc, truncate, out ulong mag, out bool inexact))
        {
            flags |= FpFlags.Invalid;
            return indefinite;
        }
        ulong limit = 1UL << (bits - 1); // magnitude limit: 2^(n−1) − 1 positive, 2^(n−1) negative
        if (v.Sign ? mag > limit : mag >= limit)
        {
            flags |= FpFlags.Invalid;
            return indefinite;
        }
        if (inexact) flags |= FpFlags.Precision;
        return v.Sign ? -(long)mag : (long)mag;
    }

    /// <summary>Rounds a finite value to an integral value in the same representation (FRNDINT, ROUNDSD-like).</summary>
    public static FpValue RoundToIntegral(in FpValue v, int rc, ref FpFlags flags)
    {
        if (v.Class != FpClass.Finite || v.Exp >= 63) return v;
        RoundToInteger(in v, rc, false, out ulong mag, out bool inexact);
        if (inexact) flags |= FpFlags.Precision;
        if (mag == 0) return FpValue.Zero(v.Sign);
        var r = FromUInt64(mag);
        r.Sign = v.Sign;
        return r;
    }

    // ------------------------------------------------------------------ compare

    /// <summary>Compares two values: −1 less, 0 equal, 1 greater, 2 unordered.</summary>
    public static int Compare(in FpValue a, in FpValue b)
    {
        if (a.IsNaN || b.IsNaN || a.Class == FpClass.Unsupported || b.Class == FpClass.Unsupported) return 2;
        if (a.Class == FpClass.Zero && b.Class == FpClass.Zero) return 0;
        if (a.Sign != b.Sign) return a.Sign ? -1 : 1;
        int mag = MagnitudeCompare(in a, in b);
        return a.Sign ? -mag : mag;
    }

    private static int MagnitudeCompare(in FpValue a, in FpValue b)
    {
        int ra = Rank(in a), rb = Rank(in b);
        if (ra != rb) return ra < rb ? -1 : 1;
        if (ra != 1) return 0;
        if (a.Exp != b.Exp) return a.Exp < b.Exp ? -1 : 1;
        return a.Mant == b.Mant ? 0 : a.Mant < b.Mant ? -1 : 1;

        static int Rank(in FpValue v) => v.Class switch { FpClass.Zero => 0, FpClass.Finite => 1, _ => 2 };
    }

    // ------------------------------------------------------------------ complete operations (special values included)

    /// <summary>Turns a rounded result back into an unpacked value (exactly representable in its format).</summary>
    public static FpValue FromRounded(FpRounded r, FpFormat f)
    {
        if (r.E == f.MaxExp) return FpValue.Inf(r.Sign);
        if (r.Sig == 0) return FpValue.Zero(r.Sign);
        int l = 63 - BitOperations.LeadingZeroCount(r.Sig);
        int e = Math.Max(r.E, 1);
        return new FpValue { Sign = r.Sign, Class = FpClass.Finite, Mant = r.Sig << (63 - l), Exp = e - f.Bias - (f.P - 1) + l };
    }

    /// <summary>
    /// The NaN result of an operation with a NaN or unsupported operand, with IE as the SDM's Table 4-7 says: SSE returns
    /// the first source if it is a NaN, else the second; x87 prefers a QNaN over an SNaN and else the larger significand.
    /// </summary>
    public static FpValue PropagateNaN(in FpValue a, in FpValue b, bool sseRule, ref FpFlags flags)
    {
        if (a.Class == FpClass.Unsupported || b.Class == FpClass.Unsupported)
        {
            flags |= FpFlags.Invalid;
            return FpValue.Indefinite;
        }
        if (a.Class == FpClass.SNaN || b.Class == FpClass.SNaN) flags |= FpFlags.Invalid;
        FpValue r;
        if (!a.IsNaN) r = b;
        else if (!b.IsNaN || sseRule) r = a;
        else if (a.Class != b.Class) r = a.Class == FpClass.QNaN ? a : b;
        else r = (b.Mant & ~(1UL << 62)) > (a.Mant & ~(1UL << 62)) ? b : a;
        r.Mant |= 1UL << 62;
        r.Class = FpClass.QNaN;
        return r;
    }

    /// <summary>Add, subtract, multiply or divide with IEEE special cases, rounded to <paramref name="f"/>.</summary>
    public static FpValue Arith(FpOp op, in FpValue a, in FpValue b, FpFormat f, int rc, bool sseRule, ref FpFlags flags, bool ftz = false)
    {
        if (a.IsNaN || b.IsNaN || a.Class == FpClass.Unsupported || b.Class == FpClass.Unsupported)
            return PropagateNaN(in a, in b, sseRule, ref flags);
        if (a.WasDenormal || b.WasDenormal) flags |= FpFlags.Denormal;
        bool xs = a.Sign ^ b.Sign;
        switch (op)
        {
            case FpOp.Add:
            case FpOp.Sub:
            {
                bool sb = b.Sign ^ (op == FpOp.Sub);
                if (a.Class == FpClass.Infinity || b.Class == FpClass.Infinity)
                {
                    if (a.Class == FpClass.Infinity && b.Class == FpClass.Infinity && a.Sign != sb) return InvalidResult(ref flags);
                    return FpValue.Inf(a.Class == FpClass.Infinity ? a.Sign : sb);
                }
                if (a.Class == FpClass.Zero && b.Class == FpClass.Zero) return FpValue.Zero(a.Sign == sb ? a.Sign : rc == 1);
                if (a.Class == FpClass.Zero)
                {
                    var nb = b;
                    nb.Sign = sb;
                    return FromRounded(Round(in nb, f, rc, ref flags, ftz), f);
                }
                if (b.Class == FpClass.Zero) return FromRounded(Round(in a, f, rc, ref flags, ftz), f);
                var w = Add(in a, in b, op == FpOp.Sub);
                return w is { } s ? FromRounded(Round(in s, f, rc, ref flags, ftz), f) : FpValue.Zero(rc == 1);
            }
            case FpOp.Mul:
                if ((a.Class == FpClass.Infinity && b.Class == FpClass.Zero) || (a.Class == FpClass.Zero && b.Class == FpClass.Infinity))
                    return InvalidResult(ref flags);
                if (a.Class == FpClass.Infinity || b.Class == FpClass.Infinity) return FpValue.Inf(xs);
                if (a.Class == FpClass.Zero || b.Class == FpClass.Zero) return FpValue.Zero(xs);
                return FromRounded(Round(Mul(in a, in b), f, rc, ref flags, ftz), f);
            default:
                if (a.Class == FpClass.Infinity && b.Class == FpClass.Infinity) return InvalidResult(ref flags);
                if (a.Class == FpClass.Infinity) return FpValue.Inf(xs);
                if (b.Class == FpClass.Infinity) return FpValue.Zero(xs);
                if (b.Class == FpClass.Zero)
                {
                    if (a.Class == FpClass.Zero) return InvalidResult(ref flags);
                    flags |= FpFlags.ZeroDivide;
                    return FpValue.Inf(xs);
                }
                if (a.Class == FpClass.Zero) return FpValue.Zero(xs);
                return FromRounded(Round(Div(in a, in b), f, rc, ref flags, ftz), f);
        }
    }

    /// <summary>Square root with IEEE special cases.</summary>
    public static FpValue SquareRoot(in FpValue a, FpFormat f, int rc, ref FpFlags flags, bool ftz = false)
    {
        if (a.IsNaN || a.Class == FpClass.Unsupported) return PropagateNaN(in a, in a, true, ref flags);
        if (a.WasDenormal) flags |= FpFlags.Denormal;
        if (a.Class == FpClass.Zero) return a;
        if (a.Sign) return InvalidResult(ref flags);
        if (a.Class == FpClass.Infinity) return a;
        return FromRounded(Round(Sqrt(in a), f, rc, ref flags, ftz), f);
    }

    private static FpValue InvalidResult(ref FpFlags flags)
    {
        flags |= FpFlags.Invalid;
        return FpValue.Indefinite;
    }
}

/// <summary>A basic arithmetic operation.</summary>
internal enum FpOp : byte
{
    Add,
    Sub,
    Mul,
    Div,
}
