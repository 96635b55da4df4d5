using HwMemModel.Devices.Platform;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Description;

/// <summary>
/// A machine: RAM (size and NUMA split), CPUs (count, TLB geometry, paging depth) and the devices beside the fixed
/// pc chipset (interrupt controllers, PIT, RTC, i8042). Read from JSON with <see cref="MachineDescriptionReader"/>
/// or written in code; <see cref="Default"/> is the built-in machine. Checked as a whole by
/// <see cref="MachineDescriptionValidator"/> before anything is built.
/// </summary>
public sealed record MachineDescription
{
    /// <summary>RAM in bytes: a multiple of 1 MiB from 32 MiB (the kernel model's minimum) to 3 GiB.</summary>
    public ulong RamSize { get; init; } = DefaultMachine.DefaultRamSize;
    /// <summary>NUMA nodes the RAM is split into, in equal contiguous parts (1 to 64), unless <see cref="NumaNodeSizes"/> is given.</summary>
    public int NumaNodes { get; init; } = 1;
    /// <summary>Sizes of the NUMA nodes in address order (multiples of 2 MiB adding up to <see cref="RamSize"/>); null for equal parts.</summary>
    public IReadOnlyList<ulong>? NumaNodeSizes { get; init; }
    /// <summary>CPU contexts (1 to 64).</summary>
    public int Cpus { get; init; } = 1;
    /// <summary>TLB geometry of every CPU; <see cref="TlbGeometry.Default"/> when null.</summary>
    public TlbGeometry? Tlb { get; init; }
    /// <summary>The TLB preset's name as the description gave it ("default", "tiny", "none"), for reports.</summary>
    public string TlbName { get; init; } = "default";
    /// <summary>5-level paging for the kernel model.</summary>
    public bool FiveLevel { get; init; }
    /// <summary>Physical base of the I/O APIC window (4 KiB).</summary>
    public ulong IoApicBase { get; init; } = PcPlatform.IoApicBase;
    /// <summary>Physical base of the local APIC window (4 KiB).</summary>
    public ulong LocalApicBase { get; init; } = PcPlatform.LocalApicBase;
    /// <summary>The devices, in the order they are created and registered.</summary>
    public IReadOnlyList<DeviceDescription> Devices { get; init; } = [];

    /// <summary>Base of the DMA engine in the default machine.</summary>
    public const ulong DefaultDmaBase = 0xFEB0_0000;
    /// <summary>Base of the virtio-mmio disk in the default machine.</summary>
    public const ulong DefaultVirtioBase = 0xFEB0_1000;

    /// <summary>
    /// The built-in default machine: PLATFORM.md's QEMU pc subset (128 MiB, COM1 at 0x3F8 on IRQ 4, isa-debug-exit
    /// at 0xF4, the HPET at 0xFED00000) plus the DMA engine at 0xFEB00000 on GSI 16 and a 16 MiB in-memory
    /// virtio-mmio disk at 0xFEB01000 on GSI 17 (both level-triggered, active high).
    /// </summary>
    public static MachineDescription Default { get; } = new()
    {
        Devices =
        [
            new DeviceDescription { Name = "serial0", Compatible = ["ns16550a"], Space = ResourceKind.Io, Base = 0x3F8, Irq = 4, Options = new Dictionary<string, string> { ["output"] = "host" } },
            new DeviceDescription { Name = "debug-exit", Compatible = ["qemu,isa-debug-exit"], Space = ResourceKind.Io, Base = 0xF4 },
            new DeviceDescription { Name = "hpet", Compatible = ["intel,hpet"], Base = PcPlatform.HpetBase },
            new DeviceDescription { Name = "dma0", Compatible = ["hwmem,dma-engine"], Base = DefaultDmaBase, Irq = 16, Trigger = IrqTrigger.LevelHigh },
            new DeviceDescription { Name = "virtio0", Compatible = ["virtio,mmio"], Base = DefaultVirtioBase, Irq = 17, Trigger = IrqTrigger.LevelHigh, Options = new Dictionary<string, string> { ["disk-size"] = "16M" } },
        ],
    };
}

/// <summary>One device of a <see cref="MachineDescription"/>.</summary>
public sealed record DeviceDescription
{
    /// <summary>Unique name (dev_name; also the bus-master name its DMA is checked under).</summary>
    public required string Name { get; init; }
    /// <summary>Compatible strings, most specific first; the first one the catalogue knows selects the model.</summary>
    public required IReadOnlyList<string> Compatible { get; init; }
    /// <summary>Memory (MMIO window) or I/O ports; each model allows one or both.</summary>
    public ResourceKind Space { get; init; } = ResourceKind.Memory;
    /// <summary>Physical base address or first port.</summary>
    public ulong? Base { get; init; }
    /// <summary>Window size in bytes or ports; the model's default when null.</summary>
    public ulong? Size { get; init; }
    /// <summary>The GSI (IOAPIC input, 0-23) of its interrupt line, if it has one.</summary>
    public int? Irq { get; init; }
    /// <summary>How the line signals; the model's default when null.</summary>
    public IrqTrigger? Trigger { get; init; }
    /// <summary>Model options (keys in lower case with dashes, values as text).</summary>
    public IReadOnlyDictionary<string, string> Options { get; init; } = new Dictionary<string, string>();
    /// <summary>Where the description came from, as a JSON path ("$.Machine.Devices[3]"); set by the reader.</summary>
    public string Path { get; init; } = "";
}

/// <summary>A machine description that cannot be built; the message names the JSON path and what is allowed.</summary>
public sealed class MachineDescriptionException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public MachineDescriptionException(string path, string message) : base($"{path}: {message}") => JsonPath = path;

    /// <summary>The JSON path of the offending value.</summary>
    public string JsonPath { get; }
}
