using System.Runtime.CompilerServices;
using Iced.Intel;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>
/// Pre-decoded forms of the instructions that dominate compiled 64-bit code, executed without going back to Iced's
/// operand accessors. Each form gives exactly the result of the general path (the tests run both).
/// </summary>
internal enum FastKind : byte
{
    None = 0,
    MovRR, MovRI, MovRM, MovMR, MovMI,
    AluRR, AluRI, AluRM, AluMR, AluMI,
    TestRR, TestRI,
    IncR, DecR,
    Lea,
    Jcc, Jmp,
    PushR, PopR,
    CallRel, Ret,
    Nop,
    ShiftRI, ImulRRI, ImulRR, ShiftMI,
    AddRR, SubRR, CmpRR, AndRR, OrRR, XorRR,
    AddRI, SubRI, CmpRI, AndRI, OrRI, XorRI,
}

internal struct FastOp
{
    public FastKind Kind;
    public byte Dst;      // register index 0-15
    public byte Src;      // register index 0-15
    public byte Size;     // 4 or 8
    public byte Alu;      // 0 add, 1 or, 2 adc, 3 sbb, 4 and, 5 sub, 6 xor, 7 cmp
    public byte Cc;       // condition code for Jcc
    public byte Base;     // 0-15, or 16 = none
    public byte Index;    // 0-15, or 16 = none
    public byte Scale;    // shift 0-3
    public byte MemSeg;   // 0 = flat, 1 = FS, 2 = GS
    public ulong Imm;     // immediate, or branch target
    public ulong Disp;    // displacement (absolute address for RIP-relative)
}

public sealed partial class X86Cpu
{
    private static int Gpr64(Register r, out int size)
    {
        int x = (int)r;
        if (x >= (int)Register.RAX && x <= (int)Register.R15) { size = 8; return x - (int)Register.RAX; }
        if (x >= (int)Register.EAX && x <= (int)Register.R15D) { size = 4; return x - (int)Register.EAX; }
        size = 0;
        return -1;
    }

    private static int AluIndex(Mnemonic m) => m switch
    {
        Mnemonic.Add => 0, Mnemonic.Or => 1, Mnemonic.Adc => 2, Mnemonic.Sbb => 3,
        Mnemonic.And => 4, Mnemonic.Sub => 5, Mnemonic.Xor => 6, Mnemonic.Cmp => 7, _ => -1,
    };

