using HwMemModel.Bus;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel.Tests.Vmalloc;

/// <summary>The cross-CPU coherence checker on the kernel model's CPU contexts (Kernel.EnableCoherenceChecking).</summary>
public sealed class CrossCpuCoherenceTests
{
    private const ulong Page = 4096;

    private static Kernel Boot(int cpus) => Kernel.Boot(DefaultMachine.CreateBus(256UL << 20), new KernelOptions { Cpus = cpus });

    [Test]
    public void Vfree_on_one_cpu_then_a_read_on_another_names_both_cpus_and_the_cleared_pte()
    {
        var k = Boot(2);
        var log = k.EnableCoherenceChecking();
        ulong va = k.Vmalloc(Page);
        ulong pa = k.FindVmArea(va)!.Pages[0];
        k.CurrentCpuIndex = 1;
        k.Memory.Write(va, 8, 0x55);                 // CPU 1 caches the translation
        k.CurrentCpuIndex = 0;
        k.Vfree(va);                                 // CPU 0 clears the PTE; the flush waits for the lazy purge
        k.CurrentCpuIndex = 1;
        Assert.That(k.Memory.Read(va, 8), Is.EqualTo(0x55UL), "CPU 1's TLB still reaches the freed page");
        var e = k.Cpus[1].Mmu.StaleTranslations.Single();
        Assert.That(e.Kind, Is.EqualTo(StaleKind.NowUnmapped));
        Assert.That(e.Change!.Writer, Is.EqualTo(BusAttributes.Cpu(0)));
        Assert.That(e.Change.NewValue, Is.Zero, "vfree clears the PTE");
        Assert.That(e.Change.OldValue & ~0xFFFUL & ((1UL << 52) - 1), Is.EqualTo(pa), "the PTE mapped the freed page");
        Assert.That(e.Description, Does.StartWith($"CPU 1 used a stale TLB entry for 0x{va:x}: CPU 0 changed the PTE at PA 0x"));
        Assert.That(e.Description, Does.EndWith("; CPU 1 then used it without an INVLPG or CR3 reload since: a TLB shootdown is missing."));
        Assert.That(k.Cpus[0].Mmu.StaleTranslations, Is.Empty);
        Assert.That(log.PageCount, Is.GreaterThan(0));
    }

    [Test]
    public void Vunmap_flushes_every_cpu_so_nothing_is_reported()
    {
        var k = Boot(4);
        k.EnableCoherenceChecking();
        var pages = Enumerable.Range(0, 4).Select(_ => k.Pages.AllocPages(Gfp.Kernel, 0)!.Value).ToArray();
        ulong va = k.Vmap(pages);
        for (int cpu = 0; cpu < 4; cpu++)
        {
            k.CurrentCpuIndex = cpu;
            for (int i = 0; i < 4; i++) k.Memory.Read(va + (ulong)i * Page, 8);
        }
        k.CurrentCpuIndex = 0;
        k.Vunmap(va);
        ulong again = k.Vmap(pages.Reverse().ToArray());
        Assert.That(again, Is.EqualTo(va), "the same range, now mapped to other frames");
        for (int cpu = 0; cpu < 4; cpu++)
        {
            k.CurrentCpuIndex = cpu;
            for (int i = 0; i < 4; i++) k.Memory.Read(va + (ulong)i * Page, 8);
        }
        Assert.That(k.Cpus.SelectMany(c => c.Mmu.StaleTranslations), Is.Empty);
    }
}
