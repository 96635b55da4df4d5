using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Dma;
using HwMemModel.Devices.Virtio;

namespace HwMemModel.Devices.Tests;

/// <summary>
/// The guest can never crash the host: random register writes (any offset, any size, any value) and random bytes in
/// the RAM the devices read their rings and descriptors from must never throw out of the bus-master devices, and the
/// same seed must give the same state.
/// </summary>
public sealed class BusMasterFuzzTests
{
    private const ulong DmaBase = 0xFEB0_0000, VirtioBase = 0xFEB0_1000;

    private static (PhysicalBus Bus, GuestClock Clock, DmaEngine Dma, VirtioMmioBlock Blk, DeviceLog Log) Build()
    {
        var bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        bus.AddRam("ram", 0, 16UL << 20);
        var clock = new GuestClock();
        var log = new DeviceLog();
        var dma = new DmaEngine(bus, clock, log);
        var blk = new VirtioMmioBlock(bus, new MemoryBlockBackend(1 << 20), log);
        bus.AddMmio("dma0", DmaBase, 0x1000, dma);
        bus.AddMmio("virtio0", VirtioBase, 0x200, blk);
        return (bus, clock, dma, blk, log);
    }

    private static string Run(int seed, int steps)
    {
        var (bus, clock, dma, blk, log) = Build();
        var rng = new Random(seed);
        var page = new byte[4096];
        for (int i = 0; i < steps; i++)
        {
            switch (rng.Next(6))
            {
                case 0:
                {
                    // Scribble on low RAM, where the rings and descriptors below point.
                    rng.NextBytes(page);
                    bus.WriteBytes((ulong)rng.Next(0, 64) * 4096, page, BusAttributes.Host);
                    break;
                }
                case 1 or 2:
                {
                    ulong baseAddr = rng.Next(2) == 0 ? DmaBase : VirtioBase;
                    int size = 1 << rng.Next(4);
                    ulong offset = (ulong)rng.Next(0, 0x200) & ~(ulong)(size - 1);
                    // Small addresses and small counts half the time, so that rings land in RAM and get used.
                    ulong value = rng.Next(2) == 0 ? (ulong)rng.Next(0, 64) * (rng.Next(2) == 0 ? 4096UL : 1UL) : (ulong)rng.NextInt64();
                    bus.Write(baseAddr + offset, size, value, BusAttributes.Cpu(0));
                    break;
                }
                case 3:
                {
                    ulong baseAddr = rng.Next(2) == 0 ? DmaBase : VirtioBase;
                    int size = 1 << rng.Next(4);
                    bus.Read(baseAddr + ((ulong)rng.Next(0, 0x200) & ~(ulong)(size - 1)), size, out _, BusAttributes.Cpu(0));
                    break;
                }
                case 4:
                    clock.Advance(rng.Next(0, 100_000));
                    dma.Poll();
                    break;
                default:
                    // The meaningful doorbells, often: DMA TAIL and virtio QueueNotify.
                    bus.Write(DmaBase + 0x34, 4, (ulong)rng.Next(0, 8), BusAttributes.Cpu(0));
                    bus.Write(VirtioBase + 0x50, 4, 0, BusAttributes.Cpu(0));
                    break;
            }
        }
        return $"{dma.Status:x}/{dma.Head}/{blk.Status}/{blk.InterruptStatus}/{log.Count}/{dma.IrqLine}/{blk.IrqLine}";
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    [TestCase(4)]
    public void Random_guest_programming_never_throws_and_is_deterministic(int seed)
    {
        string first = "", second = "";
        Assert.DoesNotThrow(() => first = Run(seed, 20_000));
        Assert.DoesNotThrow(() => second = Run(seed, 20_000));
        Assert.That(second, Is.EqualTo(first));
    }
}

/// <summary>The same for the port devices firmware pokes at: fw_cfg (with DMA), pc-testdev, the shutdown port.</summary>
public sealed class PlatformPortFuzzTests
{
    private static string Run(int seed)
    {
        var memory = new PhysicalBus(40, UnmappedPolicy.Zero);
        memory.AddRam("ram", 0, 16UL << 20);
        var ports = new PortBus { UnmappedPolicy = UnmappedPolicy.AllOnes };
        var stop = new StopRequest();
        var chipset = Platform.PcChipset.Add(memory, ports, new GuestClock(), stop, 16UL << 20);
        var fw = Platform.PcPlatform.AddFwCfg(memory, ports, 16UL << 20, 1, null);
        var testdev = Platform.PcPlatform.AddPcTestdev(memory, ports, chipset, stop);
        Platform.PcPlatform.AddShutdownPort(ports, stop);
        var rng = new Random(seed);
        ushort[] interesting = [0x510, 0x511, 0x512, 0x514, 0x518, 0x51B, 0xE0, 0xE2, 0xE4, 0xE8, 0xEA, 0x2000, 0x2007, 0x2017, 0x8900];
        var page = new byte[4096];
        for (int i = 0; i < 20_000; i++)
        {
            ushort port = (ushort)(interesting[rng.Next(interesting.Length)] + rng.Next(-1, 3));
            int size = 1 << rng.Next(3);
            if (rng.Next(8) == 0)
            {
                rng.NextBytes(page);
                memory.WriteBytes((ulong)rng.Next(0, 16) * 4096, page, BusAttributes.Host);
            }
            else if (rng.Next(2) == 0)
            {
                // Lines 16-23 through the testdev IRQ ports stop the machine as QEMU 7.2 aborts; keep going after it.
                ports.Write(port, size, rng.Next(3) == 0 ? (uint)rng.Next(0, 0x10000) : (uint)rng.NextInt64(), BusAttributes.Cpu(0));
            }
            else
            {
                ports.Read(port, size, out _, BusAttributes.Cpu(0));
            }
            if (stop.IsRequested) stop.Clear();
            memory.Write(0xFF00_0000UL + (ulong)rng.Next(0, 0x10000 - 8), 1 << rng.Next(4), (ulong)rng.NextInt64(), BusAttributes.Cpu(0));
        }
        ports.Read(0xE0, 4, out uint latch, BusAttributes.Cpu(0));
        return $"{latch:x}/{fw.GetType().Name}/{testdev.GetType().Name}";
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Random_port_programming_never_throws_and_is_deterministic(int seed)
    {
        string a = "", b = "";
        Assert.DoesNotThrow(() => a = Run(seed));
        Assert.DoesNotThrow(() => b = Run(seed));
        Assert.That(b, Is.EqualTo(a));
    }
}
