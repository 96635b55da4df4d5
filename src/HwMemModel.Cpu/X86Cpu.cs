using System.Runtime.CompilerServices;
using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>Why <see cref="X86Cpu.Run"/> returned.</summary>
public enum StopKind
{
    /// <summary>A device (isa-debug-exit, the i8042 reset line, ...) asked the machine to stop.</summary>
    StopRequested,
    /// <summary>The instruction budget ran out.</summary>
    InstructionLimit,
    /// <summary>A fault occurred while delivering a double fault: the processor shuts down (QEMU -no-reboot exits 0).</summary>
    TripleFault,
    /// <summary>HLT with nothing that could ever wake the processor (interrupts disabled or no interrupt source).</summary>
    Halted,
    /// <summary>The model met a state it does not model (a paging mode, a task switch); the report says which.</summary>
    MachineCheck,
    /// <summary>A debugger breakpoint or single step ended the run.</summary>
    Breakpoint,
}

/// <summary>The outcome of a run.</summary>
/// <param name="Kind">Why the run ended.</param>
/// <param name="Instructions">Instructions retired during this run.</param>
/// <param name="Report">A human-readable report: where the processor was and why it stopped.</param>
public sealed record RunResult(StopKind Kind, long Instructions, string Report);

/// <summary>A source of external (maskable) interrupts, such as a PIC or a local APIC.</summary>
public interface IInterruptSource
{
    /// <summary>Whether an interrupt is pending for this CPU.</summary>
    bool HasPending(int cpu);
    /// <summary>Acknowledges the highest-priority pending interrupt and returns its vector.</summary>
    int Acknowledge(int cpu);
    /// <summary>The guest time (ns) of the next interrupt that can arrive without the CPU doing anything, or -1 if none.</summary>
    long NextEventTime(int cpu);
}

/// <summary>
/// An x86-64 processor: real mode from the reset vector, 16/32-bit protected mode and IA-32e (64-bit and
/// compatibility) mode, privilege levels 0 and 3, exceptions and interrupts through the IDT. Instructions are decoded
/// with Iced and cached per physical page (a write to the page drops them); every fetch and data access goes through
/// the <see cref="Mmu.Mmu"/> of <see cref="Context"/>, so the TLBs, NX, SMEP, SMAP and protection keys apply.
/// </summary>
public sealed partial class X86Cpu
{
    internal readonly ulong[] R = new ulong[16];
    private ulong _rip;
    internal SegmentRegister[] Seg = new SegmentRegister[6];
    private DescriptorTableRegister _gdtr, _idtr;
    private SegmentRegister _ldtr, _tr;
    private ulong _cr2;
    private ulong _cr8;
    private readonly Mmu.Mmu _mmu;
    private readonly PhysicalBus _bus;
    private readonly BusAttributes _attrs;
    private int _bitness = 16;          // code size: 16, 32 or 64
    private bool _protected;            // CR0.PE
    private bool _halted;
    private long _retired;
    private long _clockSynced;
    private bool _interruptShadow;      // STI / MOV SS: no interrupt before the next instruction ends

    /// <summary>Creates a processor over <paramref name="context"/> (paging state and MMU) and the port bus.</summary>
    /// <param name="context">The paging context whose MMU translates every access.</param>
    /// <param name="ports">The I/O port bus for IN/OUT/INS/OUTS.</param>
    /// <param name="clock">The machine's guest clock, advanced per retired instruction; a private one when null.</param>
    /// <param name="stop">Where devices ask to stop the machine; a private one when null.</param>
    /// <param name="cpuid">The CPUID model; one for the context's features with default identification when null.</param>
    public X86Cpu(CpuContext context, PortBus ports, GuestClock? clock = null, StopRequest? stop = null, CpuidModel? cpuid = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(ports);
        Context = context;
        Ports = ports;
        Clock = clock ?? new GuestClock();
        Stop = stop ?? new StopRequest();
        _mmu = context.Mmu;
        _bus = context.Bus;
        _attrs = BusAttributes.Cpu(context.Id);
        Cpuid = cpuid ?? new CpuidModel(context.Features);
        _bus.WatchedPageWritten += OnCodePageWritten;
        var previous = _bus.BeforeDeviceAccess;
        _bus.BeforeDeviceAccess = a =>
        {
            previous?.Invoke(a);
            if (a.Kind == RequesterKind.Cpu && a.RequesterId == context.Id) SyncClock();
        };
        Reset();
    }

