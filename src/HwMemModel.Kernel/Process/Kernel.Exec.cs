using System.Text;
using ELFSharp.ELF;
using ELFSharp.ELF.Segments;
using HwMemModel.Kernel.Process;

namespace HwMemModel.Kernel;

/// <summary>A program the kernel cannot execute (execve's ENOEXEC and friends), with the reason in words.</summary>
public sealed class ExecFormatException(string message, int errno) : Exception(message)
{
    /// <summary>The negative errno execve returns.</summary>
    public int Errno { get; } = errno;
}

public sealed partial class Kernel
{
    /// <summary>ELF_ET_DYN_BASE: where a static PIE is placed (2/3 of the 47-bit window), without randomisation.</summary>
    public const ulong ElfEtDynBase = 0x5555_5555_4000UL;
    /// <summary>AT_HWCAP given to programs: CPUID.1:EDX of the CPU that runs them (set by the CPU runner).</summary>
    public ulong HwCap { get; set; } = 0x078B_FBFF;

    private const int MaxProgramBytes = 256 << 20;

    /// <summary>
    /// Starts a process (as init's child) running the static x86-64 ELF program at <paramref name="guestPath"/> in the
    /// sandbox, with <paramref name="argv"/> and <paramref name="envp"/>. Throws <see cref="ExecFormatException"/> when
    /// the file is missing or not a static x86-64 executable; nothing is left allocated then.
    /// </summary>
    public TaskStruct CreateProcess(string guestPath, IReadOnlyList<string> argv, IReadOnlyList<string>? envp = null)
    {
        var u = User;
        if (u.Sandbox is null) throw new InvalidOperationException("No sandbox root: call EnableUserSpace(root) with the directory the programs live in.");
        var (file, err) = u.Sandbox.Lookup(guestPath);
        if (file is null) throw new ExecFormatException($"{guestPath}: {(err == -Errno.ENOENT ? "no such file in the sandbox " + u.Sandbox.Root : Errno.Name(err))}", err);
        if (file.IsDirectory) throw new ExecFormatException($"{guestPath}: is a directory", -Errno.EACCES);
        var task = new TaskStruct(u.NextPid++, CommOf(guestPath), null!);
        try
        {
            ExecInto(task, file, argv, envp ?? []);
        }
        catch
        {
            u.NextPid--;
            throw;
        }
        task.Files[0] = new OpenFile("/dev/stdin", null, 0, 0);
        task.Files[1] = new OpenFile("/dev/stdout", null, 1, 1);
        task.Files[2] = new OpenFile("/dev/stderr", null, 2, 1);
        u.Tasks[task.Pid] = task;
        u.RunQueue.Add(task);
        u.Current ??= task;
        if (u.Current == task) SwitchMm(task.Mm, CurrentCpuIndex);
        else SwitchMm(u.Current.Mm, CurrentCpuIndex);
        return task;
    }

    private static string CommOf(string path)
    {
        string name = path[(path.LastIndexOf('/') + 1)..];
        return name.Length > 15 ? name[..15] : name;
    }

    /// <summary>
    /// load_elf_binary: a new mm with the program's PT_LOAD segments as private file mappings (bss zeroed and
    /// extended with anonymous memory), brk after the highest segment, and a stack VMA under STACK_TOP holding
    /// argc, argv, envp and the auxiliary vector as Linux lays them out. On success the task runs the new image with
    /// the new mm loaded on the current CPU and its old mm released; on failure the task is unchanged.
    /// </summary>
    internal void ExecInto(TaskStruct task, SandboxFile file, IReadOnlyList<string> argv, IReadOnlyList<string> envp)
    {
        if (file.Length > MaxProgramBytes) throw new ExecFormatException($"{file.GuestPath}: {file.Length} bytes; programs up to {MaxProgramBytes >> 20} MiB are accepted", -Errno.E2BIG);
        var image = new byte[file.Length];
        file.Read(0, image);
        var plan = PlanElf(file.GuestPath, image);
        var old = task.Mm;
        var mm = MmAlloc();
        try
        {
            SwitchMm(mm, CurrentCpuIndex);
            var regs = LoadSegmentsAndStack(task, mm, file, plan, argv, envp);
            mm.ExeFile = file;
            mm.ExeName = file.GuestPath;
            task.Mm = mm;
            task.Regs = regs;
            task.Comm = CommOf(file.GuestPath);
            if (old is not null) MmFree(old);
        }
        catch (Exception e) when (e is OutOfMemoryInKernel or ExecFormatException)
        {
            task.Mm = old;
            SwitchMm(old, CurrentCpuIndex);
            MmFree(mm);
            if (e is OutOfMemoryInKernel) throw new ExecFormatException($"{file.GuestPath}: out of memory while loading", -Errno.ENOMEM);
            throw;
        }
    }

