using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Platform;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine.Description;
using KernelModel = HwMemModel.Kernel.Kernel;

namespace HwMemModel.Machine;

/// <summary>Host-side choices for building a machine that a description does not hold (streams, not guest state).</summary>
public sealed record MachineHostOptions
{
    /// <summary>Where a UART with output "host" sends its bytes, by device name; discarded when null or when it returns null.</summary>
    public Func<string, Stream?>? SerialOutput { get; init; }
    /// <summary>Where a UART with input "host" reads its bytes from, by device name; no input when null or when it returns null.</summary>
    public Func<string, Stream?>? SerialInput { get; init; }
}

/// <summary>
/// A machine built from a <see cref="MachineDescription"/>: the bus with RAM and the BIOS ROM, the port bus, the pc
/// chipset, the described devices (mapped and wired to their GSIs), the kernel model booted over the bus with the
/// machine's interrupt controllers attached, one platform device per described device, and the driver core that
/// binds drivers to them by compatible string. Device reports go to the kernel log.
/// </summary>
public sealed class SimulatedMachine : IInterruptPlatform, IDisposable
{
    private readonly Dictionary<string, object> _models = new(StringComparer.Ordinal);
    private readonly List<PlatformDevice> _platformDevices = [];
    private readonly List<IDisposable> _owned = [];
    private bool _devicesRegistered;

    private SimulatedMachine(MachineDescription description, MachineHostOptions host)
    {
        Description = description;
        Bus = DefaultMachine.CreateBus(description.RamSize);
        Ports = new PortBus { UnmappedPolicy = UnmappedPolicy.AllOnes };
        Clock = new GuestClock();
        Stop = new StopRequest();
        Chipset = PcChipset.Add(Bus, Ports, Clock, Stop, description.RamSize, description.IoApicBase, description.LocalApicBase);
        var parts = new MachineParts(Bus, Ports, Clock, Stop, Chipset, DeviceLog, d => SerialStream(d, host), d => SerialInput(d, host), _owned);
        foreach (var d in description.Devices)
        {
            var kind = DeviceCatalog.Find(d.Compatible)!;
            _models[d.Name] = DeviceCatalog.Create(d, kind, parts);
            var resources = new List<DeviceResource> { new(d.Space, d.Base!.Value, DeviceCatalog.SizeOf(d, kind), d.Name) };
            if (d.Irq is { } irq) resources.Add(new DeviceResource(ResourceKind.Irq, (ulong)irq, 1, d.Name, d.Trigger ?? kind.DefaultTrigger));
            _platformDevices.Add(new PlatformDevice(d.Name, d.Compatible, resources, d.Options));
        }
        Kernel = KernelModel.Boot(Bus, new KernelOptions { Nodes = description.NumaNodes, NodeSizes = description.NumaNodeSizes, Cpus = description.Cpus, FiveLevel = description.FiveLevel, Tlb = description.Tlb });
        DeviceLog.Reported += Kernel.Log.Print;
        Kernel.AttachPortBus(Ports);
        Kernel.AttachInterruptPlatform(this);
        Drivers = new DriverCore(Kernel);
    }

    /// <summary>Builds the machine; the description is validated first.</summary>
    /// <exception cref="MachineDescriptionException">The description cannot be built (the message names the JSON path).</exception>
    public static SimulatedMachine Build(MachineDescription description, MachineHostOptions? host = null)
    {
        ArgumentNullException.ThrowIfNull(description);
        MachineDescriptionValidator.Validate(description);
        return new SimulatedMachine(description, host ?? new MachineHostOptions());
    }

    /// <summary>The description built from.</summary>
    public MachineDescription Description { get; }
    /// <summary>The physical bus.</summary>
    public PhysicalBus Bus { get; }
    /// <summary>The port bus.</summary>
    public PortBus Ports { get; }
    /// <summary>Guest time.</summary>
    public GuestClock Clock { get; }
    /// <summary>Stop requests (isa-debug-exit, resets).</summary>
    public StopRequest Stop { get; }
    /// <summary>Device reports (also copied into the kernel log).</summary>
    public DeviceLog DeviceLog { get; } = new();
    /// <summary>The fixed pc chipset.</summary>
    public PcChipset Chipset { get; }
    /// <summary>The kernel model.</summary>
    public KernelModel Kernel { get; }
    /// <summary>The driver core.</summary>
    public DriverCore Drivers { get; }
    /// <summary>One platform device per described device, in description order.</summary>
    public IReadOnlyList<PlatformDevice> PlatformDevices => _platformDevices;

    /// <summary>The device model named <paramref name="name"/> (tests and tools look at device state; drivers never do).</summary>
    /// <exception cref="KeyNotFoundException">No such device, or not of type <typeparamref name="T"/>.</exception>
    public T Device<T>(string name) where T : class
        => _models.TryGetValue(name, out var m) && m is T t ? t
            : throw new KeyNotFoundException($"The machine has no device '{name}' of type {typeof(T).Name}; devices: {string.Join(", ", _models.Keys)}.");

    /// <summary>Registers the platform devices (once) and then <paramref name="drivers"/> with the driver core, which probes the matches.</summary>
    public void BindDrivers(IEnumerable<IPlatformDriver> drivers)
    {
        ArgumentNullException.ThrowIfNull(drivers);
        RegisterDevices();
        foreach (var driver in drivers) Drivers.RegisterDriver(driver);
    }

    /// <summary>Registers the platform devices with the driver core (idempotent).</summary>
    public void RegisterDevices()
    {
        if (_devicesRegistered) return;
        _devicesRegistered = true;
        foreach (var d in _platformDevices) Drivers.RegisterDevice(d);
    }

    /// <inheritdoc />
    public long NextDeadline => Chipset.NextDeadline;
    /// <inheritdoc />
    public void Poll() => Chipset.Poll();
    /// <inheritdoc />
    public bool InterruptPending => Chipset.CpuInterruptPending;
    /// <inheritdoc />
    public int AcknowledgeInterrupt() => Chipset.AcknowledgeInterrupt();
    /// <inheritdoc />
    public ulong IoApicBase => Chipset.IoApicBase;
    /// <inheritdoc />
    public ulong LocalApicBase => Chipset.LocalApicBase;
    /// <inheritdoc />
    public int IoApicPins => MachineDescriptionValidator.GsiCount;

    /// <summary>Unbinds every driver and closes file-backed disks.</summary>
    public void Dispose()
    {
        Drivers.UnbindAll();
        foreach (var o in _owned) o.Dispose();
        _owned.Clear();
    }

    private static Stream? SerialInput(DeviceDescription d, MachineHostOptions host)
        => (d.Options.TryGetValue("input", out var i) ? i : "null") switch
        {
            "host" => host.SerialInput?.Invoke(d.Name),
            "stdin" => Console.OpenStandardInput(),
            _ => null,
        };

    private static Stream SerialStream(DeviceDescription d, MachineHostOptions host)
        => (d.Options.TryGetValue("output", out var o) ? o : "null") switch
        {
            "host" => host.SerialOutput?.Invoke(d.Name) ?? Stream.Null,
            "stdout" => Console.OpenStandardOutput(),
            "stderr" => Console.OpenStandardError(),
            _ => Stream.Null,
        };
}