    /// <summary>The paging context: control registers, CPL and the MMU.</summary>
    public CpuContext Context { get; }
    /// <summary>The I/O port bus.</summary>
    public PortBus Ports { get; }
    /// <summary>The guest clock.</summary>
    public GuestClock Clock { get; }
    /// <summary>Stop requests from devices and the processor.</summary>
    public StopRequest Stop { get; }
    /// <summary>The CPUID model this processor reports.</summary>
    public CpuidModel Cpuid { get; }
    /// <summary>External interrupt source (PIC or APIC), or null when none is wired.</summary>
    public IInterruptSource? Interrupts { get; set; }
    /// <summary>Counters: instructions, exceptions, decode-cache activity.</summary>
    public CpuCounters Counters { get; } = new();
    /// <summary>When set, every instruction, its memory accesses and every fault are written here.</summary>
    public TextWriter? Trace { get; set; }
    /// <summary>Messages about things the model does not implement, each reported once.</summary>
    public IReadOnlyList<string> Reports => _reports;
    /// <summary>Raised with each message added to <see cref="Reports"/>.</summary>
    public event Action<string>? Reported;

    /// <summary>Instructions retired since reset.</summary>
    public long InstructionsRetired => _retired;
    /// <summary>The instruction pointer.</summary>
    public ulong Rip { get => _rip; set => _rip = value; }
    /// <summary>Whether the processor is in the HLT state.</summary>
    public bool Halted { get => _halted; set => _halted = value; }
    /// <summary>The current code size in bits (16, 32 or 64), from CR0.PE, EFER.LMA and CS.</summary>
    public int Bitness => _bitness;
    /// <summary>CR2: the linear address of the last page fault.</summary>
    public ulong Cr2 { get => _cr2; set => _cr2 = value; }
    /// <summary>CR8: the task-priority register (4 bits).</summary>
    public ulong Cr8 { get => _cr8; set => _cr8 = value & 0xF; }
    /// <summary>GDTR.</summary>
    public DescriptorTableRegister Gdtr { get => _gdtr; set => _gdtr = value; }
    /// <summary>IDTR.</summary>
    public DescriptorTableRegister Idtr { get => _idtr; set => _idtr = value; }
    /// <summary>The task register (selector and cached TSS descriptor).</summary>
    public SegmentRegister Tr { get => _tr; set => _tr = value; }
    /// <summary>The LDT register.</summary>
    public SegmentRegister Ldtr { get => _ldtr; set => _ldtr = value; }

    /// <summary>Reads general-purpose register <paramref name="index"/> (0 = RAX ... 15 = R15).</summary>
    public ulong GetRegister(int index) => R[CheckIndex(index)];
    /// <summary>Writes general-purpose register <paramref name="index"/> (0 = RAX ... 15 = R15).</summary>
    public void SetRegister(int index, ulong value) => R[CheckIndex(index)] = value;

    private static int CheckIndex(int index)
        => (uint)index < 16 ? index : throw new ArgumentOutOfRangeException(nameof(index), index, "General-purpose registers are numbered 0 (RAX) to 15 (R15).");

    /// <summary>Reads a segment register with its descriptor cache.</summary>
    public SegmentRegister GetSegment(SegmentIndex s) => Seg[(int)s];
    /// <summary>Writes a segment register with its descriptor cache (host set-up; no checks).</summary>
    public void SetSegment(SegmentIndex s, SegmentRegister value)
    {
        Seg[(int)s] = value;
        UpdateMode();
    }

