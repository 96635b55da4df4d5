using KernelModel = HwMemModel.Kernel.Kernel;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine.Description;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HwMemModel.Machine;

/// <summary>
/// Composition of a machine with Microsoft.Extensions.DependencyInjection:
/// <code>
/// var services = new ServiceCollection()
///     .AddHwMemModel(MachineDescriptionReader.FromJsonFile("machine.json"))
///     .AddPlatformDriver&lt;VirtioBlkDriver&gt;();
/// using var provider = services.BuildServiceProvider();
/// var machine = provider.StartHwMemModel();   // devices registered, drivers probed
/// </code>
/// The description is validated when <c>AddHwMemModel</c> is called, so a bad description fails at build time with its
/// JSON path. The container holds the machine, its bus, port bus and clock, the kernel model and each of its
/// driver-facing services (<see cref="ISlabApi"/>, <see cref="IVmallocApi"/>, <see cref="IIoMemApi"/>,
/// <see cref="IDmaApi"/>, <see cref="IIrqApi"/>, <see cref="IDevresApi"/>, <see cref="KernelMemory"/>), the driver
/// core, and logging into the kernel log (ILogger&lt;T&gt;).
/// </summary>
public static class ServiceCollectionExtensions
{
    /// <summary>Adds the machine <paramref name="description"/> (validated now) and the kernel model's services.</summary>
    /// <exception cref="MachineDescriptionException">The description cannot be built.</exception>
    public static IServiceCollection AddHwMemModel(this IServiceCollection services, MachineDescription description, MachineHostOptions? host = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(description);
        MachineDescriptionValidator.Validate(description);
        services.AddSingleton(sp => SimulatedMachine.Build(description, host));
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Bus);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Ports);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Clock);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Kernel);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Drivers);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Chipset);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().DeviceLog);
        services.AddSingleton(sp => sp.GetRequiredService<SimulatedMachine>().Stop);
        services.AddSingleton(sp => sp.GetRequiredService<KernelModel>().Memory);
        services.AddSingleton<ISlabApi>(sp => sp.GetRequiredService<KernelModel>());
        services.AddSingleton<IVmallocApi>(sp => sp.GetRequiredService<KernelModel>());
        services.AddSingleton<IIoMemApi>(sp => sp.GetRequiredService<KernelModel>());
        services.AddSingleton<IDmaApi>(sp => sp.GetRequiredService<KernelModel>());
        services.AddSingleton<IIrqApi>(sp => sp.GetRequiredService<KernelModel>());
        services.AddSingleton<IDevresApi>(sp => sp.GetRequiredService<KernelModel>());
        services.AddLogging();
        services.AddSingleton<ILoggerProvider>(sp => new KernelLogProvider(() => sp.GetRequiredService<KernelModel>().Log));
        return services;
    }

    /// <summary>Adds the machine described in the "Machine" section of <paramref name="configuration"/> (validated now).</summary>
    /// <exception cref="MachineDescriptionException">The description cannot be built (the message names the JSON path).</exception>
    public static IServiceCollection AddHwMemModel(this IServiceCollection services, IConfiguration configuration, MachineHostOptions? host = null)
        => services.AddHwMemModel(MachineDescriptionReader.FromConfiguration(configuration), host);

    /// <summary>Adds the built-in default machine (<see cref="MachineDescription.Default"/>).</summary>
    public static IServiceCollection AddHwMemModel(this IServiceCollection services, MachineHostOptions? host = null)
        => services.AddHwMemModel(MachineDescription.Default, host);

    /// <summary>Adds a platform driver; it binds to matching devices when <see cref="StartHwMemModel"/> runs.</summary>
    public static IServiceCollection AddPlatformDriver<TDriver>(this IServiceCollection services) where TDriver : class, IPlatformDriver
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddSingleton<TDriver>();
        services.AddSingleton<IPlatformDriver>(sp => sp.GetRequiredService<TDriver>());
        return services;
    }

    /// <summary>Builds the machine, registers its devices and every added driver (which probes the matches), and returns the machine.</summary>
    public static SimulatedMachine StartHwMemModel(this IServiceProvider provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        var machine = provider.GetRequiredService<SimulatedMachine>();
        machine.BindDrivers(provider.GetServices<IPlatformDriver>());
        return machine;
    }
}

/// <summary>ILogger output into the kernel log, one line per message: "{category}: {message}" (as dev_info prefixes the driver).</summary>
public sealed class KernelLogProvider : ILoggerProvider
{
    private readonly Func<KernelLog> _log;

    /// <summary>Creates the provider over the kernel log <paramref name="log"/> returns.</summary>
    public KernelLogProvider(Func<KernelLog> log) => _log = log ?? throw new ArgumentNullException(nameof(log));

    /// <inheritdoc />
    public ILogger CreateLogger(string categoryName) => new KernelLogger(_log, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    /// <inheritdoc />
    public void Dispose() { }

    private sealed class KernelLogger(Func<KernelLog> log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            log().Print($"{category}: {formatter(state, exception)}");
        }
    }
}

/// <summary>The drivers that ship with HwMemModel (devices/HwMemModel.Drivers).</summary>
public static class BuiltInDrivers
{
    /// <summary>Adds the 16550A, HPET, DMA engine and virtio-blk drivers.</summary>
    public static IServiceCollection AddBuiltInDrivers(this IServiceCollection services)
        => services
            .AddPlatformDriver<Drivers.Serial.Ns16550Driver>()
            .AddPlatformDriver<Drivers.Timers.HpetDriver>()
            .AddPlatformDriver<Drivers.Dma.DmaEngineDriver>()
            .AddPlatformDriver<Drivers.Block.VirtioBlkDriver>();
}
