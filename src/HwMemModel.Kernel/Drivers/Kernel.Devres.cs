using System.Runtime.CompilerServices;
using HwMemModel.Kernel.Drivers;

namespace HwMemModel.Kernel;

/// <content>
/// The devm_* calls (drivers/base/devres.c, lib/devres.c, kernel/irq/devres.c, kernel/dma/mapping.c). As in Linux,
/// each managed resource has a devres record kmalloc'd from the slab allocator (struct devres: a 40-byte node plus
/// the resource's data), so the records show in /proc/slabinfo, a devres allocation can fail (failslab), and
/// devm_kzalloc is one allocation whose data follows the node.
/// </content>
public sealed partial class Kernel : ISlabApi, IVmallocApi, IIoMemApi, IDmaApi, IIrqApi, IDevresApi
{
    /// <summary>sizeof(struct devres_node) on x86-64: list head, release function, name, size.</summary>
    public const ulong DevresNodeSize = 40;

    /// <inheritdoc />
    public ulong DevmKzalloc(PlatformDevice device, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        if (size == 0) return ZeroSizePtr;
        ulong node = Kzalloc(DevresNodeSize + size, gfp, caller);
        if (node == 0) return 0;
        ulong p = node + DevresNodeSize;
        device.AddManagedAction($"kzalloc {size} bytes at 0x{p:x16}", () => Kfree(node, "devres_release_all"));
        return p;
    }

    // devres_alloc: the record for a resource whose data is <paramref name="payload"/> bytes; 0 when kmalloc fails.
    private ulong DevresAlloc(ulong payload, string caller) => Kmalloc(DevresNodeSize + payload, Gfp.Kernel, caller);

    /// <inheritdoc />
    /// <remarks>/proc/vmallocinfo names the caller as Linux does for these: __devm_ioremap (or __devm_ioremap_resource).</remarks>
    public ulong DevmIoRemap(PlatformDevice device, ulong pa, ulong size, [CallerMemberName] string caller = "")
        => ManageIoRemap(device, () => IoRemap(pa, size, "__devm_ioremap"), pa, size, "ioremap", caller);

    /// <inheritdoc />
    public ulong DevmIoRemapWc(PlatformDevice device, ulong pa, ulong size, [CallerMemberName] string caller = "")
        => ManageIoRemap(device, () => IoRemapWc(pa, size, "__devm_ioremap"), pa, size, "ioremap_wc", caller);

    /// <inheritdoc />
    public ulong DevmPlatformIoRemapResource(PlatformDevice device, int index = 0, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.GetResource(ResourceKind.Memory, index) is not { } r)
        {
            Log.Print($"{device.Name}: invalid resource (memory resource {index} missing)");
            return 0;
        }
        return ManageIoRemap(device, () => IoRemap(r.Start, r.Size, "__devm_ioremap_resource"), r.Start, r.Size, "ioremap", caller);
    }

    /// <inheritdoc />
    public int DevmRequestIrq(PlatformDevice device, int irq, IrqHandler handler, string name, object? devId, IrqFlags flags = IrqFlags.None)
    {
        ArgumentNullException.ThrowIfNull(device);
        // struct irq_devres { unsigned int irq; void *dev_id; }
        ulong node = DevresAlloc(16, "devm_request_threaded_irq");
        int rc = node == 0 ? -Errno.ENOMEM : RequestIrq(irq, handler, name, devId, flags);
        if (rc == 0)
        {
            device.AddManagedAction($"irq {irq} ({name})", () =>
            {
                FreeIrq(irq, devId, "devres_release_all");
                Kfree(node, "devres_release_all");
            });
        }
        else
        {
            Kfree(node, "devm_request_threaded_irq");
            Log.Print($"{device.Driver?.Name ?? "platform"} {device.Name}: error {rc}: can't request irq {irq}");
        }
        return rc;
    }

    /// <inheritdoc />
    public ulong DmamAllocCoherent(PlatformDevice device, ulong size, out ulong dmaHandle, Gfp gfp = Gfp.Kernel, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        dmaHandle = 0;
        // struct dma_devres { size_t size; void *vaddr; dma_addr_t dma_handle; unsigned long attrs; }
        ulong node = DevresAlloc(32, caller);
        if (node == 0) return 0;
        ulong va = DmaAllocCoherent(device, size, out dmaHandle, gfp, caller);
        if (va == 0)
        {
            Kfree(node, caller);
            return 0;
        }
        ulong handle = dmaHandle;
        device.AddManagedAction($"dma coherent {size} bytes at bus 0x{handle:x}", () =>
        {
            DmaFreeCoherent(device, size, va, handle, "devres_release_all");
            Kfree(node, "devres_release_all");
        });
        return va;
    }

    private ulong ManageIoRemap(PlatformDevice device, Func<ulong> map, ulong pa, ulong size, string what, string caller)
    {
        ArgumentNullException.ThrowIfNull(device);
        // devm_ioremap: the record (void __iomem **) first, then the mapping.
        ulong node = DevresAlloc(8, caller);
        if (node == 0) return 0;
        ulong va = map();
        if (va == 0)
        {
            Kfree(node, caller);
            return 0;
        }
        device.AddManagedAction($"{what} 0x{pa:x}+0x{size:x} at 0x{va:x16}", () =>
        {
            IoUnmap(va, "devres_release_all");
            Kfree(node, "devres_release_all");
        });
        return va;
    }
}
