using System.Runtime.CompilerServices;
using System.Text;

namespace HwMemModel.Kernel;

/// <summary>One PAT memory-type reservation (struct memtype): [Start, End) and its cache mode.</summary>
/// <param name="Start">First byte.</param>
/// <param name="End">One past the last byte.</param>
/// <param name="Mode">The reserved cache mode.</param>
public readonly record struct MemtypeReservation(ulong Start, ulong End, CacheMode Mode);

/// <content>
/// PAT memory-type tracking (arch/x86/mm/pat/memtype.c, memtype_interval.c): reservations of non-RAM ranges in a list
/// ordered by start (Linux's interval tree), per-page types for RAM, the legacy ISA range untracked, and Linux's
/// conflict rules and messages. MTRRs are not modelled, so a write-back request keeps write-back (Linux may downgrade
/// it to UC- where an MTRR says uncached), and the direct map's attributes are not changed for RAM
/// (memtype_kernel_map_sync).
/// </content>
public sealed partial class Kernel
{
    private const int EBUSY = 16, EINVAL = 22;
    private const ulong IsaStart = 0xA0000, IsaEnd = 0x100000;
    private const ulong PhysicalMask = (1UL << 52) - 1; // __PHYSICAL_MASK
    private const string CurrentPid = "1";

    private readonly List<MemtypeReservation> _memtypes = [];
    private readonly Dictionary<ulong, CacheMode> _ramPageMemtype = [];

    /// <summary>The PAT reservations in start order (the memtype interval tree's order).</summary>
    public IReadOnlyList<MemtypeReservation> MemtypeReservations => _memtypes;

    /// <summary>
    /// memtype_reserve(start, end, req, &amp;new_type): reserves [<paramref name="start"/>, <paramref name="end"/>) with
    /// <paramref name="requested"/>. For non-RAM the first overlapping reservation's type wins (returned in
    /// <paramref name="actual"/>) unless overlapping reservations disagree (-EBUSY, "conflicting memory types"); RAM
    /// pages take the type only while they are write-back; the legacy ISA range is untracked (always WB). Returns 0 or
    /// a negative errno. <paramref name="caller"/> stands for current->comm in the messages.
    /// </summary>
    public int MemtypeReserve(ulong start, ulong end, CacheMode requested, out CacheMode actual, [CallerMemberName] string caller = "")
    {
        start &= PhysicalMask;
        end = ((end - 1) & PhysicalMask) + 1;
        actual = requested;
        if (start >= end)
        {
            Log.Warn($"memtype_reserve failed: [mem {Hex010(start)}-{Hex010(end - 1)}], req {requested.Name()}", "arch/x86/mm/pat/memtype.c:memtype_reserve");
            return -EINVAL;
        }
        if (IsUntrackedPatRange(start, end))
        {
            actual = CacheMode.WriteBack;
            return 0;
        }
        int isRam = PatPageRangeIsRam(start, end);
        if (isRam == 1) return ReserveRamPagesType(start, end, requested, out actual);
        if (isRam < 0) return -EINVAL;

        // memtype_check_insert → memtype_check_conflict (with new_type: the first overlapping entry's type wins).
        var found = requested;
        bool first = true;
        foreach (var e in _memtypes)
        {
            if (e.Start >= end) break;
            if (e.End <= start) continue;
            if (first) { found = e.Mode; first = false; continue; }
            if (e.Mode != found)
            {
                Log.Print($"x86/PAT: {caller}:{CurrentPid} conflicting memory types {start:x}-{end:x} {found.Name()}<->{e.Mode.Name()}");
                Log.Print($"x86/PAT: memtype_reserve failed [mem {Hex010(start)}-{Hex010(end - 1)}], track {requested.Name()}, req {requested.Name()}");
                return -EBUSY;
            }
        }
        actual = found;
        int at = _memtypes.Count;
        while (at > 0 && _memtypes[at - 1].Start > start) at--;
        _memtypes.Insert(at, new MemtypeReservation(start, end, found));
        return 0;
    }

