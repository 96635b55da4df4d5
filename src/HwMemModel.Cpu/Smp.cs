namespace HwMemModel.Cpu;

/// <content>
/// Multiprocessor hooks: INIT and start-up IPIs (SDM Vol. 3A §9.4, §10.6.1) and a clock owned by the machine's
/// scheduler. After INIT an application processor waits for a start-up IPI; a SIPI with vector VV starts it in real
/// mode at CS:IP = VV00:0000 (linear 0xVV000), as on a PC. With <see cref="ExternalClock"/> the processor does not
/// advance guest time itself (the scheduler advances it once per round for all processors) and a halted processor
/// returns at once instead of skipping time, so that the others can run.
/// </content>
public sealed partial class X86Cpu
{
    /// <summary>True after INIT until a start-up IPI arrives: the processor executes nothing.</summary>
    public bool WaitingForStartup { get; private set; }

    /// <summary>Guest time is advanced by the machine's scheduler, not by this processor's retired instructions.</summary>
    public bool ExternalClock { get; set; }

    private bool _nmiPending, _nmiBlocked;

    /// <summary>An NMI arrives (from the local APIC: an NMI IPI or an LVT entry with NMI delivery). It is taken before the next instruction unless an NMI handler is running (blocked until IRET, SDM §6.7.1).</summary>
    public void RaiseNmi()
    {
        if (!WaitingForStartup) _nmiPending = true;
    }

    /// <summary>Whether an NMI is waiting to be taken.</summary>
    public bool NmiPending => _nmiPending;

    // Called with the interrupt checks: delivers a pending, unblocked NMI through vector 2. Returns true when delivered.
    private bool TryDeliverNmi()
    {
        if (!_nmiPending || _nmiBlocked) return false;
        _nmiPending = false;
        _nmiBlocked = true;
        _halted = false;
        Counters.ExternalInterrupts++;
        _deliveringVector = -1;
        Deliver(Vectors.NMI, false, 0, _rip, software: false, external: true);
        return true;
    }

    /// <summary>
    /// INIT: the processor resets (as an application processor: IA32_APIC_BASE.BSP clear) and waits for a SIPI. The x87,
    /// XMM and MXCSR state survive INIT (SDM Vol. 3A §9.1, Table 9-1).
    /// </summary>
    public void Init()
    {
        var fpu = CaptureFpuState();
        Reset();
        RestoreFpuState(fpu);
        Msr.Reset(bsp: false);
        _nmiPending = _nmiBlocked = false;
        WaitingForStartup = true;
        _halted = false;
    }

    /// <summary>A start-up IPI with <paramref name="vector"/>: a waiting processor starts at <paramref name="vector"/>00:0000 in real mode; otherwise ignored (SDM §10.6.1).</summary>
    public void StartupIpi(byte vector)
    {
        if (!WaitingForStartup) return;
        WaitingForStartup = false;
        Seg[(int)SegmentIndex.CS] = new SegmentRegister { Selector = (ushort)(vector << 8), Base = (ulong)vector << 12, Limit = 0xFFFF, Attributes = 0x9B };
        _rip = 0;
        _halted = false;
        UpdateMode();
    }
}
