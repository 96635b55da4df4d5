using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>x86 exception vectors.</summary>
public static class Vectors
{
    /// <summary>Divide error.</summary>
    public const int DE = 0;
    /// <summary>Debug.</summary>
    public const int DB = 1;
    /// <summary>NMI.</summary>
    public const int NMI = 2;
    /// <summary>Breakpoint (INT3).</summary>
    public const int BP = 3;
    /// <summary>Overflow (INTO).</summary>
    public const int OF = 4;
    /// <summary>BOUND range exceeded.</summary>
    public const int BR = 5;
    /// <summary>Invalid opcode.</summary>
    public const int UD = 6;
    /// <summary>Device not available.</summary>
    public const int NM = 7;
    /// <summary>Double fault.</summary>
    public const int DF = 8;
    /// <summary>Invalid TSS.</summary>
    public const int TS = 10;
    /// <summary>Segment not present.</summary>
    public const int NP = 11;
    /// <summary>Stack-segment fault.</summary>
    public const int SS = 12;
    /// <summary>General protection.</summary>
    public const int GP = 13;
    /// <summary>Page fault.</summary>
    public const int PF = 14;
    /// <summary>x87 floating-point error.</summary>
    public const int MF = 16;
    /// <summary>Alignment check.</summary>
    public const int AC = 17;
    /// <summary>Machine check.</summary>
    public const int MC = 18;

    /// <summary>The short name of an exception vector ("#PF"), or "INT n".</summary>
    public static string Name(int vector) => vector switch
    {
        0 => "#DE", 1 => "#DB", 2 => "NMI", 3 => "#BP", 4 => "#OF", 5 => "#BR", 6 => "#UD", 7 => "#NM", 8 => "#DF",
        10 => "#TS", 11 => "#NP", 12 => "#SS", 13 => "#GP", 14 => "#PF", 16 => "#MF", 17 => "#AC", 18 => "#MC",
        19 => "#XM", 20 => "#VE", 21 => "#CP",
        _ => $"INT 0x{vector:x2}",
    };

    /// <summary>Whether the exception pushes an error code (in protected and long mode).</summary>
    public static bool HasErrorCode(int vector) => vector is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21;
}

/// <summary>A guest exception in flight (internal control flow; never escapes <see cref="X86Cpu.Run"/>).</summary>
internal sealed class GuestFaultException : Exception
{
    public int Vector;
    public uint ErrorCode;
    public bool HasError;
    public ulong Cr2;
    public string? Why;
    public Fault MmuFault;
}

/// <summary>A condition the model cannot continue from (stops the machine with a report).</summary>
internal sealed class MachineStopException(StopKind kind, string report) : Exception(report)
{
    public StopKind Kind { get; } = kind;
}

public sealed partial class X86Cpu
{
    private readonly GuestFaultException _fault = new();
    private int _deliveringVector = -1;

    /// <summary>Raises exception <paramref name="vector"/> in the guest (no error code).</summary>
    internal GuestFaultException Fault(int vector, string? why = null)
    {
        _fault.Vector = vector;
        _fault.HasError = false;
        _fault.ErrorCode = 0;
        _fault.Why = why;
        _fault.MmuFault = default;
        return _fault;
    }

    /// <summary>Raises exception <paramref name="vector"/> with an error code.</summary>
    internal GuestFaultException Fault(int vector, uint errorCode, string? why = null)
    {
        _fault.Vector = vector;
        _fault.HasError = true;
        _fault.ErrorCode = errorCode;
        _fault.Why = why;
        _fault.MmuFault = default;
        return _fault;
    }

    internal GuestFaultException GP(uint error = 0, string? why = null) => Fault(Vectors.GP, error, why);

    /// <summary>Turns an MMU fault into the guest exception it is (#PF, #GP/#SS for non-canonical) or a machine stop.</summary>
    internal void RaiseMmuFault(Fault f, ulong linear, AccessKind kind, bool stackSegment = false)
    {
        switch (f.Kind)
        {
            case FaultKind.PageFault:
            {
                var e = Fault(Vectors.PF, (uint)f.ErrorCode, FaultRules.Describe(f.Rule));
                e.Cr2 = f.Address;
                e.MmuFault = f;
                throw e;
            }
            case FaultKind.GeneralProtection:
            {
                var e = Fault(stackSegment ? Vectors.SS : Vectors.GP, 0u, FaultRules.Describe(f.Rule) + $" (0x{linear:x})");
                e.MmuFault = f;
                throw e;
            }
            default:
                throw new MachineStopException(StopKind.MachineCheck,
                    $"machine check at {Where()}: {kind} access to linear 0x{linear:x}: {FaultRules.Describe(f.Rule)}");
        }
    }

