using System.Runtime.CompilerServices;
using HwMemModel.Bus;
using HwMemModel.Kernel.Drivers;

namespace HwMemModel.Kernel;

/// <summary>enum dma_data_direction (include/linux/dma-direction.h).</summary>
public enum DmaDataDirection : byte
{
    /// <summary>DMA_BIDIRECTIONAL: the device may read and write.</summary>
    Bidirectional = 0,
    /// <summary>DMA_TO_DEVICE: the device reads memory.</summary>
    ToDevice = 1,
    /// <summary>DMA_FROM_DEVICE: the device writes memory.</summary>
    FromDevice = 2,
    /// <summary>DMA_NONE: not a valid direction for a mapping.</summary>
    None = 3,
}

/// <summary>A live DMA mapping as the DMA API debugging tracks it (kernel/dma/debug.c's dma_debug_entry).</summary>
/// <param name="Device">The device's name.</param>
/// <param name="BusAddress">The device-visible address.</param>
/// <param name="Size">Bytes mapped.</param>
/// <param name="Direction">The direction (coherent memory is bidirectional).</param>
/// <param name="Coherent">True for dma_alloc_coherent memory, false for a streaming mapping.</param>
/// <param name="CpuAddress">The kernel virtual address the CPU uses.</param>
public readonly record struct DmaMapping(string Device, ulong BusAddress, ulong Size, DmaDataDirection Direction, bool Coherent, ulong CpuAddress);

/// <content>
/// The DMA API (include/linux/dma-mapping.h, kernel/dma/direct.c) for x86-64 without an IOMMU: bus addresses equal
/// physical addresses, coherent memory is ordinary write-back RAM from the buddy allocator (zeroed, as
/// dma_alloc_coherent always is), streaming mappings translate a direct-map address. The DMA API debugging of
/// kernel/dma/debug.c is always on: misuse of the calls is reported in its wording, and, beyond what Linux can check
/// without an IOMMU, every bus-master transfer a device makes through a <see cref="DmaPort"/> is checked against the
/// live mappings: a device touching memory no live mapping covers, or writing memory mapped DMA_TO_DEVICE, is
/// reported ("DMA-API: virtio0: device wrote ...") and listed in <see cref="DmaViolations"/>.
/// </content>
public sealed partial class Kernel : IDmaAccessMonitor
{
    /// <summary>DMA_MAPPING_ERROR: (dma_addr_t)~0.</summary>
    public const ulong DmaMappingErrorAddress = ulong.MaxValue;
    private readonly List<DmaMapping> _dmaMappings = [];
    private readonly List<string> _dmaViolations = [];

    /// <summary>Live DMA mappings, in creation order.</summary>
    public IReadOnlyList<DmaMapping> DmaMappings => _dmaMappings;

    /// <summary>Device transfers that no live mapping allowed (the report lines).</summary>
    public IReadOnlyList<string> DmaViolations => _dmaViolations;

    /// <summary>Starts checking device transfers on <see cref="Bus"/> against the live DMA mappings.</summary>
    public void EnableDmaChecking() => Bus.DmaMonitor = this;

    /// <summary>
    /// dma_alloc_coherent: zeroed pages for <paramref name="size"/> bytes (rounded up to a power-of-two number of
    /// pages) below the device's coherent mask; returns the CPU (direct-map) address and the bus address in
    /// <paramref name="dmaHandle"/>, or 0 (NULL) on failure.
    /// </summary>
    public ulong DmaAllocCoherent(PlatformDevice device, ulong size, out ulong dmaHandle, Gfp gfp = Gfp.Kernel, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        dmaHandle = 0;
        if (size == 0)
        {
            Log.WarnOnce("dma_alloc_coherent size 0", $"{device.Name}: dma_alloc_coherent of 0 bytes", $"dma_alloc_attrs+0x0/0x0 [{caller}]");
            return 0;
        }
        int order = KmemCache.GetOrder(size);
        if (order > PageAllocator.MaxOrder) return 0;
        // dma_direct_optimal_gfp_mask: GFP_DMA for a mask within ZONE_DMA (24 bits), GFP_DMA32 for one within 32 bits;
        // __dma_direct_alloc_pages retries with GFP_DMA when the pages it got are not addressable.
        Gfp zoneBits = device.CoherentDmaMask <= 0xFF_FFFF ? Gfp.Dma : device.CoherentDmaMask <= uint.MaxValue ? Gfp.Dma32 : 0;
        ulong bytes = PageAllocator.PageSize << order;
        var pa = Pages.AllocPages((gfp & ~(Gfp.Dma | Gfp.Dma32)) | zoneBits | Gfp.Zero, order, PageAllocator.NumaNoNode, caller);
        if (pa is { } first && first + bytes - 1 > device.CoherentDmaMask && zoneBits != Gfp.Dma)
        {
            Pages.FreePages(first, order, caller);
            pa = Pages.AllocPages((gfp & ~(Gfp.Dma | Gfp.Dma32)) | Gfp.Dma | Gfp.Zero, order, PageAllocator.NumaNoNode, caller);
        }
        if (pa is null) return 0;
        if (pa.Value + bytes - 1 > device.CoherentDmaMask)
        {
            Pages.FreePages(pa.Value, order, caller);
            return 0;
        }
        dmaHandle = pa.Value;
        ulong va = PhysToVirt(pa.Value);
        _dmaMappings.Add(new DmaMapping(device.Name, dmaHandle, size, DmaDataDirection.Bidirectional, true, va));
        return va;
    }

