using System.Globalization;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Mmu;
using Microsoft.Extensions.Configuration;

namespace HwMemModel.Machine.Description;

/// <summary>
/// Reads a <see cref="MachineDescription"/> from configuration (Microsoft.Extensions.Configuration: JSON files,
/// in-memory collections, ...). The shape, under a "Machine" section:
/// <code>
/// { "Machine": {
///     "RamSize": "128M", "NumaNodes": 1, "Cpus": 1, "Tlb": "default", "FiveLevel": false,
///     "Devices": [
///       { "Name": "serial0", "Compatible": "ns16550a", "Space": "io", "Base": "0x3f8", "Irq": 4 },
///       { "Name": "virtio0", "Compatible": [ "virtio,mmio" ], "Base": "0xfeb01000", "Irq": 17,
///         "Trigger": "level-high", "Options": { "disk-size": "16M" } } ] } }
/// </code>
/// Numbers may be JSON numbers or strings in decimal or 0x hex; sizes take K, M, G suffixes (powers of 1024).
/// Every error names its JSON path. Unknown keys are errors (a typo must not silently fall back to a default).
/// </summary>
public static class MachineDescriptionReader
{
    private static readonly string[] MachineKeys = ["RamSize", "NumaNodes", "Cpus", "Tlb", "FiveLevel", "IoApicBase", "LocalApicBase", "Devices"];
    private static readonly string[] DeviceKeys = ["Name", "Compatible", "Space", "Base", "Size", "Irq", "Trigger", "Options"];

