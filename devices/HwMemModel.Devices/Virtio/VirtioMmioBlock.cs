using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Virtio;

/// <summary>
/// A virtio block device on the virtio-mmio transport (compatible "virtio,mmio"), version 2 register layout, as
/// virtio 1.2 specifies it (sections 2, 4.2 and 5.2) and QEMU's hw/virtio/virtio-mmio.c implements it: MagicValue
/// 0x74726976, Version 2, DeviceID 2, VendorID 0x554D4551 ("QEMU"), one split virtqueue (queue 0), the
/// configuration space (<c>struct virtio_blk_config</c>) at 0x100. Requests are served synchronously when the driver
/// writes QueueNotify; all guest memory is reached through a <see cref="DmaPort"/>.
/// </summary>
/// <remarks>
/// <para>Offered features: VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX, VIRTIO_BLK_F_SEG_MAX
/// (queue size - 2, as QEMU), VIRTIO_BLK_F_BLK_SIZE (512), VIRTIO_BLK_F_FLUSH, and VIRTIO_BLK_F_RO when the backend
/// is read-only. FEATURES_OK is accepted only when the driver's features are a subset of these and include
/// VERSION_1; otherwise the bit stays clear. Requests: IN, OUT, FLUSH, GET_ID; other types answer UNSUPP.</para>
/// <para>Descriptor chains may be framed freely (the header, data and status may share or split descriptors): the
/// device-readable descriptors form one byte stream (16-byte header, then OUT data) and the device-writable ones
/// another (IN or GET_ID data, then the status byte as the very last byte). A chain that is malformed (a loop or
/// more than QueueNumMax descriptors, an index beyond the table, a descriptor spanning the top of the address space, a device-readable descriptor after a writable one,
/// an indirect descriptor that is nested, combined with NEXT, not negotiated or not a multiple of 16 bytes) or whose
/// data reaches memory that is not RAM completes with VIRTIO_BLK_S_IOERR in its last device-writable byte (for a
/// malformed chain: the last one met before the fault, each descriptor taken once; none, used length 0, if there was
/// none), and is reported to the <see cref="DeviceLog"/>. A ring the device cannot reach, an available index more than the queue
/// size ahead, or a head index beyond the queue sets DEVICE_NEEDS_RESET and raises a configuration change interrupt;
/// the queue is then left alone until the driver resets the device.</para>
/// <para>The used element's <c>len</c> counts the bytes the device wrote: data plus the status byte for IN and
/// GET_ID, 1 for other requests and for failed ones, 0 when not even the status could be written. Control registers
/// take aligned 32-bit accesses only; other widths are reported and read as 0 / ignored (as QEMU). The configuration
/// space takes 1-, 2- and 4-byte accesses; reads beyond its 36 bytes return all ones (as QEMU). Not thread-safe.</para>
/// </remarks>
public sealed partial class VirtioMmioBlock : IMmioDevice
{
    /// <summary>The default (and QEMU's) virtio-blk queue size, reported in QueueNumMax.</summary>
    public const int DefaultQueueSize = 256;

    /// <summary>The default device ID string GET_ID returns.</summary>
    public const string DefaultSerial = "hwmem-virtio-blk";

    private const byte StatusDeviceOwned = (byte)VirtioStatus.DeviceNeedsReset;

    private readonly IBlockBackend _disk;
    private readonly DmaPort _dma;
    private readonly DeviceLog _log;
    private readonly int _queueNumMax;
    private readonly byte[] _serial = new byte[VirtioBlk.IdBytes];
    private readonly ulong _deviceFeatures;

    private uint _deviceFeaturesSel;
    private uint _driverFeaturesSel;
    private ulong _driverFeatures;
    private ulong _negotiated;
    private uint _queueSel;
    private byte _status;
    private uint _interruptStatus;
    private uint _configGeneration;
    private ulong _capacity;

