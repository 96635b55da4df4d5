using HwMemModel.Bus;
using HwMemModel.Devices.Dma;
using HwMemModel.Drivers.Dma;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using HwMemModel.Mmu;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

/// <summary>
/// The DMA engine driver on the default machine (dma0 at 0xFEB00000, GSI 16 level-high). Register offsets, bits,
/// error codes and timing come from the datasheet in devices/README.md: setup 100 ns, 1000 bytes per microsecond.
/// </summary>
public sealed class DmaEngineDriverTests
{
    internal const ulong Base = 0xFEB0_0000;
    internal const ulong RegControl = Base + 0x010, RegStatus = Base + 0x014, RegRingBase = Base + 0x020, RegRingSize = Base + 0x028;
    internal const ulong RegHead = Base + 0x030, RegTail = Base + 0x034, RegCompleted = Base + 0x050;
    internal const ulong Enable = 1, DoneIe = 1 << 8, ErrorIe = 1 << 9;
    internal const int Irq = 16;
    private const ushort DestinationNotMemory = 0x32;
    private const ulong HpetBase = 0xFED0_0000;
    private const long SetupNs = 100, BytesPerMicrosecond = 1000;

    internal static (ServiceProvider Provider, SimulatedMachine Machine, DmaChannel Channel) Bound()
    {
        var (provider, machine) = TestMachine.Start(MachineDescription.Default, s => s.AddPlatformDriver<DmaEngineDriver>());
        return (provider, machine, provider.GetRequiredService<DmaEngineDriver>().Channels["dma0"]);
    }

