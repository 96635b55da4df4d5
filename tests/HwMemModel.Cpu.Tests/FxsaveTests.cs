using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;
using static HwMemModel.Cpu.Tests.FpTestSupport;

namespace HwMemModel.Cpu.Tests;

/// <summary>FXSAVE/FXRSTOR: the SDM's 512-byte layout (Vol. 2A Table 3-53), alignment, MXCSR checks and round trips.</summary>
public class FxsaveTests
{
    private const ulong D = Data;
    private const ulong Area = Data + 0x1000;

    [Test]
    public void Fxsave64_writes_the_sdm_layout()
    {
        var h = Start(a =>
        {
            a.fninit();
            a.fld1();                        // ST1 after the next push
            a.fldz();                        // ST0
            a.mov(rsi, D);
            a.ldmxcsr(__dword_ptr[rsi + 8]);
            a.movdqu(xmm0, __xmmword_ptr[rsi + 16]);
            a.movdqu(xmm15, __xmmword_ptr[rsi + 32]);
            a.mov(rdi, Area);
            a.fxsave64(__[rdi]);
            Exit(a);
        });
        Write64(h, D + 8, 0x1F80 | 0x6000); // RC = toward zero
        Write64(h, D + 16, 0x0011_2233_4455_6677UL); Write64(h, D + 24, 0x8899_AABB_CCDD_EEFFUL);
        Write64(h, D + 32, 0xDEAD_BEEF_0000_0001UL); Write64(h, D + 40, 0x0000_0002_CAFE_F00DUL);
        Write64(h, Area + 500, 0x5A5A_5A5A_5A5A_5A5AUL);
        Run(h);
        Assert.That(Read(h, Area, 2), Is.EqualTo(0x037FUL), "FCW");
        Assert.That(Read(h, Area + 2, 2), Is.EqualTo(6UL << 11), "FSW: TOP = 6 after two pushes");
        // Abridged tag: one bit per physical register; the pushes filled R7 and R6.
        Assert.That(Read(h, Area + 4, 1), Is.EqualTo(0xC0UL), "FTW");
        Assert.That(Read(h, Area + 24, 4), Is.EqualTo(0x7F80UL), "MXCSR");
        Assert.That(Read(h, Area + 28, 4), Is.EqualTo(0xFFFFUL), "MXCSR_MASK");
        Assert.That(Read64(h, Area + 32), Is.EqualTo(0UL), "ST0 = +0: significand");
        Assert.That(Read(h, Area + 40, 2), Is.EqualTo(0UL), "ST0 = +0: sign and exponent");
        Assert.That(Read64(h, Area + 48), Is.EqualTo(0x8000_0000_0000_0000UL), "ST1 = 1.0: significand");
        Assert.That(Read(h, Area + 56, 2), Is.EqualTo(0x3FFFUL), "ST1 = 1.0: biased exponent");
        Assert.That(Read64(h, Area + 160), Is.EqualTo(0x0011_2233_4455_6677UL), "XMM0 low");
        Assert.That(Read64(h, Area + 168), Is.EqualTo(0x8899_AABB_CCDD_EEFFUL), "XMM0 high");
        Assert.That(Read64(h, Area + 160 + 15 * 16), Is.EqualTo(0xDEAD_BEEF_0000_0001UL), "XMM15 low at 400");
        Assert.That(Read64(h, Area + 408), Is.EqualTo(0x0000_0002_CAFE_F00DUL), "XMM15 high");
        Assert.That(Read64(h, Area + 500), Is.EqualTo(0x5A5A_5A5A_5A5A_5A5AUL), "bytes 464-511 are the software's");
        // FIP is the address of the last non-control x87 instruction, FLDZ, after FNINIT (2 bytes) and FLD1 (2 bytes).
        Assert.That(Read64(h, Area + 8), Is.EqualTo(CpuHarness.CodeBase + 4), "FIP (64-bit)");
    }

    [Test]
    public void Fxsave_without_rex_w_stores_32_bit_pointers_and_selectors()
    {
        var h = Start(a =>
        {
            a.fninit();
            a.fld1();
            a.mov(rdi, Area);
            a.fxsave(__[rdi]);
            Exit(a);
        });
        Write64(h, Area + 8, ulong.MaxValue);
        Run(h);
        Assert.That(Read(h, Area + 8, 4), Is.EqualTo(CpuHarness.CodeBase + 2), "FIP offset");
        Assert.That(Read(h, Area + 12, 2), Is.EqualTo(0x08UL), "FCS");
    }

