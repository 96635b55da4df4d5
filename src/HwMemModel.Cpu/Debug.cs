using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>One TLB entry as a debugger shows it (a copy; reading it changes nothing).</summary>
/// <param name="Level">"ITLB", "DTLB" or "STLB".</param>
/// <param name="Array">The name of the array that holds the entry.</param>
/// <param name="LinearAddress">The linear address of the (possibly fractured) page the entry maps.</param>
/// <param name="PhysicalAddress">The physical base of that page.</param>
/// <param name="Size">The size of the entry.</param>
/// <param name="TranslationSize">The size of the translation it came from (larger when fractured).</param>
/// <param name="Pcid">The PCID the entry belongs to.</param>
/// <param name="Global">Whether the entry is global.</param>
/// <param name="Writable">Combined R/W of all levels.</param>
/// <param name="User">Combined U/S of all levels.</param>
/// <param name="NoExecute">Combined XD of all levels.</param>
/// <param name="Dirty">Whether the cached leaf had D set.</param>
/// <param name="MemoryType">The memory type of the translation.</param>
public readonly record struct DebugTlbEntry(string Level, string Array, ulong LinearAddress, ulong PhysicalAddress, PageSize Size,
    PageSize TranslationSize, ushort Pcid, bool Global, bool Writable, bool User, bool NoExecute, bool Dirty, MemoryType MemoryType);

/// <summary>
/// Debugger hooks: running to a breakpoint, memory access by linear address without side effects on the TLBs or the
/// Accessed/Dirty bits, and register writes that keep the processor's derived state (mode, decode cache) consistent.
/// Nothing here runs unless a debugger calls it: <see cref="Run"/> is unchanged.
/// </summary>
public sealed partial class X86Cpu
{
    /// <summary>
    /// Runs as <see cref="Run"/> does, but stops before executing an instruction whose RIP is one of
    /// <paramref name="breakpoints"/> (<see cref="StopKind.Breakpoint"/>; the instruction has not executed). The
    /// breakpoints are checked once per decoded block (the block runs up to the first breakpoint inside it), so the
    /// guest runs at block speed between them; guest behaviour is the same as with <see cref="Run"/>. With
    /// <paramref name="ignoreBreakpointAtStart"/> a breakpoint at the starting RIP does not stop the first
    /// instruction (resuming from a breakpoint, as RFLAGS.RF does). With no breakpoints this is <see cref="Run"/>.
    /// </summary>
    /// <param name="breakpoints">Instruction-pointer values (RIP as the debugger sees it) to stop at.</param>
    /// <param name="maxInstructions">The instruction budget, as for <see cref="Run"/>.</param>
    /// <param name="ignoreBreakpointAtStart">Execute the instruction at the starting RIP even when it is a breakpoint.</param>
    public RunResult RunToBreakpoint(IEnumerable<ulong> breakpoints, long maxInstructions = long.MaxValue, bool ignoreBreakpointAtStart = true)
    {
        ArgumentNullException.ThrowIfNull(breakpoints);
        if (maxInstructions < 0) throw new ArgumentOutOfRangeException(nameof(maxInstructions), maxInstructions, "The instruction budget must be 0 or more.");
        ulong[] bps = breakpoints.Distinct().Order().ToArray();
        if (bps.Length == 0) return Run(maxInstructions);
        _quietStops = false;
        return RunToSorted(bps, maxInstructions, ignoreBreakpointAtStart);
    }

    /// <summary>
    /// Runs until the processor arrives at one of <paramref name="sortedEntries"/> (ascending, distinct) — the
    /// kernel entry points of a host-side kernel (<see cref="StopKind.Breakpoint"/>, the instruction at the entry not
    /// executed) — or <paramref name="maxInstructions"/> retire. As <see cref="RunToBreakpoint"/> without its per-call
    /// set-up and without formatting reports for these stops (<see cref="RunResult.Report"/> is empty for them), so a
    /// system call or page fault costs little more than its instructions.
    /// </summary>
    public RunResult RunToEntry(ulong[] sortedEntries, long maxInstructions)
    {
        ArgumentNullException.ThrowIfNull(sortedEntries);
        if (sortedEntries.Length == 0) throw new ArgumentException("Give at least one entry address.", nameof(sortedEntries));
        if (maxInstructions < 0) throw new ArgumentOutOfRangeException(nameof(maxInstructions), maxInstructions, "The instruction budget must be 0 or more.");
        _quietStops = true;
        try { return RunToSorted(sortedEntries, maxInstructions, ignoreBreakpointAtStart: false); }
        finally { _quietStops = false; }
    }

