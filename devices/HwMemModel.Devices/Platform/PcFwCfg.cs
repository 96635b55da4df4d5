using System.Buffers.Binary;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Platform;

/// <summary>The HPET a machine reports in fw_cfg's HPET item (QEMU's <c>struct hpet_fw_entry</c>).</summary>
/// <param name="EventTimerBlockId">The low 32 bits of the HPET's capabilities register (0x8086A201 for QEMU's 3 timers).</param>
/// <param name="Address">The physical base of its registers.</param>
public readonly record struct FwCfgHpet(uint EventTimerBlockId, ulong Address)
{
    /// <summary>The HPET of the default machine: 3 timers at 0xFED00000.</summary>
    public static FwCfgHpet Default => new(0x8086_A201, PcPlatform.HpetBase);

    /// <summary>The block ID QEMU's hpet.c reports for <paramref name="timers"/> comparators: 0x8086A001 | (timers - 1) &lt;&lt; 8.</summary>
    public static uint BlockIdFor(int timers) => 0x8086_A001u | ((uint)(timers - 1) << 8);
}

/// <summary>
/// The fw_cfg contents of QEMU 7.2's <c>pc</c> machine that the model can reproduce (hw/i386/fw_cfg.c
/// fw_cfg_arch_create, hw/i386/pc.c, hw/timer/hpet.c), as observed with a probe firmware on
/// <c>-machine pc -cpu max -m 128M -nodefaults</c>.
/// </summary>
/// <remarks>
/// Items: NB_CPUS and MAX_CPUS (16-bit, the CPU count: the APIC ID limit of a flat topology), RAM_SIZE (64-bit),
/// NUMA (1 + CPUs words of zeros: no NUMA nodes), ACPI_TABLES (empty: no <c>-acpitable</c>), IRQ0_OVERRIDE (32-bit 1),
/// E820_TABLE (no reserved entries: a zero count and 16 zero entries), HPET (a count and 8 entries of 15 bytes;
/// the count is 0xFF when the machine has no HPET, as QEMU leaves it with <c>hpet=off</c>), and the file
/// "etc/e820": 20-byte little-endian entries (address, length, type), the AMD HyperTransport hole
/// 0xFD00000000 + 12 GiB as reserved first (QEMU reports it for an AMD CPU with 40 physical address bits, which
/// TCG's <c>-cpu max</c> is), then RAM below 4 GiB from 0 and RAM above 4 GiB.
/// Not reproduced, so absent from the directory: the ACPI tables ("etc/acpi/rsdp", "etc/acpi/tables",
/// "etc/table-loader", "etc/tpm/log"), SMBIOS ("etc/smbios/smbios-anchor", "etc/smbios/smbios-tables"),
/// "etc/system-states" (PIIX4 power management), "genroms/kvmvapic.bin", and what QEMU adds for <c>-kernel</c>
/// (keys 0x07-0x12, "genroms/multiboot_dma.bin" and its "bootorder" entry): the model loads kernels itself.
/// QEMU 7.2 lists 12 files for a BIOS boot; the model lists the 4 it has (bios-geometry, bootorder,
/// etc/boot-fail-wait, etc/e820) at keys 0x20-0x23.
/// </remarks>
public static class PcFwCfg
{
    /// <summary>Start of the AMD HyperTransport hole QEMU reserves (AMD_HT_START).</summary>
    public const ulong AmdHtStart = 0xFD_0000_0000;

    /// <summary>Size of the hole (AMD_HT_SIZE, 12 GiB).</summary>
    public const ulong AmdHtSize = 0x3_0000_0000;

    /// <summary>e820 type of usable RAM.</summary>
    public const uint E820Ram = 1;

    /// <summary>e820 type of reserved ranges.</summary>
    public const uint E820Reserved = 2;

    /// <summary>Creates the fw_cfg device of the pc machine with its items.</summary>
    /// <param name="ramSize">The machine's RAM size in bytes.</param>
    /// <param name="cpus">CPUs started at boot (1 to 255).</param>
    /// <param name="hpet">The HPET to report, or null for a machine without one.</param>
    /// <param name="dma">The DMA port (QEMU's pc machine has the DMA interface), or null for the port interface only.</param>
    /// <param name="log">Where invalid guest accesses are reported.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpus"/> is outside 1-255 or the RAM size is 0.</exception>
    public static FwCfg Create(ulong ramSize, int cpus, FwCfgHpet? hpet, DmaPort? dma = null, DeviceLog? log = null)
    {
        if (cpus is < 1 or > 255) DeviceThrow.OutOfRange(nameof(cpus), cpus, "The pc machine's fw_cfg reports 1 to 255 CPUs.");
        if (ramSize == 0) DeviceThrow.OutOfRange(nameof(ramSize), ramSize, "The RAM size must be at least 1 byte.");
        var fw = new FwCfg(dma, log);
        fw.AddUInt16(FwCfgKeys.NbCpus, (ushort)cpus);
        fw.AddUInt16(FwCfgKeys.MaxCpus, (ushort)cpus);
        fw.AddUInt64(FwCfgKeys.RamSize, ramSize);
        fw.AddBytes(FwCfgKeys.AcpiTables, []);
        fw.AddUInt32(FwCfgKeys.Irq0Override, 1);
        fw.AddBytes(FwCfgKeys.E820Table, new byte[4 + 16 * 20]);
        fw.AddFile("etc/e820", E820(ramSize));
        fw.AddBytes(FwCfgKeys.Hpet, HpetConfig(hpet));
        fw.AddBytes(FwCfgKeys.Numa, new byte[8 * (1 + cpus)]);
        return fw;
    }

    /// <summary>The contents of "etc/e820" for <paramref name="ramSize"/> bytes of RAM.</summary>
    public static byte[] E820(ulong ramSize)
    {
        var (below, above) = PcRamLayout.Split(ramSize);
        var entries = new List<(ulong Address, ulong Length, uint Type)> { (AmdHtStart, AmdHtSize, E820Reserved), (0, below, E820Ram) };
        if (above > 0) entries.Add((PcRamLayout.HighMemoryBase, above, E820Ram));
        var bytes = new byte[20 * entries.Count];
        for (int i = 0; i < entries.Count; i++)
        {
            Span<byte> e = bytes.AsSpan(20 * i, 20);
            BinaryPrimitives.WriteUInt64LittleEndian(e, entries[i].Address);
            BinaryPrimitives.WriteUInt64LittleEndian(e[8..], entries[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], entries[i].Type);
        }

        return bytes;
    }

    /// <summary>QEMU's <c>struct hpet_fw_config</c> (packed, 121 bytes) for <paramref name="hpet"/>.</summary>
    public static byte[] HpetConfig(FwCfgHpet? hpet)
    {
        var bytes = new byte[1 + 8 * 15];
        if (hpet is not { } h)
        {
            bytes[0] = 0xFF;
            return bytes;
        }

        bytes[0] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(1), h.EventTimerBlockId);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(5), h.Address);
        return bytes;
    }
}
