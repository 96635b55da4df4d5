namespace HwMemModel.Machine.Boot;

/// <summary>
/// Checks a <c>--bios IMAGE</c> file before the machine maps it as the ROM that ends at 4 GiB (see
/// <see cref="DefaultMachine.CreateBus"/>). QEMU 7.2 (hw/i386/x86.c, <c>x86_bios_rom_init</c>) accepts any non-empty
/// file whose size is a multiple of 64 KiB and fails with "qemu: could not load PC BIOS 'NAME'" otherwise; it sets no
/// upper bound. The model also caps the size at 16 MiB so that the ROM (0xFF000000 and up at most) stays clear of the
/// IOAPIC, HPET and local APIC windows at 0xFEC00000-0xFEEFFFFF.
/// </summary>
public static class BiosImage
{
    /// <summary>The size granule QEMU requires: 64 KiB.</summary>
    public const int Granule = 64 * 1024;

    /// <summary>The largest image the model maps: 16 MiB (0xFF000000-0xFFFFFFFF).</summary>
    public const int MaxSize = 16 * 1024 * 1024;

    /// <summary>The image's CPU state: the processor's reset state (see <see cref="BootState.Reset"/>).</summary>
    public static BootState BootState => BootState.Reset;

    /// <summary>
    /// Throws unless <paramref name="image"/> is a non-empty multiple of 64 KiB of at most 16 MiB.
    /// </summary>
    /// <param name="image">The file's contents.</param>
    /// <param name="path">The file's path as the user gave it (for the message).</param>
    /// <exception cref="ImageLoadException">The size is not accepted; the message names the file, its size and the rule.</exception>
    public static void Validate(byte[] image, string path)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(path);
        const string Rule = "a BIOS image must be a non-empty multiple of 64 KiB (65536 bytes) of at most 16 MiB, as QEMU's -bios requires (QEMU: \"could not load PC BIOS\")";
        if (image.Length == 0)
        {
            throw new ImageLoadException(path, $"{path}: the BIOS image is empty (0 bytes); {Rule}.");
        }

        if (image.Length % Granule != 0)
        {
            int below = image.Length / Granule * Granule;
            int above = below + Granule;
            string nearest = below == 0 ? $"the nearest accepted size is {above} bytes" : $"the nearest accepted sizes are {below} and {above} bytes";
            throw new ImageLoadException(path, $"{path}: the BIOS image is {image.Length} bytes, not a multiple of 64 KiB ({nearest}); {Rule}.");
        }

        if (image.Length > MaxSize)
        {
            throw new ImageLoadException(
                path,
                $"{path}: the BIOS image is {image.Length} bytes ({image.Length / (1024 * 1024.0):0.##} MiB), larger than 16 MiB " +
                $"({MaxSize} bytes); {Rule} (the model keeps the ROM above the APIC and HPET windows at 0xFEC00000-0xFEEFFFFF).");
        }
    }
}
