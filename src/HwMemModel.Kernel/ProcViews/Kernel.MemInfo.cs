using System.Text;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

public sealed partial class Kernel
{
    /// <summary>
    /// A /proc/meminfo subset in its format (fs/proc/meminfo.c: the label padded to 16 columns, the value in kB right
    /// aligned in 8): MemTotal, MemFree, Slab, SReclaimable, SUnreclaim, VmallocTotal, VmallocUsed, VmallocChunk and
    /// the DirectMap lines of arch/x86/mm/pat/set_memory.c.
    /// </summary>
    public string FormatMemInfo()
    {
        long slabPages = SlabCaches.Sum(c => c.Slabs << c.Order);
        long vmallocPages = VmAreas().Where(a => (a.Flags & VmFlags.Alloc) != 0).Sum(a => (long)a.Pages.Count);
        var sb = new StringBuilder();
        void Line(string label, long kb) => sb.Append($"{label + ":",-16}{kb,8} kB\n");
        Line("MemTotal", Pages.ManagedPageCount * 4);
        Line("MemFree", Pages.FreePageCount * 4);
        Line("Slab", slabPages * 4);
        Line("SReclaimable", 0);
        Line("SUnreclaim", slabPages * 4);
        Line("VmallocTotal", (long)((Layout.VmallocEnd - Layout.VmallocStart) >> 10)); // VMALLOC_TOTAL: END is inclusive, so one byte short
        Line("VmallocUsed", vmallocPages * 4);
        Line("VmallocChunk", 0);
        Line("DirectMap4k", (long)(DirectMapBytes(PageSize.Size4K) >> 10));
        Line("DirectMap2M", (long)(DirectMapBytes(PageSize.Size2M) >> 10));
        if ((Options.Features ?? CpuFeatures.Default).Pages1G) Line("DirectMap1G", (long)(DirectMapBytes(PageSize.Size1G) >> 10));
        return sb.ToString();
    }
}
