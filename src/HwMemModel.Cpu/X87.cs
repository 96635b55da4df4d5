using Iced.Intel;

namespace HwMemModel.Cpu;

/// <summary>
/// The x87 FPU (SDM Vol. 1 ch. 8): eight 80-bit registers used as a stack, the control, status and tag words, and the
/// last instruction and data pointers. Arithmetic is exact on the 64-bit significand (<see cref="SoftFloat"/>),
/// rounded per FCW.RC to FCW.PC's precision over the extended exponent range.
/// <para>Modelled: loads and stores of single, double, extended and 16/32/64-bit integers, FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR
/// (register, memory and integer forms, with the P variants), FCOM/FUCOM/FCOMI/FUCOMI (and P/PP forms), FTST, FXAM,
/// FCHS, FABS, FSQRT, FRNDINT, FSCALE, FPREM, FPREM1, FXTRACT, the constants, FXCH, FFREE, FINCSTP/FDECSTP, FNINIT,
/// FNCLEX, FLDCW/FNSTCW, FNSTSW, FNSTENV/FLDENV, FNSAVE/FRSTOR and FWAIT; stack overflow and underflow (IE with SF);
/// masked responses for all six exceptions; an unmasked exception sets ES and B and the next waiting x87 instruction
/// raises #MF (also when CR0.NE=0, where hardware would signal FERR# instead).</para>
/// <para>Not modelled: the transcendental instructions (FSIN, FCOS, FPTAN, FPATAN, F2XM1, FYL2X, FYL2XP1, FSINCOS),
/// FBLD/FBSTP, the bias-adjusted results of unmasked overflow/underflow (the masked result is delivered), C1's
/// "rounded up" indication (C1 is cleared), and the last-opcode field FOP (saved as 0).</para>
/// </summary>
public sealed partial class X86Cpu
{
    private readonly ulong[] _fpMant = new ulong[8];
    private readonly ushort[] _fpExp = new ushort[8];
    private ushort _fcw;
    private ushort _fsw;   // without TOP (bits 11-13)
    private int _ftop;
    private byte _fpValid; // bit i: physical register i is not empty
    private ulong _fip, _fdp;

    private const ushort FswEs = 0x80, FswSf = 0x40, FswC0 = 0x100, FswC1 = 0x200, FswC2 = 0x400, FswC3 = 0x4000, FswB = 0x8000;

    /// <summary>The x87 control word (FCW).</summary>
    public ushort FpuControlWord { get => _fcw; set => _fcw = (ushort)(value | 0x40); }
    /// <summary>The x87 status word (FSW) with TOP in bits 11-13.</summary>
    public ushort FpuStatusWord
    {
        get => (ushort)((_fsw & ~0x3800) | (_ftop << 11));
        set { _fsw = (ushort)(value & ~0x3800); _ftop = (value >> 11) & 7; }
    }
    /// <summary>The abridged x87 tag word (FXSAVE format): bit i set when physical register i is not empty.</summary>
    public byte FpuAbridgedTag { get => _fpValid; set => _fpValid = value; }

    /// <summary>Reads ST(<paramref name="i"/>) as an 80-bit value: the 64-bit significand and the sign/exponent word.</summary>
    public (ulong Significand, ushort SignExponent) GetSt(int i)
    {
        int p = (_ftop + (i & 7)) & 7;
        return (_fpMant[p], _fpExp[p]);
    }

    /// <summary>Whether ST(<paramref name="i"/>) is empty.</summary>
    public bool IsStEmpty(int i) => (_fpValid & (1 << ((_ftop + (i & 7)) & 7))) == 0;

    /// <summary>The x87 state after power-up or RESET (SDM Vol. 3A Table 9-1): FCW 0040H, FSW 0, all registers +0.0 and tagged valid.</summary>
    private void ResetX87()
    {
        _fcw = 0x0040;
        _fsw = 0;
        _ftop = 0;
        _fpValid = 0xFF;
        Array.Clear(_fpMant);
        Array.Clear(_fpExp);
        _fip = _fdp = 0;
    }

    /// <summary>FNINIT: FCW 037FH, FSW 0, all registers empty, pointers cleared.</summary>
    private void FnInit()
    {
        _fcw = 0x037F;
        _fsw = 0;
        _ftop = 0;
        _fpValid = 0;
        _fip = _fdp = 0;
    }

