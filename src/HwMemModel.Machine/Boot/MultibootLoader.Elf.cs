using ELFSharp.ELF;
using ELFSharp.ELF.Segments;
using ElfMachine = ELFSharp.ELF.Machine;

namespace HwMemModel.Machine.Boot;

/// <content>ELF32 kernels: read with ELFSharp, placed by PT_LOAD program headers as QEMU's load_elf does.</content>
public static partial class MultibootLoader
{
    // ------------------------------------------------------------------ ELF32

    private static Kernel PlanElf(byte[] image, string path, MultibootHeader h)
    {
        const string Elf64Rule = "multiboot loads 32-bit x86 ELF executables only (QEMU: \"Cannot load x86-64 image, give a 32bit one.\"); " +
            "link the kernel as ELF32 (EM_386), or give it the a.out kludge (flags bit 16) and its address fields";
        Class elfClass;
        using (var probe = new MemoryStream(image, writable: false))
        {
            elfClass = image.Length >= 16 ? ELFReader.CheckELFType(probe) : Class.NotELF;
        }

        if (elfClass == Class.NotELF)
        {
            throw new ImageLoadException(
                path,
                $"{path}: not an ELF file, and its multiboot header (offset 0x{h.Offset:x}, flags 0x{h.Flags:x8}) does not set the a.out kludge " +
                "(flags bit 16); a multiboot kernel is either an ELF32 executable or a flat image whose header gives header_addr, " +
                "load_addr, load_end_addr, bss_end_addr and entry_addr.");
        }

        if (elfClass == Class.Bit64)
        {
            throw new ImageLoadException(path, $"{path}: a 64-bit ELF file (ELFCLASS64); {Elf64Rule}.");
        }

        ELF<uint> elf;
        try
        {
            using var stream = new MemoryStream(image, writable: false);
            if (!ELFReader.TryLoad(stream, shouldOwnStream: false, out elf))
            {
                throw new ImageLoadException(path, $"{path}: ELFSharp could not read it as an ELF32 file; multiboot needs an ELF32 x86 executable.");
            }
        }
        catch (EndOfStreamException e)
        {
            throw new ImageLoadException(
                path,
                $"{path}: truncated ELF file: its program or section header table extends beyond the end of the {image.Length}-byte file; " +
                "the ELF headers must lie inside the file (QEMU: \"Error while loading elf kernel\").",
                e);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or OverflowException or IOException or IndexOutOfRangeException or NotSupportedException)
        {
            throw new ImageLoadException(
                path,
                $"{path}: malformed ELF file ({OneLine(e.Message)}); multiboot needs a well-formed little-endian ELF32 x86 executable.",
                e);
        }

        using (elf)
        {
            if (elf.Machine == ElfMachine.AMD64)
            {
                throw new ImageLoadException(path, $"{path}: an x86-64 ELF file (e_machine 62, EM_X86_64); {Elf64Rule}.");
            }

            if (elf.Machine != ElfMachine.Intel386)
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: ELF e_machine is {(ushort)elf.Machine} ({elf.Machine}), not 3 (EM_386); multiboot kernels are 32-bit x86 executables " +
                    "(QEMU: \"Error while loading elf kernel\").");
            }

            if (elf.Endianess != ELFSharp.Endianess.LittleEndian)
            {
                throw new ImageLoadException(path, $"{path}: a big-endian ELF file; x86 ELF executables are little-endian (ELFDATA2LSB).");
            }

