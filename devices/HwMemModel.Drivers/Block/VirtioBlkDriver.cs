using System.Globalization;
using System.Numerics;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using Microsoft.Extensions.Logging;
using R = HwMemModel.Drivers.Block.VirtioMmioRegs;
using S = HwMemModel.Drivers.Block.VirtioStatusBits;

namespace HwMemModel.Drivers.Block;

/// <summary>
/// A virtio-blk driver over the virtio-mmio transport ("virtio,mmio"), after Linux's drivers/virtio/virtio_mmio.c and
/// drivers/block/virtio_blk.c, written from the virtio 1.2 specification against the kernel model's services only.
/// </summary>
/// <remarks>
/// <para>Probe maps the register window (devm), checks MagicValue, Version 2 (a legacy version 1 device is refused
/// with -ENODEV and a log line, other versions with -ENXIO) and DeviceID 2 (another device class: -ENODEV, quietly),
/// then runs the initialisation of virtio 1.2 section 3.1.1: reset, ACKNOWLEDGE, DRIVER, feature negotiation
/// (VIRTIO_F_VERSION_1 required; VIRTIO_BLK_F_RO, _BLK_SIZE and _FLUSH taken when offered, nothing else), FEATURES_OK
/// and its re-read, the configuration (capacity read as two 32-bit halves between equal ConfigGeneration reads),
/// queue 0 in one zeroed coherent allocation (descriptor table, available ring, used ring at their 16/2/4-byte
/// alignments, then the request header and status byte), a 64 KiB coherent bounce buffer, the interrupt (shared, as
/// virtio-mmio requests it), QueueReady and DRIVER_OK. Everything is managed (devm_*/dmam_*), so a failed probe
/// leaves nothing behind; once ACKNOWLEDGE is set a failure also sets FAILED in the device status, as section 3.1.1
/// asks.</para>
/// <para>Requests are synchronous, one at a time: a chain of header (device-readable), data and status
/// (device-writable) published in the available ring, a QueueNotify, and a wait for the used-buffer interrupt.</para>
/// <para>Remove resets the device (Status 0) so it lets go of the rings before the managed resources are released.</para>
/// </remarks>
public sealed class VirtioBlkDriver : IPlatformDriver
{
    /// <summary>The largest queue the driver sets up (one request is in flight at a time; 128 entries fit the rings, header and status in one page).</summary>
    public const int MaxQueueSize = 128;
    /// <summary>Bytes of the coherent bounce buffer the host-span I/O calls go through; larger requests are split.</summary>
    public const int BounceBufferSize = 64 * 1024;

    private const int Enoent = 2; // ENOENT, as vm_setup_vq returns for a missing or busy queue.
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly IDmaApi _dma;
    private readonly IDevresApi _devres;
    private readonly KernelMemory _memory;
    private readonly ILogger<VirtioBlkDriver> _log;
    private readonly Dictionary<string, VirtioBlkDisk> _disks = new(StringComparer.Ordinal);

    /// <summary>Creates the driver with the kernel-model services it uses.</summary>
    public VirtioBlkDriver(IIoMemApi io, IIrqApi irq, IDmaApi dma, IDevresApi devres, KernelMemory memory, ILogger<VirtioBlkDriver> log)
    {
        _io = io ?? throw new ArgumentNullException(nameof(io));
        _irq = irq ?? throw new ArgumentNullException(nameof(irq));
        _dma = dma ?? throw new ArgumentNullException(nameof(dma));
        _devres = devres ?? throw new ArgumentNullException(nameof(devres));
        _memory = memory ?? throw new ArgumentNullException(nameof(memory));
        _log = log ?? throw new ArgumentNullException(nameof(log));
    }

    /// <inheritdoc />
    public string Name => "virtio_blk";

    /// <inheritdoc />
    public IReadOnlyList<string> Compatible { get; } = ["virtio,mmio"];

    /// <summary>The bound disks by device name.</summary>
    public IReadOnlyDictionary<string, VirtioBlkDisk> Disks => _disks;

