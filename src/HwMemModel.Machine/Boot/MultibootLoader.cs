using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using HwMemModel.Bus;

namespace HwMemModel.Machine.Boot;

/// <summary>
/// Loads a multiboot (version 1) kernel for <c>hwmem run --kernel IMAGE</c> the way QEMU 7.2 does for
/// <c>-kernel</c> (hw/i386/multiboot.c with the option ROM pc-bios/optionrom/multiboot.S):
/// <list type="bullet">
/// <item>the header: see <see cref="MultibootHeader"/>;</item>
/// <item>with the a.out kludge (flags bit 16) the file from offset header_offset - (header_addr - load_addr) is copied
/// to load_addr, load_end_addr - load_addr bytes of it (all of the rest of the file when load_end_addr is 0), and
/// zeros up to bss_end_addr (none when 0); the entry is entry_addr;</item>
/// <item>otherwise the file must be an ELF32 x86 executable (ELF64 is refused as QEMU refuses it): every PT_LOAD
/// segment goes to its p_paddr, p_memsz - p_filesz bytes zeroed (unless that zero fill would overlap another
/// segment: then QEMU keeps only p_filesz bytes); the entry is e_entry, translated to a physical address when it lies
/// in the file bytes of an executable segment whose p_vaddr differs from its p_paddr;</item>
/// <item>after the kernel image (from its lowest to its highest address, page aligned) come the module descriptors,
/// the module strings, the kernel command line "IMAGE-PATH ARGS", the boot loader name "qemu" (together page
/// aligned), then each module, page aligned;</item>
/// <item>the memory map at 0x9000 and the information structure at 0x9500 (see <see cref="MultibootInfo"/>).</item>
/// </list>
/// Unlike QEMU, which copies whatever the header says and fails later or not at all, the model refuses images whose
/// parts would not land in RAM, that would overwrite the information structure, or whose entry point is not in the
/// loaded bytes; every refusal is an <see cref="ImageLoadException"/> with a one-line message naming the file.
/// </summary>
public static partial class MultibootLoader
{
    /// <summary>The page size QEMU aligns the parts of its multiboot buffer to.</summary>
    public const uint PageSize = 4096;

    private const ulong InfoAreaStart = MultibootInfo.MemoryMapAddress;
    private const ulong InfoAreaEnd = MultibootInfo.InfoAddress + MultibootInfo.InfoSize;
    private const ulong FourGiB = 0x1_0000_0000;

    /// <summary>
    /// Loads <paramref name="image"/> into <paramref name="bus"/> and builds the multiboot information for it.
    /// </summary>
    /// <param name="bus">The machine's bus (for example from <see cref="DefaultMachine.CreateBus"/>); RAM is found in its memory map.</param>
    /// <param name="image">The kernel file's contents.</param>
    /// <param name="imagePath">The kernel's path as the user gave it: it names the file in errors and starts the command line.</param>
    /// <param name="commandLine">The arguments (<c>-append</c>); null is the same as empty, which leaves "IMAGE-PATH " with a trailing space as QEMU does.</param>
    /// <param name="ramSize">The machine's RAM size (for mem_upper and the memory map).</param>
    /// <param name="modules">Modules to load after the kernel (<c>-initrd</c>), or null.</param>
    /// <returns>The CPU state and where everything went.</returns>
    /// <exception cref="ImageLoadException">The image cannot be loaded; the message says why and what is accepted.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ramSize"/> is outside what <see cref="MultibootInfo.MemoryMap"/> models.</exception>
    public static MultibootLoadResult Load(
        PhysicalBus bus, byte[] image, string imagePath, string? commandLine, ulong ramSize, IReadOnlyList<MultibootModule>? modules = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(imagePath);
        modules ??= [];
        foreach (MultibootModule module in modules)
        {
            ArgumentNullException.ThrowIfNull(module, nameof(modules));
            ArgumentNullException.ThrowIfNull(module.CommandLine, nameof(modules));
            ArgumentNullException.ThrowIfNull(module.Image, nameof(modules));
        }

        IReadOnlyList<E820Entry> map = MultibootInfo.MemoryMap(ramSize);
        MultibootHeader header = MultibootHeader.Find(image, imagePath);
        var warnings = new List<string>();
        CheckFlags(header, imagePath, warnings);

        Kernel kernel = header.HasAoutKludge ? PlanAout(image, imagePath, header) : PlanElf(image, imagePath, header);
        Layout layout = PlanLayout(kernel, imagePath, commandLine ?? string.Empty, modules);

        List<(ulong Start, ulong End)> ram = RamRanges(bus);
        foreach (Piece piece in kernel.Pieces)
        {
            CheckInRam(ram, piece.Pa, piece.Pa + piece.MemSize, imagePath, piece.What);
        }

        CheckInRam(ram, kernel.Low, kernel.Low + kernel.Size, imagePath, "the kernel image");
        CheckInfoOverlap(imagePath, kernel.Low, layout.BufferEnd, kernel.Low + kernel.Size);
        CheckInRam(ram, kernel.Low + layout.OffsetInfo, layout.BufferEnd, imagePath,
            modules.Count == 0 ? "the command-line page after the kernel" : "the command lines and modules after the kernel");

        Write(bus, image, kernel, layout, modules, map);
        return new MultibootLoadResult
        {
            BootState = BootState.Multiboot(kernel.Entry, MultibootInfo.InfoAddress),
            Kind = kernel.Kind,
            Header = header,
            KernelStart = kernel.Low,
            KernelEnd = kernel.Low + kernel.Size,
            BufferEnd = layout.BufferEnd,
            Entry = kernel.Entry,
            CommandLineAddress = layout.CommandLineAddress,
            Modules = layout.Modules,
            Warnings = warnings,
        };
    }

