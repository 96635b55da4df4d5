namespace HwMemModel.Drivers.Block;

/// <summary>
/// The driver's own copy of the virtio-mmio register layout (virtio 1.2, section 4.2.2; Linux's
/// include/uapi/linux/virtio_mmio.h), version 2. Control registers take aligned 32-bit accesses.
/// </summary>
internal static class VirtioMmioRegs
{
    public const ulong MagicValue = 0x000;
    public const ulong Version = 0x004;
    public const ulong DeviceId = 0x008;
    public const ulong VendorId = 0x00C;
    public const ulong DeviceFeatures = 0x010;
    public const ulong DeviceFeaturesSel = 0x014;
    public const ulong DriverFeatures = 0x020;
    public const ulong DriverFeaturesSel = 0x024;
    public const ulong QueueSel = 0x030;
    public const ulong QueueNumMax = 0x034;
    public const ulong QueueNum = 0x038;
    public const ulong QueueReady = 0x044;
    public const ulong QueueNotify = 0x050;
    public const ulong InterruptStatus = 0x060;
    public const ulong InterruptAck = 0x064;
    public const ulong Status = 0x070;
    public const ulong QueueDescLow = 0x080;
    public const ulong QueueDescHigh = 0x084;
    public const ulong QueueDriverLow = 0x090;
    public const ulong QueueDriverHigh = 0x094;
    public const ulong QueueDeviceLow = 0x0A0;
    public const ulong QueueDeviceHigh = 0x0A4;
    public const ulong ConfigGeneration = 0x0FC;
    public const ulong Config = 0x100;

    /// <summary>"virt" in little-endian.</summary>
    public const uint Magic = 0x7472_6976;
    /// <summary>The virtio 1.x register layout.</summary>
    public const uint ModernVersion = 2;
    /// <summary>The legacy (virtio 0.9.5) layout, which this driver does not implement.</summary>
    public const uint LegacyVersion = 1;

    /// <summary>InterruptStatus bit 0: a buffer was used.</summary>
    public const uint InterruptVring = 1;
    /// <summary>InterruptStatus bit 1: the configuration changed.</summary>
    public const uint InterruptConfig = 2;
}

/// <summary>Device status bits (virtio 1.2, section 2.1).</summary>
internal static class VirtioStatusBits
{
    public const uint Acknowledge = 1;
    public const uint Driver = 2;
    public const uint DriverOk = 4;
    public const uint FeaturesOk = 8;
    public const uint DeviceNeedsReset = 64;
    public const uint Failed = 128;
}

/// <summary>Split virtqueue layout (virtio 1.2, section 2.7).</summary>
internal static class VirtqLayout
{
    public const int DescriptorSize = 16;
    public const ushort DescFlagNext = 1;
    public const ushort DescFlagWrite = 2;
    public const ushort UsedFlagNoNotify = 1;
    public const ulong DescriptorAlignment = 16;
    public const ulong AvailableAlignment = 2;
    public const ulong UsedAlignment = 4;
}

/// <summary>virtio-blk (virtio 1.2, section 5.2; Linux's include/uapi/linux/virtio_blk.h).</summary>
internal static class VirtioBlkDefs
{
    /// <summary>VIRTIO_ID_BLOCK.</summary>
    public const uint DeviceId = 2;
    public const int SectorSize = 512;
    public const int RequestHeaderSize = 16;

    /// <summary>VIRTIO_F_VERSION_1.</summary>
    public const int FeatureVersion1 = 32;
    /// <summary>VIRTIO_BLK_F_RO.</summary>
    public const int FeatureRo = 5;
    /// <summary>VIRTIO_BLK_F_BLK_SIZE.</summary>
    public const int FeatureBlkSize = 6;
    /// <summary>VIRTIO_BLK_F_FLUSH.</summary>
    public const int FeatureFlush = 9;

    /// <summary>struct virtio_blk_config: le64 capacity.</summary>
    public const ulong ConfigCapacity = 0;
    /// <summary>struct virtio_blk_config: le32 blk_size.</summary>
    public const ulong ConfigBlkSize = 20;

    public const uint TypeIn = 0;
    public const uint TypeOut = 1;
    public const uint TypeFlush = 4;

    public const byte StatusOk = 0;
    public const byte StatusIoErr = 1;
    public const byte StatusUnsupp = 2;
}
