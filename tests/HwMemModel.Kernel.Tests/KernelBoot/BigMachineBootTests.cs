using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel.Tests.KernelBoot;

public sealed class BigMachineBootTests
{
    private const ulong MiB = 1UL << 20, GiB = 1UL << 30;

    [Test]
    public void Boot_on_64_GiB_costs_less_than_200_MiB_of_host_memory_and_maps_all_ram()
    {
        var bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        bus.AddRam("low", 0, 0xA0000);
        bus.AddRam("ram", MiB, 3 * GiB - MiB);
        bus.AddRam("high", 4 * GiB, 61 * GiB);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var k = Kernel.Boot(bus);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        TestContext.Out.WriteLine($"allocated {allocated / (double)MiB:0.0} MiB");
        Assert.That(allocated, Is.LessThan(200 * (long)MiB));
        Assert.That(k.Pages.ManagedPageCount * 4096, Is.GreaterThan(63 * (long)GiB));
        Assert.That(k.CurrentCpu.Mmu.Translate(k.PhysToVirt(64 * GiB + 0x1234), AccessKind.Read, Privilege.Supervisor, out var t).IsFault, Is.False);
        Assert.That(t.PhysicalAddress, Is.EqualTo(64 * GiB + 0x1234));
        Assert.That(t.PageSize, Is.EqualTo(PageSize.Size1G));
    }
}
