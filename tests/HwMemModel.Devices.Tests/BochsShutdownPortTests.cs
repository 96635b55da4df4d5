using HwMemModel.Bus;
using HwMemModel.Devices.Misc;

namespace HwMemModel.Devices.Tests;

// Semantics from QEMU's old hw/pc.c bochs_bios_write (before 1.4) and Bochs. QEMU 7.2 ignores port 0x8900
// (observed with a probe firmware: "Shutdown" written byte by byte, the machine kept running and inb 0x8900 = ff).
public sealed class BochsShutdownPortTests
{
    private static (PortBus Ports, StopRequest Stop, BochsShutdownPort Port) Create()
    {
        var stop = new StopRequest();
        var port = new BochsShutdownPort(stop);
        return (BusExtensions.PortsWith(port, 0x8900, 1), stop, port);
    }

    private static void Write(PortBus ports, string text)
    {
        foreach (char c in text) ports.Out(0x8900, c);
    }

    [Test]
    public void Shutdown_written_byte_by_byte_powers_off_with_status_0()
    {
        var (ports, stop, _) = Create();
        Write(ports, "Shutdow");
        Assert.That(stop.IsRequested, Is.False);
        Write(ports, "n");
        Assert.That(stop.IsRequested, Is.True);
        Assert.That(stop.ExitStatus, Is.Zero);
        Assert.That(stop.Reason, Is.EqualTo("bochs-shutdown: guest wrote \"Shutdown\" to port 0x8900 (power off, exit status 0)"));
    }

    [TestCase("SShutdown")]
    [TestCase("shutdown")]
    [TestCase("Shut down")]
    [TestCase("Shutdow")]
    public void Other_sequences_do_not_power_off(string text)
    {
        var (ports, stop, _) = Create();
        Write(ports, text);
        Assert.That(stop.IsRequested, Is.False);
    }

    [Test]
    public void A_wrong_byte_starts_over()
    {
        var (ports, stop, port) = Create();
        Write(ports, "Shux");
        Assert.That(port.Matched, Is.Zero);
        Write(ports, "Shutdown");
        Assert.That(stop.IsRequested, Is.True);
    }

    [Test]
    public void A_word_write_reaches_the_port_as_its_low_byte_and_reads_are_all_ones()
    {
        var (ports, _, port) = Create();
        ports.Out(0x8900, 'S' | ('x' << 8), size: 2);
        Assert.That(port.Matched, Is.EqualTo(1));
        Assert.That(ports.In(0x8900), Is.EqualTo(0xFFu));
    }
}
