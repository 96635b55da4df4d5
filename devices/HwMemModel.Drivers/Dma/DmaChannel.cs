using System.Buffers.Binary;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using Microsoft.Extensions.Logging;
using static HwMemModel.Drivers.Dma.DmaEngineHw;

namespace HwMemModel.Drivers.Dma;

/// <summary>
/// One bound DMA engine: submits copy and fill descriptors to its ring and waits for them. A submission writes the
/// descriptors into the coherent ring through the MMU (the last one asks for an interrupt), rings the doorbell (TAIL)
/// and sleeps in wait_for_completion_timeout until the interrupt handler reports DONE or ERROR; the statuses the
/// engine wrote back decide the result. After an error or a timeout the engine is reset and reprogrammed, so the next
/// submission starts on a clean ring. Bus addresses are what the DMA API returned (dma_map_single, coherent memory);
/// <see cref="CopyKernel"/> does the mapping itself.
/// </summary>
public sealed class DmaChannel
{
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly IDmaApi _dma;
    private readonly KernelMemory _memory;
    private readonly ILogger _log;
    private readonly PlatformDevice _device;
    private readonly ulong _regs;
    private readonly Completion _done = new();
    private uint _tail;
    private uint _lastCompleted;
    private bool _errorPending;
    private uint _errorRingIndex;
    private bool _shutDown;
    private long _timeoutNs = 2_000_000_000;

    internal DmaChannel(string name, IIoMemApi io, IIrqApi irq, IDmaApi dma, KernelMemory memory, ILogger log, PlatformDevice device,
        ulong regs, ulong ring, ulong ringBus, int ringSize, uint maxTransferLength)
    {
        Name = name;
        _io = io;
        _irq = irq;
        _dma = dma;
        _memory = memory;
        _log = log;
        _device = device;
        _regs = regs;
        RingAddress = ring;
        RingBusAddress = ringBus;
        RingSize = ringSize;
        MaxTransferLength = maxTransferLength;
    }

    /// <summary>The device's name.</summary>
    public string Name { get; }
    /// <summary>The interrupt line.</summary>
    public int Irq { get; internal set; } = -1;
    /// <summary>Kernel virtual address of the descriptor ring (coherent DMA memory).</summary>
    public ulong RingAddress { get; }
    /// <summary>Bus address of the descriptor ring (what RING_BASE holds).</summary>
    public ulong RingBusAddress { get; }
    /// <summary>Descriptors in the ring; a batch holds at most one fewer.</summary>
    public int RingSize { get; }
    /// <summary>The longest transfer one descriptor may move (from CAPS).</summary>
    public uint MaxTransferLength { get; }
    /// <summary>Interrupts this channel's handler claimed.</summary>
    public long Interrupts { get; private set; }
    /// <summary>Descriptors the engine completed successfully (COMPLETED, accumulated across resets).</summary>
    public long Completed { get; private set; }
    /// <summary>Submissions that ended with -EIO.</summary>
    public long Errors { get; private set; }
    /// <summary>Submissions that ended with -ETIMEDOUT.</summary>
    public long Timeouts { get; private set; }
    /// <summary>STATUS.LAST_ERROR of the last error the handler saw (0 for none): (where &lt;&lt; 4) | reason, or 0x10/0x11/0x60/0x61.</summary>
    public ushort LastErrorCode { get; private set; }
    /// <summary>ERROR_ADDR of the last error: the refused bus address, or the descriptor's address.</summary>
    public ulong LastErrorAddress { get; private set; }
    /// <summary>Index, within the last submitted batch, of the request that failed; -1 when the last submission succeeded.</summary>
    public int FailedRequest { get; private set; } = -1;

