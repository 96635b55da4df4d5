using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>Signal numbers (x86-64).</summary>
public static class Signals
{
    /// <summary>SIGILL.</summary>
    public const int SIGILL = 4;
    /// <summary>SIGTRAP.</summary>
    public const int SIGTRAP = 5;
    /// <summary>SIGABRT.</summary>
    public const int SIGABRT = 6;
    /// <summary>SIGBUS.</summary>
    public const int SIGBUS = 7;
    /// <summary>SIGFPE.</summary>
    public const int SIGFPE = 8;
    /// <summary>SIGKILL.</summary>
    public const int SIGKILL = 9;
    /// <summary>SIGSEGV.</summary>
    public const int SIGSEGV = 11;
    /// <summary>SIGCHLD.</summary>
    public const int SIGCHLD = 17;

    /// <summary>The name ("SIGSEGV") of <paramref name="signal"/>.</summary>
    public static string Name(int signal) => signal switch
    {
        SIGILL => "SIGILL", SIGTRAP => "SIGTRAP", SIGABRT => "SIGABRT", SIGBUS => "SIGBUS", SIGFPE => "SIGFPE",
        SIGKILL => "SIGKILL", SIGSEGV => "SIGSEGV", SIGCHLD => "SIGCHLD", _ => "signal " + signal,
    };
}

public sealed partial class Kernel
{
    /// <summary>The task the current CPU runs, or null when every process has exited.</summary>
    public TaskStruct? CurrentTask => _user?.Current;

    /// <summary>Every task not yet reaped, by PID.</summary>
    public IReadOnlyDictionary<int, TaskStruct> Tasks => User.Tasks;

    /// <summary>Raised when a child of init (a process the host started) exits: the host's wait.</summary>
    public event Action<TaskStruct>? ProcessExited;

    /// <summary>Raised for every task as it begins to exit, while its address space is still there (for /proc views at exit).</summary>
    public event Action<TaskStruct>? TaskExiting;

    /// <summary>Raised for every task as it exits, after its address space is released (its counters are final).</summary>
    public event Action<TaskStruct>? TaskExited;

    // ------------------------------------------------------------------ fork

    /// <summary>
    /// fork (clone without CLONE_VM): a child with a copy of the address space — every VMA copied, every present
    /// page shared, private writable pages write-protected in both (copy-on-write) with their map counts raised —
    /// the same open files and registers, returning 0 in the child. Returns the child's PID or -ENOMEM.
    /// </summary>
    public long DoFork(TaskStruct parent, ulong childStack = 0)
    {
        var u = User;
        var pmm = parent.Mm!;
        MmStruct mm;
        try { mm = MmAlloc(); }
        catch (OutOfMemoryInKernel) { return -Errno.ENOMEM; }
        try
        {
            foreach (var v in pmm.Vmas)
            {
                var c = NewVma(mm, v.Start, v.End, v.Flags, v.File, v.PageOffset, v.Name);
                c.Shmem = v.Shmem;
                if (v.Shmem is not null) v.Shmem.Users++;
                CopyPageRange(pmm, mm, v);
            }
        }
        catch (OutOfMemoryInKernel)
        {
            FlushTlbMmRange(pmm, 0, ulong.MaxValue);
            MmFree(mm);
            return -Errno.ENOMEM;
        }
        FlushTlbMmRange(pmm, 0, ulong.MaxValue); // the parent's entries lost RW
        mm.StartBrk = pmm.StartBrk; mm.Brk = pmm.Brk; mm.StartStack = pmm.StartStack; mm.MmapBase = pmm.MmapBase;
        mm.StartCode = pmm.StartCode; mm.EndCode = pmm.EndCode; mm.Committed = pmm.Committed;
        mm.ExeFile = pmm.ExeFile; mm.ExeName = pmm.ExeName;
        var child = new TaskStruct(u.NextPid++, parent.Comm, mm) { Parent = parent, Regs = parent.Regs.Clone(), SignalMask = parent.SignalMask };
        child.Regs.Rax = 0;
        if (childStack != 0) child.Regs.Rsp = childStack;
        foreach (var (fd, f) in parent.Files) { f.References++; child.Files[fd] = f; }
        parent.Children.Add(child);
        u.Tasks[child.Pid] = child;
        u.RunQueue.Add(child);
        return child.Pid;
    }

