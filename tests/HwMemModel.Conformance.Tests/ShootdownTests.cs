using System.Globalization;
using System.Text.RegularExpressions;
using HwMemModel.Bus;
using HwMemModel.Firmware;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Conformance.Tests;

/// <summary>
/// The cross-CPU shootdown images (<c>shootdown</c>, <c>shootdown-missing</c>, four CPUs as recorded on QEMU): the
/// coherence checker's reports, and the shootdown counts against the kernel model's flush_tlb_kernel_range.
/// Expectations come from the images' design (firmware/README.md): four CPUs, four test pages at 0x40000000 whose PTEs
/// sit at PA 0xC000 + 8i and move from frame 0x200000 + 0x1000i to 0x210000 + 0x1000i; the APs read each page with
/// <c>mov rdx,[rax+40000000h]</c>.
/// </summary>
public sealed class ShootdownTests
{
    private const int Cpus = 4;
    private const int Pages = 4;

    private static (string Serial, PcMachine Machine) Run(string name, bool check)
    {
        var ((serial, exit, result), machine) = FirmwareConformanceTests.RunOnMachine(FirmwareImages.Get(name),
            new PcMachineOptions { Cpus = Cpus, CoherenceChecking = check });
        Assert.That(exit, Is.EqualTo(FirmwareImages.QemuSuccessExitStatus), result.Report);
        return (serial, machine);
    }

    [Test]
    public void Images_are_recorded_with_four_cpus()
    {
        Assert.That(FirmwareImages.Get("shootdown").Cpus, Is.EqualTo(Cpus));
        Assert.That(FirmwareImages.Get("shootdown-missing").Cpus, Is.EqualTo(Cpus));
        Assert.That(FirmwareImages.Get("shootdown").QemuCommandLine("x.bin"), Does.EndWith("-bios x.bin -smp 4"));
    }

    [Test]
    public void Missing_shootdown_lets_every_AP_read_the_old_frames_and_the_fix_does_not()
    {
        var (missing, _) = Run("shootdown-missing", check: false);
        var (fixedRun, _) = Run("shootdown", check: false);
        for (int cpu = 1; cpu < Cpus; cpu++)
        {
            Assert.That(missing, Does.Contain($"shootdown: CPU {cpu} read 0x1000 0x1001 0x1002 0x1003\n"), "stale: the old frames");
            Assert.That(fixedRun, Does.Contain($"shootdown: CPU {cpu} read 0x2000 0x2001 0x2002 0x2003\n"), "after INVLPG on each CPU: the new frames");
        }
        Assert.That(missing, Does.Contain("stale reads: 12 of 12\n"));
        Assert.That(fixedRun, Does.Contain("stale reads: 0 of 12\n"));
    }

    [Test]
    public void Checker_reports_the_missing_shootdown_naming_both_cpus_both_instructions_and_the_entry_before_and_after()
    {
        var (_, machine) = Run("shootdown-missing", check: true);
        var stale = machine.StaleTranslations;
        Assert.That(stale, Has.Count.EqualTo((Cpus - 1) * Pages), "one report per AP and page");
        Assert.That(stale.Select(e => e.CpuId).Distinct(), Is.EquivalentTo(new[] { 1, 2, 3 }));
        var first = stale.Single(e => e.CpuId == 1 && e.VirtualAddress == 0x4000_0000);
        // PTE 0 at PA 0xC000: P|RW with A set by CPU 1's walk (0x23) on the old frame, then P|RW (0x3) on the new frame.
        Assert.That(first.Change, Is.Not.Null);
        Assert.That(first.Change!.Writer, Is.EqualTo(BusAttributes.Cpu(0)));
        Assert.That(first.Change.EntryAddress, Is.EqualTo(0xC000UL));
        Assert.That(first.Change.OldValue, Is.EqualTo(0x20_0023UL));
        Assert.That(first.Change.NewValue, Is.EqualTo(0x21_0003UL));
        Assert.That(first.Kind, Is.EqualTo(StaleKind.DifferentFrame));
        Assert.That(first.CachedPhysicalAddress, Is.EqualTo(0x20_0000UL));
        Assert.That(first.CurrentPhysicalAddress, Is.EqualTo(0x21_0000UL));
        Assert.That(first.ReaderInstruction, Is.EqualTo("mov rdx,[rax+40000000h]"));
        Assert.That(first.Change.Instruction, Is.EqualTo("mov [0C000h],rax"), "the BSP's store of the new PTE");
        var d = first.Description;
        Assert.That(d, Does.StartWith("CPU 1 used a stale TLB entry for 0x40000000: CPU 0 changed the PTE at PA 0xc000 from 0x200023 to 0x210003 with 'mov [0C000h],rax' at 0x"));
        Assert.That(d, Does.Contain("; CPU 1 then executed 'mov rdx,[rax+40000000h]' at 0x"));
        Assert.That(d, Does.EndWith("without an INVLPG or CR3 reload since: a TLB shootdown is missing."));
        // Both instruction pointers are real addresses of the instructions: the BSP runs from the BIOS alias, the AP from 0xA000.
        Assert.That(first.Change.InstructionPointer, Is.InRange(0xF_0000UL, 0xF_FFFFUL));
        Assert.That(first.ReaderInstructionPointer, Is.InRange(0xA000UL, 0xA7FFUL));
        for (int page = 0; page < Pages; page++)
        {
            var e = stale.Single(x => x.CpuId == 3 && x.VirtualAddress == 0x4000_0000UL + (ulong)page * 0x1000);
            Assert.That(e.Change!.EntryAddress, Is.EqualTo(0xC000UL + (ulong)page * 8));
            Assert.That(e.Change.NewValue, Is.EqualTo((0x21_0000UL + (ulong)page * 0x1000) | 3));
        }
    }

