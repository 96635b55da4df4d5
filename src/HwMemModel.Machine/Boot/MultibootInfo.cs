using HwMemModel.Bus;

namespace HwMemModel.Machine.Boot;

/// <summary>
/// The multiboot information structure (specification 0.6.96 §3.3) and memory map as QEMU 7.2 hands them to a
/// kernel on the <c>pc</c> machine with its default SeaBIOS. QEMU builds the structure in hw/i386/multiboot.c and its
/// option ROM (pc-bios/optionrom/multiboot.S) completes it in real mode before entering the kernel:
/// <list type="bullet">
/// <item>the memory map at 0x9000 and the 88-byte structure at 0x9500 (<c>MULTIBOOT_STRUCT_ADDR</c> + 0x500);</item>
/// <item>mem_lower from INT 12h: 639 KiB, because SeaBIOS keeps a 1 KiB EBDA at 0x9FC00;</item>
/// <item>the memory map from INT 15h E820, 20-byte entries each preceded by its size;</item>
/// <item>mem_upper: the usable RAM contiguous from 1 MiB, in KiB, found in that map;</item>
/// <item>flags 0x24F: mem (0), boot_device (1), cmdline (2), mods (3), mmap (6), boot_loader_name (9);</item>
/// <item>boot_device 0x8000FFFF and boot_loader_name "qemu".</item>
/// </list>
/// Observed with a probe kernel on qemu-system-x86_64 7.2 <c>-machine pc,accel=tcg -cpu max</c> for -m 2M to 3G.
/// </summary>
public static class MultibootInfo
{
    /// <summary>Physical address of the memory map (QEMU's <c>ADDR_E820_MAP</c>).</summary>
    public const uint MemoryMapAddress = 0x9000;

    /// <summary>Physical address of the information structure (QEMU's <c>ADDR_MBI</c>); EBX holds it.</summary>
    public const uint InfoAddress = 0x9500;

    /// <summary>Bytes QEMU reserves for the memory map (0x9000-0x94FF).</summary>
    public const int MemoryMapCapacity = 0x500;

    /// <summary>Size of the information structure QEMU writes (up to and including the VBE fields).</summary>
    public const int InfoSize = 88;

    /// <summary>Size of one multiboot module descriptor (mod_start, mod_end, string, reserved).</summary>
    public const int ModuleDescriptorSize = 16;

    /// <summary>Size of one memory-map entry after its size field: base (8), length (8), type (4).</summary>
    public const int MemoryMapEntrySize = 20;

    /// <summary>Bytes one memory-map entry occupies, its size field included.</summary>
    public const int MemoryMapEntryStride = 4 + MemoryMapEntrySize;

    /// <summary>flags bit 0: mem_lower and mem_upper are valid.</summary>
    public const uint FlagMemory = 1u << 0;
    /// <summary>flags bit 1: boot_device is valid.</summary>
    public const uint FlagBootDevice = 1u << 1;
    /// <summary>flags bit 2: cmdline is valid.</summary>
    public const uint FlagCommandLine = 1u << 2;
    /// <summary>flags bit 3: mods_count and mods_addr are valid.</summary>
    public const uint FlagModules = 1u << 3;
    /// <summary>flags bit 6: mmap_length and mmap_addr are valid.</summary>
    public const uint FlagMemoryMap = 1u << 6;
    /// <summary>flags bit 9: boot_loader_name is valid.</summary>
    public const uint FlagBootLoaderName = 1u << 9;

    /// <summary>The flags QEMU sets: 0x24F.</summary>
    public const uint Flags = FlagMemory | FlagBootDevice | FlagCommandLine | FlagModules | FlagMemoryMap | FlagBootLoaderName;

    /// <summary>boot_device: BIOS drive 0x80, no partition (QEMU: "XXX: use the -boot switch?").</summary>
    public const uint BootDevice = 0x8000_FFFF;

    /// <summary>The boot loader name QEMU reports.</summary>
    public const string BootLoaderName = "qemu";

    /// <summary>mem_lower in KiB: SeaBIOS's INT 12h answer, 639 (640 KiB minus the 1 KiB EBDA at 0x9FC00).</summary>
    public const uint MemLowerKiB = 639;

