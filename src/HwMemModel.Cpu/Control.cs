using System.Runtime.CompilerServices;
using Iced.Intel;

namespace HwMemModel.Cpu;

public sealed partial class X86Cpu
{
    /// <summary>A near transfer to <paramref name="target"/>: canonical check in 64-bit mode, CS limit check otherwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void JumpNear(ulong target)
    {
        if (_bitness == 64)
        {
            if (!IsCanonical(target)) ThrowBadJump(target);
        }
        else
        {
            target &= IpMask;
            if (target > Seg[(int)SegmentIndex.CS].Limit) ThrowBadJump(target);
        }
        _rip = target;
    }

    // Kept out of line so that the hot callers carry no string-formatting state in their frames.
    [MethodImpl(MethodImplOptions.NoInlining)]
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowBadJump(ulong target)
    {
        if (_bitness == 64) throw GP(0, $"near transfer to non-canonical address 0x{target:x}");
        throw GP(0, $"near transfer to 0x{target:x} beyond the CS limit 0x{Seg[(int)SegmentIndex.CS].Limit:x}");
    }

    private int BranchSize(in Instruction i)
    {
        var k = i.Op0Kind;
        if (k == OpKind.Register) return RegSize(i.Op0Register);
        if (k == OpKind.Memory) return i.MemorySize.GetSize();
        return _bitness == 64 ? 8 : _bitness / 8;
    }

    private void ExecJmp(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        switch (i.Op0Kind)
        {
            case OpKind.NearBranch16:
            case OpKind.NearBranch32:
            case OpKind.NearBranch64:
                JumpNear(i.NearBranchTarget);
                return;
            case OpKind.FarBranch16:
            case OpKind.FarBranch32:
                FarJump(i.FarBranchSelector, i.Op0Kind == OpKind.FarBranch16 ? i.FarBranch16 : i.FarBranch32, call: false, 0);
                return;
        }
        if (IsFarMemory(in i, out int offSize))
        {
            ulong off = ReadFarPointer(ref d, offSize, out ushort sel);
            FarJump(sel, off, call: false, 0);
            return;
        }
        JumpNear(ReadOp(ref d, 0, BranchSize(in i)));
    }

    /// <summary>Reads an m16:16/32/64 far pointer: the offset, then the selector after it.</summary>
    private ulong ReadFarPointer(ref DecodedInstruction d, int offsetSize, out ushort selector)
    {
        ulong ea = EffectiveAddress(ref d);
        int seg = SegOf(in d.I);
        ulong off = ReadSeg(seg, ea, offsetSize);
        selector = (ushort)ReadSeg(seg, ea + (ulong)offsetSize, 2);
        return off;
    }

    private static bool IsFarMemory(in Instruction i, out int offsetSize)
    {
        offsetSize = i.MemorySize switch
        {
            MemorySize.SegPtr16 => 2,
            MemorySize.SegPtr32 => 4,
            MemorySize.SegPtr64 => 8,
            _ => 0,
        };
        return i.Op0Kind == OpKind.Memory && offsetSize != 0;
    }

    private void ExecCall(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        switch (i.Op0Kind)
        {
            case OpKind.NearBranch16:
            case OpKind.NearBranch32:
            case OpKind.NearBranch64:
            {
                int size = i.Op0Kind == OpKind.NearBranch16 ? 2 : i.Op0Kind == OpKind.NearBranch32 ? 4 : 8;
                ulong target = i.NearBranchTarget;
                ulong ret = _rip;
                PushSized(ret, size);
                JumpNear(target);
                return;
            }
            case OpKind.FarBranch16:
            case OpKind.FarBranch32:
            {
                int size = i.Op0Kind == OpKind.FarBranch16 ? 2 : 4;
                FarJump(i.FarBranchSelector, size == 2 ? i.FarBranch16 : i.FarBranch32, call: true, size);
                return;
            }
        }
        if (IsFarMemory(in i, out int offSize))
        {
            ulong off = ReadFarPointer(ref d, offSize, out ushort sel);
            FarJump(sel, off, call: true, offSize);
            return;
        }
        {
            int size = BranchSize(in i);
            ulong target = ReadOp(ref d, 0, size);
            PushSized(_rip, size);
            JumpNear(target);
        }
    }

    /// <summary>Far JMP or CALL to <paramref name="selector"/>:<paramref name="offset"/> (same privilege; no gates).</summary>
    private void FarJump(ushort selector, ulong offset, bool call, int pushSize)
    {
        ushort oldCs = Seg[(int)SegmentIndex.CS].Selector;
        ulong oldIp = _rip;
        if (!_protected || (_flagsRest & RFlags.VM) != 0)
        {
            if (call)
            {
                PushSized(oldCs, pushSize);
                PushSized(oldIp, pushSize);
            }
            LoadSegmentReal(SegmentIndex.CS, selector);
            _rip = offset & (pushSize == 4 || !call && offset > 0xFFFF ? 0xFFFF_FFFFUL : 0xFFFF);
            UpdateMode();
            return;
        }
        var cs = CheckCodeSegment(selector, Context.Cpl, returning: false);
        if (call)
        {
            PushSized(oldCs, pushSize);
            PushSized(oldIp, pushSize);
        }
        bool to64 = Context.LongModeActive && cs.Long;
        if (!to64) offset &= cs.Big ? 0xFFFF_FFFFUL : 0xFFFF;
        if (!to64 && offset > cs.Limit) throw GP(0, $"far transfer offset 0x{offset:x} beyond the limit of code segment 0x{selector:x}");
        SetCs(cs, Context.Cpl);
        _rip = offset;
    }

