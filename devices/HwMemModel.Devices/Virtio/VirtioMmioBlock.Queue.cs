using System.Buffers.Binary;
using System.Numerics;
using HwMemModel.Bus;

namespace HwMemModel.Devices.Virtio;

/// <content>Queue 0: its registers, the split virtqueue walk and the block requests.</content>
public sealed partial class VirtioMmioBlock
{
    /// <summary>Largest piece moved between the disk and guest memory at once (the reused bounce buffer).</summary>
    private const int ChunkSize = 64 * 1024;

    private readonly int _maxChain;
    private readonly Segment[] _segments;
    private readonly int[] _visited;
    private int _visitStamp;
    private readonly byte[] _chunk = new byte[ChunkSize];

    private bool _queueReady;
    private bool _ringsOutOfRange;
    private uint _queueNum;
    private ulong _descAddr;
    private ulong _availAddr;
    private ulong _usedAddr;
    private ushort _lastAvail;
    private ushort _usedIdx;

    /// <summary>Whether queue 0 is ready (QueueReady 1).</summary>
    public bool QueueReady => _queueReady;

    /// <summary>The queue size of queue 0 (QueueNum; QueueNumMax until the driver writes it).</summary>
    public int QueueSize => (int)_queueNum;

    /// <summary>The next available ring index the device will read (its <c>last_avail_idx</c>).</summary>
    public ushort LastAvailIndex => _lastAvail;

    /// <summary>The used ring index the device last published.</summary>
    public ushort UsedIndex => _usedIdx;

    private bool Negotiated(int feature) => (_negotiated & (1UL << feature)) != 0;

    private void WriteQueueNum(uint value)
    {
        if (_queueSel != 0)
        {
            Report($"QueueNum {value} for queue {_queueSel} ignored: the device has one queue (0)");
        }
        else if (_queueReady)
        {
            Report($"QueueNum {value} written while queue 0 is ready: ignored");
        }
        else if (value == 0 || value > (uint)_queueNumMax || !BitOperations.IsPow2(value))
        {
            Report($"QueueNum {value} ignored: a split virtqueue's size is a power of two from 1 to QueueNumMax ({_queueNumMax})");
        }
        else
        {
            _queueNum = value;
        }
    }

    private void WriteQueueReady(uint value)
    {
        if (_queueSel != 0)
        {
            if (value != 0)
            {
                Report($"QueueReady {value} for queue {_queueSel} ignored: the device has one queue (0)");
            }

            return;
        }

        if (value > 1)
        {
            Report($"QueueReady written with 0x{value:x}: only bit 0 counts");
        }

        bool ready = (value & 1) != 0;
        if (ready && !_queueReady)
        {
            _lastAvail = 0;
            _usedIdx = 0;
            CheckRingPlacement();
        }

        _queueReady = ready;
    }

    private void WriteQueueAddress(ulong offset, uint value)
    {
        if (_queueSel != 0)
        {
            Report($"queue address register 0x{offset:x} for queue {_queueSel} ignored: the device has one queue (0)");
            return;
        }

        if (_queueReady)
        {
            Report($"queue address register 0x{offset:x} written while queue 0 is ready: ignored");
            return;
        }

        bool high = (offset & 4) != 0;
        switch (offset & ~4UL)
        {
            case VirtioMmioRegister.QueueDescLow:
                _descAddr = SetHalf(_descAddr, value, high);
                break;
            case VirtioMmioRegister.QueueDriverLow:
                _availAddr = SetHalf(_availAddr, value, high);
                break;
            default:
                _usedAddr = SetHalf(_usedAddr, value, high);
                break;
        }

        static ulong SetHalf(ulong field, uint value, bool high) =>
            high ? (field & 0xFFFF_FFFFUL) | ((ulong)value << 32) : (field & 0xFFFF_FFFF_0000_0000UL) | value;
    }