    /// <summary>Creates the device in its reset state.</summary>
    /// <param name="bus">The bus the device masters for its rings and buffers (its own <see cref="DmaPort"/> is created on it).</param>
    /// <param name="disk">The disk image.</param>
    /// <param name="log">Where guest mistakes and refused transfers are reported; null for a private log.</param>
    /// <param name="name">Name in listings, reports and DMA monitoring.</param>
    /// <param name="serial">The device ID string for GET_ID: ASCII, at most 20 bytes (NUL-padded to 20).</param>
    /// <param name="queueSize">QueueNumMax of queue 0: a power of two from 4 to 32768.</param>
    /// <param name="requesterId">The DMA requester id of the device's bus-master port.</param>
    /// <exception cref="ArgumentNullException"><paramref name="bus"/>, <paramref name="disk"/>, <paramref name="name"/> or <paramref name="serial"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty, or <paramref name="serial"/> is not ASCII or longer than 20 bytes.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="queueSize"/> is not a power of two from 4 to 32768.</exception>
    public VirtioMmioBlock(PhysicalBus bus, IBlockBackend disk, DeviceLog? log = null, string name = "virtio0",
        string serial = DefaultSerial, int queueSize = DefaultQueueSize, int requesterId = 0)
    {
        DeviceThrow.NotNull(bus, nameof(bus), "A virtio-mmio block device");
        _disk = DeviceThrow.NotNull(disk, nameof(disk), "A virtio-mmio block device");
        DeviceThrow.NotNull(serial, nameof(serial), "A virtio-mmio block device");
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (queueSize is < 4 or > Virtq.MaxQueueSize || !BitOperations.IsPow2(queueSize))
        {
            DeviceThrow.OutOfRange(nameof(queueSize), queueSize,
                $"Queue size {queueSize} is not possible for a split virtqueue: use a power of two from 4 to {Virtq.MaxQueueSize}.");
        }

        if (serial.Length > VirtioBlk.IdBytes || !Ascii.IsValid(serial))
        {
            DeviceThrow.Argument(nameof(serial),
                $"The virtio-blk ID string \"{serial}\" must be ASCII and at most {VirtioBlk.IdBytes} bytes long.");
        }

        Encoding.ASCII.GetBytes(serial, _serial);
        Name = name;
        Serial = serial;
        _log = log ?? new DeviceLog();
        _dma = new DmaPort(bus, name, requesterId);
        _queueNumMax = queueSize;
        _maxChain = queueSize;
        _segments = new Segment[queueSize];
        _visited = new int[queueSize];
        _deviceFeatures = (1UL << VirtioFeature.Version1) | (1UL << VirtioFeature.IndirectDesc)
            | (1UL << VirtioFeature.EventIdx) | (1UL << VirtioBlk.FeatureSegMax) | (1UL << VirtioBlk.FeatureBlkSize)
            | (1UL << VirtioBlk.FeatureFlush) | (disk.ReadOnly ? 1UL << VirtioBlk.FeatureRo : 0);
        _capacity = (ulong)Math.Max(0, disk.Length) / VirtioBlk.SectorSize;
        Reset();
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>Every size from 1 to 8 bytes reaches the device, which reports widths the registers do not take.</summary>
    public AccessConstraints Valid => AccessConstraints.Any;

    /// <inheritdoc />
    public AccessConstraints Impl => AccessConstraints.Any;

    /// <summary>The disk image.</summary>
    public IBlockBackend Disk => _disk;

    /// <summary>The device's bus-master port (its counters show the DMA traffic).</summary>
    public DmaPort Dma => _dma;

    /// <summary>Where the device reports guest mistakes and refused transfers.</summary>
    public DeviceLog Log => _log;

    /// <summary>The GET_ID string.</summary>
    public string Serial { get; }

    /// <summary>QueueNumMax of queue 0.</summary>
    public int QueueNumMax => _queueNumMax;

    /// <summary>The capacity in 512-byte sectors (config field <c>capacity</c>).</summary>
    public ulong Capacity => _capacity;

    /// <summary>The feature bits the device offers.</summary>
    public ulong DeviceFeatures => _deviceFeatures;

    /// <summary>The features accepted with FEATURES_OK (0 before negotiation completes).</summary>
    public ulong NegotiatedFeatures => _negotiated;

    /// <summary>The device status as the driver reads it.</summary>
    public VirtioStatus Status => (VirtioStatus)_status;

    /// <summary>InterruptStatus: bit 0 used buffer, bit 1 configuration change.</summary>
    public uint InterruptStatus => _interruptStatus;

    /// <summary>The ConfigGeneration register.</summary>
    public uint ConfigGeneration => _configGeneration;

    /// <summary>The interrupt output level: asserted while InterruptStatus is not 0.</summary>
    public bool IrqLine { get; private set; }

    /// <summary>Raised with the new level whenever <see cref="IrqLine"/> changes.</summary>
    public event Action<bool>? IrqLineChanged;

    /// <summary>Requests completed with VIRTIO_BLK_S_OK.</summary>
    public long CompletedRequests { get; private set; }

    /// <summary>Requests completed with IOERR or UNSUPP, or without a status.</summary>
    public long FailedRequests { get; private set; }

    /// <summary>
    /// Re-reads the backend's length after the host resized the image: a changed capacity bumps ConfigGeneration
    /// and, once the driver is running (DRIVER_OK), raises a configuration change interrupt.
    /// </summary>
    public void RefreshCapacity()
    {
        ulong capacity = (ulong)Math.Max(0, _disk.Length) / VirtioBlk.SectorSize;
        if (capacity == _capacity)
        {
            return;
        }

        _capacity = capacity;
        _configGeneration++;
        if ((_status & (byte)VirtioStatus.DriverOk) != 0)
        {
            RaiseInterrupt(VirtioMmio.InterruptConfigChange);
        }
    }

    /// <summary>
    /// Device reset (the driver writing 0 to Status does the same): status, interrupt status, feature selections and
    /// negotiated features, and the queue (not ready, size QueueNumMax, addresses 0, indices 0) return to their reset
    /// values and the interrupt line drops.
    /// </summary>
    public void Reset()
    {
        _status = 0;
        _deviceFeaturesSel = 0;
        _driverFeaturesSel = 0;
        _driverFeatures = 0;
        _negotiated = 0;
        _queueSel = 0;
        _queueReady = false;
        _ringsOutOfRange = false;
        _queueNum = (uint)_queueNumMax;
        _descAddr = 0;
        _availAddr = 0;
        _usedAddr = 0;
        _lastAvail = 0;
        _usedIdx = 0;
        _interruptStatus = 0;
        UpdateIrq();
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        if (offset >= VirtioMmioRegister.Config)
        {
            value = ReadConfig(offset - VirtioMmioRegister.Config, size);
            return BusStatus.Ok;
        }

        if (size != 4 || (offset & 3) != 0)
        {
            Report($"{size}-byte read at offset 0x{offset:x}: control registers take aligned 32-bit accesses only; read as 0");
            value = 0;
            return BusStatus.Ok;
        }

        value = ReadRegister(offset);
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        if (offset >= VirtioMmioRegister.Config)
        {
            Report($"{size}-byte write of 0x{value:x} to configuration offset 0x{offset - VirtioMmioRegister.Config:x} ignored: the block configuration is read-only (no VIRTIO_BLK_F_CONFIG_WCE)");
            return BusStatus.Ok;
        }

        if (size != 4 || (offset & 3) != 0)
        {
            Report($"{size}-byte write of 0x{value:x} at offset 0x{offset:x} ignored: control registers take aligned 32-bit accesses only");
            return BusStatus.Ok;
        }

        WriteRegister(offset, (uint)value);
        return BusStatus.Ok;
    }

    private uint ReadRegister(ulong offset)
    {
        switch (offset)
        {
            case VirtioMmioRegister.MagicValue:
                return VirtioMmio.Magic;
            case VirtioMmioRegister.Version:
                return VirtioMmio.Version;
            case VirtioMmioRegister.DeviceId:
                return VirtioBlk.DeviceId;
            case VirtioMmioRegister.VendorId:
                return VirtioMmio.QemuVendorId;
            case VirtioMmioRegister.DeviceFeatures:
                return _deviceFeaturesSel switch
                {
                    0 => (uint)_deviceFeatures,
                    1 => (uint)(_deviceFeatures >> 32),
                    _ => 0,
                };
            case VirtioMmioRegister.QueueNumMax:
                return _queueSel == 0 ? (uint)_queueNumMax : 0;
            case VirtioMmioRegister.QueueReady:
                return _queueSel == 0 && _queueReady ? 1u : 0;
            case VirtioMmioRegister.InterruptStatus:
                return _interruptStatus;
            case VirtioMmioRegister.Status:
                return _status;
            case VirtioMmioRegister.ConfigGeneration:
                return _configGeneration;
            case VirtioMmioRegister.ShmLenLow:
            case VirtioMmioRegister.ShmLenHigh:
                return uint.MaxValue; // No shared memory regions: length -1 (QEMU).
            case VirtioMmioRegister.DeviceFeaturesSel:
            case VirtioMmioRegister.DriverFeatures:
            case VirtioMmioRegister.DriverFeaturesSel:
            case VirtioMmioRegister.QueueSel:
            case VirtioMmioRegister.QueueNum:
            case VirtioMmioRegister.QueueNotify:
            case VirtioMmioRegister.InterruptAck:
            case VirtioMmioRegister.QueueDescLow:
            case VirtioMmioRegister.QueueDescHigh:
            case VirtioMmioRegister.QueueDriverLow:
            case VirtioMmioRegister.QueueDriverHigh:
            case VirtioMmioRegister.QueueDeviceLow:
            case VirtioMmioRegister.QueueDeviceHigh:
            case VirtioMmioRegister.ShmSel:
                Report($"read of write-only register 0x{offset:x}: read as 0");
                return 0;
            case VirtioMmioRegister.LegacyGuestPageSize:
            case VirtioMmioRegister.LegacyQueueAlign:
            case VirtioMmioRegister.LegacyQueuePfn:
                Report($"read of legacy register 0x{offset:x} from a version 2 device: read as 0");
                return 0;
            default:
                Report($"read of undefined register 0x{offset:x}: read as 0");
                return 0;
        }
    }

    private void WriteRegister(ulong offset, uint value)
    {
        switch (offset)
        {
            case VirtioMmioRegister.DeviceFeaturesSel:
                _deviceFeaturesSel = value;
                break;
            case VirtioMmioRegister.DriverFeatures:
                WriteDriverFeatures(value);
                break;
            case VirtioMmioRegister.DriverFeaturesSel:
                _driverFeaturesSel = value;
                break;
            case VirtioMmioRegister.QueueSel:
                _queueSel = value;
                break;
            case VirtioMmioRegister.QueueNum:
                WriteQueueNum(value);
                break;
            case VirtioMmioRegister.QueueReady:
                WriteQueueReady(value);
                break;
            case VirtioMmioRegister.QueueNotify:
                Notify(value);
                break;
            case VirtioMmioRegister.InterruptAck:
                _interruptStatus &= ~value;
                UpdateIrq();
                break;
            case VirtioMmioRegister.Status:
                WriteStatus(value);
                break;
            case VirtioMmioRegister.QueueDescLow:
            case VirtioMmioRegister.QueueDescHigh:
            case VirtioMmioRegister.QueueDriverLow:
            case VirtioMmioRegister.QueueDriverHigh:
            case VirtioMmioRegister.QueueDeviceLow:
            case VirtioMmioRegister.QueueDeviceHigh:
                WriteQueueAddress(offset, value);
                break;
            case VirtioMmioRegister.ShmSel:
                break; // Selects nothing: the device has no shared memory regions.
            case VirtioMmioRegister.MagicValue:
            case VirtioMmioRegister.Version:
            case VirtioMmioRegister.DeviceId:
            case VirtioMmioRegister.VendorId:
            case VirtioMmioRegister.DeviceFeatures:
            case VirtioMmioRegister.QueueNumMax:
            case VirtioMmioRegister.InterruptStatus:
            case VirtioMmioRegister.ConfigGeneration:
            case VirtioMmioRegister.ShmLenLow:
            case VirtioMmioRegister.ShmLenHigh:
            case VirtioMmioRegister.ShmBaseLow:
            case VirtioMmioRegister.ShmBaseHigh:
                Report($"write of 0x{value:x} to read-only register 0x{offset:x} ignored");
                break;
            case VirtioMmioRegister.LegacyGuestPageSize:
            case VirtioMmioRegister.LegacyQueueAlign:
            case VirtioMmioRegister.LegacyQueuePfn:
                Report($"write of 0x{value:x} to legacy register 0x{offset:x} of a version 2 device ignored");
                break;
            default:
                Report($"write of 0x{value:x} to undefined register 0x{offset:x} ignored");
                break;
        }
    }

    private void WriteDriverFeatures(uint value)
    {
        if ((_status & (byte)VirtioStatus.FeaturesOk) != 0)
        {
            Report($"driver features 0x{value:x} (word {_driverFeaturesSel}) written after FEATURES_OK: ignored");
            return;
        }

        switch (_driverFeaturesSel)
        {
            case 0:
                _driverFeatures = (_driverFeatures & 0xFFFF_FFFF_0000_0000UL) | value;
                break;
            case 1:
                _driverFeatures = (_driverFeatures & 0x0000_0000_FFFF_FFFFUL) | ((ulong)value << 32);
                break;
            default:
                if (value != 0)
                {
                    Report($"driver features 0x{value:x} for word {_driverFeaturesSel} (bits {32 * (ulong)_driverFeaturesSel} and up) ignored: the device offers none there");
                }

                break;
        }
    }

    private void WriteStatus(uint value)
    {
        if (value == 0)
        {
            Reset();
            return;
        }

        byte old = _status;
        byte next = (byte)((value & 0xFFu & ~(uint)StatusDeviceOwned) | (old & (uint)StatusDeviceOwned));
        if ((value & ~0xFFu) != 0)
        {
            Report($"status write 0x{value:x} has bits above bit 7: only the low byte is kept");
        }

        if ((value & StatusDeviceOwned) != 0 && (old & StatusDeviceOwned) == 0)
        {
            Report("driver set DEVICE_NEEDS_RESET in Status: that bit belongs to the device; ignored");
        }

        byte cleared = (byte)(old & ~next & ~StatusDeviceOwned);
        if (cleared != 0)
        {
            Report($"status write 0x{value:x} clears bits 0x{cleared:x} set before (the driver must not clear status bits; write 0 to reset)");
        }

        if ((next & (byte)VirtioStatus.FeaturesOk) != 0 && (old & (byte)VirtioStatus.FeaturesOk) == 0)
        {
            ulong unsupported = _driverFeatures & ~_deviceFeatures;
            if (unsupported != 0)
            {
                next &= unchecked((byte)~VirtioStatus.FeaturesOk);
                Report($"FEATURES_OK refused: driver features 0x{_driverFeatures:x} include 0x{unsupported:x}, which the device does not offer (0x{_deviceFeatures:x})");
            }
            else if ((_driverFeatures & (1UL << VirtioFeature.Version1)) == 0)
            {
                next &= unchecked((byte)~VirtioStatus.FeaturesOk);
                Report($"FEATURES_OK refused: driver features 0x{_driverFeatures:x} lack VIRTIO_F_VERSION_1 (bit 32); this device has no legacy interface");
            }
            else
            {
                _negotiated = _driverFeatures;
            }
        }

        if ((next & (byte)VirtioStatus.DriverOk) != 0 && (old & (byte)VirtioStatus.DriverOk) == 0
            && (next & (byte)VirtioStatus.FeaturesOk) == 0)
        {
            Report("DRIVER_OK set without FEATURES_OK: the device will not process its queue until features are negotiated");
        }

        _status = next;
    }

    private ReadOnlySpan<byte> BuildConfig(Span<byte> config)
    {
        config.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(config[VirtioBlk.ConfigCapacity..], _capacity);
        BinaryPrimitives.WriteUInt32LittleEndian(config[VirtioBlk.ConfigSegMax..], (uint)(_queueNumMax - 2));
        BinaryPrimitives.WriteUInt32LittleEndian(config[VirtioBlk.ConfigBlkSize..], VirtioBlk.SectorSize);
        BinaryPrimitives.WriteUInt16LittleEndian(config[VirtioBlk.ConfigNumQueues..], 1);
        return config;
    }

    private ulong ReadConfig(ulong offset, int size)
    {
        if (size is not (1 or 2 or 4))
        {
            Report($"{size}-byte read at configuration offset 0x{offset:x}: the configuration space takes 1-, 2- and 4-byte accesses; read as 0");
            return 0;
        }

        if (offset + (ulong)size > VirtioBlk.ConfigSize)
        {
            return size == 4 ? uint.MaxValue : (1UL << (size * 8)) - 1; // Beyond the configuration: all ones (QEMU).
        }

        Span<byte> config = stackalloc byte[VirtioBlk.ConfigSize];
        ReadOnlySpan<byte> bytes = BuildConfig(config).Slice((int)offset, size);
        return size switch
        {
            1 => bytes[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            _ => BinaryPrimitives.ReadUInt32LittleEndian(bytes),
        };
    }

    private void RaiseInterrupt(uint bits)
    {
        _interruptStatus |= bits;
        UpdateIrq();
    }

    private void UpdateIrq()
    {
        bool level = _interruptStatus != 0;
        if (IrqLine == level)
        {
            return;
        }

        IrqLine = level;
        IrqLineChanged?.Invoke(level);
    }

    private void Report(string message) => _log.Report(Name, message);
}
