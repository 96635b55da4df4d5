using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// The cross-CPU coherence checker: MMUs sharing a <see cref="PagingWriteLog"/> report a stale translation with the
/// change behind it (writer, entry address, value before and after, writer's instruction) and the reader's instruction.
/// </summary>
public sealed class CrossCpuCoherenceTests
{
    private const ulong Va = 0x4000_0000;

    private static (TlbRig Rig, CpuContext Other, PagingWriteLog Log) TwoCpus(bool check = true)
    {
        var rig = new TlbRig(cpuId: 1);
        var other = new CpuContext(rig.Bus, 0);
        other.EnterLongMode(rig.Tables.Root, false, Cr4.PGE);
        var log = new PagingWriteLog(rig.Bus)
        {
            DescribeCpu = id => id switch
            {
                0 => new CpuPosition(0x1234, "mov [rbx],rax"),
                1 => new CpuPosition(0x5678, "mov rax,[rcx]"),
                _ => null,
            },
        };
        foreach (var mmu in new[] { rig.Mmu, other.Mmu })
        {
            mmu.WriteLog = log;
            mmu.CoherenceChecking = check;
        }
        return (rig, other, log);
    }

    [Test]
    public void Stale_use_after_another_cpu_changed_the_PTE_names_both_cpus_instructions_and_the_entry_before_and_after()
    {
        var (rig, _, _) = TwoCpus();
        ulong f1 = rig.Map4K(Va);
        rig.Read(Va);                                          // CPU 1 caches the translation (the walk sets A)
        ulong pte = rig.Tables.EntryAddress(Va, 1)!.Value;
        ulong before = rig.Bus.Read(pte, 8, out ulong v, BusAttributes.Host) == BusStatus.Ok ? v : 0;
        Assert.That(before, Is.EqualTo(f1 | 0x23), "P|RW|A");
        ulong f2 = rig.NewFrame4K();
        ulong after = f2 | 0x3;
        rig.Bus.Write(pte, 8, after, BusAttributes.Cpu(0));    // CPU 0's store to the PTE
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f1)), "CPU 1 still uses the old frame");
        var e = rig.Mmu.StaleTranslations.Single();
        Assert.That(e.Change, Is.Not.Null);
        Assert.That(e.Change!.Writer, Is.EqualTo(BusAttributes.Cpu(0)));
        Assert.That((e.Change.EntryAddress, e.Change.OldValue, e.Change.NewValue), Is.EqualTo((pte, before, after)));
        Assert.That((e.ReaderInstructionPointer, e.ReaderInstruction), Is.EqualTo(((ulong?)0x5678, "mov rax,[rcx]")));
        Assert.That(e.Description, Is.EqualTo(
            $"CPU 1 used a stale TLB entry for 0x40000000: CPU 0 changed the PTE at PA 0x{pte:x} from 0x{before:x} to 0x{after:x} "
            + "with 'mov [rbx],rax' at 0x1234; CPU 1 then executed 'mov rax,[rcx]' at 0x5678 without an INVLPG or CR3 reload since: "
            + "a TLB shootdown is missing."));
    }

    [Test]
    public void A_change_of_an_upper_level_entry_is_named_by_its_level()
    {
        var (rig, _, _) = TwoCpus();
        rig.Map4K(Va);
        rig.Read(Va);
        ulong pde = rig.Tables.EntryAddress(Va, 2)!.Value;
        rig.Bus.Write(pde, 8, 0, BusAttributes.Cpu(0));         // CPU 0 unmaps the whole page table
        rig.Read(Va);
        var e = rig.Mmu.StaleTranslations.Single();
        Assert.That(e.Kind, Is.EqualTo(StaleKind.NowUnmapped));
        Assert.That(e.Change!.EntryAddress, Is.EqualTo(pde));
        Assert.That(e.Change.NewValue, Is.Zero);
        Assert.That(e.Description, Does.Contain($"CPU 0 changed the PDE at PA 0x{pde:x}"));
    }

    [Test]
    public void Own_change_without_a_flush_is_a_missing_flush_and_accessed_dirty_updates_are_not_changes()
    {
        var (rig, _, log) = TwoCpus();
        rig.Map4K(Va);
        rig.Read(Va);
        ulong pte = rig.Tables.EntryAddress(Va, 1)!.Value;
        rig.Bus.Read(pte, 8, out ulong raw, BusAttributes.Host);
        rig.Bus.Write(pte, 8, raw | TlbRig.D, BusAttributes.Cpu(0)); // only D: not a change
        Assert.That(log.LastChange(pte), Is.Null);
        rig.Bus.Write(pte, 8, (raw | TlbRig.D) & ~2UL, BusAttributes.Cpu(1)); // CPU 1 itself makes the page read-only
        rig.Read(Va);
        var e = rig.Mmu.StaleTranslations.Single();
        Assert.That(e.Change!.Writer, Is.EqualTo(BusAttributes.Cpu(1)));
        Assert.That(e.Change.OldValue, Is.EqualTo(raw | TlbRig.D), "the log's copy followed the D update");
        Assert.That(e.Description, Does.EndWith("a TLB flush is missing."));
    }

    [Test]
    public void Fixed_sequence_with_INVLPG_on_the_reader_reports_nothing()
    {
        var (rig, _, _) = TwoCpus();
        rig.Map4K(Va);
        rig.Read(Va);
        ulong pte = rig.Tables.EntryAddress(Va, 1)!.Value;
        ulong f2 = rig.NewFrame4K();
        rig.Bus.Write(pte, 8, f2 | 3, BusAttributes.Cpu(0));
        rig.Mmu.Invlpg(Va);                                     // the shootdown reached CPU 1
        Assert.That(rig.Read(Va), Is.EqualTo(TlbRig.Marker(f2)));
        Assert.That(rig.Mmu.StaleTranslations, Is.Empty);
    }

    [Test]
    public void With_checking_off_no_page_is_logged()
    {
        var (rig, _, log) = TwoCpus(check: false);
        rig.Map4K(Va);
        rig.Read(Va);
        Assert.That(log.PageCount, Is.Zero);
        Assert.That(rig.Bus.LoggedPageCount, Is.Zero);
    }
}
