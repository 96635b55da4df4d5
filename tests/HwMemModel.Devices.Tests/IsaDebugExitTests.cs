using HwMemModel.Bus;
using HwMemModel.Devices.Misc;

namespace HwMemModel.Devices.Tests;

public sealed class IsaDebugExitTests
{
    [TestCase(0x00u, 1, 1)]
    [TestCase(0x10u, 1, 33)]
    [TestCase(0xFFu, 1, 0x1FF)]
    [TestCase(0x0102u, 2, 0x205)]
    [TestCase(0x31u, 4, 0x63)]
    [TestCase(0x12345678u, 4, 0x2468ACF1)]
    [TestCase(0xFFFFFFFFu, 4, -1)]
    public void A_write_of_v_requests_exit_status_v_shifted_left_or_1(uint value, int size, int expected)
    {
        var stop = new StopRequest();
        PortBus ports = BusExtensions.PortsWith(new IsaDebugExit(stop), 0xF4, 4);

        ports.Out(0xF4, value, size);

        Assert.That(stop.IsRequested, Is.True);
        Assert.That(stop.ExitStatus, Is.EqualTo(expected));
        Assert.That(stop.ExitStatus & 0xFF, Is.EqualTo((int)((value << 1) | 1) & 0xFF), "the status a shell sees");
    }

    [Test]
    public void The_reason_names_the_value_the_port_and_the_status()
    {
        var stop = new StopRequest();
        PortBus ports = BusExtensions.PortsWith(new IsaDebugExit(stop), 0xF4, 4);

        ports.Out(0xF4, 0x10);

        Assert.That(stop.Reason, Is.EqualTo("isa-debug-exit: guest wrote 0x10 (1 byte) to port 0xf4 (exit status 33)"));
    }

    [Test]
    public void Every_port_of_the_range_exits()
    {
        var stop = new StopRequest();
        PortBus ports = BusExtensions.PortsWith(new IsaDebugExit(stop), 0xF4, 4);

        ports.Out(0xF7, 2, size: 1);

        Assert.That(stop.ExitStatus, Is.EqualTo(5));
        Assert.That(stop.Reason, Does.Contain("to port 0xf7"));
    }

    [Test]
    public void Reads_return_zero_as_on_QEMU()
    {
        var stop = new StopRequest();
        PortBus ports = BusExtensions.PortsWith(new IsaDebugExit(stop), 0xF4, 4);

        Assert.That(ports.In(0xF4, 1), Is.Zero);
        Assert.That(ports.In(0xF4, 4), Is.Zero);
        Assert.That(stop.IsRequested, Is.False);
    }

    [Test]
    public void The_first_request_wins()
    {
        var stop = new StopRequest();
        var device = new IsaDebugExit(stop);
        PortBus ports = BusExtensions.PortsWith(device, 0xF4, 4);

        ports.Out(0xF4, 1);
        ports.Out(0xF4, 2);

        Assert.That(stop.ExitStatus, Is.EqualTo(3));
        Assert.That(device.LastValue, Is.EqualTo(2u));
    }

    [Test]
    public void A_null_stop_request_is_rejected()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => new IsaDebugExit(null!));
        Assert.That(ex!.Message, Does.StartWith("isa-debug-exit needs a non-null stop."));
    }
}
