using System.Globalization;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Dma;
using HwMemModel.Devices.Misc;
using HwMemModel.Devices.Platform;
using HwMemModel.Devices.Serial;
using HwMemModel.Devices.Timers;
using HwMemModel.Devices.Virtio;
using HwMemModel.Kernel.Drivers;

namespace HwMemModel.Machine.Description;

/// <summary>What a compatible string stands for: where it may sit, its defaults, its options, and how to build it.</summary>
/// <param name="Compatible">The compatible string.</param>
/// <param name="Spaces">Address spaces it may be placed in.</param>
/// <param name="DefaultSize">Window size when the description gives none (for memory; ports use <paramref name="DefaultPorts"/>).</param>
/// <param name="DefaultPorts">Port count when placed in I/O space.</param>
/// <param name="Irq">Whether an interrupt line is required, optional or not allowed.</param>
/// <param name="DefaultTrigger">The line's trigger when the description gives none.</param>
/// <param name="Options">Allowed option names with a one-line description each.</param>
/// <param name="Summary">One line for listings.</param>
public sealed record DeviceKind(string Compatible, ResourceKind[] Spaces, ulong DefaultSize, ulong DefaultPorts, IrqUse Irq,
    IrqTrigger DefaultTrigger, IReadOnlyDictionary<string, string> Options, string Summary);

/// <summary>Whether a device kind takes an interrupt line.</summary>
public enum IrqUse : byte
{
    /// <summary>The description must not give one.</summary>
    None,
    /// <summary>May be given (the device is usable polled).</summary>
    Optional,
    /// <summary>Must be given.</summary>
    Required,
}

/// <summary>The device models a machine description can name, by compatible string.</summary>
public static class DeviceCatalog
{
    private static readonly DeviceKind[] Kinds =
    [
        new("ns16550a", [ResourceKind.Memory, ResourceKind.Io], 8, 8, IrqUse.Optional, IrqTrigger.EdgeRising,
            new Dictionary<string, string>
            {
                ["reg-shift"] = "register spacing 1 << reg-shift bytes (0-2; memory space only)",
                ["output"] = "where transmitted bytes go: host (the host's stream for this device), null, stdout, stderr",
                ["input"] = "where received bytes come from: host (the host's stream for this device), null, stdin",
            }, "16550A UART (QEMU serial): FIFO, LSR/IIR, THR-empty and receive interrupts"),
        new("qemu,isa-debug-exit", [ResourceKind.Io], 0, 4, IrqUse.None, IrqTrigger.EdgeRising,
            new Dictionary<string, string>(), "QEMU isa-debug-exit: a write of v stops with status (v << 1) | 1"),
        new("intel,hpet", [ResourceKind.Memory], PcPlatform.HpetSize, 0, IrqUse.None, IrqTrigger.EdgeRising,
            new Dictionary<string, string> { ["timers"] = "number of comparators, 3 to 32 (QEMU: 3)" },
            "HPET 1.0a as QEMU models it: 100 MHz counter, comparators, legacy replacement"),
        new("hwmem,dma-engine", [ResourceKind.Memory], 0x1000, 0, IrqUse.Required, IrqTrigger.LevelHigh,
            new Dictionary<string, string>(), "HwMemModel DMA engine: descriptor ring, copy and fill, completion interrupt"),
        new("virtio,mmio", [ResourceKind.Memory], 0x200, 0, IrqUse.Required, IrqTrigger.LevelHigh,
            new Dictionary<string, string>
            {
                ["disk-size"] = "size of an in-memory disk (a multiple of 512 bytes, e.g. 16M)",
                ["disk-file"] = "path of a host file backing the disk (its size a multiple of 512 bytes)",
                ["read-only"] = "true to offer VIRTIO_BLK_F_RO and refuse writes",
                ["serial"] = "the GET_ID string (ASCII, at most 20 bytes)",
            }, "virtio-mmio (version 2) block device with one split virtqueue"),
        new(FwCfgIo, [ResourceKind.Io], 0, FwCfgPortsWithDma, IrqUse.None, IrqTrigger.EdgeRising,
            new Dictionary<string, string>
            {
                ["dma"] = "true or false: the DMA register at base + 4 (QEMU's pc machine: true, FW_CFG_ID 3; false: ID 1, 2 ports)",
            }, "QEMU fw_cfg (port interface): selector at base, data at base + 1, DMA at base + 4; signature, ID, CPU count, RAM size, etc/e820"),
        new(PcTestdevKind, [ResourceKind.Io], 0, (ulong)PcTestdev.PortCount, IrqUse.None, IrqTrigger.EdgeRising,
            new Dictionary<string, string>(),
            "QEMU pc-testdev at its fixed addresses: latch ports 0xe0-0xeb, ISA IRQ lines at 0x2000-0x2017, 64 KiB of memory at 0xff000000"),
        new(BochsShutdown, [ResourceKind.Io], 0, 1, IrqUse.None, IrqTrigger.EdgeRising,
            new Dictionary<string, string>(),
            "Bochs power-off port (0x8900; not in QEMU 7.2): \"Shutdown\" written byte by byte stops with status 0"),
    ];

