using System.Buffers.Binary;
using System.Text;
using HwMemModel.Bus;

namespace HwMemModel.Machine.Tests.Boot;

/// <summary>
/// Builds small multiboot kernels byte by byte, from the multiboot 0.6.96 and ELF32 layouts, independently of the
/// loader under test.
/// </summary>
internal static class TestImages
{
    public const uint Magic = 0x1BADB002;
    public const uint AoutFlags = 0x0001_0003; // page-align, memory info, a.out kludge
    public const uint ElfFlags = 0x0000_0003;

    /// <summary>A multiboot header of 8 or 12 dwords with a correct checksum.</summary>
    public static byte[] Header(uint flags, uint headerAddr = 0, uint loadAddr = 0, uint loadEnd = 0, uint bssEnd = 0, uint entry = 0, uint? checksum = null)
    {
        var h = new byte[32];
        Put(h, 0, Magic);
        Put(h, 4, flags);
        Put(h, 8, checksum ?? unchecked(0u - Magic - flags));
        Put(h, 12, headerAddr);
        Put(h, 16, loadAddr);
        Put(h, 20, loadEnd);
        Put(h, 24, bssEnd);
        Put(h, 28, entry);
        return h;
    }

    /// <summary>
    /// A flat a.out-kludge kernel: the header at file offset 0 (header_addr = load_addr), followed by
    /// <paramref name="code"/> at file offset 32; entry defaults to the first code byte.
    /// </summary>
    public static byte[] Aout(uint loadAddr, byte[] code, uint loadEnd = 0, uint bssEnd = 0, uint? entry = null, uint flags = AoutFlags)
    {
        var file = new byte[32 + code.Length];
        Header(flags, loadAddr, loadAddr, loadEnd, bssEnd, entry ?? loadAddr + 32).CopyTo(file, 0);
        code.CopyTo(file, 32);
        return file;
    }

    /// <summary>One ELF32 program header.</summary>
    public sealed record Segment(uint Offset, uint VAddr, uint PAddr, uint FileSize, uint MemSize, uint Flags = 5, uint Type = 1);

    /// <summary>
    /// An ELF32 little-endian executable: 52-byte ELF header, program headers from offset 52, no section headers,
    /// file length <paramref name="length"/>; <paramref name="contents"/> are copied in at their file offsets.
    /// </summary>
    public static byte[] Elf32(uint entry, Segment[] segments, int length, (int Offset, byte[] Bytes)[] contents, ushort machine = 3, byte elfClass = 1)
    {
        var file = new byte[length];
        file[0] = 0x7F;
        file[1] = (byte)'E';
        file[2] = (byte)'L';
        file[3] = (byte)'F';
        file[4] = elfClass;   // ELFCLASS32
        file[5] = 1;          // ELFDATA2LSB
        file[6] = 1;          // EV_CURRENT
        Put16(file, 16, 2);   // e_type = ET_EXEC
        Put16(file, 18, machine);
        Put(file, 20, 1);     // e_version
        Put(file, 24, entry);
        Put(file, 28, 52);    // e_phoff
        Put(file, 32, 0);     // e_shoff
        Put(file, 36, 0);     // e_flags
        Put16(file, 40, 52);  // e_ehsize
        Put16(file, 42, 32);  // e_phentsize
        Put16(file, 44, (ushort)segments.Length);
        Put16(file, 46, 40);  // e_shentsize
        Put16(file, 48, 0);   // e_shnum
        Put16(file, 50, 0);   // e_shstrndx
        for (int i = 0; i < segments.Length; i++)
        {
            int p = 52 + (32 * i);
            Segment s = segments[i];
            if (p + 32 > file.Length)
            {
                continue; // deliberately truncated program header table
            }

            Put(file, p, s.Type);
            Put(file, p + 4, s.Offset);
            Put(file, p + 8, s.VAddr);
            Put(file, p + 12, s.PAddr);
            Put(file, p + 16, s.FileSize);
            Put(file, p + 20, s.MemSize);
            Put(file, p + 24, s.Flags);
            Put(file, p + 28, 0x1000);
        }

        foreach ((int offset, byte[] bytes) in contents)
        {
            bytes.CopyTo(file, offset);
        }

        return file;
    }

    /// <summary>A 64-byte ELF64 x86-64 header with a multiboot header (no a.out kludge) right after it.</summary>
    public static byte[] Elf64WithMultibootHeader()
    {
        var file = new byte[0x200];
        file[0] = 0x7F;
        file[1] = (byte)'E';
        file[2] = (byte)'L';
        file[3] = (byte)'F';
        file[4] = 2; // ELFCLASS64
        file[5] = 1;
        file[6] = 1;
        Put16(file, 16, 2);
        Put16(file, 18, 62); // EM_X86_64
        Put(file, 20, 1);
        Header(ElfFlags).AsSpan(0, 12).CopyTo(file.AsSpan(0x40));
        return file;
    }

    public static void Put(byte[] b, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset), value);

    public static void Put16(byte[] b, int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(offset), value);

    public static uint Dword(PhysicalBus bus, ulong pa)
    {
        Span<byte> b = stackalloc byte[4];
        Assert.That(bus.ReadBytes(pa, b, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public static ulong Qword(PhysicalBus bus, ulong pa) => Dword(bus, pa) | ((ulong)Dword(bus, pa + 4) << 32);

    public static byte[] Bytes(PhysicalBus bus, ulong pa, int count)
    {
        var b = new byte[count];
        Assert.That(bus.ReadBytes(pa, b, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        return b;
    }

    /// <summary>A NUL-terminated string read from the bus (at most 4 KiB).</summary>
    public static string CString(PhysicalBus bus, ulong pa)
    {
        var bytes = new List<byte>();
        for (int i = 0; i < 4096; i++)
        {
            byte b = Bytes(bus, pa + (ulong)i, 1)[0];
            if (b == 0)
            {
                return Encoding.UTF8.GetString(bytes.ToArray());
            }

            bytes.Add(b);
        }

        throw new AssertionException($"no NUL within 4 KiB of 0x{pa:x}");
    }

    /// <summary>Fills [pa, pa + count) with 0xCC so that zeroing by the loader is visible.</summary>
    public static void Poison(PhysicalBus bus, ulong pa, int count)
    {
        var b = new byte[count];
        Array.Fill(b, (byte)0xCC);
        bus.LoadImage(pa, b);
    }

    public static byte[] Pattern(int count, byte seed = 1)
    {
        var b = new byte[count];
        for (int i = 0; i < count; i++)
        {
            b[i] = (byte)(seed + (i * 7));
        }

        return b;
    }
}
