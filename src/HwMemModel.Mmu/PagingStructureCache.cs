namespace HwMemModel.Mmu;

/// <summary>
/// A paging-structure cache for one level (SDM Vol. 3A §4.10.3): maps the linear-address bits above that level's
/// index shift, tagged with a PCID, to the physical address of the next table and the rights combined so far.
/// Fully associative with LRU replacement. Entries are never global.
/// </summary>
public sealed class PagingStructureCache
{
    private struct Entry
    {
        public ulong Key;      // linear-address bits above the cached entry's region; ulong.MaxValue when empty
        public ulong NextTable;
        public ulong Lru;
        public ushort Pcid;
        public byte Rights;    // TlbEntry.RightWrite | RightUser | RightNoExecute, combined down to this level
    }

    private readonly Entry[] _entries;
    private ulong _clock;

    internal PagingStructureCache(int level, int entries)
    {
        Level = level;
        _entries = new Entry[entries];
        for (int i = 0; i < entries; i++) _entries[i].Key = ulong.MaxValue;
    }

    /// <summary>The level of the entries cached: 2 = PDE cache, 3 = PDPTE cache, 4 = PML4E cache, 5 = PML5E cache.</summary>
    public int Level { get; }
    /// <summary>Capacity.</summary>
    public int Capacity => _entries.Length;
    /// <summary>Lookups.</summary>
    public long Lookups { get; private set; }
    /// <summary>Hits.</summary>
    public long Hits { get; private set; }
    /// <summary>Name, e.g. "PDE cache".</summary>
    public string Name => PageGeometry.EntryName(Level) + " cache";
    /// <summary>Valid entries now held.</summary>
    public int ValidEntries => _entries.Count(e => e.Key != ulong.MaxValue);

    private int Shift => PageGeometry.LevelShift(Level);

    internal bool TryGet(ulong vaMasked, ushort pcid, out ulong nextTable, out byte rights)
    {
        Lookups++;
        ulong key = vaMasked >> Shift;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.Key == key && e.Pcid == pcid)
            {
                e.Lru = ++_clock;
                Hits++;
                nextTable = e.NextTable;
                rights = e.Rights;
                return true;
            }
        }
        nextTable = 0; rights = 0;
        return false;
    }

    internal void Insert(ulong vaMasked, ushort pcid, ulong nextTable, byte rights)
    {
        if (_entries.Length == 0) return;
        ulong key = vaMasked >> Shift;
        int victim = 0;
        ulong oldest = ulong.MaxValue;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if ((e.Key == key && e.Pcid == pcid) || e.Key == ulong.MaxValue) { victim = i; break; }
            if (e.Lru < oldest) { oldest = e.Lru; victim = i; }
        }
        _entries[victim] = new Entry { Key = key, Pcid = pcid, NextTable = nextTable, Rights = rights, Lru = ++_clock };
    }

    /// <summary>Drops entries for <paramref name="pcid"/> (or every PCID) and, when given, only those used for <paramref name="vaMasked"/>.</summary>
    internal void Invalidate(ushort pcid, bool anyPcid, ulong? vaMasked = null)
    {
        ulong key = vaMasked is { } va ? va >> Shift : 0;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.Key == ulong.MaxValue) continue;
            if (!anyPcid && e.Pcid != pcid) continue;
            if (vaMasked.HasValue && e.Key != key) continue;
            e.Key = ulong.MaxValue;
        }
    }
}
