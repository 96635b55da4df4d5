using System.Buffers.Binary;
using HwMemModel.Firmware.Building;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The multiboot v1 kernels <c>multiboot-aout</c> and <c>multiboot-elf</c>: the same code in two containers.
/// <code>
/// 0x100000  text: multiboot header (first bytes of the text), 32-bit entry code
/// 0x102000  text: 64-bit code
/// 0x104000  data: GDT, GDTR, a magic value (checked to prove the data was loaded)
/// 0x105000  bss (to 0x10D000): PML4, PDPT, PD, stack (top 0x10D000)
/// </code>
/// The a.out variant is a flat file of text and data with the a.out kludge (header flags bit 16) giving
/// header_addr, load_addr, load_end_addr = 0x105000, bss_end_addr = 0x10D000 and entry_addr. The ELF variant
/// is an ELF32 executable with two PT_LOAD program headers: text (R+X) and data (R+W, p_memsz &gt; p_filesz for
/// the bss); its multiboot header has no address fields.
/// </summary>
internal static class MultibootKernel
{
    public const string AoutDescription =
        "multiboot v1 a.out kludge at 1 MiB: checks EAX magic, data and bss, prints mem_lower/mem_upper and the memory map, loads its own GDT, enters long mode; exits 0";

    public const string ElfDescription =
        "multiboot v1 ELF32 (two PT_LOAD: text, data+bss): checks EAX magic, data and bss, prints mem_lower/mem_upper and the memory map, loads its own GDT, enters long mode; exits 0";

    private const uint TextBase = 0x10_0000;
    private const uint Text64 = 0x10_2000;
    private const uint DataBase = 0x10_4000;
    private const uint BssBase = 0x10_5000;
    private const uint BssEnd = 0x10_D000;
    private const uint TextSize = DataBase - TextBase;
    private const uint DataSize = BssBase - DataBase;
    private const uint Pml4 = BssBase;
    private const uint StackTop = BssEnd;
    private const uint GdtAddress = DataBase;
    private const uint GdtrAddress = DataBase + 0x30;
    private const uint DataMagicAddress = DataBase + 0x40;
    private const uint DataMagic = 0xDA7A_5E65;

    /// <summary>Header flags bit 1: the loader must pass memory information (mem_* and the memory map).</summary>
    private const uint FlagMemoryInfo = 1u << 1;

    /// <summary>Header flags bit 16: the address fields are valid (a.out kludge).</summary>
    private const uint FlagAoutKludge = 1u << 16;

    public static byte[] BuildAout()
    {
        var (text, data, _) = BuildContents("multiboot-aout", aout: true);
        return [.. text, .. data];
    }