    /// <inheritdoc />
    public int Probe(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.GetResource(ResourceKind.Memory) is not { } window || window.Size < R.Config + 8)
            return -Errno.ENODEV;
        int irq = device.GetIrq();
        if (irq < 0)
        {
            _log.LogWarning("{Device}: no interrupt line; virtio-mmio needs one", device.Name);
            return irq;
        }

        ulong regs = _devres.DevmPlatformIoRemapResource(device);
        if (regs == 0) return -Errno.ENOMEM;

        // virtio_mmio_probe: identify the transport and the device class.
        uint magic = _io.ReadL(regs + R.MagicValue);
        if (magic != R.Magic)
        {
            _log.LogWarning("{Device}: Wrong magic value 0x{Magic:x8}!", device.Name, magic);
            return -Errno.ENODEV;
        }
        uint version = _io.ReadL(regs + R.Version);
        if (version == R.LegacyVersion)
        {
            _log.LogWarning("{Device}: legacy virtio-mmio (version 1) is not supported; this driver needs a version 2 (virtio 1.x) device", device.Name);
            return -Errno.ENODEV;
        }
        if (version != R.ModernVersion)
        {
            _log.LogWarning("{Device}: Version {Version} not supported!", device.Name, version);
            return -Errno.ENXIO;
        }
        uint deviceId = _io.ReadL(regs + R.DeviceId);
        if (deviceId != VirtioBlkDefs.DeviceId) return -Errno.ENODEV; // 0 is a placeholder; others are other drivers' devices.

        // Version 2 devices take 64-bit DMA addresses (virtio_mmio_probe).
        if (_dma.DmaSetMaskAndCoherent(device, ulong.MaxValue) != 0 && _dma.DmaSetMaskAndCoherent(device, uint.MaxValue) != 0)
            _log.LogWarning("{Device}: Unable to set the DMA mask; using the default", device.Name);

        var dev = new Transport(_io, regs);
        // Section 3.1.1: reset, and consider it complete when Status reads 0.
        dev.Write(R.Status, 0);
        if (dev.Read(R.Status) != 0 && _irq.PollTimeout(() => dev.Read(R.Status) == 0, 1_000, 10_000_000) != 0)
        {
            _log.LogWarning("{Device}: the device does not complete its reset (Status stays non-zero)", device.Name);
            return -Errno.ENODEV;
        }
        dev.AddStatus(S.Acknowledge);
        dev.AddStatus(S.Driver);

        // Feature negotiation.
        dev.Write(R.DeviceFeaturesSel, 0);
        ulong offered = dev.Read(R.DeviceFeatures);
        dev.Write(R.DeviceFeaturesSel, 1);
        offered |= (ulong)dev.Read(R.DeviceFeatures) << 32;
        if ((offered & Bit(VirtioBlkDefs.FeatureVersion1)) == 0)
        {
            _log.LogWarning("{Device}: the device does not offer VIRTIO_F_VERSION_1 (features 0x{Features:x}); legacy devices are not supported", device.Name, offered);
            return Fail(dev, -Errno.ENODEV);
        }
        ulong wanted = Bit(VirtioBlkDefs.FeatureVersion1) | Bit(VirtioBlkDefs.FeatureRo) | Bit(VirtioBlkDefs.FeatureBlkSize) | Bit(VirtioBlkDefs.FeatureFlush);
        ulong features = offered & wanted;
        dev.Write(R.DriverFeaturesSel, 0);
        dev.Write(R.DriverFeatures, (uint)features);
        dev.Write(R.DriverFeaturesSel, 1);
        dev.Write(R.DriverFeatures, (uint)(features >> 32));
        dev.AddStatus(S.FeaturesOk);
        if ((dev.Read(R.Status) & S.FeaturesOk) == 0)
        {
            _log.LogWarning("{Device}: virtio: device refuses features: 0x{Features:x}", device.Name, features);
            return Fail(dev, -Errno.ENODEV);
        }