    /// <summary>Fills the fast form of a 64-bit-mode instruction when it has one.</summary>
    private static void Precompile(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        ref var f = ref d.Fast;
        f.Kind = FastKind.None;
        if (i.HasLockPrefix || i.HasRepPrefix || i.HasRepnePrefix) return;
        if (i.Op0Kind == OpKind.Memory || i.Op1Kind == OpKind.Memory)
        {
            if (d.AddrSize != 8) return;
            var seg = i.MemorySegment;
            f.MemSeg = seg == Register.FS ? (byte)1 : seg == Register.GS ? (byte)2 : (byte)0;
            var b = i.MemoryBase;
            if (b == Register.RIP) f.Base = 16;
            else if (b == Register.None) f.Base = 16;
            else { int bi = Gpr64(b, out int bs); if (bi < 0 || bs != 8) return; f.Base = (byte)bi; }
            var x = i.MemoryIndex;
            if (x == Register.None) f.Index = 16;
            else { int xi = Gpr64(x, out int xs); if (xi < 0 || xs != 8) return; f.Index = (byte)xi; }
            f.Scale = (byte)System.Numerics.BitOperations.TrailingZeroCount(i.MemoryIndexScale);
            f.Disp = i.MemoryDisplacement64;
        }
        var m = i.Mnemonic;
        int alu = AluIndex(m);
        switch (m)
        {
            case Mnemonic.Mov:
            case Mnemonic.Add: case Mnemonic.Or: case Mnemonic.Adc: case Mnemonic.Sbb:
            case Mnemonic.And: case Mnemonic.Sub: case Mnemonic.Xor: case Mnemonic.Cmp:
            case Mnemonic.Test:
            {
                bool mov = m == Mnemonic.Mov, test = m == Mnemonic.Test;
                var k0 = i.Op0Kind;
                var k1 = i.Op1Kind;
                if (k0 == OpKind.Register)
                {
                    int dst = Gpr64(i.Op0Register, out int size);
                    if (dst < 0) return;
                    f.Dst = (byte)dst;
                    f.Size = (byte)size;
                    f.Alu = (byte)Math.Max(alu, 0);
                    if (k1 == OpKind.Register)
                    {
                        int src = Gpr64(i.Op1Register, out int s1);
                        if (src < 0 || s1 != size) return;
                        f.Src = (byte)src;
                        f.Kind = mov ? FastKind.MovRR : test ? FastKind.TestRR : Specialise(alu, FastKind.AluRR);
                    }
                    else if (k1 == OpKind.Memory)
                    {
                        if (test || i.MemorySize.GetSize() != size) return;
                        f.Kind = mov ? FastKind.MovRM : FastKind.AluRM;
                    }
                    else if (IsImmediate(k1))
                    {
                        f.Imm = i.GetImmediate(1) & Mask(size);
                        f.Kind = mov ? FastKind.MovRI : test ? FastKind.TestRI : Specialise(alu, FastKind.AluRI);
                    }
                }
                else if (k0 == OpKind.Memory)
                {
                    if (test) return;
                    int size = i.MemorySize.GetSize();
                    if (size is not (4 or 8)) return;
                    f.Size = (byte)size;
                    f.Alu = (byte)Math.Max(alu, 0);
                    if (k1 == OpKind.Register)
                    {
                        int src = Gpr64(i.Op1Register, out int s1);
                        if (src < 0 || s1 != size) return;
                        f.Src = (byte)src;
                        f.Kind = mov ? FastKind.MovMR : FastKind.AluMR;
                    }
                    else if (IsImmediate(k1))
                    {
                        f.Imm = i.GetImmediate(1) & Mask(size);
                        f.Kind = mov ? FastKind.MovMI : FastKind.AluMI;
                    }
                }
                return;
            }
            case Mnemonic.Inc:
            case Mnemonic.Dec:
            {
                if (i.Op0Kind != OpKind.Register) return;
                int dst = Gpr64(i.Op0Register, out int size);
                if (dst < 0) return;
                f.Dst = (byte)dst;
                f.Size = (byte)size;
                f.Kind = m == Mnemonic.Inc ? FastKind.IncR : FastKind.DecR;
                return;
            }
            case Mnemonic.Lea:
            {
                int dst = Gpr64(i.Op0Register, out int size);
                if (dst < 0) return;
                f.Dst = (byte)dst;
                f.Size = (byte)size;
                f.Kind = FastKind.Lea;
                return;
            }
            case Mnemonic.Jmp:
                if (i.Op0Kind is OpKind.NearBranch64)
                {
                    f.Imm = i.NearBranchTarget;
                    f.Kind = FastKind.Jmp;
                }
                return;
            case Mnemonic.Push:
            case Mnemonic.Pop:
            {
                if (i.Op0Kind != OpKind.Register) return;
                int r = Gpr64(i.Op0Register, out int size);
                if (r < 0 || size != 8) return;
                f.Dst = (byte)r;
                f.Kind = m == Mnemonic.Push ? FastKind.PushR : FastKind.PopR;
                return;
            }
            case Mnemonic.Call:
                if (i.Op0Kind == OpKind.NearBranch64)
                {
                    f.Imm = i.NearBranchTarget;
                    f.Kind = FastKind.CallRel;
                }
                return;
            case Mnemonic.Ret:
                if (i.OpCount == 0 && i.StackPointerIncrement == 8) f.Kind = FastKind.Ret;
                return;
            case Mnemonic.Nop:
            case Mnemonic.Pause:
                f.Kind = FastKind.Nop;
                return;
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
            case Mnemonic.Rol:
            case Mnemonic.Ror:
            {
                if (i.Op0Kind == OpKind.Memory && IsImmediate(i.Op1Kind))
                {
                    f.Size = (byte)i.MemorySize.GetSize();
                    f.Imm = i.GetImmediate(1) & (f.Size == 8 ? 0x3FUL : 0x1FUL);
                    f.Alu = m switch { Mnemonic.Shr => 1, Mnemonic.Sar => 2, Mnemonic.Rol => 3, Mnemonic.Ror => 4, _ => 0 };
                    f.Kind = FastKind.ShiftMI;
                    return;
                }
                if (i.Op0Kind != OpKind.Register || !IsImmediate(i.Op1Kind)) return;
                int dst = Gpr64(i.Op0Register, out int size);
                if (dst < 0) return;
                f.Dst = (byte)dst;
                f.Size = (byte)size;
                f.Imm = i.GetImmediate(1) & (size == 8 ? 0x3FUL : 0x1FUL);
                f.Alu = m switch { Mnemonic.Shr => 1, Mnemonic.Sar => 2, Mnemonic.Rol => 3, Mnemonic.Ror => 4, _ => 0 };
                f.Kind = FastKind.ShiftRI;
                return;
            }
            case Mnemonic.Imul:
            {
                if (i.Op0Kind != OpKind.Register || i.Op1Kind != OpKind.Register) return;
                int dst = Gpr64(i.Op0Register, out int size);
                int src = Gpr64(i.Op1Register, out int s1);
                if (dst < 0 || src < 0 || s1 != size) return;
                f.Dst = (byte)dst;
                f.Src = (byte)src;
                f.Size = (byte)size;
                if (i.OpCount == 3 && IsImmediate(i.Op2Kind)) { f.Imm = i.GetImmediate(2); f.Kind = FastKind.ImulRRI; }
                else if (i.OpCount == 2) f.Kind = FastKind.ImulRR;
                return;
            }
        }
        if (i.IsJccShortOrNear && i.Op0Kind == OpKind.NearBranch64)
        {
            f.Imm = i.NearBranchTarget;
            f.Cc = (byte)((int)i.ConditionCode - 1);
            f.Kind = FastKind.Jcc;
        }
    }

