using HwMemModel.Devices.Virtio;
using R = HwMemModel.Devices.Virtio.VirtioMmioRegister;

namespace HwMemModel.Devices.Tests.Virtio;

/// <summary>Block requests through the split virtqueue (virtio 1.2 sections 2.7 and 5.2.6).</summary>
public sealed class VirtioBlkRequestTests
{
    private const long DiskBytes = 64 * 1024; // 128 sectors

    private MemoryBlockBackend _disk = null!;
    private VirtioTestDriver _d = null!;

    [SetUp]
    public void SetUp()
    {
        _disk = new MemoryBlockBackend(DiskBytes);
        _d = new VirtioTestDriver(_disk);
        _d.Initialise(8);
    }

    [Test]
    public void Write_then_read_two_sectors_round_trips_the_bytes()
    {
        byte[] pattern = VirtioTestDriver.Pattern(1024, seed: 7);
        _d.Write(_d.DataOf(0), pattern);
        Assert.That(_d.Do(0, VirtioBlk.TypeOut, 5, 1024), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_disk.Data.Slice(5 * 512, 1024).ToArray(), Is.EqualTo(pattern), "sectors 5-6 of the image");
        Assert.That(_disk.Data[5 * 512 - 1], Is.Zero, "sector 4 untouched");
        Assert.That(_disk.Data[7 * 512], Is.Zero, "sector 7 untouched");

        _d.Fill(_d.DataOf(1), 1024, 0xEE);
        Assert.That(_d.Do(1, VirtioBlk.TypeIn, 5, 1024), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_d.Read(_d.DataOf(1), 1024), Is.EqualTo(pattern));
    }

    [Test]
    public void Used_ring_gets_the_head_and_the_bytes_written()
    {
        ushort outHead = _d.SubmitRequest(0, VirtioBlk.TypeOut, 0, 512);
        _d.Notify();
        ushort inHead = _d.SubmitRequest(1, VirtioBlk.TypeIn, 0, 1024);
        _d.Notify();

        Assert.That(_d.UsedIdx, Is.EqualTo(2));
        Assert.That(_d.Used(0), Is.EqualTo(((uint)outHead, 1u)), "OUT: only the status byte is written");
        Assert.That(_d.Used(1), Is.EqualTo(((uint)inHead, 1025u)), "IN: 1024 data bytes plus the status byte");
        Assert.That(inHead, Is.EqualTo(3), "the second chain starts after the first one's three descriptors");
    }

