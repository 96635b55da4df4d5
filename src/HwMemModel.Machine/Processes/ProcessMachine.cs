using HwMemModel.Bus;
using HwMemModel.Cpu;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;
using KernelModel = HwMemModel.Kernel.Kernel;

namespace HwMemModel.Machine.Processes;

/// <summary>Options of a <see cref="ProcessMachine"/>.</summary>
public sealed record ProcessMachineOptions
{
    /// <summary>RAM in bytes (a multiple of 1 MiB, 64 MiB to 3 GiB). Default 256 MiB.</summary>
    public ulong RamSize { get; init; } = 256UL << 20;
    /// <summary>The host directory the programs see as "/" (read-only). Required to run programs.</summary>
    public string? Root { get; init; }
    /// <summary>Instructions a process runs before the scheduler may switch to another runnable one (the tick). Default 1,000,000.</summary>
    public long Quantum { get; init; } = 1_000_000;
    /// <summary>Instruction budget of a whole run; a run that exceeds it stops with a report. Default 10^10.</summary>
    public long MaxInstructions { get; init; } = 10_000_000_000;
    /// <summary>CPU features (default: <see cref="CpuFeatures.Default"/>).</summary>
    public CpuFeatures? Features { get; init; }
}

/// <summary>How a run of processes ended.</summary>
/// <param name="ExitStatus">The first process's exit status as a shell gives it: the exit code, or 128 + the signal that killed it.</param>
/// <param name="Signal">The signal that killed the first process, or 0.</param>
/// <param name="Instructions">Guest instructions retired.</param>
/// <param name="Report">Empty for a normal end; otherwise why the machine stopped (budget, a model limit).</param>
public sealed record ProcessRunResult(int ExitStatus, int Signal, long Instructions, string Report);

/// <summary>
/// A machine that runs Linux user programs: the kernel model booted on a pc memory map with its user-space support
/// (the GDT, IDT, TSS and entry text of <see cref="UserEntryLayout"/>), and one x86-64 CPU model on the kernel's CPU 0
/// context. User code runs at CPL 3 through the same MMU as everything else; SYSCALL arrives at entry_SYSCALL_64 and
/// exceptions at their IDT gates, where the kernel model takes over (system calls, page faults, signals) and the CPU
/// returns to user mode through SYSRETQ or IRETQ, as Linux does.
/// </summary>
public sealed class ProcessMachine
{
    private readonly ulong[] _entries;
    private readonly UserEntryLayout _layout;
    private PtRegs? _loadedRegs;

    /// <summary>Boots the machine.</summary>
    public ProcessMachine(ProcessMachineOptions? options = null)
    {
        Options = options ?? new ProcessMachineOptions();
        if (Options.RamSize < (64UL << 20)) throw new ArgumentOutOfRangeException(nameof(options), Options.RamSize, "ProcessMachineOptions.RamSize must be at least 64 MiB (and a multiple of 1 MiB, at most 3 GiB).");
        if (Options.Quantum < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.Quantum, "ProcessMachineOptions.Quantum must be at least 1 instruction.");
        Bus = DefaultMachine.CreateBus(Options.RamSize);
        Kernel = KernelModel.Boot(Bus, new KernelOptions { Features = Options.Features });
        Kernel.EnableUserSpace(Options.Root);
        _layout = Kernel.Entry;
        _entries = _layout.EntryPoints.Order().ToArray();
        Cpu = new X86Cpu(Kernel.Cpus[0], new PortBus());
        Kernel.EnterKernelPaging(Kernel.Cpus[0]); // the CPU model's reset left real mode
        Cpu.Msr.Star = _layout.Star;
        Cpu.Msr.Lstar = _layout.SyscallEntry;
        Cpu.Msr.Fmask = _layout.Fmask;
        Cpu.Gdtr = new DescriptorTableRegister { Base = _layout.GdtBase, Limit = _layout.GdtLimit };
        Cpu.Idtr = new DescriptorTableRegister { Base = _layout.IdtBase, Limit = _layout.IdtLimit };
        Cpu.Tr = new SegmentRegister { Selector = UserEntryLayout.TssSelector, Base = _layout.Tss(0), Limit = 0x67, Attributes = 0x8B };
        SetKernelSegments();
        Kernel.HwCap = Cpu.Cpuid.Query(1, 0, Kernel.Cpus[0].Cr4Value, 0).Edx;
        Kernel.UserClock = () => Cpu.Clock.Nanoseconds;
    }

