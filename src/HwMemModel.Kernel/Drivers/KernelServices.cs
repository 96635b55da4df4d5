using System.Runtime.CompilerServices;

namespace HwMemModel.Kernel.Drivers;

/// <summary>kmalloc and the slab allocator, as a driver uses them (the kernel model implements it).</summary>
public interface ISlabApi
{
    /// <summary>kmalloc: 0 (NULL) on failure.</summary>
    ulong Kmalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "");
    /// <summary>kzalloc: zeroed kmalloc.</summary>
    ulong Kzalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "");
    /// <summary>kfree (NULL and ZERO_SIZE_PTR are no-ops).</summary>
    void Kfree(ulong p, [CallerMemberName] string caller = "");
    /// <summary>ksize.</summary>
    ulong Ksize(ulong p, [CallerMemberName] string caller = "");
}

/// <summary>vmalloc, as a driver uses it.</summary>
public interface IVmallocApi
{
    /// <summary>vmalloc: 0 on failure.</summary>
    ulong Vmalloc(ulong size, [CallerMemberName] string caller = "");
    /// <summary>vzalloc.</summary>
    ulong Vzalloc(ulong size, [CallerMemberName] string caller = "");
    /// <summary>vfree.</summary>
    void Vfree(ulong address);
}

/// <summary>ioremap and the MMIO accessors (each one access of its width through the CPU's MMU).</summary>
public interface IIoMemApi
{
    /// <summary>ioremap (UC-): 0 on failure.</summary>
    ulong IoRemap(ulong pa, ulong size, [CallerMemberName] string caller = "");
    /// <summary>ioremap_uc.</summary>
    ulong IoRemapUc(ulong pa, ulong size, [CallerMemberName] string caller = "");
    /// <summary>ioremap_wc.</summary>
    ulong IoRemapWc(ulong pa, ulong size, [CallerMemberName] string caller = "");
    /// <summary>ioremap_cache.</summary>
    ulong IoRemapCache(ulong pa, ulong size, [CallerMemberName] string caller = "");
    /// <summary>iounmap.</summary>
    void IoUnmap(ulong address, [CallerMemberName] string caller = "");
    /// <summary>readb.</summary>
    byte ReadB(ulong address);
    /// <summary>readw.</summary>
    ushort ReadW(ulong address);
    /// <summary>readl.</summary>
    uint ReadL(ulong address);
    /// <summary>readq.</summary>
    ulong ReadQ(ulong address);
    /// <summary>writeb.</summary>
    void WriteB(byte value, ulong address);
    /// <summary>writew.</summary>
    void WriteW(ushort value, ulong address);
    /// <summary>writel.</summary>
    void WriteL(uint value, ulong address);
    /// <summary>writeq.</summary>
    void WriteQ(ulong value, ulong address);
    /// <summary>memcpy_fromio into a host buffer.</summary>
    void MemcpyFromIo(Span<byte> destination, ulong from);
    /// <summary>memcpy_toio from a host buffer.</summary>
    void MemcpyToIo(ulong to, ReadOnlySpan<byte> source);
    /// <summary>ioport_map: a cookie for the ioread/iowrite calls on ports; 0 on failure.</summary>
    ulong IoPortMap(ulong port, uint count);
    /// <summary>ioread8 on an ioremap or ioport_map cookie.</summary>
    byte IoRead8(ulong address);
    /// <summary>ioread16.</summary>
    ushort IoRead16(ulong address);
    /// <summary>ioread32.</summary>
    uint IoRead32(ulong address);
    /// <summary>iowrite8 on an ioremap or ioport_map cookie.</summary>
    void IoWrite8(byte value, ulong address);
    /// <summary>iowrite16.</summary>
    void IoWrite16(ushort value, ulong address);
    /// <summary>iowrite32.</summary>
    void IoWrite32(uint value, ulong address);
    /// <summary>inb.</summary>
    byte Inb(ushort port);
    /// <summary>outb.</summary>
    void Outb(byte value, ushort port);
}