    private int FpRc => (_fcw >> 10) & 3;
    private int FpPrecision => ((_fcw >> 8) & 3) switch { 0 => 24, 2 => 53, _ => 64 };
    private FpFormat FpFmt => FpFormat.ExtendedWith(FpPrecision);

    // ------------------------------------------------------------------ stack

    private int Phys(int i) => (_ftop + i) & 7;

    private FpValue St(int i) => SoftFloat.FromExtended(_fpMant[Phys(i)], _fpExp[Phys(i)]);

    /// <summary>Reads ST(i) for an arithmetic operand; an empty register is a stack underflow (masked: the QNaN indefinite).</summary>
    private bool TryStOperand(int i, out FpValue v, ref FpFlags flags)
    {
        if ((_fpValid & (1 << Phys(i))) == 0)
        {
            StackFault(false, ref flags);
            v = FpValue.Indefinite;
            return false;
        }
        v = St(i);
        return true;
    }

    private void StackFault(bool overflow, ref FpFlags flags)
    {
        flags |= FpFlags.Invalid;
        _fsw = (ushort)((_fsw | FswSf) & ~FswC1);
        if (overflow) _fsw |= FswC1;
    }

    private void SetStRaw(int i, ulong mant, ushort se)
    {
        int p = Phys(i);
        _fpMant[p] = mant;
        _fpExp[p] = se;
        _fpValid |= (byte)(1 << p);
    }

    private void SetSt(int i, in FpValue v)
    {
        FpFlags none = 0;
        SoftFloat.ToExtended(in v, 64, 0, ref none, out ulong m, out ushort se);
        SetStRaw(i, m, se);
    }

    /// <summary>Pushes a value; a full register at the new top is a stack overflow (masked: the QNaN indefinite is pushed).</summary>
    private void Push(ulong mant, ushort se, ref FpFlags flags)
    {
        int t = (_ftop - 1) & 7;
        if ((_fpValid & (1 << t)) != 0)
        {
            StackFault(true, ref flags);
            if ((_fcw & 1) == 0) return; // unmasked: nothing changes
            mant = 0xC000_0000_0000_0000UL;
            se = 0xFFFF;
        }
        _ftop = t;
        SetStRaw(0, mant, se);
    }

    private void Push(in FpValue v, ref FpFlags flags)
    {
        FpFlags none = 0;
        SoftFloat.ToExtended(in v, 64, 0, ref none, out ulong m, out ushort se);
        Push(m, se, ref flags);
    }

    private void Pop()
    {
        _fpValid &= (byte)~(1 << _ftop);
        _ftop = (_ftop + 1) & 7;
    }

    /// <summary>Records flags in FSW; an unmasked one sets ES and B. True when the result may be written (no unmasked IE, DE or ZE).</summary>
    private bool FpuSignal(FpFlags flags)
    {
        if (flags == 0) return true;
        _fsw |= (ushort)flags;
        int unmasked = (int)flags & ~_fcw & 0x3F;
        if (unmasked != 0) _fsw |= FswEs | FswB;
        return (unmasked & 0x7) == 0;
    }

    // ------------------------------------------------------------------ dispatch