    /// <summary>Reports misaligned or unreachable ring areas when the queue is enabled; the device still tries to use them.</summary>
    private void CheckRingPlacement()
    {
        ulong trailer = Negotiated(VirtioFeature.EventIdx) ? 2UL : 0;
        _ringsOutOfRange = false;
        CheckArea("descriptor table", _descAddr, Virtq.DescriptorTableSize((int)_queueNum), Virtq.DescriptorTableAlignment, write: false);
        CheckArea("available ring", _availAddr, 4 + 2 * (ulong)_queueNum + trailer, Virtq.AvailableRingAlignment, write: false);
        CheckArea("used ring", _usedAddr, 4 + 8 * (ulong)_queueNum + trailer, Virtq.UsedRingAlignment, write: true);

        void CheckArea(string what, ulong address, ulong size, int alignment, bool write)
        {
            if ((address & (ulong)(alignment - 1)) != 0)
            {
                Report($"queue 0 {what} at 0x{address:x} is not {alignment}-byte aligned as the split virtqueue layout requires");
            }

            DmaResult r = _dma.Check(address, size, write);
            if (r == DmaResult.OutOfRange)
            {
                _ringsOutOfRange = true;
            }

            if (r != DmaResult.Ok)
            {
                Report($"queue 0 {what} at 0x{address:x} (0x{size:x} bytes) is {Describe(r)}: the device will need a reset when it uses the queue");
            }
        }
    }

    private void Notify(uint value)
    {
        if (value != 0)
        {
            Report($"notification for queue {value} ignored: the device has one queue (0)");
            return;
        }

        var status = (VirtioStatus)_status;
        if ((status & VirtioStatus.DriverOk) == 0)
        {
            Report("queue 0 notified before DRIVER_OK: ignored");
        }
        else if ((status & VirtioStatus.DeviceNeedsReset) != 0)
        {
            // Already reported; the device waits for a reset.
        }
        else if ((status & VirtioStatus.Failed) != 0)
        {
            Report("queue 0 notified after the driver set FAILED: ignored");
        }
        else if ((status & VirtioStatus.FeaturesOk) == 0)
        {
            Report("queue 0 notified without FEATURES_OK: ignored");
        }
        else if (!_queueReady)
        {
            Report("queue 0 notified while QueueReady is 0: ignored");
        }
        else
        {
            ProcessQueue();
        }
    }

    private void ProcessQueue()
    {
        if (_ringsOutOfRange)
        {
            NeedsReset("queue 0 rings lie beyond the physical address space");
            return;
        }

        uint mask = _queueNum - 1;
        DmaResult r = _dma.ReadUInt16(_availAddr + 2, out ushort availIdx);
        if (r != DmaResult.Ok)
        {
            RingFault("available ring idx", _availAddr + 2, r);
            return;
        }

        int pending = (ushort)(availIdx - _lastAvail);
        if (pending == 0)
        {
            return; // A spurious notification, which the device must accept.
        }

        if (pending > _queueNum)
        {
            NeedsReset($"available idx {availIdx} is {pending} entries ahead of the device's {_lastAvail}, more than the queue size {_queueNum}");
            return;
        }

        ushort oldUsed = _usedIdx;
        for (; pending > 0; pending--)
        {
            ulong slot = _availAddr + 4 + 2 * (ulong)(_lastAvail & mask);
            r = _dma.ReadUInt16(slot, out ushort head);
            if (r != DmaResult.Ok)
            {
                RingFault($"available ring entry {_lastAvail & mask}", slot, r);
                return;
            }

            if (head >= _queueNum)
            {
                NeedsReset($"available ring entry {_lastAvail & mask} names descriptor {head}, beyond the queue size {_queueNum}");
                return;
            }

            _lastAvail++;
            if (!ProcessRequest(head, out uint usedLength))
            {
                return;
            }

            ulong element = _usedAddr + 4 + 8 * (ulong)(_usedIdx & mask);
            r = _dma.WriteUInt64(element, head | ((ulong)usedLength << 32));
            if (r != DmaResult.Ok)
            {
                RingFault($"used ring element {_usedIdx & mask}", element, r);
                return;
            }

            _usedIdx++;
            r = _dma.WriteUInt16(_usedAddr + 2, _usedIdx);
            if (r != DmaResult.Ok)
            {
                RingFault("used ring idx", _usedAddr + 2, r);
                return;
            }
        }

        bool notify;
        if (Negotiated(VirtioFeature.EventIdx))
        {
            ulong availEvent = _usedAddr + 4 + 8 * (ulong)_queueNum;
            r = _dma.WriteUInt16(availEvent, _lastAvail);
            if (r != DmaResult.Ok)
            {
                RingFault("used ring avail_event", availEvent, r);
                return;
            }

            ulong usedEventAt = _availAddr + 4 + 2 * (ulong)_queueNum;
            r = _dma.ReadUInt16(usedEventAt, out ushort usedEvent);
            if (r != DmaResult.Ok)
            {
                RingFault("available ring used_event", usedEventAt, r);
                return;
            }

            // Notify when the used idx passed used_event + 1 during this batch (vring_need_event).
            notify = (ushort)(_usedIdx - usedEvent - 1) < (ushort)(_usedIdx - oldUsed);
        }
        else
        {
            r = _dma.ReadUInt16(_availAddr, out ushort flags);
            if (r != DmaResult.Ok)
            {
                RingFault("available ring flags", _availAddr, r);
                return;
            }

            notify = (flags & Virtq.AvailFlagNoInterrupt) == 0;
        }

        if (notify)
        {
            RaiseInterrupt(VirtioMmio.InterruptUsedBuffer);
        }
    }

