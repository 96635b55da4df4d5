using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HwMemModel.Mmu;

/// <summary>One cached translation. Rights are the combined R/W, U/S and XD of all levels, as the SDM describes TLB contents.</summary>
internal struct TlbEntry
{
    public const ulong InvalidVpn = ulong.MaxValue;
    public const byte RightWrite = 1, RightUser = 2, RightNoExecute = 4, RightDirty = 8, RightGlobal = 16, Fractured = 32;

    public ulong Vpn;        // linear page number of this (possibly fractured) entry; InvalidVpn when empty
    public ulong PaBase;     // physical base of this entry's page
    public ulong LeafPa;     // physical address of the leaf paging-structure entry
    public ulong LeafRaw;    // leaf entry value when cached (after A/D updates)
    public ulong Lru;        // last-use stamp
    public ushort Pcid;
    public byte Rights;
    public byte PKey;
    public MemoryType MemType;
    public PageSize Size;     // size of this entry
    public PageSize OrigSize; // size of the translation it came from (larger when fractured)
    public bool StaleReported;
    public int HostGeneration; // bus layout generation when Host was resolved
    public int HostIndex;      // index of the page's first byte in Host
    public byte[]? Host;       // host memory of the physical page (RAM with host memory, or ROM), for reads
    public byte[]? WriteHost;  // host memory of the physical page when it is RAM that no one watches, for writes
    public int WriteHostGeneration; // bus write generation when WriteHost was resolved

    public readonly bool Global => (Rights & RightGlobal) != 0;
    public readonly bool Dirty => (Rights & RightDirty) != 0;
}

/// <summary>
/// Counters of one TLB array. Lookups and misses are counted per TLB level (<see cref="TlbLevel"/>), because one
/// lookup probes every array of its level; hits land in exactly one array and are counted here.
/// </summary>
public sealed class TlbArrayCounters
{
    internal readonly long[] HitsBySize = new long[3];
    // Hits of 4 KiB translations served by the MMU's fast path (counted apart to keep that path short).
    internal long FastHits4K;
    // Hits of (unfractured) 2 MiB translations served by the fast path.
    internal long FastHits2M;

    /// <summary>Hits for translations of a page size (a fractured entry counts under its translation's size).</summary>
    public long Hits(PageSize size) => HitsBySize[(int)size] + (size == PageSize.Size4K ? FastHits4K : size == PageSize.Size2M ? FastHits2M : 0);
    /// <summary>All hits.</summary>
    public long TotalHits => HitsBySize[0] + HitsBySize[1] + HitsBySize[2] + FastHits4K + FastHits2M;
    /// <summary>Entries evicted to make room.</summary>
    public long Evictions { get; internal set; }
    /// <summary>Entries invalidated by flushes.</summary>
    public long Invalidations { get; internal set; }
}

/// <summary>A counter shared by the TLB arrays of one MMU: any insert or drop changes it, so a remembered lookup result is valid while it stays the same.</summary>
internal sealed class TlbEpoch
{
    public int Value;
}

/// <summary>A set-associative array of TLB entries with LRU replacement.</summary>
public sealed class TlbArray
{
    // Tag of each way, compared on lookup: bits 0-11 PCID, bit 12 global, bits 13-14 page size, bits 15+ page number
    // (at most 45 bits). InvalidTag never matches. Kept beside the entries so a lookup scans one cache line.
    private const ulong InvalidTag = ulong.MaxValue;
    private const ulong TagGlobal = 1UL << 12;
    private const ulong TagKeyMask = ~0x1FFFUL;
    private readonly ulong[] _tags;
    private readonly TlbEntry[] _entries;
    private readonly int _setMask;
    private readonly int _ways;
    private int _fractured;
    private ulong _clock;

