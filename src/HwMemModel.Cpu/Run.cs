using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Iced.Intel;

namespace HwMemModel.Cpu;

public sealed partial class X86Cpu
{
    private ulong _curIp;
    private DecodedBlock? _curBlock;
    private Formatter? _formatter;

    /// <summary>
    /// Runs until a device requests a stop, <paramref name="maxInstructions"/> instructions retire, the processor
    /// shuts down (triple fault), halts with nothing to wake it, or meets a state it does not model. Guest faults are
    /// delivered to the guest; nothing the guest does makes this method throw.
    /// </summary>
    public RunResult Run(long maxInstructions = long.MaxValue)
    {
        if (maxInstructions < 0) throw new ArgumentOutOfRangeException(nameof(maxInstructions), maxInstructions, "The instruction budget must be 0 or more.");
        long start = _retired;
        long limit = maxInstructions > long.MaxValue - start ? long.MaxValue : start + maxInstructions;
        _fetchEpoch = -1; // the host may have used the MMU since the last run
        if (WaitingForStartup) return new RunResult(StopKind.Halted, 0, WaitingForSipi);
        while (true)
        {
            try
            {
                var r = RunInner(start, limit);
                if (r is not null) return r;
            }
            catch (GuestFaultException e)
            {
                var r = OnGuestFault(e, start);
                if (r is not null) return r;
            }
            catch (MachineStopException m)
            {
                SyncClock();
                return Finish(m.Kind, start, m.Message);
            }
            catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException
                or OverflowException or NullReferenceException or ArithmeticException or NotSupportedException)
            {
                // A defect of the model, not of the guest: stop with a report instead of taking the host down.
                SyncClock();
                string insn = DisassembleAt(_bitness == 64 ? _curIp : Seg[(int)SegmentIndex.CS].Base + _curIp, _curIp);
                return Finish(StopKind.MachineCheck, start,
                    $"model error at {Where()} executing '{insn}': {e.GetType().Name}: {e.Message} (please report this)");
            }
        }
    }

    /// <summary>The dispatch loop, kept free of exception handling so that the JIT optimises it fully.</summary>
    private RunResult? RunInner(long start, long limit)
    {
        while (true)
        {
            if (Stop.IsRequested) return Finish(StopKind.StopRequested, start, Stop.Reason);
            if (_retired >= limit)
                return ExternalClock
                    ? Finish(StopKind.InstructionLimit, start, QuantumEnded) // a scheduler's quantum: no report to format
                    : Finish(StopKind.InstructionLimit, start, $"instruction limit reached after {_retired - start} instructions; next instruction at {WhereNext()}");
            _curIp = _rip;
            if (_halted || _nmiPending || (Interrupts is not null && (_flagsRest & RFlags.IF) != 0))
            {
                var r = CheckInterrupts(start);
                if (r is not null) return r;
                if (_halted) continue;
            }
            _interruptShadow = false;
            var block = GetBlock();
            if ((_flagsRest & RFlags.TF) != 0) { ExecuteOneTraced(block); continue; }
            ExecuteBlock(block, limit);
        }
    }

    /// <summary>Executes one instruction (or delivers one pending event) and returns.</summary>
    public RunResult Step() => Run(1);

    private RunResult? OnGuestFault(GuestFaultException e, long start)
    {
        _rip = _curIp;
        if (e.Vector == Vectors.PF) _cr2 = e.Cr2;
        if (Trace is not null)
        {
            Trace.WriteLine($"    fault {Vectors.Name(e.Vector)}{(e.HasError ? $" error=0x{e.ErrorCode:x}" : "")}{(e.Vector == Vectors.PF ? $" cr2=0x{e.Cr2:x}" : "")}: {e.Why}");
            if (e.MmuFault.IsFault && e.Vector == Vectors.PF)
            {
                var kind = (e.ErrorCode & 0x10) != 0 ? Mmu.AccessKind.Execute : (e.ErrorCode & 2) != 0 ? Mmu.AccessKind.Write : Mmu.AccessKind.Read;
                var priv = (e.ErrorCode & 4) != 0 ? Mmu.Privilege.User : Mmu.Privilege.Supervisor;
                foreach (var line in _mmu.Explain(e.Cr2, kind, priv).ToString().Split('\n'))
                    if (line.Length > 0) Trace.WriteLine("      " + line.TrimEnd('\r'));
            }
        }
        try
        {
            _deliveringVector = -1;
            Deliver(e.Vector, e.HasError && _protected, e.ErrorCode, _curIp, software: false);
            return null;
        }
        catch (MachineStopException m)
        {
            SyncClock();
            return Finish(m.Kind, start, m.Message);
        }
        catch (GuestFaultException inner)
        {
            // Deliver escalates nested faults itself; reaching here means a fault escaped the escalation: shut down.
            SyncClock();
            return Finish(StopKind.TripleFault, start, $"triple fault: {Vectors.Name(inner.Vector)} while delivering {Vectors.Name(e.Vector)} at {Where()}");
        }
    }

    private const string WaitingForSipi = "waiting for a start-up IPI";
    private const string QuantumEnded = "the scheduler's quantum ended";
    private const string HaltedWaiting = "halted, waiting for an interrupt";

    private RunResult? CheckInterrupts(long start)
    {
        if (_nmiPending && !_nmiBlocked)
        {
            try
            {
                if (TryDeliverNmi()) return null;
            }
            catch (GuestFaultException e)
            {
                return OnGuestFault(e, start);
            }
        }
        var src = Interrupts;
        bool ifSet = (_flagsRest & RFlags.IF) != 0;
        if (src is not null && ifSet && !_interruptShadow)
        {
            SyncClock();
            if (src.HasPending(Context.Id))
            {
                int vector = src.Acknowledge(Context.Id);
                if (vector < 0) return null; // withdrawn before acknowledge
                Counters.ExternalInterrupts++;
                _halted = false;
                try
                {
                    _deliveringVector = -1;
                    Deliver(vector & 0xFF, false, 0, _rip, software: false, external: true);
                }
                catch (GuestFaultException e)
                {
                    return OnGuestFault(e, start);
                }
                return null;
            }
        }
        if (!_halted) return null;
        if (src is null || !ifSet)
        {
            SyncClock();
            return Finish(StopKind.Halted, start, ifSet
                ? $"HLT at {Where()} with no interrupt source that could wake the processor"
                : $"HLT at {Where()} with interrupts disabled (EFLAGS.IF=0): the processor can never wake");
        }
        if (ExternalClock) return Finish(StopKind.Halted, start, HaltedWaiting);
        long next = src.NextEventTime(Context.Id);
        if (next < 0)
        {
            SyncClock();
            return Finish(StopKind.Halted, start, $"HLT at {Where()}: no interrupt is pending or scheduled");
        }
        // Skip guest time to the next event (deterministic): the halted processor retires nothing meanwhile.
        SyncClock();
        if (next > Clock.Nanoseconds) Clock.Advance(next - Clock.Nanoseconds);
        return null;
    }

    private RunResult Finish(StopKind kind, long start, string report)
    {
        SyncClock();
        return new RunResult(kind, _retired - start, report);
    }

    private string WhereNext()
    {
        var cs = Seg[(int)SegmentIndex.CS];
        return _bitness == 64 ? $"RIP 0x{_rip:x}" : $"{cs.Selector:x4}:{_rip:x}";
    }

    private ulong IpMask => _bitness == 64 ? ulong.MaxValue : _bitness == 32 ? 0xFFFF_FFFF : 0xFFFF;

    private void ExecuteBlock(DecodedBlock b, long limit)
    {
        _curBlock = b;
        var insns = b.Insns;
        _blockBroken = false;
        int n = insns.Length;
        long room = limit - _retired;
        if (room < n) n = (int)room;
        ulong ipMask = IpMask;
        ref DecodedInstruction first = ref MemoryMarshal.GetArrayDataReference(insns);
        if (Trace is not null)
        {
            for (int k = 0; k < n; k++)
            {
                ref var d = ref Unsafe.Add(ref first, k);
                _curIp = _rip;
                _rip = d.I.NextIP & ipMask;
                TraceInstruction(ref d);
                Execute(ref d);
                _retired++;
                if (_blockBroken) break;
            }
            return;
        }
        for (int k = 0; k < n; k++)
        {
            ref var d = ref Unsafe.Add(ref first, k);
            _curIp = _rip;
            _rip = d.I.NextIP & ipMask;
            if (!ExecuteFast(ref d)) Execute(ref d);
            _retired++;
            if (_blockBroken) break;
        }
    }

    private void ExecuteOneTraced(DecodedBlock b)
    {
        _curBlock = b;
        ref var d = ref b.Insns[0];
        _curIp = _rip;
        _rip = d.I.NextIP & IpMask;
        if (Trace is not null) TraceInstruction(ref d);
        Execute(ref d);
        _retired++;
        // Single-step trap after the instruction (TF was set before it executed).
        Deliver(Vectors.DB, false, 0, _rip, software: false);
    }

    private void TraceInstruction(ref DecodedInstruction d)
    {
        _formatter ??= new IntelFormatter();
        var output = new StringOutput();
        _formatter.Format(in d.I, output);
        var cs = Seg[(int)SegmentIndex.CS];
        string where = _bitness == 64 ? $"{_curIp:x16}" : $"{cs.Selector:x4}:{_curIp:x8}";
        Trace!.WriteLine($"cpu{Context.Id} {_retired,10} {where}  {output.ToStringAndReset()}");
    }

    /// <summary>Disassembles the instruction at the current RIP (for reports); empty when it cannot be fetched.</summary>
    public string DisassembleAt(ulong linear, ulong ip)
    {
        var buf = new byte[15];
        int n = 15;
        while (n > 0 && !TryReadLinear(linear, buf.AsSpan(0, n))) n--;
        if (n == 0) return "(not fetchable)";
        var decoder = Decoder.Create(_bitness, new ByteArrayCodeReader(buf, 0, n), ip);
        decoder.Decode(out var insn);
        _formatter ??= new IntelFormatter();
        var output = new StringOutput();
        _formatter.Format(in insn, output);
        return output.ToStringAndReset();
    }
}