    /// <summary>dma_free_coherent: frees what <see cref="DmaAllocCoherent"/> returned; a mismatch is reported as the DMA API debugging does and nothing is freed.</summary>
    public void DmaFreeCoherent(PlatformDevice device, ulong size, ulong cpuAddress, ulong dmaHandle, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        if (cpuAddress == 0) return;
        int i = FindDmaEntry(device, dmaHandle, coherent: true, size, DmaDataDirection.Bidirectional, "free", caller);
        if (i < 0) return;
        var entry = _dmaMappings[i];
        if (entry.CpuAddress != cpuAddress)
        {
            DmaDebugError(device, $"device driver frees DMA memory with different CPU address [device address=0x{dmaHandle:x16}] [size={size} bytes] [cpu alloc address=0x{entry.CpuAddress:x16}] [cpu free address=0x{cpuAddress:x16}]", caller);
            return;
        }
        _dmaMappings.RemoveAt(i);
        Pages.FreePages(dmaHandle, KmemCache.GetOrder(entry.Size), caller);
    }

    /// <summary>
    /// dma_map_single: maps [<paramref name="cpuAddress"/>, +<paramref name="size"/>) of direct-mapped memory (kmalloc,
    /// page allocator) for a transfer in <paramref name="direction"/>; returns the bus address or
    /// <see cref="DmaMappingErrorAddress"/> (test it with <see cref="DmaMappingError"/>). vmalloc and ioremap addresses
    /// are refused with the DMA API debugging's warning: they are not physically contiguous.
    /// </summary>
    public ulong DmaMapSingle(PlatformDevice device, ulong cpuAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        if (direction > DmaDataDirection.FromDevice)
        {
            DmaDebugError(device, $"device driver tries to map memory with invalid direction {DirectionName(direction)} [addr=0x{cpuAddress:x16}] [len={size}]", caller);
            return DmaMappingErrorAddress;
        }
        if (IsVmallocAddr(cpuAddress))
        {
            DmaDebugError(device, $"device driver maps memory from vmalloc area [addr=0x{cpuAddress:x16}] [len={size}]", caller);
            return DmaMappingErrorAddress;
        }
        if (!IsLinearAddr(cpuAddress) || size == 0 || !IsLinearAddr(cpuAddress + size - 1))
        {
            DmaDebugError(device, $"device driver maps memory from invalid area [addr=0x{cpuAddress:x16}] [len={size}]", caller);
            return DmaMappingErrorAddress;
        }
        ulong busAddress = VirtToPhys(cpuAddress);
        if (busAddress + size - 1 > device.DmaMask)
        {
            Log.Print($"{device.Name}: DMA addr 0x{busAddress:x16}+{size} overflow (mask {device.DmaMask:x}, bus limit 0).");
            return DmaMappingErrorAddress;
        }
        _dmaMappings.Add(new DmaMapping(device.Name, busAddress, size, direction, false, cpuAddress));
        return busAddress;
    }

    /// <summary>dma_unmap_single: ends a streaming mapping; size and direction must match the map call (else reported, and the mapping stays).</summary>
    public void DmaUnmapSingle(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        int i = FindDmaEntry(device, busAddress, coherent: false, size, direction, "free", caller);
        if (i >= 0) _dmaMappings.RemoveAt(i);
    }

    /// <summary>dma_sync_single_for_cpu: ownership back to the CPU (a no-op on coherent x86, checked against the live mappings).</summary>
    public void DmaSyncSingleForCpu(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "")
        => CheckSync(device, busAddress, size, direction, "dma_sync_single_for_cpu", caller);

    /// <summary>dma_sync_single_for_device: ownership to the device (a no-op on coherent x86, checked against the live mappings).</summary>
    public void DmaSyncSingleForDevice(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "")
        => CheckSync(device, busAddress, size, direction, "dma_sync_single_for_device", caller);

    /// <summary>dma_mapping_error: whether a map call failed.</summary>
    public static bool DmaMappingError(ulong busAddress) => busAddress == DmaMappingErrorAddress;