            return PlanElfSegments(elf, image, path);
        }
    }

    private static Kernel PlanElfSegments(ELF<uint> elf, byte[] image, string path)
    {
        var loads = new List<(int Index, Segment<uint> Segment, ulong MemSize)>();
        for (int i = 0; i < elf.Segments.Count; i++)
        {
            Segment<uint> s = elf.Segments[i];
            if (s.Type != SegmentType.Load)
            {
                continue;
            }

            if (s.FileSize > s.Size)
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: malformed ELF program header {i}: p_filesz 0x{s.FileSize:x} exceeds p_memsz 0x{s.Size:x}; a PT_LOAD segment's file bytes must fit in its memory size.");
            }

            if (s.FileSize > 0 && (s.Offset < 0 || s.Offset + s.FileSize > image.Length))
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: truncated ELF file: program header {i} (PT_LOAD) takes 0x{s.FileSize:x} bytes from file offset 0x{s.Offset:x}, " +
                    $"beyond the end of the {image.Length}-byte file; every PT_LOAD segment's p_offset + p_filesz must lie inside the file.");
            }

            loads.Add((i, s, s.Size));
        }

        if (loads.Count == 0)
        {
            throw new ImageLoadException(path, $"{path}: the ELF file has no PT_LOAD program header, so there is nothing to load; a multiboot ELF kernel needs at least one loadable segment.");
        }

        // QEMU (include/hw/elf_ops.h): a zero fill that would overlap another segment is dropped (only p_filesz is loaded).
        for (int a = 0; a < loads.Count; a++)
        {
            Segment<uint> s = loads[a].Segment;
            if (s.Size <= s.FileSize)
            {
                continue;
            }

            ulong zeroStart = (ulong)s.PhysicalAddress + (ulong)s.FileSize;
            ulong zeroEnd = (ulong)s.PhysicalAddress + s.Size;
            for (int b = 0; b < loads.Count; b++)
            {
                Segment<uint> o = loads[b].Segment;
                if (a != b && !(o.PhysicalAddress >= zeroEnd || zeroStart >= (ulong)o.PhysicalAddress + o.Size))
                {
                    loads[a] = loads[a] with { MemSize = (ulong)s.FileSize };
                    break;
                }
            }
        }

        ulong low = ulong.MaxValue, high = 0;
        var pieces = new List<Piece>();
        foreach ((int index, Segment<uint> s, ulong memSize) in loads)
        {
            ulong pa = s.PhysicalAddress;
            low = Math.Min(low, pa);
            high = Math.Max(high, pa + memSize);
            if (pa + memSize > FourGiB)
            {
                throw new ImageLoadException(
                    path,
                    $"{path}: ELF program header {index} (p_paddr 0x{pa:x}, p_memsz 0x{memSize:x}) runs past 4 GiB; multiboot kernels load below 4 GiB.");
            }

            if (memSize != 0)
            {
                pieces.Add(new Piece(pa, (int)s.Offset, (int)s.FileSize, memSize,
                    $"ELF program header {index} (p_paddr 0x{pa:x}, p_memsz 0x{memSize:x})"));
            }
        }

        for (int a = 0; a < pieces.Count; a++)
        {
            for (int b = a + 1; b < pieces.Count; b++)
            {
                Piece p = pieces[a], q = pieces[b];
                if (p.Pa < q.Pa + q.MemSize && q.Pa < p.Pa + p.MemSize)
                {
                    throw new ImageLoadException(
                        path,
                        $"{path}: {p.What} and {q.What} overlap in physical memory; PT_LOAD segments must not overlap (QEMU: \"rom: requested regions overlap\").");
                }
            }
        }

        uint entry = elf.EntryPoint;
        foreach ((_, Segment<uint> s, _) in loads)
        {
            if (s.Address != s.PhysicalAddress && elf.EntryPoint >= s.Address && elf.EntryPoint - s.Address < (ulong)s.FileSize
                && (s.Flags & SegmentFlags.Execute) != 0)
            {
                entry = elf.EntryPoint - s.Address + s.PhysicalAddress;
            }
        }

        bool inside = false;
        foreach ((_, Segment<uint> s, _) in loads)
        {
            inside |= entry >= s.PhysicalAddress && entry - s.PhysicalAddress < (ulong)s.FileSize;
        }

        if (!inside)
        {
            string ranges = string.Join(", ", loads.Where(l => l.Segment.FileSize > 0)
                .Select(l => $"0x{l.Segment.PhysicalAddress:x}-0x{l.Segment.PhysicalAddress + (ulong)l.Segment.FileSize - 1:x}"));
            string translated = entry == elf.EntryPoint ? string.Empty : $" (e_entry 0x{elf.EntryPoint:x} translated to physical)";
            throw new ImageLoadException(
                path,
                $"{path}: the entry point 0x{entry:x}{translated} is outside the loaded image; e_entry must point into the file bytes of a " +
                $"PT_LOAD segment (loaded at {(ranges.Length == 0 ? "no address: every segment is bss only" : ranges)}).");
        }

        return new Kernel(MultibootImageKind.Elf32, (uint)low, high - low, entry, pieces);
    }

    private static string OneLine(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries)).Trim();
}