    private static bool IsContributory(int v) => v is 0 or 10 or 11 or 12 or 13;

    /// <summary>
    /// Delivers an exception, software interrupt or external interrupt. <paramref name="nextIp"/> is the RIP pushed
    /// (the faulting instruction for faults, the next one for traps and INT n). Handles #DF and triple-fault escalation.
    /// </summary>
    internal void Deliver(int vector, bool hasError, uint error, ulong nextIp, bool software, bool external = false)
    {
        int outer = _deliveringVector;
        if (outer >= 0 && !software && !external)
        {
            if (outer == Vectors.DF)
                throw new MachineStopException(StopKind.TripleFault,
                    $"triple fault: {Vectors.Name(vector)} while delivering #DF at {Where()} (QEMU with -no-reboot exits with status 0)");
            bool df = (IsContributory(outer) && IsContributory(vector)) || (outer == Vectors.PF && (vector == Vectors.PF || IsContributory(vector)));
            if (df)
            {
                vector = Vectors.DF;
                hasError = true;
                error = 0;
            }
        }

        Counters.Vectors[vector]++;
        int saved = _deliveringVector;
        _deliveringVector = vector;
        try
        {
            if (Trace is not null) Trace.WriteLine($"    deliver {Vectors.Name(vector)}{(hasError ? $" error=0x{error:x}" : "")} return to 0x{nextIp:x}");
            if (!_protected) DeliverReal(vector, nextIp);
            else if (Context.LongModeActive) DeliverLong(vector, hasError, error, nextIp, software);
            else DeliverProtected(vector, hasError, error, nextIp, software);
        }
        catch (GuestFaultException inner)
        {
            // A fault while delivering: deliver the second exception with the escalation rules.
            var (v, he, ec, cr2) = (inner.Vector, inner.HasError, inner.ErrorCode, inner.Cr2);
            if (v == Vectors.PF) _cr2 = cr2;
            _deliveringVector = vector;
            // A fault while delivering INT n/INT3/INTO is a fault of that instruction: its frame points at it.
            Deliver(v, he, ec, software ? _curIp : nextIp, false);
        }
        finally
        {
            _deliveringVector = saved;
        }
        _halted = false;
    }

    private void DeliverReal(int vector, ulong nextIp)
    {
        ulong entryOffset = (ulong)vector * 4;
        if (entryOffset + 3 > _idtr.Limit) throw GP((uint)(vector * 8 + 2), "real-mode IVT entry beyond the IDT limit");
        ulong ivt = ReadLinear(_idtr.Base + entryOffset, 4, Privilege.ImplicitSupervisor);
        Push16((ushort)Rflags);
        Push16(Seg[(int)SegmentIndex.CS].Selector);
        Push16((ushort)nextIp);
        _flagsRest &= ~(RFlags.IF | RFlags.TF | RFlags.AC | RFlags.RF);
        LoadSegmentReal(SegmentIndex.CS, (ushort)(ivt >> 16));
        _rip = ivt & 0xFFFF;
        UpdateMode();
    }

    private (ulong lo, ulong hi) ReadGate(int vector, int size, bool software)
    {
        ulong off = (ulong)vector * (ulong)size;
        _ = software;
        if (off + (ulong)size - 1 > _idtr.Limit) throw GP((uint)(vector * 8 + 2), $"IDT entry {vector} beyond the IDT limit 0x{_idtr.Limit:x}");
        ulong lo = ReadLinear(_idtr.Base + off, 8, Privilege.ImplicitSupervisor);
        ulong hi = size == 16 ? ReadLinear(_idtr.Base + off + 8, 8, Privilege.ImplicitSupervisor) : 0;
        return (lo, hi);
    }

