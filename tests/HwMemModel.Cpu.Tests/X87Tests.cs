using System.Numerics;
using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static HwMemModel.Cpu.Tests.FpTestSupport;

namespace HwMemModel.Cpu.Tests;

/// <summary>
/// The x87 FPU: 80-bit arithmetic checked against an exact rational oracle (BigInteger), loads and stores of every
/// format, compares, control and status words, stack faults, #NM and #MF, and an end-to-end digit generator.
/// </summary>
public class X87Tests
{
    private const ulong D = Data;

    private static void WriteExtended(CpuHarness h, ulong pa, ulong mant, ushort se)
    {
        Write64(h, pa, mant);
        h.Bus.Write(pa + 8, 2, se, Bus.BusAttributes.Host);
    }

    private static (ulong, ushort) ReadExtended(CpuHarness h, ulong pa) => (Read64(h, pa), (ushort)Read(h, pa + 8, 2));

    [Test]
    public void Extended_add_sub_mul_div_are_correctly_rounded_to_64_bits()
    {
        var rnd = new Random(3);
        for (int t = 0; t < 60; t++)
        {
            ulong ma = (ulong)rnd.NextInt64() | (1UL << 63), mb = (ulong)rnd.NextInt64() | (1UL << 63);
            ushort ea = (ushort)(0x3FFF + rnd.Next(-40, 40) | (rnd.Next(2) << 15));
            ushort eb = (ushort)(0x3FFF + rnd.Next(-40, 40) | (rnd.Next(2) << 15));
            if (t % 5 == 0) eb = (ushort)((ea & 0x7FFF) + rnd.Next(-2, 3) | (rnd.Next(2) << 15)); // close exponents: cancellation
            var h = Start(a =>
            {
                a.mov(rax, D);
                a.fninit();
                foreach (var (op, slot) in new (Action<Assembler>, int)[]
                {
                    (a => a.faddp(st1, st0), 0), (a => a.fsubp(st1, st0), 1), (a => a.fmulp(st1, st0), 2), (a => a.fdivp(st1, st0), 3),
                })
                {
                    a.fld(__tword_ptr[rax]);
                    a.fld(__tword_ptr[rax + 16]);
                    op(a);
                    a.fstp(__tword_ptr[rax + 0x40 + slot * 16]);
                }
                Exit(a);
            });
            WriteExtended(h, D, ma, ea);
            WriteExtended(h, D + 16, mb, eb);
            Run(h);
            var x = Exact(ma, ea);
            var y = Exact(mb, eb);
            Assert.That(ReadExtended(h, D + 0x40), Is.EqualTo(RoundToExtended(Add(x, y))), $"add #{t}");
            Assert.That(ReadExtended(h, D + 0x50), Is.EqualTo(RoundToExtended(Sub(x, y))), $"sub #{t}");
            Assert.That(ReadExtended(h, D + 0x60), Is.EqualTo(RoundToExtended(Mul(x, y))), $"mul #{t}");
            Assert.That(ReadExtended(h, D + 0x70), Is.EqualTo(RoundToExtended(Div(x, y))), $"div #{t}");
        }
    }

    [Test]
    public void Fsqrt_is_correctly_rounded()
    {
        var rnd = new Random(9);
        for (int t = 0; t < 30; t++)
        {
            ulong m = (ulong)rnd.NextInt64() | (1UL << 63);
            ushort e = (ushort)(0x3FFF + rnd.Next(-30, 30));
            var h = Start(a => { a.mov(rax, D); a.fninit(); a.fld(__tword_ptr[rax]); a.fsqrt(); a.fstp(__tword_ptr[rax + 16]); Exit(a); });
            WriteExtended(h, D, m, e);
            Run(h);
            var (rm, re) = ReadExtended(h, D + 16);
            // r is the correctly rounded root iff (r − ½ulp)² ≤ x ≤ (r + ½ulp)² (no exact ties exist for square roots of these values).
            var x = Exact(m, e);
            var r = Exact(rm, re);
            var halfUlp = Exact(1UL << 63, (ushort)(re - 64));
            var lo = Sub(r, halfUlp);
            var hi = Add(r, halfUlp);
            Assert.That(Compare(Mul(lo, lo), x), Is.LessThanOrEqualTo(0), $"#{t}");
            Assert.That(Compare(x, Mul(hi, hi)), Is.LessThanOrEqualTo(0), $"#{t}");
        }

        static int Compare(Rational a, Rational b) => (a.Num * b.Den).CompareTo(b.Num * a.Den);
    }

