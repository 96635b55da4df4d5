using HwMemModel.Firmware.Building;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>fw-cfg</c> BIOS image: reads QEMU's firmware configuration interface through its I/O ports (selector
/// 0x510, 16-bit; data 0x511, one byte per read) and prints what a firmware learns from it: the signature (key
/// 0x00), the ID (0x01), the RAM size (0x03, 64-bit little-endian), the CPU count (0x05, 16-bit little-endian, and
/// the byte past its end), the maximum CPU count (0x0F), the file directory (0x19, big-endian), the contents of
/// "etc/e820" found through the directory, and three keys without an item (which read 0).
/// </summary>
/// <remarks>
/// <para>Directory: the image prints whether every entry's select key is 0x20 plus its index (QEMU numbers files in
/// name order) and, for the four files the model provides ("bios-geometry", "bootorder", "etc/boot-fail-wait",
/// "etc/e820"), the size found in the directory. It does not print the file count or the other names: QEMU 7.2's
/// pc machine lists 12 files for a BIOS boot, of which the model does not provide "etc/acpi/rsdp",
/// "etc/acpi/tables", "etc/table-loader", "etc/tpm/log", "etc/smbios/smbios-anchor", "etc/smbios/smbios-tables",
/// "etc/system-states" and "genroms/kvmvapic.bin" (ACPI, SMBIOS, PIIX4 power management and the kvmvapic option
/// ROM are not modelled). The directory count is only checked to be at least 4.</para>
/// <para>Not read: the UUID (0x02, zero unless given), NUMA (0x0D), the x86 items (0x8000-0x8004: ACPI tables,
/// SMBIOS entries, IRQ0 override, e820 reserved table, HPET), and what QEMU adds for <c>-kernel</c> (0x07-0x18).</para>
/// </remarks>
internal static class FwCfgImage
{
    public const string Description =
        "BIOS: reads QEMU's fw_cfg through ports 0x510/0x511: signature, ID, RAM size, CPU count (and the byte past its end), maximum CPUs, the file directory (select keys in order, sizes of bios-geometry, bootorder, etc/boot-fail-wait and etc/e820), the etc/e820 entries, and keys without an item (read 0); exits 0";

    private const ushort Selector = 0x510;
    private const ushort Data = 0x511;
    private const uint Directory = 0x1_0000;
    private const uint E820Buffer = 0x2_0000;

    /// <summary>The files whose directory entries the image prints: the ones the model provides.</summary>
    private static readonly string[] _files = ["bios-geometry", "bootorder", "etc/boot-fail-wait", "etc/e820"];

    public static byte[] Build() => BiosRom.Build(null, Body);

    // Selects a key: a 16-bit write to the selector port.
    private static void Select(Assembler a, ushort key)
    {
        a.mov(dx, Selector);
        a.mov(ax, key);
        a.@out(dx, ax);
    }

    // Reads <paramref name="bytes"/> data bytes into RAX, the first byte in bits 0-7 (little-endian items).
    private static void ReadLittleEndian(Assembler a, int bytes)
    {
        a.mov(dx, Data);
        a.xor(r8d, r8d);
        for (int i = 0; i < bytes; i++)
        {
            a.@in(al, dx);
            a.movzx(eax, al);
            if (i > 0) a.shl(rax, (byte)(8 * i));
            a.or(r8, rax);
        }

        a.mov(rax, r8);
    }

    // Reads <paramref name="bytes"/> data bytes into EAX, the first byte most significant (big-endian fields).
    private static void ReadBigEndian(Assembler a, int bytes)
    {
        a.mov(dx, Data);
        a.xor(r8d, r8d);
        for (int i = 0; i < bytes; i++)
        {
            a.shl(r8d, 8);
            a.@in(al, dx);
            a.movzx(eax, al);
            a.or(r8d, eax);
        }

        a.mov(eax, r8d);
    }

    // Copies ECX data bytes of the selected item to RDI.
    private static void ReadInto(Asm asm)
    {
        var a = asm.A;
        var loop = asm.Here();
        a.mov(dx, Data);
        a.@in(al, dx);
        a.stosb();
        a.dec(ecx);
        a.jnz(loop);
    }

