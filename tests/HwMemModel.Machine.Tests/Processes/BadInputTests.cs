using System.Buffers.Binary;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>
/// Files that are not static x86-64 programs are refused with a clear message and the errno Linux's execve gives
/// (checked against the host kernel where it agrees), and a refused start leaves nothing allocated: the free page
/// count and /proc/slabinfo are what they were before.
/// </summary>
public sealed class BadInputTests
{
    /// <summary>A bad input: its guest path, the words the message must contain, and execve's errno.</summary>
    public sealed record BadInput(string Name, string GuestPath, string Message, int Errno)
    {
        public override string ToString() => Name;
    }

    private static byte[] MuslHello() => File.ReadAllBytes(TestPrograms.HostPath(TestPrograms.Musl("hello")));

    /// <summary>Builds the bad inputs in the sandbox (each test run writes its own copies).</summary>
    public static BadInput Make(string name)
    {
        string dir = "/bad/";
        switch (name)
        {
            case "text":
                return new(name, TestPrograms.Put(dir + "notes.txt", "just some text\n"u8.ToArray()), "not an ELF file (no \\x7fELF magic)", Errno.ENOEXEC);
            case "script":
                return new(name, TestPrograms.Put(dir + "script.sh", "#!/bin/sh\necho hi\n"u8.ToArray()), "a script (#!), not an ELF file", Errno.ENOEXEC);
            case "aarch64":
                {
                    var b = MuslHello();
                    BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), 183); // e_machine = EM_AARCH64
                    return new(name, TestPrograms.Put(dir + "aarch64", b), "an ELF file for another machine (e_machine 183", Errno.ENOEXEC);
                }
            case "class32":
                {
                    var b = MuslHello();
                    b[4] = 1; // EI_CLASS = ELFCLASS32
                    return new(name, TestPrograms.Put(dir + "class32", b), "a 32-bit ELF file (ELFCLASS32)", Errno.ENOEXEC);
                }
            case "dynamic":
                {
                    var b = File.ReadAllBytes(TestPrograms.HostPath(TestPrograms.Dynamic("hello")));
                    return new(name, TestPrograms.Put(dir + "dynamic", b), "a dynamically linked program (it asks for the interpreter /lib64/ld-linux-x86-64.so.2); only static programs run", Errno.ENOEXEC);
                }
            case "truncated-header":
                return new(name, TestPrograms.Put(dir + "trunc40", MuslHello()[..40]), "a truncated ELF file (40 bytes, shorter than the 64-byte ELF header)", Errno.ENOEXEC);
            case "truncated-segment":
                return new(name, TestPrograms.Put(dir + "trunc4k", MuslHello()[..4096]), "a truncated ELF file (4096 bytes; the PT_LOAD segment at 0x", Errno.ENOEXEC);
            case "above-task-size":
                {
                    // Every PT_LOAD (and the entry point) moved up by 2^47: the segments lie above TASK_SIZE.
                    var b = MuslHello();
                    const ulong Shift = 0x8000_0000_0000UL;
                    ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(32));
                    int phnum = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(56));
                    for (int i = 0; i < phnum; i++)
                    {
                        var ph = b.AsSpan((int)phoff + i * 56);
                        if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != 1) continue;
                        BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]) + Shift);
                        BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], BinaryPrimitives.ReadUInt64LittleEndian(ph[24..]) + Shift);
                    }
                    BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(24)) + Shift);
                    return new(name, TestPrograms.Put(dir + "high", b), "lies outside user space [0x10000, 0x7ffffffff000)", Errno.ENOMEM);
                }
            case "directory":
                Directory.CreateDirectory(TestPrograms.HostPath(dir + "subdir"));
                return new(name, dir + "subdir", "is a directory", Errno.EACCES);
            case "missing":
                return new(name, dir + "missing", "no such file in the sandbox", Errno.ENOENT);
            default:
                throw new ArgumentException(name, nameof(name));
        }
    }

    /// <summary>The names of the bad inputs.</summary>
    public static readonly string[] Names = ["text", "script", "aarch64", "class32", "dynamic", "truncated-header", "truncated-segment", "above-task-size", "directory", "missing"];

    [TestCaseSource(nameof(Names))]
    public void Start_is_refused_with_a_clear_message_and_leaks_nothing(string name)
    {
        var bad = Make(name);
        var h = new ProcessHarness();
        var before = h.Baseline();
        var e = Assert.Throws<ExecFormatException>(() => h.Machine.Start(bad.GuestPath, [bad.GuestPath]))!;
        TestContext.Out.WriteLine(e.Message);
        Assert.That(e.Message, Does.StartWith(bad.GuestPath + ": "));
        Assert.That(e.Message, Does.Contain(bad.Message));
        Assert.That(e.Errno, Is.EqualTo(-bad.Errno), Errno.Name(-e.Errno));
        Assert.That(e.Message, Does.Not.Contain('\n'), "one line");
        Assert.That(h.Kernel.CurrentTask, Is.Null, "no process was created");
        var after = h.Baseline();
        Assert.That(after.FreePages, Is.EqualTo(before.FreePages), "no page kept: page tables, the stack and the segments' pages are returned");
        Assert.That(after.SlabInfo, Is.EqualTo(before.SlabInfo), "no mm_struct or vm_area_struct kept");
        // A good program still runs on the same machine afterwards, from the same pid.
        string hello = TestPrograms.Musl("hello");
        var (r, t) = h.Run(hello);
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(t.Pid, Is.EqualTo(2), "the refused start did not use up a pid");
    }

    [Test]
    public void Execve_from_a_program_returns_the_error_to_the_caller_as_the_host_kernel_does()
    {
        string prog = TestPrograms.Musl("execve_errors");
        // Linux refuses a file without an execute bit with EACCES before looking at its contents.
        string plain = TestPrograms.Put("/bad/plain.txt", "not executable\n"u8.ToArray(), executable: false);
        string[] names = ["text", "aarch64", "truncated-header", "directory", "missing"];
        var inputs = names.Select(Make).ToList();
        string[] guestArgs = [.. inputs.Select(i => i.GuestPath), plain];
        string[] hostArgs = [.. guestArgs.Select(TestPrograms.HostPath)];
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, _) = h.Run(prog, guestArgs);
        Assert.That(r.ExitStatus, Is.Zero);
        string expected = string.Concat(inputs.Select((x, i) => $"argument {i + 1}: execve = -1 {Errno.Name(x.Errno)}\n"))
            + $"argument {inputs.Count + 1}: execve = -1 EACCES\nstill running\n";
        Assert.That(h.Out, Is.EqualTo(expected));
        var (code, native) = TestPrograms.RunNative(prog, hostArgs);
        Assert.That(code, Is.Zero);
        Assert.That(native, Is.EqualTo(expected), "the host kernel gives the same errno for each file");
        Assert.That(h.Baseline(), Is.EqualTo(before), "the failed execve calls left nothing allocated");
    }

    [TestCase("truncated-segment", "ENOEXEC")]
    [TestCase("above-task-size", "ENOMEM")]
    public void Execve_of_a_program_that_fails_while_loading_returns_the_error_where_the_host_kills_the_caller(string name, string errno)
    {
        // Linux finds these faults only after execve's point of no return (begin_new_exec: the old image is gone), so
        // the host kernel kills the caller with SIGSEGV. The model checks every segment before it drops anything, so
        // the caller gets the errno and keeps running; the test pins both answers.
        string prog = TestPrograms.Musl("execve_errors");
        var bad = Make(name);
        var (code, native) = TestPrograms.RunNative(prog, TestPrograms.HostPath(bad.GuestPath));
        Assert.That((code, native), Is.EqualTo((128 + 11, "")));
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, _) = h.Run(prog, bad.GuestPath);
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Out, Is.EqualTo($"argument 1: execve = -1 {errno}\nstill running\n"));
        Assert.That(h.Kernel.Log.Lines, Has.Some.Contains("execve: " + bad.GuestPath + ": "), "the reason is logged once");
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }

    [Test]
    public void A_32_bit_class_byte_is_refused_although_the_host_kernel_checks_only_e_machine()
    {
        // Linux's binfmt_elf checks e_machine (EM_X86_64) and not EI_CLASS, so the host runs this patched copy of a
        // 64-bit program; the model refuses it with a message naming the class. The test pins that difference.
        var bad = Make("class32");
        var (code, output) = TestPrograms.RunNative(bad.GuestPath);
        Assert.That((code, output), Is.EqualTo((0, $"hello, world\nargc=1 argv[0]={TestPrograms.HostPath(bad.GuestPath)}\n")));
        var h = new ProcessHarness();
        Assert.That(() => h.Machine.Start(bad.GuestPath, [bad.GuestPath]), Throws.TypeOf<ExecFormatException>().With.Message.Contains("ELFCLASS32"));
    }

    [Test]
    public void Mappings_beyond_the_address_space_or_larger_than_RAM_fail_with_ENOMEM_as_on_the_host()
    {
        string prog = TestPrograms.Musl("mem_limits");
        const string Expected = """
            mmap of 128 TiB (the whole user half): ENOMEM
            MAP_FIXED across TASK_SIZE: ENOMEM
            hint above TASK_SIZE (ignored): ok
              placed below TASK_SIZE: yes
            private writable mapping larger than RAM: ENOMEM
            shared anonymous mapping larger than RAM: ENOMEM
            read-only mapping larger than RAM (not accounted): ok
            MAP_NORESERVE mapping larger than RAM: ok
            brk beyond RAM: unchanged
            brk beyond TASK_SIZE: unchanged
            still running

            """;
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, _) = h.Run(prog, (512UL << 20).ToString(System.Globalization.CultureInfo.InvariantCulture)); // twice the model's RAM
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Out, Is.EqualTo(Expected.ReplaceLineEndings("\n")));
        Assert.That(h.Baseline(), Is.EqualTo(before));
        // The host, with far more RAM, answers the same for a size beyond its RAM: 1 TiB.
        var (code, native) = TestPrograms.RunNative(prog, (1UL << 40).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(code, Is.Zero);
        Assert.That(native, Is.EqualTo(Expected.ReplaceLineEndings("\n")));
    }

    [Test]
    public void Touching_more_than_RAM_kills_the_process_and_returns_every_page()
    {
        string prog = TestPrograms.Musl("mem_limits");
        var h = new ProcessHarness(ram: 64UL << 20);
        var before = h.Baseline();
        var (r, t) = h.Run(prog, (128UL << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), "touch");
        Assert.That(r.Signal, Is.EqualTo(Signals.SIGKILL), "the OOM killer's signal");
        Assert.That(r.ExitStatus, Is.EqualTo(128 + 9));
        Assert.That(h.Out, Does.EndWith("touching every page\n"));
        Assert.That(h.Kernel.Log.Lines, Has.Some.EqualTo($"Out of memory: Killed process {t.Pid} (mem_limits)"));
        var after = h.Baseline();
        Assert.That(after.FreePages, Is.EqualTo(before.FreePages), "every page the process had returns at the kill");
        Assert.That(after.SlabInfo, Is.EqualTo(before.SlabInfo));
    }
}