    private bool _quietStops;

    private RunResult RunToSorted(ulong[] bps, long maxInstructions, bool ignoreBreakpointAtStart)
    {
        long start = _retired;
        long limit = maxInstructions > long.MaxValue - start ? long.MaxValue : start + maxInstructions;
        ulong startRip = _rip;
        _fetchEpoch = -1;
        while (true)
        {
            // The same structure and handlers as Run: a guest fault is delivered to the guest, a model defect is a report.
            try
            {
                var r = RunInnerToBreakpoint(start, limit, bps, ignoreBreakpointAtStart, startRip);
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
                SyncClock();
                string insn = DisassembleAt(_bitness == 64 ? _curIp : Seg[(int)SegmentIndex.CS].Base + _curIp, _curIp);
                return Finish(StopKind.MachineCheck, start,
                    $"model error at {Where()} executing '{insn}': {e.GetType().Name}: {e.Message} (please report this)");
            }
        }
    }

    /// <summary>The dispatch loop of <see cref="RunToBreakpoint"/>: RunInner with a breakpoint check at each block start.</summary>
    private RunResult? RunInnerToBreakpoint(long start, long limit, ulong[] bps, bool ignoreAtStart, ulong startRip)
    {
        while (true)
        {
            if (Stop.IsRequested) return Finish(StopKind.StopRequested, start, Stop.Reason);
            if (_retired >= limit)
                return Finish(StopKind.InstructionLimit, start, _quietStops ? QuantumEnded : $"instruction limit reached after {_retired - start} instructions; next instruction at {WhereNext()}");
            if (!_halted && Array.BinarySearch(bps, _rip) >= 0 && !(ignoreAtStart && _retired == start && _rip == startRip))
                return BreakpointHit(start);
            _curIp = _rip;
            if (_halted || _nmiPending || (Interrupts is not null && (_flagsRest & RFlags.IF) != 0))
            {
                ulong before = _rip;
                bool wasHalted = _halted;
                var r = CheckInterrupts(start);
                if (r is not null) return r;
                if (_halted) continue;
                // An event was delivered: the handler's first instruction is a new instruction boundary.
                if ((_rip != before || wasHalted) && Array.BinarySearch(bps, _rip) >= 0) return BreakpointHit(start);
            }
            _interruptShadow = false;
            var block = GetBlock();
            if ((_flagsRest & RFlags.TF) != 0) { ExecuteOneTraced(block); continue; }
            long n = InstructionsBeforeBreakpoint(block, bps);
            ExecuteBlock(block, limit - _retired > n ? _retired + n : limit);
        }
    }

    private RunResult BreakpointHit(long start)
    {
        _curIp = _rip;
        return Finish(StopKind.Breakpoint, start, _quietStops ? "" : $"breakpoint at {Where()}");
    }

    /// <summary>How many instructions of <paramref name="b"/> run before one whose RIP is a breakpoint (the first never counts).</summary>
    private static int InstructionsBeforeBreakpoint(DecodedBlock b, ulong[] bps)
    {
        var insns = b.Insns;
        if (insns.Length <= 1) return insns.Length;
        ulong first = insns[0].I.IP, last = insns[^1].I.IP;
        int i = Array.BinarySearch(bps, first + 1);
        if (i < 0) i = ~i;
        if (i >= bps.Length || bps[i] > last || bps[i] < first) return insns.Length;
        for (int k = 1; k < insns.Length; k++)
            if (Array.BinarySearch(bps, insns[k].I.IP) >= 0) return k;
        return insns.Length;
    }

    // ------------------------------------------------------------------ memory as a debugger sees it

