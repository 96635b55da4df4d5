using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Platform;

/// <summary>
/// How QEMU's pc (i440FX) machine splits RAM around the 32-bit PCI hole (hw/i386/pc_piix.c): RAM below 3.5 GiB stays
/// below 4 GiB; from 3.5 GiB on, the first 3 GiB stay below (gigabyte alignment) and the rest moves above 4 GiB.
/// </summary>
public static class PcRamLayout
{
    /// <summary>Start of the RAM that is relocated above 4 GiB.</summary>
    public const ulong HighMemoryBase = 1UL << 32;

    /// <summary>The RAM sizes below and above 4 GiB for a machine with <paramref name="ramSize"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ramSize"/> is 0.</exception>
    public static (ulong Below4G, ulong Above4G) Split(ulong ramSize)
    {
        if (ramSize == 0)
        {
            DeviceThrow.OutOfRange(nameof(ramSize), ramSize, "RAM size 0 is not a machine; give the RAM size in bytes.");
        }

        ulong lowMemory = ramSize >= 0xE000_0000UL ? 0xC000_0000UL : 0xE000_0000UL;
        return ramSize >= lowMemory ? (lowMemory, ramSize - lowMemory) : (ramSize, 0);
    }
}
