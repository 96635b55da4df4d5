using HwMemModel.Bus;
using HwMemModel.Drivers.Block;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;
using static HwMemModel.Drivers.Tests.VirtioBlkTestSupport;

namespace HwMemModel.Drivers.Tests;

/// <summary>
/// Probe against a scripted virtio-mmio register window (a test double on the bus, not the device model), for the
/// identification checks and negotiation failures the real disk never shows.
/// </summary>
public sealed class VirtioBlkTransportTests
{
    private const ulong FakeBase = 0xFEB0_3000;
    private const int FakeIrq = 19;
    private const uint Acknowledge = 1, Driver = 2, DriverOk = 4, FeaturesOk = 8, Failed = 128;
    private const ulong Version1 = 1UL << 32, Ro = 1UL << 5, BlkSize = 1UL << 6, Flush = 1UL << 9;

    [Test]
    public void A_legacy_version_1_device_is_refused_with_ENODEV_and_a_log_line()
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { Version = 1 });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-Errno.ENODEV));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("fake0: legacy virtio-mmio (version 1) is not supported"));
        Assert.That(fake.StatusWrites, Is.Empty, "the device is left alone");
        AssertNothingLeft(machine);
    }

    [Test]
    public void An_unknown_register_layout_version_is_refused_with_ENXIO()
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { Version = 3 });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-Errno.ENXIO));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("fake0: Version 3 not supported!"));
        Assert.That(fake.StatusWrites, Is.Empty);
        AssertNothingLeft(machine);
    }

    [Test]
    public void A_wrong_magic_value_is_refused_with_ENODEV()
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { Magic = 0x1234_5678 });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-Errno.ENODEV));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("fake0: Wrong magic value 0x12345678!"));
        Assert.That(fake.StatusWrites, Is.Empty);
        AssertNothingLeft(machine);
    }

    [TestCase(0u)] // a placeholder: no device behind the window
    [TestCase(1u)] // a network device: another driver's
    public void Another_device_id_is_refused_quietly(uint deviceId)
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { DeviceId = deviceId });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-Errno.ENODEV));
        Assert.That(machine.Kernel.Log.Lines, Has.None.Contains("fake0"));
        Assert.That(fake.StatusWrites, Is.Empty);
        AssertNothingLeft(machine);
    }

    [Test]
    public void A_device_without_VERSION_1_gets_FAILED()
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { Features = Flush | BlkSize });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-Errno.ENODEV));
        Assert.That(fake.StatusWrites, Is.EqualTo(new uint[] { 0, Acknowledge, Acknowledge | Driver, Acknowledge | Driver | Failed }));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("VIRTIO_F_VERSION_1"));
        AssertNothingLeft(machine);
    }

    [Test]
    public void A_device_that_refuses_FEATURES_OK_gets_FAILED()
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { RefuseFeaturesOk = true });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-Errno.ENODEV));
        // FEATURES_OK written, read back clear, then FAILED added to what the device shows (section 3.1.1 steps 5-6, 8).
        Assert.That(fake.StatusWrites, Is.EqualTo(new uint[] { 0, Acknowledge, Acknowledge | Driver, Acknowledge | Driver | FeaturesOk, Acknowledge | Driver | Failed }));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("device refuses features"));
        AssertNothingLeft(machine);
    }

    [Test]
    public void A_missing_queue_0_gets_FAILED_and_ENOENT()
    {
        var (provider, machine, fake, rc) = Probe(new FakeVirtioMmio { QueueNumMax = 0 });
        using var _ = provider;
        Assert.That(rc, Is.EqualTo(-2)); // -ENOENT, as vm_setup_vq
        Assert.That(fake.Status & Failed, Is.EqualTo(Failed));
        Assert.That(fake.Status & DriverOk, Is.Zero);
        AssertNothingLeft(machine);
    }

    [Test]
    public void Negotiation_accepts_only_implemented_features_and_the_queue_is_laid_out_as_the_spec_aligns_it()
    {
        var fake = new FakeVirtioMmio { Features = ulong.MaxValue, QueueNumMax = 1000 };
        var (provider, machine, _, rc) = Probe(fake);
        using var _p = provider;
        Assert.That(rc, Is.Zero);
        Assert.That(fake.DriverFeatures, Is.EqualTo(Version1 | Ro | BlkSize | Flush));
        // QueueNumMax 1000: the largest power of two not above it is 512; the driver caps the queue at MaxQueueSize.
        Assert.That(fake.QueueNum, Is.EqualTo((uint)Math.Min(512, VirtioBlkDriver.MaxQueueSize)));
        Assert.That(fake.QueueDesc % 16, Is.Zero, "descriptor table 16-byte aligned");
        Assert.That(fake.QueueDriver % 2, Is.Zero, "available ring 2-byte aligned");
        Assert.That(fake.QueueDevice % 4, Is.Zero, "used ring 4-byte aligned");
        ulong n = fake.QueueNum;
        Assert.That(fake.QueueDriver, Is.GreaterThanOrEqualTo(fake.QueueDesc + 16 * n), "rings do not overlap");
        Assert.That(fake.QueueDevice, Is.GreaterThanOrEqualTo(fake.QueueDriver + 6 + 2 * n));
        // All three live in one coherent allocation of the device.
        var ring = machine.Kernel.DmaMappings.Single(m => m.Device == "fake0" && m.Coherent && m.BusAddress == fake.QueueDesc);
        Assert.That(fake.QueueDevice + 6 + 8 * n, Is.LessThanOrEqualTo(ring.BusAddress + ring.Size));
        Assert.That(fake.QueueReady, Is.EqualTo(1u));
        Assert.That(fake.Status, Is.EqualTo(Acknowledge | Driver | FeaturesOk | DriverOk));
        var disk = machine.Drivers.Find("fake0")!.DriverData as VirtioBlkDisk;
        Assert.That(disk, Is.Not.Null);
        Assert.That(disk!.ReadOnly, Is.True, "VIRTIO_BLK_F_RO was offered and taken");
        Assert.That(disk.BlockSize, Is.EqualTo(4096u));
        Assert.That(machine.Drivers.Unbind(machine.Drivers.Find("fake0")!), Is.True);
        Assert.That(fake.StatusWrites[^1], Is.Zero, "remove resets the device");
        AssertNothingLeft(machine);
    }

    [Test]
    public void The_capacity_is_read_again_when_the_configuration_generation_changes_during_the_read()
    {
        // The first read of the capacity sees the old value, and the generation moves on meanwhile (the device changed it).
        var fake = new FakeVirtioMmio { Capacity = 0x1_0000_0010, CapacityAfterChange = 0x2_0000_0020, ChangeDuringFirstRead = true };
        var (provider, machine, _, rc) = Probe(fake);
        using var _p = provider;
        Assert.That(rc, Is.Zero);
        var disk = (VirtioBlkDisk)machine.Drivers.Find("fake0")!.DriverData!;
        Assert.That(disk.Capacity, Is.EqualTo(0x2_0000_0020UL));
        Assert.That(fake.GenerationReads, Is.GreaterThanOrEqualTo(4), "two generation reads per attempt, two attempts");
    }

    private static (IDisposable Provider, SimulatedMachine Machine, FakeVirtioMmio Fake, int Rc) Probe(FakeVirtioMmio fake)
    {
        var (provider, machine) = TestMachine.Start(Machine.Description.MachineDescription.Default, s => s.AddPlatformDriver<VirtioBlkDriver>());
        machine.Bus.AddMmio("fake0", FakeBase, 0x200, fake);
        var device = new PlatformDevice("fake0", ["virtio,mmio"],
            [new DeviceResource(ResourceKind.Memory, FakeBase, 0x200, "fake0"), new DeviceResource(ResourceKind.Irq, FakeIrq, 1, "fake0", IrqTrigger.LevelHigh)]);
        int rc = machine.Drivers.RegisterDevice(device);
        return (provider, machine, fake, rc);
    }

    private static void AssertNothingLeft(SimulatedMachine machine)
    {
        var dev = machine.Drivers.Find("fake0")!;
        Assert.That(dev.Driver, Is.Null);
        Assert.That(dev.ManagedResources, Is.Empty);
        Assert.That(machine.Kernel.DmaMappings.Where(m => m.Device == "fake0"), Is.Empty);
        Assert.That(IrqActions(machine, FakeIrq), Is.Empty);
        machine.Kernel.VmUnmapAliases();
        Assert.That(machine.Kernel.VmAreas().Where(a => a.PhysAddr == FakeBase), Is.Empty);
    }

    /// <summary>A scripted virtio-mmio version 2 register window: identification, features, status, queue 0, configuration.</summary>
    private sealed class FakeVirtioMmio : IMmioDevice
    {
        private uint _featuresSel, _driverFeaturesSel, _generation;
        private bool _changed;

        public uint Magic { get; init; } = 0x7472_6976;
        public uint Version { get; init; } = 2;
        public uint DeviceId { get; init; } = 2;
        public ulong Features { get; init; } = Version1 | Flush;
        public bool RefuseFeaturesOk { get; init; }
        public uint QueueNumMax { get; init; } = 256;
        public ulong Capacity { get; init; } = 2048;
        public ulong CapacityAfterChange { get; init; }
        public bool ChangeDuringFirstRead { get; init; }

        public List<uint> StatusWrites { get; } = [];
        public uint Status { get; private set; }
        public ulong DriverFeatures { get; private set; }
        public uint QueueNum { get; private set; }
        public uint QueueReady { get; private set; }
        public ulong QueueDesc { get; private set; }
        public ulong QueueDriver { get; private set; }
        public ulong QueueDevice { get; private set; }
        public int GenerationReads { get; private set; }

        public string Name => "fake0";
        public AccessConstraints Valid => AccessConstraints.Any;
        public AccessConstraints Impl => AccessConstraints.Any;

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            ulong capacity = _changed ? CapacityAfterChange : Capacity;
            value = offset switch
            {
                0x000 => Magic,
                0x004 => Version,
                0x008 => DeviceId,
                0x00C => 0x554D_4551,
                0x010 => _featuresSel == 0 ? (uint)Features : _featuresSel == 1 ? (uint)(Features >> 32) : 0,
                0x034 => QueueNumMax,
                0x044 => QueueReady,
                0x060 => 0,
                0x070 => Status,
                0x0FC => Generation(),
                0x100 => (uint)capacity,
                0x104 => ReadCapacityHigh(capacity),
                0x114 => 4096,
                _ => 0,
            };
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            uint v = (uint)value;
            switch (offset)
            {
                case 0x014: _featuresSel = v; break;
                case 0x020:
                    DriverFeatures = _driverFeaturesSel == 0 ? (DriverFeatures & ~0xFFFF_FFFFUL) | v : (DriverFeatures & 0xFFFF_FFFFUL) | ((ulong)v << 32);
                    break;
                case 0x024: _driverFeaturesSel = v; break;
                case 0x038: QueueNum = v; break;
                case 0x044: QueueReady = v; break;
                case 0x070:
                    StatusWrites.Add(v);
                    Status = RefuseFeaturesOk ? v & ~FeaturesOk : v;
                    if (v == 0) QueueReady = 0;
                    break;
                case 0x080: QueueDesc = (QueueDesc & ~0xFFFF_FFFFUL) | v; break;
                case 0x084: QueueDesc = (QueueDesc & 0xFFFF_FFFFUL) | ((ulong)v << 32); break;
                case 0x090: QueueDriver = (QueueDriver & ~0xFFFF_FFFFUL) | v; break;
                case 0x094: QueueDriver = (QueueDriver & 0xFFFF_FFFFUL) | ((ulong)v << 32); break;
                case 0x0A0: QueueDevice = (QueueDevice & ~0xFFFF_FFFFUL) | v; break;
                case 0x0A4: QueueDevice = (QueueDevice & 0xFFFF_FFFFUL) | ((ulong)v << 32); break;
            }
            return BusStatus.Ok;
        }

        private uint Generation()
        {
            GenerationReads++;
            return _generation;
        }

        // The configuration changes between the two halves of the first capacity read: the high half comes from the new value.
        private uint ReadCapacityHigh(ulong capacity)
        {
            if (ChangeDuringFirstRead && !_changed)
            {
                _changed = true;
                _generation++;
                return (uint)(CapacityAfterChange >> 32);
            }
            return (uint)(capacity >> 32);
        }
    }
}