    internal static ulong Reg(SimulatedMachine machine, ulong pa, int size = 4)
    {
        Assert.That(machine.Bus.Read(pa, size, out ulong v, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        return v;
    }

    private static byte[] Pattern(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 7 + seed)).ToArray();

    private static byte[] ReadKernel(SimulatedMachine machine, ulong va, int length)
    {
        var b = new byte[length];
        machine.Kernel.Memory.ReadBytes(va, b);
        return b;
    }

    private static long IrqCount(SimulatedMachine machine) => machine.Kernel.Interrupts().Single(i => i.Irq == Irq).Count;

    [Test]
    public void Probe_binds_dma0_and_RING_BASE_holds_the_coherent_ring()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        Assert.That(provider.GetRequiredService<DmaEngineDriver>().Channels.Keys, Is.EquivalentTo(new[] { "dma0" }));
        Assert.That(machine.Drivers.Bindings().Single(b => b.Device == "dma0"), Is.EqualTo(new DeviceBinding("dma0", "hwmem,dma-engine", "hwmem-dma", 0)));
        Assert.That(channel.RingSize, Is.EqualTo(64));
        Assert.That(channel.MaxTransferLength, Is.EqualTo(16u << 20), "CAPS 23:16 = 24");
        Assert.That(channel.Irq, Is.EqualTo(Irq));

        // The device's registers, read through the bus: the ring the driver allocated, 64 descriptors, enabled with both interrupts.
        Assert.That(Reg(machine, RegRingBase, 8), Is.EqualTo(channel.RingBusAddress));
        Assert.That(channel.RingBusAddress % 32, Is.Zero, "RING_BASE 4:0 are reserved");
        Assert.That(Reg(machine, RegRingSize), Is.EqualTo(64));
        Assert.That(Reg(machine, RegControl), Is.EqualTo(Enable | DoneIe | ErrorIe));
        Assert.That(Reg(machine, RegHead), Is.Zero);
        Assert.That(Reg(machine, RegTail), Is.Zero);

        // The ring is a live coherent DMA mapping of dma0: 64 x 32 bytes at that bus address, the CPU side in the direct map.
        var ring = machine.Kernel.DmaMappings.Single();
        Assert.That(ring, Is.EqualTo(new DmaMapping("dma0", channel.RingBusAddress, 64 * 32, DmaDataDirection.Bidirectional, true, channel.RingAddress)));
        Assert.That(machine.Kernel.VirtToPhys(channel.RingAddress), Is.EqualTo(channel.RingBusAddress));
        Assert.That(machine.Kernel.Interrupts().Single(i => i.Irq == Irq).Actions, Is.EqualTo(new[] { "dma0" }));
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("dma0: DMA engine 1.0 at MMIO 0xfeb00000, irq 16, 64 descriptors"));
    }

    [TestCase(4096)]
    [TestCase(65536)]
    public void CopyKernel_moves_a_pattern_the_cpu_wrote_between_kmalloc_buffers(int length)
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        ulong src = k.Kmalloc((ulong)length, Gfp.Kernel);
        ulong dst = k.Kzalloc((ulong)length, Gfp.Kernel);
        Assert.That(src, Is.Not.Zero);
        Assert.That(dst, Is.Not.Zero);
        var data = Pattern(length, 3);
        k.Memory.WriteBytes(src, data);
        long irqs = IrqCount(machine);

        Assert.That(channel.CopyKernel(dst, src, (uint)length), Is.Zero);

        Assert.That(ReadKernel(machine, dst, length), Is.EqualTo(data));
        Assert.That(ReadKernel(machine, src, length), Is.EqualTo(data), "the source is only read");
        Assert.That(IrqCount(machine) - irqs, Is.EqualTo(1));
        Assert.That(channel.Interrupts, Is.EqualTo(1));
        Assert.That(channel.Completed, Is.EqualTo(1));
        Assert.That(Reg(machine, RegCompleted), Is.EqualTo(1));
        Assert.That(k.DmaViolations, Is.Empty);
        Assert.That(k.DmaMappings.Select(m => m.Coherent), Is.EqualTo(new[] { true }), "both streaming mappings were unmapped; the ring stays");
        Assert.That(Reg(machine, RegStatus) & 3, Is.Zero, "DONE acknowledged");
        k.Kfree(src);
        k.Kfree(dst);
    }

    [Test]
    public void CopyKernel_between_page_allocator_buffers_of_64_KiB()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        ulong srcPa = k.Pages.AllocPages(Gfp.Kernel, 4)!.Value, dstPa = k.Pages.AllocPages(Gfp.Kernel | Gfp.Zero, 4)!.Value;
        ulong src = k.PhysToVirt(srcPa), dst = k.PhysToVirt(dstPa);
        var data = Pattern(65536, 11);
        k.Memory.WriteBytes(src, data);
        Assert.That(channel.CopyKernel(dst, src, 65536), Is.Zero);
        Assert.That(ReadKernel(machine, dst, 65536), Is.EqualTo(data));
        Assert.That(k.DmaViolations, Is.Empty);
        k.Pages.FreePages(srcPa, 4);
        k.Pages.FreePages(dstPa, 4);
    }

    [Test]
    public void Fill_repeats_the_eight_byte_pattern_over_the_mapped_length_only()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        var dev = machine.Drivers.Find("dma0")!;
        ulong buf = k.Kzalloc(1024, Gfp.Kernel);
        ulong bus = k.DmaMapSingle(dev, buf, 1000, DmaDataDirection.FromDevice);
        Assert.That(Kernel.Kernel.DmaMappingError(bus), Is.False);

        Assert.That(channel.Fill(bus, 0x0807_0605_0403_0201, 1000), Is.Zero);
        k.DmaUnmapSingle(dev, bus, 1000, DmaDataDirection.FromDevice);

        // Byte i = pattern byte (i mod 8), byte 0 the least significant; 1000 is not a multiple of 8, the rest stays 0.
        var expected = new byte[1024];
        for (int i = 0; i < 1000; i++) expected[i] = (byte)(i % 8 + 1);
        Assert.That(ReadKernel(machine, buf, 1024), Is.EqualTo(expected));
        Assert.That(k.DmaViolations, Is.Empty);
        k.Kfree(buf);
    }

    [Test]
    public void A_batch_rings_the_doorbell_once_and_takes_one_interrupt()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        var dev = machine.Drivers.Find("dma0")!;
        ulong a = k.Kzalloc(256, Gfp.Kernel), b = k.Kzalloc(256, Gfp.Kernel);
        ulong aBus = k.DmaMapSingle(dev, a, 256, DmaDataDirection.Bidirectional);
        ulong bBus = k.DmaMapSingle(dev, b, 256, DmaDataDirection.FromDevice);
        long irqs = IrqCount(machine);

        // Fill a, then copy a to b: descriptors run in ring order.
        Assert.That(channel.Submit([DmaRequest.Fill(aBus, 0x5A5A_5A5A_5A5A_5A5A, 256), DmaRequest.Copy(bBus, aBus, 256)]), Is.Zero);

        Assert.That(IrqCount(machine) - irqs, Is.EqualTo(1));
        Assert.That(channel.Completed, Is.EqualTo(2));
        Assert.That(Reg(machine, RegHead), Is.EqualTo(2));
        Assert.That(Reg(machine, RegTail), Is.EqualTo(2));
        k.DmaUnmapSingle(dev, aBus, 256, DmaDataDirection.Bidirectional);
        k.DmaUnmapSingle(dev, bBus, 256, DmaDataDirection.FromDevice);
        Assert.That(ReadKernel(machine, b, 256), Is.All.EqualTo(0x5A));
        Assert.That(k.DmaViolations, Is.Empty);
    }

    [Test]
    public void Every_submission_is_completed_by_its_interrupt_and_the_ring_wraps()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        ulong src = k.Kmalloc(512, Gfp.Kernel), dst = k.Kzalloc(512, Gfp.Kernel);
        const int Submissions = 70; // more than the 64 ring slots
        for (int i = 0; i < Submissions; i++)
        {
            var data = Pattern(512, i);
            k.Memory.WriteBytes(src, data);
            Assert.That(channel.CopyKernel(dst, src, 512), Is.Zero, $"submission {i}");
            Assert.That(ReadKernel(machine, dst, 512), Is.EqualTo(data), $"submission {i}");
        }
        Assert.That(IrqCount(machine), Is.GreaterThanOrEqualTo(Submissions));
        Assert.That(channel.Interrupts, Is.EqualTo(Submissions));
        Assert.That(channel.Completed, Is.EqualTo(Submissions));
        Assert.That(Reg(machine, RegHead), Is.EqualTo(Submissions % 64));
        Assert.That(machine.Kernel.Interrupts().Single(i => i.Irq == Irq).Unhandled, Is.Zero);
        Assert.That(k.DmaViolations, Is.Empty);
        // The device reports bad register accesses and failed descriptors under its own name: none in correct use.
        Assert.That(k.Log.Lines.Where(l => l.StartsWith("dma0:", StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public void A_copy_to_memory_no_mapping_covers_happens_but_is_reported_by_DMA_API_debugging()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        var dev = machine.Drivers.Find("dma0")!;
        ulong src = k.Kmalloc(4096, Gfp.Kernel);
        var data = Pattern(4096, 5);
        k.Memory.WriteBytes(src, data);
        ulong srcBus = k.DmaMapSingle(dev, src, 4096, DmaDataDirection.ToDevice);
        ulong raw = k.Pages.AllocPages(Gfp.Kernel | Gfp.Zero, 0)!.Value; // never dma_map'ped

        Assert.That(channel.Copy(raw, srcBus, 4096), Is.Zero, "the hardware does not know about mappings");

        Assert.That(ReadKernel(machine, k.PhysToVirt(raw), 4096), Is.EqualTo(data));
        Assert.That(k.DmaViolations, Has.Count.EqualTo(1));
        Assert.That(k.DmaViolations[0], Does.Contain("dma0").And.Contain($"0x{raw:x16}").And.Contain("wrote"));
        k.DmaUnmapSingle(dev, srcBus, 4096, DmaDataDirection.ToDevice);
        k.Pages.FreePages(raw, 0);
    }

    [Test]
    public void A_copy_into_the_HPET_window_fails_with_EIO_and_the_next_submission_works()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        var dev = machine.Drivers.Find("dma0")!;
        ulong src = k.Kmalloc(64, Gfp.Kernel);
        ulong srcBus = k.DmaMapSingle(dev, src, 64, DmaDataDirection.ToDevice);

        Assert.That(channel.Copy(HpetBase, srcBus, 64), Is.EqualTo(-Errno.EIO));

        // Datasheet: destination (3) not memory (2) = 0x32, ERROR_ADDR the refused destination.
        Assert.That(channel.LastErrorCode, Is.EqualTo(DestinationNotMemory));
        Assert.That(channel.LastErrorAddress, Is.EqualTo(HpetBase));
        Assert.That(channel.FailedRequest, Is.Zero);
        Assert.That(channel.Errors, Is.EqualTo(1));
        Assert.That(k.Log.Lines, Has.Some.Contains("dma0: descriptor 0").And.Contains("error 0x32"));
        Assert.That(k.Log.Lines, Has.Some.Contains("request 0 of 1 failed: status 0x32"));
        var engine = machine.Device<DmaEngine>("dma0");
        Assert.That(engine.IsHalted, Is.False, "the driver recovered the engine");
        Assert.That(engine.IrqLine, Is.False);
        Assert.That(Reg(machine, RegControl), Is.EqualTo(Enable | DoneIe | ErrorIe));
        Assert.That(Reg(machine, RegRingBase, 8), Is.EqualTo(channel.RingBusAddress));
        k.DmaUnmapSingle(dev, srcBus, 64, DmaDataDirection.ToDevice);

        ulong a = k.Kmalloc(64, Gfp.Kernel), b = k.Kzalloc(64, Gfp.Kernel);
        var data = Pattern(64, 9);
        k.Memory.WriteBytes(a, data);
        Assert.That(channel.CopyKernel(b, a, 64), Is.Zero);
        Assert.That(ReadKernel(machine, b, 64), Is.EqualTo(data));
        Assert.That(channel.FailedRequest, Is.EqualTo(-1));
        Assert.That(k.DmaViolations, Is.Empty, "a refused transfer touches no memory");
    }

    [Test]
    public void A_failing_request_in_a_batch_stops_the_batch()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        var dev = machine.Drivers.Find("dma0")!;
        ulong a = k.Kzalloc(64, Gfp.Kernel), b = k.Kzalloc(64, Gfp.Kernel);
        ulong aBus = k.DmaMapSingle(dev, a, 64, DmaDataDirection.FromDevice), bBus = k.DmaMapSingle(dev, b, 64, DmaDataDirection.FromDevice);

        int rc = channel.Submit([DmaRequest.Fill(aBus, 0x1111_1111_1111_1111, 64), DmaRequest.Fill(HpetBase, 0, 64), DmaRequest.Fill(bBus, 0x2222_2222_2222_2222, 64)]);

        Assert.That(rc, Is.EqualTo(-Errno.EIO));
        Assert.That(channel.FailedRequest, Is.EqualTo(1));
        Assert.That(channel.LastErrorCode, Is.EqualTo(DestinationNotMemory));
        k.DmaUnmapSingle(dev, aBus, 64, DmaDataDirection.FromDevice);
        k.DmaUnmapSingle(dev, bBus, 64, DmaDataDirection.FromDevice);
        Assert.That(ReadKernel(machine, a, 64), Is.All.EqualTo(0x11), "the request before the failure was done");
        Assert.That(ReadKernel(machine, b, 64), Is.All.EqualTo(0), "the request after it was abandoned");
        Assert.That(k.DmaViolations, Is.Empty);
    }

    [TestCase(1u)]
    [TestCase(4096u)]
    [TestCase(65536u)]
    public void A_transfer_takes_the_documented_setup_and_throughput_time(uint length)
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        ulong src = k.Kmalloc(length, Gfp.Kernel), dst = k.Kzalloc(length, Gfp.Kernel);
        long expected = SetupNs + (length * 1000 + BytesPerMicrosecond - 1) / BytesPerMicrosecond;
        long t0 = machine.Clock.Nanoseconds;

        Assert.That(channel.CopyKernel(dst, src, length), Is.Zero);

        long elapsed = machine.Clock.Nanoseconds - t0;
        Assert.That(elapsed, Is.GreaterThanOrEqualTo(expected));
        Assert.That(elapsed, Is.LessThan(expected + 1_000), "the wait ends at the completion interrupt, not at the timeout");
    }

    [Test]
    public void A_timeout_returns_ETIMEDOUT_resets_the_engine_and_abandons_the_transfer()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        ulong src = k.Kmalloc(65536, Gfp.Kernel), dst = k.Kzalloc(65536, Gfp.Kernel);
        k.Memory.WriteBytes(src, Pattern(65536, 1));
        channel.TimeoutNs = 10_000; // the copy needs 65.6 us
        long t0 = machine.Clock.Nanoseconds;

        Assert.That(channel.CopyKernel(dst, src, 65536), Is.EqualTo(-Errno.ETIMEDOUT));

        Assert.That(machine.Clock.Nanoseconds - t0, Is.InRange(10_000L, 20_000L));
        Assert.That(channel.Timeouts, Is.EqualTo(1));
        machine.Kernel.Udelay(100); // past the time the copy would have completed
        Assert.That(ReadKernel(machine, dst, 65536), Is.All.EqualTo(0), "reset abandoned the transfer before it wrote");
        Assert.That(k.DmaViolations, Is.Empty, "no device access after the unmap");
        Assert.That(k.DmaMappings, Has.Count.EqualTo(1));
        Assert.That(Reg(machine, RegRingBase, 8), Is.EqualTo(channel.RingBusAddress));

        channel.TimeoutNs = 2_000_000_000;
        Assert.That(channel.CopyKernel(dst, src, 65536), Is.Zero);
        Assert.That(ReadKernel(machine, dst, 65536), Is.EqualTo(Pattern(65536, 1)));
    }

    [Test]
    public void Host_misuse_is_refused_with_what_is_allowed()
    {
        var (provider, _, channel) = Bound();
        using var p = provider;
        Assert.That(() => channel.Copy(0x1000, 0x2000, (16u << 20) + 1), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("at most 16777216 bytes"));
        Assert.That(() => channel.Submit([]), Throws.ArgumentException.With.Message.Contains("1 to 63 requests"));
        Assert.That(() => channel.Submit(new DmaRequest[64]), Throws.ArgumentException.With.Message.Contains("1 to 63 requests"));
        Assert.That(() => channel.Submit([default]), Throws.ArgumentException.With.Message.Contains("DmaRequest.Copy or DmaRequest.Fill"));
        Assert.That(() => channel.TimeoutNs = 0, Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void CopyKernel_refuses_vmalloc_memory_with_ENOMEM_and_leaves_no_mapping()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var k = machine.Kernel;
        ulong v = k.Vmalloc(4096), dst = k.Kzalloc(4096, Gfp.Kernel);
        Assert.That(channel.CopyKernel(dst, v, 4096), Is.EqualTo(-Errno.ENOMEM));
        Assert.That(channel.CopyKernel(v, dst, 4096), Is.EqualTo(-Errno.ENOMEM));
        Assert.That(k.DmaMappings, Has.Count.EqualTo(1), "only the ring");
        Assert.That(k.Log.Lines, Has.Some.Contains("maps memory from vmalloc area"));
    }

    [Test]
    public void The_registers_are_uncached_minus_and_the_ring_is_write_back()
    {
        var (provider, machine, channel) = Bound();
        using var _ = provider;
        var mmu = machine.Kernel.CurrentCpu.Mmu;
        var area = machine.Kernel.VmAreas().Single(a => a.PhysAddr == Base);
        Assert.That(mmu.Translate(area.Address, AccessKind.Read, Privilege.Supervisor, out var regs).IsFault, Is.False);
        Assert.That(regs.MemoryType, Is.EqualTo(MemoryType.UncacheableMinus));
        Assert.That(mmu.Translate(channel.RingAddress, AccessKind.Write, Privilege.Supervisor, out var ring).IsFault, Is.False);
        Assert.That(ring.MemoryType, Is.EqualTo(MemoryType.WriteBack));
    }
}
