using HwMemModel.Kernel;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>munmap gives back what the mapping took: its pages, the page tables that only it used, its VMA objects.</summary>
public sealed class MunmapTests
{
    [TestCase(1)]
    [TestCase(600)]     // more than one page table
    [TestCase(1 << 18)] // 1 GiB: the mapping gets its own PDPT entry and page directory
    public void Munmap_returns_every_page_table_and_vma_object_the_mapping_took(int pages)
    {
        string prog = TestPrograms.Raw("raw_hello");
        var h = new ProcessHarness(ram: 1UL << 30);
        var t = h.Machine.Start(prog, [prog]);
        var before = h.Baseline();
        ulong len = (ulong)pages * 4096;
        ulong area = (ulong)h.Kernel.DoMmap(t, 0, len, Mman.ProtRead | Mman.ProtWrite, Mman.MapPrivate | Mman.MapAnonymous | Mman.MapNoReserve, null, 0);
        int touched = Math.Min(pages, 2000);
        for (int i = 0; i < touched; i++)
            Assert.That(h.Kernel.HandleUserFault(t, area + (ulong)i * (len / (ulong)touched & ~0xFFFUL), PageFaultErrorCode.Write | PageFaultErrorCode.User), Is.EqualTo(UserFaultResult.Handled));
        Assert.That(h.Kernel.Pages.FreePageCount, Is.LessThan(before.FreePages - touched + 1));
        Assert.That(h.Kernel.DoMunmap(t, area, len), Is.Zero);
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }

    [Test]
    public void Munmap_of_the_middle_splits_the_vma_and_frees_only_that_part()
    {
        string prog = TestPrograms.Raw("raw_hello");
        var h = new ProcessHarness();
        var t = h.Machine.Start(prog, [prog]);
        ulong area = (ulong)h.Kernel.DoMmap(t, 0, 3 * 4096, Mman.ProtRead | Mman.ProtWrite, Mman.MapPrivate | Mman.MapAnonymous, null, 0);
        for (int i = 0; i < 3; i++) h.Kernel.HandleUserFault(t, area + (ulong)i * 4096, PageFaultErrorCode.Write | PageFaultErrorCode.User);
        long rss = t.Mm!.RssAnon;
        int vmas = t.Mm.Areas.Count;
        Assert.That(h.Kernel.DoMunmap(t, area + 4096, 4096), Is.Zero);
        Assert.That(t.Mm.RssAnon, Is.EqualTo(rss - 1));
        Assert.That(t.Mm.Areas.Count, Is.EqualTo(vmas + 1), "one VMA became two");
        var mmu = h.Kernel.CurrentCpu.Mmu;
        Assert.That(mmu.Translate(area + 4096, AccessKind.Read, Privilege.User, out _).Kind, Is.EqualTo(FaultKind.PageFault));
        Assert.That(mmu.Translate(area, AccessKind.Read, Privilege.User, out _).IsFault, Is.False);
        Assert.That(mmu.Translate(area + 8192, AccessKind.Read, Privilege.User, out _).IsFault, Is.False);
    }
}