    private static void Body(Asm asm)
    {
        var a = asm.A;

        // Signature: four bytes, printed as characters.
        Select(a, 0x0000);
        asm.Print("fwcfg: signature (key 0x00): ");
        a.mov(ecx, 4);
        var sig = asm.Here();
        a.mov(dx, Data);
        a.@in(al, dx);
        a.call(asm.Rt!.Putc);
        a.dec(ecx);
        a.jnz(sig);
        asm.Print("\n");

        Select(a, 0x0001);
        ReadLittleEndian(a, 4);
        asm.Print("fwcfg: ID (key 0x01, 32-bit LE): ");
        asm.PrintHex(rax);
        asm.Print(" (bit 0 traditional interface, bit 1 DMA)\n");

        Select(a, 0x0003);
        ReadLittleEndian(a, 8);
        asm.Print("fwcfg: RAM size (key 0x03, 64-bit LE): ");
        asm.PrintHex(rax);
        asm.Print("\n");

        Select(a, 0x0005);
        ReadLittleEndian(a, 2);
        asm.Print("fwcfg: CPUs (key 0x05, 16-bit LE): ");
        asm.PrintDec(rax);
        ReadLittleEndian(a, 1);
        asm.Print(", the byte past its end reads ");
        asm.PrintHex(rax);
        asm.Print("\n");

        Select(a, 0x000F);
        ReadLittleEndian(a, 2);
        asm.Print("fwcfg: maximum CPUs (key 0x0f, 16-bit LE): ");
        asm.PrintDec(rax);
        asm.Print("\n");

        // The directory: a big-endian count, then 64-byte entries (size, select, reserved, name).
        Select(a, 0x0019);
        ReadBigEndian(a, 4);
        a.mov(r12d, eax);                       // R12 = file count
        a.mov(eax, 4);
        a.cmp(r12d, eax);
        a.setae(al);
        a.movzx(eax, al);
        asm.Print("fwcfg: directory (key 0x19, big-endian) has at least 4 files: ");
        asm.PrintDec(eax);
        asm.Print("\n");
        a.mov(ecx, r12d);
        a.shl(ecx, 6);
        var empty = a.CreateLabel();
        a.test(ecx, ecx);
        a.jz(empty);
        a.mov(edi, Directory);
        ReadInto(asm);
        a.Label(ref empty);

        // Every entry's select key is 0x20 + its index (big-endian at entry offset 4).
        var next = a.CreateLabel();
        var check = a.CreateLabel();
        var checkedAll = a.CreateLabel();
        a.mov(r13d, 1);                         // R13 = all in order
        a.xor(ebx, ebx);                        // RBX = index
        a.Label(ref check);
        a.cmp(ebx, r12d);
        a.jae(checkedAll);
        a.mov(eax, ebx);
        a.shl(eax, 6);
        a.movzx(ecx, __word_ptr[rax + Directory + 4]);
        a.xchg(cl, ch);
        a.lea(edx, __dword_ptr[rbx + 0x20]);
        a.cmp(ecx, edx);
        a.je(next);
        a.xor(r13d, r13d);
        a.Label(ref next);
        a.inc(ebx);
        a.jmp(check);
        a.Label(ref checkedAll);
        asm.Print("fwcfg: every file's select key is 0x20 + its directory index: ");
        asm.PrintDec(r13d);
        asm.Print("\n");

        // The files the model provides: the size from the directory (R14 = etc/e820's entry, or 0).
        a.xor(r14d, r14d);
        foreach (string name in _files)
        {
            var label = asm.Str(name);
            var search = a.CreateLabel();
            var found = a.CreateLabel();
            var absent = a.CreateLabel();
            var done = a.CreateLabel();
            a.xor(ebx, ebx);
            a.Label(ref search);
            a.cmp(ebx, r12d);
            a.jae(absent);
            a.mov(esi, ebx);
            a.shl(esi, 6);
            a.add(esi, Directory + 8);
            a.lea(rdi, __[label]);
            a.mov(ecx, name.Length + 1);
            a.repe.cmpsb();
            a.je(found);
            a.inc(ebx);
            a.jmp(search);
            a.Label(ref found);
            a.mov(eax, ebx);
            a.shl(eax, 6);
            a.add(eax, Directory);
            if (name == "etc/e820") a.mov(r14d, eax);
            a.mov(eax, __dword_ptr[rax]);
            a.bswap(eax);
            asm.Print($"fwcfg: file {name}: ");
            asm.PrintDec(eax);
            asm.Print(" bytes\n");
            a.jmp(done);
            a.Label(ref absent);
            asm.Print($"fwcfg: file {name}: absent\n");
            a.Label(ref done);
        }

        // etc/e820: 20-byte little-endian entries (address, length, type), selected by the directory's key.
        var noE820 = a.CreateLabel();
        var entry = a.CreateLabel();
        var e820Done = a.CreateLabel();
        a.test(r14d, r14d);
        a.jz(noE820);
        a.mov(ecx, __dword_ptr[r14]);
        a.bswap(ecx);
        a.mov(r15d, ecx);                       // R15 = bytes left
        a.movzx(eax, __word_ptr[r14 + 4]);
        a.xchg(al, ah);
        a.mov(dx, Selector);
        a.@out(dx, ax);
        a.test(ecx, ecx);
        a.jz(e820Done);
        a.mov(edi, E820Buffer);
        ReadInto(asm);
        a.mov(ebx, E820Buffer);
        a.Label(ref entry);
        a.cmp(r15d, 20);
        a.jb(e820Done);
        asm.Print("fwcfg: etc/e820 entry: address ");
        a.mov(rax, __qword_ptr[rbx]);
        asm.PrintHex(rax);
        asm.Print(", length ");
        a.mov(rax, __qword_ptr[rbx + 8]);
        asm.PrintHex(rax);
        asm.Print(", type ");
        a.mov(eax, __dword_ptr[rbx + 16]);
        asm.PrintDec(eax);
        asm.Print("\n");
        a.add(ebx, 20);
        a.sub(r15d, 20);
        a.jmp(entry);
        a.Label(ref noE820);
        asm.Print("fwcfg: etc/e820 not in the directory\n");
        a.Label(ref e820Done);

        // Keys without an item: an unused standard key, a free file slot and an unused x86 key read 0; so does a key
        // whose entry index is beyond the last slot (QEMU's FW_CFG_INVALID).
        foreach (ushort key in new ushort[] { 0x001F, 0x003F, 0x8010, 0x3FFF })
        {
            Select(a, key);
            ReadLittleEndian(a, 4);
            asm.Print($"fwcfg: key 0x{key:x} without an item, 4 bytes read: ");
            asm.PrintHex(rax);
            asm.Print("\n");
        }

        asm.Print("fwcfg: done\n");
        asm.Exit(0);
    }
}