    [Test]
    public void Fxrstor_round_trip_restores_x87_sse_and_mxcsr_state()
    {
        var h = Start(a =>
        {
            a.mov(rsi, D);
            a.fninit();
            a.fldpi();
            a.fld1();
            a.ldmxcsr(__dword_ptr[rsi]);
            a.movdqu(xmm7, __xmmword_ptr[rsi + 16]);
            a.mov(rdi, Area);
            a.fxsave64(__[rdi]);
            // clobber everything
            a.fninit();
            a.pxor(xmm7, xmm7);
            a.ldmxcsr(__dword_ptr[rsi + 8]);
            a.fxrstor64(__[rdi]);
            a.fxsave64(__[rdi + 512]);
            a.fstp(__tword_ptr[rsi + 0x40]);  // 1.0
            a.fstp(__qword_ptr[rsi + 0x50]);  // pi
            a.movdqu(__xmmword_ptr[rsi + 0x60], xmm7);
            a.stmxcsr(__dword_ptr[rsi + 0x70]);
            Exit(a);
        });
        Write64(h, D, 0x1F80 | 0x8040);   // FTZ, DAZ
        Write64(h, D + 8, 0x1F80);
        Write64(h, D + 16, 0x0102_0304_0506_0708UL);
        Write64(h, D + 24, 0x1112_1314_1516_1718UL);
        Run(h);
        for (ulong k = 0; k < 416; k += 8)
            Assert.That(Read64(h, Area + 512 + k), Is.EqualTo(Read64(h, Area + k)), $"offset {k}");
        Assert.That(Read64(h, D + 0x40), Is.EqualTo(0x8000_0000_0000_0000UL));
        Assert.That(ReadDouble(h, D + 0x50), Is.EqualTo(Math.PI));
        Assert.That(Read64(h, D + 0x60), Is.EqualTo(0x0102_0304_0506_0708UL));
        Assert.That(Read64(h, D + 0x68), Is.EqualTo(0x1112_1314_1516_1718UL));
        Assert.That(Read(h, D + 0x70, 4), Is.EqualTo(0x9FC0UL));
    }

    [Test]
    public void Misaligned_area_raises_gp()
    {
        var h = Start(a => { a.mov(rdi, Area + 8); a.fxsave64(__[rdi]); Exit(a); });
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.GP));
        h = Start(a => { a.mov(rdi, Area + 4); a.fxrstor(__[rdi]); Exit(a); });
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.GP));
    }

    [Test]
    public void Fxrstor_with_a_reserved_mxcsr_bit_raises_gp_and_changes_nothing()
    {
        var h = Start(a =>
        {
            a.mov(rdi, Area);
            a.fxsave64(__[rdi]);
            a.mov(__dword_ptr[rdi + 24], 0x2_1F80);
            a.mov(__word_ptr[rdi], 0);     // a different FCW that must not be loaded
            a.fxrstor64(__[rdi]);
            Exit(a);
        });
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.GP));
        Assert.That(h.Cpu.FpuControlWord, Is.EqualTo(0x0040));
        Assert.That(h.Cpu.Mxcsr, Is.EqualTo(0x1F80u));
    }

    [Test]
    public void Fxsave_with_cr0_ts_raises_nm()
    {
        var h = Start(a => { a.mov(rdi, Area); a.fxsave64(__[rdi]); Exit(a); });
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.TS);
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.NM));
    }

    [Test]
    public void Fxsave_into_a_range_whose_second_page_faults_writes_nothing()
    {
        const ulong end = 32UL << 20;
        var h = Start(a => { a.mov(rdi, end - 256); a.fxsave64(__[rdi]); Exit(a); });
        Assert.That(RunForVector(h), Is.EqualTo(Vectors.PF));
        Assert.That(Read64(h, end - 256), Is.EqualTo(0UL));
    }

    [Test]
    public void Reset_gives_the_power_up_state_and_init_keeps_x87_and_sse_state()
    {
        var h = new CpuHarness(); // real mode, as after power-up
        h.Cpu.Mxcsr = 0x9FC0;
        h.Cpu.SetXmm(3, 42);
        h.Cpu.FpuControlWord = 0x027F;
        h.Cpu.FpuAbridgedTag = 0x01;
        h.Cpu.Init();
        Assert.That((h.Cpu.Mxcsr, h.Cpu.GetXmm(3), h.Cpu.FpuControlWord, h.Cpu.FpuAbridgedTag), Is.EqualTo((0x9FC0u, (UInt128)42, (ushort)0x027F, (byte)0x01)));
        h.Cpu.Reset();
        // SDM Vol. 3A Table 9-1: FCW 0040H, FSW 0, FTW 5555H (every register +0.0, tagged valid), MXCSR 1F80H, XMM 0.
        Assert.That((h.Cpu.Mxcsr, h.Cpu.GetXmm(3), h.Cpu.FpuControlWord, h.Cpu.FpuStatusWord, h.Cpu.FpuAbridgedTag),
            Is.EqualTo((0x1F80u, (UInt128)0, (ushort)0x0040, (ushort)0, (byte)0xFF)));
    }

    [Test]
    public void Fxsave_in_32_bit_protected_mode_saves_xmm0_to_7_only()
    {
        var h = new CpuHarness();
        h.Start32(a =>
        {
            a.mov(eax, (uint)D);
            a.movdqu(xmm7, __xmmword_ptr[eax]);
            a.mov(edi, (uint)Area);
            a.fxsave(__[edi]);
            Exit(a);
        });
        h.Context.SetCr4(h.Context.Cr4Value | Cr4.OSFXSR);
        Write64(h, D, 0x7777_7777_7777_7777UL);
        Write64(h, Area + 288, 0x5A5A_5A5A_5A5A_5A5AUL);
        Run(h);
        Assert.That(Read64(h, Area + 160 + 7 * 16), Is.EqualTo(0x7777_7777_7777_7777UL));
        Assert.That(Read64(h, Area + 288), Is.EqualTo(0x5A5A_5A5A_5A5A_5A5AUL), "no XMM8-15 outside 64-bit mode");
    }
}