    private void ExecRetf(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = i.Code switch
        {
            Code.Retfw or Code.Retfw_imm16 => 2,
            Code.Retfd or Code.Retfd_imm16 => 4,
            _ => 8,
        };
        ulong imm = i.Op0Kind == OpKind.Immediate16 ? (ulong)i.Immediate16 : 0;
        ulong ip = PeekStack(0, size);
        ushort sel = (ushort)PeekStack((ulong)size, 2);
        if (!_protected || (_flagsRest & RFlags.VM) != 0)
        {
            R[4] = (R[4] & ~_stackMask) | ((R[4] + (ulong)(2 * size) + imm) & _stackMask);
            LoadSegmentReal(SegmentIndex.CS, sel);
            _rip = ip & (size == 2 ? 0xFFFFUL : 0xFFFF_FFFFUL);
            UpdateMode();
            return;
        }
        int rpl = sel & 3;
        var cs = CheckCodeSegment(sel, rpl, returning: true);
        if (rpl > Context.Cpl)
        {
            // Return to an outer level: SS:RSP follow CS:RIP on the stack.
            ulong sp = PeekStack((ulong)(2 * size) + imm, size);
            ushort ss = (ushort)PeekStack((ulong)(3 * size) + imm, 2);
            SetCs(cs, rpl);
            LoadDataSegment(SegmentIndex.SS, ss);
            R[4] = sp + imm;
            ClearDataSegmentsForOuterLevel();
        }
        else
        {
            R[4] = (R[4] & ~_stackMask) | ((R[4] + (ulong)(2 * size) + imm) & _stackMask);
            SetCs(cs, Context.Cpl);
        }
        _rip = _bitness == 64 ? ip : ip & (cs.Big ? 0xFFFF_FFFFUL : 0xFFFF);
    }

    private static readonly SegmentIndex[] DataSegments = [SegmentIndex.ES, SegmentIndex.DS, SegmentIndex.FS, SegmentIndex.GS];

    private void ClearDataSegmentsForOuterLevel()
    {
        foreach (var s in DataSegments)
        {
            ref var r = ref Seg[(int)s];
            bool conformingCode = r.IsCode && (r.Attributes & 4) != 0;
            if ((r.Selector & 0xFFFC) != 0 && !conformingCode && r.Dpl < Context.Cpl)
                r = new SegmentRegister { Selector = 0, Base = s >= SegmentIndex.FS ? r.Base : 0, Limit = 0, Attributes = 0 };
        }
    }

    private void ExecIret(int size)
    {
        _nmiBlocked = false; // IRET ends NMI blocking, even when it faults (SDM §6.7.1)
        if (!_protected)
        {
            ulong ip = PopSized(size);
            ushort csSel = (ushort)PopSized(size);
            ulong fl = PopSized(size);
            LoadSegmentReal(SegmentIndex.CS, csSel);
            _rip = ip & (size == 2 ? 0xFFFFUL : 0xFFFF_FFFFUL);
            ulong keep = size == 2 ? ~0xFFFFUL : RFlags.VM | RFlags.VIF | RFlags.VIP;
            LoadFlags((Rflags & keep) | (fl & ~keep & ~(RFlags.VM | RFlags.VIF | RFlags.VIP)));
            UpdateMode();
            return;
        }
        if ((_flagsRest & RFlags.NT) != 0 && !Context.LongModeActive)
            throw new MachineStopException(StopKind.MachineCheck, $"IRET with EFLAGS.NT=1 (task return) is not modelled ({Where()})");
        if ((_flagsRest & RFlags.NT) != 0) throw GP(0, "IRET with NT=1 in IA-32e mode");

        ulong newIp = PeekStack(0, size);
        ushort newCsSel = (ushort)PeekStack((ulong)size, 2);
        ulong newFlags = PeekStack((ulong)(2 * size), size);
        int rpl = newCsSel & 3;
        bool outer = rpl > Context.Cpl;
        bool popStack = outer || size == 8;
        ulong newSp = 0;
        ushort newSs = 0;
        if (popStack)
        {
            newSp = PeekStack((ulong)(3 * size), size);
            newSs = (ushort)PeekStack((ulong)(4 * size), 2);
        }
        if ((newFlags & RFlags.VM) != 0 && Context.Cpl == 0 && !Context.LongModeActive)
            throw new MachineStopException(StopKind.MachineCheck, $"IRET to virtual-8086 mode is not modelled ({Where()})");
        var cs = CheckCodeSegment(newCsSel, rpl, returning: true);
        int oldCpl = Context.Cpl;
        // Flags: IOPL only at CPL 0, IF only when CPL <= IOPL; VM/VIF/VIP kept clear.
        ulong writable = RFlags.Writable | RFlags.RF;
        int iopl = (int)((_flagsRest & RFlags.IOPL) >> 12);
        if (oldCpl > 0) writable &= ~RFlags.IOPL;
        if (oldCpl > iopl) writable &= ~RFlags.IF;
        if (size == 2) writable &= 0xFFFF;
        ulong flags = (Rflags & ~writable) | (newFlags & writable);
        bool to64 = Context.LongModeActive && cs.Long;
        if (to64 && !IsCanonical(newIp)) throw GP(0, $"IRET to non-canonical RIP 0x{newIp:x}");
        if (!to64 && newIp > cs.Limit) throw GP(0, $"IRET to 0x{newIp:x} beyond the limit of code segment 0x{newCsSel:x}");
        if (popStack)
        {
            // Load SS with the new CPL's rules.
            SetCs(cs, rpl);
            try
            {
                if ((newSs & 0xFFFC) == 0 && Context.LongModeActive && rpl != 3 && to64)
                    Seg[(int)SegmentIndex.SS] = new SegmentRegister { Selector = newSs, Base = 0, Limit = 0xFFFF_FFFF, Attributes = (ushort)(rpl << 5) };
                else LoadDataSegment(SegmentIndex.SS, newSs);
            }
            catch
            {
                Context.Cpl = oldCpl;
                throw;
            }
            R[4] = size == 8 || Seg[(int)SegmentIndex.SS].Big ? (size == 4 ? (uint)newSp : newSp) : (R[4] & ~0xFFFFUL) | (ushort)newSp;
            if (outer) ClearDataSegmentsForOuterLevel();
        }
        else
        {
            R[4] = (R[4] & ~_stackMask) | ((R[4] + (ulong)(3 * size)) & _stackMask);
            SetCs(cs, rpl);
        }
        LoadFlags(flags);
        _rip = to64 ? newIp : newIp & (size == 2 ? 0xFFFFUL : 0xFFFF_FFFFUL);
        UpdateMode();
    }

