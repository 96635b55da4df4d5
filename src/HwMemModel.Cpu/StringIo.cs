using Iced.Intel;
using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

public sealed partial class X86Cpu
{
    private static int StringSize(Mnemonic m) => m switch
    {
        Mnemonic.Movsb or Mnemonic.Stosb or Mnemonic.Lodsb or Mnemonic.Cmpsb or Mnemonic.Scasb or Mnemonic.Insb or Mnemonic.Outsb => 1,
        Mnemonic.Movsw or Mnemonic.Stosw or Mnemonic.Lodsw or Mnemonic.Cmpsw or Mnemonic.Scasw or Mnemonic.Insw or Mnemonic.Outsw => 2,
        Mnemonic.Movsq or Mnemonic.Stosq or Mnemonic.Lodsq or Mnemonic.Cmpsq or Mnemonic.Scasq => 8,
        _ => 4,
    };

    private ulong IndexReg(int r, ulong am) => R[r] & am;

    private void SetIndexReg(int r, ulong v, int addrSize)
    {
        if (addrSize == 8) R[r] = v;
        else if (addrSize == 4) R[r] = (uint)v;
        else R[r] = (R[r] & ~0xFFFFUL) | (ushort)v;
    }

    /// <summary>MOVS/STOS/LODS/CMPS/SCAS/INS/OUTS with REP/REPE/REPNE. Each iteration updates the registers, so a fault restarts correctly.</summary>
    private void ExecString(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        var mn = i.Mnemonic;
        int size = StringSize(mn);
        int aSize = d.AddrSize;
        ulong am = Mask(aSize);
        long step = (_flagsRest & RFlags.DF) != 0 ? -size : size;
        bool rep = i.HasRepPrefix || i.HasRepePrefix || i.HasRepnePrefix;
        bool cmp = mn is Mnemonic.Cmpsb or Mnemonic.Cmpsw or Mnemonic.Cmpsd or Mnemonic.Cmpsq or Mnemonic.Scasb or Mnemonic.Scasw or Mnemonic.Scasd or Mnemonic.Scasq;
        bool repne = i.HasRepnePrefix;
        int srcSeg = (int)i.MemorySegment - (int)Register.ES;
        if (mn is Mnemonic.Stosb or Mnemonic.Stosw or Mnemonic.Stosd or Mnemonic.Stosq or Mnemonic.Scasb or Mnemonic.Scasw or Mnemonic.Scasd or Mnemonic.Scasq or Mnemonic.Insb or Mnemonic.Insw or Mnemonic.Insd)
            srcSeg = (int)SegmentIndex.DS; // unused for these
        bool io = mn is Mnemonic.Insb or Mnemonic.Insw or Mnemonic.Insd or Mnemonic.Outsb or Mnemonic.Outsw or Mnemonic.Outsd;
        if (io)
        {
            CheckIoPermission((ushort)R[2], size);
            SyncClock();
        }
        const int es = (int)SegmentIndex.ES;
        long budget = 1 << 20; // iterations per slice; a long REP yields so stop requests are seen
        while (true)
        {
            if (rep && IndexReg(1, am) == 0) return;
            ulong si = IndexReg(6, am), di = IndexReg(7, am);
            switch (mn)
            {
                case Mnemonic.Movsb: case Mnemonic.Movsw: case Mnemonic.Movsd: case Mnemonic.Movsq:
                {
                    ulong v = ReadSeg(srcSeg, si, size);
                    WriteSeg(es, di, size, v);
                    SetIndexReg(6, si + (ulong)step, aSize);
                    SetIndexReg(7, di + (ulong)step, aSize);
                    break;
                }
                case Mnemonic.Stosb: case Mnemonic.Stosw: case Mnemonic.Stosd: case Mnemonic.Stosq:
                    WriteSeg(es, di, size, R[0] & Mask(size));
                    SetIndexReg(7, di + (ulong)step, aSize);
                    break;
                case Mnemonic.Lodsb: case Mnemonic.Lodsw: case Mnemonic.Lodsd: case Mnemonic.Lodsq:
                {
                    ulong v = ReadSeg(srcSeg, si, size);
                    WriteReg(size switch { 1 => Register.AL, 2 => Register.AX, 4 => Register.EAX, _ => Register.RAX }, v);
                    SetIndexReg(6, si + (ulong)step, aSize);
                    break;
                }
                case Mnemonic.Cmpsb: case Mnemonic.Cmpsw: case Mnemonic.Cmpsd: case Mnemonic.Cmpsq:
                {
                    ulong a = ReadSeg(srcSeg, si, size), b = ReadSeg(es, di, size);
                    SetCc(CcOp.Sub, size, a - b, a, b);
                    SetIndexReg(6, si + (ulong)step, aSize);
                    SetIndexReg(7, di + (ulong)step, aSize);
                    break;
                }
                case Mnemonic.Scasb: case Mnemonic.Scasw: case Mnemonic.Scasd: case Mnemonic.Scasq:
                {
                    ulong a = R[0] & Mask(size), b = ReadSeg(es, di, size);
                    SetCc(CcOp.Sub, size, a - b, a, b);
                    SetIndexReg(7, di + (ulong)step, aSize);
                    break;
                }
                case Mnemonic.Insb: case Mnemonic.Insw: case Mnemonic.Insd:
                {
                    // The destination is checked before the port is read, so a fault does not lose input.
                    ulong lin = Linear(es, di, size, true);
                    var f = _mmu.Translate(_bitness == 64 ? lin : lin & 0xFFFF_FFFF, AccessKind.Write, DataPrivilege, out _);
                    if (f.IsFault) RaiseMmuFault(f, lin, AccessKind.Write);
                    ulong v = PortRead((ushort)R[2], size);
                    WriteSeg(es, di, size, v);
                    SetIndexReg(7, di + (ulong)step, aSize);
                    break;
                }
                default:
                {
                    ulong v = ReadSeg(srcSeg, si, size);
                    PortWrite((ushort)R[2], size, v);
                    SetIndexReg(6, si + (ulong)step, aSize);
                    break;
                }
            }
            if (!rep) return;
            SetIndexReg(1, IndexReg(1, am) - 1, aSize);
            if (cmp && (repne ? ZeroFlag() : !ZeroFlag())) return;
            if (io && Stop.IsRequested) return;
            if (--budget == 0 && IndexReg(1, am) != 0)
            {
                // Re-execute the instruction later: RIP back to it (the registers carry the progress).
                _rip = _curIp;
                return;
            }
        }
    }

