using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class UnmappedTests
{
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    [Test]
    public void Default_policy_reads_all_ones_and_drops_writes()
    {
        var bus = new PhysicalBus();

        BusStatus read = bus.Read(0x1000, 8, out ulong value, Cpu0);
        BusStatus write = bus.Write(0x1000, 4, 0x1234, Cpu0);

        Assert.That(bus.UnmappedPolicy, Is.EqualTo(UnmappedPolicy.AllOnes));
        Assert.That((read, write), Is.EqualTo((BusStatus.Ok, BusStatus.Ok)));
        Assert.That(value, Is.EqualTo(ulong.MaxValue));
        Assert.That((bus.Counters.UnmappedReads, bus.Counters.UnmappedWrites), Is.EqualTo((1L, 1L)));
    }

    [Test]
    public void Zero_policy_reads_zero()
    {
        var bus = new PhysicalBus(unmappedPolicy: UnmappedPolicy.Zero);

        bus.Read(0xFEBF_F000, 4, out ulong value, Cpu0);
        var bytes = new byte[3] { 9, 9, 9 };
        bus.ReadBytes(0x10, bytes, Cpu0);

        Assert.That(value, Is.Zero);
        Assert.That(bytes, Is.All.EqualTo((byte)0));
        Assert.That(bus.Counters.UnmappedReads, Is.EqualTo(2));
    }

    [Test]
    public void Bus_error_policy_reports_decode_errors_for_reads_and_writes()
    {
        var bus = new PhysicalBus(unmappedPolicy: UnmappedPolicy.BusError);

        BusStatus read = bus.Read(0x2000, 2, out ulong value, Cpu0);
        BusStatus write = bus.WriteBytes(0x2000, new byte[] { 1 }, Cpu0);

        Assert.That((read, write), Is.EqualTo((BusStatus.DecodeError, BusStatus.DecodeError)));
        Assert.That(value, Is.EqualTo(0xFFFFUL));
        Assert.That(bus.Counters.DecodeErrors, Is.EqualTo(2));
    }

    [Test]
    public void Bus_error_policy_fails_an_access_only_partly_unmapped_but_keeps_the_mapped_bytes()
    {
        var bus = new PhysicalBus(unmappedPolicy: UnmappedPolicy.BusError);
        RamRegion ram = bus.AddRam("ram", 0, 0x1000);
        ram.HostWrite(0xFFE, new byte[] { 0x34, 0x12 });

        BusStatus status = bus.Read(0xFFE, 4, out ulong value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.DecodeError));
        Assert.That(value, Is.EqualTo(0xFFFF1234UL));
    }

    [Test]
    public void Policy_can_be_changed_after_construction()
    {
        var bus = new PhysicalBus();
        bus.Read(0, 1, out ulong allOnes, Cpu0);

        bus.UnmappedPolicy = UnmappedPolicy.Zero;
        bus.Read(0, 1, out ulong zero, Cpu0);

        Assert.That((allOnes, zero), Is.EqualTo((0xFFUL, 0UL)));
    }

    [Test]
    public void Address_above_maxphyaddr_is_unmapped()
    {
        var bus = new PhysicalBus(maxPhysAddrBits: 36);
        bus.AddRam("ram", 0, 0x1000);

        BusStatus status = bus.Read(1UL << 40, 8, out ulong value, BusAttributes.Dma(0));

        Assert.That(status, Is.EqualTo(BusStatus.Ok));
        Assert.That(value, Is.EqualTo(ulong.MaxValue));
        Assert.That(bus.Counters.UnmappedReads, Is.EqualTo(1));
    }

    [Test]
    public void Gap_between_regions_is_unmapped()
    {
        var bus = new PhysicalBus();
        bus.AddRam("a", 0, 0x1000);
        bus.AddRam("b", 0x3000, 0x1000);
        var bytes = new byte[0x3000];

        bus.ReadBytes(0x800, bytes, Cpu0);

        Assert.That(bytes[..0x800], Is.All.EqualTo((byte)0));
        Assert.That(bytes[0x800..0x2800], Is.All.EqualTo((byte)0xFF));
        Assert.That(bytes[0x2800..], Is.All.EqualTo((byte)0));
        Assert.That(bus.Counters.UnmappedReads, Is.EqualTo(1));
    }
}
