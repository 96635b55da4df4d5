using HwMemModel.Drivers.Serial;
using HwMemModel.Drivers.Timers;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

/// <summary>
/// Every allocation a probe makes can fail (failslab, fail_page_alloc): the probe returns the error and the slab
/// caches, the vmalloc areas, the free pages and the DMA mappings are as they were before. The same after Remove.
/// </summary>
public sealed class ProbeFaultInjectionTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var injector in new[] { "failslab", "fail_page_alloc" })
        {
            yield return new TestCaseData(typeof(Ns16550Driver), "serial1", injector).SetName($"UART probe under {injector}");
            yield return new TestCaseData(typeof(HpetDriver), "hpet", injector).SetName($"HPET probe under {injector}");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void Every_injected_failure_in_probe_unwinds_completely(Type driverType, string device, string injector)
    {
        var services = new ServiceCollection().AddHwMemModel(TestMachine.DefaultWith(TestMachine.MmioUart));
        services.AddSingleton(driverType);
        using var provider = services.BuildServiceProvider();
        var machine = provider.GetRequiredService<SimulatedMachine>();
        machine.RegisterDevices();
        var driver = (IPlatformDriver)provider.GetRequiredService(driverType);
        var dev = machine.Drivers.Find(device)!;
        FaultInjection fault = injector == "failslab" ? machine.Kernel.Failslab : machine.Kernel.Pages.FailPageAlloc;
        var baseline = LeakBaseline.Take(machine);
        int failures = 0;
        for (ulong k = 1; ; k++)
        {
            Assert.That(k, Is.LessThan(200UL), "probe should stop allocating long before this");
            long before = fault.Injected;
            fault.Configure(probability: 100, interval: k, times: 1);
            machine.Drivers.RegisterDriver(driver);
            fault.Disable();
            bool injected = fault.Injected > before;
            bool bound = dev.Driver is not null;
            if (!bound)
            {
                failures++;
                Assert.That(injected, Is.True, $"k={k}: probe failed without an injected failure");
                Assert.That(machine.Drivers.Bindings().Single(b => b.Device == device).ProbeResult, Is.LessThan(0), $"k={k}");
                Assert.That(dev.ManagedResources, Is.Empty, $"k={k}");
            }
            machine.Drivers.UnregisterDriver(driver);
            baseline.AssertUnchanged(machine, $"{injector} k={k} ({(bound ? "bound, then removed" : "probe failed")})");
            if (bound && !injected) break;
        }
        if (injector == "failslab") Assert.That(failures, Is.GreaterThan(0), "failslab reaches the devres records and the irqaction");
        TestContext.Out.WriteLine($"{driverType.Name} under {injector}: {failures} failed probes unwound");
    }
}