    [Test]
    public void Loads_and_stores_of_single_double_and_integers_convert_exactly()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.fninit();
            a.fld(__dword_ptr[rax]);          // single 0.1f
            a.fstp(__qword_ptr[rax + 0x40]);  // exact widening
            a.fld(__qword_ptr[rax + 8]);      // double 1/3
            a.fstp(__dword_ptr[rax + 0x48]);  // rounds to single
            a.fild(__qword_ptr[rax + 16]);    // a 64-bit integer with more than 53 significant bits
            a.fistp(__qword_ptr[rax + 0x50]); // back exactly
            a.fild(__word_ptr[rax + 24]);
            a.fstp(__qword_ptr[rax + 0x58]);
            a.fld(__qword_ptr[rax + 32]);     // 2.5 → fistp (nearest even) = 2
            a.fistp(__dword_ptr[rax + 0x60]);
            a.fld(__qword_ptr[rax + 40]);     // 1e30 → out of range: integer indefinite
            a.fistp(__qword_ptr[rax + 0x68]);
            a.fld(__qword_ptr[rax + 32]);
            a.fisttp(__word_ptr[rax + 0x70]);
            a.fld(__qword_ptr[rax + 48]);     // 1e300 → single overflows to +inf
            a.fstp(__dword_ptr[rax + 0x74]);
            Exit(a);
        });
        h.Bus.Write(D, 4, BitConverter.SingleToUInt32Bits(0.1f), Bus.BusAttributes.Host);
        WriteDouble(h, D + 8, 1.0 / 3.0);
        Write64(h, D + 16, 0x7123_4567_89AB_CDEFUL);
        h.Bus.Write(D + 24, 2, unchecked((ushort)-1234), Bus.BusAttributes.Host);
        WriteDouble(h, D + 32, 2.5);
        WriteDouble(h, D + 40, 1e30);
        WriteDouble(h, D + 48, 1e300);
        Run(h);
        Assert.That(ReadDouble(h, D + 0x40), Is.EqualTo((double)0.1f));
        Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, D + 0x48, 4)), Is.EqualTo((float)(1.0 / 3.0)));
        Assert.That(Read64(h, D + 0x50), Is.EqualTo(0x7123_4567_89AB_CDEFUL));
        Assert.That(ReadDouble(h, D + 0x58), Is.EqualTo(-1234.0));
        Assert.That(Read(h, D + 0x60, 4), Is.EqualTo(2UL));
        Assert.That(Read64(h, D + 0x68), Is.EqualTo(0x8000_0000_0000_0000UL));
        Assert.That(Read(h, D + 0x70, 2), Is.EqualTo(2UL), "FISTTP truncates");
        Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, D + 0x74, 4)), Is.EqualTo(float.PositiveInfinity));
        ushort fsw = h.Cpu.FpuStatusWord;
        Assert.That(fsw & 0x3F, Is.EqualTo(0x01 | 0x08 | 0x20), "IE (fistp overflow), OE (single overflow), PE");
    }

    [Test]
    public void Constants_fxch_fchs_and_fabs()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.fninit();
            a.fld1();
            a.fldz();
            a.fxch(st0, st1);                       // st0 = 1, st1 = 0
            a.fchs();                          // -1
            a.fstp(__qword_ptr[rax]);
            a.fchs();                          // -0
            a.fstp(__qword_ptr[rax + 8]);
            a.fldpi();
            a.fchs();
            a.fabs();
            a.fstp(__qword_ptr[rax + 16]);
            Exit(a);
        });
        Run(h);
        Assert.That(ReadDouble(h, D), Is.EqualTo(-1.0));
        Assert.That(Read64(h, D + 8), Is.EqualTo(0x8000_0000_0000_0000UL));
        Assert.That(ReadDouble(h, D + 16), Is.EqualTo(Math.PI));
        Assert.That(h.Cpu.IsStEmpty(0), Is.True);
    }

    [TestCase(1.0, 2.0, 0x01UL)]
    [TestCase(3.0, 2.0, 0x00UL)]
    [TestCase(2.0, 2.0, 0x40UL)]
    [TestCase(double.NaN, 2.0, 0x45UL)]
    public void Fucomip_sets_zf_pf_cf_and_pops(double top, double next, ulong expected)
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.fninit();
            a.fld(__qword_ptr[rax + 8]);
            a.fld(__qword_ptr[rax]);
            a.fucomip(st0, st1);
            a.pushfq();
            a.pop(rcx);
            a.mov(__qword_ptr[rax + 16], rcx);
            Exit(a);
        });
        WriteDouble(h, D, top);
        WriteDouble(h, D + 8, next);
        Run(h);
        Assert.That(Read64(h, D + 16) & 0x8D5, Is.EqualTo(expected));
        Assert.That(h.Cpu.FpuStatusWord & 1, Is.EqualTo(0), "FUCOMIP does not signal on a QNaN");
        Assert.That((h.Cpu.FpuStatusWord >> 11) & 7, Is.EqualTo(7), "one register left: TOP = 7");
    }

    [Test]
    public void Fcomi_with_a_qnan_sets_invalid()
    {
        var h = Start(a => { a.mov(rax, D); a.fninit(); a.fld(__qword_ptr[rax]); a.fld1(); a.fcomi(st0, st1); Exit(a); });
        WriteDouble(h, D, double.NaN);
        Run(h);
        Assert.That(h.Cpu.FpuStatusWord & 1, Is.EqualTo(1));
    }

    [Test]
    public void Control_word_is_0040_after_reset_and_037f_after_fninit()
    {
        var h = Start(a =>
        {
            a.mov(rsi, D);
            a.fnstcw(__word_ptr[rsi]);
            a.fninit();
            a.fnstcw(__word_ptr[rsi + 2]);
            a.fld1();
            a.fnstsw(ax);
            a.mov(__word_ptr[rsi + 4], ax);
            Exit(a);
        });
        Run(h);
        Assert.That(Read(h, D, 2), Is.EqualTo(0x0040UL));
        Assert.That(Read(h, D + 2, 2), Is.EqualTo(0x037FUL));
        Assert.That(Read(h, D + 4, 2), Is.EqualTo(7UL << 11), "TOP = 7 after one push");
    }

    [Test]
    public void Ninth_push_is_a_stack_overflow_that_loads_the_indefinite()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.fninit();
            for (int k = 0; k < 9; k++) a.fld1();
            a.fstp(__tword_ptr[rax]);
            Exit(a);
        });
        Run(h);
        Assert.That(ReadExtended(h, D), Is.EqualTo((0xC000_0000_0000_0000UL, (ushort)0xFFFF)));
        // IE, SF and C1 (overflow) stay set after the FSTP, which only clears C1... FSTP of a valid register clears C1.
        Assert.That(h.Cpu.FpuStatusWord & 0x41, Is.EqualTo(0x41), "IE and SF");
    }

    [Test]
    public void X87_with_cr0_ts_or_em_raises_nm_and_wait_needs_mp_too()
    {
        var h = Start(a => { a.fld1(); Exit(a); });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.TS);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.NM));
        h = Start(a => { a.fld1(); Exit(a); });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.EM);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.NM));
        h = Start(a => { a.wait(); Exit(a); });
        h.Context.SetCr0((h.Context.Cr0Value | Cr0.TS) & ~Cr0.MP);
        Assert.That(RunForVector(h), Is.EqualTo(-1), "WAIT ignores TS without MP");
        h = Start(a => { a.wait(); Exit(a); });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.TS | Cr0.MP);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.NM));
    }

    [Test]
    public void Unmasked_zero_divide_is_reported_by_mf_on_the_next_waiting_instruction()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.fninit();
            a.fldcw(__word_ptr[rax]);
            a.fld1();
            a.fldz();
            a.fdivp(st1, st0);  // 1/0 with ZM clear: ZE, ES; no #MF yet
            a.mov(eax, 0x55);
            a.@out(0xE0, eax);
            a.fld1();            // #MF here
            Exit(a);
        });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.NE);
        h.Bus.Write(D, 2, 0x037B, Bus.BusAttributes.Host);
        var values = Run(h);
        Assert.That(values, Is.EqualTo(new ulong[] { 0x55, FaultMarker, Vectors.MF }));
        Assert.That(h.Cpu.FpuStatusWord & 0x8084, Is.EqualTo(0x8084), "B, ES and ZE");
    }

    [Test]
    public void Fprem_loop_computes_fmodl_exactly()
    {
        // musl's x86_64 fmodl: fldt y; fldt x; 1: fprem; fnstsw %ax; testb $4,%ah; jnz 1b; fstp %st(1)
        var cases = new (double X, double Y)[] { (1e300, 3.0), (123.456, 0.1), (-7.5, 2.0), (1e20, 1e-5) };
        foreach (var (x, y) in cases)
        {
            var h = Start(a =>
            {
                var again = a.CreateLabel();
                a.mov(rsi, D);
                a.fninit();
                a.fld(__qword_ptr[rsi + 8]);
                a.fld(__qword_ptr[rsi]);
                a.Label(ref again);
                a.fprem();
                a.fnstsw(ax);
                a.test(ah, 4);
                a.jnz(again);
                a.fstp(st1);
                a.fstp(__tword_ptr[rsi + 16]);
                Exit(a);
            });
            WriteDouble(h, D, x);
            WriteDouble(h, D + 8, y);
            Run(h);
            var ex = Exact(x);
            var ey = Exact(y);
            // fmod: x − trunc(x/y)·y, exact (representable in the 64-bit significand).
            var q = BigInteger.Divide(ex.Num * ey.Den, ex.Den * ey.Num);
            var expected = Sub(ex, Mul(new Rational(q, 1), ey));
            var got = ReadExtended(h, D + 16);
            if (expected.Num.IsZero) Assert.That(got.Item1, Is.EqualTo(0UL));
            else Assert.That(got, Is.EqualTo(RoundToExtended(expected)), $"fmodl({x}, {y})");
        }
    }

    [Test]
    public void End_to_end_decimal_digits_of_a_double_with_x87_long_double_arithmetic()
    {
        // The digit loop of a printf("%f")-style formatter on long double: d = trunc(y); emit d; y = (y − d) × 10.
        const double value = 1234.5678;
        const int digits = 24;
        var h = Start(a =>
        {
            var loop = a.CreateLabel();
            a.mov(rsi, D);
            a.fninit();
            a.fnstcw(__word_ptr[rsi + 0x10]);
            a.mov(ax, __word_ptr[rsi + 0x10]);
            a.or(ax, 0x0C00);                 // RC = toward zero for FRNDINT
            a.mov(__word_ptr[rsi + 0x12], ax);
            a.fldcw(__word_ptr[rsi + 0x12]);
            a.fild(__dword_ptr[rsi + 8]);     // 10
            a.fld(__qword_ptr[rsi]);          // y
            // integer part first
            a.fld(st0);
            a.frndint();
            a.fist(__dword_ptr[rsi + 0x20]);
            a.mov(eax, __dword_ptr[rsi + 0x20]);
            a.@out(0xE0, eax);
            a.fsubp(st1, st0);                // y = frac
            a.mov(ecx, digits);
            a.Label(ref loop);
            a.fmul(st0, st1);                 // y *= 10
            a.fld(st0);
            a.frndint();
            a.fist(__dword_ptr[rsi + 0x20]);
            a.mov(eax, __dword_ptr[rsi + 0x20]);
            a.@out(0xE0, eax);
            a.fsubp(st1, st0);
            a.dec(ecx);
            a.jnz(loop);
            Exit(a);
        });
        WriteDouble(h, D, value);
        Write64(h, D + 8, 10);
        var values = Run(h);
        string got = values[0] + "." + string.Concat(values.Skip(1).Select(v => (char)('0' + (int)v)));
        Assert.That(got, Is.EqualTo(FpTestSupport.Decimal(Exact(value), digits)));
    }

    [Test]
    public void Musl_style_long_double_printf_scaling_multiplies_by_powers_of_two_exactly()
    {
        // fmt_fp scales by 2^28 and splits into base-1e9 limbs with (uint32_t)y and y = 1e9*(y − x).
        const double value = 0.1;
        var h = Start(a =>
        {
            a.mov(rsi, D);
            a.fninit();
            a.fld(__qword_ptr[rsi]);
            a.fild(__dword_ptr[rsi + 8]);   // 1e9
            a.fxch(st0, st1);
            for (int k = 0; k < 3; k++)
            {
                a.fmul(st0, st1);            // y *= 1e9
                a.fld(st0);
                a.fisttp(__qword_ptr[rsi + 0x20 + k * 8]);
                a.fild(__qword_ptr[rsi + 0x20 + k * 8]);
                a.fsubp(st1, st0);
            }
            Exit(a);
        });
        WriteDouble(h, D, value);
        Write64(h, D + 8, 1_000_000_000);
        Run(h);
        // Oracle: each product rounded to 64 bits (nearest even), the subtraction of the integer part exact.
        var y = Exact(value);
        var limbs = new List<ulong>();
        for (int k = 0; k < 3; k++)
        {
            var (pm, pe) = RoundToExtended(Mul(y, new Rational(1_000_000_000, 1)));
            var p = Exact(pm, pe);
            var ip = BigInteger.Divide(p.Num, p.Den);
            limbs.Add((ulong)ip);
            y = Sub(p, new Rational(ip, 1));
        }
        string expected = string.Concat(limbs.Select(v => v.ToString("D9")));
        string got = string.Concat(Enumerable.Range(0, 3).Select(k => Read64(h, D + 0x20 + (ulong)k * 8).ToString("D9")));
        Assert.That(got, Is.EqualTo(expected));
    }

    [Test]
    public void Fnstenv_writes_the_28_byte_protected_mode_environment_and_masks_exceptions()
    {
        var h = Start(a =>
        {
            a.mov(rsi, D);
            a.fninit();
            a.fld1();
            a.fldz();
            a.fnstenv(__[rsi]);
            a.fnstcw(__word_ptr[rsi + 0x40]);
            a.fldenv(__[rsi]);
            a.fnstcw(__word_ptr[rsi + 0x42]);
            Exit(a);
        });
        Run(h);
        Assert.That(Read(h, D, 2), Is.EqualTo(0x037FUL), "FCW");
        Assert.That(Read(h, D + 4, 2), Is.EqualTo(6UL << 11), "FSW with TOP = 6");
        // Full tag word: R7 = 1.0 (00 valid), R6 = +0 (01 zero), the rest empty (11).
        Assert.That(Read(h, D + 8, 2), Is.EqualTo(0x1FFFUL), "FTW");
        Assert.That(Read(h, D + 0x40, 2), Is.EqualTo(0x037FUL), "already masked: FNSTENV sets all mask bits");
        Assert.That(Read(h, D + 0x42, 2), Is.EqualTo(0x037FUL));
    }

    [Test]
    public void Precision_control_rounds_the_significand_to_53_bits()
    {
        var h = Start(a =>
        {
            a.mov(rsi, D);
            a.fninit();
            a.fldcw(__word_ptr[rsi]);
            a.fld1();
            a.fld(__qword_ptr[rsi + 8]);
            a.fdivp(st1, st0);               // 1/3 rounded to 53 bits
            a.fstp(__tword_ptr[rsi + 16]);
            Exit(a);
        });
        h.Bus.Write(D, 2, 0x027F, Bus.BusAttributes.Host); // PC = 10b: double precision
        WriteDouble(h, D + 8, 3.0);
        Run(h);
        var (m, e) = ReadExtended(h, D + 16);
        double third = 1.0 / 3.0;
        var expected = Exact(third);
        Assert.That(Exact(m, e), Is.EqualTo(expected).Using<Rational>((x, y) => x.Num * y.Den == y.Num * x.Den), "the same value as the double quotient");
    }
}
