using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class PortBusTests
{
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    private PortBus _ports = null!;

    [SetUp]
    public void SetUp() => _ports = new PortBus();

    [Test]
    public void Byte_port_device_receives_offset_relative_to_its_first_port()
    {
        var uart = new RecordingDevice("serial", 8, AccessConstraints.Exactly(1), AccessConstraints.Exactly(1));
        _ports.Add("serial", 0x3F8, 8, uart);

        _ports.Write(0x3F8, 1, 0x41, Cpu0);
        _ports.Write(0x3FD, 1, 0x60, Cpu0);

        Assert.That(uart.Accesses.Select(a => (a.Offset, a.Value)), Is.EqualTo(new[] { (0UL, 0x41UL), (5UL, 0x60UL) }));
    }

    [Test]
    public void Unmapped_port_reads_all_ones_per_byte_and_writes_are_dropped_and_counted()
    {
        BusStatus read = _ports.Read(0x80, 4, out uint value, Cpu0);
        BusStatus write = _ports.Write(0x80, 1, 0x12, Cpu0);

        Assert.That((read, write), Is.EqualTo((BusStatus.Ok, BusStatus.Ok)));
        Assert.That(value, Is.EqualTo(0xFFFF_FFFFu));
        Assert.That((_ports.Counters.UnmappedReads, _ports.Counters.UnmappedWrites), Is.EqualTo((1L, 1L)));
    }

    [Test]
    public void Dword_in_from_byte_wide_device_is_split_into_four_ordered_byte_reads()
    {
        var device = new RecordingDevice("dev", 4, AccessConstraints.Any, AccessConstraints.Exactly(1)).WithOffsetPattern();
        _ports.Add("dev", 0x60, 4, device);

        _ports.Read(0x60, 4, out uint value, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)),
            Is.EqualTo(new[] { (0UL, 1), (1UL, 1), (2UL, 1), (3UL, 1) }));
        Assert.That(value, Is.EqualTo(0x33221100u));
    }

    [Test]
    public void Byte_out_to_dword_device_is_widened_to_the_containing_dword()
    {
        var debugExit = new RecordingDevice("isa-debug-exit", 4, AccessConstraints.Any, AccessConstraints.Exactly(4));
        _ports.Add("isa-debug-exit", 0xF4, 4, debugExit);

        _ports.Write(0xF5, 1, 0x31, Cpu0);

        Assert.That(debugExit.Accesses.Select(a => (a.Offset, a.Size, a.Value)), Is.EqualTo(new[] { (0UL, 4, 0x3100UL) }));
    }

    [Test]
    public void Word_in_straddling_the_end_of_a_device_reads_ones_for_the_unmapped_byte()
    {
        var device = new RecordingDevice("dev", 2, AccessConstraints.Any, AccessConstraints.Any).WithOffsetPattern();
        _ports.Add("dev", 0x70, 2, device);

        _ports.Read(0x71, 2, out uint value, Cpu0);

        Assert.That(value, Is.EqualTo(0xFF11u));
        Assert.That(_ports.Counters.UnmappedReads, Is.EqualTo(1));
    }

    [Test]
    public void Access_past_port_ffff_reads_ones_for_the_missing_bytes()
    {
        var device = new RecordingDevice("top", 1, AccessConstraints.Any, AccessConstraints.Any);
        device.Registers[0] = 0x5A;
        _ports.Add("top", 0xFFFF, 1, device);

        _ports.Read(0xFFFF, 2, out uint value, Cpu0);

        Assert.That(value, Is.EqualTo(0xFF5Au));
    }

    [Test]
    public void Port_size_the_device_does_not_accept_is_a_device_error()
    {
        var device = new RecordingDevice("dev", 4, AccessConstraints.Exactly(1), AccessConstraints.Exactly(1));
        _ports.Add("dev", 0x20, 2, device);

        BusStatus status = _ports.Read(0x20, 2, out uint value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.DeviceError));
        Assert.That(value, Is.EqualTo(0xFFFFu));
        Assert.That(_ports.Counters.DeviceErrors, Is.EqualTo(1));
    }

    [Test]
    public void Removed_port_range_becomes_unmapped()
    {
        var device = new RecordingDevice("dev", 1, AccessConstraints.Any, AccessConstraints.Any);
        PortRange range = _ports.Add("dev", 0x61, 1, device);

        _ports.Remove(range);
        _ports.Read(0x61, 1, out uint value, Cpu0);

        Assert.That(value, Is.EqualTo(0xFFu));
        Assert.That(device.Accesses, Is.Empty);
    }

    [Test]
    public void Ioports_listing_shows_ranges_in_port_order()
    {
        _ports.Add("serial", 0x3F8, 8, new RecordingDevice("s", 8, AccessConstraints.Any, AccessConstraints.Any));
        _ports.Add("keyboard", 0x60, 1, new RecordingDevice("k", 1, AccessConstraints.Any, AccessConstraints.Any));

        Assert.That(_ports.FormatIoPorts(), Is.EqualTo("0060-0060 : keyboard\n03f8-03ff : serial\n"));
    }

    [Test]
    public void Range_beyond_port_ffff_is_rejected()
    {
        var device = new RecordingDevice("dev", 4, AccessConstraints.Any, AccessConstraints.Any);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _ports.Add("dev", 0xFFFE, 4, device));

        Assert.That(ex!.Message, Does.Contain("Port range 'dev' [0xfffe-0x10001] extends beyond the last I/O port 0xffff"));
    }

    [Test]
    public void Huge_port_count_is_rejected_without_overflow()
    {
        var device = new RecordingDevice("dev", 4, AccessConstraints.Any, AccessConstraints.Any);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _ports.Add("dev", 0x10, int.MaxValue, device));

        Assert.That(ex!.Message, Does.Contain("Port range 'dev' [0x10-0x8000000e] extends beyond the last I/O port 0xffff"));
    }

    [Test]
    public void Overlapping_port_ranges_are_rejected_naming_both()
    {
        _ports.Add("serial", 0x3F8, 8, new RecordingDevice("s", 8, AccessConstraints.Any, AccessConstraints.Any));

        var ex = Assert.Throws<ArgumentException>(() =>
            _ports.Add("other", 0x3FC, 8, new RecordingDevice("o", 8, AccessConstraints.Any, AccessConstraints.Any)));

        Assert.That(ex!.Message, Does.Contain("Port range 'other' [0x3fc-0x403] overlaps ports 'serial' [0x3f8-0x3ff]"));
        Assert.That(ex.Message, Does.Contain("may not overlap"));
    }

    [Test]
    public void Zero_port_count_is_rejected()
    {
        var device = new RecordingDevice("dev", 4, AccessConstraints.Any, AccessConstraints.Any);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _ports.Add("dev", 0x10, 0, device));

        Assert.That(ex!.Message, Does.Contain("count 0").And.Contain("at least one port"));
    }

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(8)]
    public void Port_access_size_other_than_1_2_4_is_rejected(int size)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _ports.Read(0x80, size, out _, Cpu0));

        Assert.That(ex!.Message, Does.Contain($"Port access size {size} is not supported: only 1, 2 or 4 bytes are allowed"));
    }

    [Test]
    public void Invalid_device_constraints_are_rejected_on_the_port_bus()
    {
        var device = new RecordingDevice("dev", 4, new AccessConstraints(4, 2), AccessConstraints.Any);

        var ex = Assert.Throws<ArgumentException>(() => _ports.Add("dev", 0x10, 4, device));

        Assert.That(ex!.Message, Does.Contain("Valid.MinSize 4 is greater than Valid.MaxSize 2"));
    }
}