    public static byte[] BuildElf()
    {
        var (text, data, entry) = BuildContents("multiboot-elf", aout: false);
        const int headerSize = 0x1000;
        var file = new byte[headerSize + text.Length + data.Length];
        var s = file.AsSpan();
        "\u007fELF"u8.CopyTo(s);
        s[4] = 1; // ELFCLASS32
        s[5] = 1; // ELFDATA2LSB
        s[6] = 1; // EV_CURRENT
        BinaryPrimitives.WriteUInt16LittleEndian(s[16..], 2); // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(s[18..], 3); // EM_386
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], 1); // e_version
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], entry);
        BinaryPrimitives.WriteUInt32LittleEndian(s[28..], 52); // e_phoff
        BinaryPrimitives.WriteUInt32LittleEndian(s[32..], 0); // e_shoff
        BinaryPrimitives.WriteUInt32LittleEndian(s[36..], 0); // e_flags
        BinaryPrimitives.WriteUInt16LittleEndian(s[40..], 52); // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(s[42..], 32); // e_phentsize
        BinaryPrimitives.WriteUInt16LittleEndian(s[44..], 2); // e_phnum
        BinaryPrimitives.WriteUInt16LittleEndian(s[46..], 40); // e_shentsize
        WriteProgramHeader(s[52..], offset: headerSize, address: TextBase, fileSize: TextSize, memorySize: TextSize, flags: 4 | 1);
        WriteProgramHeader(s[84..], offset: headerSize + TextSize, address: DataBase, fileSize: DataSize, memorySize: BssEnd - DataBase, flags: 4 | 2);
        text.CopyTo(s[headerSize..]);
        data.CopyTo(s[(int)(headerSize + TextSize)..]);
        return file;
    }

    private static void WriteProgramHeader(Span<byte> s, uint offset, uint address, uint fileSize, uint memorySize, uint flags)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(s, 1); // PT_LOAD
        BinaryPrimitives.WriteUInt32LittleEndian(s[4..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(s[8..], address); // p_vaddr
        BinaryPrimitives.WriteUInt32LittleEndian(s[12..], address); // p_paddr (QEMU loads here)
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], fileSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], memorySize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(s[28..], 0x1000); // p_align
    }

    private static (byte[] Text, byte[] Data, uint Entry) BuildContents(string name, bool aout)
    {
        var link = Linker.Link(
            new SectionSpec("mb32", 32, TextBase, asm => Emit32(asm, name, aout)),
            new SectionSpec("mb64", 64, Text64, asm => Emit64(asm, name)));
        var text = new byte[TextSize];
        link.CopyTo(text, TextBase);

        var data = new byte[DataSize];
        Gdt.Bytes().CopyTo(data, GdtAddress - DataBase);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan((int)(GdtrAddress - DataBase)), Gdt.Limit);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan((int)(GdtrAddress - DataBase + 2)), GdtAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan((int)(DataMagicAddress - DataBase)), DataMagic);
        return (text, data, checked((uint)link.Symbols["mb_entry"]));
    }

    private static void Emit32(Asm asm, string name, bool aout)
    {
        var a = asm.A;
        var flags = FlagMemoryInfo | (aout ? FlagAoutKludge : 0);
        a.dd(Platform.MultibootHeaderMagic);
        a.dd(flags);
        a.dd(unchecked(0u - Platform.MultibootHeaderMagic - flags));
        if (aout)
        {
            a.dd(TextBase); // header_addr: the header is the first byte loaded
            a.dd(TextBase); // load_addr
            a.dd(BssBase); // load_end_addr: text and data
            a.dd(BssEnd); // bss_end_addr
            a.dd(checked((uint)asm.Sym("mb_entry")));
        }

        var main = asm.NewLabel();
        asm.Global("mb_entry");
        a.cli();
        a.cld();
        a.mov(esp, StackTop);
        a.mov(ebp, eax); // magic; EBX = multiboot information
        Runtime.EmitSerialInit(asm);
        a.jmp(main);
        Runtime.Emit(asm);
        asm.Bind(ref main);

        var badMagic = asm.NewLabel();
        var magicDone = asm.NewLabel();
        asm.Print($"{name}: multiboot magic in EAX: ");
        a.cmp(ebp, Platform.MultibootBootloaderMagic);
        a.jne(badMagic);
        asm.Print("yes\n");
        a.jmp(magicDone);
        asm.Bind(ref badMagic);
        asm.Print("no, EAX=");
        asm.PrintHex(ebp);
        asm.Print("\n");
        asm.Bind(ref magicDone);

        YesNo(asm, $"{name}: data segment loaded: ", () => a.cmp(__dword_ptr[(ulong)DataMagicAddress], DataMagic));
        YesNo(asm, $"{name}: bss zeroed: ", () =>
        {
            // The stack at the top of the bss is in use; check everything below its last 4 KiB.
            a.mov(edi, BssBase);
            a.mov(ecx, (BssEnd - 0x1000 - BssBase) / 4);
            a.xor(eax, eax);
            a.repe.scasd();
        });

        var noMem = asm.NewLabel();
        var noMmap = asm.NewLabel();
        a.test(__dword_ptr[ebx], 1);
        a.jz(noMem);
        asm.Print($"{name}: mem_lower=");
        asm.PrintDec(__dword_ptr[ebx + 4]);
        asm.Print(" KiB mem_upper=");
        asm.PrintDec(__dword_ptr[ebx + 8]);
        asm.Print(" KiB\n");
        asm.Bind(ref noMem);

        var mmapDone = asm.NewLabel();
        a.test(__dword_ptr[ebx], 1 << 6);
        a.jz(noMmap);
        a.mov(esi, __dword_ptr[ebx + 48]); // mmap_addr
        a.mov(edi, __dword_ptr[ebx + 44]); // mmap_length
        a.add(edi, esi);
        var entry = asm.Here();
        a.cmp(esi, edi);
        a.jae(mmapDone);
        asm.Print($"{name}: mmap base=");
        a.mov(eax, __dword_ptr[esi + 4]);
        a.mov(edx, __dword_ptr[esi + 8]);
        a.call(asm.Rt!.PutHex);
        asm.Print(" length=");
        a.mov(eax, __dword_ptr[esi + 12]);
        a.mov(edx, __dword_ptr[esi + 16]);
        a.call(asm.Rt!.PutHex);
        asm.Print(" type=");
        a.mov(eax, __dword_ptr[esi + 20]);
        a.call(asm.Rt!.PutDec);
        asm.Print("\n");
        a.add(esi, __dword_ptr[esi]);
        a.add(esi, 4);
        a.jmp(entry);
        asm.Bind(ref noMmap);
        asm.Print($"{name}: no memory map\n");
        asm.Bind(ref mmapDone);

        // The loader's GDT is undefined for the kernel: load our own and reload every segment register.
        var reload = asm.NewLabel();
        a.lgdt(__[(ulong)GdtrAddress]);
        a.jmp(Gdt.Code32, checked((uint)asm.AddressOf(reload)));
        asm.Bind(ref reload);
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        asm.Print($"{name}: own GDT loaded\n");
        LongMode.EmitEnter(asm, Pml4, asm.Sym("mb_entry64"));
    }

    private static void YesNo(Asm asm, string title, Action compare)
    {
        var no = asm.NewLabel();
        var done = asm.NewLabel();
        asm.Print(title);
        compare();
        asm.A.jne(no);
        asm.Print("yes\n");
        asm.A.jmp(done);
        asm.Bind(ref no);
        asm.Print("no\n");
        asm.Bind(ref done);
    }

    private static void Emit64(Asm asm, string name)
    {
        var a = asm.A;
        var main = asm.NewLabel();
        asm.Global("mb_entry64");
        LongMode.EmitSegments64(asm, StackTop);
        a.jmp(main);
        Runtime.Emit(asm);
        asm.Bind(ref main);
        asm.Print($"{name}: hello from long mode, EFER=");
        a.mov(ecx, Platform.MsrEfer);
        a.rdmsr();
        asm.PrintHex(eax);
        asm.Print($"\n{name}: done\n");
        asm.Exit(0);
    }
}
