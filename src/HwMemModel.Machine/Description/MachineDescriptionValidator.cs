using System.Globalization;
using HwMemModel.Kernel.Drivers;

namespace HwMemModel.Machine.Description;

/// <summary>
/// Checks a <see cref="MachineDescription"/> as a whole before anything is built: sizes and counts in range, every
/// device known, placed in a space its model allows, not overlapping RAM, ROM, the chipset or another device,
/// interrupt lines in range and not shared, options known and required ones present. The first problem is thrown
/// as a <see cref="MachineDescriptionException"/> naming its JSON path.
/// </summary>
public static class MachineDescriptionValidator
{
    private const ulong MiB = 1UL << 20;
    /// <summary>GSIs of the IOAPIC.</summary>
    public const int GsiCount = 24;

    // Fixed parts of the pc machine (besides RAM): name, start, end inclusive.
    private static readonly (string Name, ulong Start, ulong Last)[] FixedPorts =
    [
        ("pic1", 0x20, 0x21), ("pit", 0x40, 0x43), ("keyboard", 0x60, 0x60), ("pcspk", 0x61, 0x61), ("keyboard", 0x64, 0x64),
        ("rtc0", 0x70, 0x71), ("dma page reg", 0x80, 0x80), ("port92", 0x92, 0x92), ("pic2", 0xA0, 0xA1), ("elcr", 0x4D0, 0x4D1),
    ];

    // GSIs the chipset drives: the PIT (0, and pin 2 through the IOAPIC's ISA override), the i8042 (1, 12), the RTC (8).
    private static readonly (int Gsi, string Who)[] FixedGsis = [(0, "the PIT (timer)"), (1, "the i8042 keyboard"), (2, "the PIT (IOAPIC pin 2)"), (8, "the RTC"), (12, "the i8042 mouse")];

