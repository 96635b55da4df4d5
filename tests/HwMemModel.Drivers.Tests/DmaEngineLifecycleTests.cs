using HwMemModel.Devices.Dma;
using HwMemModel.Drivers.Dma;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using Microsoft.Extensions.DependencyInjection;
using static HwMemModel.Drivers.Tests.DmaEngineDriverTests;

namespace HwMemModel.Drivers.Tests;

/// <summary>
/// Remove, probe failures and fault injection for the DMA engine driver: whatever happens, the slab caches, the vmalloc
/// space, the free pages and the DMA mappings come back to what they were before the driver was registered.
/// </summary>
public sealed class DmaEngineLifecycleTests
{
    // The machine with its devices registered and the driver built by DI but not registered yet.
    private static (ServiceProvider Provider, SimulatedMachine Machine, DmaEngineDriver Driver) Unbound()
    {
        var (provider, machine) = TestMachine.Start(MachineDescription.Default, s => s.AddSingleton<DmaEngineDriver>());
        machine.RegisterDevices();
        return (provider, machine, provider.GetRequiredService<DmaEngineDriver>());
    }

    private static int? ProbeResult(SimulatedMachine machine) => machine.Drivers.Bindings().Single(b => b.Device == "dma0").ProbeResult;

    private static void DoSomeIo(SimulatedMachine machine, DmaChannel channel)
    {
        // Buffers from the page allocator: a kmalloc cache could keep an empty slab, which is not the driver's doing.
        var k = machine.Kernel;
        ulong srcPa = k.Pages.AllocPages(Gfp.Kernel, 1)!.Value, dstPa = k.Pages.AllocPages(Gfp.Kernel | Gfp.Zero, 1)!.Value;
        ulong src = k.PhysToVirt(srcPa), dst = k.PhysToVirt(dstPa);
        var data = Enumerable.Range(0, 8192).Select(i => (byte)(i ^ (i >> 8))).ToArray();
        k.Memory.WriteBytes(src, data);
        Assert.That(channel.CopyKernel(dst, src, 8192), Is.Zero);
        var back = new byte[8192];
        k.Memory.ReadBytes(dst, back);
        Assert.That(back, Is.EqualTo(data));
        k.Pages.FreePages(srcPa, 1);
        k.Pages.FreePages(dstPa, 1);
    }