    /// <summary>
    /// memtype_free(start, end): drops the reservation that matches exactly (else one that ends at
    /// <paramref name="end"/> and starts below <paramref name="start"/> is shortened, the mremap case); anything else is
    /// "freeing invalid memtype" and -EINVAL. RAM pages go back to write-back.
    /// </summary>
    public int MemtypeFree(ulong start, ulong end, [CallerMemberName] string caller = "")
    {
        start &= PhysicalMask;
        end &= PhysicalMask;
        if (IsUntrackedPatRange(start, end)) return 0;
        int isRam = PatPageRangeIsRam(start, end);
        if (isRam == 1)
        {
            for (ulong pfn = start >> 12; pfn < end >> 12; pfn++) _ramPageMemtype.Remove(pfn);
            return 0;
        }
        if (isRam < 0) return -EINVAL;
        int exact = _memtypes.FindIndex(e => e.Start == start && e.End == end);
        if (exact >= 0)
        {
            _memtypes.RemoveAt(exact);
            return 0;
        }
        int endMatch = _memtypes.FindIndex(e => e.Start < start && e.End == end);
        if (endMatch >= 0)
        {
            _memtypes[endMatch] = _memtypes[endMatch] with { End = start };
            return 0;
        }
        Log.Print($"x86/PAT: {caller}:{CurrentPid} freeing invalid memtype [mem {Hex010(start)}-{Hex010(end - 1)}]");
        return -EINVAL;
    }

    /// <summary>
    /// /sys/kernel/debug/x86/pat_memtype_list: "PAT memtype list:" then one line per reservation,
    /// <c>PAT: [mem 0x%016Lx-0x%016Lx] %s</c> (end exclusive), in start order.
    /// </summary>
    public string FormatPatMemtypeList()
    {
        var text = new StringBuilder("PAT memtype list:\n");
        foreach (var e in _memtypes) text.Append($"PAT: [mem 0x{e.Start:x16}-0x{e.End:x16}] {e.Mode.Name()}\n");
        return text.ToString();
    }

    /// <summary>is_ISA_range: [0xA0000, 0x100000) is always mapped WB and not tracked.</summary>
    private static bool IsUntrackedPatRange(ulong start, ulong end) => start >= IsaStart && end <= IsaEnd;

    /// <summary>
    /// pat_pagerange_is_ram: 1 when the pages from 1 MiB up in [start, end) that System RAM covers are all of it as
    /// walk_system_ram_range sees it, 0 when no RAM, -1 when a hole precedes RAM (mixed).
    /// </summary>
    private int PatPageRangeIsRam(ulong start, ulong end)
    {
        ulong startPfn = start >> 12, endPfn = (end + 4095) >> 12;
        if (startPfn < IsaEnd >> 12) startPfn = IsaEnd >> 12;
        if (startPfn >= endPfn) return 0;
        ulong cur = startPfn;
        bool ram = false, notRam = false;
        foreach (var (s, e) in _ram)
        {
            ulong a = Math.Max(s >> 12, startPfn), b = Math.Min(e >> 12, endPfn);
            if (a >= b) continue;
            notRam |= a > cur;
            ram = true;
            cur = b;
            if (ram && notRam) return -1;
        }
        return ram ? 1 : 0;
    }

    private int ReserveRamPagesType(ulong start, ulong end, CacheMode requested, out CacheMode actual)
    {
        if (requested == CacheMode.WriteProtected)
        {
            actual = CacheMode.UncachedMinus;
            return -EINVAL;
        }
        if (requested == CacheMode.Uncached)
        {
            WarnOnOnce("arch/x86/mm/pat/memtype.c:reserve_ram_pages_type");
            requested = CacheMode.UncachedMinus;
        }
        for (ulong pfn = start >> 12; pfn < end >> 12; pfn++)
        {
            if (_ramPageMemtype.TryGetValue(pfn, out var type))
            {
                Log.Print($"x86/PAT: reserve_ram_pages_type failed [mem {Hex010(start)}-{Hex010(end - 1)}], track 0x{(int)type:x}, req 0x{(int)requested:x}");
                actual = type;
                return -EBUSY;
            }
        }
        actual = requested;
        if (requested != CacheMode.WriteBack)
            for (ulong pfn = start >> 12; pfn < end >> 12; pfn++) _ramPageMemtype[pfn] = requested;
        return 0;
    }

    /// <summary>is_new_memtype_allowed: UC-, WC and WT requests may not become WB, nor WT become WC (untracked ranges excepted).</summary>
    private static bool IsNewMemtypeAllowed(ulong pa, ulong size, CacheMode requested, CacheMode got)
    {
        if (IsUntrackedPatRange(pa, pa + size)) return true;
        return !((requested == CacheMode.UncachedMinus && got == CacheMode.WriteBack)
            || (requested == CacheMode.WriteCombining && got == CacheMode.WriteBack)
            || (requested == CacheMode.WriteThrough && got == CacheMode.WriteBack)
            || (requested == CacheMode.WriteThrough && got == CacheMode.WriteCombining));
    }

    /// <summary>printf's %#010Lx: "0x" and at least 8 digits, or ten zeros for 0.</summary>
    private static string Hex010(ulong v) => v == 0 ? "0000000000" : $"0x{v:x8}";
}
