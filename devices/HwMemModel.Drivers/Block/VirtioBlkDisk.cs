using System.Buffers.Binary;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using Microsoft.Extensions.Logging;
using R = HwMemModel.Drivers.Block.VirtioMmioRegs;
using V = HwMemModel.Drivers.Block.VirtqLayout;

namespace HwMemModel.Drivers.Block;

/// <summary>
/// One bound virtio-blk disk: synchronous sector I/O through queue 0. Sectors are 512 bytes whatever
/// <see cref="BlockSize"/> says; every call returns 0 or a negative errno: -EINVAL for a length that is not a
/// multiple of 512 (or a NULL kernel buffer), -EROFS for a write to a read-only disk (refused by the driver, as the
/// block layer refuses writes to a read-only disk, without reaching the device), -EIO for a range beyond
/// <see cref="Capacity"/> (refused before it reaches the device, as the block layer's end-of-device check does) or a
/// VIRTIO_BLK_S_IOERR answer, -EOPNOTSUPP for VIRTIO_BLK_S_UNSUPP, -ENOMEM when dma_map_single fails, -ETIMEDOUT when
/// no completion arrives within <see cref="TimeoutNs"/> of guest time (the device is then reset and the disk stays
/// broken: later calls give -EIO), and -ENODEV after the device was unbound.
/// </summary>
public sealed class VirtioBlkDisk
{
    private const int SectorSize = VirtioBlkDefs.SectorSize;
    private readonly PlatformDevice _device;
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly IDmaApi _dma;
    private readonly KernelMemory _mem;
    private readonly ILogger _log;
    private readonly ulong _regs;
    private readonly ulong _descVa, _availVa, _usedVa, _headerVa, _headerBus, _statusVa, _statusBus;
    private readonly ulong _bounceVa, _bounceBus;
    private readonly int _queueSize;
    private readonly int _mask;
    private readonly ushort[] _descNext;      // the host's copy of each descriptor's next (free list and chains)
    private readonly byte[] _chainLength;     // by head: descriptors in the chain in flight, 0 when none
    private readonly Completion _done = new();
    private ushort _freeHead;
    private int _numFree;
    private ushort _availIdx;
    private ushort _lastUsed;
    private int _pendingHead = -1;
    private bool _requestDone;
    private bool _broken;
    private bool _removed;
    private long _timeoutNs = 30_000_000_000; // the block layer's default request timeout, 30 s

    internal VirtioBlkDisk(PlatformDevice device, string diskName, IIoMemApi io, IIrqApi irq, IDmaApi dma, KernelMemory memory, ILogger log,
        ulong regs, RingLayout layout, ulong ringVa, ulong ringBus, ulong bounceVa, ulong bounceBus, ulong capacity, uint blockSize,
        bool readOnly, bool flush)
    {
        _device = device;
        DiskName = diskName;
        _io = io;
        _irq = irq;
        _dma = dma;
        _mem = memory;
        _log = log;
        _regs = regs;
        _queueSize = layout.QueueSize;
        _mask = layout.QueueSize - 1;
        _descVa = ringVa + layout.Descriptors;
        _availVa = ringVa + layout.Available;
        _usedVa = ringVa + layout.Used;
        _headerVa = ringVa + layout.Header;
        _headerBus = ringBus + layout.Header;
        _statusVa = ringVa + layout.Status;
        _statusBus = ringBus + layout.Status;
        _bounceVa = bounceVa;
        _bounceBus = bounceBus;
        Capacity = capacity;
        BlockSize = blockSize;
        ReadOnly = readOnly;
        FlushSupported = flush;
        _descNext = new ushort[layout.QueueSize];
        _chainLength = new byte[layout.QueueSize];
        for (int i = 0; i < _descNext.Length; i++) _descNext[i] = (ushort)((i + 1) % layout.QueueSize);
        _numFree = layout.QueueSize;
    }