    /// <summary>copy_page_range for one VMA, a page table at a time.</summary>
    private void CopyPageRange(MmStruct src, MmStruct dst, VmArea v)
    {
        bool cow = !v.IsShared && (v.Flags & VmaFlags.MayWrite) != 0;
        Span<byte> sp = stackalloc byte[4096];
        Span<byte> dp = stackalloc byte[4096];
        for (ulong va = v.Start; va < v.End;)
        {
            ulong tableEnd = (va + (1UL << 21)) & ~((1UL << 21) - 1);
            ulong end = Math.Min(tableEnd, v.End);
            ulong sPte = UserPteOrNext(src, va, out ulong next);
            if (sPte == 0) { va = Math.Min(next, v.End); continue; }
            ulong sTable = sPte & ~0xFFFUL;
            Memory.ReadBytes(PhysToVirt(sTable), sp);
            int first = (int)((va >> 12) & 511), last = (int)(((end - 1) >> 12) & 511);
            bool any = false, parentChanged = false;
            for (int i = first; i <= last; i++) if (BitConverter.ToUInt64(sp[(i * 8)..]) != 0) { any = true; break; }
            if (!any) { va = end; continue; }
            ulong dPte = UserPte(dst, va, allocate: true);
            if (dPte == 0) throw new OutOfMemoryInKernel();
            ulong dTable = dPte & ~0xFFFUL;
            Memory.ReadBytes(PhysToVirt(dTable), dp);
            for (int i = first; i <= last; i++)
            {
                ulong e = BitConverter.ToUInt64(sp[(i * 8)..]);
                if (e == 0) continue;
                if ((e & (PtePresent | PteProtNone)) != 0)
                {
                    ulong pa = e & PteAddr;
                    GetUserPage(pa);
                    Account(dst, KindOf(pa), +1);
                    if (cow && (e & PteRw) != 0)
                    {
                        e &= ~PteRw;
                        BitConverter.TryWriteBytes(sp[(i * 8)..], e);
                        parentChanged = true;
                    }
                }
                BitConverter.TryWriteBytes(dp[(i * 8)..], e);
            }
            Memory.WriteBytes(PhysToVirt(dTable), dp);
            if (parentChanged) Memory.WriteBytes(PhysToVirt(sTable), sp);
            va = end;
        }
    }

    // ------------------------------------------------------------------ exit and wait

    /// <summary>
    /// do_exit: closes the files, releases the address space (every page, page table and slab object), reparents
    /// the children to init, and leaves a zombie for the parent's wait4 (init reaps at once). <paramref name="status"/>
    /// is the wait status.
    /// </summary>
    public void DoExit(TaskStruct task, int status, int signal = 0)
    {
        var u = User;
        if (task.State is TaskState.Zombie or TaskState.Dead) return;
        TaskExiting?.Invoke(task);
        foreach (var f in task.Files.Values) f.References--;
        task.Files.Clear();
        if (task.Mm is { } mm) { MmFree(mm); task.Mm = null; }
        task.ExitStatus = status;
        task.KilledBySignal = signal;
        task.State = TaskState.Zombie;
        u.RunQueue.Remove(task);
        SyscallTrace?.WriteLine(signal != 0 ? $"[pid {task.Pid}] +++ killed by {Signals.Name(signal)} +++" : $"[pid {task.Pid}] +++ exited with {(status >> 8) & 0xFF} +++");
        TaskExited?.Invoke(task);
        foreach (var c in task.Children.ToArray())
        {
            c.Parent = null;
            if (c.State == TaskState.Zombie) Reap(c);
        }
        task.Children.Clear();
        if (task.Parent is { } parent)
        {
            if (parent.State == TaskState.WaitingForChild)
            {
                parent.State = TaskState.Runnable;
                u.RunQueue.Add(parent);
            }
        }
        else
        {
            Reap(task);
            ProcessExited?.Invoke(task);
        }
        if (u.Current == task) PickNext();
    }

    private void Reap(TaskStruct t)
    {
        t.State = TaskState.Dead;
        t.Parent?.Children.Remove(t);
        User.Tasks.Remove(t.Pid);
    }

    /// <summary>Kills <paramref name="task"/> with <paramref name="signal"/> (no handlers are modelled: the default action).</summary>
    public void KillTask(TaskStruct task, int signal, string? logLine = null)
    {
        if (logLine is not null) Log.Print(logLine);
        DoExit(task, signal & 0x7F, signal);
    }

    /// <summary>wait4: reaps a zombie child (status and rusage written), 0 with WNOHANG while none, ECHILD without children; otherwise blocks.</summary>
    internal long DoWait4(TaskStruct t, int pid, ulong statusPtr, int options, ulong rusagePtr)
    {
        const int WNOHANG = 1;
        var mine = t.Children.Where(c => pid == -1 || pid == 0 || pid < -1 || c.Pid == pid).ToList();
        if (mine.Count == 0) return -Errno.ECHILD;
        var z = mine.FirstOrDefault(c => c.State == TaskState.Zombie);
        if (z is null)
        {
            if ((options & WNOHANG) != 0) return 0;
            t.State = TaskState.WaitingForChild;
            t.RestartSyscall = true;
            User.RunQueue.Remove(t);
            return 0;
        }
        if (statusPtr != 0 && !CopyToUser(t, statusPtr, BitConverter.GetBytes(z.ExitStatus))) return -Errno.EFAULT;
        if (rusagePtr != 0)
        {
            var ru = new byte[144];
            BitConverter.TryWriteBytes(ru.AsSpan(64), z.MinorFaults);
            BitConverter.TryWriteBytes(ru.AsSpan(72), z.MajorFaults);
            if (!CopyToUser(t, rusagePtr, ru)) return -Errno.EFAULT;
        }
        Reap(z);
        return z.Pid;
    }