    [Test]
    public void Checker_reports_nothing_for_the_shootdown_with_INVLPG_on_each_cpu()
    {
        var (serial, machine) = Run("shootdown", check: true);
        Assert.That(machine.StaleTranslations, Is.Empty, string.Join("\n", machine.StaleTranslations.Select(e => e.Description)));
        Assert.That(machine.CoherenceLog!.PageCount, Is.GreaterThan(0), "the walks registered the page tables");
        Assert.That(machine.CoherenceLog.Changes, Is.GreaterThanOrEqualTo(Pages), "the PTE changes were logged");
        Assert.That(serial, Does.Contain("stale reads: 0 of 12\n"));
    }

    [Test]
    public void Checker_off_costs_no_logged_pages_and_output_is_the_same()
    {
        var (off, offMachine) = Run("shootdown-missing", check: false);
        var (on, _) = Run("shootdown-missing", check: true);
        Assert.That(offMachine.CoherenceLog, Is.Null);
        Assert.That(offMachine.Bus.LoggedPageCount, Is.Zero);
        Assert.That(offMachine.StaleTranslations, Is.Empty);
        Assert.That(on, Is.EqualTo(off), "the checker reports but does not correct: the guest sees the same stale values");
    }

    /// <summary>
    /// The count both sides report for one shootdown of N pages on C CPUs: IPIs = C - 1 (one to every other CPU) and
    /// INVLPGs = N × C (each page on every CPU, the initiator included).
    /// </summary>
    [Test]
    public void Firmware_shootdown_and_kernel_vunmap_give_the_same_counts_for_the_same_work()
    {
        var (serial, machine) = Run("shootdown", check: false);
        var m = Regex.Match(serial, @"IPIs delivered: (\d+), INVLPG executed: (\d+)");
        Assert.That(m.Success, serial);
        long firmwareIpis = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        long firmwareInvlpgs = long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.That(firmwareIpis, Is.EqualTo(Cpus - 1));
        Assert.That(firmwareInvlpgs, Is.EqualTo(Pages * Cpus));
        // The model's own INVLPG counters agree with the firmware's (no other INVLPG runs in the image).
        long modelInvlpgs = machine.AllCpus.Sum(c => c.Context.Mmu.Counters.Flushes(FlushKind.Invlpg));
        Assert.That(modelInvlpgs, Is.EqualTo(firmwareInvlpgs));
        // Each AP executed INVLPG for every page once, in its IPI handler.
        Assert.That(machine.AllCpus.Skip(1).Select(c => c.Context.Mmu.Counters.Flushes(FlushKind.Invlpg)), Is.All.EqualTo(Pages));

        // The same work on the kernel model: vunmap of a 4-page vmap area on a 4-CPU kernel.
        var bus = DefaultMachine.CreateBus(256UL << 20);
        var k = Kernel.Kernel.Boot(bus, new KernelOptions { Cpus = Cpus });
        var pages = Enumerable.Range(0, Pages).Select(_ => k.Pages.AllocPages(Gfp.Kernel, 0)!.Value).ToArray();
        ulong va = k.Vmap(pages);
        var before = (k.TlbShootdowns.Ipis, k.TlbShootdowns.Invlpgs);
        k.Vunmap(va);
        Assert.That(k.TlbShootdowns.Ipis - before.Ipis, Is.EqualTo(firmwareIpis), "IPIs");
        Assert.That(k.TlbShootdowns.Invlpgs - before.Invlpgs, Is.EqualTo(firmwareInvlpgs), "INVLPGs");
    }
}
