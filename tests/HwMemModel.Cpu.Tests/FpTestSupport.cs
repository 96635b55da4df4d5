using System.Numerics;
using HwMemModel.Bus;
using HwMemModel.Mmu;
using Iced.Intel;

namespace HwMemModel.Cpu.Tests;

/// <summary>
/// Helpers for the x87/SSE tests: a 64-bit harness with CR4.OSFXSR set, an IDT whose vector v handler reports v on the
/// value port and exits, memory access, and an exact rational oracle for 80-bit extended arithmetic.
/// </summary>
internal static class FpTestSupport
{
    public const ulong Idt = 0x30_0000;
    public const ulong Gdt = 0x30_1000;
    public const ulong Stubs = 0x30_2000;
    public const ulong Data = CpuHarness.DataBase;
    /// <summary>Value the vector handlers write before the vector (so a test can tell a fault from a normal value).</summary>
    public const uint FaultMarker = 0xFA017;

    public static CpuHarness Start(Action<Assembler> build, bool osfxsr = true)
    {
        var h = new CpuHarness();
        h.Start64(build);
        if (osfxsr) h.Context.SetCr4(h.Context.Cr4Value | Cr4.OSFXSR | Cr4.OSXMMEXCPT);
        for (int v = 0; v < 32; v++)
        {
            ulong stub = Stubs + (ulong)v * 32;
            // mov eax, FaultMarker; out 0xE0, eax; mov eax, v; out 0xE0, eax; mov al, 1; out 0xEB, al
            var code = new List<byte> { 0xB8 };
            code.AddRange(BitConverter.GetBytes(FaultMarker));
            code.AddRange([0xE7, 0xE0, 0xB8]);
            code.AddRange(BitConverter.GetBytes(v));
            code.AddRange([0xE7, 0xE0, 0xB0, 0x01, 0xE6, 0xEB]);
            h.Bus.LoadImage(stub, code.ToArray());
            ulong lo = (stub & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((stub >> 16 & 0xFFFF) << 48);
            h.Bus.Write(Idt + (ulong)v * 16, 8, lo, BusAttributes.Host);
            h.Bus.Write(Idt + (ulong)v * 16 + 8, 8, stub >> 32, BusAttributes.Host);
        }
        h.Cpu.Idtr = new DescriptorTableRegister { Base = Idt, Limit = 32 * 16 - 1 };
        // GDT: null, 64-bit code 0x08, data 0x10 (what the harness's CS and SS name).
        h.Bus.Write(Gdt + 8, 8, 0x00AF_9B00_0000_FFFFUL, BusAttributes.Host);
        h.Bus.Write(Gdt + 16, 8, 0x00CF_9300_0000_FFFFUL, BusAttributes.Host);
        h.Cpu.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 23 };
        return h;
    }

    /// <summary>Runs to the exit port and returns the values written to port 0xE0.</summary>
    public static List<ulong> Run(CpuHarness h)
    {
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        return h.Console.Values;
    }

    /// <summary>Runs and returns the vector of the exception that ended the run, or -1 when the code exited normally.</summary>
    public static int RunForVector(CpuHarness h)
    {
        var values = Run(h);
        int k = values.IndexOf(FaultMarker);
        return k >= 0 ? (int)values[k + 1] : -1;
    }

    public static void Exit(Assembler a) => CpuHarness.EmitExit(a, 0);

    public static void Write64(CpuHarness h, ulong pa, ulong v) => h.Bus.Write(pa, 8, v, BusAttributes.Host);
    public static ulong Read64(CpuHarness h, ulong pa) { h.Bus.Read(pa, 8, out ulong v, BusAttributes.Host); return v; }
    public static ulong Read(CpuHarness h, ulong pa, int size) { h.Bus.Read(pa, size, out ulong v, BusAttributes.Host); return v; }
    public static void WriteDouble(CpuHarness h, ulong pa, double v) => Write64(h, pa, BitConverter.DoubleToUInt64Bits(v));
    public static double ReadDouble(CpuHarness h, ulong pa) => BitConverter.UInt64BitsToDouble(Read64(h, pa));

