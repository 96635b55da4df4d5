using System.Globalization;
using System.Text.RegularExpressions;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>
/// System calls, stack growth, protection faults and /proc/PID/maps with musl programs, each compared with the same
/// binary on the host's Linux kernel: its output, its exit status, the page-fault error code the host hands a
/// SIGSEGV handler, and its /proc/self/maps with address-space randomisation off (setarch -R).
/// </summary>
public sealed partial class SyscallProgramTests
{
    private const string Greeting = "/data/greeting.txt";

    [Test]
    public void Vectored_io_seek_stat_uname_clocks_ids_and_brk_answer_as_on_the_host()
    {
        string prog = TestPrograms.Musl("syscalls");
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, _) = h.Run(prog, Greeting);
        var (code, native) = TestPrograms.RunNative(prog, TestPrograms.HostPath(Greeting));
        Assert.That(code, Is.Zero, native);
        Assert.That(r.ExitStatus, Is.Zero, h.Out);
        Assert.That(h.Out, Is.EqualTo(native));
        // The facts the output stands for, stated here as well so that a host and model that agreed on a wrong
        // answer would still fail.
        Assert.That(h.Out, Does.Contain("writev: three parts\nwritev returned 20\n"));
        Assert.That(h.Out, Does.Contain("readv returned 45: [The quick ] [brown fox jumps over the lazy dog.\n"));
        Assert.That(h.Out, Does.Contain("lseek end 45, set 4, read 5 [quick], cur 9\nlseek to -1: -1 EINVAL\nlseek on a pipe or terminal: -1 ESPIPE\n"));
        Assert.That(h.Out, Does.Contain("fstat: 0, size 45, regular file yes"));
        Assert.That(h.Out, Does.Contain("uname: 0 Linux x86_64\nmonotonic clock increases: yes\n"));
        Assert.That(h.Out, Does.Contain("brk: page aligned yes, grew by 100000, shrank to +4096, below start refused: yes\n"));
        Assert.That(h.Baseline(), Is.EqualTo(before), "parent and child returned everything");
    }

    [Test]
    public void Unimplemented_system_call_returns_ENOSYS_each_time_and_is_reported_once()
    {
        string prog = TestPrograms.Musl("enosys");
        var h = new ProcessHarness();
        var (r, t) = h.Run(prog);
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Out, Is.EqualTo("io_uring_setup: -1 ENOSYS\nio_uring_setup: -1 ENOSYS\n"));
        Assert.That(h.Kernel.Log.Lines.Where(l => l.Contains("io_uring_setup", StringComparison.Ordinal)),
            Is.EqualTo(new[] { $"enosys[{t.Pid}]: system call io_uring_setup (425) is not implemented by the model; returning -ENOSYS" }));
        Assert.That(Regex.Matches(h.Trace.ToString(), @"io_uring_setup\(.*\) = -1 ENOSYS"), Has.Count.EqualTo(2), "both calls are traced");
    }

    [Test]
    public void Stack_grows_on_demand_for_200_KiB_of_recursion()
    {
        string prog = TestPrograms.Musl("stack_depth");
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, t) = h.Run(prog, "200");
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Out, Is.EqualTo(TestPrograms.RunNative(prog, "200").Stdout));
        Assert.That(t.MinorFaults, Is.GreaterThanOrEqualTo(200 / 4), "one demand-zero fault per stack page written at least");
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }

    [Test]
    public void Stack_beyond_RLIMIT_STACK_kills_with_SIGSEGV_as_on_the_host()
    {
        string prog = TestPrograms.Musl("stack_depth");
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, _) = h.Run(prog, "9000");
        Assert.That(r.Signal, Is.EqualTo(Signals.SIGSEGV));
        var (code, native) = TestPrograms.RunNative(prog, "9000");
        Assert.That(code, Is.EqualTo(128 + 11), "the host's 8 MiB stack limit (ulimit -s 8192) kills it too");
        Assert.That(h.Out, Is.EqualTo(native));
        // The fault lies just below the 8 MiB the stack may reach: STACK_TOP - 8 MiB.
        string line = h.Kernel.Log.Lines.Single(l => l.Contains("segfault", StringComparison.Ordinal));
        ulong addr = ulong.Parse(Regex.Match(line, "segfault at ([0-9a-f]+)").Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        const ulong Limit = HwMemModel.Kernel.Kernel.StackTop - HwMemModel.Kernel.Kernel.StackRlimit;
        Assert.That(addr, Is.LessThan(Limit).And.GreaterThan(Limit - 16 * 1024), "within one recursion frame below the limit");
        Assert.That(line, Does.Contain(" error 6 "), "a user write to a page no VMA covers");
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }

    [TestCase("none", "reading a PROT_NONE page\n")]
    [TestCase("readonly", "read 0, writing a read-only page\n")]
    [TestCase("untouched", "writing a read-only page\n")]
    public void Access_against_protection_gives_SIGSEGV_with_the_host_kernels_error_code(string mode, string output)
    {
        string prog = TestPrograms.Musl("prot_fault");
        var h = new ProcessHarness();
        var (r, t) = h.Run(prog, mode);
        Assert.That(r.ExitStatus, Is.EqualTo(128 + 11));
        Assert.That(h.Out, Is.EqualTo(output));
        var m = Regex.Match(h.Kernel.Log.Lines.Single(l => l.Contains("segfault", StringComparison.Ordinal)), @"^prot_fault\[(\d+)\]: segfault at ([0-9a-f]+) ip [0-9a-f]{16} sp [0-9a-f]{16} error ([0-9a-f]+) in prot_fault\[");
        Assert.That(m.Success, Is.True, string.Join('\n', h.Kernel.Log.Lines));
        Assert.That(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), Is.EqualTo(t.Pid));
        // The host kernel shows a SIGSEGV handler the same error code in uc_mcontext (REG_ERR).
        var (code, native) = TestPrograms.RunNative(prog, mode, "handler");
        Assert.That(code, Is.Zero);
        Assert.That(native, Is.EqualTo($"{output}SIGSEGV SEGV_ACCERR error {m.Groups[3].Value}\n"));
        // And the code says what happened: bit 2 user, bit 1 write, bit 0 a present page.
        string expected = mode switch { "none" => "4", "readonly" => "7", _ => "6" };
        Assert.That(m.Groups[3].Value, Is.EqualTo(expected));
    }

    [Test]
    public void Proc_maps_after_a_known_sequence_matches_the_host_without_randomisation()
    {
        string prog = TestPrograms.Musl("maps_layout");
        var h = new ProcessHarness();
        var t = h.Machine.Start(prog, [prog, Greeting]);
        var r = h.Machine.Run(t, maxInstructions: 3_000_000);
        Assert.That(r.Report, Does.StartWith("instruction budget"), "the program spins once its mappings are made");
        Assert.That(h.Out, Is.EqualTo("no /proc: spinning\n"));
        string model = h.Kernel.FormatMaps(t);
        TestContext.Out.WriteLine(model);
        string host = NativeMapsWithoutAslr(prog);
        TestContext.Out.WriteLine(host);

        var m = model.TrimEnd('\n').Split('\n').Select(Parse).ToList();
        // The host's extra special mappings (the vDSO's [vvar], [vvar_vclock], [vdso]; [vsyscall]) are not modelled.
        var n = host.TrimEnd('\n').Split('\n').Select(Parse).Where(x => x.Name is not ("[vvar]" or "[vvar_vclock]" or "[vdso]" or "[vsyscall]")).ToList();
        Assert.That(m.Select(x => x.Shape), Is.EqualTo(n.Select(x => x.Shape)), "the same mappings in the same order: permissions, sizes, offsets and names");
        // Below mmap_base the layout is the same to the byte: the program's segments, the heap right after them,
        // and the stack ending at STACK_TOP.
        var image = m.Where(x => x.Start < 0x7000_0000_0000UL).ToList();
        Assert.That(image.Select(x => (x.Start, x.End)), Is.EqualTo(n.Where(x => x.Start < 0x7000_0000_0000UL).Select(x => (x.Start, x.End))));
        Assert.That(m[^1].End, Is.EqualTo(n[^1].End).And.EqualTo(0x7fff_ffff_f000UL), "[stack] ends at STACK_TOP");
        // The model's mmap area starts at mmap_base = TASK_SIZE - 128 MiB and grows down; the host puts its vDSO
        // there first, so its mappings sit lower by the vDSO's size.
        var mmaps = m.Where(x => x.Start >= 0x7000_0000_0000UL && x.Name != "[stack]").ToList();
        Assert.That(mmaps.Max(x => x.End), Is.EqualTo(0x7fff_f7ff_f000UL));
    }

    private sealed record MapsLine(ulong Start, ulong End, string Perms, ulong Offset, string Name)
    {
        public string Shape => $"{Perms} {End - Start:x} {Offset:x} {Name}";
    }

    private static MapsLine Parse(string line)
    {
        var m = MapsRegex().Match(line);
        Assert.That(m.Success, Is.True, line);
        string name = m.Groups["name"].Value;
        // Files: the host shows host paths, the model guest paths; compare the file names.
        if (name.StartsWith('/') && name != "/dev/zero (deleted)") name = Path.GetFileName(name);
        return new(ulong.Parse(m.Groups["s"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), ulong.Parse(m.Groups["e"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            m.Groups["p"].Value, ulong.Parse(m.Groups["o"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture), name);
    }

    [GeneratedRegex(@"^(?<s>[0-9a-f]+)-(?<e>[0-9a-f]+) (?<p>[-rwxsp]{4}) (?<o>[0-9a-f]+) [0-9a-f]+:[0-9a-f]+ \d+ *(?<name>.*)$")]
    private static partial Regex MapsRegex();

    private static string NativeMapsWithoutAslr(string prog)
    {
        if (!File.Exists("/usr/bin/setarch")) Assert.Ignore("setarch (util-linux) is needed to run the host program without ASLR.");
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/setarch") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-R", TestPrograms.HostPath(prog), TestPrograms.HostPath(Greeting) }) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) Assert.Ignore($"setarch -R failed here (personality may be refused in this container): {err}");
        return output;
    }
}