    /// <summary>Walks the chain at <paramref name="head"/> and serves it; false when the descriptor table itself is unreachable.</summary>
    private bool ProcessRequest(ushort head, out uint usedLength)
    {
        usedLength = 0;
        int count = 0;
        int readable = 0;
        string? problem = null;
        ulong table = _descAddr;
        uint tableSize = _queueNum;
        bool indirect = false;
        uint index = head;
        int visited = 0;
        int stamp = NextVisitStamp();
        Span<byte> desc = stackalloc byte[Virtq.DescriptorSize];
        while (true)
        {
            if (visited == _maxChain)
            {
                problem = $"the chain has more than {_maxChain} descriptors";
                break;
            }

            if (index >= tableSize)
            {
                problem = indirect
                    ? $"next index {index} is beyond the indirect table of {tableSize} descriptors"
                    : $"next index {index} is beyond the queue size {tableSize}";
                break;
            }

            if (_visited[index] == stamp)
            {
                problem = $"{(indirect ? "indirect " : "")}descriptor {index} is reached twice: the chain loops";
                break;
            }

            _visited[index] = stamp;
            visited++;
            ulong at = table + Virtq.DescriptorSize * (ulong)index;
            DmaResult r = _dma.Read(at, desc);
            if (r != DmaResult.Ok)
            {
                if (!indirect)
                {
                    RingFault($"descriptor {index}", at, r);
                    return false;
                }

                problem = $"indirect descriptor {index} at 0x{at:x} is {Describe(r)}";
                break;
            }

            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(desc);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(desc[8..]);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(desc[12..]);
            ushort next = BinaryPrimitives.ReadUInt16LittleEndian(desc[14..]);
            if ((flags & Virtq.DescFlagIndirect) != 0)
            {
                if (indirect)
                {
                    problem = $"indirect descriptor {index} is itself VIRTQ_DESC_F_INDIRECT (one table per chain)";
                    break;
                }

                if (!Negotiated(VirtioFeature.IndirectDesc))
                {
                    problem = $"descriptor {index} is VIRTQ_DESC_F_INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated";
                    break;
                }

                if ((flags & Virtq.DescFlagNext) != 0)
                {
                    problem = $"descriptor {index} has both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT";
                    break;
                }

                if (length == 0 || length % Virtq.DescriptorSize != 0 || address + (length - 1) < address)
                {
                    problem = $"indirect table at 0x{address:x} of {length} bytes is not a whole number of 16-byte descriptors";
                    break;
                }

                if (length / Virtq.DescriptorSize > (uint)_maxChain)
                {
                    problem = $"indirect table of {length / Virtq.DescriptorSize} descriptors exceeds the device's chain limit of {_maxChain}";
                    break;
                }

                table = address;
                tableSize = length / Virtq.DescriptorSize;
                indirect = true;
                index = 0;
                stamp = NextVisitStamp(); // indices now name entries of the indirect table
                continue;
            }

            bool writable = (flags & Virtq.DescFlagWrite) != 0;
            if (length != 0)
            {
                if (address + (length - 1) < address)
                {
                    problem = $"descriptor {index} (0x{address:x}, {length} bytes) wraps past the end of the address space";
                    break;
                }

                if (!writable && count > readable)
                {
                    problem = $"device-readable descriptor {index} follows a device-writable one";
                    break;
                }

                _segments[count++] = new Segment(address, length, writable);
                if (!writable)
                {
                    readable++;
                }
            }

            if ((flags & Virtq.DescFlagNext) == 0)
            {
                break;
            }

            index = next;
        }

        int writableCount = count - readable;
        if (problem is not null)
        {
            Report($"request at head {head}: {problem}; completed with IOERR");
            usedLength = Finish(head, VirtioBlk.StatusIoErr, 0, count, writableCount);
            return true;
        }

        if (writableCount == 0)
        {
            Report($"request at head {head} has no device-writable byte for the status: completed without a status (used length 0)");
            FailedRequests++;
            return true;
        }

        ulong readableLength = StreamLength(0, readable);
        ulong writableLength = StreamLength(readable, writableCount);
        ulong written = 0;
        byte status = ServeRequest(head, readable, writableCount, readableLength, writableLength, ref written);
        usedLength = Finish(head, status, written, count, writableCount);
        return true;
    }

