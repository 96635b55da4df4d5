using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using Microsoft.Extensions.Logging;
using static HwMemModel.Drivers.Dma.DmaEngineHw;

namespace HwMemModel.Drivers.Dma;

/// <summary>
/// A driver for the memory-to-memory DMA engine ("hwmem,dma-engine"), shaped like a Linux dmaengine provider:
/// probe maps the registers, checks ID and VERSION, resets the engine, puts a descriptor ring in coherent DMA memory,
/// programs RING_BASE and RING_SIZE, takes the level interrupt and enables the engine with the DONE and ERROR
/// interrupts. Everything probe acquires is managed (devm_*, dmam_*), so a failure at any step leaves nothing behind.
/// Each bound engine is a <see cref="DmaChannel"/> (in <see cref="Channels"/> and the device's DriverData) that
/// submits copy and fill descriptors and waits for their completion interrupt.
/// </summary>
public sealed class DmaEngineDriver : IPlatformDriver
{
    /// <summary>Descriptors in the ring the driver allocates (at most the engine's largest ring from CAPS).</summary>
    public const int DefaultRingSize = 64;
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly IDmaApi _dma;
    private readonly IDevresApi _devres;
    private readonly KernelMemory _memory;
    private readonly ILogger<DmaEngineDriver> _log;
    private readonly Dictionary<string, DmaChannel> _channels = new(StringComparer.Ordinal);

    /// <summary>Creates the driver with the kernel-model services it uses.</summary>
    public DmaEngineDriver(IIoMemApi io, IIrqApi irq, IDmaApi dma, IDevresApi devres, KernelMemory memory, ILogger<DmaEngineDriver> log)
    {
        _io = io ?? throw new ArgumentNullException(nameof(io));
        _irq = irq ?? throw new ArgumentNullException(nameof(irq));
        _dma = dma ?? throw new ArgumentNullException(nameof(dma));
        _devres = devres ?? throw new ArgumentNullException(nameof(devres));
        _memory = memory ?? throw new ArgumentNullException(nameof(memory));
        _log = log ?? throw new ArgumentNullException(nameof(log));
    }

    /// <inheritdoc />
    public string Name => "hwmem-dma";

    /// <inheritdoc />
    public IReadOnlyList<string> Compatible { get; } = ["hwmem,dma-engine"];

    /// <summary>The bound engines by device name.</summary>
    public IReadOnlyDictionary<string, DmaChannel> Channels => _channels;

    /// <inheritdoc />
    public int Probe(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        int irq = device.GetIrq();
        if (irq < 0)
        {
            _log.LogWarning("{Device}: no interrupt line; the engine needs one", device.Name);
            return irq;
        }
        ulong regs = _devres.DevmPlatformIoRemapResource(device);
        if (regs == 0) return -Errno.ENOMEM;

        uint id = _io.ReadL(regs + Id);
        if (id != IdValue)
        {
            _log.LogWarning("{Device}: ID register reads 0x{Id:x8}, not 0x{Expected:x8}: no DMA engine here", device.Name, id, IdValue);
            return -Errno.ENODEV;
        }
        uint version = _io.ReadL(regs + DmaEngineHw.Version);
        if (version >> 16 != VersionMajor)
        {
            _log.LogWarning("{Device}: unsupported DMA engine version {Major}.{Minor}", device.Name, version >> 16, version & 0xFFFF);
            return -Errno.ENODEV;
        }
        uint caps = _io.ReadL(regs + Caps);
        int descSize = (int)((caps >> CapsDescSizeShift) & 0xFF);
        int ringLog2 = (int)((caps >> CapsRingLog2Shift) & 0xFF);
        int lengthLog2 = (int)((caps >> CapsLengthLog2Shift) & 0xFF);
        if (descSize != DescSize || ringLog2 < 1)
        {
            _log.LogWarning("{Device}: CAPS 0x{Caps:x8} describes a descriptor or ring this driver does not know", device.Name, caps);
            return -Errno.ENODEV;
        }
        int ringSize = ringLog2 >= 6 ? DefaultRingSize : 1 << ringLog2;
        uint maxLength = lengthLog2 >= 32 ? uint.MaxValue : 1u << lengthLog2;

        // The engine takes 64-bit bus addresses (RING_BASE 63:5, 64-bit descriptor fields).
        int rc = _dma.DmaSetMaskAndCoherent(device, ulong.MaxValue);
        if (rc != 0) return rc;

        // A known state: stop whatever a previous owner left running.
        _io.WriteL(CtrlReset, regs + Control);

        ulong ringBytes = (ulong)ringSize * DescSize;
        ulong ring = _devres.DmamAllocCoherent(device, ringBytes, out ulong ringBus);
        if (ring == 0) return -Errno.ENOMEM;

        var channel = new DmaChannel(device.Name, _io, _irq, _dma, _memory, _log, device, regs, ring, ringBus, ringSize, maxLength);
        // Newest first on release: the engine is stopped before the irq, the ring and the registers go.
        device.AddManagedAction("hwmem-dma: engine disabled and reset", channel.Shutdown);
        rc = _devres.DevmRequestIrq(device, irq, channel.Interrupt, device.Name, channel);
        if (rc != 0) return rc;
        channel.Irq = irq;
        channel.Start();

        device.DriverData = channel;
        _channels[device.Name] = channel;
        _log.LogInformation("{Device}: DMA engine {Major}.{Minor} at MMIO 0x{Base:x}, irq {Irq}, {Ring} descriptors at bus 0x{RingBus:x}, transfers up to {Max} bytes",
            device.Name, version >> 16, version & 0xFFFF, device.GetResource(ResourceKind.Memory)!.Value.Start, irq, ringSize, ringBus, maxLength);
        return 0;
    }

    /// <inheritdoc />
    public void Remove(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DriverData is DmaChannel channel) channel.Shutdown();
        _channels.Remove(device.Name);
    }
}
