using HwMemModel.Devices.Serial;
using HwMemModel.Drivers.Serial;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

public sealed class UartDriverTests
{
    [Test]
    public void Probe_binds_both_the_port_uart_and_the_mmio_uart_and_bytes_reach_each_output()
    {
        var outputs = new Dictionary<string, MemoryStream> { ["serial0"] = new(), ["serial1"] = new() };
        var (provider, machine) = TestMachine.Start(TestMachine.DefaultWith(TestMachine.MmioUart), s => s.AddPlatformDriver<Ns16550Driver>(), n => outputs[n]);
        using var _ = provider;
        var driver = provider.GetRequiredService<Ns16550Driver>();
        Assert.That(driver.Ports.Keys, Is.EquivalentTo(new[] { "serial0", "serial1" }));
        Assert.That(driver.Ports["serial1"].Write("hello mmio"u8), Is.EqualTo(10));
        Assert.That(driver.Ports["serial0"].Write("hello port"u8), Is.EqualTo(10));
        Assert.That(outputs["serial1"].ToArray(), Is.EqualTo("hello mmio"u8.ToArray()));
        Assert.That(outputs["serial0"].ToArray(), Is.EqualTo("hello port"u8.ToArray()));
        // 115200 8N1: divisor 1, LCR 0x03, as the driver programmed through the registers.
        var uart = machine.Device<Uart16550>("serial1");
        Assert.That(uart.Divisor, Is.EqualTo(1));
        Assert.That(uart.LineControl, Is.EqualTo(0x03));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("serial1 at MMIO 0xfeb02000 (irq = 18, base_baud = 115200) is a 16550A"));
    }

    [Test]
    public void Received_bytes_arrive_through_the_receive_interrupt()
    {
        var (provider, machine) = TestMachine.Start(TestMachine.DefaultWith(TestMachine.MmioUart), s => s.AddPlatformDriver<Ns16550Driver>());
        using var _ = provider;
        var port = provider.GetRequiredService<Ns16550Driver>().Ports["serial1"];
        machine.Device<Uart16550>("serial1").EnqueueInput("ping"u8);
        var buffer = new byte[16];
        int n = port.Read(buffer, 10_000_000);
        Assert.That(buffer[..n], Is.EqualTo("ping"u8.ToArray()));
        Assert.That(port.Interrupts, Is.GreaterThan(0));
        Assert.That(machine.Kernel.Interrupts().Single(i => i.Irq == 18).Count, Is.GreaterThan(0));
    }

    [Test]
    public void Read_times_out_with_zero_bytes_after_the_guest_time_given()
    {
        var (provider, machine) = TestMachine.Start(TestMachine.DefaultWith(TestMachine.MmioUart), s => s.AddPlatformDriver<Ns16550Driver>());
        using var _ = provider;
        long before = machine.Clock.Nanoseconds;
        Assert.That(provider.GetRequiredService<Ns16550Driver>().Ports["serial1"].Read(new byte[4], 5_000_000), Is.Zero);
        Assert.That(machine.Clock.Nanoseconds - before, Is.GreaterThanOrEqualTo(5_000_000));
    }

    [Test]
    public void Remove_frees_the_irq_and_the_mapping()
    {
        var (provider, machine) = TestMachine.Start(TestMachine.DefaultWith(TestMachine.MmioUart), s => s.AddPlatformDriver<Ns16550Driver>());
        using var _ = provider;
        var dev = machine.Drivers.Find("serial1")!;
        Assert.That(machine.Kernel.VmAreas().Any(a => a.PhysAddr == 0xFEB02000), Is.True);
        Assert.That(machine.Drivers.Unbind(dev), Is.True);
        Assert.That(dev.ManagedResources, Is.Empty);
        Assert.That(machine.Kernel.Interrupts().Where(i => i.Irq == 18).SelectMany(i => i.Actions), Is.Empty);
        machine.Kernel.VmUnmapAliases();
        Assert.That(machine.Kernel.VmAreas().Any(a => a.PhysAddr == 0xFEB02000), Is.False);
    }
}

public sealed class UartHostInputTests
{
    [Test]
    public void A_host_stream_given_as_input_reaches_the_driver_after_the_byte_the_fifo_reset_drops()
    {
        var uart = TestMachine.MmioUart with { Options = new Dictionary<string, string> { ["reg-shift"] = "2", ["input"] = "host" } };
        var services = new ServiceCollection()
            .AddHwMemModel(TestMachine.DefaultWith(uart), new MachineHostOptions { SerialInput = n => n == "serial1" ? new MemoryStream("from the host"u8.ToArray()) : null })
            .AddPlatformDriver<Ns16550Driver>();
        using var provider = services.BuildServiceProvider();
        provider.StartHwMemModel();
        var port = provider.GetRequiredService<Ns16550Driver>().Ports["serial1"];
        var got = new List<byte>();
        var buffer = new byte[64];
        for (int n; (n = port.Read(buffer, 1_000_000)) > 0;) got.AddRange(buffer[..n]);
        // The stream is connected when the machine is built: with the FIFO off after reset, the receiver holds one
        // byte, and the driver's FCR write (enable, clear receive FIFO) discards it, as on a 16550A (and QEMU).
        Assert.That(got.ToArray(), Is.EqualTo("rom the host"u8.ToArray()));
    }
}
