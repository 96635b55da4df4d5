using HwMemModel.Machine.Boot;
using static HwMemModel.Machine.Tests.Boot.TestImages;

namespace HwMemModel.Machine.Tests.Boot;

public sealed class ImageLoadErrorTests
{
    private const ulong Ram = DefaultMachine.DefaultRamSize;

    private static string KernelError(byte[] file, string path = "kernel.bin")
    {
        var bus = DefaultMachine.CreateBus();
        var e = Assert.Throws<ImageLoadException>(() => MultibootLoader.Load(bus, file, path, null, Ram))!;
        Assert.That(e.Message, Does.Not.Contain("\n").And.Not.Contain("\r"), "one line");
        Assert.That(e.Message, Does.StartWith(path + ": "), "names the file");
        Assert.That(e.ImagePath, Is.EqualTo(path));
        return e.Message;
    }

    private static string BiosError(byte[] image, string path = "bios.bin")
    {
        var e = Assert.Throws<ImageLoadException>(() => BiosImage.Validate(image, path))!;
        Assert.That(e.Message, Does.Not.Contain("\n").And.Not.Contain("\r"), "one line");
        Assert.That(e.Message, Does.StartWith(path + ": "), "names the file");
        return e.Message;
    }

    private static byte[] ElfText()
    {
        byte[] text = new byte[0x40];
        Header(ElfFlags).AsSpan(0, 12).CopyTo(text);
        return text;
    }

    // ---------------------------------------------------------------- BIOS

    [Test]
    public void Empty_bios_is_refused()
    {
        Assert.That(BiosError([]), Is.EqualTo(
            "bios.bin: the BIOS image is empty (0 bytes); a BIOS image must be a non-empty multiple of 64 KiB (65536 bytes) of at most 16 MiB, " +
            "as QEMU's -bios requires (QEMU: \"could not load PC BIOS\")."));
    }

    [Test]
    public void Bios_that_is_not_a_multiple_of_64_KiB_is_refused()
    {
        Assert.That(BiosError(new byte[65537]), Is.EqualTo(
            "bios.bin: the BIOS image is 65537 bytes, not a multiple of 64 KiB (the nearest accepted sizes are 65536 and 131072 bytes); " +
            "a BIOS image must be a non-empty multiple of 64 KiB (65536 bytes) of at most 16 MiB, as QEMU's -bios requires (QEMU: \"could not load PC BIOS\")."));
        Assert.That(BiosError(new byte[1000]), Does.Contain("is 1000 bytes, not a multiple of 64 KiB (the nearest accepted size is 65536 bytes)"));
    }

    [Test]
    public void Bios_larger_than_16_MiB_is_refused()
    {
        Assert.That(BiosError(new byte[(16 << 20) + 65536]), Is.EqualTo(
            "bios.bin: the BIOS image is 16842752 bytes (16.06 MiB), larger than 16 MiB (16777216 bytes); a BIOS image must be a non-empty " +
            "multiple of 64 KiB (65536 bytes) of at most 16 MiB, as QEMU's -bios requires (QEMU: \"could not load PC BIOS\") " +
            "(the model keeps the ROM above the APIC and HPET windows at 0xFEC00000-0xFEEFFFFF)."));
    }

    [TestCase(64 * 1024)]
    [TestCase(256 * 1024)]
    [TestCase(16 * 1024 * 1024)]
    public void Bios_sizes_qemu_accepts_up_to_16_MiB_pass(int size)
    {
        Assert.DoesNotThrow(() => BiosImage.Validate(new byte[size], "bios.bin"));
        Assert.That(BiosImage.BootState.Mode, Is.EqualTo(BootMode.RealModeReset));
        Assert.That(BiosImage.BootState.Eip, Is.EqualTo(0xFFF0u));
    }

    // ---------------------------------------------------------------- multiboot header

    [Test]
    public void Empty_kernel_is_refused()
    {
        Assert.That(KernelError([]), Is.EqualTo(
            "kernel.bin: the kernel image is empty (0 bytes); a multiboot kernel needs a multiboot header (magic 0x1BADB002) in its first 8 KiB."));
    }