    private sealed record ElfPlan(ulong Entry, ulong Bias, ulong PhdrOffset, int PhNum, List<(ulong Vaddr, ulong Offset, ulong FileSize, ulong MemSize, SegmentFlags Flags)> Loads);

    private static ElfPlan PlanElf(string path, byte[] image)
    {
        const string Rule = "hwmem runs statically linked x86-64 Linux ELF executables (build with musl-gcc -static)";
        if (image.Length < 4 || image[0] != 0x7F || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
        {
            string what = image.Length >= 2 && image[0] == '#' && image[1] == '!' ? "a script (#!), not an ELF file" : "not an ELF file (no \\x7fELF magic)";
            throw new ExecFormatException($"{path}: {what}; {Rule}", -Errno.ENOEXEC);
        }
        if (image.Length < 64)
            throw new ExecFormatException($"{path}: a truncated ELF file ({image.Length} bytes, shorter than the 64-byte ELF header); {Rule}", -Errno.ENOEXEC);
        if (image[4] != 2)
            throw new ExecFormatException($"{path}: a 32-bit ELF file (ELFCLASS32); {Rule}", -Errno.ENOEXEC);
        if (image[5] != 1)
            throw new ExecFormatException($"{path}: a big-endian ELF file; {Rule}", -Errno.ENOEXEC);
        // The program headers and the file part of every PT_LOAD must lie inside the file (Linux reads no more).
        ulong phoffRaw = BitConverter.ToUInt64(image, 32);
        int phnumRaw = BitConverter.ToUInt16(image, 56), phentsize = BitConverter.ToUInt16(image, 54);
        if (phentsize == 56 && (phoffRaw > (ulong)image.Length || (ulong)image.Length - phoffRaw < (ulong)phnumRaw * 56))
            throw new ExecFormatException($"{path}: a truncated ELF file ({image.Length} bytes; its program headers end at 0x{phoffRaw + (ulong)phnumRaw * 56:x}); {Rule}", -Errno.ENOEXEC);
        for (int i = 0; phentsize == 56 && i < phnumRaw; i++)
        {
            int o = (int)phoffRaw + i * 56;
            if (BitConverter.ToUInt32(image, o) != 1) continue;
            ulong off = BitConverter.ToUInt64(image, o + 8), fsz = BitConverter.ToUInt64(image, o + 32);
            if (off + fsz < off || off + fsz > (ulong)image.Length)
                throw new ExecFormatException($"{path}: a truncated ELF file ({image.Length} bytes; the PT_LOAD segment at 0x{BitConverter.ToUInt64(image, o + 16):x} needs bytes up to 0x{off + fsz:x}); {Rule}", -Errno.ENOEXEC);
        }
        IELF? elfAny = null;
        try
        {
            using var s = new MemoryStream(image, writable: false);
            if (!ELFReader.TryLoad(s, shouldOwnStream: false, out elfAny) || elfAny is not ELF<ulong> elf)
                throw new ExecFormatException($"{path}: a malformed ELF file; {Rule}", -Errno.ENOEXEC);
            if (elf.Machine != Machine.AMD64)
                throw new ExecFormatException($"{path}: an ELF file for another machine (e_machine {(ushort)elf.Machine}, {elf.Machine}), not x86-64 (62, EM_X86_64); {Rule}", -Errno.ENOEXEC);
            if (elf.Type is not (FileType.Executable or FileType.SharedObject))
                throw new ExecFormatException($"{path}: an ELF {elf.Type} file, not an executable; {Rule}", -Errno.ENOEXEC);
            var interp = elf.Segments.FirstOrDefault(x => x.Type == SegmentType.Interpreter);
            if (interp is not null)
            {
                string wanted = Encoding.ASCII.GetString(interp.GetFileContents()).TrimEnd('\0');
                throw new ExecFormatException($"{path}: a dynamically linked program (it asks for the interpreter {wanted}); only static programs run: {Rule}", -Errno.ENOEXEC);
            }
            var loads = new List<(ulong, ulong, ulong, ulong, SegmentFlags)>();
            foreach (var seg in elf.Segments)
            {
                if (seg.Type != SegmentType.Load) continue;
                ulong va = seg.Address, off = (ulong)seg.Offset, fsz = (ulong)seg.FileSize, msz = seg.Size;
                if (fsz > msz || off + fsz > (ulong)image.Length || off + fsz < off)
                    throw new ExecFormatException($"{path}: a PT_LOAD segment at 0x{va:x} takes bytes beyond the file or has p_filesz > p_memsz; {Rule}", -Errno.ENOEXEC);
                if ((va & 0xFFF) != (off & 0xFFF))
                    throw new ExecFormatException($"{path}: PT_LOAD at 0x{va:x} is not page-congruent with its file offset 0x{off:x}", -Errno.EINVAL);
                loads.Add((va, off, fsz, msz, seg.Flags));
            }
            if (loads.Count == 0) throw new ExecFormatException($"{path}: no PT_LOAD segments; {Rule}", -Errno.ENOEXEC);
            ulong bias = elf.Type == FileType.SharedObject ? (ElfEtDynBase - (loads[0].Item1 & ~0xFFFUL)) : 0;
            foreach (var l in loads)
                if (l.Item1 + bias + l.Item4 > TaskSize || l.Item1 + bias < MmapMinAddr)
                    throw new ExecFormatException($"{path}: PT_LOAD at 0x{l.Item1 + bias:x} (0x{l.Item4:x} bytes) lies outside user space [0x{MmapMinAddr:x}, 0x{TaskSize:x})", -Errno.ENOMEM);
            ulong phoff = BitConverter.ToUInt64(image, 32);
            int phnum = BitConverter.ToUInt16(image, 56);
            return new ElfPlan(elf.EntryPoint + bias, bias, phoff, phnum, loads);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or OverflowException or IOException or IndexOutOfRangeException or NotSupportedException or EndOfStreamException)
        {
            throw new ExecFormatException($"{path}: a malformed ELF file ({e.Message.Split('\n')[0]}); {Rule}", -Errno.ENOEXEC);
        }
        finally
        {
            elfAny?.Dispose();
        }
    }

    private PtRegs LoadSegmentsAndStack(TaskStruct task, MmStruct mm, SandboxFile file, ElfPlan plan, IReadOnlyList<string> argv, IReadOnlyList<string> envp)
    {
        ulong elfBrk = 0, phdrAddr = 0;
        var zeroTails = new List<(ulong From, ulong To)>();
        foreach (var (vaddr, offset, filesz, memsz, flags) in plan.Loads)
        {
            ulong va = vaddr + plan.Bias;
            var vmFlags = ((flags & SegmentFlags.Read) != 0 ? VmaFlags.Read : 0) | ((flags & SegmentFlags.Write) != 0 ? VmaFlags.Write : 0)
                | ((flags & SegmentFlags.Execute) != 0 ? VmaFlags.Exec : 0) | VmaFlags.MayRead | VmaFlags.MayWrite | VmaFlags.MayExec;
            if ((vmFlags & VmaFlags.Write) != 0) vmFlags |= VmaFlags.Account;
            ulong start = va & ~PageMask;
            ulong fileEnd = (va + filesz + PageMask) & ~PageMask;
            ulong memEnd = (va + memsz + PageMask) & ~PageMask;
            if (filesz > 0)
            {
                if (mm.Vmas.Any(v => v.Start < fileEnd && v.End > start))
                    throw new ExecFormatException($"{file.GuestPath}: PT_LOAD segments overlap at 0x{start:x}", -Errno.EINVAL);
                NewVma(mm, start, fileEnd, vmFlags, file, (offset & ~PageMask) >> 12);
                if (memsz > filesz) zeroTails.Add((va + filesz, Math.Min(fileEnd, va + memsz)));
            }
            ulong anonStart = filesz > 0 ? fileEnd : start;
            if (memEnd > anonStart) MergeVma(mm, NewVma(mm, anonStart, memEnd, vmFlags));
            if ((vmFlags & VmaFlags.Account) != 0) mm.Committed += (long)((memEnd - start) >> 12);
            if ((flags & SegmentFlags.Execute) != 0 && mm.StartCode == 0) { mm.StartCode = start; mm.EndCode = va + filesz; }
            if (offset <= plan.PhdrOffset && plan.PhdrOffset < offset + filesz) phdrAddr = plan.PhdrOffset - offset + va;
            elfBrk = Math.Max(elfBrk, va + memsz);
        }
        mm.StartBrk = mm.Brk = (elfBrk + PageMask) & ~PageMask;
        // padzero: the bytes of a segment's last file page beyond p_filesz belong to bss (a write: copy-on-write).
        var probe = new TaskStruct(task.Pid, task.Comm, mm);
        foreach (var (from, to) in zeroTails)
            if (to > from && !CopyToUser(probe, from, new byte[to - from]))
                throw new ExecFormatException($"{file.GuestPath}: cannot clear the bss at 0x{from:x}", -Errno.EFAULT);
        return BuildStack(probe, mm, file, plan, phdrAddr, argv, envp);
    }

    private PtRegs BuildStack(TaskStruct probe, MmStruct mm, SandboxFile file, ElfPlan plan, ulong phdrAddr, IReadOnlyList<string> argv, IReadOnlyList<string> envp)
    {
        // Strings first, from the top: [filename][envp strings][argv strings] below an 8-byte zero at STACK_TOP.
        ulong argBytes = 8 + (ulong)Encoding.UTF8.GetByteCount(file.GuestPath) + 1
            + (ulong)envp.Sum(e => Encoding.UTF8.GetByteCount(e) + 1) + (ulong)argv.Sum(a => Encoding.UTF8.GetByteCount(a) + 1);
        if (argBytes > StackRlimit / 4) throw new ExecFormatException($"{file.GuestPath}: arguments and environment take {argBytes} bytes; at most {StackRlimit / 4} (a quarter of the stack limit) are allowed", -Errno.E2BIG);
        ulong p = StackTop - 8;
        // setup_arg_pages: the pages the strings occupy plus stack_expand (128 KiB) below them.
        ulong stackLow = ((StackTop - argBytes) & ~PageMask) - (128UL << 10);
        var stack = NewVma(mm, stackLow, StackTop, VmaFlags.Read | VmaFlags.Write | VmaFlags.MayRead | VmaFlags.MayWrite | VmaFlags.MayExec | VmaFlags.GrowsDown | VmaFlags.Account, name: "[stack]");
        mm.Committed += (long)(stack.Size >> 12);
        ulong PushString(string s)
        {
            byte[] b = Encoding.UTF8.GetBytes(s + "\0");
            p -= (ulong)b.Length;
            if (!CopyToUser(probe, p, b)) throw new ExecFormatException("cannot write the initial stack", -Errno.EFAULT);
            return p;
        }
        ulong execfn = PushString(file.GuestPath);
        var envPtrs = new ulong[envp.Count];
        for (int i = envp.Count - 1; i >= 0; i--) envPtrs[i] = PushString(envp[i]);
        var argPtrs = new ulong[argv.Count];
        for (int i = argv.Count - 1; i >= 0; i--) argPtrs[i] = PushString(argv[i]);
        p &= ~0xFUL; // arch_align_stack without randomisation
        ulong platform = PushString("x86_64");
        p -= 16;
        ulong random = p;
        // AT_RANDOM: 16 bytes, deterministic here (derived from the pid) so that every run is the same.
        var rnd = new byte[16];
        for (int i = 0; i < 16; i++) rnd[i] = (byte)(0x5A ^ (i * 37) ^ probe.Pid);
        if (!CopyToUser(probe, random, rnd)) throw new ExecFormatException("cannot write the initial stack", -Errno.EFAULT);
        var aux = new List<ulong>
        {
            16, HwCap, 6, 4096, 17, 100, 3, phdrAddr, 4, 56, 5, (ulong)plan.PhNum, 7, 0, 8, 0, 9, plan.Entry,
            11, 0, 12, 0, 13, 0, 14, 0, 23, 0, 25, random, 26, 0, 31, execfn, 15, platform, 0, 0,
        };
        int items = argv.Count + 1 + envp.Count + 1 + 1;
        ulong sp = (p - (ulong)aux.Count * 8 - (ulong)items * 8) & ~0xFUL;
        var words = new List<ulong> { (ulong)argv.Count };
        words.AddRange(argPtrs); words.Add(0);
        words.AddRange(envPtrs); words.Add(0);
        words.AddRange(aux);
        var bytes = new byte[words.Count * 8];
        for (int i = 0; i < words.Count; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 8), words[i]);
        if (!CopyToUser(probe, sp, bytes)) throw new ExecFormatException("cannot write the initial stack", -Errno.EFAULT);
        mm.StartStack = sp;
        var regs = new PtRegs { Rip = plan.Entry, Rflags = 0x202 };
        regs.Rsp = sp;
        return regs;
    }
}