    /// <summary>
    /// Translates <paramref name="linear"/> as a debugger does: a walk of the page tables in RAM with the current CR3,
    /// paging mode and privilege (<see cref="Mmu.Mmu.Explain(ulong, AccessKind, Privilege)"/>), which fills no TLB entry
    /// and sets no Accessed or Dirty bit. Returns the fault, or <see cref="Fault.None"/> with the physical address.
    /// </summary>
    public Fault DebugTranslate(ulong linear, AccessKind kind, out ulong physicalAddress)
    {
        var e = _mmu.Explain(linear, kind, Context.CurrentPrivilege);
        physicalAddress = e.Translation?.PhysicalAddress ?? 0;
        return e.Fault;
    }

    /// <summary>
    /// Reads guest memory at linear address <paramref name="linear"/> as a debugger: each page is translated by
    /// <see cref="DebugTranslate"/> (reads with the current privilege) and read from the bus with
    /// <see cref="RequesterKind.Debugger"/> attributes. Returns how many bytes were read: fewer than requested when a
    /// page faults or the bus refuses the read.
    /// </summary>
    public int DebugReadLinear(ulong linear, Span<byte> destination)
    {
        var attrs = new BusAttributes(RequesterKind.Debugger, Context.Id);
        int done = 0;
        while (done < destination.Length)
        {
            ulong va = LinearWrap(linear + (ulong)done);
            int chunk = (int)Math.Min((ulong)(destination.Length - done), 0x1000 - (va & 0xFFF));
            if (DebugTranslate(va, AccessKind.Read, out ulong pa).IsFault) break;
            if (pa > ulong.MaxValue - (ulong)chunk) break;
            if (_bus.ReadBytes(pa, destination.Slice(done, chunk), attrs) != BusStatus.Ok) break;
            done += chunk;
        }
        return done;
    }

    /// <summary>
    /// Writes guest memory at linear address <paramref name="linear"/> as a debugger: every page is translated for a
    /// write at the current privilege first (no side effects), so a fault leaves memory unchanged and returns false; then
    /// the bytes go to the bus with <see cref="RequesterKind.Debugger"/> attributes (a write to decoded code drops the
    /// decoded blocks, as any write does). False also when the bus refuses a part (ROM, unmapped).
    /// </summary>
    public bool DebugWriteLinear(ulong linear, ReadOnlySpan<byte> source)
    {
        var pages = new List<(ulong Pa, int Offset, int Length)>();
        for (int done = 0; done < source.Length;)
        {
            ulong va = LinearWrap(linear + (ulong)done);
            int chunk = (int)Math.Min((ulong)(source.Length - done), 0x1000 - (va & 0xFFF));
            if (DebugTranslate(va, AccessKind.Write, out ulong pa).IsFault || pa > ulong.MaxValue - (ulong)chunk) return false;
            pages.Add((pa, done, chunk));
            done += chunk;
        }
        var attrs = new BusAttributes(RequesterKind.Debugger, Context.Id);
        bool ok = true;
        foreach (var (pa, offset, length) in pages)
            ok &= _bus.WriteBytes(pa, source.Slice(offset, length), attrs) == BusStatus.Ok;
        return ok;
    }

    /// <summary>Linear addresses outside 64-bit mode are 32 bits wide.</summary>
    private ulong LinearWrap(ulong linear) => Context.LongModeActive ? linear : linear & 0xFFFF_FFFF;

    // ------------------------------------------------------------------ registers a debugger writes

