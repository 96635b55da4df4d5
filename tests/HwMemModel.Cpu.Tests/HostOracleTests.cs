using System.Runtime.InteropServices;
using HwMemModel.Bus;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

/// <summary>
/// Differential tests against the host processor, an independent oracle for architecturally defined results: the
/// same instruction bytes run natively (in an executable page) and in the model from the same registers and flags,
/// and the result registers and the flags the SDM defines for that instruction must agree. Undefined flags are
/// masked out here (they are compared with QEMU by the conformance images instead).
/// </summary>
[NonParallelizable]
public unsafe class HostOracleTests
{
    private const ulong OF = 1 << 11, SF = 1 << 7, ZF = 1 << 6, AF = 1 << 4, PF = 1 << 2, CF = 1;
    private const ulong All = OF | SF | ZF | AF | PF | CF;

    // A fixed seed per test (string.GetHashCode differs between processes); HWMEM_ORACLE_SALT explores other inputs.
    private static readonly int SeedSalt = int.TryParse(Environment.GetEnvironmentVariable("HWMEM_ORACLE_SALT"), out int salt) ? salt : 12345;

    private static int StableSeed(string name)
    {
        uint h = 2166136261;
        foreach (char c in name) h = (h ^ c) * 16777619;
        return (int)h;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr mmap(IntPtr addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(IntPtr addr, nuint length);

    private static bool HostIsX64Linux => RuntimeInformation.ProcessArchitecture == Architecture.X64 && OperatingSystem.IsLinux();

    /// <summary>State block shared by the native stub and the test: a, b, flags in, result, flags out, rdx.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Block
    {
        public ulong A, B, FlagsIn, Result, FlagsOut, Rdx;
    }

    private IntPtr _page;

    [OneTimeSetUp]
    public void MapPage()
    {
        if (!HostIsX64Linux) Assert.Ignore("the host-oracle tests need an x86-64 Linux host");
        _page = mmap(IntPtr.Zero, 4096, 7, 0x22, -1, 0);
        if (_page == new IntPtr(-1)) Assert.Ignore("cannot map an executable page on this host");
    }

    [OneTimeTearDown]
    public void UnmapPage()
    {
        if (_page != IntPtr.Zero && _page != new IntPtr(-1)) munmap(_page, 4096);
    }

    /// <summary>The native stub around <paramref name="body"/>: loads RAX=a, RCX=b, RDX, flags; stores RAX, RDX, flags.</summary>
    private static byte[] Stub(Action<Assembler> body)
    {
        var a = new Assembler(64);
        a.mov(rax, __qword_ptr[rdi + 16]);
        a.push(rax);
        a.popfq();
        a.mov(rax, __qword_ptr[rdi]);
        a.mov(rcx, __qword_ptr[rdi + 8]);
        a.mov(rdx, __qword_ptr[rdi + 40]);
        body(a);
        a.mov(__qword_ptr[rdi + 24], rax);
        a.mov(__qword_ptr[rdi + 40], rdx);
        a.pushfq();
        a.pop(rax);
        a.mov(__qword_ptr[rdi + 32], rax);
        a.ret();
        var ms = new MemoryStream();
        a.Assemble(new StreamCodeWriter(ms), 0);
        return ms.ToArray();
    }

    private Block RunHost(byte[] code, Block input)
    {
        Marshal.Copy(code, 0, _page, code.Length);
        var f = (delegate* unmanaged<Block*, void>)_page;
        Block b = input;
        f(&b);
        return b;
    }

    private CpuHarness? _model;
    private byte[]? _loaded;

    private Block RunModel(byte[] code, Block input)
    {
        const ulong blockAddr = CpuHarness.DataBase;
        if (_model is null)
        {
            _model = new CpuHarness();
            _model.Start64(a => { });
        }
        var h = _model;
        if (_loaded != code)
        {
            h.Bus.LoadImage(CpuHarness.CodeBase, code); // drops the blocks decoded from the old code
            _loaded = code;
        }
        h.Cpu.Rip = CpuHarness.CodeBase;
        h.Cpu.Halted = false;
        h.Bus.Write(CpuHarness.CodeBase + 0x800, 1, 0xF4, BusAttributes.Host);
        ulong sp = CpuHarness.StackTop - 8;
        h.Bus.Write(sp, 8, CpuHarness.CodeBase + 0x800, BusAttributes.Host);
        h.Cpu.SetRegister(4, sp);
        h.Cpu.SetRegister(7, blockAddr);
        h.Bus.Write(blockAddr, 8, input.A, BusAttributes.Host);
        h.Bus.Write(blockAddr + 8, 8, input.B, BusAttributes.Host);
        h.Bus.Write(blockAddr + 16, 8, input.FlagsIn, BusAttributes.Host);
        h.Bus.Write(blockAddr + 40, 8, input.Rdx, BusAttributes.Host);
        var r = h.Run(1000);
        Assert.That(r.Kind, Is.EqualTo(StopKind.Halted), r.Report);
        var o = new Block();
        h.Bus.Read(blockAddr + 24, 8, out o.Result, BusAttributes.Host);
        h.Bus.Read(blockAddr + 32, 8, out o.FlagsOut, BusAttributes.Host);
        h.Bus.Read(blockAddr + 40, 8, out o.Rdx, BusAttributes.Host);
        return o;
    }

    private void Compare(string name, Action<Assembler> body, Func<Block, ulong> definedFlags, int cases = 300, Func<Random, Block>? gen = null, bool compareRdx = false, Func<Block, bool>? skip = null, Func<Block, bool>? resultDefined = null)
    {
        var code = Stub(body);
        var rnd = new Random(StableSeed(name) ^ SeedSalt);
        gen ??= RandomOperands;
        int compared = 0;
        for (int n = 0; n < cases; n++)
        {
            var input = gen(rnd);
            if (skip?.Invoke(input) == true) continue;
            var host = RunHost(code, input);
            var model = RunModel(code, input);
            ulong mask = definedFlags(input);
            string ctx = $"{name} a=0x{input.A:x} b=0x{input.B:x} rdx=0x{input.Rdx:x} flags=0x{input.FlagsIn:x}";
            if (resultDefined?.Invoke(input) != false)
                Assert.That(model.Result, Is.EqualTo(host.Result), ctx + " (RAX)");
            if (compareRdx) Assert.That(model.Rdx, Is.EqualTo(host.Rdx), ctx + " (RDX)");
            Assert.That(model.FlagsOut & mask, Is.EqualTo(host.FlagsOut & mask), ctx + $" (flags, mask 0x{mask:x})");
            compared++;
        }
        Assert.That(compared, Is.GreaterThan(cases / 4), "too few cases compared");
    }

    /// <summary>Operands biased towards edge values (0, 1, all ones, sign bits, small counts).</summary>
    private static Block RandomOperands(Random r)
    {
        ulong Pick()
        {
            return r.Next(8) switch
            {
                0 => 0,
                1 => 1,
                2 => ulong.MaxValue,
                3 => 0x8000_0000_0000_0000UL >> (r.Next(4) * 8 + r.Next(2) * 32 % 64),
                4 => (ulong)r.Next(0, 70),
                5 => 0x7FUL << (r.Next(8) * 8),
                _ => (ulong)r.NextInt64() ^ ((ulong)r.NextInt64() << 1),
            };
        }
        ulong flags = 0x202 | ((ulong)r.Next(2) * CF) | ((ulong)r.Next(2) * ZF) | ((ulong)r.Next(2) * OF) | ((ulong)r.Next(2) * AF) | ((ulong)r.Next(2) * SF) | ((ulong)r.Next(2) * PF);
        return new Block { A = Pick(), B = Pick(), FlagsIn = flags, Rdx = Pick() };
    }

    private static IEnumerable<int> Sizes() => [1, 2, 4, 8];

    private static void Binary(Assembler a, string op, int size)
    {
        switch (size)
        {
            case 1: Emit(a, op, al, cl); break;
            case 2: Emit(a, op, ax, cx); break;
            case 4: Emit(a, op, eax, ecx); break;
            default: Emit(a, op, rax, rcx); break;
        }
    }

    private static void Emit(Assembler a, string op, dynamic dst, dynamic src)
    {
        switch (op)
        {
            case "add": a.add(dst, src); break;
            case "adc": a.adc(dst, src); break;
            case "sub": a.sub(dst, src); break;
            case "sbb": a.sbb(dst, src); break;
            case "and": a.and(dst, src); break;
            case "or": a.or(dst, src); break;
            case "xor": a.xor(dst, src); break;
            case "cmp": a.cmp(dst, src); break;
            case "test": a.test(dst, src); break;
            case "xadd": a.xadd(dst, src); break;
            default: throw new ArgumentException(op);
        }
    }

    [Test]
    public void ArithmeticMatchesTheHost([Values("add", "adc", "sub", "sbb", "cmp", "xadd")] string op, [ValueSource(nameof(Sizes))] int size)
        => Compare($"{op}{size}", a => Binary(a, op, size), _ => All);

    [Test]
    public void LogicMatchesTheHost([Values("and", "or", "xor", "test")] string op, [ValueSource(nameof(Sizes))] int size)
        => Compare($"{op}{size}", a => Binary(a, op, size), _ => All & ~AF);

    [Test]
    public void IncDecNegNotMatchTheHost([Values("inc", "dec", "neg", "not")] string op, [ValueSource(nameof(Sizes))] int size)
    {
        Compare($"{op}{size}", a =>
        {
            dynamic r = size switch { 1 => al, 2 => ax, 4 => eax, _ => (object)rax };
            switch (op)
            {
                case "inc": a.inc(r); break;
                case "dec": a.dec(r); break;
                case "neg": a.neg(r); break;
                default: a.not(r); break;
            }
        }, _ => All);
    }

    [Test]
    public void ShiftsMatchTheHost([Values("shl", "shr", "sar", "rol", "ror", "rcl", "rcr")] string op, [ValueSource(nameof(Sizes))] int size)
    {
        int bits = size * 8;
        Compare($"{op}{size}", a =>
        {
            dynamic r = size switch { 1 => al, 2 => ax, 4 => eax, _ => (object)rax };
            switch (op)
            {
                case "shl": a.shl(r, cl); break;
                case "shr": a.shr(r, cl); break;
                case "sar": a.sar(r, cl); break;
                case "rol": a.rol(r, cl); break;
                case "ror": a.ror(r, cl); break;
                case "rcl": a.rcl(r, cl); break;
                default: a.rcr(r, cl); break;
            }
        }, input =>
        {
            int count = (int)(input.B & (size == 8 ? 63UL : 31UL));
            if (count == 0) return All; // nothing changes
            bool rotate = op is "rol" or "ror" or "rcl" or "rcr";
            ulong m = rotate ? CF : SF | ZF | PF;
            if (!rotate && count <= bits) m |= CF;
            if (op is "rol" or "ror" && (count & (bits - 1)) == 0 && size < 4) m = 0; // CF after a whole rotation: vendor-specific
            if (op is "rcl" or "rcr" && size < 4 && count % (bits + 1) == 0) m = 0;
            if (count == 1) m |= OF;
            if (rotate) m |= SF | ZF | PF | AF; // unaffected
            return m;
        }, cases: 400, gen: r =>
        {
            var b = RandomOperands(r);
            b.B = (ulong)r.Next(0, 70);
            return b;
        });
    }

    [Test]
    public void MultiplyMatchesTheHost([Values("mul", "imul1", "imul2")] string op, [ValueSource(nameof(Sizes))] int size)
    {
        if (op == "imul2" && size == 1) Assert.Pass("no 8-bit two-operand IMUL");
        Compare($"{op}{size}", a =>
        {
            dynamic r = size switch { 1 => cl, 2 => cx, 4 => ecx, _ => (object)rcx };
            dynamic acc = size switch { 1 => al, 2 => ax, 4 => eax, _ => (object)rax };
            if (op == "mul") a.mul(r);
            else if (op == "imul1") a.imul(r);
            else a.imul(acc, r);
        }, _ => OF | CF, compareRdx: op != "imul2");
    }

    [Test]
    public void DivideMatchesTheHost([Values("div", "idiv")] string op, [ValueSource(nameof(Sizes))] int size)
    {
        ulong m = size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
        Compare($"{op}{size}", a =>
        {
            dynamic r = size switch { 1 => cl, 2 => cx, 4 => ecx, _ => (object)rcx };
            if (op == "div") a.div(r); else a.idiv(r);
        }, _ => 0, compareRdx: size > 1, gen: r =>
        {
            var b = RandomOperands(r);
            b.Rdx = r.Next(3) == 0 ? 0 : b.Rdx;
            return b;
        }, skip: input => WouldFault(op == "idiv", size, input.A, input.Rdx, input.B & m));
    }

    /// <summary>Whether DIV/IDIV would raise #DE (the host would die of SIGFPE), computed from the SDM's definition.</summary>
    private static bool WouldFault(bool signed, int size, ulong a, ulong d, ulong divisor)
    {
        if (divisor == 0) return true;
        int bits = size * 8;
        if (!signed)
        {
            UInt128 n = size == 1 ? (ushort)a : ((UInt128)(d & Mask(size)) << bits) | (a & Mask(size));
            return n / divisor > Mask(size);
        }
        Int128 sn = size switch
        {
            1 => (short)(ushort)a,
            2 => (int)(((d & 0xFFFF) << 16) | (a & 0xFFFF)),
            4 => (long)(((d & 0xFFFF_FFFF) << 32) | (a & 0xFFFF_FFFF)),
            _ => (Int128)(((UInt128)d << 64) | a),
        };
        Int128 sd = size switch { 1 => (sbyte)divisor, 2 => (short)divisor, 4 => (int)divisor, _ => (long)divisor };
        Int128 q = sn / sd;
        Int128 max = (Int128.One << (bits - 1)) - 1, min = -(Int128.One << (bits - 1));
        return q > max || q < min;
    }

    private static ulong Mask(int size) => size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    [Test]
    public void BitInstructionsMatchTheHost([Values("bt", "bts", "btr", "btc", "bsf", "bsr", "popcnt", "lzcnt", "tzcnt")] string op, [Values(2, 4, 8)] int size)
    {
        Compare($"{op}{size}", a =>
        {
            dynamic d = size switch { 2 => ax, 4 => eax, _ => (object)rax };
            dynamic s = size switch { 2 => cx, 4 => ecx, _ => (object)rcx };
            switch (op)
            {
                case "bt": a.bt(d, s); break;
                case "bts": a.bts(d, s); break;
                case "btr": a.btr(d, s); break;
                case "btc": a.btc(d, s); break;
                case "bsf": a.bsf(d, s); break;
                case "bsr": a.bsr(d, s); break;
                case "popcnt": a.popcnt(d, s); break;
                case "lzcnt": a.lzcnt(d, s); break;
                default: a.tzcnt(d, s); break;
            }
        }, _ => op switch
        {
            "bt" or "bts" or "btr" or "btc" => CF | ZF,
            "bsf" or "bsr" => ZF,
            "popcnt" => All,
            _ => CF | ZF,
        }, resultDefined: input => op is not ("bsf" or "bsr") || (input.B & Mask(size)) != 0);
    }

    [Test]
    public void DoubleShiftsMatchTheHost([Values("shld", "shrd")] string op, [Values(2, 4, 8)] int size)
    {
        int bits = size * 8;
        Compare($"{op}{size}", a =>
        {
            // count in CL, second operand in DX
            dynamic d = size switch { 2 => ax, 4 => eax, _ => (object)rax };
            dynamic s = size switch { 2 => dx, 4 => edx, _ => (object)rdx };
            if (op == "shld") a.shld(d, s, cl); else a.shrd(d, s, cl);
        }, input =>
        {
            int count = (int)(input.B & (size == 8 ? 63UL : 31UL));
            if (count == 0) return All;
            if (count > bits) return 0;
            return SF | ZF | PF | CF | (count == 1 ? OF : 0);
        }, cases: 400, gen: r =>
        {
            var b = RandomOperands(r);
            b.B = (ulong)r.Next(0, 40);
            return b;
        }, resultDefined: input => (int)(input.B & (size == 8 ? 63UL : 31UL)) <= bits);
    }

    [Test]
    public void ShiftsByImmediateMatchTheHost([Values("shl", "shr", "sar", "rol", "ror")] string op, [Values(4, 8)] int size, [Values(0, 1, 5, 31, 32, 63)] int count)
    {
        if (size == 4 && count > 31) Assert.Pass("32-bit counts are masked to 5 bits by the encoding's users");
        int bits = size * 8;
        Compare($"{op}{size}i{count}", a =>
        {
            dynamic r = size == 4 ? eax : (object)rax;
            switch (op)
            {
                case "shl": a.shl(r, (byte)count); break;
                case "shr": a.shr(r, (byte)count); break;
                case "sar": a.sar(r, (byte)count); break;
                case "rol": a.rol(r, (byte)count); break;
                default: a.ror(r, (byte)count); break;
            }
        }, _ =>
        {
            if (count == 0) return All;
            bool rotate = op is "rol" or "ror";
            ulong m = rotate ? CF | SF | ZF | PF | AF : SF | ZF | PF | CF;
            if (count == 1) m |= OF;
            return m;
        }, cases: 60);
    }

    [Test]
    public void ImulForms([Values(4, 8)] int size, [Values(0, 7, -3, 0x7FFF_FFFF)] int imm)
    {
        Compare($"imul3-{size}-{imm}", a =>
        {
            if (size == 4) a.imul(eax, ecx, imm); else a.imul(rax, rcx, imm);
        }, _ => OF | CF, cases: 80);
    }

    [Test]
    public void MemoryShiftsByImmediateMatchTheHost([Values("shl", "shr", "sar", "rol", "ror")] string op, [Values(1, 2, 4, 8)] int size, [Values(0, 1, 3, 7)] int count)
    {
        Compare($"{op}m{size}i{count}", a =>
        {
            dynamic m = size switch { 1 => __byte_ptr[rdi], 2 => __word_ptr[rdi], 4 => __dword_ptr[rdi], _ => (object)__qword_ptr[rdi] };
            switch (op)
            {
                case "shl": a.shl(m, (byte)count); break;
                case "shr": a.shr(m, (byte)count); break;
                case "sar": a.sar(m, (byte)count); break;
                case "rol": a.rol(m, (byte)count); break;
                default: a.ror(m, (byte)count); break;
            }
            a.mov(rax, __qword_ptr[rdi]);
        }, _ =>
        {
            if (count == 0) return All;
            bool rotate = op is "rol" or "ror";
            ulong mask = rotate ? CF | SF | ZF | PF | AF : SF | ZF | PF | CF;
            if (rotate && size == 1 && count % 8 == 0) mask = SF | ZF | PF | AF;
            if (count == 1) mask |= OF;
            return mask;
        }, cases: 40);
    }
}
