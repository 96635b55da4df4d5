namespace HwMemModel.Kernel.Process;

/// <summary>vm_flags of a VMA, with Linux's bit values (include/linux/mm.h).</summary>
[Flags]
public enum VmaFlags : ulong
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>VM_READ.</summary>
    Read = 0x1,
    /// <summary>VM_WRITE.</summary>
    Write = 0x2,
    /// <summary>VM_EXEC.</summary>
    Exec = 0x4,
    /// <summary>VM_SHARED.</summary>
    Shared = 0x8,
    /// <summary>VM_MAYREAD.</summary>
    MayRead = 0x10,
    /// <summary>VM_MAYWRITE.</summary>
    MayWrite = 0x20,
    /// <summary>VM_MAYEXEC.</summary>
    MayExec = 0x40,
    /// <summary>VM_MAYSHARE.</summary>
    MayShare = 0x80,
    /// <summary>VM_GROWSDOWN: the stack.</summary>
    GrowsDown = 0x100,
    /// <summary>VM_NORESERVE.</summary>
    NoReserve = 0x200000,
    /// <summary>VM_ACCOUNT: counted against overcommit.</summary>
    Account = 0x100000,
    /// <summary>The protection bits.</summary>
    AccessMask = Read | Write | Exec,
}

/// <summary>A read-only host file seen by the guest (an inode of the sandbox).</summary>
public sealed class SandboxFile
{
    internal SandboxFile(string guestPath, string hostPath, ulong inode, bool isDirectory)
    {
        GuestPath = guestPath;
        HostPath = hostPath;
        Inode = inode;
        IsDirectory = isDirectory;
        Length = isDirectory ? 0 : new FileInfo(hostPath).Length;
    }