    /// <summary>Executes an x87 instruction (CR0.EM/TS already checked); false when the model does not implement it.</summary>
    private bool ExecuteX87(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        var m = i.Mnemonic;
        // Non-waiting control instructions do not check for a pending unmasked exception and do not update FIP/FDP.
        switch (m)
        {
            case Mnemonic.Fninit: FnInit(); return true;
            case Mnemonic.Fnclex: _fsw &= 0x7F00 & ~0x3800; return true;
            case Mnemonic.Fnstcw: WriteSeg(SegOf(in i), EffectiveAddress(ref d), 2, _fcw); return true;
            case Mnemonic.Fnstsw:
                if (i.Op0Kind == OpKind.Register) WriteReg(Register.AX, FpuStatusWord);
                else WriteSeg(SegOf(in i), EffectiveAddress(ref d), 2, FpuStatusWord);
                return true;
            case Mnemonic.Fnstenv: StoreFpuEnvironment(ref d); _fcw |= 0x3F; return true;
            case Mnemonic.Fnsave: FnSave(ref d); return true;
            case Mnemonic.Fneni: case Mnemonic.Fndisi: case Mnemonic.Fnsetpm: return true; // 8087/287 leftovers: no-ops
        }
        if ((_fsw & FswEs) != 0)
        {
            if ((Context.Cr0Value & Mmu.Cr0.NE) == 0)
                ReportOnce("x87:ferr", $"pending x87 exception with CR0.NE=0 at {Where()}: the model raises #MF rather than signalling FERR#");
            throw Fault(Vectors.MF, "pending unmasked x87 exception");
        }
        switch (m)
        {
            case Mnemonic.Wait: return true;
            case Mnemonic.Fldcw: _fcw = (ushort)(ReadSeg(SegOf(in i), EffectiveAddress(ref d), 2) | 0x40); return true;
            case Mnemonic.Fldenv: LoadFpuEnvironment(ref d); return true;
            case Mnemonic.Frstor: FRstor(ref d); return true;
        }
        _fip = i.IP;
        if (i.Op0Kind == OpKind.Memory) _fdp = EffectiveAddress(ref d);
        FpFlags flags = 0;
        switch (m)
        {
            case Mnemonic.Fld: ExecFld(ref d, ref flags); break;
            case Mnemonic.Fild:
            {
                int size = i.MemorySize.GetSize();
                long v = SignExtend(ReadSeg(SegOf(in i), EffectiveAddress(ref d), size), size);
                Push(SoftFloat.FromInt64(v), ref flags);
                break;
            }
            case Mnemonic.Fst:
            case Mnemonic.Fstp:
                ExecFst(ref d, m == Mnemonic.Fstp, ref flags);
                break;
            case Mnemonic.Fist:
            case Mnemonic.Fistp:
            case Mnemonic.Fisttp:
            {
                int size = i.MemorySize.GetSize();
                TryStOperand(0, out var v, ref flags);
                long r = SoftFloat.ToInt(in v, size * 8, FpRc, m == Mnemonic.Fisttp, ref flags);
                if (FpuSignal(flags)) { WriteSeg(SegOf(in i), EffectiveAddress(ref d), size, (ulong)r); if (m != Mnemonic.Fist) Pop(); }
                return true;
            }
            case Mnemonic.Fld1: PushConst(0x8000_0000_0000_0000UL, 0x3FFF, ref flags); break;
            case Mnemonic.Fldz: PushConst(0, 0, ref flags); break;
            case Mnemonic.Fldpi: PushConst(0xC90F_DAA2_2168_C235UL, 0x4000, ref flags); break;
            case Mnemonic.Fldl2e: PushConst(0xB8AA_3B29_5C17_F0BCUL, 0x3FFF, ref flags); break;
            case Mnemonic.Fldl2t: PushConst(0xD49A_784B_CD1B_8AFEUL, 0x4000, ref flags); break;
            case Mnemonic.Fldlg2: PushConst(0x9A20_9A84_FBCF_F799UL, 0x3FFD, ref flags); break;
            case Mnemonic.Fldln2: PushConst(0xB172_17F7_D1CF_79ACUL, 0x3FFE, ref flags); break;
            case Mnemonic.Fxch:
            {
                int j = i.OpCount == 2 ? i.Op1Register - Register.ST0 : 1;
                bool e0 = IsStEmpty(0), ej = IsStEmpty(j);
                if (e0 || ej)
                {
                    StackFault(false, ref flags);
                    if ((_fcw & 1) == 0) break;
                    if (e0) SetStRaw(0, 0xC000_0000_0000_0000UL, 0xFFFF);
                    if (ej) SetStRaw(j, 0xC000_0000_0000_0000UL, 0xFFFF);
                }
                var (m0, x0) = GetSt(0);
                var (mj, xj) = GetSt(j);
                SetStRaw(0, mj, xj);
                SetStRaw(j, m0, x0);
                _fsw &= unchecked((ushort)~FswC1);
                break;
            }
            case Mnemonic.Ffree: _fpValid &= (byte)~(1 << Phys(i.Op0Register - Register.ST0)); break;
            case Mnemonic.Ffreep: _fpValid &= (byte)~(1 << Phys(i.Op0Register - Register.ST0)); Pop(); break;
            case Mnemonic.Fincstp: _ftop = (_ftop + 1) & 7; _fsw &= unchecked((ushort)~FswC1); break;
            case Mnemonic.Fdecstp: _ftop = (_ftop - 1) & 7; _fsw &= unchecked((ushort)~FswC1); break;
            case Mnemonic.Fnop: break;
            case Mnemonic.Fchs:
            case Mnemonic.Fabs:
                if (TryStOperand(0, out _, ref flags))
                {
                    var (mm, se) = GetSt(0);
                    SetStRaw(0, mm, (ushort)(m == Mnemonic.Fchs ? se ^ 0x8000 : se & 0x7FFF));
                }
                else if ((_fcw & 1) != 0) SetStRaw(0, 0xC000_0000_0000_0000UL, 0xFFFF);
                _fsw &= unchecked((ushort)~FswC1);
                break;
            case Mnemonic.Fadd: case Mnemonic.Faddp: case Mnemonic.Fiadd:
            case Mnemonic.Fsub: case Mnemonic.Fsubp: case Mnemonic.Fisub:
            case Mnemonic.Fsubr: case Mnemonic.Fsubrp: case Mnemonic.Fisubr:
            case Mnemonic.Fmul: case Mnemonic.Fmulp: case Mnemonic.Fimul:
            case Mnemonic.Fdiv: case Mnemonic.Fdivp: case Mnemonic.Fidiv:
            case Mnemonic.Fdivr: case Mnemonic.Fdivrp: case Mnemonic.Fidivr:
                ExecFArith(ref d, ref flags);
                return true;
            case Mnemonic.Fcom: case Mnemonic.Fcomp: case Mnemonic.Fcompp:
            case Mnemonic.Fucom: case Mnemonic.Fucomp: case Mnemonic.Fucompp:
            case Mnemonic.Ficom: case Mnemonic.Ficomp: case Mnemonic.Ftst:
            case Mnemonic.Fcomi: case Mnemonic.Fcomip: case Mnemonic.Fucomi: case Mnemonic.Fucomip:
                ExecFCompare(ref d, ref flags);
                return true;
            case Mnemonic.Fxam: ExecFxam(); break;
            case Mnemonic.Fsqrt:
            case Mnemonic.Frndint:
                if (TryStOperand(0, out var a0, ref flags))
                {
                    FpValue r;
                    if (m == Mnemonic.Fsqrt) r = SoftFloat.SquareRoot(in a0, FpFmt, FpRc, ref flags);
                    else if (a0.IsNaN || a0.Class == FpClass.Unsupported) r = SoftFloat.PropagateNaN(in a0, in a0, true, ref flags);
                    else
                    {
                        if (a0.WasDenormal) flags |= FpFlags.Denormal;
                        r = SoftFloat.RoundToIntegral(in a0, FpRc, ref flags);
                    }
                    if (FpuSignal(flags)) SetSt(0, in r);
                    _fsw &= unchecked((ushort)~FswC1);
                    return true;
                }
                if ((_fcw & 1) != 0) SetStRaw(0, 0xC000_0000_0000_0000UL, 0xFFFF);
                break;
            case Mnemonic.Fscale: ExecFscale(ref flags); return true;
            case Mnemonic.Fprem:
            case Mnemonic.Fprem1:
                ExecFprem(m == Mnemonic.Fprem1, ref flags);
                return true;
            case Mnemonic.Fxtract: ExecFxtract(ref flags); return true;
            default:
                return false;
        }
        FpuSignal(flags);
        return true;
    }