    /// <summary>The options.</summary>
    public ProcessMachineOptions Options { get; }
    /// <summary>The physical bus.</summary>
    public PhysicalBus Bus { get; }
    /// <summary>The kernel model.</summary>
    public KernelModel Kernel { get; }
    /// <summary>The CPU model that runs the user code.</summary>
    public X86Cpu Cpu { get; }
    /// <summary>When set, each page fault is described here with the walk explanation.</summary>
    public TextWriter? FaultTrace { get; set; }

    /// <summary>Starts <paramref name="guestPath"/> (a path inside <see cref="ProcessMachineOptions.Root"/>) with <paramref name="argv"/>; see <see cref="KernelModel.CreateProcess"/>.</summary>
    public TaskStruct Start(string guestPath, IReadOnlyList<string> argv, IReadOnlyList<string>? envp = null)
        => Kernel.CreateProcess(guestPath, argv, envp ?? ["PATH=/bin:/usr/bin", "HOME=/", "TERM=dumb"]);

    /// <summary>
    /// Runs every process until all have exited (or the budget in <see cref="ProcessMachineOptions.MaxInstructions"/>
    /// runs out, or the model meets something it does not model). The result is <paramref name="first"/>'s.
    /// </summary>
    /// <param name="first">The process whose exit status is the result.</param>
    /// <param name="maxInstructions">This run's budget instead of <see cref="ProcessMachineOptions.MaxInstructions"/>.</param>
    public ProcessRunResult Run(TaskStruct first, long? maxInstructions = null)
    {
        ArgumentNullException.ThrowIfNull(first);
        long budget = maxInstructions ?? Options.MaxInstructions;
        if (budget < 1) throw new ArgumentOutOfRangeException(nameof(maxInstructions), budget, "The instruction budget must be at least 1.");
        long start = Cpu.InstructionsRetired;
        long budgetEnd = budget > long.MaxValue - start ? long.MaxValue : start + budget;
        while (true)
        {
            var task = Kernel.CurrentTask;
            if (task is null) break;
            if (task.RestartSyscall) { Kernel.RestartBlockedSyscall(task); continue; }
            if (task.State != TaskState.Runnable) { Kernel.PickNext(); continue; }
            long left = budgetEnd - Cpu.InstructionsRetired;
            if (left <= 0)
                return Stop(first, start, $"instruction budget of {budget} exhausted while {task} ran (at RIP 0x{task.Regs.Rip:x})");
            ReturnToUser(task);
            var r = Cpu.RunToEntry(_entries, Math.Min(left, Options.Quantum));
            switch (r.Kind)
            {
                case StopKind.Breakpoint:
                    EnterKernel(task);
                    break;
                case StopKind.InstructionLimit:
                    if (Cpu.Cpl == 3)
                    {
                        SaveUserRegisters(task, Cpu.Rip, Cpu.Rflags, Cpu.GetRegister(4));
                        Kernel.PickNext();
                    }
                    break;
                default:
                    return Stop(first, start, $"{task}: {r.Report}");
            }
        }
        return new ProcessRunResult(ShellStatus(first), first.KilledBySignal, Cpu.InstructionsRetired - start, "");
    }

    private ProcessRunResult Stop(TaskStruct first, long start, string report)
        => new(first.State is TaskState.Zombie or TaskState.Dead ? ShellStatus(first) : 255, first.KilledBySignal, Cpu.InstructionsRetired - start, report);

    private static int ShellStatus(TaskStruct t) => t.KilledBySignal != 0 ? 128 + t.KilledBySignal : (t.ExitStatus >> 8) & 0xFF;

    private void SetKernelSegments()
    {
        Cpu.SetSegment(SegmentIndex.CS, new SegmentRegister { Selector = UserEntryLayout.KernelCs, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xA09B });
        Cpu.SetSegment(SegmentIndex.SS, new SegmentRegister { Selector = UserEntryLayout.KernelDs, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xC093 });
        Kernel.Cpus[0].Cpl = 0;
    }

