using HwMemModel.Devices.Virtio;
using R = HwMemModel.Devices.Virtio.VirtioMmioRegister;
using S = HwMemModel.Devices.Virtio.VirtioStatus;

namespace HwMemModel.Devices.Tests.Virtio;

/// <summary>The virtio-mmio register interface (virtio 1.2 section 4.2.2) and feature negotiation (section 2.2, 3.1).</summary>
public sealed class VirtioMmioTransportTests
{
    private const long DiskBytes = 1024 * 1024; // 2048 sectors

    private MemoryBlockBackend _disk = null!;
    private VirtioTestDriver _d = null!;

    [SetUp]
    public void SetUp()
    {
        _disk = new MemoryBlockBackend(DiskBytes);
        _d = new VirtioTestDriver(_disk);
    }

    [Test]
    public void Identification_registers_read_magic_version_2_block_device_and_QEMU_vendor()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_d.Reg(R.MagicValue), Is.EqualTo(0x74726976u), "MagicValue 'virt'");
            Assert.That(_d.Reg(R.Version), Is.EqualTo(2u), "non-legacy layout");
            Assert.That(_d.Reg(R.DeviceId), Is.EqualTo(2u), "block device");
            Assert.That(_d.Reg(R.VendorId), Is.EqualTo(0x554D4551u), "'QEMU'");
        });
    }

    [Test]
    public void Register_offsets_follow_the_version_2_layout()
    {
        Assert.Multiple(() =>
        {
            Assert.That(R.QueueReady, Is.EqualTo(0x044));
            Assert.That(R.QueueNotify, Is.EqualTo(0x050));
            Assert.That(R.InterruptStatus, Is.EqualTo(0x060));
            Assert.That(R.Status, Is.EqualTo(0x070));
            Assert.That(R.QueueDeviceHigh, Is.EqualTo(0x0A4));
            Assert.That(R.ConfigGeneration, Is.EqualTo(0x0FC));
            Assert.That(R.Config, Is.EqualTo(0x100));
        });
    }

    [Test]
    public void Config_capacity_is_the_disk_length_in_512_byte_sectors()
    {
        ulong low = _d.Reg(R.Config + 0);
        ulong high = _d.Reg(R.Config + 4);
        Assert.That(low | (high << 32), Is.EqualTo(2048UL));
    }

    [Test]
    public void Config_space_takes_byte_and_word_reads()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_d.Bus.Load(VirtioTestDriver.DeviceBase + R.Config + 1, 1), Is.EqualTo(0x08UL), "2048 = 0x0800: byte 1");
            Assert.That(_d.Bus.Load(VirtioTestDriver.DeviceBase + R.Config + 0, 2), Is.EqualTo(0x0800UL));
            Assert.That(_d.Reg(R.Config + 20), Is.EqualTo(512u), "blk_size");
            Assert.That(_d.Reg(R.Config + 12), Is.EqualTo(254u), "seg_max = queue size 256 - 2");
        });
    }

    [Test]
    public void Config_reads_beyond_the_block_configuration_return_all_ones()
    {
        Assert.That(_d.Reg(R.Config + 0x40), Is.EqualTo(0xFFFF_FFFFu));
    }

    [Test]
    public void Device_offers_version_1_flush_blk_size_seg_max_but_not_read_only_for_a_writable_disk()
    {
        ulong features = _d.DeviceFeatures();
        Assert.Multiple(() =>
        {
            Assert.That(features & (1UL << 32), Is.Not.Zero, "VIRTIO_F_VERSION_1");
            Assert.That(features & (1UL << 9), Is.Not.Zero, "VIRTIO_BLK_F_FLUSH");
            Assert.That(features & (1UL << 6), Is.Not.Zero, "VIRTIO_BLK_F_BLK_SIZE");
            Assert.That(features & (1UL << 2), Is.Not.Zero, "VIRTIO_BLK_F_SEG_MAX");
            Assert.That(features & (1UL << 5), Is.Zero, "VIRTIO_BLK_F_RO");
        });
    }

    [Test]
    public void Device_features_above_bit_63_read_zero()
    {
        _d.SetReg(R.DeviceFeaturesSel, 2);
        Assert.That(_d.Reg(R.DeviceFeatures), Is.Zero);
    }

    [Test]
    public void Initialisation_sequence_keeps_every_status_bit_the_driver_sets()
    {
        _d.SetReg(R.Status, 0);
        Assert.That(_d.Reg(R.Status), Is.Zero);
        _d.SetReg(R.Status, (uint)S.Acknowledge);
        Assert.That(_d.Reg(R.Status), Is.EqualTo(1u));
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver));
        Assert.That(_d.Reg(R.Status), Is.EqualTo(3u));
        _d.WriteDriverFeatures(_d.DeviceFeatures());
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver | S.FeaturesOk));
        Assert.That(_d.Reg(R.Status), Is.EqualTo(11u), "FEATURES_OK re-read still set");
        _d.SetUpQueue(8);
        Assert.That(_d.Reg(R.QueueReady), Is.EqualTo(1u));
        _d.DriverOk();
        Assert.That(_d.Reg(R.Status), Is.EqualTo(15u));
        Assert.That(_d.Device.NegotiatedFeatures, Is.EqualTo(_d.Device.DeviceFeatures));
        Assert.That(_d.Log.Entries, Is.Empty);
    }

    [Test]
    public void Features_OK_is_refused_without_VERSION_1()
    {
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver));
        _d.WriteDriverFeatures(1UL << 9);
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver | S.FeaturesOk));
        Assert.That(_d.Reg(R.Status) & (uint)S.FeaturesOk, Is.Zero);
        Assert.That(_d.Reg(R.Status), Is.EqualTo(3u), "the other bits stay");
        Assert.That(_d.Log.Entries, Has.Some.Contains("VERSION_1"));
    }

    [Test]
    public void Features_OK_is_refused_for_a_feature_the_device_does_not_offer()
    {
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver));
        _d.WriteDriverFeatures(VirtioTestDriver.Version1 | (1UL << 12)); // VIRTIO_BLK_F_MQ
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver | S.FeaturesOk));
        Assert.That(_d.Reg(R.Status) & (uint)S.FeaturesOk, Is.Zero);
        Assert.That(_d.Device.NegotiatedFeatures, Is.Zero);
    }

    [Test]
    public void Selecting_another_queue_reads_QueueNumMax_0()
    {
        Assert.That(_d.Reg(R.QueueNumMax), Is.EqualTo(256u));
        _d.SetReg(R.QueueSel, 1);
        Assert.That(_d.Reg(R.QueueNumMax), Is.Zero);
        Assert.That(_d.Reg(R.QueueReady), Is.Zero);
    }

    [Test]
    public void QueueNum_larger_than_QueueNumMax_or_not_a_power_of_two_is_ignored()
    {
        _d.SetReg(R.QueueNum, 512);
        Assert.That(_d.Device.QueueSize, Is.EqualTo(256));
        _d.SetReg(R.QueueNum, 12);
        Assert.That(_d.Device.QueueSize, Is.EqualTo(256));
        _d.SetReg(R.QueueNum, 16);
        Assert.That(_d.Device.QueueSize, Is.EqualTo(16));
        Assert.That(_d.Log.Entries, Has.Count.EqualTo(2));
    }

    [Test]
    public void Queue_registers_are_ignored_while_the_queue_is_ready()
    {
        _d.Initialise(8);
        _d.SetReg(R.QueueNum, 4);
        _d.SetReg(R.QueueDescLow, 0x8000);
        Assert.That(_d.Device.QueueSize, Is.EqualTo(8));
        Assert.That(_d.Log.Entries, Has.Count.EqualTo(2).And.All.Contains("ready"));
    }

    [Test]
    public void Byte_access_to_a_control_register_reads_0_and_is_reported()
    {
        Assert.That(_d.Bus.Load(VirtioTestDriver.DeviceBase + R.MagicValue, 1), Is.Zero);
        Assert.That(_d.Log.Entries.Single(), Does.Contain("32-bit"));
    }

    [Test]
    public void Word_write_to_Status_is_ignored()
    {
        _d.Bus.Store(VirtioTestDriver.DeviceBase + R.Status, 1, 2);
        Assert.That(_d.Reg(R.Status), Is.Zero);
        Assert.That(_d.Log.Entries, Has.Count.EqualTo(1));
    }

    [Test]
    public void Eight_byte_access_to_a_control_register_is_reported_not_refused()
    {
        Assert.That(_d.Bus.Load(VirtioTestDriver.DeviceBase + R.MagicValue, 8), Is.Zero);
    }

    [Test]
    public void Writing_0_to_Status_resets_status_interrupts_and_queue()
    {
        _d.Initialise(8);
        Assert.That(_d.Do(0, VirtioBlk.TypeFlush, 0, 0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_d.Device.IrqLine, Is.True);

        _d.SetReg(R.Status, 0);
        Assert.Multiple(() =>
        {
            Assert.That(_d.Reg(R.Status), Is.Zero);
            Assert.That(_d.Reg(R.InterruptStatus), Is.Zero);
            Assert.That(_d.Device.IrqLine, Is.False);
            Assert.That(_d.Reg(R.QueueReady), Is.Zero);
            Assert.That(_d.Device.NegotiatedFeatures, Is.Zero);
            Assert.That(_d.Device.UsedIndex, Is.Zero);
        });
    }

    [Test]
    public void After_a_reset_the_device_serves_a_freshly_initialised_queue()
    {
        _d.Initialise(8);
        _d.Do(0, VirtioBlk.TypeFlush, 0, 0);
        _d.Do(1, VirtioBlk.TypeFlush, 0, 0);
        _d.SetReg(R.Status, 0);

        _d.Initialise(8);
        Assert.That(_d.Do(0, VirtioBlk.TypeFlush, 0, 0), Is.EqualTo(VirtioBlk.StatusOk));
        Assert.That(_d.UsedIdx, Is.EqualTo(1), "indices start again at 0");
    }

    [Test]
    public void Notification_before_DRIVER_OK_is_ignored()
    {
        Assert.That(_d.Negotiate(), Is.True);
        _d.SetUpQueue(8);
        _d.SubmitRequest(0, VirtioBlk.TypeFlush, 0, 0);
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.Zero);
        Assert.That(_d.StatusOf(0), Is.EqualTo(0xFF), "status untouched");
        Assert.That(_d.Log.Entries, Has.Some.Contains("before DRIVER_OK"));

        _d.DriverOk();
        _d.Notify();
        Assert.That(_d.UsedIdx, Is.EqualTo(1), "the buffer made available earlier is used now");
    }

    [Test]
    public void Writes_to_read_only_registers_are_ignored()
    {
        _d.SetReg(R.MagicValue, 0);
        _d.SetReg(R.InterruptStatus, 3);
        Assert.That(_d.Reg(R.MagicValue), Is.EqualTo(0x74726976u));
        Assert.That(_d.Reg(R.InterruptStatus), Is.Zero);
        Assert.That(_d.Log.Entries, Has.Count.EqualTo(2));
    }

    [Test]
    public void Driver_features_written_after_FEATURES_OK_are_ignored()
    {
        Assert.That(_d.Negotiate(), Is.True);
        ulong negotiated = _d.Device.NegotiatedFeatures;
        _d.WriteDriverFeatures(VirtioTestDriver.Version1 | (1UL << 9));
        _d.SetReg(R.Status, (uint)(S.Acknowledge | S.Driver | S.FeaturesOk));
        Assert.That(_d.Device.NegotiatedFeatures, Is.EqualTo(negotiated));
    }

    [Test]
    public void Capacity_change_bumps_ConfigGeneration_and_raises_a_configuration_interrupt()
    {
        var image = new byte[4096];
        var disk = new ResizableBackend(image);
        var d = new VirtioTestDriver(disk);
        d.Initialise(8);
        uint generation = d.Reg(R.ConfigGeneration);

        disk.Length = 8192;
        d.Device.RefreshCapacity();

        Assert.That(d.Reg(R.ConfigGeneration), Is.Not.EqualTo(generation));
        Assert.That(d.Reg(R.Config), Is.EqualTo(16u));
        Assert.That(d.Reg(R.InterruptStatus), Is.EqualTo(2u), "configuration change");
        Assert.That(d.Device.IrqLine, Is.True);
    }

    [Test]
    public void Bad_constructor_arguments_throw()
    {
        var bus = new HwMemModel.Bus.PhysicalBus();
        Assert.Multiple(() =>
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new VirtioMmioBlock(bus, _disk, queueSize: 100));
            Assert.Throws<ArgumentException>(() => new VirtioMmioBlock(bus, _disk, serial: "this serial is far too long"));
            Assert.Throws<ArgumentNullException>(() => new VirtioMmioBlock(bus, null!));
        });
    }

    /// <summary>A backend whose length the test changes, to model a host-side resize.</summary>
    private sealed class ResizableBackend(byte[] data) : IBlockBackend
    {
        public long Length { get; set; } = data.Length;

        public bool ReadOnly => false;

        public bool Read(long offset, Span<byte> destination) => false;

        public bool Write(long offset, ReadOnlySpan<byte> source) => false;

        public bool Flush() => true;
    }
}