    [Test]
    public void Remove_stops_and_resets_the_engine_and_leaves_nothing_behind()
    {
        var (provider, machine, driver) = Unbound();
        using var _ = provider;
        var baseline = LeakBaseline.Take(machine);
        Assert.That(machine.Drivers.RegisterDriver(driver), Is.EqualTo(1));
        var channel = driver.Channels["dma0"];
        DoSomeIo(machine, channel);
        var dev = machine.Drivers.Find("dma0")!;

        Assert.That(machine.Drivers.Unbind(dev), Is.True);

        // The engine is back at reset: disabled, no ring, interrupt low.
        Assert.That(Reg(machine, RegControl), Is.Zero);
        Assert.That(Reg(machine, RegRingBase, 8), Is.Zero);
        Assert.That(Reg(machine, RegRingSize), Is.Zero);
        Assert.That(machine.Device<DmaEngine>("dma0").IrqLine, Is.False);
        Assert.That(dev.ManagedResources, Is.Empty);
        Assert.That(driver.Channels, Is.Empty);
        Assert.That(machine.Kernel.Interrupts().Where(i => i.Irq == Irq).SelectMany(i => i.Actions), Is.Empty);
        Assert.That(machine.Kernel.DmaMappings, Is.Empty);
        Assert.That(machine.Kernel.DmaViolations, Is.Empty);
        baseline.AssertUnchanged(machine, "after unbind");
        Assert.That(channel.Copy(0x1000, 0x2000, 64), Is.EqualTo(-Errno.ENODEV), "a channel outlived by its device refuses work");

        // Bound again, it works again.
        Assert.That(machine.Drivers.Bind(dev), Is.Zero);
        DoSomeIo(machine, driver.Channels["dma0"]);
        machine.Drivers.UnregisterDriver(driver);
        baseline.AssertUnchanged(machine, "after a second bind and unregister");
        Assert.That(machine.Kernel.Log.Lines.Where(l => l.Contains("WARNING", StringComparison.Ordinal) || l.Contains("BUG", StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public void A_device_whose_ID_register_is_not_the_engine_is_rejected_with_ENODEV()
    {
        var (provider, machine, driver) = Unbound();
        using var _ = provider;
        Assert.That(machine.Drivers.RegisterDriver(driver), Is.EqualTo(1));
        var baseline = LeakBaseline.Take(machine);
        // A "DMA engine" described at the HPET's window: offset 0 reads the HPET's capabilities, not "HDMA".
        var fake = new PlatformDevice("dma-fake", ["hwmem,dma-engine"],
            [new DeviceResource(ResourceKind.Memory, 0xFED0_0000, 0x400, "dma-fake"), new DeviceResource(ResourceKind.Irq, 16, 1, "dma-fake", IrqTrigger.LevelHigh)]);

        Assert.That(machine.Drivers.RegisterDevice(fake), Is.EqualTo(-Errno.ENODEV));

        Assert.That(fake.Driver, Is.Null);
        Assert.That(fake.ManagedResources, Is.Empty);
        Assert.That(driver.Channels.Keys, Is.EqualTo(new[] { "dma0" }));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("dma-fake: ID register reads 0x8086a201"));
        baseline.AssertUnchanged(machine, "after the rejected probe");
    }

    [Test]
    public void Every_slab_failure_during_probe_unwinds_completely()
        => ProbeUnderFaultInjection(m => m.Kernel.Failslab);

    [Test]
    public void Every_page_allocation_failure_during_probe_unwinds_completely()
        => ProbeUnderFaultInjection(m => m.Kernel.Pages.FailPageAlloc);

    private static void ProbeUnderFaultInjection(Func<SimulatedMachine, FaultInjection> injector)
    {
        var (provider, machine, driver) = Unbound();
        using var _ = provider;
        var fault = injector(machine);
        var dev = machine.Drivers.Find("dma0")!;
        var baseline = LeakBaseline.Take(machine);
        int failures = 0;
        for (ulong k = 1; ; k++)
        {
            Assert.That(k, Is.LessThan(100UL), "probe should stop making allocations long before this");
            long injectedBefore = fault.Injected;
            fault.Configure(probability: 100, interval: k, times: 1);
            machine.Drivers.RegisterDriver(driver);
            fault.Disable();
            long injected = fault.Injected - injectedBefore;
            int? rc = ProbeResult(machine);
            if (rc == 0 && injected > 0)
            {
                // The injected failure was absorbed on the way (SLUB retries a new slab at its minimum order, as
                // Linux's allocate_slab does): probe rightly succeeded. It must still unwind on unregister.
                machine.Drivers.UnregisterDriver(driver);
                baseline.AssertUnchanged(machine, $"{fault.Name} interval {k} (absorbed)");
                continue;
            }
            if (rc == 0) break;
            failures++;
            Assert.That(injected, Is.EqualTo(1), $"interval {k}");
            Assert.That(rc, Is.LessThan(0), $"interval {k}");
            Assert.That(dev.Driver, Is.Null, $"interval {k}");
            Assert.That(dev.ManagedResources, Is.Empty, $"interval {k}");
            Assert.That(driver.Channels, Is.Empty, $"interval {k}");
            Assert.That(machine.Kernel.Interrupts().Where(i => i.Irq == Irq).SelectMany(i => i.Actions), Is.Empty, $"interval {k}");
            Assert.That(Reg(machine, RegControl), Is.Zero, $"interval {k}: the engine is left disabled");
            machine.Drivers.UnregisterDriver(driver);
            baseline.AssertUnchanged(machine, $"{fault.Name} interval {k} (probe returned {rc})");
        }
        Assert.That(failures, Is.GreaterThan(0), $"{fault.Name} reached at least one allocation of probe");
        TestContext.Out.WriteLine($"{fault.Name}: {failures} injected probe failures unwound");

        // The probe that finally succeeded works and unwinds as well.
        DoSomeIo(machine, driver.Channels["dma0"]);
        machine.Drivers.UnregisterDriver(driver);
        baseline.AssertUnchanged(machine, $"{fault.Name}: after the successful probe and unregister");
        Assert.That(machine.Kernel.DmaViolations, Is.Empty);
    }
}