    /// <summary>Validates <paramref name="d"/>; throws the first problem found.</summary>
    /// <exception cref="MachineDescriptionException">The description cannot be built.</exception>
    public static void Validate(MachineDescription d)
    {
        ArgumentNullException.ThrowIfNull(d);
        const string Root = "$.Machine";
        if (d.RamSize < 32 * MiB || d.RamSize > 3072 * MiB || d.RamSize % MiB != 0)
            throw new MachineDescriptionException($"{Root}.RamSize", $"{d.RamSize} bytes is not allowed; RAM must be a multiple of 1 MiB from 32M to 3G (the kernel model needs 32 MiB; the pc map has no RAM above 3 GiB here).");
        if (d.NumaNodes is < 1 or > 64)
            throw new MachineDescriptionException($"{Root}.NumaNodes", $"{d.NumaNodes} is out of range; 1 to 64 nodes.");
        if (d.NumaNodeSizes is { } sizes)
        {
            if (sizes.Count != d.NumaNodes)
                throw new MachineDescriptionException($"{Root}.NumaNodes", $"{sizes.Count} node sizes are given for {d.NumaNodes} nodes; give one size per node.");
            for (int i = 0; i < sizes.Count; i++)
                if (sizes[i] < 4 * MiB || sizes[i] % (2 * MiB) != 0)
                    throw new MachineDescriptionException($"{Root}.NumaNodes[{i}]", $"{sizes[i]} bytes is not allowed; a node is a multiple of 2 MiB, at least 4 MiB.");
            ulong sum = sizes.Aggregate(0UL, (a, b) => a + b);
            if (sum != d.RamSize)
                throw new MachineDescriptionException($"{Root}.NumaNodes", $"the node sizes add up to {sum >> 20} MiB but RamSize is {d.RamSize >> 20} MiB; they must be equal.");
        }
        else if (d.RamSize / (ulong)d.NumaNodes < 4 * MiB)
            throw new MachineDescriptionException($"{Root}.NumaNodes", $"{d.NumaNodes} nodes leave less than 4 MiB of RAM per node; use fewer nodes or more RAM.");
        if (d.Tlb is { } tlb)
        {
            try
            {
                tlb.Validate();
            }
            catch (ArgumentException e)
            {
                throw new MachineDescriptionException($"{Root}.Tlb", e.Message);
            }
        }
        if (d.Cpus is < 1 or > 64)
            throw new MachineDescriptionException($"{Root}.Cpus", $"{d.Cpus} is out of range; 1 to 64 CPUs.");

        var windows = new List<(string Who, string Path, ulong Start, ulong Last)>
        {
            ("System RAM", $"{Root}.RamSize", 0, 0x9FFFF),
            ("System RAM", $"{Root}.RamSize", MiB, d.RamSize - 1),
            ("bios (low alias)", "$", 0xF0000, 0xFFFFF),
            ("bios", "$", 0xFFFF0000, 0xFFFFFFFF),
        };
        CheckFixedWindow(windows, "IOAPIC 0", $"{Root}.IoApicBase", d.IoApicBase);
        CheckFixedWindow(windows, "Local APIC", $"{Root}.LocalApicBase", d.LocalApicBase);
        var ports = FixedPorts.Select(p => (p.Name, "$", p.Start, p.Last)).ToList();
        var gsis = FixedGsis.ToDictionary(g => g.Gsi, g => g.Who);
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        bool hpet = false;
        var singletons = new Dictionary<string, string>(StringComparer.Ordinal);

        for (int i = 0; i < d.Devices.Count; i++)
        {
            var dev = d.Devices[i];
            string path = dev.Path.Length > 0 ? dev.Path : $"{Root}.Devices[{i}]";
            if (string.IsNullOrWhiteSpace(dev.Name)) throw new MachineDescriptionException($"{path}.Name", "missing: every device needs a unique name.");
            if (names.TryGetValue(dev.Name, out var other))
                throw new MachineDescriptionException($"{path}.Name", $"'{dev.Name}' is already the name of {other}; device names must be unique.");
            names[dev.Name] = path;
            var kind = DeviceCatalog.Find(dev.Compatible)
                ?? throw new MachineDescriptionException($"{path}.Compatible",
                    $"unknown compatible string {string.Join(", ", dev.Compatible.Select(c => $"'{c}'"))}; known: {string.Join(", ", DeviceCatalog.All.Select(k => k.Compatible))}.");
            if (!kind.Spaces.Contains(dev.Space))
                throw new MachineDescriptionException($"{path}.Space", $"{kind.Compatible} cannot be placed in {SpaceName(dev.Space)} space; allowed: {string.Join(", ", kind.Spaces.Select(SpaceName))}.");
            if (dev.Base is not { } start) throw new MachineDescriptionException($"{path}.Base", $"missing: {kind.Compatible} needs a base {(dev.Space == ResourceKind.Io ? "port" : "address")}.");
            CheckOptions(dev, kind, path);
            CheckFixedShape(dev, kind, path, start, singletons, windows, ports);
            ulong size = DeviceCatalog.SizeOf(dev, kind);
            if (size == 0) throw new MachineDescriptionException($"{path}.Size", "must be at least 1.");
            ulong last = start + size - 1;
            if (last < start) throw new MachineDescriptionException($"{path}.Size", "the window wraps past the end of the address space.");
            if (dev.Space == ResourceKind.Io)
            {
                if (last > 0xFFFF) throw new MachineDescriptionException($"{path}.Base", $"ports 0x{start:x}-0x{last:x} go past 0xffff; x86 has 65536 ports.");
                CheckOverlap(ports, dev.Name, path, start, last, "ports");
                ports.Add((dev.Name, path, start, last));
            }
            else
            {
                if (kind.Compatible != "ns16550a" && (start & 0xFFF) != 0)
                    throw new MachineDescriptionException($"{path}.Base", $"0x{start:x} is not 4 KiB aligned; {kind.Compatible} windows start on a page boundary (ioremap maps whole pages).");
                if (last >= 1UL << 40) throw new MachineDescriptionException($"{path}.Base", $"0x{start:x}-0x{last:x} is beyond the 40-bit physical address space.");
                CheckOverlap(windows, dev.Name, path, start, last, "window");
                windows.Add((dev.Name, path, start, last));
            }
            if (kind.Compatible == "intel,hpet")
            {
                if (hpet) throw new MachineDescriptionException(path, "a machine has at most one HPET.");
                hpet = true;
            }
            switch (kind.Irq)
            {
                case IrqUse.None when dev.Irq is not null:
                    throw new MachineDescriptionException($"{path}.Irq", $"{kind.Compatible} has no interrupt line to connect{(kind.Compatible == "intel,hpet" ? " (its timers choose their GSI in their own registers)" : "")}; remove Irq.");
                case IrqUse.Required when dev.Irq is null:
                    throw new MachineDescriptionException($"{path}.Irq", $"missing: {kind.Compatible} needs an interrupt line (a GSI, 0 to {GsiCount - 1}).");
            }
            if (dev.Irq is { } irq)
            {
                if (irq is < 0 or >= GsiCount)
                    throw new MachineDescriptionException($"{path}.Irq", $"{irq} is out of range; the IOAPIC has GSIs 0 to {GsiCount - 1}.");
                if (gsis.TryGetValue(irq, out var who))
                    throw new MachineDescriptionException($"{path}.Irq", $"GSI {irq} is already driven by {who}; lines are not shared on this machine, choose a free one (e.g. 3, 5-7, 9-11, 13-23).");
                gsis[irq] = $"{dev.Name} ({path})";
            }
        }
    }

