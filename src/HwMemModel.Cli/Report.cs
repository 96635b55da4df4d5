using System.Text;
using HwMemModel.Mmu;

namespace HwMemModel.Cli;

/// <summary>Text tables for MMU state.</summary>
public static class Report
{
    /// <summary>TLB lookups/hits/misses per level and page size, paging-structure caches, walks and flushes.</summary>
    public static string Counters(Mmu.Mmu mmu)
    {
        var sb = new StringBuilder();
        sb.AppendLine("tlb    lookups  hits(4K/2M/1G)     misses(4K/2M/1G)    faulting misses");
        foreach (var level in new[] { mmu.InstructionTlb, mmu.DataTlb, mmu.UnifiedTlb })
            sb.AppendLine($"{level.Name,-5} {level.Lookups,8}  {Triple(level.Hits)}  {Triple(level.Misses)}  {level.FaultingMisses,5}");
        foreach (var psc in mmu.PagingStructureCaches)
            sb.AppendLine($"{psc.Name,-12} lookups {psc.Lookups}, hits {psc.Hits}");
        var c = mmu.Counters;
        sb.AppendLine($"walks {c.Walks}, entry reads {c.WalkReads} ({c.ReadsPerWalk:0.00} per walk), A/D writes {c.AccessedDirtyWrites}, "
            + $"walks from paging-structure caches {c.WalksFromPagingStructureCache}, dirty re-walks {c.DirtyRewalks}");
        sb.AppendLine($"page faults {c.PageFaults}, #GP {c.GeneralProtectionFaults}, stale translations {c.StaleTranslations}");
        var flushes = Enum.GetValues<FlushKind>().Where(k => c.Flushes(k) > 0).Select(k => $"{k} {c.Flushes(k)}");
        sb.AppendLine($"flushes: {string.Join(", ", flushes.DefaultIfEmpty("none"))}");
        return sb.ToString();
    }

    private static string Triple(Func<PageSize, long> f) => $"{f(PageSize.Size4K),5}/{f(PageSize.Size2M),5}/{f(PageSize.Size1G),5}  ";
}
