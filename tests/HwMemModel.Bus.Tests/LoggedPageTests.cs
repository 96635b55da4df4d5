using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

/// <summary>
/// Pages logged for writes (PhysicalBus.LogPageWrites), used by the cross-CPU coherence checker: every write into a
/// logged page is reported with its requester, and the page stays logged, unlike a watched (self-modifying code) page.
/// </summary>
public sealed class LoggedPageTests
{
    private static PhysicalBus NewBus()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x10_0000);
        return bus;
    }

    [Test]
    public void Every_write_into_a_logged_page_is_reported_with_its_requester_and_the_page_stays_logged()
    {
        var bus = NewBus();
        var seen = new List<(ulong Pa, int Length, BusAttributes Who)>();
        bus.LoggedPageWritten += (pa, length, who) => seen.Add((pa, length, who));
        bus.Write(0x5008, 8, 1, BusAttributes.Cpu(2));           // before logging: not reported
        bus.LogPageWrites(0x5123);
        Assert.That(bus.IsPageLogged(0x5FFF), Is.True);
        Assert.That(bus.LoggedPageCount, Is.EqualTo(1));
        bus.Write(0x5008, 8, 2, BusAttributes.Cpu(1));
        bus.Write(0x5008, 8, 3, BusAttributes.Cpu(3));           // the same page again: the page cache must not swallow it
        bus.WriteBytes(0x4FFC, new byte[8], BusAttributes.Dma(7)); // straddles into the logged page
        bus.Write(0x6000, 8, 4, BusAttributes.Cpu(1));           // another page: not reported
        Assert.That(seen, Is.EqualTo(new[]
        {
            (0x5008UL, 8, BusAttributes.Cpu(1)),
            (0x5008UL, 8, BusAttributes.Cpu(3)),
            (0x4FFCUL, 8, BusAttributes.Dma(7)), // the whole write, which starts in the page before
        }));
        bus.Read(0x5008, 8, out ulong value, BusAttributes.Host);
        Assert.That(value, Is.EqualTo(3UL), "logging does not change what is written");
    }

    [Test]
    public void Stopping_logging_ends_the_reports_and_leaves_watched_pages_watched()
    {
        var bus = NewBus();
        int logged = 0, watched = 0;
        bus.LoggedPageWritten += (_, _, _) => logged++;
        bus.WatchedPageWritten += _ => watched++;
        bus.LogPageWrites(0x7000);
        bus.WatchPageWrites(0x8000);
        bus.StopLoggingPageWrites();
        Assert.That(bus.LoggedPageCount, Is.Zero);
        bus.Write(0x7000, 4, 1, BusAttributes.Cpu(0));
        bus.Write(0x8000, 4, 1, BusAttributes.Cpu(0));
        Assert.That(logged, Is.Zero);
        Assert.That(watched, Is.EqualTo(1));
    }
}
