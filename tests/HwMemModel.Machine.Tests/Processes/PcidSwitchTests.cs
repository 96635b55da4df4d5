using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>
/// switch_mm with PCIDs: each address space runs under its own PCID (slot + 1) and keeps its TLB entries across
/// switches while it stays among the CPU's six most recent (TLB_NR_DYN_ASIDS), as Linux's choose_new_asid does.
/// </summary>
public sealed class PcidSwitchTests
{
    private static (ProcessHarness H, TaskStruct[] Tasks, ulong[] Pages) Setup(int processes)
    {
        string prog = TestPrograms.Raw("raw_hello");
        var h = new ProcessHarness();
        var tasks = new TaskStruct[processes];
        var pages = new ulong[processes];
        for (int i = 0; i < processes; i++)
        {
            tasks[i] = h.Machine.Start(prog, [prog]);
            h.Kernel.SwitchMm(tasks[i].Mm, 0);
            pages[i] = (ulong)h.Kernel.DoMmap(tasks[i], 0, 4096, Mman.ProtRead | Mman.ProtWrite, Mman.MapPrivate | Mman.MapAnonymous, null, 0);
            Assert.That(h.Kernel.HandleUserFault(tasks[i], pages[i], PageFaultErrorCode.Write | PageFaultErrorCode.User), Is.EqualTo(UserFaultResult.Handled));
        }
        return (h, tasks, pages);
    }

    private static long WalksFor(ProcessHarness h, ulong va)
    {
        var mmu = h.Kernel.Cpus[0].Mmu;
        long before = mmu.Counters.Walks;
        Assert.That(mmu.Translate(va, AccessKind.Read, Privilege.User, out _).IsFault, Is.False);
        return mmu.Counters.Walks - before;
    }

    [Test]
    public void Each_process_gets_its_own_PCID_and_CR3_points_at_its_PGD()
    {
        var (h, tasks, _) = Setup(3);
        var cpu = h.Kernel.Cpus[0];
        var pcids = new HashSet<ushort>();
        foreach (var t in tasks)
        {
            h.Kernel.SwitchMm(t.Mm, 0);
            Assert.That(cpu.TopLevelTable, Is.EqualTo(t.Mm!.Pgd));
            Assert.That(cpu.CurrentPcid, Is.InRange((ushort)1, (ushort)Kernel.Kernel.TlbNrDynAsids));
            pcids.Add(cpu.CurrentPcid);
        }
        Assert.That(pcids, Has.Count.EqualTo(3));
    }

    [Test]
    public void Switching_back_keeps_the_TLB_entries_of_a_recent_address_space()
    {
        var (h, tasks, pages) = Setup(2);
        h.Kernel.SwitchMm(tasks[0].Mm, 0);
        Assert.That(WalksFor(h, pages[0]), Is.EqualTo(1), "first use walks");
        Assert.That(WalksFor(h, pages[0]), Is.Zero, "then hits");
        h.Kernel.SwitchMm(tasks[1].Mm, 0);
        h.Kernel.SwitchMm(tasks[0].Mm, 0);
        Assert.That(WalksFor(h, pages[0]), Is.Zero, "CR3 was loaded with bit 63 set: the PCID's entries survived");
    }

    [Test]
    public void A_seventh_address_space_takes_the_oldest_slot_and_flushes_it()
    {
        var (h, tasks, pages) = Setup(7);
        h.Kernel.SwitchMm(tasks[0].Mm, 0);
        WalksFor(h, pages[0]);
        for (int i = 1; i < 7; i++) h.Kernel.SwitchMm(tasks[i].Mm, 0);
        h.Kernel.SwitchMm(tasks[0].Mm, 0);
        Assert.That(WalksFor(h, pages[0]), Is.EqualTo(1), "six other address spaces since: the slot was reused and flushed");
    }

    [Test]
    public void A_flush_while_switched_away_is_caught_up_on_return()
    {
        var (h, tasks, pages) = Setup(2);
        h.Kernel.SwitchMm(tasks[0].Mm, 0);
        WalksFor(h, pages[0]);
        h.Kernel.SwitchMm(tasks[1].Mm, 0);
        // mprotect in task 0's mm while it is not loaded bumps its tlb_gen; the next switch to it must flush.
        Assert.That(h.Kernel.DoMprotect(tasks[0], pages[0], 4096, Mman.ProtRead), Is.Zero);
        h.Kernel.SwitchMm(tasks[0].Mm, 0);
        Assert.That(WalksFor(h, pages[0]), Is.EqualTo(1), "tlb_gen moved on: CR3 was loaded without bit 63");
    }
}