    internal TlbArray(TlbArrayConfig config)
    {
        Config = config;
        _ways = config.Ways;
        int sets = config.Entries / config.Ways;
        _setMask = sets - 1;
        _entries = new TlbEntry[config.Entries];
        _tags = new ulong[config.Entries];
        for (int i = 0; i < _entries.Length; i++) { _entries[i].Vpn = TlbEntry.InvalidVpn; _tags[i] = InvalidTag; }
        foreach (var s in config.PageSizes) SizeMask |= 1 << (int)s;
    }

    /// <summary>The configuration.</summary>
    public TlbArrayConfig Config { get; }
    /// <summary>Counters.</summary>
    public TlbArrayCounters Counters { get; } = new();
    internal int SizeMask { get; }
    internal bool Holds(PageSize size) => (SizeMask & (1 << (int)size)) != 0;

    /// <summary>Valid entries now held.</summary>
    public int ValidEntries
    {
        get { int n = 0; foreach (ref readonly var e in _entries.AsSpan()) if (e.Vpn != TlbEntry.InvalidVpn) n++; return n; }
    }

    /// <summary>Finds the entry for <paramref name="vpn"/> of <paramref name="size"/> usable under <paramref name="pcid"/>; -1 if none.</summary>
    internal int Find(ulong vpn, PageSize size, ushort pcid)
    {
        int start = (int)(vpn & (ulong)_setMask) * _ways;
        ulong key = (vpn << 15) | ((ulong)size << 13);
        var tags = _tags;
        for (int i = start, end = start + _ways; i < end; i++)
        {
            ulong t = tags[i];
            if ((t & TagKeyMask) == key && ((t & 0xFFF) == pcid || (t & TagGlobal) != 0))
            {
                _entries[i].Lru = ++_clock;
                return i;
            }
        }
        return -1;
    }

