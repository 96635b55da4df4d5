namespace HwMemModel.Bus;

/// <summary>One visible piece of the flattened address space: [Start, End) shows Terminal at TerminalOffset.</summary>
internal readonly struct FlatRange
{
    public FlatRange(ulong start, ulong end, MemoryRegion visible, MemoryRegion terminal, ulong terminalOffset)
    {
        Start = start;
        End = end;
        Visible = visible;
        Terminal = terminal;
        TerminalOffset = terminalOffset;
    }

    /// <summary>First address.</summary>
    public ulong Start { get; }

    /// <summary>One past the last address (never overflows: regions end below 2^52).</summary>
    public ulong End { get; }

    /// <summary>The mapped region that wins here (possibly an alias).</summary>
    public MemoryRegion Visible { get; }

    /// <summary>The RAM, ROM or MMIO region whose contents appear here.</summary>
    public MemoryRegion Terminal { get; }

    /// <summary>Offset inside <see cref="Terminal"/> shown at <see cref="Start"/>.</summary>
    public ulong TerminalOffset { get; }
}

/// <summary>
/// The flattened, sorted, non-overlapping view of a bus's regions (QEMU's FlatView), rebuilt only when the layout
/// changes. Gaps are not stored: an address outside every range is unmapped.
/// </summary>
internal sealed class FlatView
{
    public static readonly FlatView Empty = new([]);

    private FlatView(FlatRange[] ranges)
    {
        Ranges = ranges;
    }

    public FlatRange[] Ranges { get; }

    /// <summary>Builds the view: in each elementary interval the highest-priority covering region is visible.</summary>
    public static FlatView Build(IReadOnlyList<MemoryRegion> regions)
    {
        if (regions.Count == 0)
        {
            return Empty;
        }

        var points = new SortedSet<ulong>();
        foreach (MemoryRegion region in regions)
        {
            points.Add(region.Base);
            points.Add(region.Base + region.Size);
        }

        ulong[] bounds = [.. points];
        var ranges = new List<FlatRange>();
        for (int i = 0; i + 1 < bounds.Length; i++)
        {
            ulong start = bounds[i];
            ulong end = bounds[i + 1];
            MemoryRegion? winner = null;
            foreach (MemoryRegion region in regions)
            {
                if (region.Base <= start && start - region.Base < region.Size
                    && (winner is null || region.Priority > winner.Priority))
                {
                    winner = region;
                }
            }

            if (winner is null)
            {
                continue;
            }

            if (ranges.Count > 0 && ranges[^1].Visible == winner && ranges[^1].End == start)
            {
                FlatRange previous = ranges[^1];
                ranges[^1] = new FlatRange(previous.Start, end, winner, previous.Terminal, previous.TerminalOffset);
                continue;
            }

            ulong offset = start - winner.Base;
            MemoryRegion terminal = winner;
            if (winner is AliasRegion alias)
            {
                terminal = alias.Terminal;
                offset += alias.TerminalOffset;
            }

            ranges.Add(new FlatRange(start, end, winner, terminal, offset));
        }

        return new FlatView([.. ranges]);
    }

    /// <summary>Index of the range containing <paramref name="pa"/>, or the bitwise complement of the index of the next range.</summary>
    public int Find(ulong pa)
    {
        FlatRange[] ranges = Ranges;
        int lo = 0;
        int hi = ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            ref readonly FlatRange r = ref ranges[mid];
            if (pa < r.Start)
            {
                hi = mid - 1;
            }
            else if (pa >= r.End)
            {
                lo = mid + 1;
            }
            else
            {
                return mid;
            }
        }

        return ~lo;
    }
}
