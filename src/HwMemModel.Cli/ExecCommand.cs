using System.CommandLine;
using System.Text;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Machine.Processes;

namespace HwMemModel.Cli;

/// <summary>
/// <c>hwmem exec PROGRAM [ARGS...]</c>: runs a static x86-64 Linux program as a user process on the kernel model;
/// its standard output and error are the program's and the exit status is the program's (128 + N when signal N
/// killed it, as a shell reports it).
/// </summary>
public static class ExecCommand
{
    /// <summary>Exit status when the program cannot be executed (not a static x86-64 ELF), as a shell's 126.</summary>
    public const int ExitCannotExecute = 126;
    /// <summary>Exit status when the program is not found, as a shell's 127.</summary>
    public const int ExitNotFound = 127;

    /// <summary>Adds the command to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr, Stream? rawStdout)
    {
        var program = new Argument<string>("PROGRAM") { Description = "The program: a host path (inside --root when given), or with --root a path inside it." };
        var args = new Argument<string[]>("ARGS") { Description = "Arguments for the program (after -- when they start with a dash).", Arity = ArgumentArity.ZeroOrMore };
        var rootOpt = new Option<string?>("--root") { Description = "Host directory the program sees as / (read-only; open, mmap and execve reach only files below it). Default: the program's directory." };
        var traceFaults = new Option<bool>("--trace-faults") { Description = "Print each page fault on standard error with the walk that explains it, level by level." };
        var traceSyscalls = new Option<bool>("--trace-syscalls") { Description = "Print each system call in strace's style on standard error." };
        var maps = new Option<bool>("--maps") { Description = "As each process exits, print its /proc/PID/maps and the memory and fault lines of /proc/PID/status on standard error." };
        var memory = new Option<string>("--memory", "-m") { Description = "RAM size: bytes or a number with K, M or G (64M to 3G).", DefaultValueFactory = _ => "256M" };
        var max = new Option<long?>("--max-instructions") { Description = "Stop after this many guest instructions (exit status 4) with a report." };
        var cmd = new Command("exec", "Run a statically linked x86-64 Linux program (for example built with musl-gcc -static) as a user process on the kernel model: CPL 3 on the CPU model, its own address space, brk/mmap, demand paging, copy-on-write after fork. Its stdout and stderr are the program's; the exit status is the program's (128+N when killed by signal N, 126 when it cannot be executed, 127 when it is not found, 4 when --max-instructions ran out). Kernel messages (a segfault line) go to standard error.");
        cmd.Arguments.Add(program);
        cmd.Arguments.Add(args);
        cmd.Options.Add(rootOpt);
        cmd.Options.Add(traceFaults);
        cmd.Options.Add(traceSyscalls);
        cmd.Options.Add(maps);
        cmd.Options.Add(memory);
        cmd.Options.Add(max);
        cmd.SetAction(r => Execute(r.GetValue(program)!, r.GetValue(args) ?? [], r.GetValue(rootOpt), r.GetValue(traceFaults), r.GetValue(traceSyscalls), r.GetValue(maps),
            r.GetValue(memory)!, r.GetValue(max), stdout, stderr, rawStdout));
        root.Subcommands.Add(cmd);
    }

    private static int Execute(string program, string[] args, string? root, bool traceFaults, bool traceSyscalls, bool showMaps, string memory, long? max,
        TextWriter stdout, TextWriter stderr, Stream? rawStdout)
    {
        if (!RunCommand.TryParseSize(memory, out ulong ram) || ram < (64UL << 20) || ram > (3UL << 30) || (ram & 0xFFFFF) != 0)
        {
            stderr.WriteLine($"hwmem exec: --memory {memory}: give 64M to 3G in whole MiB.");
            return HwmemCommand.ExitUsage;
        }
        if (max is < 1)
        {
            stderr.WriteLine($"hwmem exec: --max-instructions {max}: give a positive number.");
            return HwmemCommand.ExitUsage;
        }
        string guestPath;
        if (root is not null && !Directory.Exists(root))
        {
            stderr.WriteLine($"hwmem exec: --root {root}: not a directory.");
            return HwmemCommand.ExitUsage;
        }
        if (File.Exists(program))
        {
            string full = Path.GetFullPath(program);
            string sandbox = Path.GetFullPath(root ?? Path.GetDirectoryName(full)!).TrimEnd(Path.DirectorySeparatorChar);
            if (!full.StartsWith(sandbox + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                stderr.WriteLine($"hwmem exec: {program} is outside --root {root}; the program must lie inside the directory the process sees as /.");
                return HwmemCommand.ExitUsage;
            }
            root = sandbox;
            guestPath = "/" + Path.GetRelativePath(sandbox, full).Replace(Path.DirectorySeparatorChar, '/');
        }
        else if (root is not null && program.StartsWith('/') && File.Exists(Path.Combine(root, program.TrimStart('/'))))
        {
            guestPath = program;
        }
        else if (Directory.Exists(program))
        {
            stderr.WriteLine($"hwmem exec: {program}: is a directory, not a program.");
            return ExitCannotExecute;
        }
        else
        {
            stderr.WriteLine($"hwmem exec: {program}: no such file{(root is null ? "" : $" (neither on the host nor inside --root {root})")}.");
            return ExitNotFound;
        }

        var m = new ProcessMachine(new ProcessMachineOptions { Root = root, RamSize = ram, MaxInstructions = max ?? 10_000_000_000 });
        var outStream = rawStdout ?? new TextWriterStream(stdout, Encoding.UTF8);
        var errStream = new TextWriterStream(stderr, Encoding.UTF8);
        m.Kernel.Streams = new ProcessStreams { Stdout = outStream, Stderr = errStream };
        if (traceSyscalls) m.Kernel.SyscallTrace = stderr;
        if (traceFaults) m.FaultTrace = stderr;
        if (showMaps)
            m.Kernel.TaskExiting += t =>
            {
                stderr.WriteLine($"/proc/{t.Pid}/maps at exit:");
                stderr.Write(m.Kernel.FormatMaps(t));
                stderr.WriteLine($"/proc/{t.Pid}/status at exit:");
                stderr.Write(m.Kernel.FormatStatus(t));
            };
        // Kernel messages (a segfault line, an unimplemented system call) appear on standard error as they are logged.
        m.Kernel.Log.LineLogged += line => { if (!line.StartsWith("mm: ", StringComparison.Ordinal)) stderr.WriteLine(line); };
        TaskStruct task;
        try
        {
            task = m.Start(guestPath, [guestPath, .. args]);
        }
        catch (ExecFormatException e)
        {
            stderr.WriteLine($"hwmem exec: {e.Message}");
            return e.Errno == -Errno.ENOENT ? ExitNotFound : ExitCannotExecute;
        }
        var result = m.Run(task);
        outStream.Flush();
        if (result.Report.Length > 0)
        {
            stderr.WriteLine($"hwmem exec: stopped: {result.Report}");
            return result.Report.StartsWith("instruction budget", StringComparison.Ordinal) ? RunCommand.ExitInstructionLimit : RunCommand.ExitNotModelled;
        }
        return result.ExitStatus;
    }
}