    /// <summary>Lookup of a 4 KiB page number without bounds checks; returns a ref to the entry or a null ref.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref TlbEntry FindFast4K(ulong vpn, ushort pcid)
    {
        int start = (int)(vpn & (ulong)_setMask) * _ways;
        ulong key = vpn << 15;
        ref ulong tag = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tags), start);
        for (int w = 0; w < _ways; w++)
        {
            ulong t = Unsafe.Add(ref tag, w);
            if ((t & TagKeyMask) == key && ((t & 0xFFF) == pcid || (t & TagGlobal) != 0))
            {
                ref var e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), start + w);
                e.Lru = ++_clock;
                return ref e;
            }
        }
        return ref Unsafe.NullRef<TlbEntry>();
    }

    /// <summary>Changes whenever any entry of any array sharing it is inserted or dropped (see <see cref="TlbEpoch"/>).</summary>
    internal TlbEpoch Epoch { get; set; } = new();

    /// <summary>Lookup of an unfractured 2 MiB page number without bounds checks: a ref to the entry (and its index) or a null ref.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref TlbEntry FindFast2M(ulong vpn, ushort pcid, out int index)
    {
        int start = (int)(vpn & (ulong)_setMask) * _ways;
        ulong key = (vpn << 15) | ((ulong)PageSize.Size2M << 13);
        ref ulong tag = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_tags), start);
        for (int w = 0; w < _ways; w++)
        {
            ulong t = Unsafe.Add(ref tag, w);
            if ((t & TagKeyMask) == key && ((t & 0xFFF) == pcid || (t & TagGlobal) != 0))
            {
                ref var e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), start + w);
                if ((e.Rights & TlbEntry.Fractured) != 0) break;
                e.Lru = ++_clock;
                index = start + w;
                return ref e;
            }
        }
        index = -1;
        return ref Unsafe.NullRef<TlbEntry>();
    }

    /// <summary>The entry at <paramref name="index"/>, marked as just used (no bounds check; the index came from a lookup).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ref TlbEntry Touch(int index)
    {
        ref var e = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_entries), index);
        e.Lru = ++_clock;
        return ref e;
    }

    private static ulong TagOf(in TlbEntry e)
        => (e.Vpn << 15) | ((ulong)e.Size << 13) | (e.Global ? TagGlobal : 0) | e.Pcid;

    internal ref TlbEntry At(int index) => ref _entries[index];

    /// <summary>Inserts, replacing a matching entry, else an empty way, else the least recently used.</summary>
    internal void Insert(in TlbEntry entry)
    {
        int start = (int)(entry.Vpn & (ulong)_setMask) * _ways;
        int victim = -1, empty = -1, lru = start;
        ulong oldest = ulong.MaxValue;
        for (int i = start, end = start + _ways; i < end; i++)
        {
            ref var e = ref _entries[i];
            if (e.Vpn == entry.Vpn && e.Size == entry.Size && (e.Pcid == entry.Pcid || e.Global || entry.Global)) { victim = i; break; }
            if (e.Vpn == TlbEntry.InvalidVpn) { if (empty < 0) empty = i; continue; }
            if (e.Lru < oldest) { oldest = e.Lru; lru = i; }
        }
        if (victim < 0) victim = empty >= 0 ? empty : lru;
        ref var v = ref _entries[victim];
        if (v.Vpn != TlbEntry.InvalidVpn)
        {
            if (!(v.Vpn == entry.Vpn && v.Size == entry.Size)) Counters.Evictions++;
            if (v.OrigSize != v.Size) _fractured--;
        }
        v = entry;
        Epoch.Value++;
        v.Lru = ++_clock;
        if (v.OrigSize != v.Size) v.Rights |= TlbEntry.Fractured; else v.Rights &= unchecked((byte)~TlbEntry.Fractured);
        _tags[victim] = TagOf(v);
        if (v.OrigSize != v.Size) _fractured++;
    }

    /// <summary>Invalidates entries translating <paramref name="vaMasked"/> (any page size, fractured pieces included) that match the filter.</summary>
    internal void InvalidateAddress(ulong vaMasked, ushort pcid, bool anyPcid, bool includeGlobal)
    {
        if (_fractured > 0)
        {
            for (int i = 0; i < _entries.Length; i++)
            {
                ref var e = ref _entries[i];
                if (e.Vpn != TlbEntry.InvalidVpn && (vaMasked >> e.OrigSize.Shift()) == (e.OrigSize == e.Size ? e.Vpn : e.Vpn >> (e.OrigSize.Shift() - e.Size.Shift())))
                    Drop(i, pcid, anyPcid, includeGlobal);
            }
            return;
        }
        for (int s = 0; s < 3; s++)
        {
            if ((SizeMask & (1 << s)) == 0) continue;
            ulong vpn = vaMasked >> ((PageSize)s).Shift();
            int start = (int)(vpn & (ulong)_setMask) * _ways;
            for (int i = start, end = start + _ways; i < end; i++)
            {
                ref var e = ref _entries[i];
                if (e.Vpn == vpn && (int)e.Size == s) Drop(i, pcid, anyPcid, includeGlobal);
            }
        }
    }

    /// <summary>Invalidates all entries matching the filter.</summary>
    internal void InvalidateAll(ushort pcid, bool anyPcid, bool includeGlobal)
    {
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.Vpn != TlbEntry.InvalidVpn) Drop(i, pcid, anyPcid, includeGlobal);
        }
    }

    private void Drop(int i, ushort pcid, bool anyPcid, bool includeGlobal)
    {
        ref var e = ref _entries[i];
        if (e.Global ? !includeGlobal : !(anyPcid || e.Pcid == pcid)) return;
        if (e.OrigSize != e.Size) _fractured--;
        e.Vpn = TlbEntry.InvalidVpn;
        _tags[i] = InvalidTag;
        Epoch.Value++;
        Counters.Invalidations++;
    }

    internal IEnumerable<TlbEntry> Snapshot()
    {
        foreach (var e in _entries) if (e.Vpn != TlbEntry.InvalidVpn) yield return e;
    }
}

