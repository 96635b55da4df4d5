using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Cli;

/// <summary>The kernel-model part of the demo: boot, the buddy allocator, kmalloc, the page tables.</summary>
public static class KernelDemo
{
    /// <summary>Boots the kernel model on the default machine and prints what it did.</summary>
    public static void Run(TextWriter o)
    {
        var k = Kernel.Kernel.Boot(DefaultMachine.CreateBus());
        o.WriteLine("== Kernel model: boot on the default machine ==");
        foreach (var line in k.Log.Lines) o.WriteLine(line);
        o.WriteLine();
        ulong p = k.Kmalloc(100, Gfp.Kernel);
        ulong q = k.Kzalloc(3000, Gfp.Kernel);
        ulong big = k.Kmalloc(64 * 1024, Gfp.Kernel);
        o.WriteLine($"kmalloc(100, GFP_KERNEL)  = 0x{p:x16} (ksize {k.Ksize(p)}, phys 0x{k.VirtToPhys(p):x})");
        o.WriteLine($"kzalloc(3000, GFP_KERNEL) = 0x{q:x16} (ksize {k.Ksize(q)}, phys 0x{k.VirtToPhys(q):x})");
        o.WriteLine($"kmalloc(64 KiB)           = 0x{big:x16} (from the page allocator, order 4, phys 0x{k.VirtToPhys(big):x})");
        k.Memory.Write(p, 8, 0x1122_3344_5566_7788);
        o.WriteLine($"a write and read back through CPU 0's MMU: 0x{k.Memory.Read(p, 8):x16}");
        ulong v = k.Vmalloc(16 * 1024);
        var pages = Enumerable.Range(0, 4).Select(i => $"0x{k.VmallocToPage(v + (ulong)i * 4096):x}");
        o.WriteLine($"vmalloc(16 KiB)           = 0x{v:x16} (pages {string.Join(", ", pages)}; a guard page follows)");
        ulong rom = k.IoRemap(0xFFFF_FFF0, 16);
        k.CurrentCpu.Mmu.Translate(rom, AccessKind.Read, Privilege.Supervisor, out var t);
        o.WriteLine($"ioremap(0xfffffff0, 16)   = 0x{rom:x16} ({t.MemoryType.ShortName()}, readw: 0x{k.ReadW(rom):x4} = cli; hlt at the reset vector)");
        o.WriteLine();
        o.WriteLine("== /proc/vmallocinfo ==");
        o.Write(k.FormatVmallocInfo());
        o.WriteLine();
        o.WriteLine("== /proc/meminfo (subset) ==");
        o.Write(k.FormatMemInfo());
        o.WriteLine();
        o.WriteLine("== /proc/buddyinfo ==");
        o.Write(k.Pages.FormatBuddyInfo());
        o.WriteLine();
        o.WriteLine("== /proc/slabinfo (caches in use) ==");
        var slab = k.FormatSlabInfo().Split('\n');
        foreach (var line in slab.Take(2)) o.WriteLine(line);
        foreach (var line in slab.Skip(2).Where(l => l.Length > 0 && !l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1].Equals("0", StringComparison.Ordinal)))
            o.WriteLine(line);
        o.WriteLine();
        o.WriteLine("== /sys/kernel/debug/page_tables/kernel (first lines) ==");
        foreach (var line in PtDump.Format(k).Split('\n').Take(14)) o.WriteLine(line);
        PtDump.CheckWx(k);
        o.WriteLine(k.Log.Lines[^1]);
        k.Kfree(p);
        k.Kfree(q);
        k.Kfree(big);
        k.Vfree(v);
        k.IoUnmap(rom);
    }
}