    private void PushConst(ulong mant, ushort se, ref FpFlags flags)
    {
        _fsw &= unchecked((ushort)~FswC1);
        Push(mant, se, ref flags);
    }

    private FpValue ReadFpMemory(ref DecodedInstruction d, ref FpFlags flags)
    {
        ref var i = ref d.I;
        int seg = SegOf(in i);
        ulong ea = EffectiveAddress(ref d);
        switch (i.MemorySize)
        {
            case MemorySize.Float32: return SoftFloat.FromSingle((uint)ReadSeg(seg, ea, 4));
            case MemorySize.Float64: return SoftFloat.FromDouble(ReadSeg(seg, ea, 8));
            case MemorySize.Float80:
            {
                ulong mant = ReadSeg(seg, ea, 8);
                ushort se = (ushort)ReadSeg(seg, ea + 8, 2);
                return SoftFloat.FromExtended(mant, se);
            }
            default:
            {
                int size = i.MemorySize.GetSize();
                return SoftFloat.FromInt64(SignExtend(ReadSeg(seg, ea, size), size));
            }
        }
    }

    private void ExecFld(ref DecodedInstruction d, ref FpFlags flags)
    {
        ref var i = ref d.I;
        _fsw &= unchecked((ushort)~FswC1);
        if (i.Op0Kind == OpKind.Register)
        {
            int j = i.Op0Register - Register.ST0;
            if (IsStEmpty(j))
            {
                StackFault(false, ref flags);
                if ((_fcw & 1) == 0) return;
                Push(0xC000_0000_0000_0000UL, 0xFFFF, ref flags);
                return;
            }
            var (mm, se) = GetSt(j);
            Push(mm, se, ref flags);
            return;
        }
        if (i.MemorySize == MemorySize.Float80)
        {
            int seg = SegOf(in i);
            ulong ea = EffectiveAddress(ref d);
            ulong mant = ReadSeg(seg, ea, 8);
            ushort se = (ushort)ReadSeg(seg, ea + 8, 2);
            Push(mant, se, ref flags);
            return;
        }
        var v = ReadFpMemory(ref d, ref flags);
        if (v.Class == FpClass.SNaN)
        {
            flags |= FpFlags.Invalid;
            v.Class = FpClass.QNaN;
            v.Mant |= 1UL << 62;
        }
        if (v.WasDenormal) flags |= FpFlags.Denormal;
        if (((int)flags & ~_fcw & 3) != 0) return; // unmasked IE/DE: no push
        Push(in v, ref flags);
    }

