using System.Globalization;
using System.Text;

namespace HwMemModel.Kernel;

/// <content>/proc/vmallocinfo.</content>
public sealed partial class Kernel
{
    /// <summary>
    /// /proc/vmallocinfo as mm/vmalloc.c prints it for a reader allowed to see kernel pointers: one line per area in
    /// address order, <c>0x%pK-0x%pK %7ld</c> (start, end and size, the guard page included), the caller, <c>pages=</c>
    /// for vmalloc areas, <c>phys=%pa</c> for ioremap areas, the kind (ioremap, vmalloc, vmap) and <c>N&lt;node&gt;=&lt;pages&gt;</c>
    /// per node for vmalloc areas; lazily freed ranges not yet purged appear as <c>unpurged vm_area</c>. The caller is the
    /// calling member's name where Linux prints <c>%pS</c> (symbol+offset/size).
    /// </summary>
    public string FormatVmallocInfo()
    {
        var text = new StringBuilder();
        var purge = _vmapPurge.ToArray();
        Array.Sort(purge, static (a, b) => a.Start.CompareTo(b.Start));
        int p = 0;
        foreach (var va in _vmapBusy.InOrder())
        {
            while (p < purge.Length && purge[p].Start < va.Start) AppendUnpurged(text, purge[p++]);
            AppendArea(text, va);
        }
        while (p < purge.Length) AppendUnpurged(text, purge[p++]);
        return text.ToString();
    }

    private static void AppendUnpurged(StringBuilder text, VmapArea va)
        => text.Append(CultureInfo.InvariantCulture, $"0x{va.Start:x16}-0x{va.End:x16} {va.Size,7} unpurged vm_area\n");

    private void AppendArea(StringBuilder text, VmapArea va)
    {
        text.Append(CultureInfo.InvariantCulture, $"0x{va.Start:x16}-0x{va.End:x16} {va.Size,7}");
        if (va.Caller.Length > 0) text.Append(' ').Append(va.Caller);
        bool alloc = (va.Flags & VmFlags.Alloc) != 0;
        if (alloc && va.NrPages > 0) text.Append(CultureInfo.InvariantCulture, $" pages={va.NrPages}");
        if (va.PhysAddr != 0) text.Append(CultureInfo.InvariantCulture, $" phys=0x{va.PhysAddr:x16}");
        if ((va.Flags & VmFlags.IoRemap) != 0) text.Append(" ioremap");
        if (alloc) text.Append(" vmalloc");
        if ((va.Flags & VmFlags.Map) != 0) text.Append(" vmap");
        if ((va.Flags & VmFlags.UserMap) != 0) text.Append(" user");
        if ((va.Flags & VmFlags.DmaCoherent) != 0) text.Append(" dma-coherent");
        if (alloc && va.NrPages > 0)
        {
            // show_numa_info: pages per node, for the nodes that have any.
            var counts = new int[Pages.NodeCount];
            for (int i = 0; i < va.NrPages; i++) counts[Pages.NodeOf(va.Pages![i])]++;
            for (int n = 0; n < counts.Length; n++)
                if (counts[n] > 0) text.Append(CultureInfo.InvariantCulture, $" N{n}={counts[n]}");
        }
        text.Append('\n');
    }
}
