using System.Globalization;
using System.Text;
using HwMemModel.Kernel.Process;

namespace HwMemModel.Kernel;

/// <summary>Where the processes' standard streams go.</summary>
public sealed class ProcessStreams
{
    /// <summary>The program's standard input (empty when null).</summary>
    public Stream? Stdin { get; init; }
    /// <summary>The program's standard output.</summary>
    public Stream Stdout { get; init; } = Stream.Null;
    /// <summary>The program's standard error.</summary>
    public Stream Stderr { get; init; } = Stream.Null;
}

public sealed partial class Kernel
{
    private const long CLOCK_REALTIME_EPOCH = 1_767_225_600; // 2026-01-01T00:00:00Z: the model's wall clock starts there

    /// <summary>The processes' standard streams.</summary>
    public ProcessStreams Streams { get; set; } = new();

    /// <summary>Guest time in nanoseconds for clock_gettime (the CPU runner provides it; deterministic).</summary>
    public Func<long> UserClock { get; set; } = () => 0;

    /// <summary>When set, every system call is described here in strace's style.</summary>
    public TextWriter? SyscallTrace { get; set; }

    /// <summary>
    /// entry_SYSCALL_64 → do_syscall_64: runs the system call in <paramref name="task"/>'s saved registers (number in
    /// RAX, arguments in RDI, RSI, RDX, R10, R8, R9) and puts the result in RAX. The call may block the task (wait4),
    /// replace its image (execve) or end it (exit); <see cref="CurrentTask"/> then names the task to run next.
    /// An unimplemented number returns -ENOSYS and is reported once by name in the kernel log.
    /// </summary>
    public void SyscallEntry(TaskStruct task)
    {
        var r = task.Regs;
        task.Syscalls++;
        long nr = (long)r.Rax;
        ulong a0 = r.Gpr[7], a1 = r.Gpr[6], a2 = r.Gpr[2], a3 = r.Gpr[10], a4 = r.Gpr[8], a5 = r.Gpr[9];
        long ret;
        try
        {
            ret = Dispatch(task, nr, a0, a1, a2, a3, a4, a5);
        }
        catch (OutOfMemoryInKernel)
        {
            ret = -Errno.ENOMEM;
        }
        if (ret == NoReturn) return; // exit, a successful execve, or a blocked wait4 that will be re-run
        r.Rax = (ulong)ret;
        if (SyscallTrace is { } w) w.WriteLine($"[pid {task.Pid}] {SyscallTable.Name(nr)}({FormatArgs(nr, a0, a1, a2, a3, a4, a5)}) = {FormatResult(nr, ret)}");
    }

    private const long NoReturn = long.MinValue;

