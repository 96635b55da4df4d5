using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static HwMemModel.Cpu.Tests.FpTestSupport;

namespace HwMemModel.Cpu.Tests;

/// <summary>
/// SSE/SSE2 in 64-bit mode: device-availability checks (SDM Vol. 3A §2.5, Vol. 2 "Exceptions Type 4/5"), alignment,
/// integer and floating-point semantics. Expected values come from .NET arithmetic and hand-computed lane layouts.
/// </summary>
public class SseTests
{
    private const ulong D = Data;

    [Test]
    public void Cpuid_leaf1_advertises_fpu_fxsr_sse_and_sse2()
    {
        var h = Start(a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(eax, edx);
            a.@out(0xE0, eax);
            Exit(a);
        });
        uint features = (uint)Run(h)[0];
        Assert.That(features & 1, Is.EqualTo(1u), "FPU");
        Assert.That((features >> 24) & 7, Is.EqualTo(7u), "FXSR, SSE, SSE2");
    }

    [Test]
    public void Sse_without_cr4_osfxsr_raises_ud()
    {
        var h = Start(a => { a.pxor(xmm0, xmm1); Exit(a); }, osfxsr: false);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.UD));
    }

    [Test]
    public void Sse_with_cr0_em_raises_ud_and_with_ts_raises_nm()
    {
        var h = Start(a => { a.addsd(xmm0, xmm1); Exit(a); });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.EM | Cr0.TS);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.UD), "EM is checked before TS");
        h = Start(a => { a.addsd(xmm0, xmm1); Exit(a); });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.TS);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.NM));
    }

    [Test]
    public void Misaligned_movdqa_and_legacy_16_byte_operands_raise_gp_but_movdqu_does_not()
    {
        foreach (var (emit, vector) in new (Action<Assembler>, int)[]
        {
            (a => a.movdqa(xmm0, __xmmword_ptr[rax + 8]), Vectors.GP),
            (a => a.movaps(__xmmword_ptr[rax + 4], xmm0), Vectors.GP),
            (a => a.paddd(xmm0, __xmmword_ptr[rax + 1]), Vectors.GP),
            (a => a.movdqu(xmm0, __xmmword_ptr[rax + 8]), -1),
            (a => a.movups(__xmmword_ptr[rax + 3], xmm0), -1),
            (a => a.movsd(xmm0, __qword_ptr[rax + 4]), -1),
            (a => a.movdqa(xmm0, __xmmword_ptr[rax + 16]), -1),
        })
        {
            var h = Start(a => { a.mov(rax, D); emit(a); Exit(a); });
            Assert.That(RunForVector(h), Is.EqualTo(vector));
        }
    }

    [Test]
    public void Movdqu_load_and_store_move_16_bytes_unaligned()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movdqu(xmm3, __xmmword_ptr[rax + 1]);
            a.movdqu(__xmmword_ptr[rax + 0x103], xmm3);
            Exit(a);
        });
        for (int k = 0; k < 32; k++) h.Bus.Write(D + (ulong)k, 1, (ulong)(0x10 + k), Bus.BusAttributes.Host);
        Run(h);
        for (int k = 0; k < 16; k++) Assert.That(Read(h, D + 0x103 + (ulong)k, 1), Is.EqualTo((ulong)(0x11 + k)));
        Assert.That(Read(h, D + 0x113, 1), Is.EqualTo(0UL), "exactly 16 bytes");
        Assert.That(h.Cpu.GetXmm(3) & 0xFF, Is.EqualTo((UInt128)0x11));
    }

    [Test]
    public void Store_crossing_into_an_unmapped_page_faults_before_writing_anything()
    {
        const ulong end = 32UL << 20; // the harness maps 0-32 MiB
        var h = Start(a =>
        {
            a.pcmpeqd(xmm0, xmm0);
            a.mov(rax, end - 8);
            a.movdqu(__xmmword_ptr[rax], xmm0);
            Exit(a);
        });
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.PF));
        Assert.That(Read64(h, end - 8), Is.EqualTo(0UL), "no part of the store happened");
        Assert.That(h.Cpu.Cr2, Is.EqualTo(end));
    }

    [Test]
    public void Integer_lane_operations_match_lane_by_lane_arithmetic()
    {
        var rnd = new Random(5);
        var x = new byte[16];
        var y = new byte[16];
        rnd.NextBytes(x);
        rnd.NextBytes(y);
        x[3] = y[3]; x[9] = y[9];
        var h = Start(a =>
        {
            a.mov(rax, D);
            void Op(Action<Assembler> op, int slot)
            {
                a.movdqa(xmm0, __xmmword_ptr[rax]);
                a.movdqa(xmm1, __xmmword_ptr[rax + 16]);
                op(a);
                a.movdqa(__xmmword_ptr[rax + 0x100 + slot * 16], xmm0);
            }
            Op(a => a.paddd(xmm0, xmm1), 0);
            Op(a => a.psubb(xmm0, xmm1), 1);
            Op(a => a.pcmpeqb(xmm0, xmm1), 2);
            Op(a => a.pshufd(xmm0, xmm1, 0x1B), 3);
            Op(a => a.punpcklbw(xmm0, xmm1), 4);
            Op(a => a.psrldq(xmm0, 3), 5);
            Op(a => a.pslldq(xmm0, 5), 6);
            Op(a => a.psllq(xmm0, 7), 7);
            Op(a => a.pandn(xmm0, xmm1), 8);
            Op(a => a.pmuludq(xmm0, xmm1), 9);
            Op(a => a.punpckhqdq(xmm0, xmm1), 10);
            Op(a => a.pcmpgtb(xmm0, xmm1), 11);
            Op(a => a.psrad(xmm0, 40), 12);
            Op(a => a.paddusb(xmm0, xmm1), 13);
            a.movdqa(xmm0, __xmmword_ptr[rax]);
            a.pcmpeqb(xmm0, __xmmword_ptr[rax + 16]);
            a.pmovmskb(ecx, xmm0);
            a.mov(__dword_ptr[rax + 0x200], ecx);
            Exit(a);
        });
        h.Bus.LoadImage(D, x);
        h.Bus.LoadImage(D + 16, y);
        Run(h);
        byte[] Result(int slot) { var r = new byte[16]; for (int k = 0; k < 16; k++) r[k] = (byte)Read(h, D + 0x100 + (ulong)(slot * 16 + k), 1); return r; }
        uint U32(byte[] b, int k) => BitConverter.ToUInt32(b, 4 * k);
        ulong U64(byte[] b, int k) => BitConverter.ToUInt64(b, 8 * k);

        var r0 = Result(0);
        for (int k = 0; k < 4; k++) Assert.That(U32(r0, k), Is.EqualTo(unchecked(U32(x, k) + U32(y, k))), "paddd");
        var r1 = Result(1);
        for (int k = 0; k < 16; k++) Assert.That(r1[k], Is.EqualTo((byte)(x[k] - y[k])), "psubb");
        var r2 = Result(2);
        for (int k = 0; k < 16; k++) Assert.That(r2[k], Is.EqualTo(x[k] == y[k] ? (byte)0xFF : (byte)0), "pcmpeqb");
        var r3 = Result(3);
        for (int k = 0; k < 4; k++) Assert.That(U32(r3, k), Is.EqualTo(U32(y, 3 - k)), "pshufd 0x1B reverses dwords");
        var r4 = Result(4);
        for (int k = 0; k < 8; k++) Assert.That((r4[2 * k], r4[2 * k + 1]), Is.EqualTo((x[k], y[k])), "punpcklbw");
        var r5 = Result(5);
        for (int k = 0; k < 16; k++) Assert.That(r5[k], Is.EqualTo(k + 3 < 16 ? x[k + 3] : (byte)0), "psrldq 3");
        var r6 = Result(6);
        for (int k = 0; k < 16; k++) Assert.That(r6[k], Is.EqualTo(k >= 5 ? x[k - 5] : (byte)0), "pslldq 5");
        var r7 = Result(7);
        for (int k = 0; k < 2; k++) Assert.That(U64(r7, k), Is.EqualTo(U64(x, k) << 7), "psllq 7");
        var r8 = Result(8);
        for (int k = 0; k < 16; k++) Assert.That(r8[k], Is.EqualTo((byte)(~x[k] & y[k])), "pandn");
        var r9 = Result(9);
        for (int k = 0; k < 2; k++) Assert.That(U64(r9, k), Is.EqualTo((ulong)U32(x, 2 * k) * U32(y, 2 * k)), "pmuludq");
        var r10 = Result(10);
        Assert.That((U64(r10, 0), U64(r10, 1)), Is.EqualTo((U64(x, 1), U64(y, 1))), "punpckhqdq");
        var r11 = Result(11);
        for (int k = 0; k < 16; k++) Assert.That(r11[k], Is.EqualTo((sbyte)x[k] > (sbyte)y[k] ? (byte)0xFF : (byte)0), "pcmpgtb");
        var r12 = Result(12);
        for (int k = 0; k < 4; k++) Assert.That(U32(r12, k), Is.EqualTo((int)U32(x, k) < 0 ? uint.MaxValue : 0u), "psrad by 40 fills with the sign");
        var r13 = Result(13);
        for (int k = 0; k < 16; k++) Assert.That(r13[k], Is.EqualTo((byte)Math.Min(255, x[k] + y[k])), "paddusb");
        uint mask = 0;
        for (int k = 0; k < 16; k++) if (x[k] == y[k]) mask |= 1u << k;
        Assert.That(Read(h, D + 0x200, 4), Is.EqualTo((ulong)mask), "pmovmskb");
    }

    [Test]
    public void Scalar_double_arithmetic_is_ieee_round_to_nearest()
    {
        var rnd = new Random(11);
        for (int t = 0; t < 40; t++)
        {
            double x = (rnd.NextDouble() - 0.5) * Math.Pow(2, rnd.Next(-60, 60));
            double y = (rnd.NextDouble() - 0.3) * Math.Pow(2, rnd.Next(-60, 60));
            if (t == 0) y = 1e-310; // denormal operand: the exact software path
            if (t == 1) { x = 1e-300; y = 1e-20; }
            var h = Start(a =>
            {
                a.mov(rax, D);
                a.movsd(xmm0, __qword_ptr[rax]);
                a.movsd(xmm1, __qword_ptr[rax + 8]);
                a.movapd(xmm2, xmm0); a.addsd(xmm2, xmm1); a.movsd(__qword_ptr[rax + 16], xmm2);
                a.movapd(xmm2, xmm0); a.subsd(xmm2, xmm1); a.movsd(__qword_ptr[rax + 24], xmm2);
                a.movapd(xmm2, xmm0); a.mulsd(xmm2, xmm1); a.movsd(__qword_ptr[rax + 32], xmm2);
                a.movapd(xmm2, xmm0); a.divsd(xmm2, xmm1); a.movsd(__qword_ptr[rax + 40], xmm2);
                a.andpd(xmm0, __xmmword_ptr[rax + 64]); a.sqrtsd(xmm3, xmm0); a.movsd(__qword_ptr[rax + 48], xmm3);
                a.movapd(xmm2, xmm1); a.maxsd(xmm2, __qword_ptr[rax]); a.movsd(__qword_ptr[rax + 56], xmm2);
                Exit(a);
            });
            WriteDouble(h, D, x);
            WriteDouble(h, D + 8, y);
            Write64(h, D + 64, 0x7FFF_FFFF_FFFF_FFFFUL); // |x| mask
            Write64(h, D + 72, ulong.MaxValue);
            Run(h);
            Assert.That(ReadDouble(h, D + 16), Is.EqualTo(x + y), $"{x} + {y}");
            Assert.That(ReadDouble(h, D + 24), Is.EqualTo(x - y));
            Assert.That(ReadDouble(h, D + 32), Is.EqualTo(x * y));
            Assert.That(ReadDouble(h, D + 40), Is.EqualTo(x / y));
            Assert.That(ReadDouble(h, D + 48), Is.EqualTo(Math.Sqrt(Math.Abs(x))));
            Assert.That(ReadDouble(h, D + 56), Is.EqualTo(Math.Max(x, y)));
        }
    }

    [Test]
    public void Scalar_single_arithmetic_and_conversions_match_dotnet()
    {
        float x = 1.1f, y = 3.3f;
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movss(xmm0, __dword_ptr[rax]);
            a.movss(xmm1, __dword_ptr[rax + 4]);
            a.movaps(xmm2, xmm0); a.divss(xmm2, xmm1); a.movss(__dword_ptr[rax + 8], xmm2);
            a.movaps(xmm2, xmm0); a.mulss(xmm2, xmm1); a.movss(__dword_ptr[rax + 12], xmm2);
            a.cvtss2sd(xmm3, xmm0); a.movsd(__qword_ptr[rax + 16], xmm3);
            a.movsd(xmm4, __qword_ptr[rax + 32]); a.cvtsd2ss(xmm5, xmm4); a.movss(__dword_ptr[rax + 24], xmm5);
            a.mov(ecx, -7); a.cvtsi2ss(xmm6, ecx); a.movss(__dword_ptr[rax + 28], xmm6);
            Exit(a);
        });
        h.Bus.Write(D, 4, BitConverter.SingleToUInt32Bits(x), Bus.BusAttributes.Host);
        h.Bus.Write(D + 4, 4, BitConverter.SingleToUInt32Bits(y), Bus.BusAttributes.Host);
        WriteDouble(h, D + 32, Math.PI);
        Run(h);
        Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, D + 8, 4)), Is.EqualTo(x / y));
        Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, D + 12, 4)), Is.EqualTo(x * y));
        Assert.That(ReadDouble(h, D + 16), Is.EqualTo((double)x));
        Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, D + 24, 4)), Is.EqualTo((float)Math.PI));
        Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, D + 28, 4)), Is.EqualTo(-7f));
    }

    [TestCase(0u, 2.5, 2L)]
    [TestCase(0u, 3.5, 4L)]
    [TestCase(1u, -2.5, -3L)]
    [TestCase(2u, 2.1, 3L)]
    [TestCase(3u, -2.9, -2L)]
    public void Cvtsd2si_rounds_with_mxcsr_rc_and_cvttsd2si_truncates(uint rc, double value, long expected)
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.ldmxcsr(__dword_ptr[rax + 8]);
            a.movsd(xmm0, __qword_ptr[rax]);
            a.cvtsd2si(rcx, xmm0);
            a.cvttsd2si(rdx, xmm0);
            a.mov(__qword_ptr[rax + 16], rcx);
            a.mov(__qword_ptr[rax + 24], rdx);
            Exit(a);
        });
        WriteDouble(h, D, value);
        Write64(h, D + 8, 0x1F80 | (rc << 13));
        Run(h);
        Assert.That((long)Read64(h, D + 16), Is.EqualTo(expected));
        Assert.That((long)Read64(h, D + 24), Is.EqualTo((long)Math.Truncate(value)));
        Assert.That(h.Cpu.Mxcsr & 0x20, Is.EqualTo(0x20u), "inexact conversion sets PE");
    }

    [Test]
    public void Cvttsd2si_of_nan_or_out_of_range_is_the_integer_indefinite_with_ie()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.cvttsd2si(ecx, __qword_ptr[rax]);
            a.cvttsd2si(rdx, __qword_ptr[rax + 8]);
            a.mov(__dword_ptr[rax + 16], ecx);
            a.mov(__qword_ptr[rax + 24], rdx);
            Exit(a);
        });
        WriteDouble(h, D, 3e9);
        WriteDouble(h, D + 8, double.NaN);
        Run(h);
        Assert.That(Read(h, D + 16, 4), Is.EqualTo(0x8000_0000UL));
        Assert.That(Read64(h, D + 24), Is.EqualTo(0x8000_0000_0000_0000UL));
        Assert.That(h.Cpu.Mxcsr & 1, Is.EqualTo(1u));
    }

    [Test]
    public void Directed_rounding_of_division_brackets_the_exact_quotient()
    {
        // 1/3 is not representable: RC=down and RC=up give adjacent doubles around it, nearest is one of them.
        var h = Start(a =>
        {
            a.mov(rax, D);
            for (int rc = 0; rc < 4; rc++)
            {
                a.ldmxcsr(__dword_ptr[rax + 0x40 + rc * 4]);
                a.movsd(xmm0, __qword_ptr[rax]);
                a.divsd(xmm0, __qword_ptr[rax + 8]);
                a.movsd(__qword_ptr[rax + 0x80 + rc * 8], xmm0);
            }
            Exit(a);
        });
        WriteDouble(h, D, 1.0);
        WriteDouble(h, D + 8, 3.0);
        for (uint rc = 0; rc < 4; rc++) h.Bus.Write(D + 0x40 + rc * 4, 4, 0x1F80 | (rc << 13), Bus.BusAttributes.Host);
        Run(h);
        double nearest = 1.0 / 3.0;
        // Which side of the exact value nearest lies on: the residual 1 − 3·nearest is exact under FMA.
        bool nearestBelow = Math.FusedMultiplyAdd(-nearest, 3.0, 1.0) > 0;
        double down = nearestBelow ? nearest : Math.BitDecrement(nearest);
        double up = nearestBelow ? Math.BitIncrement(nearest) : nearest;
        Assert.That(ReadDouble(h, D + 0x80), Is.EqualTo(nearest));
        Assert.That(ReadDouble(h, D + 0x88), Is.EqualTo(down));
        Assert.That(ReadDouble(h, D + 0x90), Is.EqualTo(up));
        Assert.That(ReadDouble(h, D + 0x98), Is.EqualTo(down), "toward zero of a positive value is down");
    }

    [TestCase(1.0, 2.0, 0x01UL)]       // less: CF
    [TestCase(2.0, 1.0, 0x00UL)]       // greater
    [TestCase(2.0, 2.0, 0x40UL)]       // equal: ZF
    [TestCase(double.NaN, 1.0, 0x45UL)] // unordered: ZF PF CF
    public void Ucomisd_sets_zf_pf_cf(double x, double y, ulong expected)
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movsd(xmm0, __qword_ptr[rax]);
            a.ucomisd(xmm0, __qword_ptr[rax + 8]);
            a.pushfq();
            a.pop(rcx);
            a.mov(__qword_ptr[rax + 16], rcx);
            Exit(a);
        });
        WriteDouble(h, D, x);
        WriteDouble(h, D + 8, y);
        Run(h);
        Assert.That(Read64(h, D + 16) & 0x8D5, Is.EqualTo(expected));
        Assert.That(h.Cpu.Mxcsr & 1, Is.EqualTo(0u), "a QNaN is not invalid for UCOMISD");
    }

    [Test]
    public void Comisd_with_a_qnan_sets_invalid()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movsd(xmm0, __qword_ptr[rax]);
            a.comisd(xmm0, xmm0);
            Exit(a);
        });
        WriteDouble(h, D, double.NaN);
        Run(h);
        Assert.That(h.Cpu.Mxcsr, Is.EqualTo(0x1F81u));
    }

    [Test]
    public void Mxcsr_starts_at_1f80_and_ldmxcsr_with_reserved_bits_raises_gp()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.stmxcsr(__dword_ptr[rax]);
            a.ldmxcsr(__dword_ptr[rax + 8]);
            Exit(a);
        });
        Write64(h, D + 8, 0x1_1F80);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.GP));
        Assert.That(Read(h, D, 4), Is.EqualTo(0x1F80UL));
    }

    [Test]
    public void Unmasked_divide_by_zero_raises_xm_and_leaves_the_destination()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.ldmxcsr(__dword_ptr[rax + 16]);
            a.movsd(xmm0, __qword_ptr[rax]);
            a.xorpd(xmm1, xmm1);
            a.divsd(xmm0, xmm1);
            Exit(a);
        });
        WriteDouble(h, D, 5.0);
        Write64(h, D + 16, 0x1F80 & ~0x200UL); // ZM clear
        Assert.That(RunForVector(h), Is.EqualTo(19));
        Assert.That(h.Cpu.GetXmm(0), Is.EqualTo((UInt128)BitConverter.DoubleToUInt64Bits(5.0)));
        Assert.That(h.Cpu.Mxcsr & 4, Is.EqualTo(4u), "ZE is recorded");
    }

    [Test]
    public void Movq_movd_and_cvtsi2sd_move_between_general_and_xmm_registers()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.mov(rcx, 0x1122_3344_5566_7788UL);
            a.pcmpeqd(xmm0, xmm0);
            a.movq(xmm0, rcx);              // zeroes bits 64-127
            a.movdqa(__xmmword_ptr[rax], xmm0);
            a.movd(edx, xmm0);
            a.mov(__qword_ptr[rax + 16], rdx);
            a.mov(rcx, -123456789012L);
            a.cvtsi2sd(xmm1, rcx);
            a.movsd(__qword_ptr[rax + 24], xmm1);
            a.movq(rsi, xmm1);
            a.mov(__qword_ptr[rax + 32], rsi);
            Exit(a);
        });
        Run(h);
        Assert.That(Read64(h, D), Is.EqualTo(0x1122_3344_5566_7788UL));
        Assert.That(Read64(h, D + 8), Is.EqualTo(0UL));
        Assert.That(Read64(h, D + 16), Is.EqualTo(0x5566_7788UL));
        Assert.That(ReadDouble(h, D + 24), Is.EqualTo(-123456789012.0));
        Assert.That(Read64(h, D + 32), Is.EqualTo(BitConverter.DoubleToUInt64Bits(-123456789012.0)));
    }

    [Test]
    public void Sse2_strlen_finds_the_terminator_with_pcmpeqb_and_pmovmskb()
    {
        // The word-at-a-time strlen shape gcc and hand-written libcs use: compare 16 bytes with zero, take the mask, BSF.
        const string text = "The quick brown fox jumps over the lazy dog, twice over.";
        var h = Start(a =>
        {
            var loop = a.CreateLabel();
            var found = a.CreateLabel();
            a.mov(rdi, D);
            a.mov(rax, rdi);
            a.pxor(xmm0, xmm0);
            a.Label(ref loop);
            a.movdqa(xmm1, __xmmword_ptr[rax]);
            a.pcmpeqb(xmm1, xmm0);
            a.pmovmskb(ecx, xmm1);
            a.test(ecx, ecx);
            a.jnz(found);
            a.add(rax, 16);
            a.jmp(loop);
            a.Label(ref found);
            a.bsf(ecx, ecx);
            a.add(rax, rcx);
            a.sub(rax, rdi);
            a.@out(0xE0, eax);
            Exit(a);
        });
        h.Bus.LoadImage(D, System.Text.Encoding.ASCII.GetBytes(text + "\0"));
        Assert.That(Run(h)[0], Is.EqualTo((ulong)text.Length));
    }

    [Test]
    public void Movsd_and_cmpsd_in_their_sse2_forms_are_not_string_instructions()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movsd(xmm0, __qword_ptr[rax]);
            a.movsd(xmm1, __qword_ptr[rax + 8]);
            a.cmpsd(xmm0, xmm1, 1); // LT
            a.movsd(__qword_ptr[rax + 16], xmm0);
            Exit(a);
        });
        WriteDouble(h, D, 1.5);
        WriteDouble(h, D + 8, 2.5);
        Run(h);
        Assert.That(Read64(h, D + 16), Is.EqualTo(ulong.MaxValue));
    }

    [Test]
    public void Ftz_flushes_a_tiny_product_and_daz_reads_denormals_as_zero()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movsd(xmm0, __qword_ptr[rax]);
            a.mulsd(xmm0, __qword_ptr[rax + 8]);      // 1e-300 × 1e-10: a denormal result
            a.movsd(__qword_ptr[rax + 0x40], xmm0);
            a.ldmxcsr(__dword_ptr[rax + 16]);          // FTZ
            a.movsd(xmm0, __qword_ptr[rax]);
            a.mulsd(xmm0, __qword_ptr[rax + 8]);
            a.movsd(__qword_ptr[rax + 0x48], xmm0);
            a.ldmxcsr(__dword_ptr[rax + 20]);          // DAZ
            a.movsd(xmm1, __qword_ptr[rax + 24]);      // a denormal
            a.addsd(xmm1, xmm1);
            a.movsd(__qword_ptr[rax + 0x50], xmm1);
            a.stmxcsr(__dword_ptr[rax + 0x58]);
            Exit(a);
        });
        WriteDouble(h, D, 1e-300);
        WriteDouble(h, D + 8, 1e-10);
        h.Bus.Write(D + 16, 4, 0x9F80, Bus.BusAttributes.Host);
        h.Bus.Write(D + 20, 4, 0x1FC0, Bus.BusAttributes.Host);
        WriteDouble(h, D + 24, double.Epsilon * 12345);
        Run(h);
        Assert.That(ReadDouble(h, D + 0x40), Is.EqualTo(1e-300 * 1e-10), "gradual underflow without FTZ");
        Assert.That(Read64(h, D + 0x48), Is.EqualTo(0UL), "FTZ: +0");
        Assert.That(Read64(h, D + 0x50), Is.EqualTo(0UL), "DAZ: denormal + denormal = +0");
        Assert.That(Read(h, D + 0x58, 4), Is.EqualTo(0x1FC0UL), "DAZ with no new flags (the earlier ones were cleared by LDMXCSR)");
    }

    [Test]
    public void Packed_conversions_and_arithmetic_work_lane_by_lane()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.movdqa(xmm0, __xmmword_ptr[rax]);        // int32 lanes
            a.cvtdq2ps(xmm1, xmm0);
            a.movaps(__xmmword_ptr[rax + 0x40], xmm1);
            a.cvtdq2pd(xmm2, xmm0);
            a.movapd(__xmmword_ptr[rax + 0x50], xmm2);
            a.mulps(xmm1, xmm1);
            a.cvttps2dq(xmm3, xmm1);
            a.movdqa(__xmmword_ptr[rax + 0x60], xmm3);
            a.divpd(xmm2, __xmmword_ptr[rax + 0x20]);
            a.movapd(__xmmword_ptr[rax + 0x70], xmm2);
            a.cvtpd2ps(xmm4, xmm2);
            a.movaps(__xmmword_ptr[rax + 0x80], xmm4);
            Exit(a);
        });
        int[] v = [7, -300, 16_777_217, 46_000];
        for (int k = 0; k < 4; k++) h.Bus.Write(D + (ulong)k * 4, 4, (uint)v[k], Bus.BusAttributes.Host);
        WriteDouble(h, D + 0x20, 3.0);
        WriteDouble(h, D + 0x28, -7.0);
        Run(h);
        float F(ulong pa) => BitConverter.UInt32BitsToSingle((uint)Read(h, pa, 4));
        for (int k = 0; k < 4; k++) Assert.That(F(D + 0x40 + (ulong)k * 4), Is.EqualTo((float)v[k]), "cvtdq2ps");
        Assert.That(ReadDouble(h, D + 0x50), Is.EqualTo(7.0));
        Assert.That(ReadDouble(h, D + 0x58), Is.EqualTo(-300.0));
        for (int k = 0; k < 4; k++)
        {
            float sq = (float)v[k] * (float)v[k];
            int expected = sq >= 2147483648f ? int.MinValue : (int)sq;
            Assert.That((int)Read(h, D + 0x60 + (ulong)k * 4, 4), Is.EqualTo(expected), "cvttps2dq, out of range = 0x80000000");
        }
        Assert.That(ReadDouble(h, D + 0x70), Is.EqualTo(7.0 / 3.0));
        Assert.That(ReadDouble(h, D + 0x78), Is.EqualTo(-300.0 / -7.0));
        Assert.That(F(D + 0x80), Is.EqualTo((float)(7.0 / 3.0)));
        Assert.That(F(D + 0x84), Is.EqualTo((float)(300.0 / 7.0)));
        Assert.That(Read64(h, D + 0x88), Is.EqualTo(0UL), "cvtpd2ps zeroes the upper half");
    }

    [Test]
    public void Movnti_is_a_general_register_store_that_needs_no_cr4_osfxsr()
    {
        var h = Start(a =>
        {
            a.mov(rax, D);
            a.mov(rcx, 0x0123_4567_89AB_CDEFUL);
            a.movnti(__qword_ptr[rax + 8], rcx);
            Exit(a);
        }, osfxsr: false);
        Assert.That(RunForVector(h), Is.EqualTo(-1));
        Assert.That(Read64(h, D + 8), Is.EqualTo(0x0123_4567_89AB_CDEFUL));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Random_scalar_operations_over_all_finite_encodings_match_dotnet(bool single)
    {
        // Random bit patterns reach denormal operands and results, overflow and cancellation: the software path.
        const int n = 1500;
        var rnd = new Random(single ? 21 : 22);
        var h = Start(a =>
        {
            var loop = a.CreateLabel();
            a.mov(rsi, D);
            a.mov(rdi, D + 0x10_0000);
            a.mov(ecx, n);
            a.Label(ref loop);
            if (single)
            {
                a.movss(xmm0, __dword_ptr[rsi]); a.movss(xmm1, __dword_ptr[rsi + 4]);
                a.movaps(xmm2, xmm0); a.addss(xmm2, xmm1); a.movss(__dword_ptr[rdi], xmm2);
                a.movaps(xmm2, xmm0); a.subss(xmm2, xmm1); a.movss(__dword_ptr[rdi + 4], xmm2);
                a.movaps(xmm2, xmm0); a.mulss(xmm2, xmm1); a.movss(__dword_ptr[rdi + 8], xmm2);
                a.movaps(xmm2, xmm0); a.divss(xmm2, xmm1); a.movss(__dword_ptr[rdi + 12], xmm2);
                a.sqrtss(xmm2, xmm1); a.movss(__dword_ptr[rdi + 16], xmm2);
                a.cvtss2sd(xmm2, xmm0); a.movsd(__qword_ptr[rdi + 24], xmm2);
                a.add(rsi, 8);
            }
            else
            {
                a.movsd(xmm0, __qword_ptr[rsi]); a.movsd(xmm1, __qword_ptr[rsi + 8]);
                a.movapd(xmm2, xmm0); a.addsd(xmm2, xmm1); a.movsd(__qword_ptr[rdi], xmm2);
                a.movapd(xmm2, xmm0); a.subsd(xmm2, xmm1); a.movsd(__qword_ptr[rdi + 8], xmm2);
                a.movapd(xmm2, xmm0); a.mulsd(xmm2, xmm1); a.movsd(__qword_ptr[rdi + 16], xmm2);
                a.movapd(xmm2, xmm0); a.divsd(xmm2, xmm1); a.movsd(__qword_ptr[rdi + 24], xmm2);
                a.sqrtsd(xmm2, xmm1); a.movsd(__qword_ptr[rdi + 32], xmm2);
                a.cvtsd2ss(xmm2, xmm0); a.movss(__dword_ptr[rdi + 40], xmm2);
                a.add(rsi, 16);
            }
            a.add(rdi, 48);
            a.dec(ecx);
            a.jnz(loop);
            Exit(a);
        });
        var xs = new double[n];
        var ys = new double[n];
        for (int k = 0; k < n; k++)
        {
            if (single)
            {
                float x = RandomFinite32(rnd), y = RandomFinite32(rnd);
                if (k % 3 == 0) y = Math.Abs(y);
                xs[k] = x; ys[k] = y;
                h.Bus.Write(D + (ulong)k * 8, 4, BitConverter.SingleToUInt32Bits(x), Bus.BusAttributes.Host);
                h.Bus.Write(D + (ulong)k * 8 + 4, 4, BitConverter.SingleToUInt32Bits(y), Bus.BusAttributes.Host);
            }
            else
            {
                double x = RandomFinite64(rnd), y = RandomFinite64(rnd);
                if (k % 3 == 0) y = Math.Abs(y);
                if (k % 7 == 0) y = x * (1 + rnd.NextDouble() * 1e-12); // near-cancellation
                xs[k] = x; ys[k] = y;
                WriteDouble(h, D + (ulong)k * 16, x);
                WriteDouble(h, D + (ulong)k * 16 + 8, y);
            }
        }
        h.Run(10_000_000);
        for (int k = 0; k < n; k++)
        {
            ulong r = D + 0x10_0000 + (ulong)k * 48;
            if (single)
            {
                float x = (float)xs[k], y = (float)ys[k];
                float S(ulong o) => BitConverter.UInt32BitsToSingle((uint)Read(h, r + o, 4));
                Assert.That(S(0), Is.EqualTo(x + y), $"{x} + {y}");
                Assert.That(S(4), Is.EqualTo(x - y), $"{x} - {y}");
                Assert.That(S(8), Is.EqualTo(x * y), $"{x} * {y}");
                Assert.That(S(12), Is.EqualTo(x / y), $"{x} / {y}");
                Assert.That(S(16), Is.EqualTo(MathF.Sqrt(y)), $"sqrt {y}");
                Assert.That(ReadDouble(h, r + 24), Is.EqualTo((double)x));
            }
            else
            {
                double x = xs[k], y = ys[k];
                Assert.That(ReadDouble(h, r), Is.EqualTo(x + y), $"{x} + {y}");
                Assert.That(ReadDouble(h, r + 8), Is.EqualTo(x - y), $"{x} - {y}");
                Assert.That(ReadDouble(h, r + 16), Is.EqualTo(x * y), $"{x} * {y}");
                Assert.That(ReadDouble(h, r + 24), Is.EqualTo(x / y), $"{x} / {y}");
                Assert.That(ReadDouble(h, r + 32), Is.EqualTo(Math.Sqrt(y)), $"sqrt {y}");
                Assert.That(BitConverter.UInt32BitsToSingle((uint)Read(h, r + 40, 4)), Is.EqualTo((float)x), $"(float){x}");
            }
        }

        static double RandomFinite64(Random rnd)
        {
            while (true)
            {
                double d = BitConverter.Int64BitsToDouble(rnd.NextInt64());
                if (double.IsFinite(d)) return d;
            }
        }

        static float RandomFinite32(Random rnd)
        {
            while (true)
            {
                float f = BitConverter.Int32BitsToSingle(rnd.Next() ^ (rnd.Next(2) << 31));
                if (float.IsFinite(f)) return f;
            }
        }
    }
}
