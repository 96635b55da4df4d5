using HwMemModel.Bus;

namespace HwMemModel.Devices.Tests;

/// <summary>Port and memory accessors that assert the bus status is Ok.</summary>
internal static class BusExtensions
{
    public static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    public static uint In(this PortBus bus, ushort port, int size = 1)
    {
        BusStatus status = bus.Read(port, size, out uint value, Cpu0);
        Assert.That(status, Is.EqualTo(BusStatus.Ok), $"IN {size} byte(s) from port 0x{port:x}");
        return value;
    }

    public static void Out(this PortBus bus, ushort port, uint value, int size = 1)
    {
        BusStatus status = bus.Write(port, size, value, Cpu0);
        Assert.That(status, Is.EqualTo(BusStatus.Ok), $"OUT {size} byte(s) to port 0x{port:x}");
    }

    public static ulong Load(this PhysicalBus bus, ulong pa, int size = 4)
    {
        BusStatus status = bus.Read(pa, size, out ulong value, Cpu0);
        Assert.That(status, Is.EqualTo(BusStatus.Ok), $"load of {size} bytes at 0x{pa:x}");
        return value;
    }

    public static void Store(this PhysicalBus bus, ulong pa, ulong value, int size = 4)
    {
        BusStatus status = bus.Write(pa, size, value, Cpu0);
        Assert.That(status, Is.EqualTo(BusStatus.Ok), $"store of {size} bytes at 0x{pa:x}");
    }

    /// <summary>A port bus with <paramref name="device"/> mapped at <paramref name="port"/>.</summary>
    public static PortBus PortsWith(IMmioDevice device, ushort port, int count)
    {
        var bus = new PortBus();
        bus.Add(device.Name, port, count, device);
        return bus;
    }

    /// <summary>A memory bus with <paramref name="device"/> mapped at <paramref name="pa"/>.</summary>
    public static PhysicalBus MemoryWith(IMmioDevice device, ulong pa, ulong size)
    {
        var bus = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        bus.AddMmio(device.Name, pa, size, device);
        return bus;
    }
}

/// <summary>Records (line, level) events in order.</summary>
internal sealed class IrqLog
{
    public List<(int Line, bool Level)> Events { get; } = [];

    public void Record(int line, bool level) => Events.Add((line, level));

    public Action<bool> For(int line) => level => Events.Add((line, level));

    public int RisingEdges(int line) => Events.Count(e => e.Line == line && e.Level);
}
