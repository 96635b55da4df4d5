using HwMemModel.Bus;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Cli;

/// <summary>The main job: a tour of the MMU on the built-in default machine.</summary>
public static class Demo
{
    /// <summary>Runs the demo and returns 0.</summary>
    public static int Run(TextWriter o)
    {
        var m = DemoPageTables.Create();
        var cpu = m.Cpu;
        var mmu = cpu.Mmu;
        o.WriteLine("HwMemModel demo: built-in default machine (QEMU pc memory map, 128 MiB RAM), CPU 0 in 4-level long mode");
        o.WriteLine("with CR0.WP, CR4.PGE/SMEP/SMAP/PKE and EFER.NXE; page tables built in RAM at 0x800000.");
        o.WriteLine();
        o.WriteLine("== /proc/iomem ==");
        o.Write(m.Bus.FormatIoMem());
        o.WriteLine();
        o.WriteLine("== e820 ==");
        o.Write(m.Bus.FormatE820());
        o.WriteLine();

        o.WriteLine("== Walks ==");
        (string title, ulong va, AccessKind kind, Privilege priv)[] walks =
        [
            ("kernel reads the direct map (2 MiB page, global, NX)", DemoPageTables.DirectMap + 0x200_1000, AccessKind.Read, Privilege.Supervisor),
            ("kernel fetches from its text (4 KiB, read-only, global)", DemoPageTables.KernelText, AccessKind.Execute, Privilege.Supervisor),
            ("kernel writes its text (CR0.WP=1)", DemoPageTables.KernelText, AccessKind.Write, Privilege.Supervisor),
            ("user program reads kernel memory", DemoPageTables.DirectMap, AccessKind.Read, Privilege.User),
            ("user program writes its data page", DemoPageTables.UserData, AccessKind.Write, Privilege.User),
            ("user program jumps into its data page (NX)", DemoPageTables.UserData, AccessKind.Execute, Privilege.User),
            ("kernel reads user memory without STAC (SMAP)", DemoPageTables.UserData, AccessKind.Read, Privilege.Supervisor),
            ("kernel jumps to user code (SMEP)", DemoPageTables.UserCode, AccessKind.Execute, Privilege.Supervisor),
            ("user reads a page whose protection key is access-disabled", DemoPageTables.UserKeyed, AccessKind.Read, Privilege.User),
            ("kernel reads the uncached ROM window", DemoPageTables.IoWindow + 0x1F_FFF0, AccessKind.Read, Privilege.Supervisor),
            ("user touches an unmapped address", 0x7fff_0000_0000, AccessKind.Read, Privilege.User),
            ("anyone uses a non-canonical address", 0x0000_8000_0000_0000, AccessKind.Read, Privilege.Supervisor),
        ];
        int n = 1;
        foreach (var (title, va, kind, priv) in walks)
        {
            o.WriteLine($"[{n++}] {title}");
            o.Write(mmu.Explain(va, kind, priv).ToString());
            mmu.Translate(va, kind, priv, out _);
            o.WriteLine();
        }

        o.WriteLine("== A missing TLB flush, caught ==");
        mmu.CoherenceChecking = true;
        ulong va2 = DemoPageTables.UserData;
        mmu.Read(va2, 8, Privilege.User, out ulong before);
        ulong pte = m.Tables.ReadEntry(va2, 1);
        m.Tables.WriteEntry(va2, 1, (pte & ~0x000F_FFFF_FFFF_F000UL) | 0x200_3000UL); // remap to another frame, no INVLPG
        m.Bus.Write(0x200_3000, 8, 0xfeed_face_cafe_beefUL, BusAttributes.Host);
        mmu.Read(va2, 8, Privilege.User, out ulong stale);
        o.WriteLine($"The PTE for 0x{va2:x} was changed in RAM to frame 0x2003000 without INVLPG.");
        o.WriteLine($"A read still returns 0x{stale:x16} (old frame; was 0x{before:x16}), as hardware may.");
        foreach (var ev in mmu.StaleTranslations) o.WriteLine($"coherence checker: {ev.Description}");
        mmu.Invlpg(va2);
        mmu.Read(va2, 8, Privilege.User, out ulong fresh);
        o.WriteLine($"After INVLPG the read returns 0x{fresh:x16} (new frame).");
        o.WriteLine();

        o.WriteLine("== TLB and walk counters ==");
        o.Write(Report.Counters(mmu));
        o.WriteLine();
        KernelDemo.Run(o);
        o.WriteLine();
        DevicesDemo.Run(o);
        o.WriteLine();
        FirmwareDemo.Run(o);
        return 0;
    }
}