    /// <summary>How long (guest ns) a submission waits for its completion interrupt; 2 s by default, as dmatest waits.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public long TimeoutNs
    {
        get => _timeoutNs;
        set
        {
            if (value <= 0) throw new ArgumentOutOfRangeException(nameof(value), value, "The completion timeout is a positive number of guest nanoseconds.");
            _timeoutNs = value;
        }
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes from bus address <paramref name="srcBus"/> to <paramref name="dstBus"/>
    /// (addresses from the DMA API). Returns 0, -EIO when the engine refused the descriptor (see
    /// <see cref="LastErrorCode"/>), -ETIMEDOUT when no completion came, or -ENODEV after the device was removed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> exceeds <see cref="MaxTransferLength"/>.</exception>
    public int Copy(ulong dstBus, ulong srcBus, uint length) => Submit([DmaRequest.Copy(dstBus, srcBus, length)]);

    /// <summary>
    /// Fills <paramref name="length"/> bytes at bus address <paramref name="dstBus"/> with the 8-byte
    /// <paramref name="pattern"/> repeated (byte i = pattern byte i mod 8). Returns as <see cref="Copy"/> does.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> exceeds <see cref="MaxTransferLength"/>.</exception>
    public int Fill(ulong dstBus, ulong pattern, uint length) => Submit([DmaRequest.Fill(dstBus, pattern, length)]);

    /// <summary>
    /// Copies between two direct-mapped kernel buffers (kmalloc, page allocator), the usual way a driver does
    /// memory-to-memory DMA: dma_map_single of the source (DMA_TO_DEVICE) and the destination (DMA_FROM_DEVICE), one
    /// copy descriptor, then dma_unmap_single of both. Returns 0, -ENOMEM when a buffer cannot be mapped (vmalloc or
    /// ioremap memory, beyond the DMA mask), or what <see cref="Copy"/> returns. A length of 0 does nothing and returns 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> exceeds <see cref="MaxTransferLength"/>.</exception>
    public int CopyKernel(ulong dstVa, ulong srcVa, uint length)
    {
        CheckLength(length, nameof(length));
        if (length == 0) return 0;
        if (_shutDown) return -Errno.ENODEV;
        ulong src = _dma.DmaMapSingle(_device, srcVa, length, DmaDataDirection.ToDevice);
        if (Kernel.Kernel.DmaMappingError(src)) return -Errno.ENOMEM;
        ulong dst = _dma.DmaMapSingle(_device, dstVa, length, DmaDataDirection.FromDevice);
        if (Kernel.Kernel.DmaMappingError(dst))
        {
            _dma.DmaUnmapSingle(_device, src, length, DmaDataDirection.ToDevice);
            return -Errno.ENOMEM;
        }
        int rc = Copy(dst, src, length);
        _dma.DmaUnmapSingle(_device, dst, length, DmaDataDirection.FromDevice);
        _dma.DmaUnmapSingle(_device, src, length, DmaDataDirection.ToDevice);
        return rc;
    }

    /// <summary>
    /// Submits a batch of descriptors with one doorbell and one completion interrupt (requested by the last
    /// descriptor). Returns 0 when every descriptor completed OK; -EIO when one was refused (the engine halts there:
    /// <see cref="FailedRequest"/> names it, later ones are abandoned); -ETIMEDOUT; -ENODEV after removal.
    /// </summary>
    /// <exception cref="ArgumentException">The batch is empty or longer than <see cref="RingSize"/> - 1, a request is not
    /// made by <see cref="DmaRequest.Copy"/> or <see cref="DmaRequest.Fill"/>, or a length exceeds <see cref="MaxTransferLength"/>.</exception>
    public int Submit(ReadOnlySpan<DmaRequest> requests)
    {
        if (requests.IsEmpty || requests.Length > RingSize - 1)
            throw new ArgumentException($"A batch holds 1 to {RingSize - 1} requests (the ring has {RingSize} descriptors); {requests.Length} were given.", nameof(requests));
        foreach (var r in requests)
        {
            if (r.Operation is not (DmaOperation.Copy or DmaOperation.Fill))
                throw new ArgumentException($"Request operation {(byte)r.Operation} is neither Copy nor Fill; create requests with DmaRequest.Copy or DmaRequest.Fill.", nameof(requests));
            CheckLength(r.Length, nameof(requests));
        }
        if (_shutDown) return -Errno.ENODEV;

        uint mask = (uint)RingSize - 1;
        uint first = _tail;
        Span<byte> d = stackalloc byte[DescSize];
        for (int i = 0; i < requests.Length; i++)
        {
            var r = requests[i];
            d.Clear();
            d[DescOpcode] = r.Operation == DmaOperation.Copy ? OpCopy : OpFill;
            d[DescFlags] = i == requests.Length - 1 ? FlagInterrupt : (byte)0;
            BinaryPrimitives.WriteUInt16LittleEndian(d[DescStatus..], StatusPending);
            BinaryPrimitives.WriteUInt32LittleEndian(d[DescLength..], r.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(d[DescSource..], r.Operation == DmaOperation.Copy ? r.Source : 0);
            BinaryPrimitives.WriteUInt64LittleEndian(d[DescDestination..], r.Destination);
            BinaryPrimitives.WriteUInt64LittleEndian(d[DescPattern..], r.Operation == DmaOperation.Fill ? r.Pattern : 0);
            _memory.WriteBytes(Slot((first + (uint)i) & mask), d);
        }
        uint tail = (first + (uint)requests.Length) & mask;

        FailedRequest = -1;
        _errorPending = false;
        _done.Reinit();
        // wmb() is implied: the descriptors are in coherent memory before the doorbell's MMIO write.
        _io.WriteL(tail, _regs + Tail);
        if (_irq.WaitForCompletionTimeout(_done, _timeoutNs) == 0)
        {
            Timeouts++;
            _log.LogWarning("{Device}: no completion within {Timeout} ns (HEAD {Head}, TAIL {Tail}); resetting the engine",
                Name, _timeoutNs, _io.ReadL(_regs + Head) & 0xFFFF, tail);
            Recover();
            return -Errno.ETIMEDOUT;
        }
        _tail = tail;

        int failed = -1;
        ushort failedStatus = StatusOk;
        for (int i = 0; i < requests.Length && failed < 0; i++)
        {
            ushort status = (ushort)_memory.Read(Slot((first + (uint)i) & mask) + DescStatus, 2);
            if (status != StatusOk)
            {
                failed = i;
                failedStatus = status;
            }
        }
        if (!_errorPending && failed < 0) return 0;

        if (failed < 0)
        {
            // Halted without a written-back status (fetch, write-back or ring errors): ERROR_INDEX names the slot.
            failed = (int)((_errorRingIndex - first) & mask);
            failedStatus = LastErrorCode;
        }
        FailedRequest = Math.Min(failed, requests.Length - 1);
        Errors++;
        _log.LogWarning("{Device}: request {Index} of {Count} failed: status 0x{Status:x2} ({What}), error address 0x{Address:x}; resetting the engine",
            Name, FailedRequest, requests.Length, failedStatus, Describe(failedStatus), LastErrorAddress);
        Recover();
        return -Errno.EIO;
    }

    /// <summary>Programs the ring and enables the engine with the DONE and ERROR interrupts (probe, and after a reset).</summary>
    internal void Start()
    {
        _tail = 0;
        _lastCompleted = 0;
        _io.WriteQ(RingBusAddress, _regs + RingBase);
        _io.WriteL((uint)RingSize, _regs + DmaEngineHw.RingSize);
        _io.WriteL(CtrlEnable | CtrlDoneIe | CtrlErrorIe, _regs + Control);
    }

    /// <summary>Disables the engine and its interrupts, then resets it (remove, and a failed probe); later submissions return -ENODEV.</summary>
    internal void Shutdown()
    {
        if (_shutDown) return;
        _shutDown = true;
        _io.WriteL(0, _regs + Control);
        _io.WriteL(CtrlReset, _regs + Control);
    }

    /// <summary>
    /// The interrupt handler: IRQ_NONE unless STATUS has DONE or ERROR. On ERROR it stops the engine (ENABLE off, so
    /// acknowledging ERROR does not resume the ring) and records LAST_ERROR, ERROR_ADDR and ERROR_INDEX; it accounts
    /// COMPLETED, acknowledges (write 1 to clear) and completes the waiting submission.
    /// </summary>
    internal IrqReturn Interrupt(int irq, object? devId)
    {
        uint status = _io.ReadL(_regs + Status);
        uint pending = status & (StDone | StError);
        if (pending == 0) return IrqReturn.None;
        Interrupts++;
        if ((status & StError) != 0)
        {
            _io.WriteL(CtrlDoneIe | CtrlErrorIe, _regs + Control);
            LastErrorCode = (ushort)((status >> StLastErrorShift) & 0xFF);
            LastErrorAddress = _io.ReadQ(_regs + ErrorAddr);
            _errorRingIndex = _io.ReadL(_regs + ErrorIndex) & 0xFFFF;
            _errorPending = true;
        }
        uint completed = _io.ReadL(_regs + DmaEngineHw.Completed);
        Completed += completed - _lastCompleted;
        _lastCompleted = completed;
        _io.WriteL(pending, _regs + Status);
        _done.Complete();
        return IrqReturn.Handled;
    }

    // After an error or a timeout: reset abandons whatever is left in the ring (and a transfer in flight), then the
    // ring is programmed again from slot 0.
    private void Recover()
    {
        _io.WriteL(CtrlReset, _regs + Control);
        Start();
    }

    private ulong Slot(uint index) => RingAddress + (ulong)index * DescSize;

    private void CheckLength(uint length, string paramName)
    {
        if (length > MaxTransferLength)
            throw new ArgumentOutOfRangeException(paramName, length, $"One descriptor moves at most {MaxTransferLength} bytes (the engine's CAPS); split longer transfers.");
    }
}
