using System.Buffers.Binary;

namespace HwMemModel.Machine.Boot;

/// <summary>
/// A multiboot (version 1, specification 0.6.96 §3.1) header found in a kernel image. QEMU 7.2
/// (hw/i386/multiboot.c, <c>load_multiboot</c>) looks for it at every 4-byte aligned offset below 8192 - 48 = 8144
/// (room for the 12-dword header inside the first 8 KiB), so it must start at offset 8140 or lower, and takes the
/// first one whose checksum is right: magic + flags + checksum = 0 (mod 2^32). The specification asks for the same:
/// 32-bit aligned, entirely within the first 8192 bytes.
/// </summary>
/// <param name="Offset">File offset of the magic.</param>
/// <param name="Flags">The flags dword.</param>
/// <param name="HeaderAddr">header_addr (valid with <see cref="AoutKludgeFlag"/>).</param>
/// <param name="LoadAddr">load_addr (valid with <see cref="AoutKludgeFlag"/>).</param>
/// <param name="LoadEndAddr">load_end_addr: 0 means "to the end of the file" (valid with <see cref="AoutKludgeFlag"/>).</param>
/// <param name="BssEndAddr">bss_end_addr: 0 means "no bss" (valid with <see cref="AoutKludgeFlag"/>).</param>
/// <param name="EntryAddr">entry_addr (valid with <see cref="AoutKludgeFlag"/>).</param>
public readonly record struct MultibootHeader(
    int Offset, uint Flags, uint HeaderAddr, uint LoadAddr, uint LoadEndAddr, uint BssEndAddr, uint EntryAddr)
{
    /// <summary>The header magic, 0x1BADB002.</summary>
    public const uint Magic = 0x1BAD_B002;

    /// <summary>QEMU scans offsets below this bound (8192 - 48): the header must start at offset 8140 or lower.</summary>
    public const int SearchLimit = 8192 - 48;

    /// <summary>Flags bit 0: modules must be page aligned (QEMU always page-aligns them).</summary>
    public const uint PageAlignFlag = 1u << 0;

    /// <summary>Flags bit 1: the kernel wants mem_* (and the memory map); QEMU always provides them.</summary>
    public const uint MemoryInfoFlag = 1u << 1;

    /// <summary>Flags bit 2: the kernel wants a video mode. QEMU prints "multiboot knows VBE. we don't" and boots anyway.</summary>
    public const uint VideoModeFlag = 1u << 2;

    /// <summary>Flags bit 16: the a.out kludge; the address fields give the load layout instead of ELF headers.</summary>
    public const uint AoutKludgeFlag = 1u << 16;

    /// <summary>Bits 0-15 are requirements; a loader must refuse any it does not understand (bits 3-15 are undefined).</summary>
    public const uint RequiredMask = 0xFFFF;

    /// <summary>The required bits the model understands: 0, 1 and 2 (2 with a warning, as QEMU).</summary>
    public const uint SupportedRequiredFlags = PageAlignFlag | MemoryInfoFlag | VideoModeFlag;

    /// <summary>Whether the a.out kludge (flags bit 16) is set.</summary>
    public bool HasAoutKludge => (Flags & AoutKludgeFlag) != 0;

    /// <summary>Required flags (bits 0-15) the model does not understand.</summary>
    public uint UnsupportedRequiredFlags => Flags & RequiredMask & ~SupportedRequiredFlags;

    /// <summary>Looks for a valid header as QEMU does; returns false when there is none.</summary>
    /// <param name="image">The kernel file.</param>
    /// <param name="header">The first header with a correct checksum; the address fields are read only when the a.out kludge is set and present.</param>
    public static bool TryFind(ReadOnlySpan<byte> image, out MultibootHeader header)
    {
        for (int i = 0; i < SearchLimit && i + 12 <= image.Length; i += 4)
        {
            if (ReadDword(image, i) != Magic)
            {
                continue;
            }

            uint flags = ReadDword(image, i + 4);
            uint checksum = ReadDword(image, i + 8);
            if (unchecked(Magic + flags + checksum) != 0)
            {
                continue;
            }

            header = new MultibootHeader(i, flags, 0, 0, 0, 0, 0);
            if ((flags & AoutKludgeFlag) != 0 && i + 32 <= image.Length)
            {
                header = header with
                {
                    HeaderAddr = ReadDword(image, i + 12),
                    LoadAddr = ReadDword(image, i + 16),
                    LoadEndAddr = ReadDword(image, i + 20),
                    BssEndAddr = ReadDword(image, i + 24),
                    EntryAddr = ReadDword(image, i + 28),
                };
            }

            return true;
        }

        header = default;
        return false;
    }

    /// <summary>Finds the header or explains, in one line naming the file, why there is none.</summary>
    /// <param name="image">The kernel file.</param>
    /// <param name="path">The file's path as the user gave it.</param>
    /// <exception cref="ImageLoadException">
    /// The file is empty, has no header in its first 8 KiB, has the magic only with a wrong checksum, or ends inside
    /// the a.out kludge's address fields.
    /// </exception>
    public static MultibootHeader Find(ReadOnlySpan<byte> image, string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (image.IsEmpty)
        {
            throw new ImageLoadException(path, $"{path}: the kernel image is empty (0 bytes); a multiboot kernel needs a multiboot header (magic 0x1BADB002) in its first 8 KiB.");
        }

        if (TryFind(image, out MultibootHeader header))
        {
            if (header.HasAoutKludge && header.Offset + 32 > image.Length)
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: truncated: the multiboot header at offset 0x{header.Offset:x} sets the a.out kludge (flags bit 16) but the " +
                    $"{image.Length}-byte file ends before its address fields (offsets 0x{header.Offset + 12:x}-0x{header.Offset + 31:x}); " +
                    "the kludge needs header_addr, load_addr, load_end_addr, bss_end_addr and entry_addr.");
            }

            return header;
        }

        for (int i = 0; i < SearchLimit && i + 12 <= image.Length; i += 4)
        {
            if (ReadDword(image, i) == Magic)
            {
                uint flags = ReadDword(image, i + 4);
                uint checksum = ReadDword(image, i + 8);
                uint needed = unchecked(0u - Magic - flags);
                throw new ImageLoadException(
                    path,
                    $"{path}: bad multiboot header checksum at offset 0x{i:x}: magic 0x1BADB002 + flags 0x{flags:x8} + checksum 0x{checksum:x8} " +
                    $"= 0x{unchecked(Magic + flags + checksum):x8}, not 0 (mod 2^32); the checksum for these flags must be 0x{needed:x8}.");
            }
        }

        throw new ImageLoadException(
            path,
            $"{path}: no multiboot header in the first 8 KiB: the magic 0x1BADB002 must appear at a 4-byte aligned offset below " +
            $"0x{SearchLimit:x} with magic + flags + checksum = 0; --kernel accepts multiboot (version 1) kernels only.");
    }

    private static uint ReadDword(ReadOnlySpan<byte> image, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(image.Slice(offset, 4));
}