    private static void CheckOptions(DeviceDescription dev, DeviceKind kind, string path)
    {
        foreach (var key in dev.Options.Keys)
            if (!kind.Options.ContainsKey(key))
                throw new MachineDescriptionException($"{path}.Options.{key}", kind.Options.Count == 0
                    ? $"{kind.Compatible} takes no options."
                    : $"unknown option for {kind.Compatible}; allowed: {string.Join(", ", kind.Options.Keys)}.");
        string Opt(string key) => $"{path}.Options.{key}";
        switch (kind.Compatible)
        {
            case "ns16550a":
                if (dev.Options.TryGetValue("reg-shift", out var sh))
                {
                    if (!int.TryParse(sh, NumberStyles.None, CultureInfo.InvariantCulture, out var shift) || shift > 2)
                        throw new MachineDescriptionException(Opt("reg-shift"), $"'{sh}' is not allowed; 0, 1 or 2.");
                    if (dev.Space == ResourceKind.Io && shift != 0)
                        throw new MachineDescriptionException(Opt("reg-shift"), "a register shift needs a memory-space UART; I/O-port UARTs have consecutive ports.");
                }
                if (dev.Options.TryGetValue("output", out var o) && o is not ("host" or "null" or "stdout" or "stderr"))
                    throw new MachineDescriptionException(Opt("output"), $"'{o}' is not allowed; host, null, stdout or stderr.");
                if (dev.Options.TryGetValue("input", out var inp) && inp is not ("host" or "null" or "stdin"))
                    throw new MachineDescriptionException(Opt("input"), $"'{inp}' is not allowed; host, null or stdin.");
                break;
            case DeviceCatalog.FwCfgIo:
                if (dev.Options.TryGetValue("dma", out var dma) && !bool.TryParse(dma, out _))
                    throw new MachineDescriptionException(Opt("dma"), $"'{dma}' is not a boolean; true or false.");
                break;
            case "intel,hpet":
                if (dev.Options.TryGetValue("timers", out var t) && (!int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n is < 3 or > 32))
                    throw new MachineDescriptionException(Opt("timers"), $"'{t}' is not allowed; 3 to 32 comparators.");
                break;
            case "virtio,mmio":
            {
                bool hasSize = dev.Options.TryGetValue("disk-size", out var ds), hasFile = dev.Options.TryGetValue("disk-file", out var df);
                if (!hasSize && !hasFile)
                    throw new MachineDescriptionException($"{path}.Options", "missing required option: virtio,mmio needs disk-size (an in-memory disk) or disk-file (a host file).");
                if (hasSize && hasFile)
                    throw new MachineDescriptionException(Opt("disk-file"), "give disk-size or disk-file, not both.");
                if (hasSize && (!Quantity.TryParseSize(ds!, out var bytes) || bytes == 0 || bytes % 512 != 0 || bytes > (1UL << 32)))
                    throw new MachineDescriptionException(Opt("disk-size"), $"'{ds}' is not allowed; a multiple of 512 bytes from 512 to 4G.");
                if (hasFile && !File.Exists(df))
                    throw new MachineDescriptionException(Opt("disk-file"), $"'{df}' does not exist; give an existing file whose size is a multiple of 512 bytes.");
                if (hasFile && new FileInfo(df!).Length % 512 != 0)
                    throw new MachineDescriptionException(Opt("disk-file"), $"'{df}' is {new FileInfo(df!).Length} bytes; a disk file's size must be a multiple of 512 bytes.");
                if (dev.Options.TryGetValue("read-only", out var ro) && !bool.TryParse(ro, out _))
                    throw new MachineDescriptionException(Opt("read-only"), $"'{ro}' is not a boolean; true or false.");
                if (dev.Options.TryGetValue("serial", out var s) && (s.Length > 20 || !System.Text.Ascii.IsValid(s)))
                    throw new MachineDescriptionException(Opt("serial"), $"'{s}' is not allowed; ASCII, at most 20 characters.");
                break;
            }
        }
    }

