using HwMemModel.Bus;

namespace HwMemModel.Machine;

/// <summary>
/// The built-in default machine's physical address space: the memory map QEMU's <c>pc</c> machine shows a firmware
/// (see PLATFORM.md): RAM below 640 KiB and from 1 MiB up to the memory size, the BIOS ROM ending at 4 GiB with its
/// last 128 KiB (or the whole of a 64 KiB image) aliased below 1 MiB, and unassigned memory reading as zero. Devices arrive with the devices issue.
/// </summary>
public static class DefaultMachine
{
    /// <summary>Default RAM size: 128 MiB, as in PLATFORM.md.</summary>
    public const ulong DefaultRamSize = 128UL << 20;
    /// <summary>Size of the built-in BIOS ROM.</summary>
    public const int BiosSize = 64 * 1024;

    /// <summary>Builds the bus. <paramref name="ramSize"/> must be a multiple of 1 MiB, at least 2 MiB and at most 3 GiB (below the PCI hole).</summary>
    public static PhysicalBus CreateBus(ulong ramSize = DefaultRamSize, byte[]? bios = null)
    {
        if (ramSize < (2UL << 20) || ramSize > (3UL << 30) || (ramSize & 0xFFFFF) != 0)
            throw new ArgumentOutOfRangeException(nameof(ramSize), ramSize, "RAM size must be a multiple of 1 MiB between 2 MiB and 3 GiB for the pc memory map.");
        bios ??= BlankBios();
        if (bios.Length == 0 || bios.Length % BiosSize != 0)
            throw new ArgumentException($"The BIOS image is {bios.Length} bytes; it must be a non-empty multiple of 64 KiB (as QEMU requires).", nameof(bios));
        var bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        bus.AddRam("System RAM", 0, 0xA0000);
        bus.AddRam("System RAM", 0x10_0000, ramSize - 0x10_0000);
        var rom = bus.AddRom("bios", 0x1_0000_0000UL - (ulong)bios.Length, bios);
        // QEMU maps the last min(size, 128 KiB) of the BIOS below 1 MiB (isa-bios), ending at 0xFFFFF.
        ulong low = Math.Min((ulong)bios.Length, 0x2_0000);
        bus.AddAlias("bios (low alias)", 0x10_0000 - low, low, rom, (ulong)bios.Length - low);
        return bus;
    }

    /// <summary>A 64 KiB BIOS whose reset vector (F000:FFF0) holds CLI; HLT.</summary>
    public static byte[] BlankBios()
    {
        var image = new byte[BiosSize];
        image.AsSpan().Fill(0xFF);
        image[0xFFF0] = 0xFA; // cli
        image[0xFFF1] = 0xF4; // hlt
        return image;
    }
}