    /// <summary>Start of the EBDA SeaBIOS reserves below 640 KiB.</summary>
    public const ulong EbdaStart = 0x9_FC00;

    /// <summary>SeaBIOS reserves the top 128 KiB of RAM below 4 GiB for its own tables.</summary>
    public const ulong SeaBiosHighReserve = 128 * 1024;

    /// <summary>Start of the reserved range SeaBIOS reports for its 256 KiB BIOS image (bios-256k.bin).</summary>
    public const ulong BiosRomStart = 0xFFFC_0000;

    /// <summary>
    /// The AMD HyperTransport hole QEMU 7.2 reports (hw/i386/pc.c) for an AMD CPU with at least 40 physical address
    /// bits; TCG's <c>-cpu max</c> is one (vendor AuthenticAMD, 40 bits).
    /// </summary>
    public const ulong AmdHtStart = 0xFD_0000_0000;

    /// <summary>Size of the AMD HyperTransport hole: 12 GiB, up to 1 TiB.</summary>
    public const ulong AmdHtSize = 0x3_0000_0000;

    /// <summary>The largest RAM size the map models: the <c>pc</c> machine keeps RAM below 3.5 GiB entirely below 4 GiB.</summary>
    public const ulong MaxRamSize = 0xE000_0000;

    /// <summary>
    /// The memory map a multiboot kernel gets from QEMU 7.2 with SeaBIOS for <paramref name="ramSize"/> bytes of RAM,
    /// in the order INT 15h E820 returns it. For 128 MiB:
    /// 0-0x9FBFF usable, 0x9FC00-0x9FFFF reserved (EBDA), 0xF0000-0xFFFFF reserved (BIOS), 0x100000-0x7FDFFFF usable,
    /// 0x7FE0000-0x7FFFFFF reserved (SeaBIOS tables), 0xFFFC0000-0xFFFFFFFF reserved (BIOS ROM),
    /// 0xFD00000000-0xFFFFFFFFFF reserved (AMD HyperTransport).
    /// </summary>
    /// <param name="ramSize">RAM size: a multiple of 1 MiB, at least 2 MiB and below 3.5 GiB.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ramSize"/> is outside the modelled range.</exception>
    public static IReadOnlyList<E820Entry> MemoryMap(ulong ramSize)
    {
        if (ramSize < (2UL << 20) || ramSize >= MaxRamSize || (ramSize & 0xFFFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ramSize), ramSize, "The multiboot memory map is modelled for RAM sizes that are multiples of 1 MiB from 2 MiB up to (not including) 3.5 GiB.");
        }

        return
        [
            new E820Entry(0, EbdaStart, E820Type.Usable),
            new E820Entry(EbdaStart, 0xA_0000 - EbdaStart, E820Type.Reserved),
            new E820Entry(0xF_0000, 0x1_0000, E820Type.Reserved),
            new E820Entry(0x10_0000, ramSize - SeaBiosHighReserve - 0x10_0000, E820Type.Usable),
            new E820Entry(ramSize - SeaBiosHighReserve, SeaBiosHighReserve, E820Type.Reserved),
            new E820Entry(BiosRomStart, 0x1_0000_0000 - BiosRomStart, E820Type.Reserved),
            new E820Entry(AmdHtStart, AmdHtSize, E820Type.Reserved),
        ];
    }

    /// <summary>
    /// mem_upper as QEMU's option ROM computes it: starting at 1 MiB, repeatedly extend through any usable entry
    /// below 4 GiB that contains the current end (the map need not be sorted); the result is the extension in KiB.
    /// </summary>
    /// <param name="map">The memory map.</param>
    public static uint MemUpperKiB(IReadOnlyList<E820Entry> map)
    {
        ArgumentNullException.ThrowIfNull(map);
        ulong end = 0x10_0000;
        bool extended;
        do
        {
            extended = false;
            foreach (E820Entry e in map)
            {
                if (e.Type == E820Type.Usable && (e.Start >> 32) == 0 && e.Start <= end && end < e.Start + e.Size)
                {
                    end = e.Start + e.Size;
                    extended = true;
                }
            }
        }
        while (extended);

        return (uint)((end - 0x10_0000) >> 10);
    }
}