    /// <summary>dma_set_mask_and_coherent: both masks; -EIO when the mask cannot cover the kernel's lowest zone (below 16 MiB needs 24 bits).</summary>
    public int DmaSetMaskAndCoherent(PlatformDevice device, ulong mask)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (mask < 0xFF_FFFF) return -Errno.EIO;
        device.DmaMask = device.CoherentDmaMask = mask;
        return 0;
    }

    /// <inheritdoc />
    void IDmaAccessMonitor.DeviceAccess(string device, ulong busAddress, ulong length, bool write)
    {
        // Covered when every byte lies in a live mapping of this device that allows the direction.
        ulong at = busAddress, end = busAddress + length;
        bool wrongDirection = false;
        while (at < end)
        {
            bool advanced = false;
            foreach (var m in _dmaMappings)
            {
                if (m.Device != device || at < m.BusAddress || at - m.BusAddress >= m.Size) continue;
                bool allowed = m.Direction == DmaDataDirection.Bidirectional || (write ? m.Direction == DmaDataDirection.FromDevice : m.Direction == DmaDataDirection.ToDevice);
                if (!allowed) { wrongDirection = true; continue; }
                at = m.BusAddress + m.Size;
                advanced = true;
                break;
            }
            if (!advanced) break;
        }
        if (at >= end) return;
        string what = write ? "wrote" : "read";
        string line = wrongDirection
            ? $"DMA-API: {device}: device {what} [bus address=0x{busAddress:x16}] [size={length} bytes] against the direction of its mapping"
            : $"DMA-API: {device}: device {what} [bus address=0x{busAddress:x16}] [size={length} bytes] not covered by a live DMA mapping (first byte outside: 0x{at:x16})";
        _dmaViolations.Add(line);
        Log.Print(line);
    }

    private bool IsLinearAddr(ulong va)
        => (va >= Layout.PageOffset && va - Layout.PageOffset < RamEnd) || (va >= KernelLayout.StartKernelMap && va < KernelLayout.ModulesStart);

    private int FindDmaEntry(PlatformDevice device, ulong busAddress, bool coherent, ulong size, DmaDataDirection direction, string op, string caller)
    {
        int found = -1;
        for (int i = 0; i < _dmaMappings.Count; i++)
        {
            var m = _dmaMappings[i];
            if (m.Device == device.Name && m.BusAddress == busAddress && m.Coherent == coherent) { found = i; break; }
        }
        if (found < 0)
        {
            DmaDebugError(device, $"device driver tries to {op} DMA memory it has not allocated [device address=0x{busAddress:x16}] [size={size} bytes]", caller);
            return -1;
        }
        var e = _dmaMappings[found];
        if (e.Size != size)
        {
            DmaDebugError(device, $"device driver frees DMA memory with different size [device address=0x{busAddress:x16}] [map size={e.Size} bytes] [unmap size={size} bytes]", caller);
            return -1;
        }
        if (!coherent && e.Direction != direction)
        {
            DmaDebugError(device, $"device driver frees DMA memory with different direction [device address=0x{busAddress:x16}] [size={size} bytes] [mapped as {DirectionName(e.Direction)}] [unmapped as {DirectionName(direction)}]", caller);
            return -1;
        }
        return found;
    }

    private void CheckSync(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, string call, string caller)
    {
        ArgumentNullException.ThrowIfNull(device);
        foreach (var m in _dmaMappings)
        {
            if (m.Device != device.Name || busAddress < m.BusAddress || busAddress - m.BusAddress >= m.Size) continue;
            if (busAddress + size > m.BusAddress + m.Size)
                DmaDebugError(device, $"device driver syncs DMA memory outside allocated range [device address=0x{m.BusAddress:x16}] [size={m.Size} bytes] [sync offset+size={busAddress - m.BusAddress + size}]", caller);
            else if (!m.Coherent && m.Direction != direction)
                DmaDebugError(device, $"device driver syncs DMA memory with different direction [device address=0x{busAddress:x16}] [size={size} bytes] [mapped with {DirectionName(m.Direction)}] [synced with {DirectionName(direction)}]", caller);
            return;
        }
        DmaDebugError(device, $"device driver tries to sync DMA memory it has not allocated [device address=0x{busAddress:x16}] [size={size} bytes] ({call})", caller);
    }

    private void DmaDebugError(PlatformDevice device, string message, string caller)
    {
        string driver = device.Driver?.Name ?? "platform";
        Log.Warn($"DMA-API: {driver} {device.Name}: {message}", $"kernel/dma/debug.c check_unmap [{caller}]");
    }

    private static string DirectionName(DmaDataDirection d) => d switch
    {
        DmaDataDirection.Bidirectional => "DMA_BIDIRECTIONAL",
        DmaDataDirection.ToDevice => "DMA_TO_DEVICE",
        DmaDataDirection.FromDevice => "DMA_FROM_DEVICE",
        _ => "DMA_NONE",
    };
}
