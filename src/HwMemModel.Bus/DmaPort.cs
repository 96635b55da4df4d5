using System.Buffers.Binary;

namespace HwMemModel.Bus;

/// <summary>Outcome of a bus-master (DMA) transfer as a device sees it.</summary>
public enum DmaResult : byte
{
    /// <summary>Every byte reached RAM.</summary>
    Ok = 0,
    /// <summary>Part of the range decodes to no region (no RAM, no device): nothing was transferred.</summary>
    Unmapped = 1,
    /// <summary>Part of the range decodes to a device window (MMIO) or, for a write, to ROM: nothing was transferred.</summary>
    NotMemory = 2,
    /// <summary>The range wraps past the top of the physical address space or exceeds MAXPHYADDR: nothing was transferred.</summary>
    OutOfRange = 3,
}

/// <summary>
/// Watches bus-master transfers before they happen; the kernel model's DMA API debugging (Linux's
/// CONFIG_DMA_API_DEBUG) implements it to report a device touching memory that no live DMA mapping covers.
/// </summary>
public interface IDmaAccessMonitor
{
    /// <summary>Called once per transfer, before it is performed, with the device's name and the bus range.</summary>
    /// <param name="device">The bus master's name (<see cref="DmaPort.DeviceName"/>).</param>
    /// <param name="busAddress">First bus address (equal to the physical address: the model has no IOMMU).</param>
    /// <param name="length">Bytes transferred.</param>
    /// <param name="write">True when the device writes memory (DMA_FROM_DEVICE), false when it reads it.</param>
    void DeviceAccess(string device, ulong busAddress, ulong length, bool write);
}

/// <summary>
/// A device's bus-master port: DMA reads and writes of RAM through the same <see cref="PhysicalBus"/> the CPUs use,
/// with <see cref="BusAttributes.Dma"/> attributes. A transfer is all or nothing: it is checked first, and a range
/// that is not entirely RAM (ROM may be read) transfers nothing and returns the reason, so a device can put it in
/// its error status. Bus addresses equal physical addresses (no IOMMU). Never throws for guest-controlled input.
/// </summary>
public sealed class DmaPort
{
    private readonly PhysicalBus _bus;
    private readonly BusAttributes _attributes;

    /// <summary>Creates the port of the device <paramref name="deviceName"/> with requester id <paramref name="requesterId"/>.</summary>
    public DmaPort(PhysicalBus bus, string deviceName, int requesterId = 0)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentException.ThrowIfNullOrEmpty(deviceName);
        _bus = bus;
        DeviceName = deviceName;
        _attributes = BusAttributes.Dma(requesterId);
    }

    /// <summary>The device's name, as reports show it.</summary>
    public string DeviceName { get; }

    /// <summary>The bus the port masters.</summary>
    public PhysicalBus Bus => _bus;

    /// <summary>Transfers performed (successful ones).</summary>
    public long Transfers { get; private set; }

    /// <summary>Bytes moved by successful transfers.</summary>
    public long Bytes { get; private set; }

    /// <summary>Transfers refused (unmapped, MMIO, ROM write, out of range).</summary>
    public long Errors { get; private set; }

    /// <summary>Checks that [<paramref name="busAddress"/>, +<paramref name="length"/>) is all RAM (or ROM when <paramref name="write"/> is false).</summary>
    public DmaResult Check(ulong busAddress, ulong length, bool write)
    {
        if (length == 0) return DmaResult.Ok;
        if (busAddress + (length - 1) < busAddress || busAddress + (length - 1) > _bus.MaxPhysAddress) return DmaResult.OutOfRange;
        ulong end = busAddress + length;
        for (ulong at = busAddress; at < end && at >= busAddress;)
        {
            var (kind, span) = _bus.Describe(at);
            if (kind is null) return DmaResult.Unmapped;
            if (kind == MemoryRegionKind.Mmio || (write && kind == MemoryRegionKind.Rom)) return DmaResult.NotMemory;
            if (span == 0 || at + span < at) break;
            at += span;
        }
        return DmaResult.Ok;
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes of memory at <paramref name="busAddress"/>.</summary>
    public DmaResult Read(ulong busAddress, Span<byte> destination)
    {
        var result = Check(busAddress, (ulong)destination.Length, write: false);
        if (result != DmaResult.Ok) { Errors++; return result; }
        if (destination.Length == 0) return DmaResult.Ok;
        _bus.DmaMonitor?.DeviceAccess(DeviceName, busAddress, (ulong)destination.Length, write: false);
        _bus.ReadBytes(busAddress, destination, _attributes);
        Transfers++;
        Bytes += destination.Length;
        return DmaResult.Ok;
    }

    /// <summary>Writes <paramref name="source"/> to memory at <paramref name="busAddress"/>.</summary>
    public DmaResult Write(ulong busAddress, ReadOnlySpan<byte> source)
    {
        var result = Check(busAddress, (ulong)source.Length, write: true);
        if (result != DmaResult.Ok) { Errors++; return result; }
        if (source.Length == 0) return DmaResult.Ok;
        _bus.DmaMonitor?.DeviceAccess(DeviceName, busAddress, (ulong)source.Length, write: true);
        _bus.WriteBytes(busAddress, source, _attributes);
        Transfers++;
        Bytes += source.Length;
        return DmaResult.Ok;
    }

    /// <summary>Reads a little-endian 16-bit value.</summary>
    public DmaResult ReadUInt16(ulong busAddress, out ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        var r = Read(busAddress, b);
        value = r == DmaResult.Ok ? BinaryPrimitives.ReadUInt16LittleEndian(b) : (ushort)0;
        return r;
    }

    /// <summary>Reads a little-endian 32-bit value.</summary>
    public DmaResult ReadUInt32(ulong busAddress, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        var r = Read(busAddress, b);
        value = r == DmaResult.Ok ? BinaryPrimitives.ReadUInt32LittleEndian(b) : 0;
        return r;
    }

    /// <summary>Reads a little-endian 64-bit value.</summary>
    public DmaResult ReadUInt64(ulong busAddress, out ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        var r = Read(busAddress, b);
        value = r == DmaResult.Ok ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
        return r;
    }

    /// <summary>Writes a little-endian 16-bit value.</summary>
    public DmaResult WriteUInt16(ulong busAddress, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        return Write(busAddress, b);
    }

    /// <summary>Writes a little-endian 32-bit value.</summary>
    public DmaResult WriteUInt32(ulong busAddress, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Write(busAddress, b);
    }

    /// <summary>Writes a little-endian 64-bit value.</summary>
    public DmaResult WriteUInt64(ulong busAddress, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return Write(busAddress, b);
    }
}