    /// <summary>The path inside the sandbox ("/bin/prog").</summary>
    public string GuestPath { get; }
    /// <summary>The host path.</summary>
    public string HostPath { get; }
    /// <summary>Inode number (deterministic: assigned in order of first use).</summary>
    public ulong Inode { get; }
    /// <summary>True for a directory.</summary>
    public bool IsDirectory { get; }
    /// <summary>Size in bytes when first opened.</summary>
    public long Length { get; }

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; bytes past the end read as zero and are not counted.</summary>
    public int Read(long offset, Span<byte> buffer)
    {
        if (IsDirectory || offset < 0 || offset >= Length) return 0;
        int total = 0;
        try
        {
            using var fs = new FileStream(HostPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            fs.Position = offset;
            int want = (int)Math.Min(buffer.Length, Length - offset);
            while (total < want)
            {
                int n = fs.Read(buffer[total..want]);
                if (n == 0) break;
                total += n;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The host file changed under the model (removed, permissions): what was not read reads as zeros.
        }
        return total;
    }
}

/// <summary>
/// A VMA (struct vm_area_struct): [<see cref="Start"/>, <see cref="End"/>) with flags and its backing. The record
/// itself is an object of the vm_area_struct kmem_cache, whose address is <see cref="SlabObject"/>; the kernel writes
/// vm_start, vm_end and vm_flags into it.
/// </summary>
public sealed class VmArea
{
    internal VmArea(ulong start, ulong end, VmaFlags flags) { Start = start; End = end; Flags = flags; }

    /// <summary>vm_start.</summary>
    public ulong Start { get; internal set; }
    /// <summary>vm_end (exclusive).</summary>
    public ulong End { get; internal set; }
    /// <summary>vm_flags.</summary>
    public VmaFlags Flags { get; internal set; }
    /// <summary>The mapped file, or null for anonymous memory.</summary>
    public SandboxFile? File { get; internal set; }
    /// <summary>vm_pgoff: for a file, the file offset of <see cref="Start"/> in pages.</summary>
    public ulong PageOffset { get; internal set; }
    /// <summary>The shared anonymous object (MAP_SHARED|MAP_ANONYMOUS), or null.</summary>
    internal SharedAnon? Shmem { get; set; }
    /// <summary>The name shown in /proc/PID/maps for anonymous special areas ("[heap]", "[stack]"), or null.</summary>
    public string? Name { get; internal set; }
    /// <summary>Address of the vm_area_struct slab object.</summary>
    public ulong SlabObject { get; internal set; }
    /// <summary>Size in bytes.</summary>
    public ulong Size => End - Start;
    /// <summary>True for anonymous memory (no file).</summary>
    public bool IsAnonymous => File is null;
    /// <summary>True when shared (MAP_SHARED).</summary>
    public bool IsShared => (Flags & VmaFlags.Shared) != 0;

    /// <inheritdoc/>
    public override string ToString() => $"{Start:x}-{End:x} {Flags}";
}

/// <summary>
/// The pages of a MAP_SHARED|MAP_ANONYMOUS object (shmem), shared by every mapping of it (after fork too). Only the
/// pages touched so far are recorded, so a large (MAP_NORESERVE) object costs nothing until it is used.
/// </summary>
internal sealed class SharedAnon
{
    /// <summary>Physical address of each touched page, by page index in the object.</summary>
    public readonly Dictionary<ulong, ulong> Pages = [];
    /// <summary>VMAs mapping it.</summary>
    public int Users;
}

/// <summary>
/// An address space (struct mm_struct): its own top-level page table whose kernel half is shared with the kernel page
/// tables, its VMAs, brk and counters. The record is an object of the mm_struct kmem_cache (<see cref="SlabObject"/>).
/// </summary>
public sealed class MmStruct
{
    internal readonly List<VmArea> Vmas = [];

    internal MmStruct(ulong pgd, ulong contextId) { Pgd = pgd; ContextId = contextId; }

    /// <summary>Physical address of the PGD (the CR3 base while this mm runs).</summary>
    public ulong Pgd { get; }
    /// <summary>mm->context.ctx_id: a unique id that the per-CPU ASID slots remember.</summary>
    public ulong ContextId { get; }
    /// <summary>mm->context.tlb_gen: bumped by every flush of this mm.</summary>
    public ulong TlbGen { get; internal set; } = 1;
    /// <summary>The VMAs in address order.</summary>
    public IReadOnlyList<VmArea> Areas => Vmas;
    /// <summary>start_brk.</summary>
    public ulong StartBrk { get; internal set; }
    /// <summary>brk.</summary>
    public ulong Brk { get; internal set; }
    /// <summary>start_stack: where argc is.</summary>
    public ulong StartStack { get; internal set; }
    /// <summary>mmap_base: the top-down allocator's start.</summary>
    public ulong MmapBase { get; internal set; }
    /// <summary>Start of the code segment (the first executable PT_LOAD).</summary>
    public ulong StartCode { get; internal set; }
    /// <summary>End of the code segment.</summary>
    public ulong EndCode { get; internal set; }
    /// <summary>Resident anonymous pages (MM_ANONPAGES).</summary>
    public long RssAnon { get; internal set; }
    /// <summary>Resident file pages (MM_FILEPAGES).</summary>
    public long RssFile { get; internal set; }
    /// <summary>Resident shared-memory pages (MM_SHMEMPAGES).</summary>
    public long RssShmem { get; internal set; }
    /// <summary>Page-table pages of the user half (the PGD included).</summary>
    public long PageTablePages { get; internal set; } = 1;
    /// <summary>Address of the mm_struct slab object.</summary>
    public ulong SlabObject { get; internal set; }
    /// <summary>Peak resident pages (hiwater_rss).</summary>
    public long HiwaterRss { get; internal set; }
    /// <summary>Total mapped pages (total_vm).</summary>
    public long TotalVm => Vmas.Sum(v => (long)(v.Size >> 12));
    /// <summary>Pages charged to overcommit (VM_ACCOUNT mappings).</summary>
    internal long Committed { get; set; }
    internal string ExeName { get; set; } = "";
    internal SandboxFile? ExeFile { get; set; }
}

/// <summary>
/// The user registers saved on entry to the kernel (struct pt_regs), in the order of the x86 register numbers: RAX,
/// RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8-R15; plus RIP, RFLAGS, the FS and GS bases and the FXSAVE image of the
/// x87/SSE state.
/// </summary>
public sealed class PtRegs
{
    /// <summary>General-purpose registers by number.</summary>
    public ulong[] Gpr { get; } = new ulong[16];
    /// <summary>RIP.</summary>
    public ulong Rip { get; set; }
    /// <summary>RFLAGS.</summary>
    public ulong Rflags { get; set; } = 0x202;
    /// <summary>FS base (ARCH_SET_FS).</summary>
    public ulong FsBase { get; set; }
    /// <summary>GS base.</summary>
    public ulong GsBase { get; set; }
    /// <summary>The x87/SSE state as FXSAVE lays it out (512 bytes), or null while the task has not used it.</summary>
    public byte[]? FpuState { get; set; }
    /// <summary>RAX: the system call number on entry and the return value on exit.</summary>
    public ulong Rax { get => Gpr[0]; set => Gpr[0] = value; }
    /// <summary>RSP.</summary>
    public ulong Rsp { get => Gpr[4]; set => Gpr[4] = value; }

    /// <summary>A copy (fork).</summary>
    public PtRegs Clone()
    {
        var c = new PtRegs { Rip = Rip, Rflags = Rflags, FsBase = FsBase, GsBase = GsBase, FpuState = (byte[]?)FpuState?.Clone() };
        Gpr.CopyTo(c.Gpr, 0);
        return c;
    }
}

/// <summary>Scheduler state of a task.</summary>
public enum TaskState
{
    /// <summary>Runnable (TASK_RUNNING).</summary>
    Runnable,
    /// <summary>Waiting for a child in wait4 (TASK_INTERRUPTIBLE).</summary>
    WaitingForChild,
    /// <summary>Exited, not yet reaped (EXIT_ZOMBIE).</summary>
    Zombie,
    /// <summary>Reaped (EXIT_DEAD).</summary>
    Dead,
}

/// <summary>An open file description (struct file): shared by duplicated descriptors and across fork.</summary>
public sealed class OpenFile
{
    internal OpenFile(string name, SandboxFile? file, int standardStream, int flags)
    {
        Name = name; File = file; StandardStream = standardStream; Flags = flags;
    }

    /// <summary>The path (or "pipe:[stdout]" for the host streams).</summary>
    public string Name { get; }
    /// <summary>The sandbox file, or null for a host stream.</summary>
    public SandboxFile? File { get; }
    /// <summary>0, 1 or 2 for the host's stdin, stdout and stderr; -1 for files.</summary>
    public int StandardStream { get; }
    /// <summary>open flags.</summary>
    public int Flags { get; }
    /// <summary>f_pos.</summary>
    public long Position { get; internal set; }
    internal int References { get; set; } = 1;
}

/// <summary>A process with one thread (struct task_struct with its mm, files and signal state).</summary>
public sealed class TaskStruct
{
    internal TaskStruct(int pid, string comm, MmStruct mm)
    {
        Pid = pid;
        Comm = comm;
        Mm = mm;
    }

    /// <summary>PID (= TID = TGID: one thread per process).</summary>
    public int Pid { get; }
    /// <summary>comm: the executable's name, at most 15 characters.</summary>
    public string Comm { get; internal set; }
    /// <summary>The address space; null once the task has exited.</summary>
    public MmStruct? Mm { get; internal set; }
    /// <summary>The saved user registers.</summary>
    public PtRegs Regs { get; internal set; } = new();
    /// <summary>Parent task, or null for a child of init (the host).</summary>
    public TaskStruct? Parent { get; internal set; }
    /// <summary>Children not yet reaped.</summary>
    public List<TaskStruct> Children { get; } = [];
    /// <summary>Scheduler state.</summary>
    public TaskState State { get; internal set; }
    /// <summary>The wait status (as wait4 stores it) once the task has exited.</summary>
    public int ExitStatus { get; internal set; }
    /// <summary>The signal that killed the task, or 0.</summary>
    public int KilledBySignal { get; internal set; }
    /// <summary>Minor page faults (min_flt).</summary>
    public long MinorFaults { get; internal set; }
    /// <summary>Major page faults (maj_flt): file pages read from the sandbox.</summary>
    public long MajorFaults { get; internal set; }
    /// <summary>Copy-on-write faults that copied a page.</summary>
    public long CowFaults { get; internal set; }
    /// <summary>System calls made.</summary>
    public long Syscalls { get; internal set; }
    /// <summary>set_tid_address / CLONE_CHILD_CLEARTID address.</summary>
    public ulong ClearChildTid { get; internal set; }
    /// <summary>The blocked-signal mask (rt_sigprocmask).</summary>
    public ulong SignalMask { get; internal set; }
    internal readonly Dictionary<int, OpenFile> Files = [];
    /// <summary>True while the task is blocked in a system call that is re-run when it is woken.</summary>
    internal bool RestartSyscall { get; set; }

    /// <inheritdoc/>
    public override string ToString() => $"{Comm}[{Pid}]";
}