    // ------------------------------------------------------------------ scheduling

    /// <summary>
    /// schedule: the next runnable task in round-robin order after the current one becomes current and its mm is
    /// loaded (switch_mm); null when none is left.
    /// </summary>
    public TaskStruct? PickNext()
    {
        var u = User;
        TaskStruct? next = null;
        if (u.RunQueue.Count > 0)
        {
            int i = u.Current is null ? -1 : u.RunQueue.IndexOf(u.Current);
            next = u.RunQueue[(i + 1) % u.RunQueue.Count];
        }
        if (next != u.Current || (next is not null && LoadedMm(CurrentCpuIndex) != next.Mm))
        {
            u.Current = next;
            SwitchMm(next?.Mm, CurrentCpuIndex);
        }
        return next;
    }

    /// <summary>
    /// An exception the CPU raised in user mode: a page fault goes to <see cref="HandleUserFault"/>; what it cannot
    /// resolve, and every other exception, kills the task with the signal Linux sends and the line Linux logs.
    /// </summary>
    public void ExceptionEntry(TaskStruct task, int vector, ulong errorCode, ulong cr2)
    {
        var regs = task.Regs;
        if (vector == 14)
        {
            var r = HandleUserFault(task, cr2, (PageFaultErrorCode)errorCode);
            if (r == UserFaultResult.Handled) return;
            if (r == UserFaultResult.OutOfMemory)
            {
                KillTask(task, Signals.SIGKILL, $"Out of memory: Killed process {task.Pid} ({task.Comm})");
                return;
            }
            SyscallTrace?.WriteLine($"[pid {task.Pid}] --- SIGSEGV {{si_signo=SIGSEGV, si_code={(r == UserFaultResult.MapError ? "SEGV_MAPERR" : "SEGV_ACCERR")}, si_addr={(cr2 == 0 ? "NULL" : $"0x{cr2:x}")}}} ---");
            string line = $"{task.Comm}[{task.Pid}]: segfault at {cr2:x} ip {regs.Rip:x16} sp {regs.Rsp:x16} error {errorCode:x}{WhereIn(task, regs.Rip)} likely on CPU {CurrentCpuIndex} (core 0, socket 0)";
            Log.Print(line);
            Log.Print(CodeLine(task, regs.Rip));
            KillTask(task, Signals.SIGSEGV);
            return;
        }
        (int sig, string what) = vector switch
        {
            0 => (Signals.SIGFPE, "trap divide error"),
            1 => (Signals.SIGTRAP, "trap debug"),
            3 => (Signals.SIGTRAP, "trap int3"),
            4 => (Signals.SIGSEGV, "trap overflow"),
            5 => (Signals.SIGSEGV, "trap bounds"),
            6 => (Signals.SIGILL, "trap invalid opcode"),
            7 => (Signals.SIGSEGV, "trap device not available"),
            13 => (Signals.SIGSEGV, "general protection fault"),
            12 => (Signals.SIGBUS, "trap stack segment"),
            16 => (Signals.SIGFPE, "trap coprocessor error"),
            17 => (Signals.SIGBUS, "trap alignment check"),
            19 => (Signals.SIGFPE, "trap SIMD coprocessor error"),
            _ => (Signals.SIGSEGV, $"trap vector {vector}"),
        };
        KillTask(task, sig, $"traps: {task.Comm}[{task.Pid}] {what} ip:{regs.Rip:x} sp:{regs.Rsp:x} error:{errorCode:x}{WhereIn(task, regs.Rip)}");
    }

    /// <summary>print_vma_addr: " in FILE[OFFSET,START+SIZE]" for an address in a file mapping.</summary>
    private static string WhereIn(TaskStruct task, ulong ip)
    {
        if (task.Mm is not { } mm || FindVma(mm, ip) is not { } v || v.Start > ip || v.File is null) return "";
        string name = v.File.GuestPath[(v.File.GuestPath.LastIndexOf('/') + 1)..];
        return $" in {name}[{ip - v.Start + (v.PageOffset << 12):x},{v.Start:x}+{v.Size:x}]";
    }

    /// <summary>show_opcodes: the 64 code bytes around <paramref name="ip"/> (42 before it), the one at ip in angle brackets.</summary>
    private string CodeLine(TaskStruct task, ulong ip)
    {
        const int Prologue = 42, Size = 64;
        var bytes = new byte[Size];
        if (ip < Prologue || !CopyFromUser(task, ip - Prologue, bytes)) return $"Code: Unable to access opcode bytes at 0x{ip - Prologue:x}.";
        var sb = new System.Text.StringBuilder("Code:");
        for (int i = 0; i < Size; i++) sb.Append(i == Prologue ? $" <{bytes[i]:x2}>" : $" {bytes[i]:x2}");
        return sb.ToString();
    }
}