    private long Dispatch(TaskStruct t, long nr, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        switch (nr)
        {
            case 0: return SysRead(t, (int)a0, a1, a2);
            case 1: return SysWrite(t, (int)a0, a1, a2);
            case 2: return SysOpen(t, a0, (int)a1);
            case 3: return SysClose(t, (int)a0);
            case 5: return SysFstat(t, (int)a0, a1);
            case 8: return SysLseek(t, (int)a0, (long)a1, (int)a2);
            case 9:
                {
                    OpenFile? f = null;
                    if (((int)a3 & Mman.MapAnonymous) == 0 && !t.Files.TryGetValue((int)a4, out f)) return -Errno.EBADF;
                    return DoMmap(t, a0, a1, (int)a2, (int)a3, f, a5);
                }
            case 10: return DoMprotect(t, a0, a1, (int)a2);
            case 11: return DoMunmap(t, a0, a1);
            case 12: return (long)DoBrk(t, a0);
            case 14: return SysRtSigprocmask(t, (int)a0, a1, a2, a3);
            case 16: return t.Files.ContainsKey((int)a0) ? -Errno.ENOTTY : -Errno.EBADF; // no terminals: TIOCGWINSZ and the rest answer ENOTTY
            case 19: return SysReadv(t, (int)a0, a1, (int)a2);
            case 20: return SysWritev(t, (int)a0, a1, (int)a2);
            case 24: return 0; // sched_yield
            case 28: return DoMadvise(t, a0, a1, (int)a2);
            case 39: return t.Pid;    // getpid
            case 102: case 104: case 107: case 108: return 0; // getuid, getgid, geteuid, getegid: root in the sandbox
            case 110: return t.Parent?.Pid ?? 1; // getppid
            case 186: return t.Pid;   // gettid
            case 56: return SysClone(t, a0, a1, a2, a3);
            case 57: return DoFork(t);
            case 59: return SysExecve(t, a0, a1, a2);
            case 60: case 231:
                SyscallTrace?.WriteLine($"[pid {t.Pid}] {SyscallTable.Name(nr)}({(int)a0}) = ?"); // strace: the call does not return
                DoExit(t, (int)(a0 & 0xFF) << 8);
                return NoReturn;
            case 61:
                {
                    long w = DoWait4(t, (int)a0, a1, (int)a2, a3);
                    if (t.State == TaskState.WaitingForChild) { PickNext(); return NoReturn; }
                    return w;
                }
            case 63: return SysUname(t, a0);
            case 158: return SysArchPrctl(t, (int)a0, a1);
            case 218: t.ClearChildTid = a0; return t.Pid; // set_tid_address
            case 228: return SysClockGettime(t, (int)a0, a1);
            case 257: return SysOpenat(t, (int)a0, a1, (int)a2);
            case 262: return SysNewfstatat(t, (int)a0, a1, a2, (int)a3);
            default:
                string name = SyscallTable.Name(nr);
                if (User.ReportedSyscalls.Add(name))
                    Log.Print($"{t.Comm}[{t.Pid}]: system call {name} ({nr}) is not implemented by the model; returning -ENOSYS");
                return -Errno.ENOSYS;
        }
    }

    private const int AtFdcwd = -100;
    private const int AtEmptyPath = 0x1000;

    private long SysOpenat(TaskStruct t, int dirfd, ulong pathVa, int flags)
    {
        var (path, err) = StrncpyFromUser(t, pathVa);
        if (path is null) return err;
        if (dirfd != AtFdcwd && !path.StartsWith('/'))
        {
            if (!t.Files.TryGetValue(dirfd, out var dir)) return -Errno.EBADF;
            if (dir.File is not { IsDirectory: true } d) return -Errno.ENOTDIR;
            path = d.GuestPath + "/" + path;
        }
        return OpenPath(t, path, flags);
    }

    /// <summary>Resumes a task whose system call blocked (wait4): the call runs again now that it was woken.</summary>
    public void RestartBlockedSyscall(TaskStruct task)
    {
        if (!task.RestartSyscall) return;
        task.RestartSyscall = false;
        // The registers still hold the call (RAX was not overwritten when it blocked).
        SyscallEntry(task);
    }

    // ------------------------------------------------------------------ files

    private long SysOpen(TaskStruct t, ulong pathVa, int flags)
    {
        var (path, err) = StrncpyFromUser(t, pathVa);
        return path is null ? err : OpenPath(t, path, flags);
    }

    /// <summary>open of a sandbox path: read-only (EROFS for write access, O_CREAT or O_TRUNC), ENOENT when missing.</summary>
    private long OpenPath(TaskStruct t, string path, int flags)
    {
        const int O_ACCMODE = 3, O_CREAT = 0x40, O_TRUNC = 0x200, O_DIRECTORY = 0x10000;
        var sb = User.Sandbox;
        if (sb is null) return -Errno.ENOENT;
        var (file, e) = sb.Lookup(path);
        if ((flags & O_ACCMODE) != 0 || (flags & (O_CREAT | O_TRUNC)) != 0)
            return file is null && (flags & O_CREAT) == 0 ? e : file is { IsDirectory: true } ? -Errno.EISDIR : -Errno.EROFS;
        if (file is null) return e;
        if ((flags & O_DIRECTORY) != 0 && !file.IsDirectory) return -Errno.ENOTDIR;
        int fd = 0;
        while (t.Files.ContainsKey(fd)) fd++;
        if (fd >= 1024) return -Errno.EMFILE;
        t.Files[fd] = new OpenFile(file.GuestPath, file, -1, flags);
        return fd;
    }

