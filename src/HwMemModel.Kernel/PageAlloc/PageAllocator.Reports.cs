using System.Globalization;
using System.Text;

namespace HwMemModel.Kernel;

// The slow paths: failure handling and the reports, in Linux's wording.
public sealed partial class PageAllocator
{
    private ulong? OrderTooLarge(Gfp gfp, int order, string caller)
    {
        if (order < 0)
            throw new ArgumentOutOfRangeException(nameof(order), order, $"order must be 0 to {MaxOrder} (MAX_PAGE_ORDER).");
        // __alloc_pages: WARN_ON_ONCE_GFP(order > MAX_PAGE_ORDER, gfp) and NULL, even for __GFP_NOFAIL.
        if ((gfp & Gfp.NoWarn) == 0)
            _log.WarnOnce("page_alloc:order>MAX_PAGE_ORDER",
                $"{caller}: page allocation of order {order} is above MAX_PAGE_ORDER ({MaxOrder}), mode:{Mode(gfp)}({GfpNames.Format(gfp)})",
                "mm/page_alloc.c:__alloc_pages");
        return null;
    }

    // should_fail_alloc_page (mm/fail_page_alloc.c) with fail_dump's notice (lib/fault-inject.c).
    private bool ShouldFailAllocPage(Gfp gfp, int order)
    {
        if (order < FailPageAllocMinOrder) return false;
        if ((gfp & Gfp.NoFail) != 0) return false;
        if (FailPageAllocIgnoreGfpHighMem && (gfp & Gfp.HighMem) != 0) return false;
        if (FailPageAllocIgnoreGfpReclaim && (gfp & Gfp.DirectReclaim) != 0) return false;
        long timesBefore = _failPageAlloc.Times;
        if (!_failPageAlloc.ShouldFail(1L << order)) return false;
        if ((gfp & Gfp.NoWarn) == 0)
        {
            _log.Print("FAULT_INJECTION: forcing a failure.");
            _log.Print(string.Create(CultureInfo.InvariantCulture,
                $"name {_failPageAlloc.Name}, interval {_failPageAlloc.Interval}, probability {_failPageAlloc.Probability}, space {_failPageAlloc.Space}, times {timesBefore}"));
        }
        return true;
    }

    private ulong? AllocSlowpath(Gfp gfp, int order, int[] zonelist, string caller)
    {
        if ((gfp & Gfp.NoFail) != 0)
        {
            // __GFP_NOFAIL may not fail: take what is left below the watermarks, else out_of_memory with nothing to kill.
            foreach (int z in zonelist)
            {
                int off = RmqueueSmallest(z, order);
                if (off >= 0) return Allocated(off, order, gfp);
            }
            OutOfMemory(gfp, order, caller);
        }
        if ((gfp & Gfp.NoWarn) == 0 && ((gfp & Gfp.Dma) == 0 || HasManagedDma()))
        {
            _log.Print($"{caller}: page allocation failure: order:{order}, mode:{Mode(gfp)}({GfpNames.Format(gfp)}), nodemask=(null)");
            foreach (var line in ShowMem(GfpZone(gfp))) _log.Print(line);
        }
        return null;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void OutOfMemory(Gfp gfp, int order, string caller)
    {
        var lines = new List<string>
        {
            $"{caller} invoked oom-killer: gfp_mask={Mode(gfp)}({GfpNames.Format(gfp)}), order={order}, oom_score_adj=0",
        };
        lines.AddRange(ShowMem(GfpZone(gfp)));
        lines.Add("Out of memory and no killable processes...");
        lines.Add("Kernel panic - not syncing: System is deadlocked on memory");
        foreach (var line in lines) _log.Print(line);
        throw new KernelStopException(string.Join('\n', lines));
    }

    private void BadFree(ulong pa, int order, string caller)
    {
        ulong pfn = pa >> PageShift;
        _log.Print($"BUG: Bad page state in process {caller}  pfn:{pfn:x5}");
        _log.Print($"page dumped because: {BadFreeReason(pa, order)}");
        if (!_tainted)
        {
            _tainted = true;
            _log.Print("Disabling lock debugging due to kernel taint");
        }
    }

    private string BadFreeReason(ulong pa, int order)
    {
        if ((pa & (PageSize - 1)) != 0) return $"freed address 0x{pa:x} is not page aligned";
        ulong rel = (pa >> PageShift) - _basePfn;
        if (rel >= (ulong)_span || _page[(int)rel] >> ZoneShift == NoZone) return $"0x{pa:x} is not memory the page allocator manages";
        if ((uint)order > MaxOrder) return $"freed with order {order}; orders are 0 to {MaxOrder} (MAX_PAGE_ORDER)";
        int off = (int)rel;
        // The block containing the page: the first block head met going up the orders.
        for (int k = 0; k < Orders; k++)
        {
            int head = off & ~((1 << k) - 1);
            int m = _page[head];
            if ((m & (BuddyFlag | HeadFlag)) == 0 || (m & OrderMask) < k) continue;
            ulong headPfn = _basePfn + (ulong)head;
            if ((m & BuddyFlag) != 0)
                return head == off ? $"page is already free (double free): it heads a free block of order {m & OrderMask}"
                    : $"page is already free (double free): it is inside the free block of order {m & OrderMask} at pfn {headPfn:x5}";
            return head == off ? $"page was allocated with order {m & OrderMask}, freed with order {order}"
                : $"page is inside the block of order {m & OrderMask} allocated at pfn {headPfn:x5}, not its first page";
        }
        return "page belongs to no block";
    }

    private bool HasManagedDma()
    {
        for (int n = 0; n < _nodeCount; n++)
            if (_zones[n * ZonesPerNode + (int)ZoneType.Dma].ManagedPages > 0) return true;
        return false;
    }

    // show_mem's free-area lines (show_free_areas) for the populated zones up to the mask's highest zone.
    private List<string> ShowMem(int highestZone)
    {
        var lines = new List<string> { "Mem-Info:" };
        foreach (var zone in _zones)
        {
            if (zone.ManagedPages == 0 || (int)zone.Type > highestZone) continue;
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture, $"Node {zone.Node} {zone.Name}: ");
            int b = ZoneBase(zone);
            long totalKb = 0;
            for (int k = 0; k < Orders; k++)
            {
                long kb = 4L << k;
                sb.Append(CultureInfo.InvariantCulture, $"{_nrFree[b + k]}*{kb}kB ");
                totalKb += _nrFree[b + k] * kb;
            }
            sb.Append(CultureInfo.InvariantCulture, $"= {totalKb}kB");
            lines.Add(sb.ToString());
        }
        return lines;
    }

    // printk's %#x: "0" for zero, else 0x and lowercase hex.
    private static string Mode(Gfp gfp) => gfp == Gfp.None ? "0" : $"0x{(uint)gfp:x}";
}
