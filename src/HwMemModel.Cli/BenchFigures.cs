using System.Diagnostics;
using System.Globalization;
using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using HwMemModel.Machine.Processes;
using HwMemModel.Mmu;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Cli;

/// <summary>One speed figure of an issue, measured by <c>hwmem bench</c>.</summary>
/// <param name="Name">What is measured.</param>
/// <param name="Issue">The issue that set the target.</param>
/// <param name="NanosecondsPerOp">Best time per operation.</param>
/// <param name="Target">The target in words (per-op ceiling or per-second floor).</param>
/// <param name="Met">Whether the figure meets the target.</param>
public sealed record BenchFigure(string Name, string Issue, double NanosecondsPerOp, string Target, bool Met)
{
    /// <summary>Operations per second.</summary>
    public double PerSecond => 1e9 / NanosecondsPerOp;
}

/// <summary>
/// The speed figures of the MMU, kernel and devices issues in one table, measured with a stopwatch over a fixed number
/// of operations (best of several rounds). BenchmarkDotNet's figures in BENCHMARKS.md are the reference; these are a
/// quick check on the machine at hand.
/// </summary>
public static class BenchFigures
{
    /// <summary>Measures every figure; <paramref name="rounds"/> rounds each, the fastest counts.</summary>
    public static IReadOnlyList<BenchFigure> Measure(int rounds)
    {
        var list = new List<BenchFigure>();
        ulong sink = 0;
        void Add(string name, string issue, int ops, Func<int, ulong> body, double? maxNs = null, double? minPerSecond = null)
        {
            // Warm up for a while so that tiered compilation has promoted the hot methods (and caches are filled).
            var warm = Stopwatch.StartNew();
            do sink += body(Math.Max(1, ops / 10)); while (warm.ElapsedMilliseconds < 250);
            double best = double.MaxValue;
            for (int r = 0; r < rounds; r++)
            {
                var sw = Stopwatch.StartNew();
                sink += body(ops);
                best = Math.Min(best, sw.Elapsed.TotalNanoseconds / ops);
            }
            string target = maxNs is { } m ? string.Create(CultureInfo.InvariantCulture, $"<= {m} ns") : string.Create(CultureInfo.InvariantCulture, $">= {minPerSecond:N0}/s");
            bool met = maxNs is { } mx ? best <= mx : 1e9 / best >= minPerSecond;
            list.Add(new BenchFigure(name, issue, best, target, met));
        }

        // MMU (issue 2): a small machine with 4 KiB user pages.
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 256UL << 20);
        var tables = new PageTableBuilder(bus, 0x100_0000, 0x100_0000);
        tables.MapRange(0x4000_0000, 0x200_0000, 8UL << 20, PageSize.Size4K, PteFlags.Writable | PteFlags.User | PteFlags.Accessed | PteFlags.Dirty);
        for (ulong pa = 0x200_0000; pa < 0x200_0000 + (8UL << 20); pa += 4096) bus.Write(pa, 8, pa, BusAttributes.Host); // touch the data pages
        var cpu = new CpuContext(bus);
        cpu.EnterLongMode(tables.Root);
        var cold = new CpuContext(bus, 1, tlb: TlbGeometry.None);
        cold.EnterLongMode(tables.Root);
        Add("TLB-hit translation of a data read", "MMU", 1_000_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) { cpu.Mmu.Translate(0x4000_0000 + (ulong)(i & 63) * 8, AccessKind.Read, Privilege.User, out var t); sum += t.PhysicalAddress; }
            return sum;
        }, maxNs: 5);
        Add("4-level walk, cold (no TLB, no paging-structure caches)", "MMU", 200_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) { cold.Mmu.Translate(0x4000_0000 + (ulong)(i & 1023) * 4096, AccessKind.Read, Privilege.User, out var t); sum += t.PhysicalAddress; }
            return sum;
        }, maxNs: 60);
        Add("8-byte RAM read through the MMU and the bus", "MMU", 1_000_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) { cpu.Mmu.Read(0x4000_0000 + (ulong)(i & 511) * 8, 8, Privilege.User, out ulong v); sum += v; }
            return sum;
        }, maxNs: 8);

        // Kernel model (issue 3).
        var k = Kernel.Kernel.Boot(DefaultMachine.CreateBus(256UL << 20));
        Add("order-0 page alloc+free", "kernel", 1_000_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) { var pa = k.Pages.AllocPages(Gfp.Kernel, 0, caller: "bench")!.Value; k.Pages.FreePages(pa, 0, "bench"); }
            return sum;
        }, minPerSecond: 10_000_000);
        Add("kmalloc(64)+kfree", "kernel", 1_000_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) k.Kfree(k.Kmalloc(64, Gfp.Kernel, "bench"), "bench");
            return sum;
        }, minPerSecond: 5_000_000);
        Add("vmalloc(16 KiB)+vfree", "kernel", 20_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) k.Vfree(k.Vmalloc(16384, "bench"));
            return sum;
        }, minPerSecond: 200_000);
        Add("ioremap(4 KiB)+iounmap", "kernel", 20_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) k.IoUnmap(k.IoRemap(0xFEB0_0000, 4096, "bench"), "bench");
            return sum;
        }, minPerSecond: 200_000);

        // Devices and drivers (issue 5): the default machine with the built-in drivers.
        using var provider = new ServiceCollection().AddHwMemModel(MachineDescription.Default).AddBuiltInDrivers().BuildServiceProvider();
        var machine = provider.StartHwMemModel();
        ulong regs = machine.Kernel.IoRemap(MachineDescription.DefaultDmaBase, 0x1000, "bench");
        Add("readl of a device register through ioremap", "devices", 1_000_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) sum += machine.Kernel.ReadL(regs);
            return sum;
        }, minPerSecond: 20_000_000);
        var disk = provider.GetRequiredService<Drivers.Block.VirtioBlkDriver>().Disks["virtio0"];
        var buffer = new byte[4096];
        Add("virtio-blk 4 KiB read through the driver", "devices", 20_000, n =>
        {
            ulong sum = 0;
            for (int i = 0; i < n; i++) sum += (ulong)disk.ReadSectors((ulong)(i & 1023) * 8, buffer);
            return sum;
        }, minPerSecond: 100_000);

        // User processes (issue 8): programs assembled with StaticElf in a temporary sandbox.
        string root = Path.Combine(Path.GetTempPath(), $"hwmem-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        try
        {
            File.WriteAllBytes(Path.Combine(root, "touch"), StaticElf.TouchPages(1));
            const int Forks = 100;
            File.WriteAllBytes(Path.Combine(root, "forkexit"), StaticElf.ForkExit(10, Forks));
            var pm = new ProcessMachine(new ProcessMachineOptions { Root = root, RamSize = 512UL << 20 });
            var task = pm.Start("/touch", ["/touch"]); // an address space for the kernel-level figure; never run
            Add("demand-zero page fault served (handle_mm_fault)", "processes", 4096, n =>
            {
                var pk = pm.Kernel;
                long addr = pk.DoMmap(task, 0, (ulong)n * 4096, 3, 0x22, null, 0);
                ulong handled = 0;
                for (int i = 0; i < n; i++)
                    if (pk.HandleUserFault(task, (ulong)addr + (ulong)i * 4096, PageFaultErrorCode.Write | PageFaultErrorCode.User) == UserFaultResult.Handled) handled++;
                pk.DoMunmap(task, (ulong)addr, (ulong)n * 4096);
                return handled;
            }, minPerSecond: 1_000_000);
            // Each round runs the program once: Forks fork+exit+wait4 of a 10 MiB process (its first touch included).
            var forker = new ProcessMachine(new ProcessMachineOptions { Root = root, RamSize = 512UL << 20 });
            Add("fork+exit+wait4 of a 10 MiB process", "processes", Forks, n =>
            {
                ulong status = 0;
                for (int done = 0; done < n; done += Forks) status += (ulong)forker.Run(forker.Start("/forkexit", ["/forkexit"])).ExitStatus;
                return status;
            }, minPerSecond: 2_000);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
        GC.KeepAlive(sink);
        return list;
    }

    /// <summary>Whether this build runs without JIT optimisation (a Debug build), which makes every figure slow.</summary>
    public static bool IsDebugBuild()
        => typeof(BenchFigures).Assembly.GetCustomAttributes(typeof(DebuggableAttribute), false)
            .OfType<DebuggableAttribute>().Any(a => a.IsJITOptimizerDisabled);
}