        // Device-specific configuration.
        if (!TryReadConfig64(dev, VirtioBlkDefs.ConfigCapacity, out ulong capacity))
        {
            _log.LogWarning("{Device}: the configuration generation never settled while reading the capacity", device.Name);
            return Fail(dev, -Errno.EIO);
        }
        uint blockSize = VirtioBlkDefs.SectorSize;
        if ((features & Bit(VirtioBlkDefs.FeatureBlkSize)) != 0)
        {
            uint blk = dev.Read(R.Config + VirtioBlkDefs.ConfigBlkSize);
            if (blk >= VirtioBlkDefs.SectorSize && blk <= 4096 * 16 && BitOperations.IsPow2(blk)) blockSize = blk;
            else _log.LogWarning("{Device}: blk_size {BlockSize} is not supported; using 512", device.Name, blk);
        }

        // Queue 0 (vm_setup_vq).
        dev.Write(R.QueueSel, 0);
        if (dev.Read(R.QueueReady) != 0)
        {
            _log.LogWarning("{Device}: queue 0 is already in use", device.Name);
            return Fail(dev, -Enoent);
        }
        uint numMax = dev.Read(R.QueueNumMax);
        if (numMax == 0)
        {
            _log.LogWarning("{Device}: queue 0 does not exist (QueueNumMax 0)", device.Name);
            return Fail(dev, -Enoent);
        }
        int queueSize = (int)Math.Min(1u << BitOperations.Log2(numMax), MaxQueueSize); // a split queue's size is a power of two
        var layout = RingLayout.For(queueSize);
        ulong ring = _devres.DmamAllocCoherent(device, layout.Total, out ulong ringBus);
        if (ring == 0) return Fail(dev, -Errno.ENOMEM);
        ulong bounce = _devres.DmamAllocCoherent(device, BounceBufferSize, out ulong bounceBus);
        if (bounce == 0) return Fail(dev, -Errno.ENOMEM);

        string diskName = NextDiskName();
        var disk = new VirtioBlkDisk(device, diskName, _io, _irq, _dma, _memory, _log, regs, layout, ring, ringBus, bounce, bounceBus,
            capacity, blockSize, (features & Bit(VirtioBlkDefs.FeatureRo)) != 0, (features & Bit(VirtioBlkDefs.FeatureFlush)) != 0);
        int rc = _devres.DevmRequestIrq(device, irq, disk.Interrupt, device.Name, disk, IrqFlags.Shared);
        if (rc != 0) return Fail(dev, rc);

        dev.Write(R.QueueNum, (uint)queueSize);
        dev.Write(R.QueueDescLow, (uint)(ringBus + layout.Descriptors));
        dev.Write(R.QueueDescHigh, (uint)((ringBus + layout.Descriptors) >> 32));
        dev.Write(R.QueueDriverLow, (uint)(ringBus + layout.Available));
        dev.Write(R.QueueDriverHigh, (uint)((ringBus + layout.Available) >> 32));
        dev.Write(R.QueueDeviceLow, (uint)(ringBus + layout.Used));
        dev.Write(R.QueueDeviceHigh, (uint)((ringBus + layout.Used) >> 32));
        dev.Write(R.QueueReady, 1);
        dev.AddStatus(S.DriverOk);

