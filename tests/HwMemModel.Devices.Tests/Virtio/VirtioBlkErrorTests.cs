using HwMemModel.Devices.Virtio;
using R = HwMemModel.Devices.Virtio.VirtioMmioRegister;
using S = HwMemModel.Devices.Virtio.VirtioStatus;

namespace HwMemModel.Devices.Tests.Virtio;

/// <summary>Malformed chains, refused DMA and unreachable rings: never a hang, never an exception.</summary>
public sealed class VirtioBlkErrorTests
{
    private MemoryBlockBackend _disk = null!;
    private VirtioTestDriver _d = null!;

    [SetUp]
    public void SetUp()
    {
        _disk = new MemoryBlockBackend(64 * 1024);
        _d = new VirtioTestDriver(_disk);
        _d.Initialise(8);
    }

    [Test]
    public void Looping_chain_completes_with_IOERR_instead_of_hanging()
    {
        ulong header = VirtioTestDriver.Headers;
        _d.WriteHeader(header, VirtioBlk.TypeIn, 0);
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        // 0 -> 1 -> 2 -> 1 -> 2 ... : header, data, status, data, status ...
        ushort head = _d.Submit(
            new Desc(header, 16),
            new Desc(_d.DataOf(0), 512, Virtq.DescFlagWrite),
            new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite | Virtq.DescFlagNext, Next: 1));
        _d.Notify();