/// <summary>One TLB level (L1 instruction, L1 data or unified L2): arrays by page size.</summary>
public sealed class TlbLevel
{
    private readonly TlbArray?[] _bySize = new TlbArray?[3];

    internal TlbLevel(string name, IReadOnlyList<TlbArrayConfig> configs)
    {
        Name = name;
        Arrays = configs.Select(c => new TlbArray(c)).ToArray();
        foreach (var a in Arrays)
            for (int s = 0; s < 3; s++)
                if (a.Holds((PageSize)s)) _bySize[s] = a;
    }

    /// <summary>"ITLB", "DTLB" or "STLB".</summary>
    public string Name { get; }
    /// <summary>The arrays of this level.</summary>
    public IReadOnlyList<TlbArray> Arrays { get; }
    /// <summary>Lookups at this level.</summary>
    public long Lookups => SlowLookups + (Array4K?.Counters.FastHits4K ?? 0) + (Array2M?.Counters.FastHits2M ?? 0);
    internal long SlowLookups;
    internal readonly long[] MissesBySize = new long[3];
    /// <summary>Hits at this level for translations of a page size (the sum over its arrays).</summary>
    public long Hits(PageSize size) => Arrays.Sum(a => a.Counters.Hits(size));
    /// <summary>Misses at this level, attributed to the page size the translation turned out to have.</summary>
    public long Misses(PageSize size) => MissesBySize[(int)size];
    /// <summary>All hits.</summary>
    public long TotalHits => Arrays.Sum(a => a.Counters.TotalHits);
    /// <summary>Misses whose walk faulted, so no page size can be attributed.</summary>
    public long FaultingMisses { get; internal set; }
    /// <summary>All misses, faulting ones included.</summary>
    public long TotalMisses => MissesBySize[0] + MissesBySize[1] + MissesBySize[2] + FaultingMisses;
    internal bool IsEmpty => Arrays.Count == 0;
    /// <summary>The array holding 4 KiB entries, or null.</summary>
    internal TlbArray? Array4K => _bySize[0];
    /// <summary>The array holding 2 MiB entries, or null.</summary>
    internal TlbArray? Array2M => _bySize[1];

    /// <summary>Looks up <paramref name="vaMasked"/> in every array; returns the array and index of the hit.</summary>
    internal bool Find(ulong vaMasked, ushort pcid, out TlbArray? array, out int index)
    {
        for (int s = 0; s < 3; s++)
        {
            var a = _bySize[s];
            if (a is null) continue;
            int i = a.Find(vaMasked >> ((PageSize)s).Shift(), (PageSize)s, pcid);
            if (i >= 0) { array = a; index = i; return true; }
        }
        array = null; index = -1;
        return false;
    }

    /// <summary>Caches a translation, fracturing it into the largest smaller size this level holds when it holds none of its size.</summary>
    internal void Insert(TlbEntry entry, ulong vaMasked)
    {
        for (int s = (int)entry.Size; s >= 0; s--)
        {
            var a = _bySize[s];
            if (a is null) continue;
            if (s != (int)entry.Size)
            {
                var size = (PageSize)s;
                ulong offsetInOrig = vaMasked & (entry.Size.Bytes() - 1) & ~(size.Bytes() - 1);
                entry.PaBase += offsetInOrig;
                entry.Size = size;
            }
            entry.Vpn = vaMasked >> entry.Size.Shift();
            a.Insert(entry);
            return;
        }
    }

    internal void InvalidateAddress(ulong vaMasked, ushort pcid, bool anyPcid, bool includeGlobal)
    {
        foreach (var a in Arrays) a.InvalidateAddress(vaMasked, pcid, anyPcid, includeGlobal);
    }

    internal void InvalidateAll(ushort pcid, bool anyPcid, bool includeGlobal)
    {
        foreach (var a in Arrays) a.InvalidateAll(pcid, anyPcid, includeGlobal);
    }
}
