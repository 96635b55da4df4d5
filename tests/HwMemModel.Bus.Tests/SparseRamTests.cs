using System.Diagnostics;
using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class SparseRamTests
{
    private const ulong GiB = 1UL << 30;
    private const ulong MiB = 1UL << 20;

    [Test]
    public void Sixty_four_GiB_region_builds_in_well_under_a_second_without_touching_pages()
    {
        var bus = new PhysicalBus(maxPhysAddrBits: 40);
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();

        RamRegion ram = bus.AddRam("ram", 0, 64 * GiB);

        clock.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMilliseconds(500)));
        Assert.That(ram.TouchedPages, Is.Zero);
        Assert.That(allocated, Is.LessThan(1 * MiB));
    }

    [Test]
    public void Touching_64_MiB_as_pages_scattered_every_4_MiB_costs_at_most_100_MiB_of_host_memory()
    {
        // The worst case for a table-based sparse store: every touched page is alone in its neighbourhood.
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 64 * GiB);
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        const int pages = 16384; // 64 MiB
        ulong stride = 64 * GiB / pages;
        for (ulong i = 0; i < pages; i++)
        {
            bus.Write(i * stride + 0x800, 8, i + 1, BusAttributes.Host);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        Assert.That(ram.TouchedPages, Is.EqualTo(pages));
        Assert.That(allocated, Is.LessThanOrEqualTo(100 * (long)MiB));
        Assert.That(ram.HostBytes, Is.LessThanOrEqualTo(100 * (long)MiB));
        bus.Read(5000 * stride + 0x800, 8, out ulong value, BusAttributes.Host);
        Assert.That(value, Is.EqualTo(5001UL));
    }

    [Test]
    public void Touching_64_MiB_of_a_64_GiB_region_costs_at_most_100_MiB_of_host_memory()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 64 * GiB);
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();

        // 64 MiB touched in 1 MiB runs spread over the whole region.
        for (ulong run = 0; run < 64; run++)
        {
            ulong runBase = run * GiB + 0x4000_0000UL / 2;
            for (ulong pa = runBase; pa < runBase + MiB; pa += BusPage.Size)
            {
                bus.Write(pa, 8, pa | 1, BusAttributes.Host);
            }
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        Assert.That(ram.TouchedPages, Is.EqualTo(64 * 256));
        Assert.That(ram.HostBytes, Is.LessThanOrEqualTo(100 * (long)MiB));
        Assert.That(ram.HostBytes, Is.GreaterThanOrEqualTo(64 * (long)MiB));
        Assert.That(allocated, Is.LessThanOrEqualTo(100 * (long)MiB));
        bus.Read(63 * GiB + 0x2000_0000UL + 0x3000, 8, out ulong value, BusAttributes.Host);
        Assert.That(value, Is.EqualTo((63 * GiB + 0x2000_0000UL + 0x3000) | 1));
    }

    [Test]
    public void Reading_untouched_pages_allocates_nothing()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 4 * GiB);
        var buffer = new byte[64];
        bus.Read(0x1234_5000, 8, out _, BusAttributes.Host);      // warm up the code paths
        bus.ReadBytes(0x1234_5000, buffer, BusAttributes.Host);
        long hostBytes = ram.HostBytes;
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();

        ulong sum = 0;
        for (ulong pa = 0; pa < 4 * GiB; pa += 16 * MiB + BusPage.Size)
        {
            bus.Read(pa, 8, out ulong value, BusAttributes.Host);
            bus.ReadBytes(pa + 0xFF0, buffer, BusAttributes.Host);
            sum += value + buffer[0];
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        Assert.That(sum, Is.Zero);
        Assert.That(ram.TouchedPages, Is.Zero);
        Assert.That(ram.HostBytes, Is.EqualTo(hostBytes));
        Assert.That(allocated, Is.LessThan(BusPage.Size));
    }

    [Test]
    public void Host_bytes_grow_by_one_page_per_newly_touched_page()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 16 * MiB);
        bus.Write(0x1000, 1, 1, BusAttributes.Host);
        long afterFirst = ram.HostBytes;

        bus.Write(0x2000, 1, 1, BusAttributes.Host);   // same 2 MiB table
        bus.Write(0x2008, 1, 1, BusAttributes.Host);   // same page

        Assert.That(ram.HostBytes - afterFirst, Is.EqualTo(BusPage.Size));
        Assert.That(ram.TouchedPages, Is.EqualTo(2));
    }
}