    private long SysClose(TaskStruct t, int fd)
    {
        if (!t.Files.Remove(fd, out var f)) return -Errno.EBADF;
        f.References--;
        return 0;
    }

    private long SysRead(TaskStruct t, int fd, ulong buf, ulong count)
    {
        if (!t.Files.TryGetValue(fd, out var f)) return -Errno.EBADF;
        if ((f.Flags & 3) == 1) return -Errno.EBADF;
        int n = (int)Math.Min(count, 1UL << 20);
        var data = new byte[n];
        int got;
        if (f.File is { } file)
        {
            if (file.IsDirectory) return -Errno.EISDIR;
            got = file.Read(f.Position, data);
        }
        else if (f.StandardStream == 0 && Streams.Stdin is { } input) got = input.Read(data, 0, n);
        else got = 0;
        if (!CopyToUser(t, buf, data.AsSpan(0, got))) return -Errno.EFAULT;
        f.Position += got;
        return got;
    }

    private long SysWrite(TaskStruct t, int fd, ulong buf, ulong count)
    {
        if (!t.Files.TryGetValue(fd, out var f)) return -Errno.EBADF;
        if (f.File is not null || f.StandardStream == 0) return -Errno.EBADF; // files are opened read-only
        int n = (int)Math.Min(count, 1UL << 20);
        var data = new byte[n];
        if (!CopyFromUser(t, buf, data)) return -Errno.EFAULT;
        (f.StandardStream == 2 ? Streams.Stderr : Streams.Stdout).Write(data);
        return n;
    }

    private long SysWritev(TaskStruct t, int fd, ulong iov, int count) => Vectored(t, iov, count, (b, l) => SysWrite(t, fd, b, l));

    private long SysReadv(TaskStruct t, int fd, ulong iov, int count) => Vectored(t, iov, count, (b, l) => SysRead(t, fd, b, l));

