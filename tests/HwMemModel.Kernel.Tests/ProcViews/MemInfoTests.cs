using HwMemModel.Kernel;
using HwMemModel.Machine;

namespace HwMemModel.Kernel.Tests.ProcViews;

public sealed class MemInfoTests
{
    [Test]
    public void Meminfo_has_linux_format_and_tracks_vmalloc_and_slab()
    {
        var k = Kernel.Boot(DefaultMachine.CreateBus(256UL << 20));
        string before = k.FormatMemInfo();
        // 256 MiB machine: [0, 2 MiB) in 4 KiB pages (the ISA MiB and the next one), the rest in 2 MiB pages.
        Assert.That(before, Does.Contain("DirectMap4k:        2048 kB\n"));
        Assert.That(before, Does.Contain("DirectMap2M:      260096 kB\n"));
        Assert.That(before, Does.Contain("VmallocTotal:   34359738367 kB\n"), "VMALLOC_END - VMALLOC_START in kB, as x86-64 Linux prints it");
        Assert.That(before, Does.StartWith($"MemTotal:       {k.Pages.ManagedPageCount * 4,8} kB\n"));
        ulong v = k.Vmalloc(10 * 4096);
        ulong p = k.Kmalloc(64, Gfp.Kernel);
        string after = k.FormatMemInfo();
        Assert.That(after, Does.Contain("VmallocUsed:          40 kB\n"));
        Assert.That(after, Does.Contain("Slab:                  4 kB\n"));
        k.Vfree(v);
        k.Kfree(p);
    }
}