    /// <summary>INT n / INT3 / INTO: delivered with the return address after the instruction.</summary>
    private void SoftwareInterrupt(int vector, bool trapException = false)
    {
        if (_protected && (_flagsRest & RFlags.VM) != 0 && ((_flagsRest & RFlags.IOPL) >> 12) < 3 && !trapException)
            throw GP(0, "INT n in virtual-8086 mode with IOPL < 3");
        _deliveringVector = -1;
        Deliver(vector, false, 0, _rip, software: true);
    }

    // ---------------------------------------------------------- SYSCALL / SYSRET

    private void ExecSyscall()
    {
        if ((Context.EferValue & Mmu.Efer.SCE) == 0) throw Fault(Vectors.UD, "SYSCALL with EFER.SCE=0");
        if (!Context.LongModeActive)
            throw Fault(Vectors.UD, "SYSCALL outside IA-32e mode (legacy-mode SYSCALL is an AMD feature)");
        if (_bitness != 64) throw Fault(Vectors.UD, "SYSCALL in compatibility mode");
        ushort sel = (ushort)((Msr.Star >> 32) & 0xFFFC);
        R[1] = _rip;
        R[11] = Rflags & ~RFlags.RF;
        LoadFlags(Rflags & ~Msr.Fmask & ~RFlags.RF);
        Seg[(int)SegmentIndex.CS] = new SegmentRegister { Selector = sel, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xA09B };
        Seg[(int)SegmentIndex.SS] = new SegmentRegister { Selector = (ushort)(sel + 8), Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xC093 };
        Context.Cpl = 0;
        UpdateMode();
        _rip = Msr.Lstar;
    }

    private void ExecSysret(ref DecodedInstruction d)
    {
        if ((Context.EferValue & Mmu.Efer.SCE) == 0) throw Fault(Vectors.UD, "SYSRET with EFER.SCE=0");
        if (!Context.LongModeActive || _bitness != 64) throw Fault(Vectors.UD, "SYSRET outside 64-bit mode");
        RequireCpl0("SYSRET");
        bool to64 = d.I.Code == Code.Sysretq;
        ushort baseSel = (ushort)(Msr.Star >> 48);
        if (to64 && !IsCanonical(R[1])) throw GP(0, $"SYSRET to non-canonical RCX 0x{R[1]:x}");
        ushort csSel = (ushort)((to64 ? baseSel + 16 : baseSel) | 3);
        Seg[(int)SegmentIndex.CS] = new SegmentRegister
        {
            Selector = csSel, Base = 0, Limit = 0xFFFF_FFFF, Attributes = (ushort)(to64 ? 0xA0FB : 0xC0FB),
        };
        Seg[(int)SegmentIndex.SS] = new SegmentRegister { Selector = (ushort)((baseSel + 8) | 3), Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xC0F3 };
        Context.Cpl = 3;
        LoadFlags((R[11] & 0x3C_7FD7) | RFlags.Fixed1);
        _rip = to64 ? R[1] : (uint)R[1];
        UpdateMode();
    }
}