    private byte ServeRequest(ushort head, int readable, int writableCount, ulong readableLength, ulong writableLength, ref ulong written)
    {
        if (readableLength < VirtioBlk.RequestHeaderSize)
        {
            Report($"request at head {head}: the device-readable part has {readableLength} bytes, less than the 16-byte request header; completed with IOERR");
            return VirtioBlk.StatusIoErr;
        }

        Span<byte> header = stackalloc byte[VirtioBlk.RequestHeaderSize];
        MoveResult m = Transfer(Move.GuestToSpan, 0, readable, 0, VirtioBlk.RequestHeaderSize, header, 0);
        if (!m.Ok)
        {
            ReportMove(head, "request header", m);
            return VirtioBlk.StatusIoErr;
        }

        uint type = BinaryPrimitives.ReadUInt32LittleEndian(header);
        ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        ulong dataIn = writableLength - 1;
        ulong dataOut = readableLength - VirtioBlk.RequestHeaderSize;
        switch (type)
        {
            case VirtioBlk.TypeIn:
                if (!CheckDataRange(head, "IN", sector, dataIn))
                {
                    return VirtioBlk.StatusIoErr;
                }

                m = Transfer(Move.CheckGuestWrite, readable, writableCount, 0, dataIn, default, 0);
                if (m.Ok)
                {
                    m = Transfer(Move.DiskToGuest, readable, writableCount, 0, dataIn, default, (long)(sector * VirtioBlk.SectorSize));
                }

                if (!m.Ok)
                {
                    ReportMove(head, "IN data buffer", m);
                    return VirtioBlk.StatusIoErr;
                }

                written = dataIn;
                return VirtioBlk.StatusOk;
            case VirtioBlk.TypeOut:
                if (_disk.ReadOnly)
                {
                    Report($"request at head {head}: OUT to sector {sector} of a read-only disk (VIRTIO_BLK_F_RO); completed with IOERR");
                    return VirtioBlk.StatusIoErr;
                }

                if (!CheckDataRange(head, "OUT", sector, dataOut))
                {
                    return VirtioBlk.StatusIoErr;
                }

                m = Transfer(Move.CheckGuestRead, 0, readable, VirtioBlk.RequestHeaderSize, dataOut, default, 0);
                if (m.Ok)
                {
                    m = Transfer(Move.GuestToDisk, 0, readable, VirtioBlk.RequestHeaderSize, dataOut, default, (long)(sector * VirtioBlk.SectorSize));
                }

                if (!m.Ok)
                {
                    ReportMove(head, "OUT data buffer", m);
                    return VirtioBlk.StatusIoErr;
                }

                return VirtioBlk.StatusOk;
            case VirtioBlk.TypeFlush:
                if (!_disk.Flush())
                {
                    Report($"request at head {head}: FLUSH failed on the host; completed with IOERR");
                    return VirtioBlk.StatusIoErr;
                }

                return VirtioBlk.StatusOk;
            case VirtioBlk.TypeGetId:
                int idBytes = (int)Math.Min(dataIn, VirtioBlk.IdBytes);
                m = Transfer(Move.CheckGuestWrite, readable, writableCount, 0, (ulong)idBytes, default, 0);
                if (m.Ok)
                {
                    m = Transfer(Move.SpanToGuest, readable, writableCount, 0, (ulong)idBytes, _serial.AsSpan(0, idBytes), 0);
                }

                if (!m.Ok)
                {
                    ReportMove(head, "GET_ID buffer", m);
                    return VirtioBlk.StatusIoErr;
                }

                written = (ulong)idBytes;
                return VirtioBlk.StatusOk;
            default:
                Report($"request at head {head}: request type {type} is not supported; completed with UNSUPP");
                return VirtioBlk.StatusUnsupp;
        }
    }