    [Test]
    public void Kernel_without_a_header_in_the_first_8_KiB_is_refused()
    {
        var file = new byte[16384];
        Header(AoutFlags, 0x10_0000 + 8144, 0x10_0000).CopyTo(file, 8144); // one dword past QEMU's last scanned offset
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: no multiboot header in the first 8 KiB: the magic 0x1BADB002 must appear at a 4-byte aligned offset below 0x1fd0 " +
            "with magic + flags + checksum = 0; --kernel accepts multiboot (version 1) kernels only."));
    }

    [Test]
    public void Unaligned_header_is_not_found()
    {
        var file = new byte[256];
        Header(AoutFlags, 0x10_0002, 0x10_0000).CopyTo(file, 2);
        Assert.That(KernelError(file), Does.StartWith("kernel.bin: no multiboot header in the first 8 KiB"));
    }

    [Test]
    public void Bad_checksum_is_refused()
    {
        byte[] file = Aout(0x10_0000, Pattern(16));
        Put(file, 8, 0x1234_5678);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: bad multiboot header checksum at offset 0x0: magic 0x1BADB002 + flags 0x00010003 + checksum 0x12345678 = 0x2de3067d, " +
            "not 0 (mod 2^32); the checksum for these flags must be 0xe4514ffb."));
    }

    [Test]
    public void Unknown_required_flag_is_refused()
    {
        Assert.That(KernelError(Aout(0x10_0000, Pattern(16), flags: AoutFlags | (1u << 5))), Is.EqualTo(
            "kernel.bin: the multiboot header (offset 0x0, flags 0x00010023) requires features (bit 5) that this loader does not understand; " +
            "bits 0-15 are requirements and only bits 0 (page-aligned modules), 1 (memory information) and 2 (video mode, ignored as QEMU does) are defined."));
    }

    [Test]
    public void File_ending_inside_the_aout_address_fields_is_truncated()
    {
        byte[] file = Header(AoutFlags, 0x10_0000, 0x10_0000).AsSpan(0, 20).ToArray();
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: truncated: the multiboot header at offset 0x0 sets the a.out kludge (flags bit 16) but the 20-byte file ends before its " +
            "address fields (offsets 0xc-0x1f); the kludge needs header_addr, load_addr, load_end_addr, bss_end_addr and entry_addr."));
    }

    // ---------------------------------------------------------------- a.out kludge

    [Test]
    public void Aout_load_end_beyond_the_file_is_truncated()
    {
        byte[] file = Aout(0x10_0000, Pattern(32), loadEnd: 0x10_1000);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: truncated: the a.out kludge loads 0x1000 bytes (load_addr 0x100000 to load_end_addr 0x101000) from file offset 0x0, " +
            "but the file is only 64 bytes (0x40 available); load_end_addr - load_addr must not exceed the file's bytes from that offset on, " +
            "or be 0 for \"to the end of the file\"."));
    }

    [Test]
    public void Aout_load_end_below_load_addr_is_refused()
    {
        Assert.That(KernelError(Aout(0x10_0000, Pattern(32), loadEnd: 0xF_F000)), Is.EqualTo(
            "kernel.bin: invalid a.out kludge: load_end_addr 0xff000 is below load_addr 0x100000; it must be 0 (load to the end of the file) " +
            "or at least load_addr (QEMU: \"invalid load_end_addr address\")."));
    }

    [Test]
    public void Aout_header_addr_below_load_addr_is_refused()
    {
        var file = new byte[64];
        Header(AoutFlags, headerAddr: 0xF_FFF0, loadAddr: 0x10_0000, entry: 0x10_0000).CopyTo(file, 0);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: invalid a.out kludge: header_addr 0xffff0, load_addr 0x100000: header_addr is below load_addr; the header lies inside " +
            "the loaded image, so load_addr <= header_addr is required (QEMU: \"invalid load_addr address\")."));
    }

    [Test]
    public void Aout_header_addr_beyond_the_header_offset_is_refused()
    {
        var file = new byte[64];
        Header(AoutFlags, headerAddr: 0x10_0010, loadAddr: 0x10_0000, entry: 0x10_0000).CopyTo(file, 8);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: invalid a.out kludge: header_addr 0x100010, load_addr 0x100000 put the header 0x10 bytes into the image, but it is only " +
            "0x8 bytes into the file; header_addr - load_addr must not exceed the header's file offset (QEMU: \"invalid header_addr address\")."));
    }

    [Test]
    public void Aout_bss_end_below_load_end_is_refused()
    {
        Assert.That(KernelError(Aout(0x10_0000, Pattern(32), loadEnd: 0x10_0040, bssEnd: 0x10_0020)), Is.EqualTo(
            "kernel.bin: invalid a.out kludge: bss_end_addr 0x100020 is below the end of the loaded data 0x100040 (load_addr 0x100000 + 0x40 bytes); " +
            "it must be 0 (no bss) or at least that (QEMU: \"invalid bss_end_addr address\")."));
    }

    [Test]
    public void Aout_entry_outside_the_loaded_bytes_is_refused()
    {
        Assert.That(KernelError(Aout(0x10_0000, Pattern(32), bssEnd: 0x10_1000, entry: 0x10_0800)), Is.EqualTo(
            "kernel.bin: the entry point 0x100800 (entry_addr) is outside the loaded image 0x100000-0x10003f; entry_addr must point into the " +
            "bytes loaded from the file."));
    }

    [Test]
    public void Aout_image_in_the_640_KiB_to_1_MiB_hole_is_refused()
    {
        Assert.That(KernelError(Aout(0xA_0000, Pattern(32))), Is.EqualTo(
            "kernel.bin: the a.out kludge image (load_addr 0xa0000, 0x40 bytes with bss) would occupy 0xa0000-0xa003f, but it overlaps the " +
            "640 KiB-1 MiB hole (0xa0000-0xfffff: video memory and ROMs); the kernel and everything loaded after it must lie in RAM " +
            "(0x0-0x9ffff and 0x100000-0x7ffffff)."));
    }

    [Test]
    public void Aout_image_beyond_the_end_of_ram_is_refused()
    {
        Assert.That(KernelError(Aout(0x7FF_F000, Pattern(32), bssEnd: 0x800_1000)), Is.EqualTo(
            "kernel.bin: the a.out kludge image (load_addr 0x7fff000, 0x2000 bytes with bss) would occupy 0x7fff000-0x8000fff, but it runs past " +
            "the end of RAM at 0x8000000; the kernel and everything loaded after it must lie in RAM (0x0-0x9ffff and 0x100000-0x7ffffff)."));
    }

    [Test]
    public void Command_line_page_beyond_the_end_of_ram_is_refused()
    {
        Assert.That(KernelError(Aout(0x7FF_F000, Pattern(32))), Is.EqualTo(
            "kernel.bin: the command-line page after the kernel would occupy 0x8000000-0x8000fff, but it runs past the end of RAM at 0x8000000; " +
            "the kernel and everything loaded after it must lie in RAM (0x0-0x9ffff and 0x100000-0x7ffffff)."));
    }

    [Test]
    public void Kernel_over_the_multiboot_information_area_is_refused()
    {
        Assert.That(KernelError(Aout(0x8000, Pattern(32), bssEnd: 0xA000)), Is.EqualTo(
            "kernel.bin: the kernel image (0x8000-0x9fff) would overlap 0x9000-0x9557, where the multiboot memory map and information structure " +
            "go (as on QEMU); load the kernel elsewhere, usually at or above 1 MiB."));
    }

    // ---------------------------------------------------------------- ELF

    [Test]
    public void Elf64_is_refused_with_qemus_reason()
    {
        Assert.That(KernelError(Elf64WithMultibootHeader(), "kernel64.elf"), Is.EqualTo(
            "kernel64.elf: a 64-bit ELF file (ELFCLASS64); multiboot loads 32-bit x86 ELF executables only (QEMU: \"Cannot load x86-64 image, " +
            "give a 32bit one.\"); link the kernel as ELF32 (EM_386), or give it the a.out kludge (flags bit 16) and its address fields."));
    }

    [Test]
    public void Elf32_for_x86_64_is_refused_with_qemus_reason()
    {
        byte[] file = Elf32(0x20_0000, [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40)], 0xC0, [(0x80, ElfText())], machine: 62);
        Assert.That(KernelError(file), Does.StartWith(
            "kernel.bin: an x86-64 ELF file (e_machine 62, EM_X86_64); multiboot loads 32-bit x86 ELF executables only (QEMU: \"Cannot load x86-64 image, give a 32bit one.\")"));
    }

    [Test]
    public void Elf_for_another_machine_is_refused()
    {
        byte[] file = Elf32(0x20_0000, [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40)], 0xC0, [(0x80, ElfText())], machine: 40);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: ELF e_machine is 40 (ARM), not 3 (EM_386); multiboot kernels are 32-bit x86 executables (QEMU: \"Error while loading elf kernel\")."));
    }

    [Test]
    public void Flat_image_without_the_aout_kludge_is_refused()
    {
        var file = new byte[64];
        Header(ElfFlags).AsSpan(0, 12).CopyTo(file.AsSpan(16));
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: not an ELF file, and its multiboot header (offset 0x10, flags 0x00000003) does not set the a.out kludge (flags bit 16); " +
            "a multiboot kernel is either an ELF32 executable or a flat image whose header gives header_addr, load_addr, load_end_addr, " +
            "bss_end_addr and entry_addr."));
    }

    [Test]
    public void Elf_program_header_table_beyond_the_end_of_the_file_is_truncated()
    {
        // Three program headers claimed (52 + 96 bytes), file cut at 0x80 with the multiboot header at 0x44.
        var file = Elf32(0x20_0000, [new Segment(0, 0x20_0000, 0x20_0000, 0x80, 0x80), new Segment(0, 0, 0, 0, 0), new Segment(0, 0, 0, 0, 0)], 0x80, []);
        Header(ElfFlags).AsSpan(0, 12).CopyTo(file.AsSpan(0x74));
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: truncated ELF file: its program or section header table extends beyond the end of the 128-byte file; the ELF headers " +
            "must lie inside the file (QEMU: \"Error while loading elf kernel\")."));
    }

    [Test]
    public void Elf_segment_data_beyond_the_end_of_the_file_is_truncated()
    {
        byte[] file = Elf32(0x20_000C, [new Segment(0x80, 0x20_0000, 0x20_0000, 0x1000, 0x1000)], 0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: truncated ELF file: program header 0 (PT_LOAD) takes 0x1000 bytes from file offset 0x80, beyond the end of the 192-byte " +
            "file; every PT_LOAD segment's p_offset + p_filesz must lie inside the file."));
    }

    [Test]
    public void Elf_segment_in_the_hole_is_refused()
    {
        byte[] file = Elf32(0x20_000C,
            [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40), new Segment(0xC0, 0xB_8000, 0xB_8000, 0, 0x1000, Flags: 6)],
            0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: ELF program header 1 (p_paddr 0xb8000, p_memsz 0x1000) would occupy 0xb8000-0xb8fff, but it overlaps the 640 KiB-1 MiB " +
            "hole (0xa0000-0xfffff: video memory and ROMs); the kernel and everything loaded after it must lie in RAM (0x0-0x9ffff and 0x100000-0x7ffffff)."));
    }

    [Test]
    public void Elf_segment_beyond_ram_is_refused()
    {
        byte[] file = Elf32(0x20_000C,
            [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40), new Segment(0xC0, 0x900_0000, 0x900_0000, 0, 0x1000, Flags: 6)],
            0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: ELF program header 1 (p_paddr 0x9000000, p_memsz 0x1000) would occupy 0x9000000-0x9000fff, but it runs past the end of " +
            "RAM at 0x8000000; the kernel and everything loaded after it must lie in RAM (0x0-0x9ffff and 0x100000-0x7ffffff)."));
    }

    [Test]
    public void Elf_entry_outside_the_loaded_image_is_refused()
    {
        byte[] file = Elf32(0x30_0000, [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x1000)], 0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: the entry point 0x300000 is outside the loaded image; e_entry must point into the file bytes of a PT_LOAD segment " +
            "(loaded at 0x200000-0x20003f)."));
    }

    [Test]
    public void Elf_virtual_entry_that_cannot_be_translated_is_refused()
    {
        // Not executable, so QEMU does not translate e_entry: it stays virtual.
        byte[] file = Elf32(0xC020_0010, [new Segment(0x80, 0xC020_0000, 0x20_0000, 0x40, 0x40, Flags: 4)], 0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Does.StartWith("kernel.bin: the entry point 0xc0200010 is outside the loaded image;"));
    }

    [Test]
    public void Elf_without_loadable_segments_is_refused()
    {
        byte[] file = Elf32(0x20_0000, [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40, Type: 4)], 0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: the ELF file has no PT_LOAD program header, so there is nothing to load; a multiboot ELF kernel needs at least one loadable segment."));
    }

    [Test]
    public void Overlapping_elf_segments_are_refused()
    {
        byte[] file = Elf32(0x20_000C,
            [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40), new Segment(0x80, 0x20_0020, 0x20_0020, 0x40, 0x40)],
            0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: ELF program header 0 (p_paddr 0x200000, p_memsz 0x40) and ELF program header 1 (p_paddr 0x200020, p_memsz 0x40) overlap " +
            "in physical memory; PT_LOAD segments must not overlap (QEMU: \"rom: requested regions overlap\")."));
    }

    [Test]
    public void Elf_with_filesz_above_memsz_is_refused()
    {
        byte[] file = Elf32(0x20_000C, [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x20)], 0xC0, [(0x80, ElfText())]);
        Assert.That(KernelError(file), Is.EqualTo(
            "kernel.bin: malformed ELF program header 0: p_filesz 0x40 exceeds p_memsz 0x20; a PT_LOAD segment's file bytes must fit in its memory size."));
    }
}
