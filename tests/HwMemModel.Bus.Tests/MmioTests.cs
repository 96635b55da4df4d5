using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class MmioTests
{
    private const ulong Window = 0xFED0_0000;
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    private PhysicalBus _bus = null!;

    [SetUp]
    public void SetUp() => _bus = new PhysicalBus();

    private RecordingDevice Map(AccessConstraints valid, AccessConstraints impl, ulong size = 0x400)
    {
        var device = new RecordingDevice("dev", (int)size, valid, impl).WithOffsetPattern();
        _bus.AddMmio("dev", Window, size, device);
        return device;
    }

    [Test]
    public void Eight_byte_load_reaches_four_byte_device_as_two_ordered_reads()
    {
        RecordingDevice device = Map(new AccessConstraints(1, 8), AccessConstraints.Exactly(4));

        BusStatus status = _bus.Read(Window + 0x10, 8, out ulong value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.Ok));
        Assert.That(device.Accesses.Select(a => (a.IsWrite, a.Offset, a.Size)),
            Is.EqualTo(new[] { (false, 0x10UL, 4), (false, 0x14UL, 4) }));
        // Offsets 0x10..0x17 hold 0x10*0x11 .. 0x17*0x11 (mod 256): 0x10, 0x21, ..., 0x87.
        Assert.That(value, Is.EqualTo(0x8776655443322110UL));
    }

    [Test]
    public void Eight_byte_store_reaches_four_byte_device_as_two_ordered_writes()
    {
        RecordingDevice device = Map(new AccessConstraints(1, 8), AccessConstraints.Exactly(4));

        _bus.Write(Window + 0x20, 8, 0x1122334455667788, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.IsWrite, a.Offset, a.Size, a.Value)),
            Is.EqualTo(new[] { (true, 0x20UL, 4, 0x55667788UL), (true, 0x24UL, 4, 0x11223344UL) }));
    }

    [Test]
    public void Byte_load_from_four_byte_device_reads_the_containing_dword_and_extracts_its_byte()
    {
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Exactly(4));

        _bus.Read(Window + 0x0E, 1, out ulong value, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (0x0CUL, 4) }));
        Assert.That(value, Is.EqualTo(0xEEUL));
    }

    [Test]
    public void Byte_store_to_four_byte_device_writes_the_containing_dword_shifted_without_reading_it()
    {
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Exactly(4));

        _bus.Write(Window + 0x0E, 1, 0xAB, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.IsWrite, a.Offset, a.Size, a.Value)),
            Is.EqualTo(new[] { (true, 0x0CUL, 4, 0x00AB_0000UL) }));
    }

    [Test]
    public void Unaligned_word_load_straddling_two_dwords_reads_both_in_order()
    {
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Exactly(4));

        _bus.Read(Window + 0x03, 2, out ulong value, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (0x00UL, 4), (0x04UL, 4) }));
        Assert.That(value, Is.EqualTo(0x4433UL));
    }

    [Test]
    public void Device_implementing_unaligned_units_sees_pieces_at_the_access_offset()
    {
        RecordingDevice device = Map(AccessConstraints.Any, new AccessConstraints(1, 2, Unaligned: true));

        _bus.Read(Window + 0x05, 4, out ulong value, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (0x05UL, 2), (0x07UL, 2) }));
        Assert.That(value, Is.EqualTo(0x88776655UL));
    }

    [Test]
    public void Access_within_both_constraints_reaches_device_unchanged()
    {
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Any);

        _bus.Read(Window + 0x08, 8, out ulong value, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (0x08UL, 8) }));
        Assert.That(value, Is.EqualTo(0xFFEEDDCCBBAA9988UL));
    }

    [Test]
    public void Size_the_device_does_not_accept_is_a_device_error_reading_all_ones()
    {
        RecordingDevice device = Map(AccessConstraints.Exactly(4), AccessConstraints.Exactly(4));

        BusStatus read = _bus.Read(Window, 8, out ulong value, Cpu0);
        BusStatus write = _bus.Write(Window, 2, 0x1234, Cpu0);

        Assert.That((read, write), Is.EqualTo((BusStatus.DeviceError, BusStatus.DeviceError)));
        Assert.That(value, Is.EqualTo(ulong.MaxValue));
        Assert.That(device.Accesses, Is.Empty);
        Assert.That(_bus.Counters.DeviceErrors, Is.EqualTo(2));
    }

    [Test]
    public void Misaligned_access_to_a_device_refusing_unaligned_is_a_device_error()
    {
        RecordingDevice device = Map(new AccessConstraints(1, 8, Unaligned: false), AccessConstraints.Any);

        BusStatus status = _bus.Read(Window + 2, 4, out ulong value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.DeviceError));
        Assert.That(value, Is.EqualTo(0xFFFF_FFFFUL));
        Assert.That(device.Accesses, Is.Empty);
    }

    [Test]
    public void Error_returned_by_the_device_propagates_and_is_counted()
    {
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Any);
        device.Status = BusStatus.DeviceError;

        BusStatus status = _bus.Read(Window, 4, out ulong value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.DeviceError));
        Assert.That(value, Is.EqualTo(0xFFFF_FFFFUL));
        Assert.That(_bus.Counters.DeviceErrors, Is.EqualTo(1));
    }

    [Test]
    public void ReadBytes_cuts_a_device_range_into_naturally_aligned_pieces_within_valid_max()
    {
        RecordingDevice device = Map(new AccessConstraints(1, 4), new AccessConstraints(1, 4));

        var buffer = new byte[7];
        BusStatus status = _bus.ReadBytes(Window + 1, buffer, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.Ok));
        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)),
            Is.EqualTo(new[] { (1UL, 1), (2UL, 2), (4UL, 4) }));
        Assert.That(buffer, Is.EqualTo(new byte[] { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 }));
    }

    [Test]
    public void Load_straddling_ram_and_a_device_window_splits_into_per_region_pieces()
    {
        _bus.AddRam("ram", Window - 0x1000, 0x1000);
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Any);
        _bus.Write(Window - 4, 4, 0xA3A2A1A0, Cpu0);

        _bus.Read(Window - 4, 8, out ulong value, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (0UL, 4) }));
        Assert.That(value, Is.EqualTo(0x33221100_A3A2A1A0UL));
    }

    [Test]
    public void Dma_transaction_reaches_the_device_with_its_requester_attributes()
    {
        RecordingDevice device = Map(AccessConstraints.Any, AccessConstraints.Any);

        _bus.Write(Window + 8, 4, 0x55, BusAttributes.Dma(7));
        _bus.ReadBytes(Window, new byte[4], BusAttributes.Dma(7));

        Assert.That(device.Accesses.Select(a => a.Attributes),
            Is.All.EqualTo(new BusAttributes(RequesterKind.Dma, 7)));
        Assert.That(device.Accesses, Has.Count.EqualTo(2));
        Assert.That(_bus.Counters.TransactionsBy(RequesterKind.Dma), Is.EqualTo(2));
    }

    [Test]
    public void Hpet_capabilities_read_the_same_through_one_qword_or_two_dwords()
    {
        var hpet = new RecordingDevice("hpet", 0x400, new AccessConstraints(4, 8), new AccessConstraints(4, 8));
        BitConverter.TryWriteBytes(hpet.Registers, 0x009896808086A201UL);
        _bus.AddMmio("HPET 0", Window, 0x400, hpet);

        _bus.Read(Window, 8, out ulong whole, Cpu0);
        _bus.Read(Window, 4, out ulong low, Cpu0);
        _bus.Read(Window + 4, 4, out ulong high, Cpu0);

        Assert.That(whole, Is.EqualTo(0x009896808086A201UL));
        Assert.That((high << 32) | low, Is.EqualTo(0x009896808086A201UL));
    }
}
