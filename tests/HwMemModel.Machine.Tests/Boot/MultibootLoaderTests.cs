using HwMemModel.Bus;
using HwMemModel.Machine.Boot;
using static HwMemModel.Machine.Tests.Boot.TestImages;

namespace HwMemModel.Machine.Tests.Boot;

// Expected values below were observed on qemu-system-x86_64 7.2 (-machine pc,accel=tcg -cpu max -m 128M) with a probe
// kernel that dumps its registers, the multiboot information structure, the memory map and the strings over COM1.
public sealed class MultibootLoaderTests
{
    private const ulong Ram = DefaultMachine.DefaultRamSize;

    [Test]
    public void Aout_kludge_image_is_copied_to_load_addr_and_bss_is_zeroed()
    {
        var bus = DefaultMachine.CreateBus();
        Poison(bus, 0x10_0000, 0x3000);
        byte[] code = Pattern(64);
        byte[] file = Aout(0x10_0000, code, bssEnd: 0x10_2000);

        MultibootLoadResult result = MultibootLoader.Load(bus, file, "kernel.bin", null, Ram);

        Assert.That(Bytes(bus, 0x10_0000, file.Length), Is.EqualTo(file), "the whole file from offset 0 (header_addr = load_addr)");
        Assert.That(Bytes(bus, 0x10_0000 + (ulong)file.Length, 0x2000 - file.Length), Is.All.Zero, "bss up to bss_end_addr");
        Assert.That(result.Kind, Is.EqualTo(MultibootImageKind.AoutKludge));
        Assert.That(result.KernelStart, Is.EqualTo(0x10_0000u));
        Assert.That(result.KernelEnd, Is.EqualTo(0x10_2000UL));
        Assert.That(result.Entry, Is.EqualTo(0x10_0020u));
        Assert.That(result.Warnings, Is.Empty);
    }

