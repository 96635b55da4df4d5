using System.Numerics;
using System.Runtime.CompilerServices;
using Iced.Intel;

namespace HwMemModel.Cpu;

public sealed partial class X86Cpu
{
    /// <summary>Executes one decoded instruction. RIP already points at the next instruction.</summary>
    private void Execute(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        if (i.HasLockPrefix) CheckLock(in i);
        switch (i.Mnemonic)
        {
            // ---------------------------------------------------------- data movement
            case Mnemonic.Mov:
                if (i.Op0Kind == OpKind.Register && i.Op1Kind == OpKind.Register && RegSize(i.Op0Register) == RegSize(i.Op1Register) && !IsSpecial(i.Op0Register) && !IsSpecial(i.Op1Register))
                {
                    WriteReg(i.Op0Register, ReadReg(i.Op1Register));
                    break;
                }
                ExecMovGeneral(ref d);
                break;
            case Mnemonic.Movzx:
                WriteReg(i.Op0Register, ReadOp(ref d, 1, OpSize(in i, 1)));
                break;
            case Mnemonic.Movsx:
            case Mnemonic.Movsxd:
            {
                int s1 = OpSize(in i, 1);
                WriteReg(i.Op0Register, (ulong)SignExtend(ReadOp(ref d, 1, s1), s1));
                break;
            }
            case Mnemonic.Lea:
                WriteReg(i.Op0Register, EffectiveAddress(ref d));
                break;
            case Mnemonic.Xchg:
            {
                int size = OpSize(in i, 0);
                if (i.Op0Kind == OpKind.Memory || i.Op1Kind == OpKind.Memory)
                {
                    int mi = i.Op0Kind == OpKind.Memory ? 0 : 1;
                    Register reg = i.GetOpRegister(1 - mi);
                    int seg = SegOf(in i);
                    ulong ea = EffectiveAddress(ref d);
                    ulong m = ReadSeg(seg, ea, size);
                    WriteSeg(seg, ea, size, ReadReg(reg));
                    WriteReg(reg, m);
                }
                else
                {
                    ulong a = ReadReg(i.Op0Register), b = ReadReg(i.Op1Register);
                    WriteReg(i.Op0Register, b);
                    WriteReg(i.Op1Register, a);
                }
                break;
            }
            case Mnemonic.Push: ExecPush(ref d); break;
            case Mnemonic.Pop: ExecPop(ref d); break;
            case Mnemonic.Pushf: PushSized(Rflags & ~(RFlags.VM | RFlags.RF) & 0xFFFF, 2); break;
            case Mnemonic.Pushfd: PushSized(Rflags & ~(RFlags.VM | RFlags.RF), 4); break;
            case Mnemonic.Pushfq: PushSized(Rflags & ~(RFlags.VM | RFlags.RF), 8); break;
            case Mnemonic.Popf: PopFlags(2); break;
            case Mnemonic.Popfd: PopFlags(4); break;
            case Mnemonic.Popfq: PopFlags(8); break;
            case Mnemonic.Pusha: PushAll(2); break;
            case Mnemonic.Pushad: PushAll(4); break;
            case Mnemonic.Popa: PopAll(2); break;
            case Mnemonic.Popad: PopAll(4); break;
            case Mnemonic.Cbw: WriteReg(Register.AX, (ulong)(sbyte)R[0]); break;
            case Mnemonic.Cwde: WriteReg(Register.EAX, (uint)(short)R[0]); break;
            case Mnemonic.Cdqe: R[0] = (ulong)(int)R[0]; break;
            case Mnemonic.Cwd: WriteReg(Register.DX, (short)R[0] < 0 ? 0xFFFFUL : 0); break;
            case Mnemonic.Cdq: WriteReg(Register.EDX, (int)R[0] < 0 ? 0xFFFF_FFFFUL : 0); break;
            case Mnemonic.Cqo: R[2] = (long)R[0] < 0 ? ulong.MaxValue : 0; break;
            case Mnemonic.Bswap:
            {
                int size = RegSize(i.Op0Register);
                if (size == 8) { WriteReg(i.Op0Register, BinaryPrimitivesReverse(ReadReg(i.Op0Register))); break; }
                // BSWAP of a 16-bit register is undefined; QEMU swaps the whole 32-bit register, and so does the model.
                var r32 = size == 4 ? i.Op0Register : Register.EAX + (i.Op0Register - Register.AX);
                WriteReg(r32, System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)ReadReg(r32)));
                break;
            }
            case Mnemonic.Movbe:
            {
                int size = OpSize(in i, 0);
                ulong v = ReadOp(ref d, 1, size);
                v = size switch { 2 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)v), 4 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)v), _ => BinaryPrimitivesReverse(v) };
                WriteOp(ref d, 0, size, v);
                break;
            }
            case Mnemonic.Xlatb:
            {
                ulong bx = d.AddrSize == 8 ? R[3] : d.AddrSize == 4 ? (uint)R[3] : (ushort)R[3];
                ulong ea = (bx + (byte)R[0]) & Mask(d.AddrSize);
                WriteReg(Register.AL, ReadSeg(SegOf(in i), ea, 1));
                break;
            }
            case Mnemonic.Lahf:
                WriteReg(Register.AH, (Rflags & 0xD5) | 2);
                break;
            case Mnemonic.Sahf:
                SetEager((ArithFlags() & RFlags.OF) | (ReadReg(Register.AH) & 0xD5));
                break;
            case Mnemonic.Enter: ExecEnter(ref d); break;
            case Mnemonic.Leave:
            {
                int size = StackOpSize(in i);
                R[4] = (R[4] & ~_stackMask) | (R[5] & _stackMask);
                ulong bp = PopSized(size);
                WriteReg(size == 8 ? Register.RBP : size == 4 ? Register.EBP : Register.BP, bp);
                break;
            }
            case Mnemonic.Clc: SetEager(ArithFlags() & ~RFlags.CF); break;
            case Mnemonic.Stc: SetEager(ArithFlags() | RFlags.CF); break;
            case Mnemonic.Cmc: SetEager(ArithFlags() ^ RFlags.CF); break;
            case Mnemonic.Cld: _flagsRest &= ~RFlags.DF; break;
            case Mnemonic.Std: _flagsRest |= RFlags.DF; break;
            case Mnemonic.Cli:
                CheckIopl("CLI");
                _flagsRest &= ~RFlags.IF;
                break;
            case Mnemonic.Sti:
                CheckIopl("STI");
                if ((_flagsRest & RFlags.IF) == 0) _interruptShadow = true;
                _flagsRest |= RFlags.IF;
                break;

            // ---------------------------------------------------------- arithmetic and logic
            case Mnemonic.Add:
            case Mnemonic.Or:
            case Mnemonic.Adc:
            case Mnemonic.Sbb:
            case Mnemonic.And:
            case Mnemonic.Sub:
            case Mnemonic.Xor:
            case Mnemonic.Cmp:
                Alu2(ref d);
                break;
            case Mnemonic.Test:
            {
                int size = OpSize(in i, 0);
                SetLogic(size, ReadOp(ref d, 0, size) & ReadOp(ref d, 1, size));
                break;
            }
            case Mnemonic.Inc:
            case Mnemonic.Dec:
            {
                int size = OpSize(in i, 0);
                bool cf = CarryFlag();
                if (i.Op0Kind == OpKind.Register)
                {
                    ulong a = ReadReg(i.Op0Register);
                    ulong r = i.Mnemonic == Mnemonic.Inc ? a + 1 : a - 1;
                    WriteReg(i.Op0Register, r & Mask(size));
                    SetCc(i.Mnemonic == Mnemonic.Inc ? CcOp.Inc : CcOp.Dec, size, r, a, 1);
                }
                else
                {
                    int seg = SegOf(in i);
                    ulong ea = EffectiveAddress(ref d);
                    ulong a = ReadSeg(seg, ea, size);
                    ulong r = i.Mnemonic == Mnemonic.Inc ? a + 1 : a - 1;
                    WriteSeg(seg, ea, size, r & Mask(size));
                    SetCc(i.Mnemonic == Mnemonic.Inc ? CcOp.Inc : CcOp.Dec, size, r, a, 1);
                }
                _ccCarry = cf;
                break;
            }
            case Mnemonic.Neg:
            {
                int size = OpSize(in i, 0);
                ulong a = ReadRm(ref d, size, out int seg, out ulong ea);
                ulong r = (0 - a) & Mask(size);
                WriteRm(ref d, size, seg, ea, r);
                SetCc(CcOp.Sub, size, r, 0, a);
                break;
            }
            case Mnemonic.Not:
            {
                int size = OpSize(in i, 0);
                ulong a = ReadRm(ref d, size, out int seg, out ulong ea);
                WriteRm(ref d, size, seg, ea, ~a & Mask(size));
                break;
            }
            case Mnemonic.Mul: ExecMul(ref d, signed: false); break;
            case Mnemonic.Imul: ExecImul(ref d); break;
            case Mnemonic.Div: ExecDiv(ref d, signed: false); break;
            case Mnemonic.Idiv: ExecDiv(ref d, signed: true); break;
            case Mnemonic.Xadd:
            {
                int size = OpSize(in i, 0);
                ulong b = ReadReg(i.Op1Register);
                ulong a = ReadRm(ref d, size, out int seg, out ulong ea);
                ulong r = (a + b) & Mask(size);
                WriteRm(ref d, size, seg, ea, r);
                SetCc(CcOp.Add, size, r, a, b);
                WriteReg(i.Op1Register, a);
                break;
            }
            case Mnemonic.Cmpxchg: ExecCmpxchg(ref d); break;
            case Mnemonic.Cmpxchg8b:
            case Mnemonic.Cmpxchg16b:
                ExecCmpxchgWide(ref d);
                break;
            case Mnemonic.Daa:
            case Mnemonic.Das:
            case Mnemonic.Aaa:
            case Mnemonic.Aas:
            case Mnemonic.Aam:
            case Mnemonic.Aad:
                ExecBcd(ref d);
                break;

            // ---------------------------------------------------------- shifts, rotates, bits
            case Mnemonic.Shl:
            case Mnemonic.Sal:
            case Mnemonic.Shr:
            case Mnemonic.Sar:
            case Mnemonic.Rol:
            case Mnemonic.Ror:
            case Mnemonic.Rcl:
            case Mnemonic.Rcr:
                ExecShift(ref d);
                break;
            case Mnemonic.Shld:
            case Mnemonic.Shrd:
                ExecDoubleShift(ref d);
                break;
            case Mnemonic.Bt:
            case Mnemonic.Bts:
            case Mnemonic.Btr:
            case Mnemonic.Btc:
                ExecBitTest(ref d);
                break;
            case Mnemonic.Bsf:
            case Mnemonic.Bsr:
            {
                int size = OpSize(in i, 0);
                ulong src = ReadOp(ref d, 1, size);
                SetLogic(size, src);
                if (src != 0)
                    WriteReg(i.Op0Register, i.Mnemonic == Mnemonic.Bsf ? (ulong)BitOperations.TrailingZeroCount(src) : (ulong)(63 - BitOperations.LeadingZeroCount(src)));
                else if (size == 4)
                    WriteReg(i.Op0Register, ReadReg(i.Op0Register)); // the destination keeps its value but, as on QEMU, is written (bits 63:32 cleared)
                break;
            }
            case Mnemonic.Tzcnt:
            case Mnemonic.Lzcnt:
            case Mnemonic.Popcnt:
            {
                int size = OpSize(in i, 0);
                ulong src = ReadOp(ref d, 1, size);
                ulong r = i.Mnemonic switch
                {
                    Mnemonic.Tzcnt => src == 0 ? (ulong)(size * 8) : (ulong)BitOperations.TrailingZeroCount(src),
                    Mnemonic.Lzcnt => (ulong)(BitOperations.LeadingZeroCount(src) - (64 - size * 8)),
                    _ => (ulong)BitOperations.PopCount(src),
                };
                WriteReg(i.Op0Register, r);
                // POPCNT: ZF from the source, the rest 0 (SDM). LZCNT/TZCNT: CF and ZF; the undefined OF, SF, AF and PF
                // are 0 as QEMU leaves them.
                ulong f = i.Mnemonic == Mnemonic.Popcnt ? (src == 0 ? RFlags.ZF : 0)
                    : (r == 0 ? RFlags.ZF : 0) | (src == 0 ? RFlags.CF : 0);
                if (i.Mnemonic == Mnemonic.Popcnt) SetEager(f); else SetEagerWithResult(f, r, size);
                break;
            }

            // ---------------------------------------------------------- conditional moves and sets
            case Mnemonic.Cmovo: case Mnemonic.Cmovno: case Mnemonic.Cmovb: case Mnemonic.Cmovae:
            case Mnemonic.Cmove: case Mnemonic.Cmovne: case Mnemonic.Cmovbe: case Mnemonic.Cmova:
            case Mnemonic.Cmovs: case Mnemonic.Cmovns: case Mnemonic.Cmovp: case Mnemonic.Cmovnp:
            case Mnemonic.Cmovl: case Mnemonic.Cmovge: case Mnemonic.Cmovle: case Mnemonic.Cmovg:
            {
                int size = OpSize(in i, 0);
                ulong v = ReadOp(ref d, 1, size);
                if (Condition((int)i.ConditionCode - 1)) WriteReg(i.Op0Register, v);
                else if (size == 4) WriteReg(i.Op0Register, ReadReg(i.Op0Register));
                break;
            }
            case Mnemonic.Seto: case Mnemonic.Setno: case Mnemonic.Setb: case Mnemonic.Setae:
            case Mnemonic.Sete: case Mnemonic.Setne: case Mnemonic.Setbe: case Mnemonic.Seta:
            case Mnemonic.Sets: case Mnemonic.Setns: case Mnemonic.Setp: case Mnemonic.Setnp:
            case Mnemonic.Setl: case Mnemonic.Setge: case Mnemonic.Setle: case Mnemonic.Setg:
                WriteOp(ref d, 0, 1, Condition((int)i.ConditionCode - 1) ? 1UL : 0);
                break;

            // ---------------------------------------------------------- strings and I/O
            case Mnemonic.Movsb: case Mnemonic.Movsw: case Mnemonic.Movsd: case Mnemonic.Movsq:
            case Mnemonic.Stosb: case Mnemonic.Stosw: case Mnemonic.Stosd: case Mnemonic.Stosq:
            case Mnemonic.Lodsb: case Mnemonic.Lodsw: case Mnemonic.Lodsd: case Mnemonic.Lodsq:
            case Mnemonic.Cmpsb: case Mnemonic.Cmpsw: case Mnemonic.Cmpsd: case Mnemonic.Cmpsq:
            case Mnemonic.Scasb: case Mnemonic.Scasw: case Mnemonic.Scasd: case Mnemonic.Scasq:
            case Mnemonic.Insb: case Mnemonic.Insw: case Mnemonic.Insd:
            case Mnemonic.Outsb: case Mnemonic.Outsw: case Mnemonic.Outsd:
                if (!i.IsStringInstruction) { Unimplemented(ref d); break; } // SSE2 MOVSD/CMPSD: see TryExecuteFloatingPoint
                ExecString(ref d);
                break;
            case Mnemonic.In: ExecIn(ref d); break;
            case Mnemonic.Out: ExecOut(ref d); break;

            // ---------------------------------------------------------- control flow
            case Mnemonic.Jmp: ExecJmp(ref d); break;
            case Mnemonic.Jo: case Mnemonic.Jno: case Mnemonic.Jb: case Mnemonic.Jae:
            case Mnemonic.Je: case Mnemonic.Jne: case Mnemonic.Jbe: case Mnemonic.Ja:
            case Mnemonic.Js: case Mnemonic.Jns: case Mnemonic.Jp: case Mnemonic.Jnp:
            case Mnemonic.Jl: case Mnemonic.Jge: case Mnemonic.Jle: case Mnemonic.Jg:
                if (Condition((int)i.ConditionCode - 1)) JumpNear(i.NearBranchTarget);
                break;
            case Mnemonic.Jcxz: if ((ushort)R[1] == 0) JumpNear(i.NearBranchTarget); break;
            case Mnemonic.Jecxz: if ((uint)R[1] == 0) JumpNear(i.NearBranchTarget); break;
            case Mnemonic.Jrcxz: if (R[1] == 0) JumpNear(i.NearBranchTarget); break;
            case Mnemonic.Loop:
            case Mnemonic.Loope:
            case Mnemonic.Loopne:
            {
                ulong m = Mask(d.AddrSize);
                ulong c = (R[1] - 1) & m;
                R[1] = d.AddrSize == 4 ? c : (R[1] & ~m) | c;
                bool go = c != 0 && (i.Mnemonic == Mnemonic.Loop || (i.Mnemonic == Mnemonic.Loope) == ZeroFlag());
                if (go) JumpNear(i.NearBranchTarget);
                break;
            }
            case Mnemonic.Call: ExecCall(ref d); break;
            case Mnemonic.Ret:
            {
                int size = RetSize(in i);
                ulong target = PopSized(size);
                if (i.Op0Kind == OpKind.Immediate16) R[4] = (R[4] & ~_stackMask) | ((R[4] + i.Immediate16) & _stackMask);
                JumpNear(target);
                break;
            }
            case Mnemonic.Retf: ExecRetf(ref d); break;
            case Mnemonic.Iret: ExecIret(2); break;
            case Mnemonic.Iretd: ExecIret(4); break;
            case Mnemonic.Iretq: ExecIret(8); break;
            case Mnemonic.Int:
                SoftwareInterrupt(i.Immediate8);
                break;
            case Mnemonic.Int3:
                SoftwareInterrupt(Vectors.BP, trapException: true);
                break;
            case Mnemonic.Int1:
                Deliver(Vectors.DB, false, 0, _rip, software: false);
                break;
            case Mnemonic.Into:
                if ((ArithFlags() & RFlags.OF) != 0) SoftwareInterrupt(Vectors.OF, trapException: true);
                break;
            case Mnemonic.Syscall: ExecSyscall(); break;
            case Mnemonic.Sysret:
            case Mnemonic.Sysretq:
                ExecSysret(ref d);
                break;
            case Mnemonic.Hlt:
                RequireCpl0("HLT");
                _halted = true;
                break;
            case Mnemonic.Ud0:
            case Mnemonic.Ud1:
            case Mnemonic.Ud2:
                throw Fault(Vectors.UD, $"{i.Mnemonic} (defined invalid opcode)");

            // ---------------------------------------------------------- no-ops and hints
            case Mnemonic.Nop:
            case Mnemonic.Pause:
            case Mnemonic.Lfence:
            case Mnemonic.Mfence:
            case Mnemonic.Sfence:
            case Mnemonic.Endbr32:
            case Mnemonic.Endbr64:
            case Mnemonic.Prefetch:
            case Mnemonic.Prefetchw:
            case Mnemonic.Prefetchnta:
            case Mnemonic.Prefetcht0:
            case Mnemonic.Prefetcht1:
            case Mnemonic.Prefetcht2:
                break;
            case Mnemonic.Clflush:
            case Mnemonic.Clflushopt:
            case Mnemonic.Clwb:
            {
                // Checked like a byte read (SDM: CLFLUSH faults as a read would, without setting A).
                ulong lin = Linear(SegOf(in i), EffectiveAddress(ref d), 1, false);
                var f = _mmu.Translate(lin, Mmu.AccessKind.Read, DataPrivilege, out _);
                if (f.IsFault) RaiseMmuFault(f, lin, Mmu.AccessKind.Read);
                break;
            }

            default:
                if (!ExecuteSystem(ref d)) Unimplemented(ref d);
                break;
        }
    }

    private static ulong BinaryPrimitivesReverse(ulong v) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v);

    private static bool IsSpecial(Register r) => r.IsSegmentRegister() || r.IsCR() || r.IsDR();

    private int RetSize(in Instruction i)
    {
        // RET pops a return address of the operand size: 8 in 64-bit mode (66h gives 2), else 2 or 4.
        int inc = i.StackPointerIncrement - (i.Op0Kind == OpKind.Immediate16 ? i.Immediate16 : 0);
        return inc is 2 or 4 or 8 ? inc : (_bitness == 64 ? 8 : _bitness / 8);
    }

    private void CheckLock(in Instruction i)
    {
        bool ok = i.Op0Kind == OpKind.Memory && i.Mnemonic is Mnemonic.Add or Mnemonic.Adc or Mnemonic.And or Mnemonic.Btc
            or Mnemonic.Btr or Mnemonic.Bts or Mnemonic.Cmpxchg or Mnemonic.Cmpxchg8b or Mnemonic.Cmpxchg16b or Mnemonic.Dec
            or Mnemonic.Inc or Mnemonic.Neg or Mnemonic.Not or Mnemonic.Or or Mnemonic.Sbb or Mnemonic.Sub or Mnemonic.Xor
            or Mnemonic.Xadd or Mnemonic.Xchg;
        if (!ok) throw Fault(Vectors.UD, "LOCK prefix on an instruction that is not a memory read-modify-write");
    }

    private void Unimplemented(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        if (i.Code == Code.INVALID)
            throw Fault(Vectors.UD, "invalid opcode");
        // x87, SSE/SSE2 and FXSAVE/FXRSTOR (X87.cs, Sse.cs, FxSave.cs); reached only after the integer dispatch.
        if (TryExecuteFloatingPoint(ref d)) return;
        // What remains (MMX, SSE3+ and VEX forms) is not modelled, but CR0.EM/TS decide first, as on hardware: x87 with
        // EM=1 or TS=1 raises #NM; MMX/SSE with EM=1 raise #UD and with TS=1 #NM.
        var features = i.Code.CpuidFeatures();
        bool x87 = Array.IndexOf(features, CpuidFeature.FPU) >= 0;
        bool simd = !x87 && Array.Exists(features, f => f is CpuidFeature.MMX or CpuidFeature.SSE or CpuidFeature.SSE2 or CpuidFeature.SSE3
            or CpuidFeature.SSSE3 or CpuidFeature.SSE4_1 or CpuidFeature.SSE4_2);
        ulong cr0 = Context.Cr0Value;
        if (x87 && (cr0 & (Mmu.Cr0.EM | Mmu.Cr0.TS)) != 0) throw Fault(Vectors.NM, "x87 instruction with CR0.EM or CR0.TS set");
        if (simd && (cr0 & Mmu.Cr0.EM) != 0) throw Fault(Vectors.UD, "MMX/SSE instruction with CR0.EM=1");
        if (simd && (cr0 & Mmu.Cr0.TS) != 0) throw Fault(Vectors.NM, "MMX/SSE instruction with CR0.TS=1");
        Counters.Unimplemented++;
        _formatter ??= new IntelFormatter();
        var o = new StringOutput();
        _formatter.Format(in i, o);
        string text = o.ToStringAndReset();
        ReportOnce("ud:" + i.Code, $"not implemented: '{text}' ({i.Code}) at {Where()}; raised #UD in the guest");
        throw Fault(Vectors.UD, $"'{text}' is not implemented by the model");
    }

    private void ExecMovGeneral(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        if (i.Op0Kind == OpKind.Register)
        {
            var r0 = i.Op0Register;
            if (r0.IsCR()) { MovToCr(ref d); return; }
            if (r0.IsDR()) { MovToDr(ref d); return; }
            if (r0.IsSegmentRegister())
            {
                if (r0 == Register.CS) throw Fault(Vectors.UD, "MOV to CS");
                ushort sel = (ushort)ReadOp(ref d, 1, 2);
                LoadDataSegment((SegmentIndex)(r0 - Register.ES), sel);
                if (r0 == Register.SS) _interruptShadow = true;
                return;
            }
            if (i.Op1Kind == OpKind.Register)
            {
                var r1 = i.Op1Register;
                if (r1.IsCR()) { WriteReg(r0, ReadCr(r1)); return; }
                if (r1.IsDR())
                {
                    RequireCpl0("MOV from DR");
                    int n = r1 - Register.DR0;
                    if (n > 7) throw Fault(Vectors.UD, $"MOV from {r1} (only DR0-DR7 exist)");
                    if (n is 4 or 5 && (Context.Cr4Value & Mmu.Cr4.DE) != 0) throw Fault(Vectors.UD, "DR4/DR5 with CR4.DE=1");
                    WriteReg(r0, _dr[n]);
                    return;
                }
                if (r1.IsSegmentRegister()) { WriteReg(r0, RegSize(r0) == 2 ? ReadReg(r1) : ReadReg(r1) & 0xFFFF); return; }
            }
            int size = RegSize(r0);
            WriteReg(r0, ReadOp(ref d, 1, size));
            return;
        }
        // Memory destination.
        int msize = i.Op1Kind == OpKind.Register ? RegSize(i.Op1Register) : OpSize(in i, 0);
        if (i.Op1Kind == OpKind.Register && i.Op1Register.IsSegmentRegister()) msize = 2;
        int seg = SegOf(in i);
        ulong lin = Linear(seg, EffectiveAddress(ref d), msize, true);
        StoreOrDeliver(lin, msize, ReadOp(ref d, 1, msize), DataPrivilege, seg == (int)SegmentIndex.SS); // a page fault needs no .NET exception
    }

    private void Alu2(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        bool mem = i.Op0Kind == OpKind.Memory;
        int seg = 0;
        ulong ea = 0, a;
        if (mem)
        {
            seg = SegOf(in i);
            ea = EffectiveAddress(ref d);
            a = ReadSeg(seg, ea, size);
        }
        else a = ReadReg(i.Op0Register);
        ulong b = i.Op1Kind == OpKind.Register ? ReadReg(i.Op1Register) : ReadOp(ref d, 1, size);
        int op = AluIndex(i.Mnemonic);
        ulong r = AluCompute(op, a, b);
        if (op != 7)
        {
            if (mem) WriteSeg(seg, ea, size, r & Mask(size));
            else WriteReg(i.Op0Register, r & Mask(size));
        }
        AluFlags(op, size, r, a, b);
    }

    /// <summary>Reads operand 0 of a read-modify-write instruction; <see cref="WriteRm"/> writes the result back.</summary>
    private ulong ReadRm(ref DecodedInstruction d, int size, out int seg, out ulong ea)
    {
        ref var i = ref d.I;
        if (i.Op0Kind == OpKind.Register)
        {
            seg = -1;
            ea = 0;
            return ReadReg(i.Op0Register);
        }
        seg = SegOf(in i);
        ea = EffectiveAddress(ref d);
        return ReadSeg(seg, ea, size);
    }

    private void WriteRm(ref DecodedInstruction d, int size, int seg, ulong ea, ulong value)
    {
        if (seg < 0) WriteReg(d.I.Op0Register, value);
        else WriteSeg(seg, ea, size, value);
    }

    private void ExecPush(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = StackOpSize(in i);
        if (i.Op0Kind == OpKind.Register && i.Op0Register.IsSegmentRegister())
        {
            ulong sel = ReadReg(i.Op0Register);
            if (size == 4 || size == 8)
            {
                // Like current processors, a segment push of 32/64 bits writes only the low 16 bits.
                ulong rsp = (R[4] - (ulong)size) & _stackMask;
                WriteSeg((int)SegmentIndex.SS, rsp, 2, sel);
                R[4] = (R[4] & ~_stackMask) | rsp;
                return;
            }
            PushSized(sel, size);
            return;
        }
        ulong v = ReadOp(ref d, 0, size);
        if (i.Op0Kind != OpKind.Register && i.Op0Kind != OpKind.Memory) v = (ulong)SignExtend(i.GetImmediate(0), 8) & Mask(size);
        PushSized(v, size);
    }

    private void ExecPop(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = StackOpSize(in i);
        if (i.Op0Kind == OpKind.Register && i.Op0Register.IsSegmentRegister())
        {
            ulong rsp = R[4] & _stackMask;
            ushort sel = (ushort)ReadSeg((int)SegmentIndex.SS, rsp, 2);
            LoadDataSegment((SegmentIndex)(i.Op0Register - Register.ES), sel);
            R[4] = (R[4] & ~_stackMask) | ((rsp + (ulong)size) & _stackMask);
            if (i.Op0Register == Register.SS) _interruptShadow = true;
            return;
        }
        if (i.Op0Kind == OpKind.Register)
        {
            ulong v = PopSized(size);
            WriteReg(i.Op0Register, v);
            return;
        }
        // POP to memory: the address is computed with RSP already incremented.
        ulong old = R[4];
        ulong val = PeekStack(0, size);
        R[4] = (R[4] & ~_stackMask) | ((R[4] + (ulong)size) & _stackMask);
        try
        {
            WriteSeg(SegOf(in i), EffectiveAddress(ref d), size, val);
        }
        catch
        {
            R[4] = old;
            throw;
        }
    }

    private void PopFlags(int size)
    {
        if ((_flagsRest & RFlags.VM) != 0 && ((_flagsRest & RFlags.IOPL) >> 12) < 3) throw GP(0, "POPF in virtual-8086 mode with IOPL < 3");
        ulong v = PopSized(size);
        ulong cur = Rflags;
        ulong writable = RFlags.Writable;
        int cpl = _protected ? Context.Cpl : 0;
        int iopl = (int)((cur & RFlags.IOPL) >> 12);
        if (cpl > 0) writable &= ~RFlags.IOPL;
        if (cpl > iopl) writable &= ~RFlags.IF;
        if (size == 2) writable &= 0xFFFF;
        LoadFlags((cur & ~writable) | (v & writable));
    }

    private void PushAll(int size)
    {
        ulong sp = R[4];
        for (int r = 0; r < 8; r++) PushSized(r == 4 ? sp : R[r], size);
    }

    private void PopAll(int size)
    {
        for (int r = 7; r >= 0; r--)
        {
            ulong v = PopSized(size);
            if (r == 4) continue;
            WriteReg(size == 4 ? Register.EAX + r : Register.AX + r, v);
        }
    }

    private void ExecEnter(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = EnterSize(in i);
        ulong alloc = i.Immediate16;
        int level = i.Immediate8_2nd & 31;
        PushSized(R[5], size);
        ulong frame = R[4] & _stackMask;
        if (level > 0)
        {
            ulong bp = R[5];
            for (int n = 1; n < level; n++)
            {
                bp = (bp - (ulong)size) & _stackMask;
                PushSized(ReadSeg((int)SegmentIndex.SS, bp, size), size);
            }
            PushSized(frame, size);
        }
        WriteReg(size == 8 ? Register.RBP : size == 4 ? Register.EBP : Register.BP, frame);
        R[4] = (R[4] & ~_stackMask) | ((R[4] - alloc) & _stackMask);
    }

    private int EnterSize(in Instruction i) => i.Code switch
    {
        Code.Enterw_imm16_imm8 => 2,
        Code.Enterd_imm16_imm8 => 4,
        Code.Enterq_imm16_imm8 => 8,
        _ => _bitness == 64 ? 8 : _bitness / 8,
    };

    private void CheckIopl(string what)
    {
        if (!_protected) return;
        int iopl = (int)((_flagsRest & RFlags.IOPL) >> 12);
        if (Context.Cpl > iopl) throw GP(0, $"{what} at CPL {Context.Cpl} with IOPL {iopl}");
    }

    internal void RequireCpl0(string what)
    {
        if (_protected && Context.Cpl != 0) throw GP(0, $"{what} requires CPL 0 (CPL is {Context.Cpl})");
    }

    // ---------------------------------------------------------- multiply and divide

    private void ExecMul(ref DecodedInstruction d, bool signed)
    {
        _ = signed;
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        ulong src = ReadOp(ref d, 0, size);
        ulong lo, hi;
        switch (size)
        {
            case 1:
            {
                ulong r = (byte)R[0] * src;
                WriteReg(Register.AX, r);
                lo = r & 0xFF; hi = (r >> 8) & 0xFF;
                break;
            }
            case 2:
            {
                ulong r = (ushort)R[0] * src;
                WriteReg(Register.AX, r); WriteReg(Register.DX, r >> 16);
                lo = r & 0xFFFF; hi = (r >> 16) & 0xFFFF;
                break;
            }
            case 4:
            {
                ulong r = (uint)R[0] * src;
                WriteReg(Register.EAX, r); WriteReg(Register.EDX, r >> 32);
                lo = (uint)r; hi = r >> 32;
                break;
            }
            default:
                hi = Math.BigMul(R[0], src, out lo);
                R[0] = lo; R[2] = hi;
                break;
        }
        MulFlags(size, lo, hi != 0);
    }

    /// <summary>The low half of a signed <paramref name="size"/>-byte product, and whether it overflowed that size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SignedMultiply(long a, long b, int size, out bool overflow)
    {
        if (size == 8)
        {
            long hi = Math.BigMul(a, b, out long lo);
            overflow = hi != (lo >> 63);
            return lo;
        }
        long r = a * b;
        overflow = r != SignExtend((ulong)r & Mask(size), size);
        return r;
    }

    /// <summary>Flags after MUL/IMUL as QEMU computes them: CF=OF=overflow, SF/ZF/PF from the low half, AF=0.</summary>
    private void MulFlags(int size, ulong lo, bool overflow)
        => SetCc(CcOp.Mul, size, lo, overflow ? 1UL : 0, 0);

    private void ExecImul(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        if (i.OpCount == 1)
        {
            int size = OpSize(in i, 0);
            long src = SignExtend(ReadOp(ref d, 0, size), size);
            switch (size)
            {
                case 1:
                {
                    long r = (sbyte)R[0] * src;
                    WriteReg(Register.AX, (ulong)r);
                    MulFlags(1, (ulong)r & 0xFF, r != (sbyte)r);
                    return;
                }
                case 2:
                {
                    long r = (short)R[0] * src;
                    WriteReg(Register.AX, (ulong)r); WriteReg(Register.DX, (ulong)(r >> 16));
                    MulFlags(2, (ulong)r & 0xFFFF, r != (short)r);
                    return;
                }
                case 4:
                {
                    long r = (int)R[0] * src;
                    WriteReg(Register.EAX, (ulong)r); WriteReg(Register.EDX, (ulong)(r >> 32));
                    MulFlags(4, (uint)r, r != (int)r);
                    return;
                }
                default:
                {
                    long hi = Math.BigMul((long)R[0], src, out long lo);
                    R[0] = (ulong)lo; R[2] = (ulong)hi;
                    MulFlags(8, (ulong)lo, hi != (lo >> 63));
                    return;
                }
            }
        }
        {
            int size = OpSize(in i, 0);
            long a, b;
            if (i.OpCount == 2) { a = SignExtend(ReadReg(i.Op0Register), size); b = SignExtend(ReadOp(ref d, 1, size), size); }
            else { a = SignExtend(ReadOp(ref d, 1, size), size); b = SignExtend(i.GetImmediate(2), 8); b = SignExtend((ulong)b & Mask(size), size); }
            long lo = SignedMultiply(a, b, size, out bool overflow);
            WriteReg(i.Op0Register, (ulong)lo & Mask(size));
            MulFlags(size, (ulong)lo & Mask(size), overflow);
        }
    }

    private void ExecDiv(ref DecodedInstruction d, bool signed)
    {
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        ulong divisor = ReadOp(ref d, 0, size);
        if (divisor == 0) throw Fault(Vectors.DE, "division by zero");
        switch (size)
        {
            case 1:
            {
                ulong n = (ushort)R[0];
                if (!signed)
                {
                    ulong q = n / divisor;
                    if (q > 0xFF) throw Fault(Vectors.DE, "quotient does not fit in AL");
                    WriteReg(Register.AX, ((n % divisor) << 8) | q);
                }
                else
                {
                    long sn = (short)n, sd = (sbyte)divisor;
                    long q = sn / sd;
                    if (q != (sbyte)q) throw Fault(Vectors.DE, "quotient does not fit in AL");
                    WriteReg(Register.AX, ((ulong)(byte)(sn % sd) << 8) | (byte)q);
                }
                return;
            }
            case 2:
            {
                ulong n = ((ulong)(ushort)R[2] << 16) | (ushort)R[0];
                if (!signed)
                {
                    ulong q = n / divisor;
                    if (q > 0xFFFF) throw Fault(Vectors.DE, "quotient does not fit in AX");
                    WriteReg(Register.AX, q); WriteReg(Register.DX, n % divisor);
                }
                else
                {
                    long sn = (int)n, sd = (short)divisor;
                    long q = sn / sd;
                    if (q != (short)q) throw Fault(Vectors.DE, "quotient does not fit in AX");
                    WriteReg(Register.AX, (ulong)q); WriteReg(Register.DX, (ulong)(sn % sd));
                }
                return;
            }
            case 4:
            {
                ulong n = ((ulong)(uint)R[2] << 32) | (uint)R[0];
                if (!signed)
                {
                    ulong q = n / divisor;
                    if (q > 0xFFFF_FFFF) throw Fault(Vectors.DE, "quotient does not fit in EAX");
                    WriteReg(Register.EAX, q); WriteReg(Register.EDX, n % divisor);
                }
                else
                {
                    long sn = (long)n, sd = (int)divisor;
                    if (sn == long.MinValue && sd == -1) throw Fault(Vectors.DE, "quotient does not fit in EAX");
                    long q = sn / sd;
                    if (q != (int)q) throw Fault(Vectors.DE, "quotient does not fit in EAX");
                    WriteReg(Register.EAX, (ulong)q); WriteReg(Register.EDX, (ulong)(sn % sd));
                }
                return;
            }
            default:
            {
                if (!signed)
                {
                    if (R[2] >= divisor) throw Fault(Vectors.DE, "quotient does not fit in RAX");
                    UInt128 n = ((UInt128)R[2] << 64) | R[0];
                    R[0] = (ulong)(n / divisor);
                    R[2] = (ulong)(n % divisor);
                }
                else
                {
                    Int128 n = (Int128)(((UInt128)R[2] << 64) | R[0]);
                    Int128 sd = (long)divisor;
                    if (n == Int128.MinValue && sd == -1) throw Fault(Vectors.DE, "quotient does not fit in RAX");
                    Int128 q = n / sd;
                    if (q > long.MaxValue || q < long.MinValue) throw Fault(Vectors.DE, "quotient does not fit in RAX");
                    R[0] = (ulong)(long)q;
                    R[2] = (ulong)(long)(n % sd);
                }
                return;
            }
        }
    }

    // ---------------------------------------------------------- cmpxchg

    private void ExecCmpxchg(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        ulong m = Mask(size);
        ulong acc = R[0] & m;
        ulong src = ReadReg(i.Op1Register);
        bool mem = i.Op0Kind == OpKind.Memory;
        int seg = 0;
        ulong ea = 0;
        ulong dest;
        if (mem) { seg = SegOf(in i); ea = EffectiveAddress(ref d); dest = ReadSeg(seg, ea, size); }
        else dest = ReadReg(i.Op0Register);
        if (acc == dest)
        {
            if (mem) WriteSeg(seg, ea, size, src); else WriteReg(i.Op0Register, src);
        }
        else
        {
            if (mem) WriteSeg(seg, ea, size, dest); // the locked cycle writes the old value back
            WriteReg(size switch { 1 => Register.AL, 2 => Register.AX, 4 => Register.EAX, _ => Register.RAX }, dest);
        }
        SetCc(CcOp.Sub, size, acc - dest, acc, dest);
    }

    private void ExecCmpxchgWide(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int seg = SegOf(in i);
        ulong ea = EffectiveAddress(ref d);
        ulong flags = ArithFlags() & ~RFlags.ZF;
        if (i.Mnemonic == Mnemonic.Cmpxchg8b)
        {
            ulong cur = ReadSeg(seg, ea, 8);
            ulong expected = ((ulong)(uint)R[2] << 32) | (uint)R[0];
            if (cur == expected)
            {
                WriteSeg(seg, ea, 8, ((ulong)(uint)R[1] << 32) | (uint)R[3]);
                flags |= RFlags.ZF;
            }
            else
            {
                WriteSeg(seg, ea, 8, cur);
                R[0] = (uint)cur; R[2] = cur >> 32;
            }
        }
        else
        {
            if ((ea & 15) != 0) throw GP(0, "CMPXCHG16B operand not 16-byte aligned");
            ulong lo = ReadSeg(seg, ea, 8), hi = ReadSeg(seg, ea + 8, 8);
            if (lo == R[0] && hi == R[2])
            {
                WriteSeg(seg, ea, 8, R[3]); WriteSeg(seg, ea + 8, 8, R[1]);
                flags |= RFlags.ZF;
            }
            else
            {
                WriteSeg(seg, ea, 8, lo); WriteSeg(seg, ea + 8, 8, hi);
                R[0] = lo; R[2] = hi;
            }
        }
        SetEager(flags);
    }

    // ---------------------------------------------------------- BCD

    private void ExecBcd(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        ulong f = ArithFlags();
        byte al = (byte)R[0];
        switch (i.Mnemonic)
        {
            case Mnemonic.Daa:
            case Mnemonic.Das:
            {
                // SDM DAA/DAS; OF (undefined) is cleared as QEMU does.
                bool cf = (f & RFlags.CF) != 0, af = (f & RFlags.AF) != 0;
                byte old = al;
                bool sub = i.Mnemonic == Mnemonic.Das;
                ulong nf = 0;
                if ((al & 0xF) > 9 || af)
                {
                    bool carry = sub ? al < 6 : al > 0xF9;
                    al = (byte)(sub ? al - 6 : al + 6);
                    if (cf || carry) nf |= RFlags.CF;
                    nf |= RFlags.AF;
                }
                if (old > 0x99 || cf)
                {
                    al = (byte)(sub ? al - 0x60 : al + 0x60);
                    nf |= RFlags.CF;
                }
                WriteReg(Register.AL, al);
                SetEager(nf | SzpFlags(al, 1));
                return;
            }
            case Mnemonic.Aaa:
            case Mnemonic.Aas:
            {
                ulong ax = (ushort)R[0];
                bool adjust = (al & 0xF) > 9 || (f & RFlags.AF) != 0;
                if (adjust)
                {
                    ax = i.Mnemonic == Mnemonic.Aaa ? ax + 0x106 : ax - 6 - 0x100;
                    f |= RFlags.AF | RFlags.CF;
                }
                else f &= ~(RFlags.AF | RFlags.CF);
                ax &= 0xFF0F;
                WriteReg(Register.AX, ax);
                SetEager(f);
                return;
            }
            case Mnemonic.Aam:
            {
                byte imm = i.Immediate8;
                if (imm == 0) throw Fault(Vectors.DE, "AAM with divisor 0");
                byte ah = (byte)(al / imm);
                al = (byte)(al % imm);
                WriteReg(Register.AX, ((ulong)ah << 8) | al);
                SetLogic(1, al);
                return;
            }
            default:
            {
                byte ah = (byte)(R[0] >> 8);
                al = (byte)(al + ah * i.Immediate8);
                WriteReg(Register.AX, al);
                SetLogic(1, al);
                return;
            }
        }
    }

    // ---------------------------------------------------------- shifts and rotates

    private void ExecShift(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        int bits = size * 8;
        int count = (int)(ReadOp(ref d, 1, 1) & (size == 8 ? 0x3FUL : 0x1FUL));
        if (count == 0)
        {
            // Nothing changes, not even the flags; a memory operand is still checked for the write.
            // A 32-bit register destination is still written, so its upper half is cleared in 64-bit mode.
            if (i.Op0Kind == OpKind.Memory) { ulong ea0 = EffectiveAddress(ref d); int s0 = SegOf(in i); WriteSeg(s0, ea0, size, ReadSeg(s0, ea0, size)); }
            else if (size == 4) WriteReg(i.Op0Register, ReadReg(i.Op0Register));
            return;
        }
        ulong m = Mask(size), sign = SignBit(size);
        var mn = i.Mnemonic;
        ulong value = ReadRm(ref d, size, out int rmSeg, out ulong rmEa);
        if (rmSeg < 0) WriteRm(ref d, size, rmSeg, rmEa, Shift(mn, size, count, value));
        else ShiftMemory(ref d, mn, size, count, value, rmSeg, rmEa);
    }

    // A memory destination: the flags change only if the write succeeds.
    private void ShiftMemory(ref DecodedInstruction d, Mnemonic mn, int size, int count, ulong value, int seg, ulong ea)
    {
        _ = d;
        var before = SaveCc();
        ulong r = Shift(mn, size, count, value);
        var after = SaveCc();
        RestoreCc(before);
        WriteSeg(seg, ea, size, r);
        RestoreCc(after);
    }


    /// <summary>The result of SHL/SAL/SHR/SAR/ROL/ROR/RCL/RCR by a non-zero masked count, setting the flags as QEMU does.</summary>
    private ulong Shift(Mnemonic mn, int size, int count, ulong a)
    {
        int bits = size * 8;
        ulong m = Mask(size), sign = SignBit(size);
        {
            a &= m;
            ulong r;
            switch (mn)
            {
                case Mnemonic.Shl:
                case Mnemonic.Sal:
                {
                    ulong tmp = count - 1 >= 64 ? 0 : a << (count - 1);
                    r = (tmp << 1) & m;
                    ulong cf = (tmp & sign) != 0 ? RFlags.CF : 0;
                    ulong of = ((tmp ^ r) & sign) != 0 ? RFlags.OF : 0;
                    SetEagerWithResult(SzpFlags(r, size) | cf | of, r, size);
                    return r;
                }
                case Mnemonic.Shr:
                {
                    ulong tmp = count - 1 >= 64 ? 0 : a >> (count - 1);
                    r = tmp >> 1;
                    ulong cf = (tmp & 1) != 0 ? RFlags.CF : 0;
                    ulong of = ((tmp ^ r) & sign) != 0 ? RFlags.OF : 0;
                    SetEagerWithResult(SzpFlags(r, size) | cf | of, r, size);
                    return r;
                }
                case Mnemonic.Sar:
                {
                    long sa = SignExtend(a, size);
                    long tmp = sa >> Math.Min(count - 1, 63);
                    r = (ulong)(tmp >> 1) & m;
                    ulong cf = (tmp & 1) != 0 ? RFlags.CF : 0;
                    ulong of = (((ulong)tmp ^ r) & sign) != 0 ? RFlags.OF : 0;
                    SetEagerWithResult(SzpFlags(r, size) | cf | of, r, size);
                    return r;
                }
                case Mnemonic.Rol:
                {
                    int c = count & (bits - 1);
                    r = c == 0 ? a : ((a << c) | (a >> (bits - c))) & m;
                    ulong f = ArithFlags() & ~(RFlags.CF | RFlags.OF);
                    bool cf = (r & 1) != 0;
                    bool of = ((r & sign) != 0) != cf;
                    SetEager(f | (cf ? RFlags.CF : 0) | (of ? RFlags.OF : 0));
                    return r;
                }
                case Mnemonic.Ror:
                {
                    int c = count & (bits - 1);
                    r = c == 0 ? a : ((a >> c) | (a << (bits - c))) & m;
                    ulong f = ArithFlags() & ~(RFlags.CF | RFlags.OF);
                    bool cf = (r & sign) != 0;
                    bool of = cf != ((r & (sign >> 1)) != 0);
                    SetEager(f | (cf ? RFlags.CF : 0) | (of ? RFlags.OF : 0));
                    return r;
                }
                default:
                {
                    // RCL/RCR rotate through CF: size+1 bits.
                    int c = size <= 2 ? count % (bits + 1) : count;
                    if (c == 0) return a;
                    ulong f = ArithFlags();
                    UInt128 cf = (f & RFlags.CF) != 0 ? 1u : 0u;
                    UInt128 wide = ((UInt128)a) | (cf << bits); // bits+1 wide value: CF above the operand
                    UInt128 wm = (((UInt128)1) << (bits + 1)) - 1;
                    UInt128 rot = mn == Mnemonic.Rcl
                        ? ((wide << c) | (wide >> (bits + 1 - c))) & wm
                        : ((wide >> c) | (wide << (bits + 1 - c))) & wm;
                    r = (ulong)(rot & m);
                    bool ncf = ((rot >> bits) & 1) != 0;
                    bool of = ((a ^ r) & sign) != 0;
                    SetEager((f & ~(RFlags.CF | RFlags.OF)) | (ncf ? RFlags.CF : 0) | (of ? RFlags.OF : 0));
                    return r;
                }
            }
        }
    }

    private void ExecDoubleShift(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        int bits = size * 8;
        int count = (int)(ReadOp(ref d, 2, 1) & (size == 8 ? 0x3FUL : 0x1FUL));
        if (count == 0)
        {
            if (i.Op0Kind == OpKind.Register && size == 4) WriteReg(i.Op0Register, ReadReg(i.Op0Register));
            return;
        }
        ulong src = ReadReg(i.Op1Register);
        ulong m = Mask(size), sign = SignBit(size);
        bool left = i.Mnemonic == Mnemonic.Shld;
        ulong value = ReadRm(ref d, size, out int rmSeg, out ulong rmEa);
        if (rmSeg < 0) WriteRm(ref d, size, rmSeg, rmEa, DoubleShift(left, size, count, value, src));
        else DoubleShiftMemory(ref d, left, size, count, value, src, rmSeg, rmEa);
    }

    private void DoubleShiftMemory(ref DecodedInstruction d, bool left, int size, int count, ulong value, ulong src, int seg, ulong ea)
    {
        _ = d;
        var before = SaveCc();
        ulong r = DoubleShift(left, size, count, value, src);
        var after = SaveCc();
        RestoreCc(before);
        WriteSeg(seg, ea, size, r);
        RestoreCc(after);
    }

    private ulong DoubleShift(bool left, int size, int count, ulong a, ulong src)
    {
        int bits = size * 8;
        ulong m = Mask(size), sign = SignBit(size);
        {
            a &= m;
            // Build a 2*bits-wide value (a:src for SHLD, src:a for SHRD) and shift it; 16-bit counts above 16 take
            // bits of a again, as the processor does.
            UInt128 wide = left ? (((UInt128)a << bits) | src) : (((UInt128)src << bits) | a);
            if (size == 2) wide = left ? (wide << 16) | a : wide | ((UInt128)a << 32);
            ulong r, tmp;
            if (left)
            {
                int top = size == 2 ? 48 : 2 * bits;
                UInt128 t = wide << (count - 1);
                tmp = (ulong)(t >> (top - bits)) & m;
                r = (ulong)((t << 1) >> (top - bits)) & m;
                ulong cf = (tmp & sign) != 0 ? RFlags.CF : 0;
                ulong of = ((tmp ^ r) & sign) != 0 ? RFlags.OF : 0;
                SetEagerWithResult(SzpFlags(r, size) | cf | of, r, size);
            }
            else
            {
                UInt128 t = wide >> (count - 1);
                // QEMU shifts a 64-bit destination alone for the flags (zeros come in from above); 16- and 32-bit
                // operands are shifted as the double-width value.
                tmp = size == 8 ? a >> (count - 1) : (ulong)t & m;
                r = (ulong)(t >> 1) & m;
                ulong cf = (tmp & 1) != 0 ? RFlags.CF : 0;
                ulong of = ((tmp ^ r) & sign) != 0 ? RFlags.OF : 0; // QEMU: MSB of the value shifted count-1 times, xor MSB of the result
                SetEagerWithResult(SzpFlags(r, size) | cf | of, r, size);
            }
            return r;
        }
    }

    /// <summary>
    /// Whether QEMU's translator would know, at the current instruction, which operation set the flags: the nearest
    /// earlier flag-writing instruction of the same block (DIV/IDIV leave QEMU's state alone and are skipped) exists
    /// and is not a shift or rotate by CL, whose flag update QEMU decides at run time.
    /// </summary>
    private bool QemuKnowsFlagSource()
    {
        var b = _curBlock;
        if (b is null) return false;
        var insns = b.Insns;
        int k = insns.Length - 1;
        while (k >= 0 && insns[k].I.IP != _curIp) k--;
        for (k--; k >= 0; k--)
        {
            ref var p = ref insns[k].I;
            if (p.RflagsModified == RflagsBits.None) continue;
            if (p.Mnemonic is Mnemonic.Div or Mnemonic.Idiv) continue;
            bool variableShift = p.Mnemonic is Mnemonic.Shl or Mnemonic.Sal or Mnemonic.Shr or Mnemonic.Sar or Mnemonic.Rol
                or Mnemonic.Ror or Mnemonic.Rcl or Mnemonic.Rcr or Mnemonic.Shld or Mnemonic.Shrd
                && p.GetOpKind(p.OpCount - 1) == OpKind.Register;
            return !variableShift;
        }
        return false;
    }

    private void ExecBitTest(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = OpSize(in i, 0);
        int bits = size * 8;
        ulong offset = ReadOp(ref d, 1, i.Op1Kind == OpKind.Register ? size : 1);
        int bit;
        ulong v;
        bool mem = i.Op0Kind == OpKind.Memory;
        int seg = 0;
        ulong ea = 0;
        if (mem)
        {
            seg = SegOf(in i);
            ea = EffectiveAddress(ref d);
            if (i.Op1Kind == OpKind.Register)
            {
                long so = SignExtend(offset, size);
                ea = (ulong)((long)ea + (so >> (size == 8 ? 6 : size == 4 ? 5 : 4)) * size) & Mask(d.AddrSize);
                bit = (int)(so & (bits - 1));
            }
            else bit = (int)(offset & (ulong)(bits - 1));
            v = ReadSeg(seg, ea, size);
        }
        else
        {
            bit = (int)(offset & (ulong)(bits - 1));
            v = ReadReg(i.Op0Register);
        }
        bool set = ((v >> bit) & 1) != 0;
        if (i.Mnemonic != Mnemonic.Bt)
        {
            ulong nv = i.Mnemonic switch
            {
                Mnemonic.Bts => v | (1UL << bit),
                Mnemonic.Btr => v & ~(1UL << bit),
                _ => v ^ (1UL << bit),
            };
            if (mem) WriteSeg(seg, ea, size, nv); else WriteReg(i.Op0Register, nv);
        }
        // CF is the bit and ZF is unchanged (SDM); OF, SF, AF and PF are undefined. When QEMU's translator knows the
        // previous flag-setting operation (earlier in the same block, not a shift by CL), it keeps that operation's
        // result and width and evaluates the flags as a SAR of that width with the tested value shifted down;
        // otherwise (POPF, rotates, a flag source in an earlier block) it keeps them. The model does the same.
        if (QemuKnowsFlagSource() && LazyResult(out ulong dst, out int w))
        {
            ulong src = v >> bit;
            ulong f = SzpFlags(dst, w) | ((src & 1) != 0 ? RFlags.CF : 0) | ((((src ^ dst) >> (w * 8 - 1)) & 1) != 0 ? RFlags.OF : 0);
            SetEagerWithResult(f, dst, w);
        }
        else SetEager((ArithFlags() & ~RFlags.CF) | (set ? RFlags.CF : 0));
    }
}
