using System.Text;
using HwMemModel.Drivers.Block;
using HwMemModel.Drivers.Dma;
using HwMemModel.Drivers.Serial;
using HwMemModel.Drivers.Timers;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using HwMemModel.Mmu;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Cli;

/// <summary>
/// The devices part of the demo: the default machine composed with dependency injection, the built-in drivers bound
/// by compatible string, and one piece of work per driver — a console line, an HPET timer interrupt, a DMA copy and a
/// virtio-blk write and read — then /proc/interrupts, the bindings and the kernel log of it all.
/// </summary>
public static class DevicesDemo
{
    /// <summary>Runs the devices demo on <paramref name="o"/>.</summary>
    public static void Run(TextWriter o)
    {
        var console = new MemoryStream();
        using var provider = new ServiceCollection()
            .AddHwMemModel(MachineDescription.Default, new MachineHostOptions { SerialOutput = name => name == "serial0" ? console : null })
            .AddBuiltInDrivers()
            .BuildServiceProvider();
        var machine = provider.StartHwMemModel();
        var k = machine.Kernel;
        o.WriteLine("== Devices and drivers: the default machine composed with DI, drivers bound by compatible string ==");
        foreach (var b in machine.Drivers.Bindings())
            o.WriteLine($"  {b.Device,-11} {b.Compatible,-20} -> {b.Driver ?? "(no driver)"}");
        o.WriteLine();

        var uart = provider.GetRequiredService<Ns16550Driver>().Ports["serial0"];
        uart.Write("hello from the 16550A driver\n"u8);
        o.WriteLine($"serial0 (COM1, ioport_map + iowrite8) transmitted: {Encoding.ASCII.GetString(console.ToArray()).TrimEnd()}");

        var hpet = provider.GetRequiredService<HpetDriver>().Timer!;
        long t0 = machine.Clock.Nanoseconds;
        bool fired = hpet.Sleep(250_000, 1_000_000);
        o.WriteLine($"hpet: one-shot comparator 0 armed for 250 us: interrupt {(fired ? "arrived" : "did not arrive")} after {(machine.Clock.Nanoseconds - t0) / 1000.0:F1} us of guest time");

        var dma = provider.GetRequiredService<DmaEngineDriver>().Channels["dma0"];
        ulong src = k.Kmalloc(4096, Gfp.Kernel), dst = k.Kzalloc(4096, Gfp.Kernel);
        k.Memory.WriteBytes(src, Encoding.ASCII.GetBytes("bytes moved by the DMA engine".PadRight(4096, '.')));
        int rc = dma.CopyKernel(dst, src, 4096);
        var check = new byte[29];
        k.Memory.ReadBytes(dst, check);
        o.WriteLine($"dma0: CopyKernel 4 KiB 0x{k.VirtToPhys(src):x} -> 0x{k.VirtToPhys(dst):x} (dma_map_single both ways): rc {rc}, destination reads \"{Encoding.ASCII.GetString(check)}\"");

        var disk = provider.GetRequiredService<VirtioBlkDriver>().Disks["virtio0"];
        int w = disk.WriteSectors(8, dst, 4096);
        ulong back = k.Kzalloc(4096, Gfp.Kernel);
        int r = disk.ReadSectors(8, back, 4096);
        k.Memory.ReadBytes(back, check);
        o.WriteLine($"virtio0 ({disk.DiskName}, {disk.Capacity} sectors): write sector 8: rc {w}; read it back: rc {r}, \"{Encoding.ASCII.GetString(check)}\"");

        ulong regs = k.VmAreas().First(a => a.PhysAddr == Devices.Platform.PcPlatform.HpetBase).Address;
        k.CurrentCpu.Mmu.Translate(regs, AccessKind.Read, Privilege.Supervisor, out var t);
        o.WriteLine($"the HPET registers are mapped at 0x{regs:x16} with memory type {t.MemoryType.ShortName()} (ioremap); DMA-API violations: {k.DmaViolations.Count}");
        o.WriteLine();
        o.WriteLine("== /proc/vmallocinfo (the drivers' register mappings) ==");
        o.Write(k.FormatVmallocInfo());
        o.WriteLine();
        o.WriteLine("== /proc/interrupts ==");
        o.Write(k.FormatInterrupts());
        o.WriteLine();
        o.WriteLine("== dmesg (drivers) ==");
        foreach (var line in k.Log.Lines.Where(l => !l.StartsWith("BIOS-e820", StringComparison.Ordinal) && !l.StartsWith("x86/PAT", StringComparison.Ordinal) && !l.StartsWith("Memory:", StringComparison.Ordinal)))
            o.WriteLine(line);
        k.Kfree(src);
        k.Kfree(dst);
        k.Kfree(back);
    }
}