    /// <summary>The per-operation form of a register-destination ALU instruction (ADC and SBB keep the general form).</summary>
    private static FastKind Specialise(int alu, FastKind general)
    {
        bool rr = general == FastKind.AluRR;
        return alu switch
        {
            0 => rr ? FastKind.AddRR : FastKind.AddRI,
            5 => rr ? FastKind.SubRR : FastKind.SubRI,
            7 => rr ? FastKind.CmpRR : FastKind.CmpRI,
            4 => rr ? FastKind.AndRR : FastKind.AndRI,
            1 => rr ? FastKind.OrRR : FastKind.OrRI,
            6 => rr ? FastKind.XorRR : FastKind.XorRI,
            _ => general,
        };
    }

    private static bool IsImmediate(OpKind k) => k is OpKind.Immediate8 or OpKind.Immediate16 or OpKind.Immediate32 or OpKind.Immediate64
        or OpKind.Immediate8to16 or OpKind.Immediate8to32 or OpKind.Immediate8to64 or OpKind.Immediate32to64;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastEa(ref FastOp f)
    {
        ulong ea = f.Disp;
        if (f.Base < 16) ea += G(f.Base);
        if (f.Index < 16) ea += G(f.Index) << f.Scale;
        if (f.MemSeg != 0) ea += Seg[f.MemSeg == 1 ? (int)SegmentIndex.FS : (int)SegmentIndex.GS].Base;
        return ea;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastRead(ulong lin, int size)
    {
        var priv = Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;
        return _mmu.TryReadFast(lin, size, priv, out ulong v) ? v : SlowRead(lin, size, priv, false);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FastWrite(ulong lin, int size, ulong v)
    {
        var priv = Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;
        if (!_mmu.TryWriteFast(lin, size, v, priv)) SlowWrite(lin, size, v, priv, false);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong SlowRead(ulong lin, int size, Privilege priv, bool stack)
    {
        var r = _mmu.Read(lin, size, priv, out ulong v);
        if (!r.Ok) v = AccessFailed(r, lin, size, AccessKind.Read, stack);
        return v;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void SlowWrite(ulong lin, int size, ulong v, Privilege priv, bool stack)
    {
        var r = _mmu.Write(lin, size, v, priv);
        if (!r.Ok) AccessFailed(r, lin, size, AccessKind.Write, stack);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetGpr(int r, int size, ulong v) => G(r) = size == 8 ? v : (uint)v;

    /// <summary>General register <paramref name="r"/> (0-15, checked at decode) without a bounds check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref ulong G(int r) => ref Unsafe.Add(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(R), r);

    /// <summary>The result of ALU operation <paramref name="op"/> (0 add, 1 or, 2 adc, 3 sbb, 4 and, 5 sub, 6 xor, 7 cmp).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AluCompute(int op, ulong a, ulong b) => op switch
    {
        0 => a + b,
        1 => a | b,
        2 => a + b + (CarryFlag() ? 1UL : 0),
        3 => a - b - (CarryFlag() ? 1UL : 0),
        4 => a & b,
        6 => a ^ b,
        _ => a - b,
    };

    /// <summary>Sets the flags of ALU operation <paramref name="op"/> from its operands and result (after any write).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AluFlags(int op, int size, ulong r, ulong a, ulong b)
    {
        switch (op)
        {
            case 0: SetCc(CcOp.Add, size, r, a, b); return;
            case 2: SetCc(CcOp.Adc, size, r, a, b); return;
            case 3: SetCc(CcOp.Sbb, size, r, a, b); return;
            case 5: case 7: SetCc(CcOp.Sub, size, r, a, b); return;
            default: SetLogic(size, r); return;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong AluOp(int op, int size, ulong a, ulong b)
    {
        ulong r = AluCompute(op, a, b);
        AluFlags(op, size, r, a, b);
        return op == 7 ? a : r;
    }

    /// <summary>Executes a pre-decoded instruction; false when it has no fast form (the general path runs instead).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ExecuteFast(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        switch (f.Kind)
        {
            case FastKind.None:
                return false;
            case FastKind.MovRR:
                SetGpr(f.Dst, size, G(f.Src));
                return true;
            case FastKind.MovRI:
                G(f.Dst) = f.Imm;
                return true;
            case FastKind.AluRR:
            {
                ulong m = Mask(size);
                ulong r = AluOp(f.Alu, size, G(f.Dst) & m, G(f.Src) & m);
                if (f.Alu != 7) SetGpr(f.Dst, size, r);
                return true;
            }
            case FastKind.AluRI:
            {
                ulong m = Mask(size);
                ulong r = AluOp(f.Alu, size, G(f.Dst) & m, f.Imm);
                if (f.Alu != 7) SetGpr(f.Dst, size, r);
                return true;
            }
            case FastKind.AddRR:
            case FastKind.AddRI:
            {
                ulong m = Mask(size);
                ulong a = G(f.Dst) & m, b = f.Kind == FastKind.AddRR ? G(f.Src) & m : f.Imm;
                ulong r = a + b;
                SetGpr(f.Dst, size, r);
                SetCc(CcOp.Add, size, r, a, b);
                return true;
            }
            case FastKind.SubRR:
            case FastKind.SubRI:
            case FastKind.CmpRR:
            case FastKind.CmpRI:
            {
                ulong m = Mask(size);
                ulong a = G(f.Dst) & m, b = f.Kind is FastKind.SubRR or FastKind.CmpRR ? G(f.Src) & m : f.Imm;
                ulong r = a - b;
                if (f.Kind is FastKind.SubRR or FastKind.SubRI) SetGpr(f.Dst, size, r);
                SetCc(CcOp.Sub, size, r, a, b);
                return true;
            }
            case FastKind.AndRR:
            case FastKind.AndRI:
            {
                ulong r = G(f.Dst) & (f.Kind == FastKind.AndRR ? G(f.Src) : f.Imm);
                SetGpr(f.Dst, size, r);
                SetLogic(size, r);
                return true;
            }
            case FastKind.OrRR:
            case FastKind.OrRI:
            {
                ulong r = G(f.Dst) | (f.Kind == FastKind.OrRR ? G(f.Src) : f.Imm);
                SetGpr(f.Dst, size, r);
                SetLogic(size, r);
                return true;
            }
            case FastKind.XorRR:
            case FastKind.XorRI:
            {
                ulong r = G(f.Dst) ^ (f.Kind == FastKind.XorRR ? G(f.Src) : f.Imm);
                SetGpr(f.Dst, size, r);
                SetLogic(size, r);
                return true;
            }
            case FastKind.TestRR:
                SetLogic(size, G(f.Dst) & G(f.Src));
                return true;
            case FastKind.TestRI:
                SetLogic(size, G(f.Dst) & f.Imm);
                return true;
            case FastKind.IncR:
            case FastKind.DecR:
            {
                bool cf = CarryFlag();
                ulong a = G(f.Dst) & Mask(size);
                ulong r = f.Kind == FastKind.IncR ? a + 1 : a - 1;
                SetGpr(f.Dst, size, r);
                SetCc(f.Kind == FastKind.IncR ? CcOp.Inc : CcOp.Dec, size, r, a, 1);
                _ccCarry = cf;
                return true;
            }
            case FastKind.Lea:
            {
                ulong ea = f.Disp;
                if (f.Base < 16) ea += G(f.Base);
                if (f.Index < 16) ea += G(f.Index) << f.Scale;
                SetGpr(f.Dst, size, ea);
                return true;
            }
            case FastKind.Jcc:
                if (Condition(f.Cc)) JumpNear(f.Imm);
                return true;
            case FastKind.Jmp:
                JumpNear(f.Imm);
                return true;
            case FastKind.Nop:
                return true;
            case FastKind.MovRM:
                if (TryLoadOrDeliver(FastEa(ref f), size, out ulong loaded)) SetGpr(f.Dst, size, loaded);
                return true;
            case FastKind.MovMR:
                StoreOrDeliver(FastEa(ref f), size, G(f.Src));
                return true;
            case FastKind.MovMI:
                return FastMovMI(ref d);
            case FastKind.AluRM:
                return FastAluRM(ref d);
            case FastKind.AluMR:
            case FastKind.AluMI:
                return FastAluMR(ref d);
            case FastKind.PushR:
                return FastPushR(ref d);
            case FastKind.PopR:
                return FastPopR(ref d);
            case FastKind.CallRel:
                return FastCallRel(ref d);
            case FastKind.Ret:
                return FastRet(ref d);
            case FastKind.ShiftMI:
                return FastShiftMI(ref d);
            case FastKind.ShiftRI:
                return FastShiftRI(ref d);
            case FastKind.ImulRRI:
            case FastKind.ImulRR:
                return FastImulRRI(ref d);
            default:
                return false;
        }
    }

    // The fast forms that touch memory or need more state, each in its own small method so that the register forms
    // above stay inlined in the dispatch loop and every call here has a small frame.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastMovMI(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        StoreOrDeliver(FastEa(ref f), size, f.Imm);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastAluRM(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        ulong m = Mask(size);
        ulong b = FastRead(FastEa(ref f), size);
        ulong r = AluOp(f.Alu, size, G(f.Dst) & m, b);
        if (f.Alu != 7) SetGpr(f.Dst, size, r);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastAluMR(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        ulong ea = FastEa(ref f);
        ulong a = FastRead(ea, size);
        ulong b = f.Kind == FastKind.AluMR ? G(f.Src) & Mask(size) : f.Imm;
        ulong r = AluCompute(f.Alu, a, b);
        if (f.Alu != 7) FastWrite(ea, size, r & Mask(size)); // write first: a faulting write leaves the flags
        AluFlags(f.Alu, size, r, a, b);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastPushR(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        ulong v = G(f.Dst);
        ulong rsp = G(4) - 8;
        FastWriteStack(rsp, v);
        G(4) = rsp;
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastPopR(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        ulong v = FastReadStack(G(4));
        G(4) += 8;
        G(f.Dst) = v;
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastCallRel(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        ulong rsp = G(4) - 8;
        FastWriteStack(rsp, _rip);
        G(4) = rsp;
        JumpNear(f.Imm);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastRet(ref DecodedInstruction d)
    {
        _ = d;
        ulong target = FastReadStack(G(4));
        JumpNear(target); // checks the target before RSP moves, so a #GP leaves RSP unchanged
        G(4) += 8;
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastShiftMI(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        ulong ea = FastEa(ref f);
        ulong a = FastRead(ea, size);
        if (f.Imm == 0)
        {
            FastWrite(ea, size, a); // nothing changes, but the write is still checked
            return true;
        }
        var mn = f.Alu switch { 1 => Mnemonic.Shr, 2 => Mnemonic.Sar, 3 => Mnemonic.Rol, 4 => Mnemonic.Ror, _ => Mnemonic.Shl };
        var before = SaveCc();
        ulong r = Shift(mn, size, (int)f.Imm, a);
        WriteOrRestoreFlags(ea, size, r, in before);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastShiftRI(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        int count = (int)f.Imm;
        ulong a = G(f.Dst);
        if (count != 0)
        {
            var mn = f.Alu switch { 1 => Mnemonic.Shr, 2 => Mnemonic.Sar, 3 => Mnemonic.Rol, 4 => Mnemonic.Ror, _ => Mnemonic.Shl };
            a = Shift(mn, size, count, a);
        }
        SetGpr(f.Dst, size, a);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool FastImulRRI(ref DecodedInstruction d)
    {
        ref var f = ref d.Fast;
        int size = f.Size;
        long a = SignExtend(G(f.Kind == FastKind.ImulRRI ? f.Src : f.Dst), size);
        long b = f.Kind == FastKind.ImulRRI ? SignExtend(f.Imm & Mask(size), size) : SignExtend(G(f.Src), size);
        long lo = SignedMultiply(a, b, size, out bool overflow);
        SetGpr(f.Dst, size, (ulong)lo);
        MulFlags(size, (ulong)lo & Mask(size), overflow);
        return true;
    }

    /// <summary>Writes a result whose flags are already set; if the write faults, the flags go back to <paramref name="before"/>.</summary>
    private void WriteOrRestoreFlags(ulong ea, int size, ulong value, in CcState before)
    {
        try
        {
            FastWrite(ea, size, value);
        }
        catch (GuestFaultException)
        {
            RestoreCc(before);
            throw;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong FastReadStack(ulong rsp)
    {
        var priv = Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;
        return _mmu.TryReadFast(rsp, 8, priv, out ulong v) ? v : SlowRead(rsp, 8, priv, true);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FastWriteStack(ulong rsp, ulong v)
    {
        var priv = Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;
        if (!_mmu.TryWriteFast(rsp, 8, v, priv)) SlowWrite(rsp, 8, v, priv, true);
    }
}
