using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Machine;

/// <summary>
/// A built-in page-table set over the default machine, laid out like a small Linux kernel: a direct map of RAM at
/// 0xffff888000000000 with 2 MiB pages (PAGE_KERNEL: RW, global, NX), kernel text at 0xffffffff81000000 (4 KiB,
/// read-only, executable, global), a user program at 0x400000 (code R-X, data RW-NX, a page with protection key 1),
/// and an uncached 2 MiB window over the ROM below 4 GiB at 0xffffc90000000000. Tables live in RAM at 8 MiB.
/// </summary>
public sealed class DemoPageTables
{
    /// <summary>Direct-map base (page_offset_base, 4-level).</summary>
    public const ulong DirectMap = 0xffff_8880_0000_0000UL;
    /// <summary>Kernel text virtual address.</summary>
    public const ulong KernelText = 0xffff_ffff_8100_0000UL;
    /// <summary>Physical address of the kernel text.</summary>
    public const ulong KernelTextPhys = 0x100_0000UL;
    /// <summary>User code page.</summary>
    public const ulong UserCode = 0x40_0000UL;
    /// <summary>User data page (RW, NX).</summary>
    public const ulong UserData = 0x60_0000UL;
    /// <summary>User page with protection key 1.</summary>
    public const ulong UserKeyed = 0x60_1000UL;
    /// <summary>Uncached window over the top 2 MiB below 4 GiB (the BIOS ROM).</summary>
    public const ulong IoWindow = 0xffff_c900_0000_0000UL;
    /// <summary>Physical base of the page-table pool.</summary>
    public const ulong TablePool = 0x80_0000UL;

    private DemoPageTables(PhysicalBus bus, PageTableBuilder tables, CpuContext cpu)
    {
        Bus = bus;
        Tables = tables;
        Cpu = cpu;
    }

    /// <summary>The bus.</summary>
    public PhysicalBus Bus { get; }
    /// <summary>The tables (for changing entries in demos).</summary>
    public PageTableBuilder Tables { get; }
    /// <summary>CPU 0, in 4-level long mode with CR3 at the tables, CR0.WP, CR4.PGE/SMEP/SMAP/PKE, EFER.NXE.</summary>
    public CpuContext Cpu { get; }

    /// <summary>Builds the default machine's bus, the tables and CPU 0.</summary>
    public static DemoPageTables Create(TlbGeometry? tlb = null, ulong ramSize = DefaultMachine.DefaultRamSize)
    {
        var bus = DefaultMachine.CreateBus(ramSize);
        var t = new PageTableBuilder(bus, TablePool, 0x10_0000);
        const PteFlags kernelData = PteFlags.Writable | PteFlags.Accessed | PteFlags.Dirty | PteFlags.Global | PteFlags.NoExecute;
        t.MapRange(DirectMap, 0, ramSize & ~(PageGeometry.Page2M - 1), PageSize.Size2M, kernelData);
        t.MapRange(KernelText, KernelTextPhys, 0x4000, PageSize.Size4K, PteFlags.Accessed | PteFlags.Global);
        t.Map(UserCode, 0x200_0000, PageSize.Size4K, PteFlags.User);
        t.Map(UserData, 0x200_1000, PageSize.Size4K, PteFlags.User | PteFlags.Writable | PteFlags.NoExecute);
        t.Map(UserKeyed, 0x200_2000, PageSize.Size4K, PteFlags.User | PteFlags.Writable | PteFlags.NoExecute, protectionKey: 1);
        t.Map(IoWindow, 0xFFE0_0000, PageSize.Size2M, PteFlags.Writable | PteFlags.CacheDisable | PteFlags.WriteThrough | PteFlags.NoExecute | PteFlags.Global);
        var cpu = new CpuContext(bus, 0, null, tlb);
        cpu.EnterLongMode(t.Root, extraCr4: Cr4.PGE | Cr4.SMEP | Cr4.SMAP | Cr4.PKE);
        cpu.Pkru = 0b11 << 2; // key 1: access and write disabled
        // Some recognisable bytes.
        bus.Write(0x200_1000, 8, 0x0123_4567_89ab_cdefUL, BusAttributes.Host);
        bus.Write(KernelTextPhys, 4, 0x90909090, BusAttributes.Host);
        return new DemoPageTables(bus, t, cpu);
    }
}
