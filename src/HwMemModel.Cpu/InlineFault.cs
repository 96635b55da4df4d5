using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>
/// Page faults of plain MOV stores and loads delivered without a .NET exception. Such a MOV changes nothing before its
/// memory access, so when the access faults the exception can be delivered right there (RIP back to the instruction,
/// CR2, the IDT gate) and the decoded block abandoned, exactly as the exception path does it. Demand paging is the
/// common case this serves: the first touch of each page of a fresh mapping.
/// </summary>
public sealed partial class X86Cpu
{
    private void StoreOrDeliver(ulong lin, int size, ulong v) => StoreOrDeliver(lin, size, v, Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor, false);

    private void StoreOrDeliver(ulong lin, int size, ulong v, Privilege priv, bool stack)
    {
        if (Trace is not null)
        {
            WriteLinear(lin, size, v, priv, stack); // traced runs keep the one reporting path
            return;
        }
        if (_bitness != 64) lin &= 0xFFFF_FFFF;
        if (_mmu.TryWriteFast(lin, size, v, priv)) return;
        var r = _mmu.Write(lin, size, v, priv);
        if (r.Ok) return;
        if (!r.Fault.IsFault || r.Fault.Kind != FaultKind.PageFault)
        {
            AccessFailed(r, lin, size, AccessKind.Write, stack); // throws, or reports a bus error
            return;
        }
        DeliverPageFaultInPlace(r.Fault);
    }

    /// <summary>
    /// A MOV load into a general register (the fast path's form): on a page fault the register is left as it was and
    /// #PF is delivered in place. Returns false when the fault was delivered.
    /// </summary>
    private bool TryLoadOrDeliver(ulong lin, int size, out ulong value)
    {
        var priv = Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;
        if (_mmu.TryReadFast(lin, size, priv, out value)) return true;
        if (Trace is not null)
        {
            value = SlowRead(lin, size, priv, false);
            return true;
        }
        var r = _mmu.Read(lin, size, priv, out value);
        if (r.Ok) return true;
        if (!r.Fault.IsFault || r.Fault.Kind != FaultKind.PageFault)
        {
            value = AccessFailed(r, lin, size, AccessKind.Read, false); // throws, or all ones after a bus error
            return true;
        }
        DeliverPageFaultInPlace(r.Fault);
        return false;
    }

    private void DeliverPageFaultInPlace(Fault fault)
    {
        _rip = _curIp;
        _cr2 = fault.Address;
        _deliveringVector = -1;
        try
        {
            Deliver(Vectors.PF, _protected, (uint)fault.ErrorCode, _curIp, software: false);
        }
        catch (GuestFaultException inner)
        {
            throw new MachineStopException(StopKind.TripleFault, $"triple fault: {Vectors.Name(inner.Vector)} while delivering {Vectors.Name(Vectors.PF)} at {Where()}");
        }
        _blockBroken = true; // the rest of the block does not run: the handler is next
        _retired--;          // the block loop counts the instruction, which did not retire
    }
}
