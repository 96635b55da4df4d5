using System.Text.RegularExpressions;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>/proc/PID/maps, smaps and status read from the page tables, in Linux's formats.</summary>
public sealed class ProcViewsTests
{
    private static (ProcessHarness H, TaskStruct T, ulong Area) MapAndTouch()
    {
        string prog = TestPrograms.Raw("raw_hello");
        var h = new ProcessHarness();
        var t = h.Machine.Start(prog, [prog]);
        ulong area = (ulong)h.Kernel.DoMmap(t, 0, 4 * 4096, Mman.ProtRead | Mman.ProtWrite, Mman.MapPrivate | Mman.MapAnonymous, null, 0);
        for (int i = 0; i < 3; i++) h.Kernel.HandleUserFault(t, area + (ulong)i * 4096, PageFaultErrorCode.Write | PageFaultErrorCode.User);
        h.Kernel.HandleUserFault(t, area + 3 * 4096, PageFaultErrorCode.User); // a read: the zero page
        return (h, t, area);
    }

    private static string Block(string smaps, ulong start) =>
        string.Join('\n', smaps.Split('\n').SkipWhile(l => !l.StartsWith($"{start:x8}-", StringComparison.Ordinal)).Take(26));

    [Test]
    public void Maps_lists_the_program_segments_heap_anonymous_mapping_and_stack_in_Linux_format()
    {
        var (h, t, area) = MapAndTouch();
        string maps = h.Kernel.FormatMaps(t);
        TestContext.Out.WriteLine(maps);
        var lines = maps.TrimEnd('\n').Split('\n');
        Assert.That(lines[0], Does.Match(@"^00400000-00401000 r--p 00000000 00:20 \d+ +/bin/[0-9A-F]+/raw_hello$"));
        Assert.That(lines[0].IndexOf("/bin/", StringComparison.Ordinal), Is.EqualTo(73), "names start at column 74, as seq_pad puts them");
        Assert.That(lines, Has.Some.EqualTo($"{area:x8}-{area + 0x4000:x8} rw-p 00000000 00:00 0 "));
        Assert.That(lines[^1], Does.Match(@"^7ffffffd[0-9a-f]{4}-7ffffffff000 rw-p 00000000 00:00 0 +\[stack\]$"));
    }

    [Test]
    public void Smaps_counts_written_pages_not_the_zero_page_and_halves_pss_after_fork()
    {
        var (h, t, area) = MapAndTouch();
        string before = Block(h.Kernel.FormatSmaps(t), area);
        TestContext.Out.WriteLine(before);
        Assert.That(before, Does.Contain("\nSize:                 16 kB\n"));
        Assert.That(before, Does.Contain("\nRss:                  12 kB\n"), "three written pages; the zero page is not counted (vm_normal_page)");
        Assert.That(before, Does.Contain("\nPrivate_Dirty:        12 kB\n"));
        Assert.That(before, Does.Contain("\nAnonymous:            12 kB\n"));
        Assert.That(h.Kernel.DoFork(t), Is.GreaterThan(t.Pid));
        string after = Block(h.Kernel.FormatSmaps(t), area);
        Assert.That(after, Does.Contain("\nRss:                  12 kB\n"));
        Assert.That(after, Does.Contain("\nPss:                   6 kB\n"), "each page is mapped twice");
        Assert.That(after, Does.Contain("\nShared_Dirty:         12 kB\n"));
        Assert.That(after, Does.Contain("\nPrivate_Dirty:         0 kB\n"));
        Assert.That(after, Does.Match(@"\nVmFlags: rd wr mr mw me ac \n"));
    }

    [Test]
    public void Every_VMA_and_mm_is_an_object_of_its_kmem_cache_in_slabinfo()
    {
        var (h, t, _) = MapAndTouch();
        static long Active(string slabinfo, string cache) =>
            long.Parse(slabinfo.Split('\n').Single(l => l.StartsWith(cache + " ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        string info = h.Kernel.FormatSlabInfo();
        Assert.That(Active(info, "vm_area_struct"), Is.EqualTo(t.Mm!.Areas.Count));
        Assert.That(Active(info, "mm_struct"), Is.EqualTo(1));
        h.Kernel.DoFork(t);
        info = h.Kernel.FormatSlabInfo();
        Assert.That(Active(info, "vm_area_struct"), Is.EqualTo(2 * t.Mm.Areas.Count), "fork copies every VMA");
        Assert.That(Active(info, "mm_struct"), Is.EqualTo(2));
    }

    [Test]
    public void Status_reports_rss_by_kind_and_fault_counts()
    {
        var (h, t, _) = MapAndTouch();
        string status = h.Kernel.FormatStatus(t);
        TestContext.Out.WriteLine(status);
        Assert.That(status, Does.Contain($"Pid:\t{t.Pid}\n"));
        Assert.That(Regex.Match(status, @"RssAnon:\s+(\d+) kB").Groups[1].Value, Is.EqualTo((t.Mm!.RssAnon * 4).ToString()));
        Assert.That(t.Mm.RssAnon, Is.GreaterThanOrEqualTo(3 + 1), "the three written pages and the stack page");
        Assert.That(status, Does.Contain($"MinFlt:\t{t.MinorFaults}\n").And.Contain("CowFlt:\t0\n"));
    }
}
