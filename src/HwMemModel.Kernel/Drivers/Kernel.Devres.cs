using System.Runtime.CompilerServices;
using HwMemModel.Kernel.Drivers;

namespace HwMemModel.Kernel;

/// <content>The devm_* calls (drivers/base/devres.c, lib/devres.c, kernel/irq/devres.c, kernel/dma/mapping.c).</content>
public sealed partial class Kernel : ISlabApi, IVmallocApi, IIoMemApi, IDmaApi, IIrqApi, IDevresApi
{
    /// <inheritdoc />
    public ulong DevmKzalloc(PlatformDevice device, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        ulong p = Kzalloc(size, gfp, caller);
        if (p != 0) device.AddManagedAction($"kzalloc {size} bytes at 0x{p:x16}", () => Kfree(p, "devres_release_all"));
        return p;
    }

    /// <inheritdoc />
    public ulong DevmIoRemap(PlatformDevice device, ulong pa, ulong size, [CallerMemberName] string caller = "")
        => ManageIoRemap(device, IoRemap(pa, size, caller), pa, size, "ioremap");

    /// <inheritdoc />
    public ulong DevmIoRemapWc(PlatformDevice device, ulong pa, ulong size, [CallerMemberName] string caller = "")
        => ManageIoRemap(device, IoRemapWc(pa, size, caller), pa, size, "ioremap_wc");

    /// <inheritdoc />
    public ulong DevmPlatformIoRemapResource(PlatformDevice device, int index = 0, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.GetResource(ResourceKind.Memory, index) is not { } r)
        {
            Log.Print($"{device.Name}: invalid resource (memory resource {index} missing)");
            return 0;
        }
        return DevmIoRemap(device, r.Start, r.Size, caller);
    }

    /// <inheritdoc />
    public int DevmRequestIrq(PlatformDevice device, int irq, IrqHandler handler, string name, object? devId, IrqFlags flags = IrqFlags.None)
    {
        ArgumentNullException.ThrowIfNull(device);
        int rc = RequestIrq(irq, handler, name, devId, flags);
        if (rc == 0) device.AddManagedAction($"irq {irq} ({name})", () => FreeIrq(irq, devId, "devres_release_all"));
        else Log.Print($"{device.Driver?.Name ?? "platform"} {device.Name}: error {rc}: can't request irq {irq}");
        return rc;
    }

    /// <inheritdoc />
    public ulong DmamAllocCoherent(PlatformDevice device, ulong size, out ulong dmaHandle, Gfp gfp = Gfp.Kernel, [CallerMemberName] string caller = "")
    {
        ArgumentNullException.ThrowIfNull(device);
        ulong va = DmaAllocCoherent(device, size, out dmaHandle, gfp, caller);
        if (va != 0)
        {
            ulong handle = dmaHandle;
            device.AddManagedAction($"dma coherent {size} bytes at bus 0x{handle:x}", () => DmaFreeCoherent(device, size, va, handle, "devres_release_all"));
        }
        return va;
    }

    private ulong ManageIoRemap(PlatformDevice device, ulong va, ulong pa, ulong size, string what)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (va != 0) device.AddManagedAction($"{what} 0x{pa:x}+0x{size:x} at 0x{va:x16}", () => IoUnmap(va, "devres_release_all"));
        return va;
    }
}