    private void DeliverLong(int vector, bool hasError, uint error, ulong nextIp, bool software)
    {
        uint idtErr = (uint)(vector * 8 + 2);
        var (lo, hi) = ReadGate(vector, 16, software);
        int type = (int)((lo >> 40) & 0xF);
        int dpl = (int)((lo >> 45) & 3);
        if (type != 0xE && type != 0xF) throw GP(idtErr, $"IDT entry {vector} is not a 64-bit interrupt or trap gate (type {type})");
        if (software && dpl < Context.Cpl) throw GP(idtErr, $"INT {vector}: gate DPL {dpl} < CPL {Context.Cpl}");
        if ((lo & (1UL << 47)) == 0) throw Fault(Vectors.NP, idtErr, $"IDT entry {vector} not present");
        ushort sel = (ushort)(lo >> 16);
        ulong target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000) | (hi << 32);
        int ist = (int)((lo >> 32) & 7);
        if ((sel & 0xFFFC) == 0) throw GP(0, "interrupt gate selects the null code segment");
        ulong desc = ReadDescriptor(sel, out _);
        var cs = SegmentRegister.FromDescriptor(sel, desc);
        if (!cs.IsCode || !cs.Long || cs.Big) throw GP((uint)(sel & 0xFFFC), "interrupt gate target is not a 64-bit code segment");
        if (!cs.Present) throw Fault(Vectors.NP, (uint)(sel & 0xFFFC), "interrupt gate target code segment not present");
        bool conforming = (cs.Attributes & 4) != 0;
        int newCpl = conforming ? Context.Cpl : cs.Dpl;
        if (newCpl > Context.Cpl) throw GP((uint)(sel & 0xFFFC), "interrupt gate to a less privileged code segment");

