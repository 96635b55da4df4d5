using System.Security.Cryptography;
using HwMemModel.Devices.Virtio;
using HwMemModel.Drivers.Block;
using HwMemModel.Drivers.Dma;
using HwMemModel.Drivers.Serial;
using HwMemModel.Drivers.Timers;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

/// <summary>
/// The end-to-end check: the default machine read from its JSON description, the built-in drivers bound
/// through DI, a file written to the virtio disk and read back through the DMA path, with the bytes checked.
/// </summary>
public sealed class EndToEndTests
{
    [Test]
    public void A_file_goes_through_the_DMA_engine_onto_the_virtio_disk_and_comes_back_intact()
    {
        string json = Path.Combine(TestContext.CurrentContext.TestDirectory, "machines", "default.json");
        var config = new ConfigurationBuilder().AddJsonFile(json).Build();
        var console = new MemoryStream();
        using var provider = new ServiceCollection()
            .AddHwMemModel(config, new MachineHostOptions { SerialOutput = _ => console })
            .AddBuiltInDrivers()
            .BuildServiceProvider();
        var machine = provider.StartHwMemModel();
        var k = machine.Kernel;
        Assert.That(machine.Drivers.Bindings().Select(b => (b.Device, b.Driver)), Is.EqualTo(new (string, string?)[]
        {
            ("serial0", "serial8250"), ("debug-exit", null), ("hpet", "hpet"), ("dma0", "hwmem-dma"), ("virtio0", "virtio_blk"),
        }));

        // "A file": 100 KiB of host bytes (a deterministic pseudo-random file, so every byte matters).
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-e2e-{Environment.ProcessId}.bin");
        var content = new byte[100 * 1024];
        new Random(5).NextBytes(content);
        File.WriteAllBytes(path, content);
        byte[] file = File.ReadAllBytes(path);
        File.Delete(path);

        // The CPU puts the file into a kmalloc'd buffer; the DMA engine copies it to the I/O buffer the disk writes from.
        const uint Size = 128 * 1024; // whole sectors
        ulong staging = k.Kzalloc(Size, Gfp.Kernel), io = k.Kzalloc(Size, Gfp.Kernel), back = k.Kzalloc(Size, Gfp.Kernel);
        k.Memory.WriteBytes(staging, file);
        var dma = provider.GetRequiredService<DmaEngineDriver>().Channels["dma0"];
        Assert.That(dma.CopyKernel(io, staging, Size), Is.Zero);

        var disk = provider.GetRequiredService<VirtioBlkDriver>().Disks["virtio0"];
        const ulong Sector = 2048; // 1 MiB into the disk
        Assert.That(disk.WriteSectors(Sector, io, Size), Is.Zero);
        Assert.That(disk.Flush(), Is.Zero.Or.EqualTo(-Errno.EOPNOTSUPP));
        Assert.That(disk.ReadSectors(Sector, back, Size), Is.Zero);

        var readBack = new byte[file.Length];
        k.Memory.ReadBytes(back, readBack);
        Assert.That(SHA256.HashData(readBack), Is.EqualTo(SHA256.HashData(file)));
        var onDisk = ((MemoryBlockBackend)machine.Device<VirtioMmioBlock>("virtio0").Disk).Data.Slice((int)(Sector * 512), file.Length).ToArray();
        Assert.That(onDisk, Is.EqualTo(file), "the bytes are on the disk image where sector 2048 starts");

        // Every transfer was covered by a live DMA mapping, and every completion came as an interrupt.
        Assert.That(k.DmaViolations, Is.Empty);
        Assert.That(k.Interrupts().Single(i => i.Irq == 16).Count, Is.GreaterThanOrEqualTo(1));
        Assert.That(k.Interrupts().Single(i => i.Irq == 17).Count, Is.GreaterThanOrEqualTo(3));

        // The console and the clock work too.
        provider.GetRequiredService<Ns16550Driver>().Ports["serial0"].Write("done\n"u8);
        Assert.That(console.ToArray(), Is.EqualTo("done\n"u8.ToArray()));
        Assert.That(provider.GetRequiredService<HpetDriver>().Timer!.Sleep(50_000, 1_000_000), Is.True);
        k.Kfree(staging);
        k.Kfree(io);
        k.Kfree(back);
    }
}
