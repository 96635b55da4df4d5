using HwMemModel.Drivers.Serial;
using HwMemModel.Drivers.Timers;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

/// <summary>Builds machines through the DI composition, as users do.</summary>
internal static class TestMachine
{
    /// <summary>An MMIO UART beside the default machine's devices (GSI 18, reg-shift 2).</summary>
    public static readonly DeviceDescription MmioUart = new()
    {
        Name = "serial1", Compatible = ["ns16550a"], Base = 0xFEB02000, Irq = 18, Options = new Dictionary<string, string> { ["reg-shift"] = "2", ["output"] = "host" },
    };

    public static (ServiceProvider Provider, SimulatedMachine Machine) Start(MachineDescription description, Action<IServiceCollection>? drivers = null,
        Func<string, Stream?>? serial = null)
    {
        var services = new ServiceCollection().AddHwMemModel(description, new MachineHostOptions { SerialOutput = serial });
        drivers?.Invoke(services);
        var provider = services.BuildServiceProvider();
        return (provider, provider.StartHwMemModel());
    }

    public static MachineDescription DefaultWith(params DeviceDescription[] extra)
        => MachineDescription.Default with { Devices = [.. MachineDescription.Default.Devices, .. extra] };
}