    private long Vectored(TaskStruct t, ulong iov, int count, Func<ulong, ulong, long> one)
    {
        if (count < 0 || count > 1024) return -Errno.EINVAL;
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            if (GetUser64(t, iov + (ulong)i * 16) is not { } b || GetUser64(t, iov + (ulong)i * 16 + 8) is not { } l) return -Errno.EFAULT;
            if (l == 0) continue;
            long n = one(b, l);
            if (n < 0) return total > 0 ? total : n;
            total += n;
            if ((ulong)n < l) break;
        }
        return total;
    }

    private long SysLseek(TaskStruct t, int fd, long offset, int whence)
    {
        if (!t.Files.TryGetValue(fd, out var f)) return -Errno.EBADF;
        if (f.File is null) return -Errno.ESPIPE;
        long target = whence switch { 0 => offset, 1 => f.Position + offset, 2 => f.File.Length + offset, _ => -1 };
        if (whence is < 0 or > 2 || target < 0) return -Errno.EINVAL;
        f.Position = target;
        return target;
    }

    private long SysFstat(TaskStruct t, int fd, ulong statbuf)
    {
        if (!t.Files.TryGetValue(fd, out var f)) return -Errno.EBADF;
        return WriteStat(t, statbuf, f.File, f.StandardStream);
    }

    private long SysNewfstatat(TaskStruct t, int dirfd, ulong pathVa, ulong statbuf, int flags)
    {
        var (path, err) = StrncpyFromUser(t, pathVa);
        if (path is null) return err;
        if (path.Length == 0 && (flags & AtEmptyPath) != 0) return SysFstat(t, dirfd, statbuf);
        if (dirfd != AtFdcwd && !path.StartsWith('/')) return -Errno.EBADF;
        if (User.Sandbox is not { } sb) return -Errno.ENOENT;
        var (file, e) = sb.Lookup(path);
        return file is null ? e : WriteStat(t, statbuf, file, -1);
    }

    private long WriteStat(TaskStruct t, ulong statbuf, SandboxFile? file, int stream)
    {
        // struct stat (x86-64): dev, ino, nlink, mode/uid/gid, pad, rdev, size, blksize, blocks, atime, mtime, ctime.
        var st = new byte[144];
        uint mode = file is null ? 0x2190u /* S_IFCHR | 0620 */ : file.IsDirectory ? 0x416Du /* S_IFDIR | 0555 */ : 0x816Du /* S_IFREG | 0555 */;
        if (file is { IsDirectory: false }) mode = (uint)(0x8000 | (IsExecutable(file) ? 0x16D : 0x124));
        BitConverter.TryWriteBytes(st.AsSpan(0), file is null ? 0x16UL : 0x801UL);
        BitConverter.TryWriteBytes(st.AsSpan(8), file?.Inode ?? (ulong)(3 + stream));
        BitConverter.TryWriteBytes(st.AsSpan(16), 1UL);
        BitConverter.TryWriteBytes(st.AsSpan(24), mode);
        BitConverter.TryWriteBytes(st.AsSpan(40), file is null ? 0x8800UL + (ulong)stream : 0UL);
        long size = file?.Length ?? 0;
        BitConverter.TryWriteBytes(st.AsSpan(48), size);
        BitConverter.TryWriteBytes(st.AsSpan(56), 4096L);
        BitConverter.TryWriteBytes(st.AsSpan(64), (size + 511) / 512);
        for (int i = 0; i < 3; i++) BitConverter.TryWriteBytes(st.AsSpan(72 + i * 16), CLOCK_REALTIME_EPOCH);
        return CopyToUser(t, statbuf, st) ? 0 : -Errno.EFAULT;
    }

    private static bool IsExecutable(SandboxFile f)
    {
        if (OperatingSystem.IsWindows()) return f.GuestPath.EndsWith(".exe", StringComparison.OrdinalIgnoreCase);
        return (File.GetUnixFileMode(f.HostPath) & UnixFileMode.UserExecute) != 0;
    }

    // ------------------------------------------------------------------ processes

    private long SysClone(TaskStruct t, ulong flags, ulong newsp, ulong parentTid, ulong childTid)
    {
        const ulong CLONE_VM = 0x100, CLONE_THREAD = 0x10000, CLONE_PARENT_SETTID = 0x100000, CLONE_CHILD_SETTID = 0x1000000, CLONE_CHILD_CLEARTID = 0x200000;
        if ((flags & (CLONE_VM | CLONE_THREAD)) != 0)
        {
            if (User.ReportedSyscalls.Add("clone:CLONE_VM"))
                Log.Print($"{t.Comm}[{t.Pid}]: clone with CLONE_VM or CLONE_THREAD (threads, vfork) is not modelled; returning -ENOSYS");
            return -Errno.ENOSYS;
        }
        long pid = DoFork(t, newsp);
        if (pid < 0) return pid;
        var child = User.Tasks[(int)pid];
        if ((flags & CLONE_PARENT_SETTID) != 0 && !CopyToUser(t, parentTid, BitConverter.GetBytes((int)pid))) return -Errno.EFAULT;
        if ((flags & CLONE_CHILD_CLEARTID) != 0) child.ClearChildTid = childTid;
        if ((flags & CLONE_CHILD_SETTID) != 0)
        {
            SwitchMm(child.Mm, CurrentCpuIndex);
            bool ok = CopyToUser(child, childTid, BitConverter.GetBytes((int)pid));
            SwitchMm(t.Mm, CurrentCpuIndex);
            if (!ok) return -Errno.EFAULT;
        }
        return pid;
    }

    private long SysExecve(TaskStruct t, ulong pathVa, ulong argvVa, ulong envpVa)
    {
        var (path, err) = StrncpyFromUser(t, pathVa);
        if (path is null) return err;
        var argv = ReadStringArray(t, argvVa, out int e1);
        if (argv is null) return e1;
        var envp = ReadStringArray(t, envpVa, out int e2);
        if (envp is null) return e2;
        if (User.Sandbox is not { } sb) return -Errno.ENOENT;
        var (file, e) = sb.Lookup(path);
        if (file is null) return e;
        if (file.IsDirectory) return -Errno.EACCES;
        if (!IsExecutable(file)) return -Errno.EACCES; // may_open: a regular file without an execute bit
        try
        {
            ExecInto(t, file, argv, envp);
        }
        catch (ExecFormatException x)
        {
            if (User.ReportedSyscalls.Add("execve:" + x.Message)) Log.Print($"{t.Comm}[{t.Pid}]: execve: {x.Message}");
            return x.Errno;
        }
        foreach (var fd in t.Files.Where(p => (p.Value.Flags & 0x80000) != 0).Select(p => p.Key).ToList()) SysClose(t, fd); // O_CLOEXEC
        if (SyscallTrace is { } w) w.WriteLine($"[pid {t.Pid}] execve(\"{path}\", [{string.Join(", ", argv.Select(a => $"\"{a}\""))}]) = 0");
        return NoReturn;
    }

    private List<string>? ReadStringArray(TaskStruct t, ulong va, out int error)
    {
        error = 0;
        var list = new List<string>();
        if (va == 0) return list;
        long total = 0;
        for (int i = 0; ; i++)
        {
            if (i > 4096) { error = -Errno.E2BIG; return null; }
            if (GetUser64(t, va + (ulong)i * 8) is not { } p) { error = -Errno.EFAULT; return null; }
            if (p == 0) return list;
            var (s, e) = StrncpyFromUser(t, p, 128 * 1024); // MAX_ARG_STRLEN
            if (s is null) { error = e == -Errno.ENAMETOOLONG ? -Errno.E2BIG : e; return null; }
            total += s.Length + 1;
            if (total > (long)(StackRlimit / 4)) { error = -Errno.E2BIG; return null; } // a quarter of the stack limit, as Linux
            list.Add(s);
        }
    }

    private long SysRtSigprocmask(TaskStruct t, int how, ulong set, ulong oldset, ulong size)
    {
        if (size != 8) return -Errno.EINVAL;
        if (oldset != 0 && !PutUser64(t, oldset, t.SignalMask)) return -Errno.EFAULT;
        if (set == 0) return 0;
        if (GetUser64(t, set) is not { } m) return -Errno.EFAULT;
        const ulong unblockable = (1UL << (Signals.SIGKILL - 1)) | (1UL << (19 - 1)); // SIGKILL, SIGSTOP
        switch (how)
        {
            case 0: t.SignalMask |= m & ~unblockable; break;
            case 1: t.SignalMask &= ~m; break;
            case 2: t.SignalMask = m & ~unblockable; break;
            default: return -Errno.EINVAL;
        }
        return 0;
    }

    private long SysUname(TaskStruct t, ulong buf)
    {
        var u = new byte[65 * 6];
        string[] fields = ["Linux", "hwmem", "6.18.0-hwmem", "#1 SMP PREEMPT_DYNAMIC HwMemModel", "x86_64", "(none)"];
        for (int i = 0; i < fields.Length; i++) Encoding.ASCII.GetBytes(fields[i]).CopyTo(u, i * 65);
        return CopyToUser(t, buf, u) ? 0 : -Errno.EFAULT;
    }

    private long SysArchPrctl(TaskStruct t, int code, ulong addr)
    {
        const int ARCH_SET_GS = 0x1001, ARCH_SET_FS = 0x1002, ARCH_GET_FS = 0x1003, ARCH_GET_GS = 0x1004;
        switch (code)
        {
            case ARCH_SET_FS:
            case ARCH_SET_GS:
                if (addr >= TaskSize) return -Errno.EPERM;
                if (code == ARCH_SET_FS) t.Regs.FsBase = addr; else t.Regs.GsBase = addr;
                return 0;
            case ARCH_GET_FS: return PutUser64(t, addr, t.Regs.FsBase) ? 0 : -Errno.EFAULT;
            case ARCH_GET_GS: return PutUser64(t, addr, t.Regs.GsBase) ? 0 : -Errno.EFAULT;
            default: return -Errno.EINVAL;
        }
    }

    private long SysClockGettime(TaskStruct t, int clock, ulong tp)
    {
        long ns = UserClock();
        long sec, nsec;
        switch (clock)
        {
            case 0: case 5: case 8: // REALTIME, REALTIME_COARSE, REALTIME_ALARM... (5 is REALTIME_COARSE)
                sec = CLOCK_REALTIME_EPOCH + ns / 1_000_000_000; nsec = ns % 1_000_000_000; break;
            case 1: case 2: case 3: case 4: case 6: case 7: // MONOTONIC, PROCESS/THREAD CPU time, MONOTONIC_RAW/COARSE, BOOTTIME
                sec = ns / 1_000_000_000; nsec = ns % 1_000_000_000; break;
            default: return -Errno.EINVAL;
        }
        var b = new byte[16];
        BitConverter.TryWriteBytes(b.AsSpan(0), sec);
        BitConverter.TryWriteBytes(b.AsSpan(8), nsec);
        return CopyToUser(t, tp, b) ? 0 : -Errno.EFAULT;
    }

    // ------------------------------------------------------------------ strace-style formatting

    private static string FormatArgs(long nr, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        static string H(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);
        static string D(ulong v) => ((long)v).ToString(CultureInfo.InvariantCulture);
        return nr switch
        {
            0 or 1 => $"{D(a0)}, {H(a1)}, {D(a2)}",
            3 => D(a0),
            9 => $"{(a0 == 0 ? "NULL" : H(a0))}, {D(a1)}, {Prot((int)a2)}, {MapFlags((int)a3)}, {(int)a4}, {H(a5)}",
            10 => $"{H(a0)}, {D(a1)}, {Prot((int)a2)}",
            11 => $"{H(a0)}, {D(a1)}",
            12 => a0 == 0 ? "NULL" : H(a0),
            16 => $"{D(a0)}, {(a1 == 0x5413 ? "TIOCGWINSZ" : H(a1))}, {H(a2)}",
            19 or 20 => $"{D(a0)}, {H(a1)}, {D(a2)}",
            28 => $"{H(a0)}, {D(a1)}, {(a2 == 4 ? "MADV_DONTNEED" : D(a2))}",
            60 or 231 => D(a0),
            61 => $"{(int)a0}, {H(a1)}, {D(a2)}, {(a3 == 0 ? "NULL" : H(a3))}",
            158 => $"{(a0 == 0x1002 ? "ARCH_SET_FS" : H(a0))}, {H(a1)}",
            218 => H(a0),
            228 => $"{((int)a0 == 0 ? "CLOCK_REALTIME" : (int)a0 == 1 ? "CLOCK_MONOTONIC" : D(a0))}, {H(a1)}",
            39 or 57 or 110 or 186 or 24 => "",
            _ => $"{H(a0)}, {H(a1)}, {H(a2)}",
        };
    }

    private static string Prot(int p) => p == 0 ? "PROT_NONE" : string.Join('|', new[] { (1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC") }.Where(x => (p & x.Item1) != 0).Select(x => x.Item2));

    private static string MapFlags(int f)
    {
        var parts = new List<string> { (f & 3) switch { 1 => "MAP_SHARED", 2 => "MAP_PRIVATE", 3 => "MAP_SHARED_VALIDATE", _ => "0" } };
        foreach (var (bit, name) in new[] { (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"), (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x20000, "MAP_STACK"), (0x100000, "MAP_FIXED_NOREPLACE") })
            if ((f & bit) != 0) parts.Add(name);
        return string.Join('|', parts);
    }

    private static string FormatResult(long nr, long ret)
    {
        if (ret < 0 && ret >= -4095) return $"-1 {Errno.Name((int)-ret)}";
        return nr is 9 or 12 ? "0x" + ret.ToString("x", CultureInfo.InvariantCulture) : ret.ToString(CultureInfo.InvariantCulture);
    }
}