    /// <summary>Compatible string of QEMU's fw_cfg in I/O space (QEMU's type <c>fw_cfg_io</c>).</summary>
    public const string FwCfgIo = "qemu,fw-cfg-io";

    /// <summary>Compatible string of QEMU's <c>pc-testdev</c>.</summary>
    public const string PcTestdevKind = "qemu,pc-testdev";

    /// <summary>
    /// Compatible string of the Bochs power-off port: the semantics are Bochs's (and QEMU's before 1.4, which copied
    /// them as "same as Bochs power off"), so the vendor prefix names Bochs.
    /// </summary>
    public const string BochsShutdown = "bochs,shutdown-port";

    /// <summary>Ports fw_cfg spans with DMA: selector/data at base, base + 1, the DMA register at base + 4 to base + 11.</summary>
    public const ulong FwCfgPortsWithDma = 12;

    /// <summary>Whether a fw_cfg description asks for the DMA interface (the default).</summary>
    internal static bool FwCfgDma(DeviceDescription d) => !d.Options.TryGetValue("dma", out var v) || !bool.TryParse(v, out var b) || b;

    /// <summary>Every known kind.</summary>
    public static IReadOnlyList<DeviceKind> All => Kinds;

    /// <summary>The kind for the first compatible string the catalogue knows, or null.</summary>
    public static DeviceKind? Find(IReadOnlyList<string> compatible)
    {
        foreach (var c in compatible)
            foreach (var k in Kinds)
                if (k.Compatible == c) return k;
        return null;
    }

    /// <summary>The address space a device is placed in when the description does not say: the kind's first.</summary>
    public static ResourceKind DefaultSpace(IReadOnlyList<string> compatible) => Find(compatible)?.Spaces[0] ?? ResourceKind.Memory;

    /// <summary>The window size of <paramref name="d"/> (its own, or the kind's default for its space and options).</summary>
    internal static ulong SizeOf(DeviceDescription d, DeviceKind kind)
    {
        if (d.Size is { } s) return s;
        if (kind.Compatible == FwCfgIo && d.Space == ResourceKind.Io) return FwCfgDma(d) ? FwCfgPortsWithDma : (ulong)FwCfg.IoPorts;
        if (d.Space == ResourceKind.Io) return kind.DefaultPorts;
        if (kind.Compatible == "ns16550a" && d.Options.TryGetValue("reg-shift", out var shift) && int.TryParse(shift, out var sh) && sh is >= 0 and <= 2)
            return 8UL << sh;
        return kind.DefaultSize;
    }

