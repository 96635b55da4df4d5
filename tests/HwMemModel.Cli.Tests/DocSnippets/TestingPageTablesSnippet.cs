using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Cli.Tests.DocSnippets;

/// <summary>The C# example of docs/testing-page-tables.md, compiled and run (DocsTests checks the doc quotes it).</summary>
public sealed class TestingPageTablesSnippet
{
    [Test]
    public void The_documented_example_runs()
    {
        var bus = new PhysicalBus();                                  // MAXPHYADDR 40, unmapped reads all ones
        bus.AddRam("ram", 0, 256UL << 20);
        var tables = new PageTableBuilder(bus, 0x100_0000, 0x10_0000); // your code can write raw entries instead
        tables.Map(0x40_0000, 0x200_0000, PageSize.Size4K, PteFlags.Writable | PteFlags.User);
        var cpu = new CpuContext(bus, tlb: TlbGeometry.Tiny);         // small TLBs make missing flushes show quickly
        cpu.EnterLongMode(tables.Root, extraCr4: Cr4.PGE | Cr4.SMEP | Cr4.SMAP);
        cpu.Mmu.CoherenceChecking = true;                             // report stale translations as they are used

        var r = cpu.Mmu.Write(0x40_0000, 8, 42, Privilege.User);      // a fault is a value, never an exception
        Assert.That(r.Fault.IsFault, Is.False);
        Assert.That(tables.ReadEntry(0x40_0000, 1) & 0x60, Is.EqualTo(0x60UL));   // the walker set A and D in RAM

        var f = cpu.Mmu.Translate(0x40_0000, AccessKind.Execute, Privilege.Supervisor, out _);
        Assert.That(f.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.InstructionFetch)); // SMEP
        Console.WriteLine(cpu.Mmu.Explain(0x40_0000, AccessKind.Execute, Privilege.Supervisor)); // why, in words
    }
}
