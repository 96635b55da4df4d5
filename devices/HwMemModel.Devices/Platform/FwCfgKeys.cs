namespace HwMemModel.Devices.Platform;

/// <summary>
/// Selector keys and constants of QEMU's firmware configuration interface, with QEMU's numbers
/// (include/standard-headers/linux/qemu_fw_cfg.h; the x86 keys from hw/i386/fw_cfg.h).
/// </summary>
public static class FwCfgKeys
{
    /// <summary>FW_CFG_SIGNATURE: the four bytes "QEMU".</summary>
    public const ushort Signature = 0x00;
    /// <summary>FW_CFG_ID: 32-bit little-endian feature bits (<see cref="VersionTraditional"/>, <see cref="VersionDma"/>).</summary>
    public const ushort Id = 0x01;
    /// <summary>FW_CFG_UUID: the 16-byte machine UUID (all zeros unless given).</summary>
    public const ushort Uuid = 0x02;
    /// <summary>FW_CFG_RAM_SIZE: 64-bit little-endian RAM size in bytes.</summary>
    public const ushort RamSize = 0x03;
    /// <summary>FW_CFG_NOGRAPHIC: 16-bit little-endian, 1 with <c>-nographic</c>.</summary>
    public const ushort NoGraphic = 0x04;
    /// <summary>FW_CFG_NB_CPUS: 16-bit little-endian number of CPUs started at boot.</summary>
    public const ushort NbCpus = 0x05;
    /// <summary>FW_CFG_MACHINE_ID.</summary>
    public const ushort MachineId = 0x06;
    /// <summary>FW_CFG_KERNEL_ADDR (set by QEMU's <c>-kernel</c> only).</summary>
    public const ushort KernelAddr = 0x07;
    /// <summary>FW_CFG_KERNEL_SIZE (set by QEMU's <c>-kernel</c> only).</summary>
    public const ushort KernelSize = 0x08;
    /// <summary>FW_CFG_KERNEL_CMDLINE.</summary>
    public const ushort KernelCmdline = 0x09;
    /// <summary>FW_CFG_INITRD_ADDR.</summary>
    public const ushort InitrdAddr = 0x0A;
    /// <summary>FW_CFG_INITRD_SIZE.</summary>
    public const ushort InitrdSize = 0x0B;
    /// <summary>FW_CFG_BOOT_DEVICE.</summary>
    public const ushort BootDevice = 0x0C;
    /// <summary>FW_CFG_NUMA: 64-bit little-endian words (node count, node of each APIC ID, memory of each node).</summary>
    public const ushort Numa = 0x0D;
    /// <summary>FW_CFG_BOOT_MENU: 16-bit little-endian, 1 with <c>-boot menu=on</c>.</summary>
    public const ushort BootMenu = 0x0E;
    /// <summary>FW_CFG_MAX_CPUS: 16-bit little-endian; on x86 the APIC ID limit (the CPU count for a flat topology).</summary>
    public const ushort MaxCpus = 0x0F;
    /// <summary>FW_CFG_KERNEL_ENTRY.</summary>
    public const ushort KernelEntry = 0x10;
    /// <summary>FW_CFG_KERNEL_DATA.</summary>
    public const ushort KernelData = 0x11;
    /// <summary>FW_CFG_INITRD_DATA.</summary>
    public const ushort InitrdData = 0x12;
    /// <summary>FW_CFG_CMDLINE_ADDR.</summary>
    public const ushort CmdlineAddr = 0x13;
    /// <summary>FW_CFG_CMDLINE_SIZE.</summary>
    public const ushort CmdlineSize = 0x14;
    /// <summary>FW_CFG_CMDLINE_DATA.</summary>
    public const ushort CmdlineData = 0x15;
    /// <summary>FW_CFG_SETUP_ADDR.</summary>
    public const ushort SetupAddr = 0x16;
    /// <summary>FW_CFG_SETUP_SIZE.</summary>
    public const ushort SetupSize = 0x17;
    /// <summary>FW_CFG_SETUP_DATA.</summary>
    public const ushort SetupData = 0x18;
    /// <summary>FW_CFG_FILE_DIR: the file directory, big-endian (see <see cref="FwCfg"/>).</summary>
    public const ushort FileDir = 0x19;
    /// <summary>FW_CFG_FILE_FIRST: the key of the first file; files take consecutive keys in name order.</summary>
    public const ushort FileFirst = 0x20;
    /// <summary>The default number of file slots (QEMU's FW_CFG_FILE_SLOTS_DFLT): keys 0x20-0x3F.</summary>
    public const int FileSlots = 0x20;
    /// <summary>FW_CFG_WRITE_CHANNEL: a bit of the selector the entry lookup ignores.</summary>
    public const ushort WriteChannel = 0x4000;
    /// <summary>FW_CFG_ARCH_LOCAL: selects the architecture's own entries.</summary>
    public const ushort ArchLocal = 0x8000;
    /// <summary>FW_CFG_ENTRY_MASK: the bits of the selector that index an entry.</summary>
    public const ushort EntryMask = 0x3FFF;
    /// <summary>FW_CFG_INVALID: the current entry after selecting a key at or beyond the last slot.</summary>
    public const ushort Invalid = 0xFFFF;
    /// <summary>FW_CFG_MAX_FILE_PATH: bytes of a directory entry's name, the terminating NUL included.</summary>
    public const int MaxFilePath = 56;

    /// <summary>FW_CFG_VERSION: the traditional (port or MMIO) interface.</summary>
    public const uint VersionTraditional = 0x01;
    /// <summary>FW_CFG_VERSION_DMA: the DMA interface.</summary>
    public const uint VersionDma = 0x02;

    /// <summary>FW_CFG_ACPI_TABLES (x86).</summary>
    public const ushort AcpiTables = ArchLocal + 0;
    /// <summary>FW_CFG_SMBIOS_ENTRIES (x86).</summary>
    public const ushort SmbiosEntries = ArchLocal + 1;
    /// <summary>FW_CFG_IRQ0_OVERRIDE (x86): 32-bit little-endian 1.</summary>
    public const ushort Irq0Override = ArchLocal + 2;
    /// <summary>FW_CFG_E820_TABLE (x86): the reserved-range table (a count and 16 entries).</summary>
    public const ushort E820Table = ArchLocal + 3;
    /// <summary>FW_CFG_HPET (x86): <c>struct hpet_fw_config</c>.</summary>
    public const ushort Hpet = ArchLocal + 4;

    /// <summary>FW_CFG_DMA_CTL_ERROR.</summary>
    public const uint DmaControlError = 0x01;
    /// <summary>FW_CFG_DMA_CTL_READ.</summary>
    public const uint DmaControlRead = 0x02;
    /// <summary>FW_CFG_DMA_CTL_SKIP.</summary>
    public const uint DmaControlSkip = 0x04;
    /// <summary>FW_CFG_DMA_CTL_SELECT (the key in bits 31:16).</summary>
    public const uint DmaControlSelect = 0x08;
    /// <summary>FW_CFG_DMA_CTL_WRITE.</summary>
    public const uint DmaControlWrite = 0x10;
    /// <summary>FW_CFG_DMA_SIGNATURE: the DMA register reads "QEMU CFG" (big-endian).</summary>
    public const ulong DmaSignature = 0x5145_4D55_2043_4647;
}