    /// <summary>Reads and validates the JSON file at <paramref name="path"/>.</summary>
    /// <exception cref="MachineDescriptionException">The file cannot be read or parsed, or the description is invalid.</exception>
    public static MachineDescription FromJsonFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        IConfigurationRoot config;
        try
        {
            config = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(path), optional: false, reloadOnChange: false).Build();
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException or InvalidDataException or System.Text.Json.JsonException)
        {
            throw new MachineDescriptionException("$", $"cannot read machine description '{path}': {Flatten(e)}");
        }
        return FromConfiguration(config);
    }

    /// <summary>Reads and validates JSON text.</summary>
    /// <exception cref="MachineDescriptionException">The text cannot be parsed or the description is invalid.</exception>
    public static MachineDescription FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        IConfigurationRoot config;
        try
        {
            config = new ConfigurationBuilder().AddJsonStream(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json))).Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or System.Text.Json.JsonException)
        {
            throw new MachineDescriptionException("$", $"the machine description is not valid JSON: {Flatten(e)}");
        }
        return FromConfiguration(config);
    }

    /// <summary>Reads and validates the section <paramref name="sectionName"/> of <paramref name="configuration"/>.</summary>
    /// <exception cref="MachineDescriptionException">The description is invalid.</exception>
    public static MachineDescription FromConfiguration(IConfiguration configuration, string sectionName = "Machine")
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var root = configuration.GetSection(sectionName);
        string rootPath = "$." + sectionName;
        if (!root.Exists()) throw new MachineDescriptionException(rootPath, $"missing: the description must have a \"{sectionName}\" object.");
        CheckKeys(root, MachineKeys, rootPath);
        var d = new MachineDescription();
        var defaults = d;
        var numa = root.GetSection("NumaNodes");
        IReadOnlyList<ulong>? nodeSizes = null;
        if (numa.Exists() && numa.Value is null or "")
        {
            nodeSizes = numa.GetChildren().OrderBy(c => int.TryParse(c.Key, out var i) ? i : int.MaxValue)
                .Select(c => Quantity.TryParseSize(c.Value ?? "", out var n) ? n
                    : throw new MachineDescriptionException($"{rootPath}.NumaNodes[{c.Key}]", $"'{c.Value}' is not a size; use e.g. 64M."))
                .ToArray();
        }
        d = d with
        {
            RamSize = Size(root, "RamSize", rootPath) ?? defaults.RamSize,
            NumaNodes = nodeSizes?.Count ?? Int(root, "NumaNodes", rootPath) ?? defaults.NumaNodes,
            NumaNodeSizes = nodeSizes,
            Cpus = Int(root, "Cpus", rootPath) ?? defaults.Cpus,
            FiveLevel = Bool(root, "FiveLevel", rootPath) ?? false,
            IoApicBase = Number(root, "IoApicBase", rootPath) ?? defaults.IoApicBase,
            LocalApicBase = Number(root, "LocalApicBase", rootPath) ?? defaults.LocalApicBase,
        };
        var tlbSection = root.GetSection("Tlb");
        if (tlbSection.Value is { } tlb)
        {
            d = d with
            {
                TlbName = tlb.ToLowerInvariant(),
                Tlb = tlb.ToLowerInvariant() switch
                {
                    "default" => TlbGeometry.Default,
                    "tiny" => TlbGeometry.Tiny,
                    "none" => TlbGeometry.None,
                    _ => throw new MachineDescriptionException($"{rootPath}.Tlb", $"unknown TLB geometry '{tlb}'; allowed: default, tiny, none, or an object with InstructionL1, DataL1, UnifiedL2 arrays."),
                },
            };
        }
        else if (tlbSection.Exists())
        {
            d = d with { TlbName = "custom", Tlb = ReadTlb(tlbSection, $"{rootPath}.Tlb") };
        }
        var devices = new List<DeviceDescription>();
        var devicesSection = root.GetSection("Devices");
        if (devicesSection.Exists())
        {
            if (!string.IsNullOrEmpty(devicesSection.Value))
                throw new MachineDescriptionException($"{rootPath}.Devices", "must be an array of device objects.");
            foreach (var child in devicesSection.GetChildren().OrderBy(c => int.TryParse(c.Key, out var i) ? i : int.MaxValue))
            {
                string path = $"{rootPath}.Devices[{child.Key}]";
                if (!int.TryParse(child.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                    throw new MachineDescriptionException($"{rootPath}.Devices", "must be an array of device objects.");
                devices.Add(ReadDevice(child, path));
            }
        }
        d = d with { Devices = devices };
        MachineDescriptionValidator.Validate(d);
        return d;
    }

    private static readonly string[] TlbKeys = ["InstructionL1", "DataL1", "UnifiedL2", "PagingStructureCaches", "Pml5CacheEntries", "Pml4CacheEntries", "PdptCacheEntries", "PdCacheEntries"];
    private static readonly string[] TlbArrayKeys = ["Name", "Entries", "Ways", "PageSizes"];

    // A custom geometry: { "DataL1": [ { "Name": "DTLB-4K", "Entries": 64, "Ways": 4, "PageSizes": [ "4K" ] } ], ... }.
    private static TlbGeometry ReadTlb(IConfigurationSection s, string path)
    {
        CheckKeys(s, TlbKeys, path);
        IReadOnlyList<TlbArrayConfig> Arrays(string key)
        {
            var list = new List<TlbArrayConfig>();
            foreach (var a in s.GetSection(key).GetChildren())
            {
                string ap = $"{path}.{key}[{a.Key}]";
                CheckKeys(a, TlbArrayKeys, ap);
                var sizes = a.GetSection("PageSizes").GetChildren().Select(c => (c.Value ?? "").ToUpperInvariant() switch
                {
                    "4K" => PageSize.Size4K,
                    "2M" => PageSize.Size2M,
                    "1G" => PageSize.Size1G,
                    var v => throw new MachineDescriptionException($"{ap}.PageSizes", $"'{v}' is not a page size; allowed: 4K, 2M, 1G."),
                }).ToArray();
                list.Add(new TlbArrayConfig(a["Name"] ?? $"{key}-{a.Key}", Int(a, "Entries", ap) ?? 0, Int(a, "Ways", ap) ?? 0, sizes));
            }
            return list;
        }
        var defaults = new TlbGeometry();
        return new TlbGeometry
        {
            InstructionL1 = Arrays("InstructionL1"),
            DataL1 = Arrays("DataL1"),
            UnifiedL2 = Arrays("UnifiedL2"),
            PagingStructureCaches = Bool(s, "PagingStructureCaches", path) ?? defaults.PagingStructureCaches,
            Pml5CacheEntries = Int(s, "Pml5CacheEntries", path) ?? defaults.Pml5CacheEntries,
            Pml4CacheEntries = Int(s, "Pml4CacheEntries", path) ?? defaults.Pml4CacheEntries,
            PdptCacheEntries = Int(s, "PdptCacheEntries", path) ?? defaults.PdptCacheEntries,
            PdCacheEntries = Int(s, "PdCacheEntries", path) ?? defaults.PdCacheEntries,
        };
    }

    private static DeviceDescription ReadDevice(IConfigurationSection s, string path)
    {
        if (s.Value is not null) throw new MachineDescriptionException(path, "must be a device object with Name and Compatible.");
        CheckKeys(s, DeviceKeys, path);
        string name = s["Name"] is { Length: > 0 } n ? n : throw new MachineDescriptionException($"{path}.Name", "missing: every device needs a unique name.");
        var compat = s.GetSection("Compatible");
        IReadOnlyList<string> compatible = compat.Value is { } one ? [one] : compat.GetChildren().Select(c => c.Value ?? "").ToArray();
        if (compatible.Count == 0 || compatible.Any(string.IsNullOrWhiteSpace))
            throw new MachineDescriptionException($"{path}.Compatible", "missing: a compatible string (or an array of them, most specific first) is required.");
        var space = s["Space"] is { } sp
            ? sp.ToLowerInvariant() switch
            {
                "memory" or "mmio" or "mem" => ResourceKind.Memory,
                "io" or "port" or "ports" => ResourceKind.Io,
                _ => throw new MachineDescriptionException($"{path}.Space", $"unknown address space '{sp}'; allowed: memory, io."),
            }
            : (ResourceKind?)null;
        IrqTrigger? trigger = s["Trigger"] is { } t
            ? t.ToLowerInvariant() switch
            {
                "edge" or "edge-rising" => IrqTrigger.EdgeRising,
                "level-high" or "level" => IrqTrigger.LevelHigh,
                "level-low" => IrqTrigger.LevelLow,
                _ => throw new MachineDescriptionException($"{path}.Trigger", $"unknown trigger '{t}'; allowed: edge, level-high, level-low."),
            }
            : null;
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        var opt = s.GetSection("Options");
        if (opt.Value is not null) throw new MachineDescriptionException($"{path}.Options", "must be an object of option names to values.");
        foreach (var o in opt.GetChildren())
        {
            if (o.Value is null) throw new MachineDescriptionException($"{path}.Options.{o.Key}", "must be a plain value (text, number or boolean).");
            options[o.Key.ToLowerInvariant()] = o.Value;
        }
        long? irq = Int(s, "Irq", path);
        return new DeviceDescription
        {
            Name = name,
            Compatible = compatible,
            Space = space ?? DeviceCatalog.DefaultSpace(compatible),
            Base = Number(s, "Base", path),
            Size = Size(s, "Size", path),
            Irq = irq is null ? null : (int)irq,
            Trigger = trigger,
            Options = options,
            Path = path,
        };
    }

    private static void CheckKeys(IConfigurationSection s, string[] allowed, string path)
    {
        foreach (var child in s.GetChildren())
            if (!allowed.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                throw new MachineDescriptionException($"{path}.{child.Key}", $"unknown key; allowed here: {string.Join(", ", allowed)}.");
    }

    private static int? Int(IConfigurationSection s, string key, string path)
    {
        if (Number(s, key, path) is not { } v) return null;
        if (v > int.MaxValue) throw new MachineDescriptionException($"{path}.{key}", $"{v} is too large.");
        return (int)v;
    }

    private static bool? Bool(IConfigurationSection s, string key, string path)
        => s[key] is not { } v ? null
            : bool.TryParse(v, out var b) ? b
            : throw new MachineDescriptionException($"{path}.{key}", $"'{v}' is not a boolean; use true or false.");

    private static ulong? Number(IConfigurationSection s, string key, string path)
        => s[key] is not { } v ? null
            : Quantity.TryParseNumber(v, out var n) ? n
            : throw new MachineDescriptionException($"{path}.{key}", $"'{v}' is not a number; use decimal or 0x hex.");

    private static ulong? Size(IConfigurationSection s, string key, string path)
        => s[key] is not { } v ? null
            : Quantity.TryParseSize(v, out var n) ? n
            : throw new MachineDescriptionException($"{path}.{key}", $"'{v}' is not a size; use bytes (decimal or 0x hex) or a K, M or G suffix, e.g. 128M.");

    private static string Flatten(Exception e) => e.InnerException is null ? e.Message : $"{e.Message} {e.InnerException.Message}";
}

/// <summary>Numbers and sizes as descriptions write them.</summary>
public static class Quantity
{
    /// <summary>Decimal or 0x-prefixed hexadecimal, unsigned 64-bit.</summary>
    public static bool TryParseNumber(string text, out ulong value)
    {
        text = text.Trim().Replace("_", "", StringComparison.Ordinal);
        return text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>A number with an optional K, M, G (or KiB, MiB, GiB) suffix, powers of 1024.</summary>
    public static bool TryParseSize(string text, out ulong value)
    {
        value = 0;
        string t = text.Trim();
        int shift = 0;
        foreach (var (suffix, s) in new[] { ("KiB", 10), ("MiB", 20), ("GiB", 30), ("K", 10), ("M", 20), ("G", 30) })
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && !t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                t = t[..^suffix.Length].TrimEnd();
                shift = s;
                break;
            }
        }
        if (!TryParseNumber(t, out var n) || (shift > 0 && n > (ulong.MaxValue >> shift))) return false;
        value = n << shift;
        return true;
    }
}