    // ------------------------------------------------------------------ header flags

    private static void CheckFlags(MultibootHeader header, string path, List<string> warnings)
    {
        uint unsupported = header.UnsupportedRequiredFlags;
        if (unsupported != 0)
        {
            throw new ImageLoadException(
                path,
                $"{path}: the multiboot header (offset 0x{header.Offset:x}, flags 0x{header.Flags:x8}) requires features {FormatBits(unsupported)} " +
                "that this loader does not understand; bits 0-15 are requirements and only bits 0 (page-aligned modules), " +
                "1 (memory information) and 2 (video mode, ignored as QEMU does) are defined.");
        }

        if ((header.Flags & MultibootHeader.VideoModeFlag) != 0)
        {
            warnings.Add(
                $"{path}: the multiboot header requests a video mode (flags bit 2); as QEMU does (\"multiboot knows VBE. we don't\"), " +
                "the kernel is started without one and gets no VBE or framebuffer information.");
        }
    }

    private static string FormatBits(uint bits)
    {
        var names = new List<string>();
        for (int i = 0; i < 32; i++)
        {
            if ((bits & (1u << i)) != 0)
            {
                names.Add(i.ToString(CultureInfo.InvariantCulture));
            }
        }

        return (names.Count == 1 ? "(bit " : "(bits ") + string.Join(", ", names) + ")";
    }

    // ------------------------------------------------------------------ a.out kludge

    private static Kernel PlanAout(byte[] image, string path, MultibootHeader h)
    {
        string fields = $"header_addr 0x{h.HeaderAddr:x}, load_addr 0x{h.LoadAddr:x}";
        if (h.HeaderAddr < h.LoadAddr)
        {
            throw new ImageLoadException(
                path,
                $"{path}: invalid a.out kludge: {fields}: header_addr is below load_addr; the header lies inside the loaded image, " +
                "so load_addr <= header_addr is required (QEMU: \"invalid load_addr address\").");
        }

        uint headerDelta = h.HeaderAddr - h.LoadAddr;
        if (headerDelta > (uint)h.Offset)
        {
            throw new ImageLoadException(
                path,
                $"{path}: invalid a.out kludge: {fields} put the header 0x{headerDelta:x} bytes into the image, but it is only 0x{h.Offset:x} bytes " +
                "into the file; header_addr - load_addr must not exceed the header's file offset (QEMU: \"invalid header_addr address\").");
        }

        uint textOffset = (uint)h.Offset - headerDelta;
        uint loadSize;
        if (h.LoadEndAddr != 0)
        {
            if (h.LoadEndAddr < h.LoadAddr)
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: invalid a.out kludge: load_end_addr 0x{h.LoadEndAddr:x} is below load_addr 0x{h.LoadAddr:x}; it must be 0 " +
                    "(load to the end of the file) or at least load_addr (QEMU: \"invalid load_end_addr address\").");
            }