    /// <summary>The platform device's name ("virtio0").</summary>
    public string Name => _device.Name;
    /// <summary>The disk's name ("vda", "vdb", ...).</summary>
    public string DiskName { get; }
    /// <summary>Capacity in 512-byte sectors (from the configuration space; updated on a configuration change interrupt).</summary>
    public ulong Capacity { get; private set; }
    /// <summary>The device's block size (blk_size when VIRTIO_BLK_F_BLK_SIZE was negotiated, else 512); informational.</summary>
    public uint BlockSize { get; }
    /// <summary>Whether the device offered VIRTIO_BLK_F_RO: writes give -EROFS.</summary>
    public bool ReadOnly { get; }
    /// <summary>Whether VIRTIO_BLK_F_FLUSH was negotiated (without it <see cref="Flush"/> has nothing to do).</summary>
    public bool FlushSupported { get; }
    /// <summary>The queue size in use.</summary>
    public int QueueSize => _queueSize;
    /// <summary>Requests sent to the device.</summary>
    public long Requests { get; private set; }
    /// <summary>Interrupts the handler claimed.</summary>
    public long Interrupts { get; private set; }
    /// <summary>Whether the disk gave up on the device (a timeout, a bad used ring, DEVICE_NEEDS_RESET): calls give -EIO.</summary>
    public bool Broken => _broken;

