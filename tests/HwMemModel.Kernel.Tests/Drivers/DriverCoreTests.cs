using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;

namespace HwMemModel.Kernel.Tests.Drivers;

public sealed class DriverCoreTests
{
    private sealed class FakeDriver(string name, int result, params string[] compatible) : IPlatformDriver
    {
        public List<string> Calls { get; } = [];
        public string Name => name;
        public IReadOnlyList<string> Compatible => compatible;
        public int Probe(PlatformDevice device)
        {
            Calls.Add("probe " + device.Name);
            device.AddManagedAction("first", () => Calls.Add("release first"));
            device.AddManagedAction("second", () => Calls.Add("release second"));
            return result;
        }
        public void Remove(PlatformDevice device) => Calls.Add("remove " + device.Name);
    }

    private static (Kernel, DriverCore) Core()
    {
        var k = Kernel.Boot(DefaultMachine.CreateBus(64UL << 20));
        return (k, new DriverCore(k));
    }

    [Test]
    public void A_failed_probe_releases_managed_resources_newest_first_and_is_logged()
    {
        var (k, core) = Core();
        var d = new FakeDriver("fake", -Errno.ENOMEM, "acme,x");
        core.RegisterDriver(d);
        Assert.That(core.RegisterDevice(new PlatformDevice("x0", ["acme,x"])), Is.EqualTo(-Errno.ENOMEM));
        Assert.That(d.Calls, Is.EqualTo(new[] { "probe x0", "release second", "release first" }));
        Assert.That(k.Log.ToString(), Does.Contain("fake: probe of x0 failed with error -12"));
        Assert.That(core.Bindings().Single(), Is.EqualTo(new DeviceBinding("x0", "acme,x", null, -12)));
    }

    [Test]
    public void ENODEV_from_probe_is_quiet()
    {
        var (k, core) = Core();
        core.RegisterDriver(new FakeDriver("fake", -Errno.ENODEV, "acme,x"));
        core.RegisterDevice(new PlatformDevice("x0", ["acme,x"]));
        Assert.That(k.Log.ToString(), Does.Not.Contain("probe of x0"));
    }

    [Test]
    public void Unbind_calls_remove_then_releases_resources()
    {
        var (_, core) = Core();
        var d = new FakeDriver("fake", 0, "acme,x");
        var dev = new PlatformDevice("x0", ["acme,x"]);
        core.RegisterDevice(dev);
        Assert.That(core.RegisterDriver(d), Is.EqualTo(1), "a driver registered after its device binds it");
        Assert.That(dev.Driver, Is.SameAs(d));
        Assert.That(dev.ManagedResources, Is.EqualTo(new[] { "first", "second" }));
        core.Unbind(dev);
        Assert.That(d.Calls, Is.EqualTo(new[] { "probe x0", "remove x0", "release second", "release first" }));
        Assert.That(dev.Driver, Is.Null);
        Assert.That(core.Unbind(dev), Is.False);
    }

    [Test]
    public void The_devices_own_compatible_order_chooses_between_drivers()
    {
        var (_, core) = Core();
        var generic = new FakeDriver("generic", 0, "ns16550");
        var specific = new FakeDriver("specific", 0, "ns16550a");
        core.RegisterDriver(generic);
        core.RegisterDriver(specific);
        var dev = new PlatformDevice("u0", ["ns16550a", "ns16550"]);
        core.RegisterDevice(dev);
        Assert.That(dev.Driver, Is.SameAs(specific));
    }

    [Test]
    public void Host_misuse_is_refused_with_a_message_saying_what_is_allowed()
    {
        var (_, core) = Core();
        Assert.That(() => core.RegisterDriver(new FakeDriver("none", 0)), Throws.ArgumentException.With.Message.Contains("lists no compatible strings"));
        core.RegisterDevice(new PlatformDevice("x0", ["a,b"]));
        Assert.That(() => core.RegisterDevice(new PlatformDevice("x0", ["a,b"])), Throws.ArgumentException.With.Message.Contains("device names must be unique"));
        Assert.That(() => new PlatformDevice("y", []), Throws.ArgumentException.With.Message.Contains("at least one non-empty compatible string"));
    }
}
