using System.Globalization;

namespace HwMemModel.Kernel.Drivers;

/// <summary>Kinds of device resources (include/linux/ioport.h IORESOURCE_MEM, _IO, _IRQ).</summary>
public enum ResourceKind : byte
{
    /// <summary>A physical memory window (MMIO registers).</summary>
    Memory,
    /// <summary>A range of x86 I/O ports.</summary>
    Io,
    /// <summary>An interrupt line (a GSI: IOAPIC input).</summary>
    Irq,
}

/// <summary>How an interrupt line signals (IRQF_TRIGGER_*).</summary>
public enum IrqTrigger : byte
{
    /// <summary>Rising edge, active high (ISA devices).</summary>
    EdgeRising,
    /// <summary>Level, active high.</summary>
    LevelHigh,
    /// <summary>Level, active low (PCI INTx as wired on a PC).</summary>
    LevelLow,
}

/// <summary>One resource of a platform device (struct resource).</summary>
/// <param name="Kind">Memory, I/O ports or IRQ.</param>
/// <param name="Start">First address, first port, or the IRQ number.</param>
/// <param name="Size">Bytes or ports; 1 for an IRQ.</param>
/// <param name="Name">The device's name for the resource (shown in /proc/iomem).</param>
/// <param name="Trigger">For an IRQ: how the line signals.</param>
public readonly record struct DeviceResource(ResourceKind Kind, ulong Start, ulong Size, string Name, IrqTrigger Trigger = IrqTrigger.EdgeRising)
{
    /// <summary>The last address or port (inclusive).</summary>
    public ulong End => Start + Size - 1;

    /// <summary>%pR-style text: "[mem 0xfeb00000-0xfeb00fff]", "[io  0x03f8-0x03ff]", "[irq 16]".</summary>
    public override string ToString() => Kind switch
    {
        ResourceKind.Memory => $"[mem 0x{Start:x8}-0x{End:x8}]",
        ResourceKind.Io => $"[io  0x{Start:x4}-0x{End:x4}]",
        _ => string.Create(CultureInfo.InvariantCulture, $"[irq {Start}]"),
    };
}

/// <summary>
/// A platform device (struct platform_device): a name, the compatible strings it matches drivers by (most specific
/// first, as a device-tree node lists them), its resources and options from the machine description, its DMA masks,
/// the driver bound to it and its managed resources (devres), released in reverse order when probe fails and after
/// remove.
/// </summary>
public sealed class PlatformDevice
{
    private readonly List<(string What, Action Release)> _devres = [];

    /// <summary>Creates a device description.</summary>
    /// <exception cref="ArgumentException">The name is empty or no compatible string is given.</exception>
    public PlatformDevice(string name, IReadOnlyList<string> compatible, IReadOnlyList<DeviceResource>? resources = null,
        IReadOnlyDictionary<string, string>? properties = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(compatible);
        if (compatible.Count == 0 || compatible.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException($"Device '{name}' needs at least one non-empty compatible string.", nameof(compatible));
        Name = name;
        Compatible = compatible;
        Resources = resources ?? [];
        Properties = properties ?? new Dictionary<string, string>();
    }

    /// <summary>dev_name.</summary>
    public string Name { get; }
    /// <summary>Compatible strings, most specific first.</summary>
    public IReadOnlyList<string> Compatible { get; }
    /// <summary>The resources.</summary>
    public IReadOnlyList<DeviceResource> Resources { get; }
    /// <summary>Options from the machine description (device properties).</summary>
    public IReadOnlyDictionary<string, string> Properties { get; }
    /// <summary>The streaming DMA mask (dma_set_mask); 32 bits by default, as for platform devices.</summary>
    public ulong DmaMask { get; set; } = uint.MaxValue;
    /// <summary>The coherent DMA mask (dma_set_coherent_mask); 32 bits by default.</summary>
    public ulong CoherentDmaMask { get; set; } = uint.MaxValue;
    /// <summary>The bound driver, or null.</summary>
    public IPlatformDriver? Driver { get; internal set; }
    /// <summary>platform_get_drvdata / platform_set_drvdata.</summary>
    public object? DriverData { get; set; }
    /// <summary>Managed resources held now, oldest first (what each one releases).</summary>
    public IReadOnlyList<string> ManagedResources => _devres.Select(d => d.What).ToArray();

    /// <summary>platform_get_resource: the <paramref name="index"/>-th resource of <paramref name="kind"/>, or null.</summary>
    public DeviceResource? GetResource(ResourceKind kind, int index = 0)
    {
        foreach (var r in Resources)
            if (r.Kind == kind && index-- == 0) return r;
        return null;
    }

    /// <summary>platform_get_irq: the <paramref name="index"/>-th IRQ number, or -ENXIO.</summary>
    public int GetIrq(int index = 0) => GetResource(ResourceKind.Irq, index) is { } r ? (int)r.Start : -Errno.ENXIO;

    /// <summary>A property as text, or <paramref name="fallback"/>.</summary>
    public string? GetProperty(string key, string? fallback = null) => Properties.TryGetValue(key, out var v) ? v : fallback;

    /// <summary>devm_add_action: runs <paramref name="release"/> when the device is unbound or its probe fails.</summary>
    public void AddManagedAction(string what, Action release)
    {
        ArgumentNullException.ThrowIfNull(release);
        _devres.Add((what, release));
    }

    /// <summary>devres_release_all: releases managed resources, newest first.</summary>
    internal int ReleaseManaged()
    {
        int n = _devres.Count;
        for (int i = _devres.Count - 1; i >= 0; i--)
        {
            var (_, release) = _devres[i];
            _devres.RemoveAt(i);
            release();
        }
        return n;
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>
/// A platform driver (struct platform_driver with an of_match_table): it binds to devices whose compatible strings
/// it lists. Probe returns 0 or a negative errno; managed resources are released by the driver core when probe
/// fails and after <see cref="Remove"/>, so a driver that uses the devm_* calls needs no unwinding of its own.
/// Drivers reach hardware only through the kernel-model services they receive in their constructor.
/// </summary>
public interface IPlatformDriver
{
    /// <summary>The driver's name (shown in logs and bindings).</summary>
    string Name { get; }
    /// <summary>The compatible strings it binds to.</summary>
    IReadOnlyList<string> Compatible { get; }
    /// <summary>Sets the device up; 0 on success, a negative errno on failure (everything allocated must be released or managed).</summary>
    int Probe(PlatformDevice device);
    /// <summary>Tears the device down (unmanaged resources are the driver's to free).</summary>
    void Remove(PlatformDevice device);
}