    private void ExecFst(ref DecodedInstruction d, bool pop, ref FpFlags flags)
    {
        ref var i = ref d.I;
        _fsw &= unchecked((ushort)~FswC1);
        bool ok = TryStOperand(0, out var v, ref flags);
        var (mant, se) = ok ? GetSt(0) : (0xC000_0000_0000_0000UL, (ushort)0xFFFF);
        if (i.Op0Kind == OpKind.Register)
        {
            if (!FpuSignal(flags)) return;
            SetStRaw(i.Op0Register - Register.ST0, mant, se);
            if (pop) Pop();
            return;
        }
        int seg = SegOf(in i);
        ulong ea = EffectiveAddress(ref d);
        switch (i.MemorySize)
        {
            case MemorySize.Float32:
            {
                uint r = SoftFloat.ToSingle(in v, FpRc, ref flags);
                if (!FpuSignal(flags)) return;
                WriteSeg(seg, ea, 4, r);
                break;
            }
            case MemorySize.Float64:
            {
                ulong r = SoftFloat.ToDouble(in v, FpRc, ref flags);
                if (!FpuSignal(flags)) return;
                WriteSeg(seg, ea, 8, r);
                break;
            }
            default:
            {
                if (!FpuSignal(flags)) return;
                Span<byte> b = stackalloc byte[10];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, mant);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[8..], se);
                WriteSegBytes(seg, ea, b);
                break;
            }
        }
        if (pop) Pop();
    }

    private void ExecFArith(ref DecodedInstruction d, ref FpFlags flags)
    {
        ref var i = ref d.I;
        var m = i.Mnemonic;
        FpOp op = m switch
        {
            Mnemonic.Fadd or Mnemonic.Faddp or Mnemonic.Fiadd => FpOp.Add,
            Mnemonic.Fsub or Mnemonic.Fsubp or Mnemonic.Fisub or Mnemonic.Fsubr or Mnemonic.Fsubrp or Mnemonic.Fisubr => FpOp.Sub,
            Mnemonic.Fmul or Mnemonic.Fmulp or Mnemonic.Fimul => FpOp.Mul,
            _ => FpOp.Div,
        };
        bool reverse = m is Mnemonic.Fsubr or Mnemonic.Fsubrp or Mnemonic.Fisubr or Mnemonic.Fdivr or Mnemonic.Fdivrp or Mnemonic.Fidivr;
        bool pop = m is Mnemonic.Faddp or Mnemonic.Fsubp or Mnemonic.Fsubrp or Mnemonic.Fmulp or Mnemonic.Fdivp or Mnemonic.Fdivrp;
        _fsw &= unchecked((ushort)~FswC1);
        int dest;
        FpValue a, b;
        bool okA, okB = true;
        if (i.Op0Kind == OpKind.Memory)
        {
            dest = 0;
            b = ReadFpMemory(ref d, ref flags);
            okA = TryStOperand(0, out a, ref flags);
        }
        else
        {
            dest = i.Op0Register - Register.ST0;
            int src = i.OpCount == 2 ? i.Op1Register - Register.ST0 : 0;
            okA = TryStOperand(dest, out a, ref flags);
            if (okA) okB = TryStOperand(src, out b, ref flags);
            else b = FpValue.Indefinite;
        }
        FpValue r = okA && okB
            ? (reverse ? SoftFloat.Arith(op, in b, in a, FpFmt, FpRc, false, ref flags) : SoftFloat.Arith(op, in a, in b, FpFmt, FpRc, false, ref flags))
            : FpValue.Indefinite;
        if (!FpuSignal(flags)) return;
        SetSt(dest, in r);
        if (pop) Pop();
    }

    private void ExecFCompare(ref DecodedInstruction d, ref FpFlags flags)
    {
        ref var i = ref d.I;
        var m = i.Mnemonic;
        FpValue a, b;
        bool ok;
        if (m == Mnemonic.Ftst)
        {
            ok = TryStOperand(0, out a, ref flags);
            b = FpValue.Zero(false);
        }
        else if (i.OpCount >= 1 && i.Op0Kind == OpKind.Memory)
        {
            b = ReadFpMemory(ref d, ref flags);
            ok = TryStOperand(0, out a, ref flags);
        }
        else
        {
            int j = i.OpCount == 2 ? i.Op1Register - Register.ST0 : i.OpCount == 1 ? i.Op0Register - Register.ST0 : 1;
            ok = TryStOperand(0, out a, ref flags);
            ok &= TryStOperand(j, out b, ref flags);
        }
        bool unordered = m is Mnemonic.Fucom or Mnemonic.Fucomp or Mnemonic.Fucompp or Mnemonic.Fucomi or Mnemonic.Fucomip;
        int c = ok ? SoftFloat.Compare(in a, in b) : 2;
        if (ok)
        {
            if (a.Class is FpClass.SNaN or FpClass.Unsupported || b.Class is FpClass.SNaN or FpClass.Unsupported) flags |= FpFlags.Invalid;
            else if (!unordered && (a.IsNaN || b.IsNaN)) flags |= FpFlags.Invalid;
            if (a.WasDenormal || b.WasDenormal) flags |= FpFlags.Denormal;
        }
        bool write = FpuSignal(flags);
        bool eflags = m is Mnemonic.Fcomi or Mnemonic.Fcomip or Mnemonic.Fucomi or Mnemonic.Fucomip;
        if (write)
        {
            if (eflags)
            {
                ulong f = c switch { 2 => RFlags.ZF | RFlags.PF | RFlags.CF, -1 => RFlags.CF, 0 => RFlags.ZF, _ => 0 };
                SetEager(f);
                _fsw &= unchecked((ushort)~FswC1);
            }
            else
            {
                ushort cc = c switch { 2 => FswC3 | FswC2 | FswC0, -1 => FswC0, 0 => FswC3, _ => 0 };
                _fsw = (ushort)((_fsw & ~(FswC3 | FswC2 | FswC1 | FswC0)) | cc);
            }
        }
        else return;
        int pops = m is Mnemonic.Fcompp or Mnemonic.Fucompp ? 2 : m is Mnemonic.Fcomp or Mnemonic.Fucomp or Mnemonic.Ficomp or Mnemonic.Fcomip or Mnemonic.Fucomip ? 1 : 0;
        for (int k = 0; k < pops; k++) Pop();
    }

    private void ExecFxam()
    {
        var (mm, se) = GetSt(0);
        ushort cc;
        if (IsStEmpty(0)) cc = FswC3 | FswC0;
        else
        {
            var v = SoftFloat.FromExtended(mm, se);
            cc = v.Class switch
            {
                FpClass.Unsupported => 0,
                FpClass.QNaN or FpClass.SNaN => FswC0,
                FpClass.Infinity => FswC2 | FswC0,
                FpClass.Zero => FswC3,
                _ => v.WasDenormal ? (ushort)(FswC3 | FswC2) : FswC2,
            };
        }
        if ((se & 0x8000) != 0) cc |= FswC1;
        _fsw = (ushort)((_fsw & ~(FswC3 | FswC2 | FswC1 | FswC0)) | cc);
    }

    private void ExecFscale(ref FpFlags flags)
    {
        _fsw &= unchecked((ushort)~FswC1);
        bool ok = TryStOperand(0, out var a, ref flags);
        ok &= TryStOperand(1, out var b, ref flags);
        FpValue r;
        if (!ok) r = FpValue.Indefinite;
        else if (a.IsNaN || b.IsNaN || a.Class == FpClass.Unsupported || b.Class == FpClass.Unsupported) r = SoftFloat.PropagateNaN(in a, in b, false, ref flags);
        else
        {
            if (a.WasDenormal || b.WasDenormal) flags |= FpFlags.Denormal;
            if (b.Class == FpClass.Infinity)
            {
                if (a.Class == FpClass.Zero && !b.Sign || a.Class == FpClass.Infinity && b.Sign) { flags |= FpFlags.Invalid; r = FpValue.Indefinite; }
                else if (a.Class == FpClass.Zero || a.Class == FpClass.Infinity) r = a;
                else r = b.Sign ? FpValue.Zero(a.Sign) : FpValue.Inf(a.Sign);
            }
            else if (a.Class != FpClass.Finite) r = a;
            else
            {
                long n;
                if (b.Class == FpClass.Zero || b.Exp < 0) n = 0;
                else if (b.Exp > 20) n = b.Sign ? -100_000 : 100_000;
                else n = (long)(b.Mant >> (63 - b.Exp)) * (b.Sign ? -1 : 1);
                var w = new SoftFloat.Wide(a.Sign, a.Exp + (int)n, (UInt128)a.Mant << 64, false);
                r = SoftFloat.FromRounded(SoftFloat.Round(in w, FpFmt, FpRc, ref flags), FpFmt);
            }
        }
        if (FpuSignal(flags)) SetSt(0, in r);
    }

    private void ExecFprem(bool ieee, ref FpFlags flags)
    {
        bool ok = TryStOperand(0, out var a, ref flags);
        ok &= TryStOperand(1, out var b, ref flags);
        FpValue r;
        int q = 0;
        bool partial = false;
        if (!ok) r = FpValue.Indefinite;
        else if (a.IsNaN || b.IsNaN || a.Class == FpClass.Unsupported || b.Class == FpClass.Unsupported) r = SoftFloat.PropagateNaN(in a, in b, false, ref flags);
        else if (a.Class == FpClass.Infinity || b.Class == FpClass.Zero) { flags |= FpFlags.Invalid; r = FpValue.Indefinite; }
        else
        {
            if (a.WasDenormal || b.WasDenormal) flags |= FpFlags.Denormal;
            if (a.Class == FpClass.Zero || b.Class == FpClass.Infinity) r = a;
            else
            {
                int diff = a.Exp - b.Exp;
                if (diff < (ieee ? -1 : 0)) r = a;
                else
                {
                    int n = diff;
                    if (diff >= 64) { n = 32; partial = true; }
                    UInt128 num, rem;
                    UInt128 quo;
                    int remExp; // rem × 2^(remExp − 63)
                    if (n >= 0)
                    {
                        num = (UInt128)a.Mant << n;
                        quo = num / b.Mant;
                        rem = num - quo * b.Mant;
                        remExp = a.Exp - n;
                    }
                    else
                    {
                        quo = 0;
                        rem = a.Mant;
                        remExp = a.Exp; // diff = −1: a < b
                    }
                    bool sign = a.Sign;
                    if (ieee && !partial)
                    {
                        // Round the quotient to nearest (ties to even): one more divisor when the remainder exceeds half of it.
                        UInt128 div = n >= 0 ? (UInt128)b.Mant : (UInt128)b.Mant << 1;
                        UInt128 twice = rem << 1;
                        if (twice > div || (twice == div && (quo & 1) != 0))
                        {
                            rem = div - rem;
                            quo++;
                            sign = !sign;
                        }
                    }
                    q = (int)(quo & 7);
                    if (rem == 0) r = FpValue.Zero(a.Sign);
                    else
                    {
                        int lz = (int)UInt128.LeadingZeroCount(rem);
                        var w = new SoftFloat.Wide(sign, remExp - 63 + (127 - lz), rem << lz, false);
                        r = SoftFloat.FromRounded(SoftFloat.Round(in w, FpFormat.Extended, 0, ref flags), FpFormat.Extended);
                    }
                }
            }
        }
        if (!FpuSignal(flags)) return;
        SetSt(0, in r);
        ushort cc = partial ? FswC2 : (ushort)(((q & 4) != 0 ? FswC0 : 0) | ((q & 1) != 0 ? FswC1 : 0) | ((q & 2) != 0 ? FswC3 : 0));
        _fsw = (ushort)((_fsw & ~(FswC3 | FswC2 | FswC1 | FswC0)) | cc);
    }

    private void ExecFxtract(ref FpFlags flags)
    {
        _fsw &= unchecked((ushort)~FswC1);
        if (!TryStOperand(0, out var a, ref flags))
        {
            FpuSignal(flags);
            return;
        }
        FpValue exp, sig;
        if (a.IsNaN || a.Class == FpClass.Unsupported) exp = sig = SoftFloat.PropagateNaN(in a, in a, false, ref flags);
        else if (a.Class == FpClass.Zero)
        {
            flags |= FpFlags.ZeroDivide;
            exp = FpValue.Inf(true);
            sig = a;
        }
        else if (a.Class == FpClass.Infinity) { exp = FpValue.Inf(false); sig = a; }
        else
        {
            if (a.WasDenormal) flags |= FpFlags.Denormal;
            exp = SoftFloat.FromInt64(a.Exp);
            sig = a;
            sig.Exp = 0;
            sig.WasDenormal = false;
        }
        if (!FpuSignal(flags)) return;
        SetSt(0, in exp);
        Push(in sig, ref flags);
        FpuSignal(flags);
    }

    // ------------------------------------------------------------------ environment (protected-mode 32-bit format, SDM Vol. 1 Fig. 8-9)

    /// <summary>The full 16-bit tag word: 00 valid, 01 zero, 10 special (NaN, infinity, denormal, unsupported), 11 empty.</summary>
    private ushort FullTagWord()
    {
        int tw = 0;
        for (int p = 0; p < 8; p++)
        {
            int t;
            if ((_fpValid & (1 << p)) == 0) t = 3;
            else
            {
                var v = SoftFloat.FromExtended(_fpMant[p], _fpExp[p]);
                t = v.Class switch { FpClass.Zero => 1, FpClass.Finite when !v.WasDenormal => 0, _ => 2 };
            }
            tw |= t << (2 * p);
        }
        return (ushort)tw;
    }

    private void StoreFpuEnvironment(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        Span<byte> env = stackalloc byte[28];
        WriteEnvironment(env);
        WriteSegBytes(SegOf(in i), EffectiveAddress(ref d), env);
    }

    private void WriteEnvironment(Span<byte> env)
    {
        env.Clear();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(env, _fcw);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(env[4..], FpuStatusWord);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(env[8..], FullTagWord());
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(env[12..], (uint)_fip);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(env[16..], Seg[(int)SegmentIndex.CS].Selector);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(env[20..], (uint)_fdp);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(env[24..], Seg[(int)SegmentIndex.DS].Selector);
    }

    private void LoadFpuEnvironment(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        Span<byte> env = stackalloc byte[28];
        ReadSegBytes(SegOf(in i), EffectiveAddress(ref d), env);
        ReadEnvironment(env);
    }

    private void ReadEnvironment(ReadOnlySpan<byte> env)
    {
        _fcw = (ushort)(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(env) | 0x40);
        FpuStatusWord = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(env[4..]);
        ushort tw = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(env[8..]);
        _fpValid = 0;
        for (int p = 0; p < 8; p++)
            if (((tw >> (2 * p)) & 3) != 3) _fpValid |= (byte)(1 << p);
        _fip = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(env[12..]);
        _fdp = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(env[20..]);
        // A loaded status word with unmasked exceptions pending keeps ES set: the next waiting instruction raises #MF.
        if ((_fsw & ~_fcw & 0x3F) != 0) _fsw |= FswEs | FswB;
        else _fsw &= unchecked((ushort)~(FswEs | FswB));
    }

    private void FnSave(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        Span<byte> area = stackalloc byte[108];
        WriteEnvironment(area);
        for (int k = 0; k < 8; k++)
        {
            var (mm, se) = GetSt(k);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(area[(28 + 10 * k)..], mm);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(area[(36 + 10 * k)..], se);
        }
        WriteSegBytes(SegOf(in i), EffectiveAddress(ref d), area);
        FnInit();
    }

    private void FRstor(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        Span<byte> area = stackalloc byte[108];
        ReadSegBytes(SegOf(in i), EffectiveAddress(ref d), area);
        ReadEnvironment(area);
        for (int k = 0; k < 8; k++)
        {
            int p = Phys(k);
            _fpMant[p] = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(area[(28 + 10 * k)..]);
            _fpExp[p] = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(area[(36 + 10 * k)..]);
        }
    }
}