    /// <summary>The power-on/reset state: real mode at F000:FFF0 with CS base 0xFFFF0000, EDX holding the CPU signature.</summary>
    public void Reset()
    {
        Array.Clear(R);
        _rip = 0xFFF0;
        _ccOp = CcOp.Eager;
        _ccEager = 0;
        _flagsRest = RFlags.Fixed1;
        for (int i = 0; i < 6; i++) Seg[i] = new SegmentRegister { Selector = 0, Base = 0, Limit = 0xFFFF, Attributes = 0x93 };
        Seg[(int)SegmentIndex.CS] = new SegmentRegister { Selector = 0xF000, Base = 0xFFFF_0000, Limit = 0xFFFF, Attributes = 0x9B };
        _gdtr = new DescriptorTableRegister { Base = 0, Limit = 0xFFFF };
        _idtr = new DescriptorTableRegister { Base = 0, Limit = 0xFFFF };
        _ldtr = new SegmentRegister { Limit = 0xFFFF, Attributes = 0x82 };
        _tr = new SegmentRegister { Limit = 0xFFFF, Attributes = 0x8B };
        R[2] = Cpuid.Signature; // EDX = family/model/stepping after reset
        _cr2 = 0;
        _cr8 = 0;
        // Paging off first, so that a context in long mode can be reset (EFER.LME may not change while CR0.PG=1).
        Context.SetCr0(0x6000_0010);
        Context.SetCr4(0);
        Context.SetEfer(0);
        Context.SetCr3(0);
        Context.Cpl = 0;
        Context.AlignmentCheck = false;
        Context.Pkru = 0;
        Msr.Reset();
        _halted = false;
        _nmiPending = _nmiBlocked = false;
        _interruptShadow = false;
        _deliveringVector = -1;
        ResetX87();
        ResetSse();
        UpdateMode();
        FlushDecodeCache();
    }

    /// <summary>
    /// Puts the processor in 32-bit protected mode with flat 4 GiB code and data segments and paging off, as a
    /// multiboot loader leaves it (code selector <paramref name="codeSelector"/>, data selector <paramref name="dataSelector"/>).
    /// </summary>
    public void EnterFlatProtectedMode(uint eip, ushort codeSelector = 0x10, ushort dataSelector = 0x18)
    {
        Context.SetCr0((Context.Cr0Value | Cr0.PE) & ~Cr0.PG);
        var code = new SegmentRegister { Selector = codeSelector, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xC09B };
        var data = new SegmentRegister { Selector = dataSelector, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xC093 };
        for (int i = 0; i < 6; i++) Seg[i] = data;
        Seg[(int)SegmentIndex.CS] = code;
        Context.Cpl = 0;
        _rip = eip;
        LoadFlags(RFlags.Fixed1);
        UpdateMode();
    }

    /// <summary>Recomputes the code size after CR0, EFER or CS changed.</summary>
    internal void UpdateMode()
    {
        _protected = (Context.Cr0Value & Cr0.PE) != 0;
        ref var cs = ref Seg[(int)SegmentIndex.CS];
        if (!_protected) _bitness = 16;
        else if (Context.LongModeActive && cs.Long) _bitness = 64;
        else _bitness = cs.Big ? 32 : 16;
        _stackMask = _bitness == 64 ? ulong.MaxValue : Seg[(int)SegmentIndex.SS].Big ? 0xFFFF_FFFF : 0xFFFF;
    }

    private ulong _stackMask = 0xFFFF;

    /// <summary>True in 64-bit mode (IA-32e mode with CS.L=1).</summary>
    internal bool Is64 => _bitness == 64;

    /// <summary>The current privilege level.</summary>
    public int Cpl => Context.Cpl;

    private readonly List<string> _reports = [];
    private readonly HashSet<string> _reportKeys = [];

    internal void ReportOnce(string key, string message)
    {
        if (!_reportKeys.Add(key)) return;
        if (_reports.Count < 1000) _reports.Add(message);
        Reported?.Invoke(message);
    }

    /// <summary>Brings the guest clock up to the instructions retired so far.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void SyncClock()
    {
        if (ExternalClock)
        {
            _clockSynced = _retired;
            return;
        }
        long n = _retired - _clockSynced;
        if (n != 0)
        {
            Clock.Advance(n * GuestClock.NanosecondsPerInstruction);
            _clockSynced = _retired;
        }
    }
}

/// <summary>Processor counters.</summary>
public sealed class CpuCounters
{
    /// <summary>Exceptions and interrupts delivered, by vector.</summary>
    public long[] Vectors { get; } = new long[256];
    /// <summary>Blocks of instructions decoded.</summary>
    public long BlocksDecoded { get; internal set; }
    /// <summary>Instructions decoded.</summary>
    public long InstructionsDecoded { get; internal set; }
    /// <summary>Decoded blocks dropped because their page was written (self-modifying code).</summary>
    public long BlocksInvalidated { get; internal set; }
    /// <summary>Decode-cache lookups that found a block.</summary>
    public long BlockHits { get; internal set; }
    /// <summary>External interrupts accepted.</summary>
    public long ExternalInterrupts { get; internal set; }
    /// <summary>Instructions that raised #UD because the model does not implement them.</summary>
    public long Unimplemented { get; internal set; }
}