        ulong oldSs = Seg[(int)SegmentIndex.SS].Selector, oldRsp = R[4], oldFlags = Rflags;
        ulong oldCs = Seg[(int)SegmentIndex.CS].Selector;
        ulong rsp = oldRsp;
        if (ist != 0) rsp = ReadTss64(0x24 + (ist - 1) * 8);
        else if (newCpl < Context.Cpl) rsp = ReadTss64(4 + newCpl * 8);
        if (!IsCanonical(rsp)) throw Fault(Vectors.SS, 0u, "new stack pointer is not canonical");
        rsp &= ~0xFUL;
        // Push with the new privilege (stack accesses in ring 0 are supervisor accesses).
        int oldCpl = Context.Cpl;
        Context.Cpl = newCpl;
        try
        {
            rsp = PushAt(rsp, oldSs);
            rsp = PushAt(rsp, oldRsp);
            rsp = PushAt(rsp, oldFlags);
            rsp = PushAt(rsp, oldCs);
            rsp = PushAt(rsp, nextIp);
            if (hasError) rsp = PushAt(rsp, error);
        }
        catch
        {
            Context.Cpl = oldCpl;
            throw;
        }
        if (newCpl != oldCpl)
            Seg[(int)SegmentIndex.SS] = new SegmentRegister { Selector = (ushort)newCpl, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0 };
        R[4] = rsp;
        cs.Selector = (ushort)((sel & 0xFFFC) | newCpl);
        Seg[(int)SegmentIndex.CS] = cs;
        _rip = target;
        ulong clear = RFlags.TF | RFlags.NT | RFlags.RF | RFlags.VM | (type == 0xE ? RFlags.IF : 0);
        _flagsRest &= ~clear;
        UpdateMode();
    }

    private ulong PushAt(ulong rsp, ulong value)
    {
        rsp -= 8;
        WriteLinear(rsp, 8, value, Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor, stack: true);
        return rsp;
    }

    private ulong ReadTss64(int offset)
    {
        if ((uint)offset + 7 > _tr.Limit) throw Fault(Vectors.TS, (uint)(_tr.Selector & 0xFFFC), $"TSS offset 0x{offset:x} beyond its limit 0x{_tr.Limit:x}");
        return ReadLinear(_tr.Base + (ulong)offset, 8, Privilege.ImplicitSupervisor);
    }

    private void DeliverProtected(int vector, bool hasError, uint error, ulong nextIp, bool software)
    {
        uint idtErr = (uint)(vector * 8 + 2);
        var (lo, _) = ReadGate(vector, 8, software);
        int type = (int)((lo >> 40) & 0x1F);
        int dpl = (int)((lo >> 45) & 3);
        bool gate32;
        switch (type & 0xF)
        {
            case 0x6: case 0x7: gate32 = false; break;
            case 0xE: case 0xF: gate32 = true; break;
            case 0x5:
                throw new MachineStopException(StopKind.MachineCheck, $"IDT entry {vector} is a task gate; hardware task switching is not modelled ({Where()})");
            default:
                throw GP(idtErr, $"IDT entry {vector} has type {type & 0xF}, not an interrupt or trap gate");
        }
        if ((type & 0x10) != 0) throw GP(idtErr, $"IDT entry {vector} has S=1");
        if (software && dpl < Context.Cpl) throw GP(idtErr, $"INT {vector}: gate DPL {dpl} < CPL {Context.Cpl}");
        if ((lo & (1UL << 47)) == 0) throw Fault(Vectors.NP, idtErr, $"IDT entry {vector} not present");
        ushort sel = (ushort)(lo >> 16);
        ulong target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF_0000);
        if (!gate32) target &= 0xFFFF;
        if ((sel & 0xFFFC) == 0) throw GP(0, "interrupt gate selects the null code segment");
        ulong desc = ReadDescriptor(sel, out _);
        var cs = SegmentRegister.FromDescriptor(sel, desc);
        if (!cs.IsCode) throw GP((uint)(sel & 0xFFFC), "interrupt gate target is not a code segment");
        if (!cs.Present) throw Fault(Vectors.NP, (uint)(sel & 0xFFFC), "interrupt gate target not present");
        bool conforming = (cs.Attributes & 4) != 0;
        int newCpl = conforming ? Context.Cpl : cs.Dpl;
        if (newCpl > Context.Cpl) throw GP((uint)(sel & 0xFFFC), "interrupt gate to a less privileged code segment");

        int width = gate32 ? 4 : 2;
        ulong oldFlags = Rflags, oldCs = Seg[(int)SegmentIndex.CS].Selector;
        ulong oldSs = Seg[(int)SegmentIndex.SS].Selector, oldEsp = R[4];
        if (newCpl < Context.Cpl)
        {
            // 32-bit TSS: ESP0 at 4, SS0 at 8 (ring n at 4 + 8n).
            ulong espNew = ReadLinear(_tr.Base + 4 + (ulong)newCpl * 8, 4, Privilege.ImplicitSupervisor);
            ushort ssNew = (ushort)ReadLinear(_tr.Base + 8 + (ulong)newCpl * 8, 2, Privilege.ImplicitSupervisor);
            ulong ssDesc = ReadDescriptor(ssNew, out _);
            var ss = SegmentRegister.FromDescriptor(ssNew, ssDesc);
            if ((ssNew & 3) != newCpl || ss.Dpl != newCpl || ss.IsCode || (ss.Attributes & 0x12) != 0x12)
                throw Fault(Vectors.TS, (uint)(ssNew & 0xFFFC), "TSS stack segment for the new privilege level is not a writable data segment of that level");
            int oldCpl = Context.Cpl;
            Context.Cpl = newCpl;
            Seg[(int)SegmentIndex.SS] = ss;
            UpdateMode();
            R[4] = espNew;
            try
            {
                PushSized(oldSs, width);
                PushSized(oldEsp, width);
            }
            catch
            {
                Context.Cpl = oldCpl;
                throw;
            }
        }
        PushSized(oldFlags, width);
        PushSized(oldCs, width);
        PushSized(nextIp, width);
        if (hasError) PushSized(error, width);
        cs.Selector = (ushort)((sel & 0xFFFC) | newCpl);
        Seg[(int)SegmentIndex.CS] = cs;
        Context.Cpl = newCpl;
        _rip = target;
        ulong clear = RFlags.TF | RFlags.NT | RFlags.RF | RFlags.VM | ((type & 1) == 0 ? RFlags.IF : 0);
        _flagsRest &= ~clear;
        UpdateMode();
    }

    /// <summary>A "CS:RIP (linear)" description of where the processor is.</summary>
    public string Where()
    {
        var cs = Seg[(int)SegmentIndex.CS];
        ulong ip = _curIp;
        ulong lin = cs.Base + ip;
        return _bitness == 64 ? $"RIP 0x{ip:x}" : $"{cs.Selector:x4}:{ip:x} (linear 0x{lin & 0xFFFF_FFFF:x})";
    }
}