    /// <summary>
    /// Loads segment register <paramref name="segment"/> with <paramref name="selector"/> as a debugger: in real mode
    /// the base becomes selector × 16; in protected mode the descriptor is read from the GDT or LDT (debugger reads) and
    /// cached, a null selector leaves an unusable segment (not for CS or SS). Returns false when the descriptor cannot be
    /// read or is not a usable segment; the register is unchanged then.
    /// </summary>
    public bool DebugLoadSegment(SegmentIndex segment, ushort selector)
    {
        if (!_protected)
        {
            var cur = Seg[(int)segment];
            cur.Selector = selector;
            cur.Base = (ulong)selector << 4;
            SetSegment(segment, cur);
            return true;
        }
        if ((selector & 0xFFFC) == 0)
        {
            if (segment is SegmentIndex.CS or SegmentIndex.SS) return false;
            SetSegment(segment, new SegmentRegister { Selector = selector, Base = 0, Limit = 0, Attributes = 0 });
            return true;
        }
        (ulong tableBase, ulong tableLimit) = (selector & 4) != 0 ? (_ldtr.Base, _ldtr.Limit) : (_gdtr.Base, _gdtr.Limit);
        ulong index = (ulong)(selector & 0xFFF8);
        if (index + 7 > tableLimit) return false;
        Span<byte> d = stackalloc byte[8];
        if (DebugReadLinear(tableBase + index, d) != 8) return false;
        ulong desc = BitConverter.ToUInt64(d);
        var reg = new SegmentRegister
        {
            Selector = selector,
            Base = SegmentRegister.BaseOf(desc),
            Limit = SegmentRegister.LimitOf(desc),
            Attributes = SegmentRegister.AttributesOf(desc),
        };
        if (!reg.Present || (reg.Attributes & 0x10) == 0) return false;
        if (segment == SegmentIndex.CS && !reg.IsCode) return false;
        SetSegment(segment, reg);
        return true;
    }

    /// <summary>
    /// Writes control register CR0, CR2, CR3, CR4 or CR8 (<paramref name="number"/> 0, 2, 3, 4, 8) as a debugger: the
    /// value is checked as MOV to CRn checks it (a value the processor would refuse with #GP returns false and changes
    /// nothing); the mode and the decode cache follow the new value.
    /// </summary>
    public bool DebugWriteControlRegister(int number, ulong value)
    {
        Fault f;
        switch (number)
        {
            case 0:
                if (value == Context.Cr0Value) return true;
                if ((value & Cr0.PG) != 0 && (Context.EferValue & Efer.LME) == 0) return false; // 32-bit and PAE paging are not modelled
                f = Context.WriteCr0(value | Cr0.ET);
                break;
            case 2:
                _cr2 = value;
                return true;
            case 3:
                if (value == Context.Cr3Value) return true;
                f = Context.WriteCr3(value);
                break;
            case 4:
                if (value == Context.Cr4Value) return true;
                f = Context.WriteCr4(value);
                break;
            case 8:
                if ((value >> 4) != 0) return false;
                _cr8 = value;
                return true;
            default:
                return false;
        }
        if (f.IsFault) return false;
        UpdateMode();
        FlushDecodeCache();
        return true;
    }

    /// <summary>Writes IA32_EFER as a debugger (checked as WRMSR checks it; false and no change for a refused value).</summary>
    public bool DebugWriteEfer(ulong value)
    {
        if (value == Context.EferValue) return true;
        if (Context.WriteEfer(value).IsFault) return false;
        UpdateMode();
        FlushDecodeCache();
        return true;
    }

    // ------------------------------------------------------------------ TLB contents

    /// <summary>Every valid entry of the L1 instruction, L1 data and unified TLBs of this processor's MMU (copies).</summary>
    public IReadOnlyList<DebugTlbEntry> DebugTlbContents()
    {
        var list = new List<DebugTlbEntry>();
        foreach (var level in new[] { _mmu.InstructionTlb, _mmu.DataTlb, _mmu.UnifiedTlb })
            foreach (var array in level.Arrays)
                foreach (var e in array.Snapshot())
                {
                    ulong la = e.Vpn << e.Size.Shift();
                    int bits = Context.FiveLevel ? 57 : 48;
                    la = (ulong)((long)(la << (64 - bits)) >> (64 - bits)); // canonical form
                    list.Add(new DebugTlbEntry(level.Name, array.Config.Name, la, e.PaBase & ~(e.Size.Bytes() - 1), e.Size, e.OrigSize, e.Pcid,
                        e.Global, (e.Rights & TlbEntry.RightWrite) != 0, (e.Rights & TlbEntry.RightUser) != 0,
                        (e.Rights & TlbEntry.RightNoExecute) != 0, e.Dirty, e.MemType));
                }
        return list;
    }
}
