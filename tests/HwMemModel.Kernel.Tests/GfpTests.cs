using HwMemModel.Kernel;

namespace HwMemModel.Kernel.Tests;

public sealed class GfpTests
{
    [Test]
    public void Composite_masks_have_linux_values()
    {
        // include/linux/gfp_types.h (5.x-6.1 layout): GFP_KERNEL 0xcc0, GFP_ATOMIC 0xa20, GFP_NOWAIT 0x800.
        Assert.That((uint)Gfp.Kernel, Is.EqualTo(0xcc0u));
        Assert.That((uint)Gfp.AtomicAlloc, Is.EqualTo(0xa20u));
        Assert.That((uint)Gfp.NoWait, Is.EqualTo(0x800u));
    }

    [Test]
    public void Masks_print_as_pGg_does()
    {
        Assert.That(GfpNames.Format(Gfp.Kernel | Gfp.Zero), Is.EqualTo("GFP_KERNEL|__GFP_ZERO"));
        Assert.That(GfpNames.Format(Gfp.NoWait | Gfp.NoWarn), Is.EqualTo("GFP_NOWAIT|__GFP_NOWARN"));
        Assert.That(GfpNames.Format(Gfp.Kernel | Gfp.Dma32), Is.EqualTo("GFP_KERNEL|GFP_DMA32"));
    }

    [Test]
    public void Third_call_fails_with_interval_3_probability_100_times_1()
    {
        var f = new FaultInjection("failslab");
        f.Configure(probability: 100, interval: 3, times: 1);
        Assert.That(Enumerable.Range(0, 6).Select(_ => f.ShouldFail()), Is.EqualTo(new[] { false, false, true, false, false, false }));
    }

    [Test]
    public void Same_seed_gives_the_same_failures()
    {
        var a = new FaultInjection("fail_page_alloc");
        var b = new FaultInjection("fail_page_alloc");
        a.Configure(30, seed: 42);
        b.Configure(30, seed: 42);
        var ra = Enumerable.Range(0, 200).Select(_ => a.ShouldFail()).ToArray();
        var rb = Enumerable.Range(0, 200).Select(_ => b.ShouldFail()).ToArray();
        Assert.That(rb, Is.EqualTo(ra));
        Assert.That(ra.Count(x => x), Is.InRange(30, 90), "about 30 % of 200");
    }

    [Test]
    public void Bad_probability_is_rejected_naming_the_range()
    {
        var f = new FaultInjection("failslab");
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => f.Configure(101));
        Assert.That(ex!.Message, Does.Contain("failslab: probability is a percentage, 0 to 100."));
    }
}