    /// <summary>Builds the model of <paramref name="d"/>, maps it and connects its interrupt line.</summary>
    internal static object Create(DeviceDescription d, DeviceKind kind, MachineParts parts)
    {
        ulong size = SizeOf(d, kind);
        Action<bool>? irq = d.Irq is { } gsi ? parts.Chipset.IrqLine(gsi) : null;
        switch (kind.Compatible)
        {
            case "ns16550a":
            {
                int shift = d.Options.TryGetValue("reg-shift", out var sh) ? int.Parse(sh, CultureInfo.InvariantCulture) : 0;
                var uart = new Uart16550(parts.SerialOutput(d), parts.Clock, shift, d.Name);
                if (irq is not null) uart.IrqLineChanged += irq;
                if (parts.SerialInput(d) is { } input) uart.AttachInput(input);
                parts.Chipset.AddTimedDevice(uart);
                Map(d, size, uart, parts);
                return uart;
            }
            case "qemu,isa-debug-exit":
            {
                var exit = new IsaDebugExit(parts.Stop, (ushort)d.Base!.Value);
                Map(d, size, exit, parts);
                return exit;
            }
            case "intel,hpet":
            {
                int timers = d.Options.TryGetValue("timers", out var t) ? int.Parse(t, CultureInfo.InvariantCulture) : 3;
                var hpet = new Hpet(parts.Clock, timerCount: timers);
                parts.Chipset.AttachHpet(hpet);
                Map(d, size, hpet, parts);
                return hpet;
            }
            case "hwmem,dma-engine":
            {
                var dma = new DmaEngine(parts.Bus, parts.Clock, parts.DeviceLog, d.Name);
                dma.IrqLineChanged += irq!;
                parts.Chipset.AddTimedDevice(dma);
                Map(d, size, dma, parts);
                return dma;
            }
            case "virtio,mmio":
            {
                bool readOnly = d.Options.TryGetValue("read-only", out var ro) && bool.Parse(ro);
                IBlockBackend disk;
                if (d.Options.TryGetValue("disk-file", out var file))
                {
                    FileBlockBackend backend;
                    try
                    {
                        backend = new FileBlockBackend(file, readOnly);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        throw new MachineDescriptionException($"{(d.Path.Length > 0 ? d.Path : "$.Machine.Devices[" + d.Name + "]")}.Options.disk-file",
                            $"cannot open '{file}'{(readOnly ? " for reading" : " for reading and writing")}: {e.Message}");
                    }
                    parts.Owned.Add(backend);
                    disk = backend;
                }
                else
                {
                    disk = new MemoryBlockBackend((long)(Quantity.TryParseSize(d.Options["disk-size"], out var n) ? n : 0), readOnly);
                }
                var blk = d.Options.TryGetValue("serial", out var serial)
                    ? new VirtioMmioBlock(parts.Bus, disk, parts.DeviceLog, d.Name, serial)
                    : new VirtioMmioBlock(parts.Bus, disk, parts.DeviceLog, d.Name);
                blk.IrqLineChanged += irq!;
                Map(d, size, blk, parts);
                return blk;
            }
            case FwCfgIo:
            {
                bool dma = FwCfgDma(d);
                var description = parts.Description;
                ulong ramSize = description?.RamSize ?? RamSizeOf(parts.Bus);
                int cpus = description?.Cpus ?? 1;
                var fw = PcFwCfg.Create(ramSize, cpus, HpetFor(parts), dma ? new DmaPort(parts.Bus, d.Name, PcPlatform.FwCfgRequesterId) : null, parts.DeviceLog);
                ushort port = (ushort)d.Base!.Value;
                parts.Ports.Add(d.Name, port, FwCfg.IoPorts, fw);
                if (dma) parts.Ports.Add(d.Name + ".dma", (ushort)(port + 4), FwCfg.DmaIoPorts, fw.DmaWindow!);
                return fw;
            }
            case PcTestdevKind:
                return PcPlatform.AddPcTestdev(parts.Bus, parts.Ports, parts.Chipset, parts.Stop, parts.DeviceLog);
            case BochsShutdown:
            {
                var shutdown = new BochsShutdownPort(parts.Stop, (ushort)d.Base!.Value);
                Map(d, size, shutdown, parts);
                return shutdown;
            }
            default:
                throw new InvalidOperationException($"The catalogue lists '{kind.Compatible}' but cannot build it.");
        }
    }

    // The HPET fw_cfg reports: the description's (its base and timer count), else one already mapped, else none.
    private static FwCfgHpet? HpetFor(MachineParts parts)
    {
        if (parts.Description is { } description)
        {
            var hpet = description.Devices.FirstOrDefault(x => Find(x.Compatible)?.Compatible == "intel,hpet");
            if (hpet is null) return null;
            int timers = hpet.Options.TryGetValue("timers", out var t) ? int.Parse(t, CultureInfo.InvariantCulture) : 3;
            return new FwCfgHpet(FwCfgHpet.BlockIdFor(timers), hpet.Base!.Value);
        }

        if (parts.Chipset.Hpet is { } model)
        {
            foreach (var region in parts.Bus.Regions)
                if (region is MmioRegion mmio && ReferenceEquals(mmio.Device, model))
                    return new FwCfgHpet((uint)model.Capabilities, mmio.Base);
        }

        return null;
    }

    // RAM size of a bus made by DefaultMachine.CreateBus: RAM below 4 GiB ends at the RAM size.
    private static ulong RamSizeOf(PhysicalBus bus)
        => bus.Regions.Where(r => r.Kind == MemoryRegionKind.Ram).Select(r => r.Base + r.Size).DefaultIfEmpty(0x10_0000UL).Max();

    private static void Map(DeviceDescription d, ulong size, IMmioDevice device, MachineParts parts)
    {
        if (d.Space == ResourceKind.Io) parts.Ports.Add(d.Name, (ushort)d.Base!.Value, (int)size, device);
        else parts.Bus.AddMmio(d.Name, d.Base!.Value, size, device);
    }
}

/// <summary>What device factories need from the machine being built.</summary>
internal sealed record MachineParts(PhysicalBus Bus, PortBus Ports, GuestClock Clock, StopRequest Stop, PcChipset Chipset,
    DeviceLog DeviceLog, Func<DeviceDescription, Stream> SerialOutput, Func<DeviceDescription, Stream?> SerialInput, List<IDisposable> Owned)
{
    /// <summary>The description being built (fw_cfg reports its RAM size, CPU count and HPET); null when not given.</summary>
    public MachineDescription? Description { get; init; }
}
