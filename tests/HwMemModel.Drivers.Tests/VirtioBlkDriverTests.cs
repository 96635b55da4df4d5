using HwMemModel.Devices.Virtio;
using HwMemModel.Drivers.Block;
using HwMemModel.Kernel;
using HwMemModel.Mmu;
using static HwMemModel.Drivers.Tests.VirtioBlkTestSupport;

namespace HwMemModel.Drivers.Tests;

public sealed class VirtioBlkDriverTests
{
    // virtio 1.2 section 2.1: ACKNOWLEDGE 1, DRIVER 2, DRIVER_OK 4, FEATURES_OK 8.
    private const VirtioStatus Running = VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk;

    [Test]
    public void Probe_binds_virtio0_with_the_disk_capacity_and_the_device_running()
    {
        var (provider, machine, driver, disk) = Start();
        using var _ = provider;
        Assert.That(machine.Drivers.Bindings().Single(b => b.Device == "virtio0").Driver, Is.EqualTo("virtio_blk"));
        Assert.That(driver.Disks.Keys, Is.EqualTo(new[] { "virtio0" }));
        Assert.That(disk.Capacity, Is.EqualTo(DefaultDiskBytes / Sector));
        Assert.That(disk.DiskName, Is.EqualTo("vda"));
        Assert.That(disk.ReadOnly, Is.False);
        var device = Device(machine);
        Assert.That((byte)device.Status, Is.EqualTo(0x0F));
        Assert.That(device.Status, Is.EqualTo(Running));
        // Features: VERSION_1 (32) required; BLK_SIZE (6) and FLUSH (9) taken as offered; SEG_MAX, INDIRECT_DESC and
        // EVENT_IDX are offered but not implemented by the driver, so not accepted; RO is not offered for a writable disk.
        Assert.That(device.NegotiatedFeatures, Is.EqualTo((1UL << 32) | (1UL << 6) | (1UL << 9)));
        Assert.That(device.QueueReady, Is.True);
        Assert.That(device.QueueSize, Is.EqualTo(Math.Min(VirtioBlkDriver.MaxQueueSize, device.QueueNumMax)));
        Assert.That(disk.BlockSize, Is.EqualTo(512));
        Assert.That(disk.FlushSupported, Is.True);
        // 16 MiB = 16,777,216 bytes: 16.8 MB / 16.0 MiB, as string_get_size prints it.
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("virtio0: [vda] 32768 512-byte logical blocks (16.8 MB/16.0 MiB)"));
        Assert.That(IrqActions(machine, VirtioIrq), Is.EqualTo(new[] { "virtio0" }));
    }

    [Test]
    public void Written_sectors_read_back_through_the_bounce_buffer_and_land_on_the_disk()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        // 80 KiB: more than the 64 KiB bounce buffer, so the driver splits it into two requests each way.
        const ulong sector = 1000;
        var data = Pattern(80 * 1024, seed: 3);
        long irqBefore = IrqCount(machine, VirtioIrq);
        Assert.That(disk.WriteSectors(sector, data), Is.Zero);
        Assert.That(DiskBytes(machine).Slice((int)sector * Sector, data.Length).ToArray(), Is.EqualTo(data));
        var back = new byte[data.Length];
        Assert.That(disk.ReadSectors(sector, back), Is.Zero);
        Assert.That(back, Is.EqualTo(data));
        Assert.That(disk.Requests, Is.EqualTo(4));
        Assert.That(IrqCount(machine, VirtioIrq) - irqBefore, Is.GreaterThanOrEqualTo(4));
        Assert.That(disk.Interrupts, Is.GreaterThanOrEqualTo(4));
        Assert.That(machine.Kernel.DmaViolations, Is.Empty);
        Assert.That(machine.Kernel.Log.Lines, Has.None.Contains("DMA-API"));
        // The bytes around the written range are untouched (the new disk is zero-filled).
        Assert.That(DiskBytes(machine)[(int)sector * Sector - 1], Is.Zero);
        Assert.That(DiskBytes(machine)[(int)sector * Sector + data.Length], Is.Zero);
    }

    [Test]
    public void Reads_see_what_the_host_put_on_the_disk()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        var image = Pattern(4096, seed: 77);
        image.CopyTo(DiskBytes(machine)[(int)(disk.Capacity * Sector - 4096)..]);
        var back = new byte[4096];
        Assert.That(disk.ReadSectors(disk.Capacity - 8, back), Is.Zero, "the last 8 sectors are inside the disk");
        Assert.That(back, Is.EqualTo(image));
    }

    [Test]
    public void Kernel_buffers_are_transferred_by_dma_straight_from_and_to_kmalloc_memory()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        var k = machine.Kernel;
        ulong src = k.Kmalloc(8192, Gfp.Kernel);
        ulong dst = k.Kzalloc(8192, Gfp.Kernel);
        Assert.That(src, Is.Not.Zero);
        Assert.That(dst, Is.Not.Zero);
        var data = Pattern(8192, seed: 41);
        k.Memory.WriteBytes(src, data);
        const ulong sector = 4096;
        long irqBefore = IrqCount(machine, VirtioIrq);
        Assert.That(disk.WriteSectors(sector, src, 8192), Is.Zero);
        Assert.That(DiskBytes(machine).Slice((int)sector * Sector, 8192).ToArray(), Is.EqualTo(data));
        Assert.That(disk.ReadSectors(sector, dst, 8192), Is.Zero);
        var back = new byte[8192];
        k.Memory.ReadBytes(dst, back);
        Assert.That(back, Is.EqualTo(data));
        Assert.That(IrqCount(machine, VirtioIrq) - irqBefore, Is.GreaterThanOrEqualTo(2));
        // Streaming mappings live only for the request: only the driver's coherent memory stays mapped.
        Assert.That(k.DmaMappings.Where(m => !m.Coherent), Is.Empty);
        Assert.That(k.DmaViolations, Is.Empty);
        Assert.That(k.Log.Lines, Has.None.Contains("DMA-API"));
        k.Kfree(src);
        k.Kfree(dst);
    }

    [Test]
    public void A_host_span_read_and_a_kernel_buffer_read_agree_with_the_disk()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        var image = Pattern(1024, seed: 5);
        image.CopyTo(DiskBytes(machine)[(7 * Sector)..]);
        ulong buf = machine.Kernel.Kmalloc(1024, Gfp.Kernel);
        Assert.That(disk.ReadSectors(7, buf, 1024), Is.Zero);
        var viaKernel = new byte[1024];
        machine.Kernel.Memory.ReadBytes(buf, viaKernel);
        var viaSpan = new byte[1024];
        Assert.That(disk.ReadSectors(7, viaSpan), Is.Zero);
        Assert.That(viaKernel, Is.EqualTo(image));
        Assert.That(viaSpan, Is.EqualTo(image));
        machine.Kernel.Kfree(buf);
    }

    [Test]
    public void Bad_requests_return_errnos_without_touching_the_disk()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        ulong capacity = disk.Capacity;
        var sector = new byte[Sector];
        long requests = disk.Requests;
        Assert.That(disk.ReadSectors(capacity, sector), Is.EqualTo(-Errno.EIO), "first sector past the end");
        Assert.That(disk.ReadSectors(capacity - 1, new byte[2 * Sector]), Is.EqualTo(-Errno.EIO), "straddles the end");
        Assert.That(disk.ReadSectors(ulong.MaxValue, sector), Is.EqualTo(-Errno.EIO), "sector number that would wrap");
        Assert.That(disk.WriteSectors(capacity, sector), Is.EqualTo(-Errno.EIO));
        Assert.That(disk.ReadSectors(0, new byte[100]), Is.EqualTo(-Errno.EINVAL), "not a multiple of 512");
        Assert.That(disk.WriteSectors(0, new byte[513]), Is.EqualTo(-Errno.EINVAL));
        ulong buf = machine.Kernel.Kmalloc(1024, Gfp.Kernel);
        Assert.That(disk.ReadSectors(0, buf, 1000), Is.EqualTo(-Errno.EINVAL));
        Assert.That(disk.ReadSectors(0, 0, 512), Is.EqualTo(-Errno.EINVAL), "NULL kernel buffer");
        Assert.That(disk.ReadSectors(capacity, buf, 512), Is.EqualTo(-Errno.EIO));
        Assert.That(disk.Requests, Is.EqualTo(requests), "no request reached the device");
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("attempt to access beyond end of device"));
        // The last sector itself is fine.
        Assert.That(disk.ReadSectors(capacity - 1, sector), Is.Zero);
        Assert.That(machine.Kernel.DmaMappings.Where(m => !m.Coherent), Is.Empty);
        machine.Kernel.Kfree(buf);
    }

    [Test]
    public void Virtio_blk_status_codes_map_to_errnos()
    {
        // virtio 1.2 section 5.2.6: VIRTIO_BLK_S_OK 0, VIRTIO_BLK_S_IOERR 1, VIRTIO_BLK_S_UNSUPP 2; the driver presets 0xFF.
        Assert.That(VirtioBlkDisk.StatusToErrno(0), Is.Zero);
        Assert.That(VirtioBlkDisk.StatusToErrno(1), Is.EqualTo(-Errno.EIO));
        Assert.That(VirtioBlkDisk.StatusToErrno(2), Is.EqualTo(-Errno.EOPNOTSUPP));
        Assert.That(VirtioBlkDisk.StatusToErrno(0xFF), Is.EqualTo(-Errno.EIO), "no status written");
    }

    [Test]
    public void A_read_only_disk_refuses_writes_with_EROFS_and_still_reads()
    {
        var description = DefaultWithVirtioOptions(new() { ["disk-size"] = "16M", ["read-only"] = "true" });
        var (provider, machine, _, disk) = Start(description);
        using var _p = provider;
        var device = Device(machine);
        Assert.That(disk.ReadOnly, Is.True);
        Assert.That(device.NegotiatedFeatures & (1UL << 5), Is.Not.Zero, "VIRTIO_BLK_F_RO accepted");
        var image = Pattern(2048, seed: 9);
        image.CopyTo(DiskBytes(machine)[(64 * Sector)..]);
        long requests = disk.Requests;
        // The driver refuses the write itself (as the block layer refuses writes to a read-only disk): -EROFS, and no
        // OUT request reaches the device (which would answer VIRTIO_BLK_S_IOERR, i.e. -EIO).
        Assert.That(disk.WriteSectors(64, new byte[Sector]), Is.EqualTo(-Errno.EROFS));
        ulong buf = machine.Kernel.Kzalloc(512, Gfp.Kernel);
        Assert.That(disk.WriteSectors(64, buf, 512), Is.EqualTo(-Errno.EROFS));
        Assert.That(disk.Requests, Is.EqualTo(requests));
        Assert.That(DiskBytes(machine).Slice(64 * Sector, 2048).ToArray(), Is.EqualTo(image));
        var back = new byte[2048];
        Assert.That(disk.ReadSectors(64, back), Is.Zero);
        Assert.That(back, Is.EqualTo(image));
        Assert.That(disk.Flush(), Is.Zero);
        machine.Kernel.Kfree(buf);
    }

    [Test]
    public void Flush_sends_a_flush_request_the_backend_sees()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        var backend = (MemoryBlockBackend)Device(machine).Disk;
        long before = backend.Flushes;
        long completed = Device(machine).CompletedRequests;
        Assert.That(disk.Flush(), Is.Zero);
        Assert.That(backend.Flushes, Is.EqualTo(before + 1));
        Assert.That(Device(machine).CompletedRequests, Is.EqualTo(completed + 1));
    }

    [Test]
    public void The_handler_returns_IRQ_NONE_when_the_device_has_nothing_pending_and_shares_the_line()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        Assert.That(Device(machine).InterruptStatus, Is.Zero);
        Assert.That(disk.Interrupt(VirtioIrq, disk), Is.EqualTo(IrqReturn.None));
        // Another device's handler on the same (IRQF_SHARED) line: the disk keeps working and claims its interrupts.
        var other = new object();
        int otherCalls = 0;
        Assert.That(machine.Kernel.RequestIrq(VirtioIrq, (_, _) => { otherCalls++; return IrqReturn.None; }, "other", other, IrqFlags.Shared), Is.Zero);
        long claimed = disk.Interrupts;
        Assert.That(disk.ReadSectors(0, new byte[Sector]), Is.Zero);
        Assert.That(disk.Interrupts, Is.EqualTo(claimed + 1));
        Assert.That(otherCalls, Is.EqualTo(1));
        Assert.That(machine.Kernel.Interrupts().Single(i => i.Irq == VirtioIrq).Unhandled, Is.Zero);
        machine.Kernel.FreeIrq(VirtioIrq, other);
    }

    [Test]
    public void A_request_whose_interrupt_never_comes_times_out_resets_the_device_and_unmaps_the_buffer()
    {
        var (provider, machine, _, disk) = Start();
        using var _p = provider;
        disk.TimeoutNs = 2_000_000;
        SetIoApicMask(machine, VirtioIrq, masked: true);
        ulong buf = machine.Kernel.Kmalloc(4096, Gfp.Kernel);
        long t0 = machine.Clock.Nanoseconds;
        Assert.That(disk.ReadSectors(0, buf, 4096), Is.EqualTo(-Errno.ETIMEDOUT));
        Assert.That(machine.Clock.Nanoseconds - t0, Is.GreaterThanOrEqualTo(2_000_000));
        Assert.That(disk.Broken, Is.True);
        Assert.That(Device(machine).Status, Is.EqualTo(VirtioStatus.None), "reset so it lets go of the buffer");
        Assert.That(machine.Kernel.DmaMappings.Where(m => !m.Coherent), Is.Empty);
        Assert.That(disk.ReadSectors(0, new byte[Sector]), Is.EqualTo(-Errno.EIO), "the disk stays broken");
        Assert.That(machine.Kernel.Log.Lines, Has.Some.Contains("timed out"));
        Assert.That(() => disk.TimeoutNs = 0, Throws.InstanceOf<ArgumentOutOfRangeException>());
        machine.Kernel.Kfree(buf);
    }

    [Test]
    public void The_register_window_is_uncached_minus_and_the_ring_memory_write_back()
    {
        var (provider, machine, _, _) = Start();
        using var _p = provider;
        var area = machine.Kernel.VmAreas().Single(a => a.PhysAddr == Machine.Description.MachineDescription.DefaultVirtioBase);
        Assert.That(MemoryTypeOf(machine, area.Address), Is.EqualTo(MemoryType.UncacheableMinus));
        var coherent = machine.Kernel.DmaMappings.Where(m => m.Device == "virtio0" && m.Coherent).ToArray();
        Assert.That(coherent, Has.Length.EqualTo(2), "the rings (with the request header and status) and the bounce buffer");
        foreach (var m in coherent)
        {
            Assert.That(MemoryTypeOf(machine, m.CpuAddress), Is.EqualTo(MemoryType.WriteBack));
            Assert.That(MemoryTypeOf(machine, m.CpuAddress + m.Size - 1), Is.EqualTo(MemoryType.WriteBack));
        }
    }

    [Test]
    public void Remove_resets_the_device_and_gives_back_everything_probe_took()
    {
        var (provider, machine, driver) = BuildUnbound();
        using var _p = provider;
        // The caller's kernel buffer is the test's, taken before the baseline (a kmalloc-4k slab stays cached after kfree).
        ulong buf = machine.Kernel.Kmalloc(4096, Gfp.Kernel);
        var baseline = KernelSnapshot.Take(machine);
        Assert.That(machine.Drivers.RegisterDriver(driver), Is.EqualTo(1));
        var disk = driver.Disks["virtio0"];
        Assert.That(disk.WriteSectors(3, Pattern(4096, 1)), Is.Zero);
        Assert.That(disk.ReadSectors(3, new byte[4096]), Is.Zero);
        Assert.That(disk.WriteSectors(11, buf, 4096), Is.Zero);
        Assert.That(disk.ReadSectors(3, buf, 4096), Is.Zero);
        Assert.That(disk.Flush(), Is.Zero);

        var dev = machine.Drivers.Find("virtio0")!;
        Assert.That(machine.Drivers.Unbind(dev), Is.True);
        Assert.That(Device(machine).Status, Is.EqualTo(VirtioStatus.None));
        Assert.That(Device(machine).QueueReady, Is.False);
        Assert.That(dev.ManagedResources, Is.Empty);
        Assert.That(driver.Disks, Is.Empty);
        Assert.That(IrqActions(machine, VirtioIrq), Is.Empty);
        Assert.That(machine.Kernel.DmaMappings, Is.Empty);
        baseline.AssertSame(KernelSnapshot.Take(machine), "after unbind");
        Assert.That(disk.ReadSectors(0, new byte[Sector]), Is.EqualTo(-Errno.ENODEV), "a removed disk");
        Assert.That(machine.Kernel.DmaViolations, Is.Empty);
        machine.Kernel.Kfree(buf);

        // Bound again, it works again.
        Assert.That(machine.Drivers.Bind(dev), Is.Zero);
        var again = driver.Disks["virtio0"];
        var back = new byte[4096];
        Assert.That(again.ReadSectors(3, back), Is.Zero);
        Assert.That(back, Is.EqualTo(Pattern(4096, 1)));
        Assert.That(again.DiskName, Is.EqualTo("vda"));
    }

    [Test]
    public void The_driver_assembly_does_not_reference_the_device_models()
    {
        var references = typeof(VirtioBlkDriver).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToArray();
        Assert.That(references, Has.None.StartsWith("HwMemModel.Devices"));
        Assert.That(references, Has.None.StartsWith("HwMemModel.Machine"));
        Assert.That(references, Has.Some.EqualTo("HwMemModel.Kernel"));
    }
}
