using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests;

/// <summary>
/// A TLB entry keeps the bus's answer for its physical page so that reads of RAM and ROM skip the bus lookup.
/// These tests check that the shortcut never shows anything the bus would not.
/// </summary>
public sealed class HostPagePathTests
{
    private const ulong Va = 0x5000_0000;
    private const ulong Pa = 0x30_0000;

    private sealed class ConstantDevice(ulong value) : IMmioDevice
    {
        public string Name => "const";
        public AccessConstraints Valid => AccessConstraints.Any;
        public AccessConstraints Impl => AccessConstraints.Any;
        public int Reads { get; private set; }
        public BusStatus Read(ulong offset, int size, out ulong v, BusAttributes attributes) { Reads++; v = value; return BusStatus.Ok; }
        public BusStatus Write(ulong offset, int size, ulong v, BusAttributes attributes) => BusStatus.Ok;
    }

    [Test]
    public void Untouched_page_reads_zero_then_shows_data_written_later_through_the_same_tlb_entry()
    {
        var m = new TestMachine();
        m.Tables.Map(Va, Pa, PageSize.Size4K, PteFlags.Writable);
        Assert.That(m.Mmu.Read(Va + 8, 8, Privilege.Supervisor, out ulong before).Ok);
        Assert.That(before, Is.Zero);
        m.Bus.Write(Pa + 8, 8, 0xAABB, BusAttributes.Host);
        for (int i = 0; i < 3; i++)
        {
            Assert.That(m.Mmu.Read(Va + 8, 8, Privilege.Supervisor, out ulong v).Ok);
            Assert.That(v, Is.EqualTo(0xAABBUL));
        }
        Assert.That(m.Mmu.Write(Va + 8, 2, 0x1234, Privilege.Supervisor).Ok);
        Assert.That(m.Mmu.Read(Va + 8, 8, Privilege.Supervisor, out ulong after).Ok);
        Assert.That(after, Is.EqualTo(0x1234UL), "the low 16 bits were replaced (0xAABB had no higher bits)");
    }

    [Test]
    public void Device_mapped_over_ram_later_is_seen_by_the_next_read_through_a_cached_translation()
    {
        var m = new TestMachine();
        m.Tables.Map(Va, Pa, PageSize.Size4K, PteFlags.Writable);
        m.Bus.Write(Pa, 8, 0x1111, BusAttributes.Host);
        Assert.That(m.Mmu.Read(Va, 8, Privilege.Supervisor, out ulong ram).Ok);
        Assert.That(m.Mmu.Read(Va, 8, Privilege.Supervisor, out _).Ok);
        Assert.That(ram, Is.EqualTo(0x1111UL));
        var device = new ConstantDevice(0xD0D0);
        m.Bus.AddMmio("overlay", Pa, 0x1000, device, priority: 1);
        Assert.That(m.Mmu.Read(Va, 8, Privilege.Supervisor, out ulong dev).Ok);
        Assert.That(dev, Is.EqualTo(0xD0D0UL));
        Assert.That(device.Reads, Is.EqualTo(1));
    }

    [Test]
    public void Reads_served_from_the_cached_page_are_counted_as_cpu_bus_reads()
    {
        var m = new TestMachine();
        m.Tables.Map(Va, Pa, PageSize.Size4K, PteFlags.Writable);
        m.Bus.Write(Pa, 8, 1, BusAttributes.Host);
        m.Mmu.Read(Va, 8, Privilege.Supervisor, out _);
        long cpuReads = m.Bus.Counters.ReadsBy(RequesterKind.Cpu);
        for (int i = 0; i < 10; i++) m.Mmu.Read(Va, 4, Privilege.Supervisor, out _);
        Assert.That(m.Bus.Counters.ReadsBy(RequesterKind.Cpu) - cpuReads, Is.EqualTo(10));
    }

    [Test]
    public void Rom_page_reads_through_translation_and_guest_writes_stay_dropped()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x400_0000);
        var image = new byte[0x1_0000];
        image[0x10] = 0x5A;
        bus.AddRom("rom", 0xFFFF_0000, image);
        var t = new PageTableBuilder(bus, 0x100_0000, 0x10_0000);
        t.Map(Va, 0xFFFF_0000, PageSize.Size4K, PteFlags.Writable);
        var cpu = new CpuContext(bus);
        cpu.EnterLongMode(t.Root);
        for (int i = 0; i < 2; i++)
        {
            Assert.That(cpu.Mmu.Read(Va + 0x10, 1, Privilege.Supervisor, out ulong b).Ok);
            Assert.That(b, Is.EqualTo(0x5AUL));
        }
        Assert.That(cpu.Mmu.Write(Va + 0x10, 1, 0x77, Privilege.Supervisor).Ok);
        Assert.That(cpu.Mmu.Read(Va + 0x10, 1, Privilege.Supervisor, out ulong again).Ok);
        Assert.That(again, Is.EqualTo(0x5AUL));
        Assert.That(bus.Counters.RomWritesDropped, Is.EqualTo(1));
    }

    [Test]
    public void Writes_through_a_cached_host_page_still_reach_a_page_watched_later()
    {
        var m = new TestMachine();
        m.Tables.Map(Va, Pa, PageSize.Size4K, PteFlags.Writable | PteFlags.Dirty | PteFlags.Accessed);
        for (int i = 0; i < 3; i++) Assert.That(m.Mmu.Write(Va + 16, 8, 0x55, Privilege.Supervisor).Ok); // resolves the host page
        var written = new List<ulong>();
        m.Bus.WatchedPageWritten += written.Add;
        m.Bus.WatchPageWrites(Pa);
        Assert.That(m.Mmu.Write(Va + 24, 4, 0x66, Privilege.Supervisor).Ok);
        Assert.That(written, Is.EqualTo(new[] { Pa }), "the watch is noticed although the TLB entry had cached the page for writes");
        m.Bus.Read(Pa + 24, 4, out ulong v, BusAttributes.Host);
        Assert.That(v, Is.EqualTo(0x66UL));
    }

    [Test]
    public void Writes_through_a_cached_host_page_are_counted_and_visible_to_the_bus()
    {
        var m = new TestMachine();
        m.Tables.Map(Va, Pa, PageSize.Size4K, PteFlags.Writable | PteFlags.Dirty | PteFlags.Accessed);
        m.Bus.Write(Pa, 8, 1, BusAttributes.Host); // give the page host memory
        Assert.That(m.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Ok); // the walk (and its accessed-bit writes) happens here
        long before = m.Bus.Counters.WritesBy(RequesterKind.Cpu);
        for (int i = 0; i < 5; i++) Assert.That(m.Mmu.Write(Va + 8 * (ulong)i, 8, (ulong)i + 100, Privilege.Supervisor).Ok);
        Assert.That(m.Bus.Counters.WritesBy(RequesterKind.Cpu) - before, Is.EqualTo(5));
        for (int i = 0; i < 5; i++)
        {
            m.Bus.Read(Pa + 8 * (ulong)i, 8, out ulong v, BusAttributes.Host);
            Assert.That(v, Is.EqualTo((ulong)i + 100));
        }
    }
}