        device.DriverData = disk;
        _disks[device.Name] = disk;
        _log.LogInformation("{Device}: [{Disk}] {Sectors} 512-byte logical blocks ({Size}){ReadOnly}", device.Name, diskName, capacity,
            FormatSize(capacity * VirtioBlkDefs.SectorSize), disk.ReadOnly ? ", read-only" : "");
        return 0;
    }

    /// <inheritdoc />
    public void Remove(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DriverData is VirtioBlkDisk disk) disk.Shutdown();
        _disks.Remove(device.Name);
    }

    /// <summary>Reads a 64-bit configuration field as two 32-bit halves until ConfigGeneration reads the same before and after (section 4.2.2.2).</summary>
    internal static bool TryReadConfig64(Transport dev, ulong offset, out ulong value)
    {
        for (int attempt = 0; attempt < 64; attempt++)
        {
            uint before = dev.Read(R.ConfigGeneration);
            uint low = dev.Read(R.Config + offset);
            uint high = dev.Read(R.Config + offset + 4);
            if (dev.Read(R.ConfigGeneration) == before)
            {
                value = low | ((ulong)high << 32);
                return true;
            }
        }
        value = 0;
        return false;
    }

    /// <summary>"16.8 MB/16.0 MiB", as string_get_size prints sizes in the disk's announcement.</summary>
    internal static string FormatSize(ulong bytes) => $"{Scaled(bytes, 1000, ["B", "kB", "MB", "GB", "TB", "PB"])}/{Scaled(bytes, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])}";

    private static string Scaled(ulong bytes, double divisor, string[] units)
    {
        double v = bytes;
        int u = 0;
        while (v >= divisor && u < units.Length - 1)
        {
            v /= divisor;
            u++;
        }
        string format = u == 0 ? "F0" : v < 10 ? "F2" : v < 100 ? "F1" : "F0";
        return v.ToString(format, CultureInfo.InvariantCulture) + " " + units[u];
    }

    /// <summary>vd + a, b, ... z, aa, ab ... (virtblk_name_format), the lowest index no bound disk uses.</summary>
    private string NextDiskName()
    {
        for (int index = 0; ; index++)
        {
            string name = DiskName(index);
            bool used = false;
            foreach (var d in _disks.Values)
                if (d.DiskName == name) used = true;
            if (!used) return name;
        }
    }

    internal static string DiskName(int index)
    {
        Span<char> letters = stackalloc char[8];
        int n = 0;
        for (int i = index + 1; i > 0; i = (i - 1) / 26) letters[n++] = (char)('a' + (i - 1) % 26);
        letters[..n].Reverse();
        return "vd" + new string(letters[..n]);
    }

    // virtio_add_status(FAILED): the driver gives up on the device (section 3.1.1 step 8).
    private static int Fail(Transport dev, int rc)
    {
        dev.AddStatus(S.Failed);
        return rc;
    }

    private static ulong Bit(int feature) => 1UL << feature;

    /// <summary>The register window: 32-bit accesses through the ioremap mapping.</summary>
    internal readonly struct Transport(IIoMemApi io, ulong regs)
    {
        public uint Read(ulong offset) => io.ReadL(regs + offset);

        public void Write(ulong offset, uint value) => io.WriteL(value, regs + offset);

        /// <summary>virtio_add_status: sets bits without clearing the ones already set.</summary>
        public void AddStatus(uint bits) => Write(R.Status, Read(R.Status) | bits);
    }
}

/// <summary>Where the parts of queue 0 lie in its coherent allocation (byte offsets).</summary>
/// <param name="QueueSize">Entries.</param>
/// <param name="Descriptors">The descriptor table (16-byte aligned).</param>
/// <param name="Available">The available ring: flags, idx, ring[QueueSize], used_event (2-byte aligned).</param>
/// <param name="Used">The used ring: flags, idx, ring[QueueSize] of {id, len}, avail_event (4-byte aligned).</param>
/// <param name="Header">The request header (16 bytes).</param>
/// <param name="Status">The request's status byte.</param>
/// <param name="Total">Bytes of the allocation.</param>
internal readonly record struct RingLayout(int QueueSize, ulong Descriptors, ulong Available, ulong Used, ulong Header, ulong Status, ulong Total)
{
    public static RingLayout For(int queueSize)
    {
        ulong n = (ulong)queueSize;
        ulong desc = 0;
        ulong avail = Align(desc + VirtqLayout.DescriptorSize * n, VirtqLayout.AvailableAlignment);
        ulong used = Align(avail + 6 + 2 * n, VirtqLayout.UsedAlignment);
        ulong header = Align(used + 6 + 8 * n, 16);
        ulong status = header + VirtioBlkDefs.RequestHeaderSize;
        return new RingLayout(queueSize, desc, avail, used, header, status, status + 1);
    }

    private static ulong Align(ulong v, ulong a) => (v + a - 1) & ~(a - 1);
}
