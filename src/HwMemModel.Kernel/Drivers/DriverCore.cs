using System.Globalization;

namespace HwMemModel.Kernel.Drivers;

/// <summary>One device and the driver bound to it, as /sys/bus/platform/devices shows.</summary>
/// <param name="Device">The device's name.</param>
/// <param name="Compatible">Its first compatible string.</param>
/// <param name="Driver">The bound driver's name, or null.</param>
/// <param name="ProbeResult">The last probe's result (0 when bound, a negative errno when probe failed, null when never probed).</param>
public readonly record struct DeviceBinding(string Device, string Compatible, string? Driver, int? ProbeResult);

/// <summary>
/// The platform bus's driver core (drivers/base/dd.c, platform.c): devices and drivers register in any order; a
/// device binds to the first registered driver that lists one of its compatible strings (the device's own order
/// decides between its strings, as of_match_device does); probe failures release the device's managed resources
/// and are logged as really_probe logs them; unbinding calls Remove and then releases the managed resources.
/// </summary>
public sealed class DriverCore
{
    private readonly Kernel _kernel;
    private readonly List<PlatformDevice> _devices = [];
    private readonly List<IPlatformDriver> _drivers = [];
    private readonly Dictionary<PlatformDevice, int> _probeResults = [];

    /// <summary>Creates the driver core of <paramref name="kernel"/>.</summary>
    public DriverCore(Kernel kernel) => _kernel = kernel ?? throw new ArgumentNullException(nameof(kernel));

    /// <summary>Registered devices in registration order.</summary>
    public IReadOnlyList<PlatformDevice> Devices => _devices;

    /// <summary>Registered drivers in registration order.</summary>
    public IReadOnlyList<IPlatformDriver> Drivers => _drivers;

    /// <summary>platform_device_register: adds the device and binds it if a driver matches; returns the probe result (0 also when no driver matched).</summary>
    /// <exception cref="ArgumentException">A device of that name is already registered.</exception>
    public int RegisterDevice(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (_devices.Any(d => d.Name == device.Name))
            throw new ArgumentException($"A platform device named '{device.Name}' is already registered; device names must be unique.", nameof(device));
        _devices.Add(device);
        var driver = Match(device);
        return driver is null ? 0 : Probe(device, driver);
    }

    /// <summary>platform_driver_register: adds the driver and probes every unbound device it matches; returns how many bound.</summary>
    /// <exception cref="ArgumentException">The driver has no compatible strings or its name is taken.</exception>
    public int RegisterDriver(IPlatformDriver driver)
    {
        ArgumentNullException.ThrowIfNull(driver);
        if (driver.Compatible is null || driver.Compatible.Count == 0)
            throw new ArgumentException($"Driver '{driver.Name}' lists no compatible strings; a platform driver needs at least one to bind.", nameof(driver));
        if (_drivers.Any(d => d.Name == driver.Name))
            throw new ArgumentException($"A driver named '{driver.Name}' is already registered; driver names must be unique.", nameof(driver));
        _drivers.Add(driver);
        int bound = 0;
        foreach (var device in _devices.ToArray())
            if (device.Driver is null && Matches(device, driver) && Probe(device, driver) == 0) bound++;
        return bound;
    }

    /// <summary>platform_driver_unregister: unbinds every device of the driver and forgets it.</summary>
    public void UnregisterDriver(IPlatformDriver driver)
    {
        ArgumentNullException.ThrowIfNull(driver);
        foreach (var device in _devices.Where(d => ReferenceEquals(d.Driver, driver)).ToArray()) Unbind(device);
        _drivers.Remove(driver);
    }

    /// <summary>device_release_driver: Remove, then the managed resources, newest first. Returns false when the device was not bound.</summary>
    public bool Unbind(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Driver is not { } driver) return false;
        driver.Remove(device);
        device.ReleaseManaged();
        device.Driver = null;
        device.DriverData = null;
        _probeResults.Remove(device);
        return true;
    }

    /// <summary>Binds <paramref name="device"/> again to a matching driver (the sysfs "bind" file); the probe result, or -ENODEV when none matches or it is bound.</summary>
    public int Bind(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Driver is not null || Match(device) is not { } driver) return -Errno.ENODEV;
        return Probe(device, driver);
    }

    /// <summary>Unbinds every device, newest first (shutdown).</summary>
    public void UnbindAll()
    {
        for (int i = _devices.Count - 1; i >= 0; i--) Unbind(_devices[i]);
    }

    /// <summary>Every device with its driver and last probe result.</summary>
    public IReadOnlyList<DeviceBinding> Bindings()
        => _devices.Select(d => new DeviceBinding(d.Name, d.Compatible[0], d.Driver?.Name,
            _probeResults.TryGetValue(d, out var r) ? r : null)).ToArray();

    /// <summary>The device named <paramref name="name"/>, or null.</summary>
    public PlatformDevice? Find(string name) => _devices.FirstOrDefault(d => d.Name == name);

    private IPlatformDriver? Match(PlatformDevice device)
    {
        foreach (var compatible in device.Compatible)
            foreach (var driver in _drivers)
                if (driver.Compatible.Contains(compatible, StringComparer.Ordinal)) return driver;
        return null;
    }

    private static bool Matches(PlatformDevice device, IPlatformDriver driver)
        => device.Compatible.Any(c => driver.Compatible.Contains(c, StringComparer.Ordinal));

    private int Probe(PlatformDevice device, IPlatformDriver driver)
    {
        // The firmware description sets each line's trigger before any driver requests it (irq_create_fwspec_mapping).
        foreach (var r in device.Resources)
            if (r.Kind == ResourceKind.Irq && _kernel.HasInterrupts) _kernel.IrqSetType((int)r.Start, r.Trigger);
        device.Driver = driver;
        int rc;
        try
        {
            rc = driver.Probe(device);
        }
        catch
        {
            device.ReleaseManaged();
            device.Driver = null;
            throw;
        }
        _probeResults[device] = rc;
        if (rc == 0) return 0;
        device.ReleaseManaged();
        device.Driver = null;
        device.DriverData = null;
        // really_probe: -ENODEV and -ENXIO are quiet ("probe ... rejects match"); others are warnings.
        if (rc != -Errno.ENODEV && rc != -Errno.ENXIO)
            _kernel.Log.Print(string.Create(CultureInfo.InvariantCulture, $"{driver.Name}: probe of {device.Name} failed with error {rc}"));
        return rc;
    }
}
