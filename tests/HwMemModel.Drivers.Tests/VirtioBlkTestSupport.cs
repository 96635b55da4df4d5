using HwMemModel.Bus;
using HwMemModel.Devices.Virtio;
using HwMemModel.Drivers.Block;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

/// <summary>Machines with the virtio-blk driver, and the kernel counters a leak check compares.</summary>
internal static class VirtioBlkTestSupport
{
    /// <summary>The default machine's disk: 16 MiB (MachineDescription.Default's "disk-size").</summary>
    public const ulong DefaultDiskBytes = 16UL * 1024 * 1024;
    public const int Sector = 512;
    public const int VirtioIrq = 17;

    /// <summary>Starts <paramref name="description"/> (the default machine when null) with the driver bound, as users do.</summary>
    public static (ServiceProvider Provider, SimulatedMachine Machine, VirtioBlkDriver Driver, VirtioBlkDisk Disk) Start(MachineDescription? description = null)
    {
        var (provider, machine) = TestMachine.Start(description ?? MachineDescription.Default, s => s.AddPlatformDriver<VirtioBlkDriver>());
        var driver = provider.GetRequiredService<VirtioBlkDriver>();
        return (provider, machine, driver, driver.Disks["virtio0"]);
    }

    /// <summary>Builds the machine and registers its devices without binding the driver (for baselines taken before probe).</summary>
    public static (ServiceProvider Provider, SimulatedMachine Machine, VirtioBlkDriver Driver) BuildUnbound(MachineDescription? description = null)
    {
        var services = new ServiceCollection().AddHwMemModel(description ?? MachineDescription.Default).AddPlatformDriver<VirtioBlkDriver>();
        var provider = services.BuildServiceProvider();
        var machine = provider.GetRequiredService<SimulatedMachine>();
        machine.RegisterDevices();
        return (provider, machine, provider.GetRequiredService<VirtioBlkDriver>());
    }

    /// <summary>The default machine with virtio0's options replaced.</summary>
    public static MachineDescription DefaultWithVirtioOptions(Dictionary<string, string> options)
        => MachineDescription.Default with
        {
            Devices = [.. MachineDescription.Default.Devices.Select(d => d.Name == "virtio0" ? d with { Options = options } : d)],
        };

    public static VirtioMmioBlock Device(SimulatedMachine machine) => machine.Device<VirtioMmioBlock>("virtio0");

    public static Span<byte> DiskBytes(SimulatedMachine machine) => ((MemoryBlockBackend)Device(machine).Disk).Data;

    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++) bytes[i] = (byte)((i * 7) + (i >> 9) + seed);
        return bytes;
    }

    public static long IrqCount(SimulatedMachine machine, int irq)
        => machine.Kernel.Interrupts().Where(i => i.Irq == irq).Select(i => i.Count).DefaultIfEmpty(0).Single();

    public static IReadOnlyList<string> IrqActions(SimulatedMachine machine, int irq)
        => machine.Kernel.Interrupts().Where(i => i.Irq == irq).SelectMany(i => i.Actions).ToArray();

    /// <summary>Host-side check of the memory type the current CPU's MMU gives a kernel address.</summary>
    public static HwMemModel.Mmu.MemoryType MemoryTypeOf(SimulatedMachine machine, ulong va)
    {
        var fault = machine.Kernel.CurrentCpu.Mmu.Translate(va, HwMemModel.Mmu.AccessKind.Read, HwMemModel.Mmu.Privilege.Supervisor, out var t);
        Assert.That(fault.IsFault, Is.False, $"0x{va:x16} is mapped");
        return t.MemoryType;
    }

    /// <summary>Masks or unmasks IOAPIC input <paramref name="pin"/> behind the kernel's back (a test poking hardware).</summary>
    public static void SetIoApicMask(SimulatedMachine machine, int pin, bool masked)
    {
        ulong ioapic = machine.Description.IoApicBase;
        uint select = (uint)(0x10 + 2 * pin);
        Assert.That(machine.Bus.Write(ioapic, 4, select, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        Assert.That(machine.Bus.Read(ioapic + 0x10, 4, out ulong low, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        low = masked ? low | (1UL << 16) : low & ~(1UL << 16);
        Assert.That(machine.Bus.Write(ioapic + 0x10, 4, low, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
    }
}

/// <summary>
/// What /proc/slabinfo, /proc/vmallocinfo and the free page count say, after purging lazily freed vmap areas and
/// shrinking every slab cache (echo 1 &gt; /sys/kernel/slab/*/shrink): SLUB keeps empty slabs cached after their
/// objects are freed (the devres records probe kmallocs may be the first objects of a kmalloc cache), which is not a
/// leak; a leaked object keeps its slab, and its count, in the listing.
/// </summary>
internal sealed record KernelSnapshot(string SlabInfo, string VmallocInfo, long FreePages)
{
    public static KernelSnapshot Take(SimulatedMachine machine)
    {
        machine.Kernel.ShrinkSlabCaches();
        machine.Kernel.VmUnmapAliases();
        return new KernelSnapshot(machine.Kernel.FormatSlabInfo(), machine.Kernel.FormatVmallocInfo(), machine.Kernel.Pages.FreePageCount);
    }

    public void AssertSame(KernelSnapshot now, string when)
    {
        Assert.That(now.FreePages, Is.EqualTo(FreePages), $"free pages {when}");
        Assert.That(now.SlabInfo, Is.EqualTo(SlabInfo), $"/proc/slabinfo {when}");
        Assert.That(now.VmallocInfo, Is.EqualTo(VmallocInfo), $"/proc/vmallocinfo {when}");
    }
}
