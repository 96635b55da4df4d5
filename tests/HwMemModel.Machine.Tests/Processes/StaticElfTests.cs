using System.Diagnostics;
using HwMemModel.Kernel.Process;
using HwMemModel.Machine.Processes;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>The assembled benchmark programs do what they claim (the benchmarks count on it).</summary>
public sealed class StaticElfTests
{
    private static string Put(string name, byte[] image)
    {
        string dir = Path.Combine(TestPrograms.Root, "asm");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, name), image);
        return "/asm/" + name;
    }

    [Test]
    public void Touch_pages_program_takes_one_demand_zero_fault_per_page()
    {
        string prog = Put("touch500", StaticElf.TouchPages(500));
        var h = new ProcessHarness();
        var before = h.Baseline();
        var sw = Stopwatch.StartNew();
        var (r, t) = h.Run(prog);
        TestContext.Out.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms for 500 faults (not a benchmark)");
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(t.MinorFaults, Is.EqualTo(500));
        Assert.That(t.MajorFaults, Is.EqualTo(1), "the text page, read from the file");
        var after = h.Baseline();
        Assert.That(after, Is.EqualTo(before));
    }

    [Test]
    public void Fork_exit_program_forks_the_given_number_of_children_and_leaks_nothing()
    {
        string prog = Put("fork3", StaticElf.ForkExit(1, 3));
        var h = new ProcessHarness();
        var before = h.Baseline();
        var exited = new List<TaskStruct>();
        h.Kernel.TaskExited += exited.Add;
        var sw = Stopwatch.StartNew();
        var (r, t) = h.Run(prog);
        TestContext.Out.WriteLine($"{sw.Elapsed.TotalMilliseconds:F1} ms (not a benchmark)");
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(exited.Select(x => x.Pid), Is.EqualTo(new[] { t.Pid + 1, t.Pid + 2, t.Pid + 3, t.Pid }));
        Assert.That(t.MinorFaults, Is.EqualTo(256), "the 1 MiB written once; the children write nothing, so no copy-on-write");
        Assert.That(t.CowFaults, Is.Zero);
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }
}