    /// <summary>Checks that a data transfer is whole sectors inside the capacity; reports and returns false otherwise.</summary>
    private bool CheckDataRange(ushort head, string kind, ulong sector, ulong bytes)
    {
        if (bytes % VirtioBlk.SectorSize != 0)
        {
            Report($"request at head {head}: {kind} data of {bytes} bytes is not a multiple of 512; completed with IOERR");
            return false;
        }

        ulong sectors = bytes / VirtioBlk.SectorSize;
        if (sector > _capacity || sectors > _capacity - sector)
        {
            Report($"request at head {head}: {kind} of {sectors} sector(s) at sector {sector} goes beyond the capacity of {_capacity} sectors; completed with IOERR");
            return false;
        }

        return true;
    }

    /// <summary>Writes the status into the last device-writable byte of the chain and returns the used length.</summary>
    private uint Finish(ushort head, byte status, ulong written, int count, int writableCount)
    {
        if (status == VirtioBlk.StatusOk)
        {
            CompletedRequests++;
        }
        else
        {
            FailedRequests++;
        }

        if (writableCount == 0)
        {
            return 0;
        }

        Segment last = _segments[count - 1];
        ulong statusAddress = last.Address + last.Length - 1;
        Span<byte> b = [status];
        DmaResult r = _dma.Write(statusAddress, b);
        if (r != DmaResult.Ok)
        {
            Report($"request at head {head}: status byte at 0x{statusAddress:x} is {Describe(r)}; completed without a status (used length 0)");
            return 0;
        }

        return (uint)Math.Min(written + 1, uint.MaxValue);
    }

    /// <summary>A fresh mark for <see cref="_visited"/>: entries holding it were reached in the current table walk.</summary>
    private int NextVisitStamp()
    {
        if (++_visitStamp == int.MaxValue)
        {
            Array.Clear(_visited);
            _visitStamp = 1;
        }

        return _visitStamp;
    }

    private ulong StreamLength(int first, int count)
    {
        ulong total = 0;
        for (int i = first; i < first + count; i++)
        {
            total += _segments[i].Length;
        }

        return total;
    }