    // fw_cfg, pc-testdev and the Bochs shutdown port: their size is fixed; fw_cfg and pc-testdev exist once, and
    // pc-testdev sits at QEMU's fixed addresses (its IRQ ports and memory window are reserved here as well).
    private static void CheckFixedShape(DeviceDescription dev, DeviceKind kind, string path, ulong start, Dictionary<string, string> singletons,
        List<(string Who, string Path, ulong Start, ulong Last)> windows, List<(string Who, string Path, ulong Start, ulong Last)> ports)
    {
        ulong? size = kind.Compatible switch
        {
            DeviceCatalog.FwCfgIo => DeviceCatalog.FwCfgDma(dev) ? DeviceCatalog.FwCfgPortsWithDma : (ulong)Devices.Platform.FwCfg.IoPorts,
            DeviceCatalog.PcTestdevKind => (ulong)Devices.Misc.PcTestdev.PortCount,
            DeviceCatalog.BochsShutdown => 1,
            _ => null,
        };
        if (size is not { } fixedSize) return;
        if (dev.Size is { } given && given != fixedSize)
            throw new MachineDescriptionException($"{path}.Size", kind.Compatible == DeviceCatalog.FwCfgIo
                ? $"{given} is not allowed; fw_cfg takes {fixedSize} ports ({(fixedSize == 2 ? "selector and data, no DMA" : "selector and data at base, the DMA register at base + 4 to base + 11")}); omit Size."
                : $"{given} is not allowed; {kind.Compatible} takes {fixedSize} port{(fixedSize == 1 ? "" : "s")}; omit Size.");
        if (kind.Compatible == DeviceCatalog.BochsShutdown) return;
        if (singletons.TryGetValue(kind.Compatible, out var first))
            throw new MachineDescriptionException(path, $"{first} is already a {kind.Compatible}; a machine has at most one (QEMU: \"at most one {(kind.Compatible == DeviceCatalog.FwCfgIo ? "fw_cfg" : "pc-testdev")} device is permitted\").");
        singletons[kind.Compatible] = path;
        if (kind.Compatible != DeviceCatalog.PcTestdevKind) return;
        if (start != Devices.Misc.PcTestdev.PortBase)
            throw new MachineDescriptionException($"{path}.Base", $"0x{start:x} is not allowed; pc-testdev's ports are fixed at 0xe0 (with 0x2000-0x2017 and memory at 0xff000000), as on QEMU.");
        const ulong IrqFirst = Devices.Misc.PcTestdev.IrqPortBase, IrqLast = IrqFirst + Devices.Misc.PcTestdev.IrqPortCount - 1;
        const ulong MemFirst = Devices.Misc.PcTestdev.IoMemBase, MemLast = MemFirst + Devices.Misc.PcTestdev.IoMemSize - 1;
        CheckOverlap(ports, $"{dev.Name} (IRQ lines)", $"{path}.Base", IrqFirst, IrqLast, "ports");
        ports.Add(($"{dev.Name} (IRQ lines)", path, IrqFirst, IrqLast));
        CheckOverlap(windows, $"{dev.Name} (iomem)", $"{path}.Base", MemFirst, MemLast, "window");
        windows.Add(($"{dev.Name} (iomem)", path, MemFirst, MemLast));
    }

    private static void CheckFixedWindow(List<(string Who, string Path, ulong Start, ulong Last)> windows, string name, string path, ulong start)
    {
        if ((start & 0xFFF) != 0) throw new MachineDescriptionException(path, $"0x{start:x} is not 4 KiB aligned.");
        if (start >= 1UL << 40) throw new MachineDescriptionException(path, $"0x{start:x} is beyond the 40-bit physical address space.");
        CheckOverlap(windows, name, path, start, start + 0xFFF, "window");
        windows.Add((name, path, start, start + 0xFFF));
    }

    private static void CheckOverlap(List<(string Who, string Path, ulong Start, ulong Last)> taken, string name, string path, ulong start, ulong last, string what)
    {
        foreach (var t in taken)
            if (start <= t.Last && t.Start <= last)
                throw new MachineDescriptionException(path.EndsWith("Base", StringComparison.Ordinal) ? path : $"{path}.Base",
                    $"{what} 0x{start:x}-0x{last:x} of '{name}' overlaps '{t.Who}' (0x{t.Start:x}-0x{t.Last:x}{(t.Path == "$" ? ", fixed part of the pc machine" : $", {t.Path}")}).");
    }

    private static string SpaceName(ResourceKind k) => k == ResourceKind.Io ? "io" : "memory";
}
