using System.Runtime.CompilerServices;
using Iced.Intel;
using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

public sealed partial class X86Cpu
{
    private Privilege DataPrivilege => Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;

    // ------------------------------------------------------------------ linear accesses

    /// <summary>Reads through the MMU; faults become guest exceptions.</summary>
    internal ulong ReadLinear(ulong lin, int size, Privilege priv, AccessKind kind = AccessKind.Read, bool stack = false)
    {
        if (_bitness != 64) lin &= 0xFFFF_FFFF;
        if (kind == AccessKind.Read && Trace is null && _mmu.TryReadFast(lin, size, priv, out ulong fast)) return fast;
        var r = _mmu.Read(lin, size, priv, out ulong v, kind);
        if (!r.Ok) v = AccessFailed(r, lin, size, kind, stack);
        if (Trace is not null) TraceAccess("read ", lin, size, v, kind, priv);
        return v;
    }

    /// <summary>Writes through the MMU; faults become guest exceptions.</summary>
    internal void WriteLinear(ulong lin, int size, ulong value, Privilege priv, bool stack = false)
    {
        if (_bitness != 64) lin &= 0xFFFF_FFFF;
        if (Trace is null && _mmu.TryWriteFast(lin, size, value, priv)) return;
        var r = _mmu.Write(lin, size, value, priv);
        if (!r.Ok) AccessFailed(r, lin, size, AccessKind.Write, stack);
        if (Trace is not null) TraceAccess("write", lin, size, value, AccessKind.Write, priv);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong AccessFailed(AccessResult r, ulong lin, int size, AccessKind kind, bool stack)
    {
        if (r.Fault.IsFault) RaiseMmuFault(r.Fault, lin, kind, stack);
        // The bus answered with an error (a device refused the size, or a bus-error policy): reads see all ones, as a
        // PCI master abort gives; the event is reported once per address.
        ReportOnce($"bus:{lin:x}:{kind}", $"bus {r.BusStatus} on a {size}-byte {kind.ToString().ToLowerInvariant()} of linear 0x{lin:x} at {Where()}; reads return all ones");
        return Mask(size);
    }

    private void TraceAccess(string what, ulong lin, int size, ulong value, AccessKind kind, Privilege priv)
    {
        // The access has just succeeded, so the same translation is a TLB hit now (trace runs count these lookups).
        string pa = _mmu.Translate(lin, kind, priv, out var t).IsFault ? "?" : $"0x{t.PhysicalAddress:x}";
        Trace!.WriteLine($"    {what} {size} bytes va=0x{lin:x} pa={pa} value=0x{value & Mask(size):x}");
    }

    // ------------------------------------------------------------------ segmented accesses

    /// <summary>Linear address of <paramref name="seg"/>:<paramref name="offset"/> for an access, with the limit and type checks of protected and real mode.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong Linear(int seg, ulong offset, int size, bool write)
    {
        if (_bitness == 64) return seg >= (int)SegmentIndex.FS ? Seg[seg].Base + offset : offset;
        return LinearChecked(seg, offset, size, write);
    }

    private ulong LinearChecked(int seg, ulong offset, int size, bool write)
    {
        ref var s = ref Seg[seg];
        bool ss = seg == (int)SegmentIndex.SS;
        if (_protected)
        {
            if (!s.Present) throw Fault(ss ? Vectors.SS : Vectors.GP, 0u, $"access through {(SegmentIndex)seg} which holds a null or not-present segment");
            bool code = s.IsCode;
            if (write && (code || (s.Attributes & 2) == 0)) throw Fault(ss ? Vectors.SS : Vectors.GP, 0u, $"write through read-only segment {(SegmentIndex)seg}");
            if (!write && code && (s.Attributes & 2) == 0) throw GP(0, $"read through execute-only segment {(SegmentIndex)seg}");
            if (!code && (s.Attributes & 4) != 0)
            {
                ulong upper = s.Big ? 0xFFFF_FFFFUL : 0xFFFF;
                if (offset <= s.Limit || offset + (ulong)size - 1 > upper) throw Fault(ss ? Vectors.SS : Vectors.GP, 0u, $"offset 0x{offset:x} outside expand-down segment {(SegmentIndex)seg}");
                return (s.Base + offset) & 0xFFFF_FFFF;
            }
        }
        if (offset + (ulong)size - 1 > s.Limit)
            throw Fault(ss ? Vectors.SS : Vectors.GP, 0u, $"offset 0x{offset:x} + {size} beyond the limit 0x{s.Limit:x} of {(SegmentIndex)seg}");
        return (s.Base + offset) & 0xFFFF_FFFF;
    }

    internal ulong ReadSeg(int seg, ulong offset, int size)
        => ReadLinear(Linear(seg, offset, size, false), size, DataPrivilege, AccessKind.Read, seg == (int)SegmentIndex.SS);

    internal void WriteSeg(int seg, ulong offset, int size, ulong value)
        => WriteLinear(Linear(seg, offset, size, true), size, value, DataPrivilege, seg == (int)SegmentIndex.SS);

    // ------------------------------------------------------------------ registers by Iced name

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ReadReg(Register r)
    {
        int x = (int)r;
        if (x >= (int)Register.RAX && x <= (int)Register.R15) return R[x - (int)Register.RAX];
        if (x >= (int)Register.EAX && x <= (int)Register.R15D) return (uint)R[x - (int)Register.EAX];
        if (x >= (int)Register.AX && x <= (int)Register.R15W) return (ushort)R[x - (int)Register.AX];
        if (x >= (int)Register.AL && x <= (int)Register.R15L)
        {
            if (x >= (int)Register.AH && x <= (int)Register.BH) return (byte)(R[x - (int)Register.AH] >> 8);
            int idx = x <= (int)Register.BL ? x - (int)Register.AL : x - (int)Register.AL - 4;
            return (byte)R[idx];
        }
        if (x >= (int)Register.ES && x <= (int)Register.GS) return Seg[x - (int)Register.ES].Selector;
        if (r == Register.RIP || r == Register.EIP) return _rip;
        return 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void WriteReg(Register r, ulong v)
    {
        int x = (int)r;
        if (x >= (int)Register.RAX && x <= (int)Register.R15) { R[x - (int)Register.RAX] = v; return; }
        if (x >= (int)Register.EAX && x <= (int)Register.R15D) { R[x - (int)Register.EAX] = (uint)v; return; }
        if (x >= (int)Register.AX && x <= (int)Register.R15W)
        {
            ref ulong q = ref R[x - (int)Register.AX];
            q = (q & ~0xFFFFUL) | (ushort)v;
            return;
        }
        if (x >= (int)Register.AL && x <= (int)Register.R15L)
        {
            if (x >= (int)Register.AH && x <= (int)Register.BH)
            {
                ref ulong h = ref R[x - (int)Register.AH];
                h = (h & ~0xFF00UL) | ((v & 0xFF) << 8);
                return;
            }
            int idx = x <= (int)Register.BL ? x - (int)Register.AL : x - (int)Register.AL - 4;
            ref ulong l = ref R[idx];
            l = (l & ~0xFFUL) | (byte)v;
        }
    }

    internal static int RegSize(Register r)
    {
        int x = (int)r;
        if (x >= (int)Register.RAX && x <= (int)Register.R15) return 8;
        if (x >= (int)Register.EAX && x <= (int)Register.R15D) return 4;
        if (x >= (int)Register.AX && x <= (int)Register.R15W) return 2;
        if (x >= (int)Register.AL && x <= (int)Register.R15L) return 1;
        if (x >= (int)Register.ES && x <= (int)Register.GS) return 2;
        return 8;
    }

    // ------------------------------------------------------------------ operands

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong EffectiveAddress(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        ulong ea = i.MemoryDisplacement64;
        var b = i.MemoryBase;
        if (b != Register.None && b != Register.RIP && b != Register.EIP) ea += ReadReg(b);
        var x = i.MemoryIndex;
        if (x != Register.None) ea += ReadReg(x) * (ulong)i.MemoryIndexScale;
        return d.AddrSize switch { 8 => ea, 4 => ea & 0xFFFF_FFFF, _ => ea & 0xFFFF };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int SegOf(in Instruction i) => (int)i.MemorySegment - (int)Register.ES;

    /// <summary>The size in bytes of operand 0 (register or memory).</summary>
    internal static int OpSize(in Instruction i, int n = 0)
    {
        var k = i.GetOpKind(n);
        if (k == OpKind.Register) return RegSize(i.GetOpRegister(n));
        return i.MemorySize.GetSize();
    }

    internal ulong ReadOp(ref DecodedInstruction d, int n, int size)
    {
        ref var i = ref d.I;
        switch (i.GetOpKind(n))
        {
            case OpKind.Register:
                return ReadReg(i.GetOpRegister(n));
            case OpKind.Memory:
                return ReadSeg(SegOf(in i), EffectiveAddress(ref d), size);
            default:
                return i.GetImmediate(n) & Mask(size);
        }
    }

    internal void WriteOp(ref DecodedInstruction d, int n, int size, ulong value)
    {
        ref var i = ref d.I;
        if (i.GetOpKind(n) == OpKind.Register) WriteReg(i.GetOpRegister(n), value);
        else WriteSeg(SegOf(in i), EffectiveAddress(ref d), size, value);
    }

    // ------------------------------------------------------------------ stack

    /// <summary>Stack operand size for PUSH/POP of general registers and immediates.</summary>
    internal int StackOpSize(in Instruction i)
    {
        int s = i.StackPointerIncrement;
        return s < 0 ? -s : s == 0 ? (_bitness == 64 ? 8 : _bitness / 8) : s;
    }

    internal void PushSized(ulong value, int size)
    {
        ulong rsp = (R[4] - (ulong)size) & _stackMask;
        WriteSeg((int)SegmentIndex.SS, rsp, size, value);
        R[4] = (R[4] & ~_stackMask) | rsp;
    }

    internal ulong PopSized(int size)
    {
        ulong rsp = R[4] & _stackMask;
        ulong v = ReadSeg((int)SegmentIndex.SS, rsp, size);
        R[4] = (R[4] & ~_stackMask) | ((rsp + (ulong)size) & _stackMask);
        return v;
    }

    /// <summary>Reads the stack at RSP + <paramref name="offset"/> without popping.</summary>
    internal ulong PeekStack(ulong offset, int size)
        => ReadSeg((int)SegmentIndex.SS, (R[4] + offset) & _stackMask, size);

    internal void Push16(ushort value) => PushSized(value, 2);

    // ------------------------------------------------------------------ descriptors and segment loads

    /// <summary>Reads the 8-byte descriptor a selector names (GDT or LDT), checking the table limit.</summary>
    internal ulong ReadDescriptor(ushort selector, out ulong address)
    {
        bool ldt = (selector & 4) != 0;
        ulong tableBase = ldt ? _ldtr.Base : _gdtr.Base;
        ulong limit = ldt ? _ldtr.Limit : _gdtr.Limit;
        ulong index = (ulong)(selector & 0xFFF8);
        if (index + 7 > limit) throw GP((uint)(selector & 0xFFFC), $"selector 0x{selector:x} beyond the {(ldt ? "LDT" : "GDT")} limit 0x{limit:x}");
        address = tableBase + index;
        return ReadLinear(address, 8, Privilege.ImplicitSupervisor);
    }

    /// <summary>Sets the accessed bit of a descriptor in memory, as the processor does on a segment load.</summary>
    private void MarkAccessed(ulong address, ulong descriptor)
    {
        if ((descriptor & (1UL << 40)) == 0)
            WriteLinear(address + 5, 1, ((descriptor >> 40) & 0xFF) | 1, Privilege.ImplicitSupervisor);
    }

    internal void LoadSegmentReal(SegmentIndex s, ushort selector)
    {
        ref var r = ref Seg[(int)s];
        r.Selector = selector;
        r.Base = (ulong)selector << 4;
        if (!_protected || (_flagsRest & RFlags.VM) != 0)
        {
            r.Limit = 0xFFFF;
            r.Attributes = (ushort)(s == SegmentIndex.CS ? 0x9B : 0x93);
        }
    }

    /// <summary>MOV/POP/LDS... to a data or stack segment register, with the protected-mode checks.</summary>
    internal void LoadDataSegment(SegmentIndex s, ushort selector)
    {
        if (!_protected || (_flagsRest & RFlags.VM) != 0)
        {
            LoadSegmentReal(s, selector);
            if (s == SegmentIndex.SS) UpdateMode();
            return;
        }
        int cpl = Context.Cpl;
        int rpl = selector & 3;
        if ((selector & 0xFFFC) == 0)
        {
            if (s == SegmentIndex.SS && !(Is64 && cpl != 3 && rpl == cpl))
                throw GP(0, "null selector loaded into SS");
            Seg[(int)s] = new SegmentRegister { Selector = selector, Base = 0, Limit = 0, Attributes = 0 };
            if (s == SegmentIndex.SS) UpdateMode();
            return;
        }
        ulong desc = ReadDescriptor(selector, out ulong addr);
        var seg = SegmentRegister.FromDescriptor(selector, desc);
        uint err = (uint)(selector & 0xFFFC);
        bool sBit = (seg.Attributes & 0x10) != 0;
        if (s == SegmentIndex.SS)
        {
            if (rpl != cpl || seg.Dpl != cpl || !sBit || seg.IsCode || (seg.Attributes & 2) == 0)
                throw GP(err, $"selector 0x{selector:x} is not a writable data segment at CPL {cpl} for SS");
            if (!seg.Present) throw Fault(Vectors.SS, err, $"stack segment 0x{selector:x} not present");
        }
        else
        {
            if (!sBit || (seg.IsCode && (seg.Attributes & 2) == 0))
                throw GP(err, $"selector 0x{selector:x} is not a data or readable code segment");
            bool conformingCode = seg.IsCode && (seg.Attributes & 4) != 0;
            if (!conformingCode && (seg.Dpl < cpl || seg.Dpl < rpl))
                throw GP(err, $"selector 0x{selector:x}: DPL {seg.Dpl} below CPL {cpl} or RPL {rpl}");
            if (!seg.Present) throw Fault(Vectors.NP, err, $"segment 0x{selector:x} not present");
        }
        MarkAccessed(addr, desc);
        seg.Attributes |= 1;
        Seg[(int)s] = seg;
        if (s == SegmentIndex.SS) UpdateMode();
    }

    /// <summary>Loads CS for a far JMP/CALL/RET/IRET to <paramref name="selector"/> at privilege <paramref name="newCpl"/> (protected/long mode).</summary>
    internal SegmentRegister CheckCodeSegment(ushort selector, int newCpl, bool returning)
    {
        uint err = (uint)(selector & 0xFFFC);
        if ((selector & 0xFFFC) == 0) throw GP(0, "far transfer to the null selector");
        ulong desc = ReadDescriptor(selector, out ulong addr);
        var cs = SegmentRegister.FromDescriptor(selector, desc);
        if ((cs.Attributes & 0x10) == 0)
        {
            int type = cs.Attributes & 0xF;
            if (type is 4 or 12 or 5 or 9 or 11)
                throw new MachineStopException(StopKind.MachineCheck, $"far transfer through a {(type is 4 or 12 ? "call gate" : type == 5 ? "task gate" : "TSS")} (selector 0x{selector:x}) is not modelled ({Where()})");
            throw GP(err, $"selector 0x{selector:x} is not a code segment");
        }
        if (!cs.IsCode) throw GP(err, $"selector 0x{selector:x} is not a code segment");
        bool conforming = (cs.Attributes & 4) != 0;
        int rpl = selector & 3;
        if (returning)
        {
            if (rpl < Context.Cpl) throw GP(err, "return to a more privileged level");
            if (conforming ? cs.Dpl > rpl : cs.Dpl != rpl) throw GP(err, $"code segment 0x{selector:x} DPL {cs.Dpl} does not match RPL {rpl}");
        }
        else if (conforming ? cs.Dpl > Context.Cpl : (rpl > Context.Cpl || cs.Dpl != Context.Cpl))
            throw GP(err, $"far transfer to code segment 0x{selector:x} with DPL {cs.Dpl} at CPL {Context.Cpl}");
        if (!cs.Present) throw Fault(Vectors.NP, err, $"code segment 0x{selector:x} not present");
        if (Context.LongModeActive && cs.Long && cs.Big) throw GP(err, "code segment with both L and D set");
        MarkAccessed(addr, desc);
        cs.Attributes |= 1;
        cs.Selector = (ushort)((selector & 0xFFFC) | newCpl);
        return cs;
    }

    /// <summary>Makes <paramref name="cs"/> the code segment at privilege <paramref name="cpl"/> and updates the mode.</summary>
    internal void SetCs(SegmentRegister cs, int cpl)
    {
        Seg[(int)SegmentIndex.CS] = cs;
        Context.Cpl = cpl;
        UpdateMode();
    }

    internal bool IsCanonical(ulong va)
    {
        int bits = Context.FiveLevel ? 57 : 48;
        return (ulong)((long)(va << (64 - bits)) >> (64 - bits)) == va;
    }

    /// <summary>Reads <paramref name="destination"/> from linear memory as a debugger would (through the MMU, supervisor, no side effects on guest state).</summary>
    public bool TryReadLinear(ulong linear, Span<byte> destination)
        => _mmu.ReadBytes(linear, destination, Privilege.ImplicitSupervisor).Ok;

    /// <summary>The physical bus.</summary>
    internal PhysicalBus Bus => _bus;
    internal BusAttributes Attributes => _attrs;
}