    [Test]
    public void Boot_state_is_qemus_multiboot_hand_off()
    {
        var bus = DefaultMachine.CreateBus();
        BootState state = MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(16)), "kernel.bin", null, Ram).BootState;

        Assert.That(state.Mode, Is.EqualTo(BootMode.Protected32));
        Assert.That(state.Eax, Is.EqualTo(0x2BAD_B002u));
        Assert.That(state.Ebx, Is.EqualTo(0x9500u));
        Assert.That(state.Eip, Is.EqualTo(0x10_0020u));
        Assert.That(state.Ecx, Is.EqualTo(0x10_0020u), "QEMU's option ROM jumps through ECX");
        Assert.That(state.Esp, Is.EqualTo(0x6F08u));
        Assert.That(state.Eflags, Is.EqualTo(0x6u));
        Assert.That(state.Eflags & (1u << 9), Is.Zero, "IF clear");
        Assert.That(state.Cr0, Is.EqualTo(0x11u), "PE and ET, paging off");
        Assert.That(state.Cs, Is.EqualTo(new SegmentState(0x08, 0, 0xFFFF_FFFF, 0xC09A)));
        foreach (SegmentState? data in new[] { state.Ds, state.Es, state.Fs, state.Gs, state.Ss })
        {
            Assert.That(data, Is.EqualTo(new SegmentState(0x10, 0, 0xFFFF_FFFF, 0xC093)));
        }

        Assert.That(state.Gdtr, Is.EqualTo(new DescriptorTableState(0xC02B8, 0x27)));
        Assert.That(state.Idtr, Is.EqualTo(new DescriptorTableState(0, 0x3FF)));
        Assert.That(state.A20Enabled, Is.True);
    }

    [Test]
    public void Information_structure_at_ebx_matches_qemu_for_128_MiB()
    {
        var bus = DefaultMachine.CreateBus();
        MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(64), bssEnd: 0x10_2000), "kernel.bin", null, Ram);

        const ulong Mbi = 0x9500;
        Assert.That(Dword(bus, Mbi + 0), Is.EqualTo(0x24Fu), "flags: mem, boot_device, cmdline, mods, mmap, boot_loader_name");
        Assert.That(Dword(bus, Mbi + 4), Is.EqualTo(639u), "mem_lower: SeaBIOS's INT 12h leaves 1 KiB for the EBDA");
        Assert.That(Dword(bus, Mbi + 8), Is.EqualTo(129_920u), "mem_upper: 1 MiB up to 0x7FE0000, where SeaBIOS reserves 128 KiB");
        Assert.That(Dword(bus, Mbi + 12), Is.EqualTo(0x8000_FFFFu), "boot_device");
        Assert.That(Dword(bus, Mbi + 16), Is.EqualTo(0x10_2000u), "cmdline: first byte after the page-aligned kernel");
        Assert.That(Dword(bus, Mbi + 20), Is.Zero, "mods_count");
        Assert.That(Dword(bus, Mbi + 24), Is.EqualTo(0x10_2000u), "mods_addr");
        Assert.That(Dword(bus, Mbi + 44), Is.EqualTo(168u), "mmap_length: 7 entries of 24 bytes");
        Assert.That(Dword(bus, Mbi + 48), Is.EqualTo(0x9000u), "mmap_addr");
        Assert.That(Dword(bus, Mbi + 64), Is.EqualTo(0x10_200Cu), "boot_loader_name after the reserved command-line bytes");
        Assert.That(CString(bus, 0x10_200C), Is.EqualTo("qemu"));
        foreach (int unused in new[] { 28, 32, 36, 40, 52, 56, 60, 68, 72, 76, 80, 84 })
        {
            Assert.That(Dword(bus, Mbi + (ulong)unused), Is.Zero, $"offset {unused}");
        }
    }

    [Test]
    public void Memory_map_entries_match_qemus_e820_for_128_MiB()
    {
        var bus = DefaultMachine.CreateBus();
        MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(16)), "kernel.bin", null, Ram);

        var expected = new (ulong Base, ulong Length, uint Type)[]
        {
            (0x0, 0x9_FC00, 1),
            (0x9_FC00, 0x400, 2),
            (0xF_0000, 0x1_0000, 2),
            (0x10_0000, 0x7EE_0000, 1),
            (0x7FE_0000, 0x2_0000, 2),
            (0xFFFC_0000, 0x4_0000, 2),
            (0xFD_0000_0000, 0x3_0000_0000, 2),
        };
        var actual = new List<(ulong, ulong, uint)>();
        for (ulong at = 0x9000; at < 0x9000 + Dword(bus, 0x9500 + 44); at += 24)
        {
            Assert.That(Dword(bus, at), Is.EqualTo(20u), $"size field of the entry at 0x{at:x}");
            actual.Add((Qword(bus, at + 4), Qword(bus, at + 12), Dword(bus, at + 20)));
        }

        Assert.That(actual, Is.EqualTo(expected));
    }

    [TestCase(2UL << 20, 0x380u)]
    [TestCase(16UL << 20, 0x3B80u)]
    [TestCase(256UL << 20, 0x3_FB80u)]
    [TestCase(3UL << 30, 0x2F_FB80u)]
    public void Mem_upper_matches_qemu_for_other_ram_sizes(ulong ramSize, uint memUpper)
    {
        var bus = DefaultMachine.CreateBus(ramSize);
        MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(16)), "kernel.bin", null, ramSize);
        Assert.That(Dword(bus, 0x9500 + 8), Is.EqualTo(memUpper));
    }

    [Test]
    public void Command_line_without_append_is_the_path_and_a_space()
    {
        var bus = DefaultMachine.CreateBus();
        MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(16)), "kernel.bin", null, Ram);
        Assert.That(CString(bus, Dword(bus, 0x9500 + 16)), Is.EqualTo("kernel.bin "));
    }

    [Test]
    public void Command_line_is_the_path_a_space_and_the_arguments()
    {
        var bus = DefaultMachine.CreateBus();
        MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(16)), "/tmp/k/kernel.bin", "console=ttyS0  debug", Ram);
        uint cmdline = Dword(bus, 0x9500 + 16);
        Assert.That(CString(bus, cmdline), Is.EqualTo("/tmp/k/kernel.bin console=ttyS0  debug"));
        Assert.That(Dword(bus, 0x9500 + 64), Is.EqualTo(cmdline + (uint)"/tmp/k/kernel.bin".Length + 1 + (uint)"console=ttyS0  debug".Length + 1));
    }

    [Test]
    public void Aout_header_deeper_in_the_file_shifts_the_text_offset()
    {
        // Header at file offset 0x40 with header_addr = load_addr + 0x10: the image starts at file offset 0x30.
        var file = new byte[0x100];
        Pattern(0x100).CopyTo(file, 0);
        Header(AoutFlags, headerAddr: 0x20_0010, loadAddr: 0x20_0000, loadEnd: 0x20_0080, bssEnd: 0x20_0100, entry: 0x20_0040).CopyTo(file, 0x40);
        var bus = DefaultMachine.CreateBus();
        Poison(bus, 0x20_0000, 0x200);

        MultibootLoadResult result = MultibootLoader.Load(bus, file, "k", null, Ram);

        Assert.That(Bytes(bus, 0x20_0000, 0x80), Is.EqualTo(file.AsSpan(0x30, 0x80).ToArray()));
        Assert.That(Bytes(bus, 0x20_0080, 0x80), Is.All.Zero, "bss from load_end_addr to bss_end_addr");
        Assert.That(result.BootState.Eip, Is.EqualTo(0x20_0040u));
        Assert.That(Dword(bus, 0x9500 + 16), Is.EqualTo(0x20_1000u));
    }

    [Test]
    public void Aout_load_end_addr_limits_what_is_copied()
    {
        byte[] file = Aout(0x10_0000, Pattern(0x60), loadEnd: 0x10_0040);
        var bus = DefaultMachine.CreateBus();
        Poison(bus, 0x10_0000, 0x100);

        MultibootLoadResult result = MultibootLoader.Load(bus, file, "k", null, Ram);

        Assert.That(Bytes(bus, 0x10_0000, 0x40), Is.EqualTo(file.AsSpan(0, 0x40).ToArray()));
        Assert.That(Bytes(bus, 0x10_0040, 0xC0), Is.All.Zero, "the rest of the kernel's page is QEMU's zeroed buffer");
        Assert.That(result.KernelEnd, Is.EqualTo(0x10_0040UL));
    }

    [Test]
    public void Elf32_segments_go_to_their_physical_addresses_with_bss_zeroed()
    {
        byte[] text = new byte[0x40];
        Header(ElfFlags).AsSpan(0, 12).CopyTo(text);
        Pattern(0x34, 9).CopyTo(text, 12);
        byte[] data = Pattern(0x10, 77);
        byte[] file = Elf32(
            entry: 0x20_000C,
            [new Segment(0x80, 0x20_0000, 0x20_0000, 0x40, 0x40, Flags: 5), new Segment(0x100, 0x20_1000, 0x20_1000, 0x10, 0x1000, Flags: 6)],
            length: 0x110,
            [(0x80, text), (0x100, data)]);
        var bus = DefaultMachine.CreateBus();
        Poison(bus, 0x20_0000, 0x3000);

        MultibootLoadResult result = MultibootLoader.Load(bus, file, "kernel.elf", "a=1", Ram);

        Assert.That(result.Kind, Is.EqualTo(MultibootImageKind.Elf32));
        Assert.That(Bytes(bus, 0x20_0000, 0x40), Is.EqualTo(text));
        Assert.That(Bytes(bus, 0x20_0040, 0x1000 - 0x40), Is.All.Zero, "gap between the segments (QEMU copies its whole buffer)");
        Assert.That(Bytes(bus, 0x20_1000, 0x10), Is.EqualTo(data));
        Assert.That(Bytes(bus, 0x20_1010, 0x1000 - 0x10), Is.All.Zero, "bss: p_memsz beyond p_filesz");
        Assert.That(result.BootState.Eip, Is.EqualTo(0x20_000Cu));
        Assert.That(result.KernelStart, Is.EqualTo(0x20_0000u));
        Assert.That(result.KernelEnd, Is.EqualTo(0x20_2000UL));
        Assert.That(Dword(bus, 0x9500 + 16), Is.EqualTo(0x20_2000u), "cmdline after the page-aligned span of the segments");
        Assert.That(CString(bus, 0x20_2000), Is.EqualTo("kernel.elf a=1"));
    }

    [Test]
    public void Elf32_virtual_entry_in_an_executable_segment_is_translated_to_physical()
    {
        byte[] text = new byte[0x40];
        Header(ElfFlags).AsSpan(0, 12).CopyTo(text);
        byte[] file = Elf32(
            entry: 0xC020_0010,
            [new Segment(0x80, 0xC020_0000, 0x20_0000, 0x40, 0x40, Flags: 5)],
            length: 0xC0,
            [(0x80, text)]);
        var bus = DefaultMachine.CreateBus();

        MultibootLoadResult result = MultibootLoader.Load(bus, file, "higher-half.elf", null, Ram);

        Assert.That(result.BootState.Eip, Is.EqualTo(0x20_0010u));
        Assert.That(Bytes(bus, 0x20_0000, 0x40), Is.EqualTo(text), "loaded at p_paddr, not p_vaddr");
    }

    [Test]
    public void Elf32_zero_fill_that_would_overlap_another_segment_is_dropped_as_qemu_does()
    {
        byte[] text = new byte[0x20];
        Header(ElfFlags).AsSpan(0, 12).CopyTo(text);
        byte[] data = Pattern(0x10, 33);
        byte[] file = Elf32(
            entry: 0x20_000C,
            [new Segment(0x80, 0x20_0000, 0x20_0000, 0x20, 0x2000, Flags: 5), new Segment(0xA0, 0x20_1000, 0x20_1000, 0x10, 0x10, Flags: 6)],
            length: 0xB0,
            [(0x80, text), (0xA0, data)]);
        var bus = DefaultMachine.CreateBus();

        MultibootLoadResult result = MultibootLoader.Load(bus, file, "k.elf", null, Ram);

        Assert.That(Bytes(bus, 0x20_1000, 0x10), Is.EqualTo(data), "the second segment is not zeroed by the first one's bss");
        Assert.That(result.KernelEnd, Is.EqualTo(0x20_1010UL));
    }

    [Test]
    public void Modules_are_placed_as_qemu_places_initrd_items()
    {
        // Observed on QEMU 7.2: -kernel kernel.bin -append x -initrd "mod1.bin arg,mod2" with a 0x2004-byte kernel at 1 MiB.
        byte[] mod1 = Pattern(5000, 3);
        byte[] mod2 = Pattern(10, 200);
        var bus = DefaultMachine.CreateBus();

        MultibootLoadResult result = MultibootLoader.Load(
            bus, Aout(0x10_0000, Pattern(0x100), bssEnd: 0x10_2004), "kernel.bin", "x", Ram,
            [new MultibootModule("mod1.bin arg", mod1), new MultibootModule("mod2", mod2)]);

        Assert.That(Dword(bus, 0x9500 + 16), Is.EqualTo(0x10_3032u), "cmdline");
        Assert.That(Dword(bus, 0x9500 + 20), Is.EqualTo(2u), "mods_count");
        Assert.That(Dword(bus, 0x9500 + 24), Is.EqualTo(0x10_3000u), "mods_addr");
        Assert.That(Dword(bus, 0x9500 + 64), Is.EqualTo(0x10_303Fu), "boot_loader_name");
        Assert.That(new[] { Dword(bus, 0x10_3000), Dword(bus, 0x10_3004), Dword(bus, 0x10_3008), Dword(bus, 0x10_300C) },
            Is.EqualTo(new[] { 0x10_4000u, 0x10_5388u, 0x10_3020u, 0u }));
        Assert.That(new[] { Dword(bus, 0x10_3010), Dword(bus, 0x10_3014), Dword(bus, 0x10_3018), Dword(bus, 0x10_301C) },
            Is.EqualTo(new[] { 0x10_6000u, 0x10_600Au, 0x10_302Du, 0u }));
        Assert.That(CString(bus, 0x10_3020), Is.EqualTo("mod1.bin arg"));
        Assert.That(CString(bus, 0x10_302D), Is.EqualTo("mod2"));
        Assert.That(CString(bus, 0x10_3032), Is.EqualTo("kernel.bin x"));
        Assert.That(CString(bus, 0x10_303F), Is.EqualTo("qemu"));
        Assert.That(Bytes(bus, 0x10_4000, mod1.Length), Is.EqualTo(mod1));
        Assert.That(Bytes(bus, 0x10_6000, mod2.Length), Is.EqualTo(mod2));
        Assert.That(result.Modules, Is.EqualTo(new[] { new LoadedModule(0x10_4000, 0x10_5388, 0x10_3020), new LoadedModule(0x10_6000, 0x10_600A, 0x10_302D) }));
        Assert.That(result.BufferEnd, Is.EqualTo(0x10_7000UL));
    }

    [Test]
    public void Video_mode_request_boots_with_a_warning_as_on_qemu()
    {
        var bus = DefaultMachine.CreateBus();
        MultibootLoadResult result = MultibootLoader.Load(bus, Aout(0x10_0000, Pattern(16), flags: AoutFlags | 4), "vga.bin", null, Ram);
        Assert.That(result.Warnings, Has.Count.EqualTo(1));
        Assert.That(result.Warnings[0], Does.StartWith("vga.bin: the multiboot header requests a video mode (flags bit 2)"));
        Assert.That(Dword(bus, 0x9500), Is.EqualTo(0x24Fu), "no VBE or framebuffer flags");
    }

    [Test]
    public void Header_at_the_last_offset_qemu_scans_is_found()
    {
        var file = new byte[8192];
        Header(AoutFlags, headerAddr: 0x10_0000 + 8140, loadAddr: 0x10_0000, entry: 0x10_0000).CopyTo(file, 8140);
        var bus = DefaultMachine.CreateBus();
        Assert.That(MultibootLoader.Load(bus, file, "k", null, Ram).Header.Offset, Is.EqualTo(8140));
    }

    [Test]
    public void Kernel_may_end_exactly_where_its_command_line_page_still_fits_in_ram()
    {
        const uint Load = 0x7FF_E000; // kernel page, then the command-line page ending at 128 MiB
        var bus = DefaultMachine.CreateBus();
        MultibootLoadResult result = MultibootLoader.Load(bus, Aout(Load, Pattern(16)), "k", null, Ram);
        Assert.That(result.BufferEnd, Is.EqualTo(Ram));
    }
}