    /// <summary>Puts <paramref name="task"/>'s saved registers on the CPU at the SYSRETQ or IRETQ of the exit path.</summary>
    private void ReturnToUser(TaskStruct task)
    {
        var regs = task.Regs;
        if (_loadedRegs != regs)
        {
            // Another task (or a new image after execve): the outgoing x87/SSE state is saved in its registers, the
            // incoming one restored (a new image starts from init_fpstate), and the FS and GS bases come in.
            if (_loadedRegs is not null) _loadedRegs.FpuState = Cpu.SaveFpuState();
            if (regs.FpuState is null) Cpu.InitFpuState(); else Cpu.RestoreFpuState(regs.FpuState);
            var gs = Cpu.GetSegment(SegmentIndex.GS); gs.Base = regs.GsBase; Cpu.SetSegment(SegmentIndex.GS, gs);
            _loadedRegs = regs;
        }
        var fs = Cpu.GetSegment(SegmentIndex.FS);
        if (fs.Base != regs.FsBase) { fs.Base = regs.FsBase; Cpu.SetSegment(SegmentIndex.FS, fs); }
        if (Kernel.LoadedMm(Kernel.CurrentCpuIndex) != task.Mm) Kernel.SwitchMm(task.Mm, Kernel.CurrentCpuIndex);
        for (int i = 0; i < 16; i++) Cpu.SetRegister(i, regs.Gpr[i]);
        if (Cpu.Cpl != 0) SetKernelSegments();
        if (regs.Gpr[1] == regs.Rip && regs.Gpr[11] == regs.Rflags && (regs.Rip >> 47) == 0)
        {
            // opportunistic SYSRET: RCX and R11 already hold RIP and RFLAGS.
            Cpu.Rflags = 0x2;
            Cpu.Rip = _layout.SysretStub;
            return;
        }
        // IRET frame on the entry stack: RIP, CS, RFLAGS, RSP, SS.
        ulong frame = _layout.EntryStackTop(0) - 40;
        Span<ulong> words = [regs.Rip, UserEntryLayout.UserCs, (regs.Rflags & 0x3F_7FD7) | 0x202, regs.Rsp, UserEntryLayout.UserDs];
        Kernel.Memory.WriteBytes(frame, System.Runtime.InteropServices.MemoryMarshal.AsBytes(words));
        Cpu.SetRegister(4, frame);
        Cpu.Rflags = 0x2;
        Cpu.Rip = _layout.IretStub;
    }

    private void SaveUserRegisters(TaskStruct task, ulong rip, ulong rflags, ulong rsp)
    {
        var regs = task.Regs;
        for (int i = 0; i < 16; i++) regs.Gpr[i] = Cpu.GetRegister(i);
        regs.Rip = rip;
        regs.Rflags = rflags;
        regs.Rsp = rsp;
        regs.FsBase = Cpu.GetSegment(SegmentIndex.FS).Base;
        regs.GsBase = Cpu.GetSegment(SegmentIndex.GS).Base;
    }

    private void EnterKernel(TaskStruct task)
    {
        ulong rip = Cpu.Rip;
        if (rip == _layout.SyscallEntry)
        {
            // SYSCALL left the user RIP in RCX and RFLAGS in R11; RSP is still the user's.
            SaveUserRegisters(task, Cpu.GetRegister(1), Cpu.GetRegister(11), Cpu.GetRegister(4));
            if (task.Regs.Rax is 56 or 57) task.Regs.FpuState = Cpu.SaveFpuState(); // clone/fork: the child inherits it
            Kernel.SyscallEntry(task);
            return;
        }
        int vector = _layout.VectorAt(rip);
        ulong sp = Cpu.GetRegister(4);
        var m = Kernel.Memory;
        ulong error = 0;
        if (KernelModel.HasErrorCode(vector)) { error = m.Read(sp, 8); sp += 8; }
        Span<ulong> frame = stackalloc ulong[4];
        m.ReadBytes(sp, System.Runtime.InteropServices.MemoryMarshal.AsBytes(frame));
        ulong uRip = frame[0], uCs = frame[1], uFlags = frame[2], uRsp = frame[3];
        if ((uCs & 3) != 3)
        {
            // The return to user mode itself faulted: the registers the task would resume with cannot be used (a
            // non-canonical RIP from a bad ELF entry point, say). As Linux does for a bad IRET, the task gets SIGSEGV.
            Kernel.KillTask(task, Signals.SIGSEGV,
                $"{task.Comm}[{task.Pid}]: bad return to user mode: exception {vector} (error 0x{error:x}) at 0x{uRip:x} resuming RIP 0x{task.Regs.Rip:x}");
            return;
        }
        SaveUserRegisters(task, uRip, uFlags, uRsp);
        if (vector == 14 && FaultTrace is { } w)
        {
            var kind = (error & 0x10) != 0 ? AccessKind.Execute : (error & 2) != 0 ? AccessKind.Write : AccessKind.Read;
            w.WriteLine($"[pid {task.Pid}] page fault at 0x{Cpu.Cr2:x} ip 0x{uRip:x} error 0x{error:x} ({kind.ToString().ToLowerInvariant()}, {((error & 1) != 0 ? "protection" : "not present")})");
            foreach (var line in Kernel.Cpus[0].Mmu.Explain(Cpu.Cr2, kind, Privilege.User).ToString().Split('\n'))
                if (line.Length > 0) w.WriteLine("    " + line);
        }
        Kernel.ExceptionEntry(task, vector, error, Cpu.Cr2);
    }
}
