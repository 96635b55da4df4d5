namespace HwMemModel.Devices.Virtio;

/// <summary>
/// Identification values of the virtio-mmio transport (virtio 1.2, section 4.2.2 "MMIO Device Register Layout") and
/// of QEMU's implementation (hw/virtio/virtio-mmio.c).
/// </summary>
public static class VirtioMmio
{
    /// <summary>The device-tree compatible string of a virtio-mmio window.</summary>
    public const string Compatible = "virtio,mmio";

    /// <summary>Size of the register window QEMU maps for one virtio-mmio transport (0x200 bytes).</summary>
    public const ulong WindowSize = 0x200;

    /// <summary>MagicValue: 0x74726976, the little-endian string "virt".</summary>
    public const uint Magic = 0x7472_6976;

    /// <summary>Version of the register layout: 2 for virtio 1.x devices (1 is the legacy layout).</summary>
    public const uint Version = 2;

    /// <summary>The VendorID QEMU reports: 0x554D4551, the little-endian string "QEMU".</summary>
    public const uint QemuVendorId = 0x554D_4551;

    /// <summary>InterruptStatus bit 0: the device used a buffer in at least one active virtqueue.</summary>
    public const uint InterruptUsedBuffer = 1;

    /// <summary>InterruptStatus bit 1: the device configuration changed (also signals DEVICE_NEEDS_RESET).</summary>
    public const uint InterruptConfigChange = 2;
}

/// <summary>
/// Offsets of the virtio-mmio registers, version 2 layout (virtio 1.2, section 4.2.2). Control registers are 32 bits
/// wide and must be accessed with aligned 32-bit reads and writes; the device-specific configuration space starts at
/// <see cref="Config"/>.
/// </summary>
public static class VirtioMmioRegister
{
    /// <summary>R: 0x74726976 ("virt").</summary>
    public const ulong MagicValue = 0x000;

    /// <summary>R: device version, 2.</summary>
    public const ulong Version = 0x004;

    /// <summary>R: virtio device ID (2 for a block device; 0 means no device).</summary>
    public const ulong DeviceId = 0x008;

    /// <summary>R: virtio subsystem vendor ID.</summary>
    public const ulong VendorId = 0x00C;

    /// <summary>R: 32 bits of the device feature bits, selected by <see cref="DeviceFeaturesSel"/>.</summary>
    public const ulong DeviceFeatures = 0x010;

    /// <summary>W: selects bits 32*n..32*n+31 of the device features.</summary>
    public const ulong DeviceFeaturesSel = 0x014;

    /// <summary>W: 32 bits of the features the driver accepts, selected by <see cref="DriverFeaturesSel"/>.</summary>
    public const ulong DriverFeatures = 0x020;

    /// <summary>W: selects bits 32*n..32*n+31 of the driver features.</summary>
    public const ulong DriverFeaturesSel = 0x024;

    /// <summary>Legacy (version 1) only: guest page size. Not implemented by version 2 devices.</summary>
    public const ulong LegacyGuestPageSize = 0x028;

    /// <summary>W: selects the virtqueue the queue registers refer to (0 is the first).</summary>
    public const ulong QueueSel = 0x030;

    /// <summary>R: largest queue size the device accepts for the selected queue; 0 when the queue does not exist.</summary>
    public const ulong QueueNumMax = 0x034;

    /// <summary>W: the queue size the driver uses for the selected queue.</summary>
    public const ulong QueueNum = 0x038;

    /// <summary>Legacy (version 1) only: used ring alignment.</summary>
    public const ulong LegacyQueueAlign = 0x03C;

    /// <summary>Legacy (version 1) only: queue page frame number.</summary>
    public const ulong LegacyQueuePfn = 0x040;

    /// <summary>RW: 1 lets the device use the selected queue; reads return the last value written.</summary>
    public const ulong QueueReady = 0x044;

    /// <summary>W: writing a queue index notifies the device that the queue has new buffers.</summary>
    public const ulong QueueNotify = 0x050;

    /// <summary>R: pending events: bit 0 used buffer, bit 1 configuration change.</summary>
    public const ulong InterruptStatus = 0x060;

    /// <summary>W: clears the InterruptStatus bits set in the value written.</summary>
    public const ulong InterruptAck = 0x064;

    /// <summary>RW: device status (ACKNOWLEDGE 1, DRIVER 2, DRIVER_OK 4, FEATURES_OK 8, DEVICE_NEEDS_RESET 64, FAILED 128); writing 0 resets the device.</summary>
    public const ulong Status = 0x070;

    /// <summary>W: low 32 bits of the descriptor area (descriptor table) address of the selected queue.</summary>
    public const ulong QueueDescLow = 0x080;

    /// <summary>W: high 32 bits of the descriptor area address.</summary>
    public const ulong QueueDescHigh = 0x084;

    /// <summary>W: low 32 bits of the driver area (available ring) address.</summary>
    public const ulong QueueDriverLow = 0x090;

    /// <summary>W: high 32 bits of the driver area address.</summary>
    public const ulong QueueDriverHigh = 0x094;