    /// <summary>
    /// Moves <paramref name="length"/> bytes of the byte stream formed by segments [<paramref name="first"/>,
    /// +<paramref name="count"/>), starting <paramref name="skip"/> bytes in, to or from <paramref name="span"/> or
    /// the disk at <paramref name="diskOffset"/>; the check modes only check the guest ranges. The caller guarantees
    /// the stream holds skip + length bytes.
    /// </summary>
    private MoveResult Transfer(Move mode, int first, int count, ulong skip, ulong length, Span<byte> span, long diskOffset)
    {
        ulong done = 0;
        for (int i = first; i < first + count && done < length; i++)
        {
            Segment s = _segments[i];
            if (skip >= s.Length)
            {
                skip -= s.Length;
                continue;
            }

            ulong address = s.Address + skip;
            ulong take = Math.Min(s.Length - skip, length - done);
            skip = 0;
            DmaResult r;
            switch (mode)
            {
                case Move.CheckGuestRead:
                case Move.CheckGuestWrite:
                    r = _dma.Check(address, take, mode == Move.CheckGuestWrite);
                    if (r != DmaResult.Ok)
                    {
                        return new MoveResult(r, address, take, false);
                    }

                    break;
                case Move.GuestToSpan:
                    r = _dma.Read(address, span.Slice((int)done, (int)take));
                    if (r != DmaResult.Ok)
                    {
                        return new MoveResult(r, address, take, false);
                    }

                    break;
                case Move.SpanToGuest:
                    r = _dma.Write(address, span.Slice((int)done, (int)take));
                    if (r != DmaResult.Ok)
                    {
                        return new MoveResult(r, address, take, false);
                    }

                    break;
                default:
                    for (ulong o = 0; o < take;)
                    {
                        int n = (int)Math.Min(take - o, ChunkSize);
                        Span<byte> buffer = _chunk.AsSpan(0, n);
                        long at = diskOffset + (long)(done + o);
                        if (mode == Move.DiskToGuest)
                        {
                            if (!_disk.Read(at, buffer))
                            {
                                return new MoveResult(DmaResult.Ok, (ulong)at, (ulong)n, true);
                            }

                            r = _dma.Write(address + o, buffer);
                        }
                        else
                        {
                            r = _dma.Read(address + o, buffer);
                            if (r == DmaResult.Ok && !_disk.Write(at, buffer))
                            {
                                return new MoveResult(DmaResult.Ok, (ulong)at, (ulong)n, true);
                            }
                        }

                        if (r != DmaResult.Ok)
                        {
                            return new MoveResult(r, address + o, (ulong)n, false);
                        }

                        o += (ulong)n;
                    }

                    break;
            }

            done += take;
        }

        return default;
    }

    private void ReportMove(ushort head, string what, in MoveResult m)
    {
        Report(m.HostError
            ? $"request at head {head}: {what}: host I/O failed at disk offset 0x{m.Address:x} ({m.Length} bytes); completed with IOERR"
            : $"request at head {head}: {what} at 0x{m.Address:x} (0x{m.Length:x} bytes) is {Describe(m.Dma)}; completed with IOERR");
    }

    private void RingFault(string what, ulong address, DmaResult r) =>
        NeedsReset($"queue 0 {what} at 0x{address:x} is {Describe(r)}");

    /// <summary>Sets DEVICE_NEEDS_RESET and raises a configuration change interrupt (the driver is running: DRIVER_OK).</summary>
    private void NeedsReset(string message)
    {
        Report($"{message}: DEVICE_NEEDS_RESET set");
        _status |= (byte)VirtioStatus.DeviceNeedsReset;
        RaiseInterrupt(VirtioMmio.InterruptConfigChange);
    }

    private static string Describe(DmaResult r) => r switch
    {
        DmaResult.Unmapped => "unmapped (no RAM there)",
        DmaResult.NotMemory => "not RAM (an MMIO window, or ROM for a write)",
        DmaResult.OutOfRange => "beyond the physical address space",
        _ => "reachable",
    };

    private enum Move : byte
    {
        CheckGuestRead,
        CheckGuestWrite,
        GuestToSpan,
        SpanToGuest,
        DiskToGuest,
        GuestToDisk,
    }

    private readonly record struct Segment(ulong Address, uint Length, bool Writable);

    private readonly record struct MoveResult(DmaResult Dma, ulong Address, ulong Length, bool HostError)
    {
        public bool Ok => Dma == DmaResult.Ok && !HostError;
    }
}
