using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>Counters of the kernel's TLB shootdowns (flush_tlb_kernel_range).</summary>
public sealed class TlbShootdownCounters
{
    /// <summary>Calls of flush_tlb_kernel_range.</summary>
    public long Flushes { get; internal set; }
    /// <summary>Calls that flushed page by page (at most <see cref="Kernel.TlbSinglePageFlushCeiling"/> pages).</summary>
    public long RangeFlushes { get; internal set; }
    /// <summary>Calls that flushed everything on every CPU.</summary>
    public long FullFlushes { get; internal set; }
    /// <summary>INVLPG instructions executed, summed over CPUs.</summary>
    public long Invlpgs { get; internal set; }
    /// <summary>Full TLB flushes executed, summed over CPUs.</summary>
    public long CpuFullFlushes { get; internal set; }
    /// <summary>Inter-processor interrupts sent: one to every other CPU per flush (on_each_cpu).</summary>
    public long Ipis { get; internal set; }

    /// <inheritdoc />
    public override string ToString()
        => $"flushes {Flushes} (range {RangeFlushes}, full {FullFlushes}), invlpg {Invlpgs}, cpu full flushes {CpuFullFlushes}, IPIs {Ipis}";
}

/// <content>TLB shootdown for kernel mappings (arch/x86/mm/tlb.c).</content>
public sealed partial class Kernel
{
    /// <summary>tlb_single_page_flush_ceiling: ranges of more pages are flushed with a full flush.</summary>
    public const int TlbSinglePageFlushCeiling = 33;

    /// <summary>Shootdown counters.</summary>
    public TlbShootdownCounters TlbShootdowns { get; } = new();

    /// <summary>The cross-CPU coherence checker's write log once <see cref="EnableCoherenceChecking"/> ran; null before.</summary>
    public PagingWriteLog? CoherenceLog { get; private set; }

    /// <summary>
    /// Turns on the cross-CPU coherence checker on every CPU context of the kernel (as <c>hwmem run --check-coherence</c>
    /// does on a machine): TLB hits are compared with the page tables, and a stale translation is reported naming the CPU
    /// whose page-table write made it stale (the kernel writes its page tables through the current CPU), the entry before
    /// and after, and the CPU that used it. Returns the shared write log.
    /// </summary>
    public PagingWriteLog EnableCoherenceChecking()
    {
        if (CoherenceLog is { } existing) return existing;
        var log = new PagingWriteLog(Bus);
        foreach (var cpu in _cpus)
        {
            cpu.Mmu.WriteLog = log;
            cpu.Mmu.CoherenceChecking = true;
        }
        return CoherenceLog = log;
    }

    /// <summary>
    /// flush_tlb_kernel_range: on every CPU (the current one directly, the others by IPI), INVLPG for each page of
    /// [<paramref name="start"/>, <paramref name="end"/>) when the range is at most 33 pages, else a full flush
    /// (__flush_tlb_all: INVPCID all-contexts-including-globals where the CPU has it, else CR4.PGE toggled off and on,
    /// else a CR3 reload). <paramref name="end"/> = <see cref="ulong.MaxValue"/> is TLB_FLUSH_ALL.
    /// </summary>
    public void FlushTlbKernelRange(ulong start, ulong end)
    {
        var c = TlbShootdowns;
        c.Flushes++;
        c.Ipis += _cpus.Count - 1;
        if (end == ulong.MaxValue || (end > start && end - start > (ulong)TlbSinglePageFlushCeiling << 12))
        {
            c.FullFlushes++;
            foreach (var cpu in _cpus)
            {
                FlushTlbAll(cpu);
                c.CpuFullFlushes++;
            }
            return;
        }
        c.RangeFlushes++;
        foreach (var cpu in _cpus)
        {
            for (ulong va = start; va < end; va += 4096)
            {
                cpu.Mmu.Invlpg(va);
                c.Invlpgs++;
                if (va > ulong.MaxValue - 4096) break;
            }
        }
    }

    private static void FlushTlbAll(CpuContext cpu)
    {
        ulong cr4 = cpu.Cr4Value;
        if ((cr4 & Cr4.PGE) != 0)
        {
            if (cpu.Features.Pcid)
            {
                cpu.Mmu.Invpcid(2, 0);
            }
            else
            {
                cpu.WriteCr4(cr4 & ~Cr4.PGE);
                cpu.WriteCr4(cr4);
            }
        }
        else
        {
            cpu.WriteCr3(cpu.Cr3Value);
        }
    }
}