    [Test]
    public void Several_requests_made_available_before_one_notification_are_all_used()
    {
        _d.SubmitRequest(0, VirtioBlk.TypeFlush, 0, 0);
        _d.SubmitRequest(1, VirtioBlk.TypeFlush, 0, 0);
        _d.SubmitRequest(2, VirtioBlk.TypeFlush, 0, 0);
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.EqualTo(3));
        Assert.That(_d.Device.LastAvailIndex, Is.EqualTo(3));
    }

    [Test]
    public void Ring_indices_wrap_around_the_queue_size()
    {
        for (int i = 0; i < 20; i++)
        {
            _d.Write(_d.DataOf(0), VirtioTestDriver.Pattern(512, i));
            Assert.That(_d.Do(0, VirtioBlk.TypeOut, (ulong)i, 512), Is.EqualTo(VirtioBlk.StatusOk), $"request {i}");
        }

        Assert.That(_d.UsedIdx, Is.EqualTo(20));
        Assert.That(_disk.Data.Slice(19 * 512, 512).ToArray(), Is.EqualTo(VirtioTestDriver.Pattern(512, 19)));
    }

    [Test]
    public void Used_buffer_sets_InterruptStatus_bit_0_and_asserts_the_line_until_acknowledged()
    {
        _d.Do(0, VirtioBlk.TypeFlush, 0, 0);
        Assert.That(_d.Reg(R.InterruptStatus), Is.EqualTo(1u));
        Assert.That(_d.Device.IrqLine, Is.True);
        Assert.That(_d.IrqEvents, Is.EqualTo(new[] { true }));

        _d.SetReg(R.InterruptAck, 1);
        Assert.That(_d.Reg(R.InterruptStatus), Is.Zero);
        Assert.That(_d.Device.IrqLine, Is.False);
        Assert.That(_d.IrqEvents, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void InterruptACK_clears_only_the_bits_written()
    {
        _d.Do(0, VirtioBlk.TypeFlush, 0, 0);
        _d.SetReg(R.InterruptAck, 2);
        Assert.That(_d.Reg(R.InterruptStatus), Is.EqualTo(1u));
        Assert.That(_d.Device.IrqLine, Is.True);
    }

    [Test]
    public void VIRTQ_AVAIL_F_NO_INTERRUPT_suppresses_the_used_buffer_interrupt()
    {
        _d.Store16(VirtioTestDriver.AvailRing, Virtq.AvailFlagNoInterrupt);
        Assert.That(_d.Do(0, VirtioBlk.TypeFlush, 0, 0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_d.UsedIdx, Is.EqualTo(1), "the buffer is still used");
        Assert.That(_d.Reg(R.InterruptStatus), Is.Zero);
        Assert.That(_d.Device.IrqLine, Is.False);
        Assert.That(_d.IrqEvents, Is.Empty);
    }

    [Test]
    public void Read_beyond_the_capacity_fails_with_IOERR_and_leaves_the_buffer_alone()
    {
        _d.Fill(_d.DataOf(0), 1024, 0xAB);
        Assert.That(_d.Do(0, VirtioBlk.TypeIn, 127, 1024), Is.EqualTo(VirtioBlk.StatusIoErr), "sectors 127-128 of 128");
        Assert.That(_d.Read(_d.DataOf(0), 1024), Is.All.EqualTo(0xAB));
        Assert.That(_d.Used(0).Len, Is.EqualTo(1u), "only the status byte was written");
        Assert.That(_d.Log.Entries, Has.Some.Contains("capacity"));
    }

    [Test]
    public void Read_of_the_last_sector_succeeds()
    {
        _disk.Data[127 * 512] = 0x5A;
        Assert.That(_d.Do(0, VirtioBlk.TypeIn, 127, 512), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_d.Read(_d.DataOf(0), 1)[0], Is.EqualTo(0x5A));
    }

    [Test]
    public void Write_at_a_huge_sector_fails_with_IOERR_without_overflow()
    {
        Assert.That(_d.Do(0, VirtioBlk.TypeOut, ulong.MaxValue, 512), Is.EqualTo(VirtioBlk.StatusIoErr));
    }

    [Test]
    public void Data_that_is_not_whole_sectors_fails_with_IOERR()
    {
        Assert.That(_d.Do(0, VirtioBlk.TypeIn, 0, 100), Is.EqualTo(VirtioBlk.StatusIoErr));
    }

    [Test]
    public void Flush_succeeds_and_reaches_the_backend()
    {
        Assert.That(_d.Do(0, VirtioBlk.TypeFlush, 0, 0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_disk.Flushes, Is.EqualTo(1));
        Assert.That(_d.Used(0).Len, Is.EqualTo(1u));
    }

    [Test]
    public void GET_ID_returns_the_20_byte_NUL_padded_serial()
    {
        _d.Fill(_d.DataOf(0), 20, 0xCC);
        Assert.That(_d.Do(0, VirtioBlk.TypeGetId, 0, 20), Is.EqualTo(VirtioBlk.StatusOk));
        byte[] expected = new byte[20];
        "hwmem-virtio-blk"u8.CopyTo(expected);
        Assert.That(_d.Read(_d.DataOf(0), 20), Is.EqualTo(expected));
        Assert.That(_d.Used(0).Len, Is.EqualTo(21u));
    }

    [Test]
    public void GET_ID_of_a_20_character_serial_has_no_terminator()
    {
        var d = new VirtioTestDriver(_disk, serial: "ABCDEFGHIJKLMNOPQRST");
        d.Initialise(8);
        d.Fill(d.DataOf(0), 21, 0xCC);
        Assert.That(d.Do(0, VirtioBlk.TypeGetId, 0, 20), Is.EqualTo(VirtioBlk.StatusOk));
        byte[] expected = [.. "ABCDEFGHIJKLMNOPQRST"u8, 0xCC];
        Assert.That(d.Read(d.DataOf(0), 21), Is.EqualTo(expected), "20 ID bytes, the byte after them untouched");
    }

    [Test]
    public void Unknown_request_type_answers_UNSUPP()
    {
        Assert.That(_d.Do(0, 11 /* DISCARD, not offered */, 0, 0), Is.EqualTo(VirtioBlk.StatusUnsupp));
        Assert.That(_d.Device.FailedRequests, Is.EqualTo(1));
    }

    [Test]
    public void Read_only_disk_offers_VIRTIO_BLK_F_RO_and_fails_writes_with_IOERR()
    {
        var image = new byte[DiskBytes];
        image[0] = 0x11;
        var disk = new MemoryBlockBackend(image, readOnly: true);
        var d = new VirtioTestDriver(disk);
        Assert.That(d.DeviceFeatures() & (1UL << 5), Is.Not.Zero, "VIRTIO_BLK_F_RO");
        d.Initialise(8, extraFeatures: 1UL << VirtioBlk.FeatureRo);

        d.Fill(d.DataOf(0), 512, 0x99);
        Assert.That(d.Do(0, VirtioBlk.TypeOut, 0, 512), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(image[0], Is.EqualTo(0x11), "no data written");
        Assert.That(image[1], Is.Zero);

        Assert.That(d.Do(1, VirtioBlk.TypeIn, 0, 512), Is.EqualTo(VirtioBlk.StatusOk), "reads still work");
        Assert.That(d.Read(d.DataOf(1), 1)[0], Is.EqualTo(0x11));
    }

    [Test]
    public void Header_and_OUT_data_may_share_one_descriptor()
    {
        ulong buffer = 0x4_0000;
        _d.WriteHeader(buffer, VirtioBlk.TypeOut, 3);
        byte[] pattern = VirtioTestDriver.Pattern(512, 3);
        _d.Write(buffer + 16, pattern);
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(new Desc(buffer, 16 + 512), new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_disk.Data.Slice(3 * 512, 512).ToArray(), Is.EqualTo(pattern));
    }

    [Test]
    public void IN_data_and_status_may_share_one_descriptor_and_the_header_may_be_split()
    {
        byte[] pattern = VirtioTestDriver.Pattern(512, 9);
        pattern.CopyTo(_disk.Data[(9 * 512)..]);
        ulong header = 0x4_0000;
        ulong buffer = 0x5_0000;
        _d.WriteHeader(header, VirtioBlk.TypeIn, 9);
        _d.Fill(buffer, 513, 0xFF);
        ushort head = _d.Submit(new Desc(header, 8), new Desc(header + 8, 8), new Desc(buffer, 513, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.Read(buffer, 512), Is.EqualTo(pattern));
        Assert.That(_d.Read(buffer + 512, 1)[0], Is.EqualTo(VirtioBlk.StatusOk), "status is the last byte");
        Assert.That(_d.Used(0), Is.EqualTo(((uint)head, 513u)));
    }

    [Test]
    public void IN_data_scattered_over_several_descriptors_is_filled_in_order()
    {
        byte[] pattern = VirtioTestDriver.Pattern(1024, 4);
        pattern.CopyTo(_disk.Data);
        ulong header = 0x4_0000;
        _d.WriteHeader(header, VirtioBlk.TypeIn, 0);
        _d.Submit(
            new Desc(header, 16),
            new Desc(0x6_0000, 100, Virtq.DescFlagWrite),
            new Desc(0x7_0000, 924, Virtq.DescFlagWrite),
            new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_d.Read(0x6_0000, 100).Concat(_d.Read(0x7_0000, 924)), Is.EqualTo(pattern));
        Assert.That(_d.Used(0).Len, Is.EqualTo(1025u));
    }

    [Test]
    public void Indirect_descriptor_table_is_followed_when_negotiated()
    {
        var d = new VirtioTestDriver(_disk);
        d.Initialise(8, extraFeatures: 1UL << VirtioFeature.IndirectDesc);
        byte[] pattern = VirtioTestDriver.Pattern(512, 21);
        pattern.CopyTo(_disk.Data[(21 * 512)..]);
        ulong table = 0x8_0000;
        ulong header = 0x4_0000;
        d.WriteHeader(header, VirtioBlk.TypeIn, 21);
        d.WriteDescriptor(table, 0, header, 16, Virtq.DescFlagNext, 1);
        d.WriteDescriptor(table, 1, d.DataOf(0), 512, Virtq.DescFlagNext | Virtq.DescFlagWrite, 2);
        d.WriteDescriptor(table, 2, VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite, 0);
        d.Write(VirtioTestDriver.Statuses, [0xFF]);
        ushort head = d.Submit(new Desc(table, 48, Virtq.DescFlagIndirect));
        d.Notify();
        Assert.That(d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(d.Read(d.DataOf(0), 512), Is.EqualTo(pattern));
        Assert.That(d.Used(0), Is.EqualTo(((uint)head, 513u)));
    }

    [Test]
    public void Indirect_descriptor_without_the_feature_fails_with_IOERR()
    {
        ulong table = 0x8_0000;
        _d.WriteDescriptor(table, 0, 0x4_0000, 16, 0, 0);
        // A writable status descriptor chained to an indirect one: the walk stops at the indirect descriptor.
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite), new Desc(table, 16, Virtq.DescFlagIndirect));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_d.Log.Entries, Has.Some.Contains("VIRTIO_F_INDIRECT_DESC was not negotiated"));
    }

    [Test]
    public void Event_idx_interrupts_only_when_the_used_index_passes_used_event()
    {
        var d = new VirtioTestDriver(_disk);
        d.Initialise(8, extraFeatures: 1UL << VirtioFeature.EventIdx);
        ulong usedEvent = VirtioTestDriver.AvailRing + 4 + 2 * 8;
        d.Store16(usedEvent, 1); // interrupt when the entry with index 1 is written (used idx reaches 2)

        d.Do(0, VirtioBlk.TypeFlush, 0, 0);
        Assert.That(d.Reg(R.InterruptStatus), Is.Zero, "used idx 1: no interrupt yet");
        d.Do(1, VirtioBlk.TypeFlush, 0, 0);
        Assert.That(d.Reg(R.InterruptStatus), Is.EqualTo(1u), "used idx 2 = used_event + 1");

        ulong availEvent = VirtioTestDriver.UsedRing + 4 + 8 * 8;
        Assert.That(d.Bus.Load(availEvent, 2), Is.EqualTo(2UL), "avail_event: the device has consumed up to idx 2");
    }

    [Test]
    public void Event_idx_ignores_the_NO_INTERRUPT_flag()
    {
        var d = new VirtioTestDriver(_disk);
        d.Initialise(8, extraFeatures: 1UL << VirtioFeature.EventIdx);
        d.Store16(VirtioTestDriver.AvailRing, Virtq.AvailFlagNoInterrupt);
        d.Do(0, VirtioBlk.TypeFlush, 0, 0);
        Assert.That(d.Reg(R.InterruptStatus), Is.EqualTo(1u), "used_event 0 asks for the first buffer");
    }

    [Test]
    public void Spurious_notification_changes_nothing()
    {
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.Zero);
        Assert.That(_d.Reg(R.InterruptStatus), Is.Zero);
        Assert.That(_d.Log.Entries, Is.Empty);
    }

    [Test]
    public void The_same_requests_give_the_same_log_and_ring_every_time()
    {
        static (string[] Log, long Bytes) Run()
        {
            var d = new VirtioTestDriver(new MemoryBlockBackend(DiskBytes));
            d.Initialise(8);
            d.Do(0, VirtioBlk.TypeOut, 0, 512);
            d.Do(1, VirtioBlk.TypeIn, 500, 512);
            d.Do(2, 99, 0, 0);
            return (d.Log.Entries.ToArray(), d.Device.Dma.Bytes);
        }

        var first = Run();
        var second = Run();
        Assert.That(second.Log, Is.EqualTo(first.Log));
        Assert.That(second.Bytes, Is.EqualTo(first.Bytes));
    }
}