    // ------------------------------------------------------------------ exact oracle for 80-bit values

    /// <summary>An exact rational: value = Num / 2^Shift (Shift may be negative), or Num/Den for quotients.</summary>
    public readonly record struct Rational(BigInteger Num, BigInteger Den);

    /// <summary>The exact value of a finite 80-bit extended real.</summary>
    public static Rational Exact(ulong mant, ushort se)
    {
        int e = se & 0x7FFF;
        BigInteger m = mant;
        if ((se & 0x8000) != 0) m = -m;
        int p = (e == 0 ? 1 : e) - 16383 - 63; // value = m × 2^p
        return p >= 0 ? new Rational(m << p, 1) : new Rational(m, BigInteger.One << -p);
    }

    public static Rational Exact(double d)
    {
        long bits = BitConverter.DoubleToInt64Bits(d);
        int e = (int)((bits >> 52) & 0x7FF);
        BigInteger m = bits & 0xF_FFFF_FFFF_FFFFL;
        if (e != 0) m += BigInteger.One << 52;
        if (bits < 0) m = -m;
        int p = (e == 0 ? 1 : e) - 1075;
        return p >= 0 ? new Rational(m << p, 1) : new Rational(m, BigInteger.One << -p);
    }

    public static Rational Add(Rational a, Rational b) => new(a.Num * b.Den + b.Num * a.Den, a.Den * b.Den);
    public static Rational Sub(Rational a, Rational b) => new(a.Num * b.Den - b.Num * a.Den, a.Den * b.Den);
    public static Rational Mul(Rational a, Rational b) => new(a.Num * b.Num, a.Den * b.Den);
    public static Rational Div(Rational a, Rational b) => b.Num.Sign < 0 ? new(-a.Num * b.Den, a.Den * -b.Num) : new(a.Num * b.Den, a.Den * b.Num);

    /// <summary>Rounds a rational to a normal 80-bit extended value, to nearest with ties to even (the FCW default).</summary>
    public static (ulong Mant, ushort SignExp) RoundToExtended(Rational r)
    {
        if (r.Num.IsZero) return (0, 0);
        bool neg = r.Num.Sign < 0;
        BigInteger n = BigInteger.Abs(r.Num), d = r.Den;
        // Find e with 2^63 <= n/d × 2^-e < 2^64.
        int e = (int)(n.GetBitLength() - d.GetBitLength()) - 63;
        BigInteger Scaled(int ex) => ex >= 0 ? n / (d << ex) : (n << -ex) / d;
        while (Scaled(e) >= BigInteger.One << 64) e++;
        while (Scaled(e) < BigInteger.One << 63) e--;
        BigInteger num = e >= 0 ? n : n << -e;
        BigInteger den = e >= 0 ? d << e : d;
        BigInteger q = BigInteger.DivRem(num, den, out BigInteger rem);
        int cmp = (rem * 2).CompareTo(den);
        if (cmp > 0 || (cmp == 0 && !q.IsEven)) q++;
        if (q == BigInteger.One << 64) { q >>= 1; e++; }
        int biased = e + 63 + 16383;
        return ((ulong)q, (ushort)((neg ? 0x8000 : 0) | biased));
    }

    /// <summary>The exact decimal digits of a non-negative dyadic rational: integer part and <paramref name="fractionDigits"/> truncated digits.</summary>
    public static string Decimal(Rational r, int fractionDigits)
    {
        BigInteger ip = BigInteger.DivRem(r.Num, r.Den, out BigInteger rem);
        var s = new System.Text.StringBuilder(ip.ToString());
        s.Append('.');
        for (int k = 0; k < fractionDigits; k++)
        {
            rem *= 10;
            s.Append((char)('0' + (int)BigInteger.DivRem(rem, r.Den, out rem)));
        }
        return s.ToString();
    }
}