    /// <summary>W: low 32 bits of the device area (used ring) address.</summary>
    public const ulong QueueDeviceLow = 0x0A0;

    /// <summary>W: high 32 bits of the device area address.</summary>
    public const ulong QueueDeviceHigh = 0x0A4;

    /// <summary>W: selects a shared memory region (virtio 1.2).</summary>
    public const ulong ShmSel = 0x0AC;

    /// <summary>R: low 32 bits of the selected shared memory region's length; all ones when there is none.</summary>
    public const ulong ShmLenLow = 0x0B0;

    /// <summary>R: high 32 bits of the selected shared memory region's length.</summary>
    public const ulong ShmLenHigh = 0x0B4;

    /// <summary>R: low 32 bits of the selected shared memory region's base.</summary>
    public const ulong ShmBaseLow = 0x0B8;

    /// <summary>R: high 32 bits of the selected shared memory region's base.</summary>
    public const ulong ShmBaseHigh = 0x0BC;

    /// <summary>R: configuration atomicity value; changes whenever the configuration space may have changed.</summary>
    public const ulong ConfigGeneration = 0x0FC;

    /// <summary>Start of the device-specific configuration space (byte, word and dword accesses).</summary>
    public const ulong Config = 0x100;
}

/// <summary>Bits of the virtio device status field (virtio 1.2, section 2.1 "Device Status Field").</summary>
[Flags]
public enum VirtioStatus : byte
{
    /// <summary>Nothing set: the device is reset.</summary>
    None = 0,
    /// <summary>The guest OS found the device and recognised it as a virtio device.</summary>
    Acknowledge = 1,
    /// <summary>The guest OS knows how to drive the device.</summary>
    Driver = 2,
    /// <summary>The driver is set up and ready to drive the device.</summary>
    DriverOk = 4,
    /// <summary>The driver acknowledged the features it understands; feature negotiation is complete.</summary>
    FeaturesOk = 8,
    /// <summary>Set by the device: it hit an error it cannot recover from without a reset.</summary>
    DeviceNeedsReset = 64,
    /// <summary>Set by the driver: something went wrong and it gave up on the device.</summary>
    Failed = 128,
}

/// <summary>Device-independent feature bit numbers (virtio 1.2, section 6 "Reserved Feature Bits").</summary>
public static class VirtioFeature
{
    /// <summary>VIRTIO_F_INDIRECT_DESC (28): the driver may use descriptors with VIRTQ_DESC_F_INDIRECT.</summary>
    public const int IndirectDesc = 28;

    /// <summary>VIRTIO_F_EVENT_IDX (29): used_event and avail_event fields suppress notifications.</summary>
    public const int EventIdx = 29;

    /// <summary>VIRTIO_F_VERSION_1 (32): compliance with virtio 1.x; a device must offer it.</summary>
    public const int Version1 = 32;
}

/// <summary>Split virtqueue layout (virtio 1.2, section 2.7 "Split Virtqueues").</summary>
public static class Virtq
{
    /// <summary>Bytes per descriptor: le64 addr, le32 len, le16 flags, le16 next.</summary>
    public const int DescriptorSize = 16;

    /// <summary>VIRTQ_DESC_F_NEXT: the chain continues with the descriptor in <c>next</c>.</summary>
    public const ushort DescFlagNext = 1;

    /// <summary>VIRTQ_DESC_F_WRITE: the buffer is device-writable (otherwise device-readable).</summary>
    public const ushort DescFlagWrite = 2;

    /// <summary>VIRTQ_DESC_F_INDIRECT: the buffer is a table of descriptors.</summary>
    public const ushort DescFlagIndirect = 4;

    /// <summary>VIRTQ_AVAIL_F_NO_INTERRUPT: the driver does not want used buffer notifications.</summary>
    public const ushort AvailFlagNoInterrupt = 1;

    /// <summary>VIRTQ_USED_F_NO_NOTIFY: the device does not want available buffer notifications.</summary>
    public const ushort UsedFlagNoNotify = 1;

    /// <summary>Alignment of the descriptor table in bytes.</summary>
    public const int DescriptorTableAlignment = 16;

    /// <summary>Alignment of the available ring in bytes.</summary>
    public const int AvailableRingAlignment = 2;

    /// <summary>Alignment of the used ring in bytes.</summary>
    public const int UsedRingAlignment = 4;

    /// <summary>Largest queue size: 32768.</summary>
    public const int MaxQueueSize = 32768;

    /// <summary>Bytes of a descriptor table for <paramref name="queueSize"/> entries.</summary>
    public static ulong DescriptorTableSize(int queueSize) => (ulong)queueSize * DescriptorSize;

    /// <summary>Bytes of an available ring: flags, idx, ring[queueSize], used_event.</summary>
    public static ulong AvailableRingSize(int queueSize) => 6 + 2 * (ulong)queueSize;

    /// <summary>Bytes of a used ring: flags, idx, ring[queueSize] of {le32 id, le32 len}, avail_event.</summary>
    public static ulong UsedRingSize(int queueSize) => 6 + 8 * (ulong)queueSize;
}
