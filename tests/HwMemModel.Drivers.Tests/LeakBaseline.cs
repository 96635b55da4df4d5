using HwMemModel.Machine;

namespace HwMemModel.Drivers.Tests;

/// <summary>
/// The three views the issue names — /proc/slabinfo, /proc/vmallocinfo and the page allocator's free count — plus the
/// live DMA mappings, taken the way a leak check on Linux would: lazily freed vmap areas purged and empty slabs
/// shrunk first, so memory a cache keeps for reuse is not mistaken for a leak.
/// </summary>
internal sealed record LeakBaseline(string SlabInfo, string VmallocInfo, long FreePages, int DmaMappings)
{
    public static LeakBaseline Take(SimulatedMachine machine)
    {
        var k = machine.Kernel;
        k.VmUnmapAliases();
        k.ShrinkSlabCaches();
        return new LeakBaseline(k.FormatSlabInfo(), k.FormatVmallocInfo(), k.Pages.FreePageCount, k.DmaMappings.Count);
    }

    public void AssertUnchanged(SimulatedMachine machine, string context)
    {
        var now = Take(machine);
        Assert.Multiple(() =>
        {
            Assert.That(now.SlabInfo, Is.EqualTo(SlabInfo), $"{context}: /proc/slabinfo");
            Assert.That(now.VmallocInfo, Is.EqualTo(VmallocInfo), $"{context}: /proc/vmallocinfo");
            Assert.That(now.FreePages, Is.EqualTo(FreePages), $"{context}: free pages");
            Assert.That(now.DmaMappings, Is.EqualTo(DmaMappings), $"{context}: DMA mappings");
        });
    }
}