    /// <summary>How long a request may wait for its completion interrupt, in guest nanoseconds (default 30 s).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public long TimeoutNs
    {
        get => _timeoutNs;
        set
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(nameof(value), value, "TimeoutNs is a guest-time duration in nanoseconds and must be positive.");
            _timeoutNs = value;
        }
    }

    /// <summary>Reads <paramref name="buffer"/>.Length bytes (a multiple of 512) from <paramref name="sector"/>, through the coherent bounce buffer.</summary>
    public int ReadSectors(ulong sector, Span<byte> buffer)
    {
        int rc = CheckRequest(sector, (ulong)buffer.Length, write: false);
        if (rc != 0) return rc;
        for (int done = 0; done < buffer.Length;)
        {
            int n = Math.Min(buffer.Length - done, VirtioBlkDriver.BounceBufferSize);
            rc = Submit(VirtioBlkDefs.TypeIn, sector + (ulong)(done / SectorSize), _bounceBus, (uint)n, deviceWrites: true);
            if (rc != 0) return rc;
            _mem.ReadBytes(_bounceVa, buffer.Slice(done, n));
            done += n;
        }
        return 0;
    }

    /// <summary>Writes <paramref name="data"/> (a multiple of 512 bytes) at <paramref name="sector"/>, through the coherent bounce buffer.</summary>
    public int WriteSectors(ulong sector, ReadOnlySpan<byte> data)
    {
        int rc = CheckRequest(sector, (ulong)data.Length, write: true);
        if (rc != 0) return rc;
        for (int done = 0; done < data.Length;)
        {
            int n = Math.Min(data.Length - done, VirtioBlkDriver.BounceBufferSize);
            _mem.WriteBytes(_bounceVa, data.Slice(done, n));
            rc = Submit(VirtioBlkDefs.TypeOut, sector + (ulong)(done / SectorSize), _bounceBus, (uint)n, deviceWrites: false);
            if (rc != 0) return rc;
            done += n;
        }
        return 0;
    }

    /// <summary>
    /// Reads <paramref name="bytes"/> (a multiple of 512) from <paramref name="sector"/> straight into the caller's
    /// kernel buffer at <paramref name="kernelVa"/> (kmalloc or direct-map memory), mapped with dma_map_single
    /// (DMA_FROM_DEVICE) for the request and unmapped after it.
    /// </summary>
    public int ReadSectors(ulong sector, ulong kernelVa, uint bytes) => KernelBufferRequest(sector, kernelVa, bytes, write: false);

    /// <summary>
    /// Writes <paramref name="bytes"/> (a multiple of 512) at <paramref name="sector"/> straight from the caller's
    /// kernel buffer at <paramref name="kernelVa"/>, mapped with dma_map_single (DMA_TO_DEVICE) for the request.
    /// </summary>
    public int WriteSectors(ulong sector, ulong kernelVa, uint bytes) => KernelBufferRequest(sector, kernelVa, bytes, write: true);

    /// <summary>VIRTIO_BLK_T_FLUSH when the device has a volatile cache (VIRTIO_BLK_F_FLUSH); 0 at once otherwise.</summary>
    public int Flush()
    {
        if (_removed) return -Errno.ENODEV;
        if (_broken) return -Errno.EIO;
        if (!FlushSupported) return 0;
        return Submit(VirtioBlkDefs.TypeFlush, 0, 0, 0, deviceWrites: false);
    }

    /// <summary>The interrupt handler (vm_interrupt): IRQ_NONE when InterruptStatus is 0, as a shared line asks.</summary>
    internal IrqReturn Interrupt(int irq, object? devId)
    {
        if (_removed) return IrqReturn.None;
        uint isr = _io.ReadL(_regs + R.InterruptStatus);
        if (isr == 0) return IrqReturn.None;
        _io.WriteL(isr, _regs + R.InterruptAck);
        Interrupts++;
        if ((isr & R.InterruptConfig) != 0) ConfigChanged();
        if ((isr & R.InterruptVring) != 0 && !_broken) CollectUsed();
        return IrqReturn.Handled;
    }

    /// <summary>Remove: resets the device so it stops using the rings before they are freed.</summary>
    internal void Shutdown()
    {
        if (_removed) return;
        _io.WriteL(0, _regs + R.Status);
        if (_io.ReadL(_regs + R.Status) != 0)
            _irq.PollTimeout(() => _io.ReadL(_regs + R.Status) == 0, 1_000, 10_000_000);
        _removed = true;
    }

    /// <summary>The errno for a virtio-blk status byte.</summary>
    internal static int StatusToErrno(byte status) => status switch
    {
        VirtioBlkDefs.StatusOk => 0,
        VirtioBlkDefs.StatusUnsupp => -Errno.EOPNOTSUPP,
        _ => -Errno.EIO, // VIRTIO_BLK_S_IOERR, or no status written (the 0xFF preset)
    };

    private int KernelBufferRequest(ulong sector, ulong kernelVa, uint bytes, bool write)
    {
        if (kernelVa == 0) return -Errno.EINVAL;
        int rc = CheckRequest(sector, bytes, write);
        if (rc != 0 || bytes == 0) return rc;
        var direction = write ? DmaDataDirection.ToDevice : DmaDataDirection.FromDevice;
        ulong bus = _dma.DmaMapSingle(_device, kernelVa, bytes, direction);
        if (_dma.DmaMappingError(bus)) return -Errno.ENOMEM;
        rc = Submit(write ? VirtioBlkDefs.TypeOut : VirtioBlkDefs.TypeIn, sector, bus, bytes, deviceWrites: !write);
        _dma.DmaUnmapSingle(_device, bus, bytes, direction);
        return rc;
    }

    private int CheckRequest(ulong sector, ulong bytes, bool write)
    {
        if (bytes % SectorSize != 0) return -Errno.EINVAL;
        if (_removed) return -Errno.ENODEV;
        if (_broken) return -Errno.EIO;
        if (write && ReadOnly) return -Errno.EROFS;
        ulong sectors = bytes / SectorSize;
        if (sector > Capacity || sectors > Capacity - sector)
        {
            _log.LogWarning("{Device}: attempt to access beyond end of device: {Disk}: rw={Rw}, sector={Sector}, nr_sectors = {Sectors} limit={Limit}",
                Name, DiskName, write ? 1 : 0, sector, sectors, Capacity);
            return -Errno.EIO;
        }
        return 0;
    }

    /// <summary>Builds the chain (header, data, status), publishes it, notifies and waits for its completion.</summary>
    private int Submit(uint type, ulong sector, ulong dataBus, uint dataLength, bool deviceWrites)
    {
        int count = dataLength != 0 ? 3 : 2;
        if (_numFree < count)
        {
            _log.LogWarning("{Device}: no free descriptors ({Free} of {Size})", Name, _numFree, _queueSize);
            return -Errno.EIO;
        }

        // struct virtio_blk_outhdr: le32 type, le32 ioprio, le64 sector; the status byte preset to a value no device writes.
        Span<byte> header = stackalloc byte[VirtioBlkDefs.RequestHeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
        _mem.WriteBytes(_headerVa, header);
        _mem.Write(_statusVa, 1, 0xFF);

        // Take the chain off the free list; the free list's links become the chain's links.
        ushort head = _freeHead;
        ushort second = _descNext[head];
        ushort third = _descNext[second];
        ushort last = count == 3 ? third : second;
        _freeHead = _descNext[last];
        _numFree -= count;
        _chainLength[head] = (byte)count;

        Span<byte> descs = stackalloc byte[3 * V.DescriptorSize];
        Descriptor(descs, _headerBus, VirtioBlkDefs.RequestHeaderSize, V.DescFlagNext, second);
        if (count == 3)
            Descriptor(descs[V.DescriptorSize..], dataBus, dataLength, (ushort)(V.DescFlagNext | (deviceWrites ? V.DescFlagWrite : 0)), third);
        Descriptor(descs[((count - 1) * V.DescriptorSize)..], _statusBus, 1, V.DescFlagWrite, 0);
        if (second == head + 1 && (count == 2 || third == head + 2))
        {
            _mem.WriteBytes(_descVa + (ulong)head * V.DescriptorSize, descs[..(count * V.DescriptorSize)]);
        }
        else
        {
            _mem.WriteBytes(_descVa + (ulong)head * V.DescriptorSize, descs[..V.DescriptorSize]);
            _mem.WriteBytes(_descVa + (ulong)second * V.DescriptorSize, descs.Slice(V.DescriptorSize, V.DescriptorSize));
            if (count == 3) _mem.WriteBytes(_descVa + (ulong)third * V.DescriptorSize, descs.Slice(2 * V.DescriptorSize, V.DescriptorSize));
        }

        // Publish: the ring entry first, then the index the device reads.
        _mem.Write(_availVa + 4 + 2 * (ulong)(_availIdx & _mask), 2, head);
        _availIdx++;
        _mem.Write(_availVa + 2, 2, _availIdx);
        _pendingHead = head;
        _requestDone = false;
        _done.Reinit();
        Requests++;
        // Without VIRTIO_F_EVENT_IDX the device asks for no notifications with VIRTQ_USED_F_NO_NOTIFY.
        if ((_mem.Read(_usedVa, 2) & V.UsedFlagNoNotify) == 0) _io.WriteL(0, _regs + R.QueueNotify);

        long deadline = _irq.NowNs + _timeoutNs;
        while (!_requestDone)
        {
            if (_broken) return -Errno.EIO;
            long left = deadline - _irq.NowNs;
            if ((left <= 0 || _irq.WaitForCompletionTimeout(_done, left) == 0) && !_requestDone)
            {
                if (_broken) return -Errno.EIO;
                _log.LogWarning("{Device}: [{Disk}] request (type {Type}, sector {Sector}) timed out after {Ms} ms; resetting the device",
                    Name, DiskName, type, sector, _timeoutNs / 1_000_000);
                Break(null);
                return -Errno.ETIMEDOUT;
            }
        }
        _pendingHead = -1;
        return StatusToErrno((byte)_mem.Read(_statusVa, 1));
    }

    private static void Descriptor(Span<byte> d, ulong address, uint length, ushort flags, ushort next)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], next);
    }

    /// <summary>vring_interrupt: takes the used entries, returns their chains to the free list, completes the waiter.</summary>
    private void CollectUsed()
    {
        ushort usedIdx = (ushort)_mem.Read(_usedVa + 2, 2);
        if ((ushort)(usedIdx - _lastUsed) > _queueSize)
        {
            Break($"used idx {usedIdx} is more than the queue size ahead of {_lastUsed}");
            return;
        }
        bool any = false;
        while (_lastUsed != usedIdx)
        {
            // struct virtq_used_elem: le32 id, le32 len (the length is not needed: the status byte tells).
            uint id = (uint)_mem.Read(_usedVa + 4 + 8 * (ulong)(_lastUsed & _mask), 4);
            _lastUsed++;
            if (id >= (uint)_queueSize || _chainLength[id] == 0)
            {
                Break($"id {id} is not a head!");
                return;
            }
            Detach((ushort)id);
            if (id == (uint)_pendingHead) _requestDone = true;
            any = true;
        }
        if (any) _done.Complete();
    }

    private void Detach(ushort head)
    {
        int count = _chainLength[head];
        ushort last = head;
        for (int i = 1; i < count; i++) last = _descNext[last];
        _descNext[last] = _freeHead;
        _freeHead = head;
        _numFree += count;
        _chainLength[head] = 0;
    }

    private void ConfigChanged()
    {
        if ((_io.ReadL(_regs + R.Status) & VirtioStatusBits.DeviceNeedsReset) != 0)
        {
            Break("the device set DEVICE_NEEDS_RESET");
            return;
        }
        if (VirtioBlkDriver.TryReadConfig64(new VirtioBlkDriver.Transport(_io, _regs), VirtioBlkDefs.ConfigCapacity, out ulong capacity) && capacity != Capacity)
        {
            Capacity = capacity;
            _log.LogInformation("{Device}: [{Disk}] new size: {Sectors} 512-byte logical blocks ({Size})", Name, DiskName, capacity,
                VirtioBlkDriver.FormatSize(capacity * SectorSize));
        }
    }

    /// <summary>Gives up on the device: it is reset (so it touches no memory any more), waiters wake, later calls give -EIO.</summary>
    private void Break(string? why)
    {
        if (why is not null) _log.LogWarning("{Device}: [{Disk}] {Why}; the disk is broken, resetting the device", Name, DiskName, why);
        _broken = true;
        _io.WriteL(0, _regs + R.Status);
        _done.Complete();
    }
}
