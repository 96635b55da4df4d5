using System.Buffers.Binary;
using System.Text.RegularExpressions;
using HwMemModel.Machine.Tests.Processes;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

/// <summary>
/// <c>hwmem exec</c>: the program's standard output and error are the command's, its exit status is the command's
/// (128 + N for signal N, as a shell reports it), and the errors a shell would give have a shell's statuses: 126 for
/// a file that cannot be executed, 127 for one that is not there, 2 for a usage error.
/// </summary>
public sealed class ExecCommandTests
{
    private static string Host(string guest) => TestPrograms.HostPath(guest);

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(255)]
    public void Stdout_stderr_and_exit_status_are_the_programs(int status)
    {
        string prog = TestPrograms.Musl("stderr_exit");
        var (code, o, e) = Run("exec", Host(prog), status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(code, Is.EqualTo(status));
        Assert.That(o, Is.EqualTo($"to stdout, exiting with {status}\n"));
        Assert.That(e, Is.EqualTo("to stderr\n"));
    }

    [Test]
    public void Without_root_the_program_directory_is_the_root_and_argv0_the_guest_path()
    {
        string prog = TestPrograms.Musl("hello");
        var (code, o, e) = Run("exec", Host(prog), "--", "-x");
        Assert.That((code, e), Is.EqualTo((0, "")));
        Assert.That(o, Is.EqualTo("hello, world\nargc=2 argv[0]=/hello\n"));
    }

    [Test]
    public void With_root_the_program_may_be_a_guest_path_or_a_host_path_inside_it()
    {
        string prog = TestPrograms.Musl("hello");
        var guest = Run("exec", "--root", TestPrograms.Root, prog);
        var host = Run("exec", "--root", TestPrograms.Root, Host(prog));
        Assert.That(guest, Is.EqualTo((0, $"hello, world\nargc=1 argv[0]={prog}\n", "")));
        Assert.That(host, Is.EqualTo(guest));
    }

    [Test]
    public void Program_outside_root_is_a_usage_error()
    {
        string prog = TestPrograms.Musl("hello");
        string other = Path.Combine(TestPrograms.Root, "data");
        var (code, o, e) = Run("exec", "--root", other, Host(prog));
        Assert.That(code, Is.EqualTo(2));
        Assert.That(o, Is.Empty);
        Assert.That(e, Is.EqualTo($"hwmem exec: {Host(prog)} is outside --root {other}; the program must lie inside the directory the process sees as /.\n"));
    }

    [Test]
    public void Root_that_is_not_a_directory_is_a_usage_error()
    {
        var (code, _, e) = Run("exec", "--root", Host("/data/greeting.txt"), "/hello");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(e, Is.EqualTo($"hwmem exec: --root {Host("/data/greeting.txt")}: not a directory.\n"));
    }

    [TestCase("12K")]
    [TestCase("4G")]
    [TestCase("100M1")]
    [TestCase("65536K1")]
    public void Bad_memory_size_is_a_usage_error(string memory)
    {
        string prog = TestPrograms.Musl("hello");
        var (code, o, e) = Run("exec", "--memory", memory, Host(prog));
        Assert.That((code, o), Is.EqualTo((2, "")));
        Assert.That(e, Is.EqualTo($"hwmem exec: --memory {memory}: give 64M to 3G in whole MiB.\n"));
    }

    [Test]
    public void Unknown_program_is_127()
    {
        string missing = Host("/no/such/program");
        var (code, o, e) = Run("exec", missing);
        Assert.That((code, o), Is.EqualTo((127, "")));
        Assert.That(e, Is.EqualTo($"hwmem exec: {missing}: no such file.\n"));
        var (code2, _, e2) = Run("exec", "--root", TestPrograms.Root, "/no/such/program");
        Assert.That(code2, Is.EqualTo(127));
        Assert.That(e2, Is.EqualTo($"hwmem exec: /no/such/program: no such file (neither on the host nor inside --root {TestPrograms.Root}).\n"));
    }

    [Test]
    public void A_directory_is_126()
    {
        string dir = Host("/data");
        var (code, _, e) = Run("exec", dir);
        Assert.That(code, Is.EqualTo(126));
        Assert.That(e, Is.EqualTo($"hwmem exec: {dir}: is a directory, not a program.\n"));
    }

    [Test]
    public void Null_dereference_is_128_plus_SIGSEGV_with_the_kernel_line_on_stderr()
    {
        string prog = TestPrograms.Musl("null_deref");
        var (code, o, e) = Run("exec", Host(prog));
        Assert.That(code, Is.EqualTo(128 + 11));
        Assert.That(o, Is.EqualTo("about to dereference NULL\n"));
        var lines = e.TrimEnd('\n').Split('\n');
        Assert.That(lines, Has.Length.EqualTo(2), e);
        Assert.That(lines[0], Does.Match(@"^null_deref\[2\]: segfault at 0 ip [0-9a-f]{16} sp [0-9a-f]{16} error 4 in null_deref\[[0-9a-f]+,[0-9a-f]+\+[0-9a-f]+\] likely on CPU 0 \(core 0, socket 0\)$"));
        Assert.That(lines[1], Does.Match(@"^Code:( [0-9a-f]{2}){42} <[0-9a-f]{2}>( [0-9a-f]{2}){21}$"));
    }

    [Test]
    public void Trace_syscalls_prints_strace_style_lines_on_stderr()
    {
        string prog = TestPrograms.Musl("hello");
        var (code, o, e) = Run("exec", "--trace-syscalls", Host(prog));
        Assert.That(code, Is.Zero);
        Assert.That(o, Is.EqualTo("hello, world\nargc=1 argv[0]=/hello\n"), "the trace does not mix into stdout");
        var lines = e.TrimEnd('\n').Split('\n');
        Assert.That(lines, Has.All.Match(@"^\[pid 2\] ([a-z_0-9]+\(.*\) = (-?\d+|0x[0-9a-f]+|-1 E[A-Z]+|\?)|\+\+\+ exited with \d+ \+\+\+)$"), e);
        Assert.That(lines[0], Does.Match(@"^\[pid 2\] arch_prctl\(ARCH_SET_FS, 0x[0-9a-f]+\) = 0$"), "musl's start sets up its thread pointer first");
        Assert.That(lines, Has.Some.Match(@"^\[pid 2\] ioctl\(1, TIOCGWINSZ, 0x[0-9a-f]+\) = -1 ENOTTY$"));
        Assert.That(lines[^2..], Is.EqualTo(new[] { "[pid 2] exit_group(0) = ?", "[pid 2] +++ exited with 0 +++" }), "strace's ending");
    }

    [Test]
    public void Trace_faults_prints_each_fault_with_the_walk()
    {
        string prog = TestPrograms.Musl("hello");
        var (code, _, e) = Run("exec", "--trace-faults", Host(prog));
        Assert.That(code, Is.Zero);
        var lines = e.TrimEnd('\n').Split('\n');
        var faults = lines.Where(l => l.StartsWith("[pid", StringComparison.Ordinal)).ToList();
        Assert.That(faults, Has.Count.GreaterThanOrEqualTo(3));
        Assert.That(faults, Has.All.Match(@"^\[pid 2\] page fault at 0x[0-9a-f]+ ip 0x[0-9a-f]+ error 0x[0-9a-f]+ \((read|write|execute), (not present|protection)\)$"));
        // The first fault is the fetch of the entry point: a user instruction fetch of a page not yet present,
        // explained level by level down to the empty PTE.
        Assert.That(faults[0], Does.Match(@"error 0x14 \(execute, not present\)$"));
        int i = lines.ToList().IndexOf(faults[0]);
        Assert.That(lines[i + 1], Does.Match("^    user-mode instruction fetch at 0x"));
        Assert.That(lines.Skip(i + 1).TakeWhile(l => l.StartsWith("    ", StringComparison.Ordinal)).Select(l => l.Trim().Split(' ')[0]),
            Is.SupersetOf(new[] { "PML4E", "PDPTE", "PDE", "PTE", "verdict:" }));
    }

    [Test]
    public void Instruction_budget_stops_with_status_4()
    {
        string prog = TestPrograms.Musl("maps_layout");
        var (code, o, e) = Run("exec", "--root", TestPrograms.Root, "--max-instructions", "200000", prog, "/data/greeting.txt");
        Assert.That(code, Is.EqualTo(4));
        Assert.That(o, Is.EqualTo("no /proc: spinning\n"));
        Assert.That(e, Does.StartWith("hwmem exec: stopped: instruction budget of 200000 exhausted while maps_layout[2] ran"));
    }

    private static byte[] Hello() => File.ReadAllBytes(Host(TestPrograms.Musl("hello")));

    private static IEnumerable<TestCaseData> BadFiles()
    {
        yield return new TestCaseData("notes.txt", (Func<byte[]>)(() => "just text\n"u8.ToArray()), "not an ELF file (no \\x7fELF magic)").SetName("Text file is 126");
        yield return new TestCaseData("script.sh", (Func<byte[]>)(() => "#!/bin/sh\necho hi\n"u8.ToArray()), "a script (#!), not an ELF file").SetName("Script is 126");
        yield return new TestCaseData("aarch64", (Func<byte[]>)(() => { var b = Hello(); BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), 183); return b; }),
            "an ELF file for another machine (e_machine 183, AArch64), not x86-64 (62, EM_X86_64)").SetName("AArch64 ELF is 126");
        yield return new TestCaseData("class32", (Func<byte[]>)(() => { var b = Hello(); b[4] = 1; return b; }), "a 32-bit ELF file (ELFCLASS32)").SetName("ELFCLASS32 is 126");
        yield return new TestCaseData("trunc40", (Func<byte[]>)(() => Hello()[..40]), "a truncated ELF file (40 bytes, shorter than the 64-byte ELF header)").SetName("Truncated ELF is 126");
        yield return new TestCaseData("dynamic", (Func<byte[]>)(() => File.ReadAllBytes(Host(TestPrograms.Dynamic("hello")))),
            "a dynamically linked program (it asks for the interpreter /lib64/ld-linux-x86-64.so.2); only static programs run").SetName("Dynamically linked program is 126");
    }

    [TestCaseSource(nameof(BadFiles))]
    public void Bad_program_is_126_with_one_line_saying_why(string name, Func<byte[]> bytes, string reason)
    {
        string guest = TestPrograms.Put("/cli-bad/" + name, bytes());
        var (code, o, e) = Run("exec", "--root", TestPrograms.Root, guest);
        Assert.That((code, o), Is.EqualTo((126, "")));
        Assert.That(e, Does.StartWith($"hwmem exec: {guest}: {reason}"));
        Assert.That(e, Does.EndWith(" hwmem runs statically linked x86-64 Linux ELF executables (build with musl-gcc -static)\n"));
        Assert.That(e.Count(c => c == '\n'), Is.EqualTo(1), "one line");
    }

    [Test]
    public void Program_whose_segments_lie_above_TASK_SIZE_is_126()
    {
        var b = Hello();
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(32));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(56));
        for (int i = 0; i < phnum; i++)
        {
            var ph = b.AsSpan((int)phoff + i * 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) == 1)
                BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]) + 0x8000_0000_0000UL);
        }
        string guest = TestPrograms.Put("/cli-bad/high", b);
        var (code, _, e) = Run("exec", "--root", TestPrograms.Root, guest);
        Assert.That(code, Is.EqualTo(126));
        Assert.That(e, Does.Match(@"^hwmem exec: /cli-bad/high: PT_LOAD at 0x8000004[0-9a-f]{5} \(0x[0-9a-f]+ bytes\) lies outside user space \[0x10000, 0x7ffffffff000\)\n$"));
    }
}