        Assert.That(_d.UsedIdx, Is.EqualTo(1), "the chain is given back");
        Assert.That(_d.Used(0).Id, Is.EqualTo((uint)head));
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_d.Log.Entries.Single(), Does.Contain("descriptor 1 is reached twice: the chain loops"));
        Assert.That(_d.Reg(R.Status) & (uint)S.DeviceNeedsReset, Is.Zero, "the queue itself is fine");
    }

    [Test]
    public void Next_index_beyond_the_queue_size_completes_with_IOERR()
    {
        _d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeFlush, 0);
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(
            new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite | Virtq.DescFlagNext, Next: 8));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_d.Log.Entries, Has.Some.Contains("beyond the queue size 8"));
    }

    [Test]
    public void Readable_descriptor_after_a_writable_one_completes_with_IOERR()
    {
        _d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeFlush, 0);
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite), new Desc(VirtioTestDriver.Headers, 16));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_d.Log.Entries, Has.Some.Contains("follows a device-writable"));
    }

    [Test]
    public void Chain_without_a_writable_byte_is_used_with_length_0()
    {
        _d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeFlush, 0);
        _d.Submit(new Desc(VirtioTestDriver.Headers, 16));
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.EqualTo(1));
        Assert.That(_d.Used(0).Len, Is.Zero);
        Assert.That(_disk.Flushes, Is.Zero, "the request is not carried out");
    }

    [Test]
    public void Header_shorter_than_16_bytes_completes_with_IOERR()
    {
        _d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeFlush, 0);
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(new Desc(VirtioTestDriver.Headers, 8), new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_disk.Flushes, Is.Zero);
    }

    [Test]
    public void Data_buffer_in_an_MMIO_window_fails_with_IOERR_and_is_reported()
    {
        ulong mmio = VirtioTestDriver.DeviceBase; // the device's own register window
        Assert.That(_d.Do(0, VirtioBlk.TypeIn, 0, 512, dataAddr: mmio), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_d.Reg(R.MagicValue), Is.EqualTo(0x74726976u), "nothing was written into the registers");
        Assert.That(_d.Log.Entries.Single(), Does.Contain("0xfeb00000").And.Contain("not RAM").And.Contain("IOERR"));
        Assert.That(_d.Used(0).Len, Is.EqualTo(1u));
    }

    [Test]
    public void OUT_data_in_unmapped_memory_fails_with_IOERR_and_writes_nothing()
    {
        _disk.Data.Fill(0x77);
        Assert.That(_d.Do(0, VirtioBlk.TypeOut, 0, 1024, dataAddr: VirtioTestDriver.RamSize - 512), Is.EqualTo(VirtioBlk.StatusIoErr),
            "the second sector lies past the end of RAM");
        Assert.That(_disk.Data[..1024].ToArray(), Is.All.EqualTo(0x77), "all or nothing");
        Assert.That(_d.Log.Entries.Single(), Does.Contain("unmapped"));
        Assert.That(_d.Device.Dma.Errors, Is.Zero, "refused by the check before any transfer");
    }

    [Test]
    public void Header_in_MMIO_fails_with_IOERR()
    {
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(new Desc(VirtioTestDriver.DeviceBase, 16), new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(_d.Log.Entries.Single(), Does.Contain("request header"));
    }

    [Test]
    public void Unreachable_available_ring_sets_DEVICE_NEEDS_RESET_and_raises_a_configuration_interrupt()
    {
        var d = new VirtioTestDriver(_disk);
        Assert.That(d.Negotiate(), Is.True);
        d.SetUpQueue(8, avail: 0x1_0000_0000); // beyond the 1 MiB of RAM
        d.DriverOk();
        d.Notify();
        Assert.Multiple(() =>
        {
            Assert.That(d.Reg(R.Status) & (uint)S.DeviceNeedsReset, Is.EqualTo((uint)S.DeviceNeedsReset));
            Assert.That(d.Reg(R.InterruptStatus), Is.EqualTo(2u), "configuration change");
            Assert.That(d.Device.IrqLine, Is.True);
            Assert.That(d.Log.Entries, Has.Some.Contains("DEVICE_NEEDS_RESET"));
        });
    }

    [Test]
    public void Descriptor_table_in_MMIO_sets_DEVICE_NEEDS_RESET()
    {
        var d = new VirtioTestDriver(_disk);
        Assert.That(d.Negotiate(), Is.True);
        d.SetUpQueue(8, desc: VirtioTestDriver.DeviceBase);
        d.DriverOk();
        d.PublishHead(0);
        d.Notify();
        Assert.That(d.Reg(R.Status) & (uint)S.DeviceNeedsReset, Is.Not.Zero);
        Assert.That(d.UsedIdx, Is.Zero);
    }

    [Test]
    public void After_DEVICE_NEEDS_RESET_notifications_are_ignored_until_a_reset()
    {
        _d.PublishHead(9); // head 9 of an 8-entry queue
        _d.Notify();
        Assert.That(_d.Reg(R.Status) & (uint)S.DeviceNeedsReset, Is.Not.Zero);

        _d.SubmitRequest(0, VirtioBlk.TypeFlush, 0, 0);
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.Zero);

        _d.Initialise(8);
        Assert.That(_d.Reg(R.Status), Is.EqualTo(15u), "the reset cleared DEVICE_NEEDS_RESET");
        Assert.That(_d.Do(0, VirtioBlk.TypeFlush, 0, 0), Is.EqualTo(VirtioBlk.StatusOk));
    }

    [Test]
    public void Available_index_more_than_the_queue_size_ahead_sets_DEVICE_NEEDS_RESET()
    {
        _d.Store16(VirtioTestDriver.AvailRing + 2, 9);
        _d.Notify();
        Assert.That(_d.Reg(R.Status) & (uint)S.DeviceNeedsReset, Is.Not.Zero);
        Assert.That(_d.UsedIdx, Is.Zero);
    }

    [Test]
    public void Driver_cannot_set_or_clear_DEVICE_NEEDS_RESET()
    {
        _d.SetReg(R.Status, 15 | (uint)S.DeviceNeedsReset);
        Assert.That(_d.Reg(R.Status), Is.EqualTo(15u));
    }

    [Test]
    public void Status_byte_in_MMIO_gives_used_length_0()
    {
        _d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeFlush, 0);
        _d.Submit(new Desc(VirtioTestDriver.Headers, 16), new Desc(VirtioTestDriver.DeviceBase + 0x180, 1, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.EqualTo(1));
        Assert.That(_d.Used(0).Len, Is.Zero);
    }

    [Test]
    public void Descriptor_wrapping_past_the_top_of_the_address_space_ends_the_walk_before_the_status()
    {
        _d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeIn, 0);
        _d.Write(VirtioTestDriver.Statuses, [0xFF]);
        _d.Submit(
            new Desc(VirtioTestDriver.Headers, 16),
            new Desc(ulong.MaxValue - 255, 512, Virtq.DescFlagWrite),
            new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite));
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.EqualTo(1));
        Assert.That(_d.Used(0).Len, Is.Zero, "no device-writable byte was met before the fault");
        Assert.That(_d.StatusOf(0), Is.EqualTo(0xFF));
        Assert.That(_d.Log.Entries.Single(), Does.Contain("wraps"));
        Assert.That(_d.Bus.Load(0, 8), Is.Zero, "nothing written at the wrapped-around address 0");
    }

    [Test]
    public void Loop_through_an_indirect_table_completes_with_IOERR()
    {
        var d = new VirtioTestDriver(_disk);
        d.Initialise(8, extraFeatures: 1UL << VirtioFeature.IndirectDesc);
        ulong table = 0x8_0000;
        d.WriteHeader(VirtioTestDriver.Headers, VirtioBlk.TypeFlush, 0);
        d.Write(VirtioTestDriver.Statuses, [0xFF]);
        d.WriteDescriptor(table, 0, VirtioTestDriver.Headers, 16, Virtq.DescFlagNext, 1);
        d.WriteDescriptor(table, 1, VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite | Virtq.DescFlagNext, 1);
        d.Submit(new Desc(table, 32, Virtq.DescFlagIndirect));
        d.Notify();
        Assert.That(d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(d.Log.Entries.Single(), Does.Contain("indirect descriptor 1 is reached twice"));
        Assert.That(_disk.Flushes, Is.Zero);
    }

    [Test]
    public void Chain_longer_than_QueueNumMax_through_an_indirect_table_completes_with_IOERR()
    {
        var d = new VirtioTestDriver(_disk);
        d.Initialise(8, extraFeatures: 1UL << VirtioFeature.IndirectDesc);
        ulong table = 0x8_0000;
        d.Write(VirtioTestDriver.Statuses, [0xFF]);
        d.Submit(new Desc(VirtioTestDriver.Statuses, 1, Virtq.DescFlagWrite), new Desc(table, 16 * 257, Virtq.DescFlagIndirect));
        d.Notify();
        Assert.That(d.StatusOf(0), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(d.Log.Entries.Single(), Does.Contain("chain limit of 256"));
    }
}
