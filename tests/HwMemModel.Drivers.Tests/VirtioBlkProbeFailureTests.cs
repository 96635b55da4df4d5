using HwMemModel.Devices.Virtio;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using static HwMemModel.Drivers.Tests.VirtioBlkTestSupport;

namespace HwMemModel.Drivers.Tests;

/// <summary>Probe failures injected into the k-th allocation, for k = 1, 2, ... until probe gets through untouched.</summary>
public sealed class VirtioBlkProbeFailureTests
{
    [Test]
    public void Failslab_in_any_allocation_of_probe_unwinds_completely()
        => InjectUntilProbeSucceeds(m => m.Kernel.Failslab);

    [Test]
    public void Fail_page_alloc_in_any_allocation_of_probe_unwinds_completely()
        => InjectUntilProbeSucceeds(m => m.Kernel.Pages.FailPageAlloc);

    private static void InjectUntilProbeSucceeds(Func<SimulatedMachine, FaultInjection> injector)
    {
        var (provider, machine, driver) = BuildUnbound();
        using var _ = provider;
        var fault = injector(machine);
        var dev = machine.Drivers.Find("virtio0")!;
        var device = Device(machine);
        var baseline = KernelSnapshot.Take(machine);
        int failures = 0, failedAfterAcknowledge = 0;
        bool registered = false;
        for (ulong k = 1; ; k++)
        {
            Assert.That(k, Is.LessThan(200UL), "probe should get through once the injection point passes its allocations");
            device.Reset(); // the test puts the device back in its power-on state, so what probe leaves is visible
            long injectedBefore = fault.Injected;
            fault.Configure(probability: 100, interval: k, times: 1);
            int rc;
            if (!registered)
            {
                machine.Drivers.RegisterDriver(driver);
                registered = true;
                rc = machine.Drivers.Bindings().Single(b => b.Device == "virtio0").ProbeResult!.Value;
            }
            else
            {
                rc = machine.Drivers.Bind(dev);
            }
            fault.Disable();
            bool hit = fault.Injected > injectedBefore;
            TestContext.Out.WriteLine($"{fault.Name} k={k}: probe {rc}, injected {hit}, device status {device.Status}");

            if (rc != 0)
            {
                Assert.That(hit, Is.True, $"k={k}: probe failed ({rc}) only because of the injection");
                Assert.That(rc, Is.LessThan(0), $"k={k}: a negative errno");
                Assert.That(dev.Driver, Is.Null, $"k={k}: unbound");
                Assert.That(dev.ManagedResources, Is.Empty, $"k={k}: managed resources released");
                Assert.That(machine.Kernel.DmaMappings, Is.Empty, $"k={k}: DMA mappings");
                Assert.That(IrqActions(machine, VirtioIrq), Is.Empty, $"k={k}: irq freed");
                Assert.That(device.Status & VirtioStatus.DriverOk, Is.EqualTo(VirtioStatus.None), $"k={k}: never DRIVER_OK");
                // Untouched (failed before the reset), or given up on with FAILED (section 3.1.1, step 8).
                if (device.Status != VirtioStatus.None)
                {
                    Assert.That(device.Status & VirtioStatus.Failed, Is.EqualTo(VirtioStatus.Failed), $"k={k}: FAILED set");
                    failedAfterAcknowledge++;
                }
                baseline.AssertSame(KernelSnapshot.Take(machine), $"after the probe failure at k={k}");
                failures++;
                continue;
            }

            // Bound: use it once, then unbind and check the books balance whether or not the injection hit.
            var back = new byte[Sector];
            Assert.That(driver.Disks["virtio0"].ReadSectors(0, back), Is.Zero, $"k={k}: the bound disk works");
            Assert.That(machine.Drivers.Unbind(dev), Is.True);
            baseline.AssertSame(KernelSnapshot.Take(machine), $"after unbinding at k={k}");
            if (!hit) break;
        }
        Assert.That(failures, Is.GreaterThan(0), "some allocation of probe was failed");
        Assert.That(failedAfterAcknowledge, Is.GreaterThan(0), "some failure came after the virtio initialisation started");
        Assert.That(machine.Kernel.DmaViolations, Is.Empty);
        Assert.That(machine.Kernel.Log.Lines, Has.None.Contains("DMA-API"));
    }
}