            loadSize = h.LoadEndAddr - h.LoadAddr;
        }
        else
        {
            loadSize = (uint)image.Length - textOffset;
        }

        if (loadSize > uint.MaxValue - h.LoadAddr)
        {
            throw new ImageLoadException(
                path,
                $"{path}: invalid a.out kludge: 0x{loadSize:x} bytes at load_addr 0x{h.LoadAddr:x} run past 4 GiB; " +
                "the image must fit below 4 GiB (QEMU: \"kernel does not fit in address space\").");
        }

        uint kernelSize = loadSize;
        if (h.BssEndAddr != 0)
        {
            if (h.BssEndAddr < h.LoadAddr + loadSize)
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: invalid a.out kludge: bss_end_addr 0x{h.BssEndAddr:x} is below the end of the loaded data 0x{h.LoadAddr + (ulong)loadSize:x} " +
                    $"(load_addr 0x{h.LoadAddr:x} + 0x{loadSize:x} bytes); it must be 0 (no bss) or at least that (QEMU: \"invalid bss_end_addr address\").");
            }

            kernelSize = h.BssEndAddr - h.LoadAddr;
        }

        if ((ulong)textOffset + loadSize > (ulong)image.Length)
        {
            throw new ImageLoadException(
                path,
                $"{path}: truncated: the a.out kludge loads 0x{loadSize:x} bytes (load_addr 0x{h.LoadAddr:x} to load_end_addr 0x{h.LoadEndAddr:x}) " +
                $"from file offset 0x{textOffset:x}, but the file is only {image.Length} bytes (0x{image.Length - (long)textOffset:x} available); " +
                "load_end_addr - load_addr must not exceed the file's bytes from that offset on, or be 0 for \"to the end of the file\".");
        }

        if (h.EntryAddr < h.LoadAddr || h.EntryAddr - h.LoadAddr >= loadSize)
        {
            throw new ImageLoadException(
                path,
                $"{path}: the entry point 0x{h.EntryAddr:x} (entry_addr) is outside the loaded image 0x{h.LoadAddr:x}-0x{h.LoadAddr + (ulong)loadSize - 1:x}; " +
                "entry_addr must point into the bytes loaded from the file.");
        }

        Piece piece = new(h.LoadAddr, (int)textOffset, (int)loadSize, kernelSize,
            $"the a.out kludge image (load_addr 0x{h.LoadAddr:x}, 0x{kernelSize:x} bytes with bss)");
        return new Kernel(MultibootImageKind.AoutKludge, h.LoadAddr, kernelSize, h.EntryAddr, [piece]);
    }

    // ------------------------------------------------------------------ layout (QEMU's mb_buf)

    private static Layout PlanLayout(Kernel kernel, string path, string commandLine, IReadOnlyList<MultibootModule> modules)
    {
        byte[] kernelCommandLine = Encoding.UTF8.GetBytes(path + " " + commandLine);
        byte[] loaderName = Encoding.UTF8.GetBytes(MultibootInfo.BootLoaderName);
        var moduleStrings = modules.Select(m => Encoding.UTF8.GetBytes(m.CommandLine)).ToArray();

        ulong offsetInfo = PageAlign(kernel.Size);
        ulong commandLineBytes = (ulong)kernelCommandLine.Length + 1 + (ulong)moduleStrings.Sum(s => (long)s.Length + 1);
        ulong offsetStrings = offsetInfo + (ulong)(MultibootInfo.ModuleDescriptorSize * modules.Count);
        ulong offsetLoaderName = offsetStrings + commandLineBytes;
        ulong bufferSize = PageAlign(offsetLoaderName + (ulong)loaderName.Length + 1);

        var strings = new List<(ulong Offset, byte[] Bytes)>();
        var placed = new List<LoadedModule>();
        ulong stringCursor = offsetStrings;
        for (int i = 0; i < modules.Count; i++)
        {
            ulong stringOffset = stringCursor;
            strings.Add((stringOffset, moduleStrings[i]));
            stringCursor += (ulong)moduleStrings[i].Length + 1;
            ulong start = bufferSize;
            bufferSize = PageAlign(start + (ulong)modules[i].Image.Length);
            placed.Add(new LoadedModule(
                Truncate(kernel.Low + start), Truncate(kernel.Low + start + (ulong)modules[i].Image.Length), Truncate(kernel.Low + stringOffset)));
        }

        ulong commandLineOffset = stringCursor;
        strings.Add((commandLineOffset, kernelCommandLine));
        strings.Add((offsetLoaderName, loaderName));
        ulong bufferEnd = kernel.Low + bufferSize;
        if (bufferEnd > FourGiB)
        {
            throw new ImageLoadException(
                path,
                $"{path}: the kernel at 0x{kernel.Low:x} with its command lines{(modules.Count == 0 ? string.Empty : " and modules")} would end at 0x{bufferEnd:x}, past 4 GiB; " +
                "everything a multiboot loader passes must lie below 4 GiB.");
        }

        return new Layout(offsetInfo, bufferEnd, Truncate(kernel.Low + commandLineOffset), Truncate(kernel.Low + offsetLoaderName),
            Truncate(kernel.Low + offsetInfo), strings, placed);
    }

    private static ulong PageAlign(ulong value) => (value + (PageSize - 1)) & ~(ulong)(PageSize - 1);

    private static uint Truncate(ulong value) => unchecked((uint)value);

    // ------------------------------------------------------------------ placement checks

    private static List<(ulong Start, ulong End)> RamRanges(PhysicalBus bus)
    {
        var ranges = new List<(ulong Start, ulong End)>();
        foreach (MemoryMapEntry e in bus.MemoryMap())
        {
            if (e.Kind != MemoryRegionKind.Ram)
            {
                continue;
            }

            if (ranges.Count > 0 && ranges[^1].End == e.Start)
            {
                ranges[^1] = (ranges[^1].Start, e.Start + e.Size);
            }
            else
            {
                ranges.Add((e.Start, e.Start + e.Size));
            }
        }

        return ranges;
    }

    private static void CheckInRam(List<(ulong Start, ulong End)> ram, ulong start, ulong end, string path, string what)
    {
        if (end <= start)
        {
            return;
        }

        foreach ((ulong s, ulong e) in ram)
        {
            if (s <= start && end <= e)
            {
                return;
            }
        }

        string why;
        if (start < 0x10_0000 && end > 0xA_0000)
        {
            why = "it overlaps the 640 KiB-1 MiB hole (0xa0000-0xfffff: video memory and ROMs)";
        }
        else if (ram.Count > 0 && start < FourGiB && end > ram[^1].End)
        {
            why = $"it runs past the end of RAM at 0x{ram[^1].End:x}";
        }
        else
        {
            why = "that is not RAM";
        }

        string accepted = string.Join(" and ", ram.Select(r => $"0x{r.Start:x}-0x{r.End - 1:x}"));
        throw new ImageLoadException(
            path,
            $"{path}: {what} would occupy 0x{start:x}-0x{end - 1:x}, but {why}; the kernel and everything loaded after it must lie in RAM ({accepted}).");
    }

    private static void CheckInfoOverlap(string path, ulong start, ulong end, ulong kernelEnd)
    {
        if (start < InfoAreaEnd && InfoAreaStart < end)
        {
            string what = InfoAreaStart < kernelEnd ? "the kernel image" : "the command lines after the kernel";
            throw new ImageLoadException(
                path,
                $"{path}: {what} (0x{start:x}-0x{(InfoAreaStart < kernelEnd ? kernelEnd : end) - 1:x}) would overlap 0x{InfoAreaStart:x}-0x{InfoAreaEnd - 1:x}, " +
                "where the multiboot memory map and information structure go (as on QEMU); load the kernel elsewhere, usually at or above 1 MiB.");
        }
    }

    // ------------------------------------------------------------------ writing

    private static void Write(PhysicalBus bus, byte[] image, Kernel kernel, Layout layout, IReadOnlyList<MultibootModule> modules, IReadOnlyList<E820Entry> map)
    {
        // QEMU copies its whole buffer (kernel, gaps, bss, padding, strings) to RAM: zero it, then fill it in.
        Zero(bus, kernel.Low, layout.BufferEnd);
        foreach (Piece piece in kernel.Pieces)
        {
            bus.LoadImage(piece.Pa, image.AsSpan(piece.FileOffset, piece.FileSize));
        }

        Span<byte> descriptor = stackalloc byte[MultibootInfo.ModuleDescriptorSize];
        for (int i = 0; i < modules.Count; i++)
        {
            LoadedModule m = layout.Modules[i];
            bus.LoadImage(m.Start, modules[i].Image);
            descriptor.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(descriptor, m.Start);
            BinaryPrimitives.WriteUInt32LittleEndian(descriptor[4..], m.End);
            BinaryPrimitives.WriteUInt32LittleEndian(descriptor[8..], m.CommandLineAddress);
            bus.LoadImage(layout.ModulesAddress + (ulong)(i * MultibootInfo.ModuleDescriptorSize), descriptor);
        }

        foreach ((ulong offset, byte[] bytes) in layout.Strings)
        {
            var terminated = new byte[bytes.Length + 1];
            bytes.CopyTo(terminated, 0);
            bus.LoadImage(kernel.Low + offset, terminated);
        }

        byte[] mmap = new byte[MultibootInfo.MemoryMapCapacity];
        for (int i = 0; i < map.Count; i++)
        {
            Span<byte> entry = mmap.AsSpan(i * MultibootInfo.MemoryMapEntryStride, MultibootInfo.MemoryMapEntryStride);
            BinaryPrimitives.WriteUInt32LittleEndian(entry, MultibootInfo.MemoryMapEntrySize);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[4..], map[i].Start);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[12..], map[i].Size);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[20..], (uint)map[i].Type);
        }

        bus.LoadImage(MultibootInfo.MemoryMapAddress, mmap);

        byte[] info = new byte[MultibootInfo.InfoSize];
        Span<byte> mbi = info;
        BinaryPrimitives.WriteUInt32LittleEndian(mbi, MultibootInfo.Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[4..], MultibootInfo.MemLowerKiB);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[8..], MultibootInfo.MemUpperKiB(map));
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[12..], MultibootInfo.BootDevice);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[16..], layout.CommandLineAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[20..], (uint)modules.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[24..], layout.ModulesAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[44..], (uint)(map.Count * MultibootInfo.MemoryMapEntryStride));
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[48..], MultibootInfo.MemoryMapAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(mbi[64..], layout.LoaderNameAddress);
        bus.LoadImage(MultibootInfo.InfoAddress, info);
    }

    private static void Zero(PhysicalBus bus, ulong start, ulong end)
    {
        const int Chunk = 64 * 1024;
        if (end <= start)
        {
            return;
        }

        byte[] zeros = new byte[(int)Math.Min((ulong)Chunk, end - start)];
        for (ulong at = start; at < end; at += (ulong)zeros.Length)
        {
            bus.LoadImage(at, zeros.AsSpan(0, (int)Math.Min((ulong)zeros.Length, end - at)));
        }
    }

    // ------------------------------------------------------------------ plans

    /// <summary>One range of the kernel: file bytes at <see cref="Pa"/>, then zeros up to <see cref="MemSize"/>.</summary>
    private readonly record struct Piece(ulong Pa, int FileOffset, int FileSize, ulong MemSize, string What);

    /// <summary>The kernel image: [Low, Low + Size) with its pieces.</summary>
    private sealed record Kernel(MultibootImageKind Kind, uint Low, ulong Size, uint Entry, List<Piece> Pieces);

    /// <summary>QEMU's mb_buf after the kernel: offsets relative to the kernel's low address.</summary>
    private sealed record Layout(
        ulong OffsetInfo,
        ulong BufferEnd,
        uint CommandLineAddress,
        uint LoaderNameAddress,
        uint ModulesAddress,
        List<(ulong Offset, byte[] Bytes)> Strings,
        List<LoadedModule> Modules);
}