    private void ExecIn(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = RegSize(i.Op0Register);
        ushort port = i.Op1Kind == OpKind.Register ? (ushort)R[2] : i.Immediate8;
        CheckIoPermission(port, size);
        SyncClock();
        WriteReg(i.Op0Register, PortRead(port, size));
    }

    private void ExecOut(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int size = RegSize(i.Op1Register);
        ushort port = i.Op0Kind == OpKind.Register ? (ushort)R[2] : i.Immediate8;
        CheckIoPermission(port, size);
        SyncClock();
        PortWrite(port, size, ReadReg(i.Op1Register));
    }

    private ulong PortRead(ushort port, int size)
    {
        Ports.Read(port, size, out uint v, _attrs);
        if (Trace is not null) Trace.WriteLine($"    in  {size} bytes port=0x{port:x} value=0x{v:x}");
        return v;
    }

    private void PortWrite(ushort port, int size, ulong v)
    {
        if (Trace is not null) Trace.WriteLine($"    out {size} bytes port=0x{port:x} value=0x{v & Mask(size):x}");
        Ports.Write(port, size, (uint)v, _attrs);
    }

    /// <summary>Protected mode with CPL &gt; IOPL: the TSS I/O permission bitmap decides (SDM Vol. 1 §19.5.2).</summary>
    private void CheckIoPermission(ushort port, int size)
    {
        if (!_protected) return;
        int iopl = (int)((_flagsRest & RFlags.IOPL) >> 12);
        if (Context.Cpl <= iopl && (_flagsRest & RFlags.VM) == 0) return;
        uint err = 0;
        if (_tr.Limit < 0x67) throw GP(err, $"I/O port 0x{port:x} at CPL {Context.Cpl} > IOPL {iopl} and no TSS I/O bitmap");
        ulong bitmapBase = ReadLinear(_tr.Base + 0x66, 2, Privilege.ImplicitSupervisor);
        ulong at = bitmapBase + (ulong)(port >> 3);
        if (at + 1 > _tr.Limit) throw GP(err, $"I/O port 0x{port:x} beyond the TSS I/O bitmap");
        ulong bits = ReadLinear(_tr.Base + at, 2, Privilege.ImplicitSupervisor);
        ulong mask = ((1UL << size) - 1) << (port & 7);
        if ((bits & mask) != 0) throw GP(err, $"I/O port 0x{port:x} denied by the TSS I/O bitmap at CPL {Context.Cpl}");
    }
}
