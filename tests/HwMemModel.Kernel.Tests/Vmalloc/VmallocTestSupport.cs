using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel.Tests.Vmalloc;

/// <summary>Machines and helpers shared by the vmalloc and ioremap tests.</summary>
internal static class VmallocTestSupport
{
    public const ulong KiB = 1UL << 10, MiB = 1UL << 20, GiB = 1UL << 30, Page = 4096;

    /// <summary>The default machine with 256 MiB, booted.</summary>
    public static Kernel Boot(int cpus = 1, int nodes = 1, ulong ram = 256 * MiB, Action<PhysicalBus>? devices = null)
    {
        var bus = DefaultMachine.CreateBus(ram);
        devices?.Invoke(bus);
        return Kernel.Boot(bus, new KernelOptions { Cpus = cpus, Nodes = nodes });
    }

    /// <summary>A machine with RAM below 640 KiB, from 1 MiB to 1 GiB and from 4 GiB to 4 GiB + <paramref name="highGiB"/> GiB.</summary>
    public static Kernel BootWithHighRam(ulong highGiB = 2)
    {
        var bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        bus.AddRam("low", 0, 0xA0000);
        bus.AddRam("ram", MiB, GiB - MiB);
        bus.AddRam("high", 4 * GiB, highGiB * GiB);
        return Kernel.Boot(bus);
    }

    /// <summary>The physical address the current CPU's MMU gives for a supervisor read of <paramref name="va"/>.</summary>
    public static ulong Translate(Kernel k, ulong va)
    {
        var f = k.CurrentCpu.Mmu.Translate(va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, $"0x{va:x16}: {f}");
        return t.PhysicalAddress;
    }

    /// <summary>The fault of a supervisor read of <paramref name="va"/> on the current CPU.</summary>
    public static Fault ReadFault(Kernel k, ulong va) => k.CurrentCpu.Mmu.Translate(va, AccessKind.Read, Privilege.Supervisor, out _);

    /// <summary>Log lines appended since <paramref name="mark"/>.</summary>
    public static string[] LogSince(Kernel k, int mark) => k.Log.Lines.Skip(mark).ToArray();

    /// <summary>Pages the allocator lost since a snapshot, net of page-table pages (allocated once, freed only by huge ioremap mappings).</summary>
    public static long Leaked(Kernel k, (long Free, int Tables, int TablesFreed) start)
        => start.Free - k.Pages.FreePageCount - (k.PageTables.TablePages - start.Tables) + (k.VmallocPageTablePagesFreed - start.TablesFreed);

    public static (long Free, int Tables, int TablesFreed) Snapshot(Kernel k)
        => (k.Pages.FreePageCount, k.PageTables.TablePages, k.VmallocPageTablePagesFreed);
}
