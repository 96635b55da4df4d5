using System.Runtime.CompilerServices;

namespace HwMemModel.Kernel;

/// <content>kvmalloc and friends (mm/util.c, mm/vmalloc.c vrealloc; Linux 6.12+ shapes): kmalloc first, vmalloc as the fallback.</content>
public sealed partial class Kernel
{
    /// <summary>
    /// kvmalloc: kmalloc first; for more than a page with __GFP_NOWARN and __GFP_NORETRY added (unless
    /// __GFP_RETRY_MAYFAIL) and __GFP_NOFAIL removed, since vmalloc is the fallback. The fallback is taken only for more
    /// than a page, only when the mask allows blocking (__GFP_DIRECT_RECLAIM), and never above INT_MAX bytes (a
    /// WARN_ON_ONCE unless __GFP_NOWARN). Returns a direct-map or a vmalloc address, or 0.
    /// </summary>
    public ulong KvMalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => KvMallocNode(size, gfp, PageAllocator.NumaNoNode, caller);

    /// <summary>kvzalloc: <see cref="KvMalloc"/> with __GFP_ZERO.</summary>
    public ulong KvZalloc(ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => KvMallocNode(size, gfp | Gfp.Zero, PageAllocator.NumaNoNode, caller);

    /// <summary>kvmalloc_node: <see cref="KvMalloc"/> preferring NUMA node <paramref name="node"/> (-1: NUMA_NO_NODE).</summary>
    public ulong KvMallocNode(ulong size, Gfp gfp, int node, [CallerMemberName] string caller = "")
    {
        CheckNode(node);
        ulong p = KmallocNode(size, KmallocGfpAdjust(gfp, size), node, caller);
        if (p != 0 || size <= VmPageSize) return p;
        if ((gfp & Gfp.DirectReclaim) == 0) return 0; // vmalloc cannot serve non-sleeping allocations
        if (size > int.MaxValue)
        {
            if ((gfp & Gfp.NoWarn) == 0) WarnOnOnce("mm/util.c:__kvmalloc_node_noprof");
            return 0;
        }
        return VmallocNodeRange(size, 1, gfp, node, caller);
    }

    /// <summary>kvmalloc_array: <paramref name="n"/> × <paramref name="size"/> bytes; 0 when the product overflows.</summary>
    public ulong KvMallocArray(ulong n, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
    {
        ulong high = Math.BigMul(n, size, out ulong bytes);
        return high != 0 ? 0 : KvMallocNode(bytes, gfp, PageAllocator.NumaNoNode, caller);
    }

    /// <summary>kvcalloc: <see cref="KvMallocArray"/> with __GFP_ZERO.</summary>
    public ulong KvCalloc(ulong n, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
        => KvMallocArray(n, size, gfp | Gfp.Zero, caller);

    /// <summary>
    /// kvrealloc (6.12+): a vmalloc address goes to vrealloc (same pointer while the new size fits the area's pages,
    /// the tail zeroed for __GFP_ZERO; otherwise a new vmalloc, the old area's bytes copied and the old area freed;
    /// size 0 frees and returns 0). Anything else goes to krealloc with kvmalloc's mask adjustment, and when that fails
    /// to <see cref="KvMalloc"/>, copying ksize bytes and freeing the old object. 0 on failure, the old memory untouched.
    /// </summary>
    public ulong KvRealloc(ulong p, ulong size, Gfp gfp, [CallerMemberName] string caller = "")
    {
        if (IsVmallocAddr(p)) return Vrealloc(p, size, gfp, caller);
        ulong n = Krealloc(p, size, KmallocGfpAdjust(gfp, size), caller);
        if (n != 0) return n;
        n = KvMallocNode(size, gfp, PageAllocator.NumaNoNode, caller);
        if (n == 0) return 0;
        if (p > ZeroSizePtr)
        {
            CopyKernel(n, p, Ksize(p, caller));
            Kfree(p, caller);
        }
        return n;
    }

    /// <summary>kvfree: <see cref="Vfree"/> for a vmalloc address, else <see cref="Kfree"/> (0 and ZERO_SIZE_PTR do nothing).</summary>
    public void KvFree(ulong p, [CallerMemberName] string caller = "")
    {
        if (IsVmallocAddr(p)) Vfree(p);
        else Kfree(p, caller);
    }

    private ulong Vrealloc(ulong p, ulong size, Gfp gfp, string caller)
    {
        if (size == 0)
        {
            Vfree(p);
            return 0;
        }
        var vm = _vmapBusy.FindContaining(p);
        if (vm is null)
        {
            Log.Warn($"Trying to vrealloc() nonexistent vm area ({p:x16})", "mm/vmalloc.c:vrealloc_noprof");
            return 0;
        }
        ulong oldSize = MappedSize(vm);
        if (size <= oldSize)
        {
            if ((gfp & Gfp.Zero) != 0) Memory.Fill(p + size, 0, oldSize - size);
            return p;
        }
        ulong n = VmallocNodeRange(size, VmPageSize, gfp, PageAllocator.NumaNoNode, caller);
        if (n == 0) return 0;
        CopyKernel(n, p, oldSize);
        Vfree(p);
        return n;
    }

    // kmalloc_gfp_adjust: above a page, no warnings, no retrying (unless __GFP_RETRY_MAYFAIL), no __GFP_NOFAIL.
    private static Gfp KmallocGfpAdjust(Gfp gfp, ulong size)
    {
        if (size <= VmPageSize) return gfp;
        gfp |= Gfp.NoWarn;
        if ((gfp & Gfp.RetryMayFail) == 0) gfp |= Gfp.NoRetry;
        return gfp & ~Gfp.NoFail;
    }

    private void CopyKernel(ulong to, ulong from, ulong bytes)
    {
        var buffer = new byte[4096];
        for (ulong done = 0; done < bytes;)
        {
            int n = (int)Math.Min(4096UL, bytes - done);
            Memory.ReadBytes(from + done, buffer.AsSpan(0, n));
            Memory.WriteBytes(to + done, buffer.AsSpan(0, n));
            done += (ulong)n;
        }
    }
}
