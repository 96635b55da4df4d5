namespace HwMemModel.Firmware;

/// <summary>How an image is started.</summary>
public enum ImageKind
{
    /// <summary>A flat ROM (a multiple of 64 KiB) mapped to end at 4 GiB; QEMU: <c>-bios IMAGE</c>.</summary>
    Bios,

    /// <summary>A multiboot v1 kernel (a.out kludge or ELF32); QEMU: <c>-kernel IMAGE</c>.</summary>
    Multiboot,
}