/// <summary>The DMA API (dma-mapping.h).</summary>
public interface IDmaApi
{
    /// <summary>dma_alloc_coherent: CPU address (0 on failure) and bus address.</summary>
    ulong DmaAllocCoherent(PlatformDevice device, ulong size, out ulong dmaHandle, Gfp gfp = Gfp.Kernel, [CallerMemberName] string caller = "");
    /// <summary>dma_free_coherent.</summary>
    void DmaFreeCoherent(PlatformDevice device, ulong size, ulong cpuAddress, ulong dmaHandle, [CallerMemberName] string caller = "");
    /// <summary>dma_map_single: bus address or <see cref="Kernel.DmaMappingErrorAddress"/>.</summary>
    ulong DmaMapSingle(PlatformDevice device, ulong cpuAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "");
    /// <summary>dma_unmap_single.</summary>
    void DmaUnmapSingle(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "");
    /// <summary>dma_sync_single_for_cpu.</summary>
    void DmaSyncSingleForCpu(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "");
    /// <summary>dma_sync_single_for_device.</summary>
    void DmaSyncSingleForDevice(PlatformDevice device, ulong busAddress, ulong size, DmaDataDirection direction, [CallerMemberName] string caller = "");
    /// <summary>dma_set_mask_and_coherent.</summary>
    int DmaSetMaskAndCoherent(PlatformDevice device, ulong mask);
    /// <summary>dma_mapping_error: whether a map call failed.</summary>
    bool DmaMappingError(ulong busAddress) => busAddress == Kernel.DmaMappingErrorAddress;
}

/// <summary>Interrupt registration, completions and delays on the kernel model's CPU.</summary>
public interface IIrqApi
{
    /// <summary>request_irq: 0 or a negative errno.</summary>
    int RequestIrq(int irq, IrqHandler handler, string name, object? devId, IrqFlags flags = IrqFlags.None);
    /// <summary>free_irq.</summary>
    void FreeIrq(int irq, object? devId, [CallerMemberName] string caller = "");
    /// <summary>Takes pending interrupts now.</summary>
    int HandleInterrupts();
    /// <summary>wait_for_completion_timeout: time left, or 0 on timeout.</summary>
    long WaitForCompletionTimeout(Completion done, long timeoutNs);
    /// <summary>readx_poll_timeout: 0 or -ETIMEDOUT.</summary>
    int PollTimeout(Func<bool> condition, long sleepNs, long timeoutNs);
    /// <summary>udelay.</summary>
    void Udelay(ulong microseconds);
    /// <summary>msleep.</summary>
    void Msleep(uint milliseconds);
    /// <summary>ktime_get in nanoseconds.</summary>
    long NowNs { get; }
}

/// <summary>Managed (devm_*) resources: released by the driver core when probe fails and after remove.</summary>
public interface IDevresApi
{
    /// <summary>devm_kzalloc: 0 on failure.</summary>
    ulong DevmKzalloc(PlatformDevice device, ulong size, Gfp gfp, [CallerMemberName] string caller = "");
    /// <summary>devm_ioremap (UC-): 0 on failure.</summary>
    ulong DevmIoRemap(PlatformDevice device, ulong pa, ulong size, [CallerMemberName] string caller = "");
    /// <summary>devm_ioremap_wc: 0 on failure.</summary>
    ulong DevmIoRemapWc(PlatformDevice device, ulong pa, ulong size, [CallerMemberName] string caller = "");
    /// <summary>devm_platform_ioremap_resource: maps the device's <paramref name="index"/>-th memory resource (UC-); 0 on failure.</summary>
    ulong DevmPlatformIoRemapResource(PlatformDevice device, int index = 0, [CallerMemberName] string caller = "");
    /// <summary>devm_request_irq: 0 or a negative errno.</summary>
    int DevmRequestIrq(PlatformDevice device, int irq, IrqHandler handler, string name, object? devId, IrqFlags flags = IrqFlags.None);
    /// <summary>dmam_alloc_coherent: CPU address (0 on failure) and bus address.</summary>
    ulong DmamAllocCoherent(PlatformDevice device, ulong size, out ulong dmaHandle, Gfp gfp = Gfp.Kernel, [CallerMemberName] string caller = "");
}
