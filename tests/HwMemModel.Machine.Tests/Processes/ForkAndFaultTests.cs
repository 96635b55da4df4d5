using HwMemModel.Kernel;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>Fork, copy-on-write and page-fault accounting with raw-system-call programs (no C library).</summary>
public sealed class ForkAndFaultTests
{
    [Test]
    public void Fork_shares_pages_and_copies_only_the_page_the_child_writes()
    {
        string prog = TestPrograms.Raw("raw_fork");
        var h = new ProcessHarness();
        var before = h.Baseline();
        var exited = new List<HwMemModel.Kernel.Process.TaskStruct>();
        h.Kernel.TaskExited += exited.Add;
        var t = h.Machine.Start(prog, [prog]);
        var r = h.Machine.Run(t);
        foreach (var line in h.Trace.ToString().Split('\n')) TestContext.Out.WriteLine(line);
        Assert.That(r.Report, Is.Empty);
        Assert.That(r.ExitStatus, Is.Zero, "the parent's three data pages must still read 'P' after the child wrote its copy");
        Assert.That(h.Out, Is.EqualTo("child wrote\n"));
        Assert.That(exited.Select(x => x.Pid), Is.EqualTo(new[] { t.Pid + 1, t.Pid }), "the child exits first, then the parent");
        Assert.That(exited[0].CowFaults, Is.GreaterThanOrEqualTo(1), "the child's write to the shared data page copies it");
        var after = h.Baseline();
        Assert.That(after.FreePages, Is.EqualTo(before.FreePages), "every page returned after both processes exited");
        Assert.That(after.SlabInfo, Is.EqualTo(before.SlabInfo), "every vm_area_struct and mm_struct freed");
    }

    [Test]
    public void Raw_program_faults_once_per_page_it_writes()
    {
        string prog = TestPrograms.Raw("raw_hello");
        var h = new ProcessHarness();
        var (r, t) = h.Run(prog);
        Assert.That(r.ExitStatus, Is.EqualTo(48));
        // Faults: the text page (fetch), .rodata (the message, read by write(2) in the kernel), the bss page written,
        // and three heap pages written — each a minor fault; the text and rodata are file pages (major: read from the file).
        Assert.That(t.MinorFaults, Is.EqualTo(4), "bss page + three heap pages");
        Assert.That(t.CowFaults, Is.Zero);
    }
}
