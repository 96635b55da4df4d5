using System.Text;

namespace HwMemModel.Bus;

/// <summary>E820 address-range types, with Linux's numbering (E820_TYPE_RAM = 1, E820_TYPE_RESERVED = 2).</summary>
public enum E820Type : uint
{
    /// <summary>Usable RAM ("usable").</summary>
    Usable = 1,
    /// <summary>Reserved: ROM, device windows and anything else that is not RAM ("reserved").</summary>
    Reserved = 2,
}

/// <summary>One visible piece of the physical address space, as the flattened view resolves it.</summary>
/// <param name="Start">First physical address.</param>
/// <param name="Size">Length in bytes.</param>
/// <param name="Region">The mapped region that is visible here (possibly an alias).</param>
/// <param name="Target">The RAM, ROM or MMIO region whose contents appear here (the alias's target when <paramref name="Region"/> is an alias).</param>
/// <param name="TargetOffset">The offset inside <paramref name="Target"/> shown at <paramref name="Start"/>.</param>
public readonly record struct MemoryMapEntry(ulong Start, ulong Size, MemoryRegion Region, MemoryRegion Target, ulong TargetOffset)
{
    /// <summary>The last physical address of the piece.</summary>
    public ulong Last => Start + (Size - 1);

    /// <summary>The kind of contents (RAM, ROM or MMIO; never alias).</summary>
    public MemoryRegionKind Kind => Target.Kind;

    /// <summary>The E820 type: RAM is usable, everything else reserved.</summary>
    public E820Type E820Type => Target.Kind == MemoryRegionKind.Ram ? E820Type.Usable : E820Type.Reserved;
}

/// <summary>One entry of an E820 table.</summary>
/// <param name="Start">First physical address.</param>
/// <param name="Size">Length in bytes.</param>
/// <param name="Type">The range's type.</param>
public readonly record struct E820Entry(ulong Start, ulong Size, E820Type Type)
{
    /// <summary>The last physical address of the entry.</summary>
    public ulong Last => Start + (Size - 1);
}

/// <content>Memory-map listings.</content>
public sealed partial class PhysicalBus
{
    /// <summary>
    /// What decodes <paramref name="pa"/>: the kind of the terminal region (an alias resolved to its target), or null
    /// when nothing does, and how many bytes from <paramref name="pa"/> on stay in that same range (for a gap, up to
    /// the next region or the end of the address space; 0 means to the end of the 64-bit space).
    /// </summary>
    public (MemoryRegionKind? Kind, ulong Span) Describe(ulong pa)
    {
        FlatRange[] ranges = _view.Ranges;
        int index = _view.Find(pa);
        if (index >= 0) return (ranges[index].Terminal.Kind, ranges[index].End - pa);
        int next = ~index;
        return (null, next < ranges.Length ? ranges[next].Start - pa : 0UL - pa);
    }

    /// <summary>Watches bus-master transfers made through <see cref="DmaPort"/>s on this bus (the kernel model's DMA API debugging); null for none.</summary>
    public IDmaAccessMonitor? DmaMonitor { get; set; }

    /// <summary>The visible address space in ascending order: one entry per flat range; gaps are unmapped.</summary>
    public IReadOnlyList<MemoryMapEntry> MemoryMap()
    {
        FlatRange[] ranges = _view.Ranges;
        var entries = new MemoryMapEntry[ranges.Length];
        for (int i = 0; i < ranges.Length; i++)
        {
            FlatRange r = ranges[i];
            entries[i] = new MemoryMapEntry(r.Start, r.End - r.Start, r.Visible, r.Terminal, r.TerminalOffset);
        }

        return entries;
    }

    /// <summary>
    /// The E820 table firmware would report: visible RAM is usable, visible ROM and MMIO reserved, adjacent ranges
    /// of one type merged (as Linux's e820__update_table does), gaps omitted.
    /// </summary>
    public IReadOnlyList<E820Entry> E820Table()
    {
        var entries = new List<E820Entry>();
        foreach (MemoryMapEntry e in MemoryMap())
        {
            if (entries.Count > 0 && entries[^1].Type == e.E820Type && entries[^1].Start + entries[^1].Size == e.Start)
            {
                entries[^1] = entries[^1] with { Size = entries[^1].Size + e.Size };
            }
            else
            {
                entries.Add(new E820Entry(e.Start, e.Size, e.E820Type));
            }
        }

        return entries;
    }

    /// <summary>
    /// The E820 table as Linux prints it at boot, one line per entry ending in '\n':
    /// <c>BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable</c>.
    /// </summary>
    public string FormatE820()
    {
        var text = new StringBuilder();
        foreach (E820Entry e in E820Table())
        {
            string type = e.Type == E820Type.Usable ? "usable" : "reserved";
            text.Append($"BIOS-e820: [mem 0x{e.Start:x16}-0x{e.Last:x16}] {type}\n");
        }

        return text.ToString();
    }

    /// <summary>
    /// The mapped regions in Linux's /proc/iomem format, one line per region ending in '\n':
    /// <c>00000000-0009ffff : System RAM</c>. Addresses are lowercase hex at least 8 digits wide; a region lying
    /// inside another is listed under it, indented by two spaces per level. RAM is named "System RAM", ROM
    /// "Reserved", MMIO windows and aliases by their region names.
    /// </summary>
    public string FormatIoMem()
    {
        var ordered = _regions
            .OrderBy(r => r.Base)
            .ThenByDescending(r => r.Last)
            .ThenBy(r => r.Priority)
            .ThenBy(r => r.Sequence)
            .ToList();
        var text = new StringBuilder();
        var open = new Stack<MemoryRegion>();
        foreach (MemoryRegion region in ordered)
        {
            while (open.Count > 0 && !(open.Peek().Base <= region.Base && region.Last <= open.Peek().Last))
            {
                open.Pop();
            }

            text.Append(' ', open.Count * 2);
            text.Append($"{region.Base:x8}-{region.Last:x8} : {region.IoMemName}\n");
            open.Push(region);
        }

        return text.ToString();
    }
}
