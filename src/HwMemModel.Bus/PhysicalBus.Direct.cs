using System.Runtime.CompilerServices;

namespace HwMemModel.Bus;

public sealed partial class PhysicalBus
{
    private int _layoutGeneration;
    private readonly HashSet<ulong> _watchedPages = [];
    private readonly HashSet<ulong> _loggedPages = [];
    // True while any page is watched or logged: the only test the write paths make when nothing is.
    private bool _writeHooks;
    private int _writeGeneration;

    /// <summary>
    /// Changes whenever the layout changes or a page starts being watched; host pages obtained for writes with
    /// <see cref="TryGetWritablePage"/> before are then stale.
    /// </summary>
    internal int WriteGeneration => _writeGeneration;

    /// <summary>
    /// For a write fast path kept beside a translation: when the whole 4 KiB page at <paramref name="pa"/> is RAM that
    /// already has host memory and is not watched for writes, returns its host array (the page starts at index 0).
    /// Writes made through it must be counted with <see cref="CountFastWrite"/>. Valid until
    /// <see cref="WriteGeneration"/> changes.
    /// </summary>
    internal bool TryGetWritablePage(ulong pa, out byte[] array)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        if (!(_writeHooks && IsHooked(pageBase)) && TryGetReadablePage(pa, out array, out int index) && index == 0)
        {
            int r = pageBase <= _maxPhysAddress ? FindRange(pageBase) : -1;
            if (r >= 0 && _view.Ranges[r].Terminal is RamRegion) return true;
        }
        array = [];
        return false;
    }

    /// <summary>Counts one write served from a page obtained through <see cref="TryGetWritablePage"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CountFastWrite(RequesterKind kind) => _counters.WritesByKind[(int)kind & 3]++;

    /// <summary>
    /// Raised once after a write (by any requester, or <see cref="LoadImage"/>) changes RAM in a page watched with
    /// <see cref="WatchPageWrites"/>; the argument is the page's base address. The page is no longer watched then:
    /// a decoded-instruction cache drops what it decoded from the page and watches it again when it decodes anew.
    /// </summary>
    public event Action<ulong>? WatchedPageWritten;

    /// <summary>
    /// Called before every MMIO read or write reaches a device, with the requester's attributes: a CPU model brings
    /// guest time up to date here, so a timer register read in the middle of a run of instructions sees the exact
    /// time (RAM and ROM accesses never call it).
    /// </summary>
    public Action<BusAttributes>? BeforeDeviceAccess { get; set; }

    /// <summary>Number of pages currently watched for writes.</summary>
    public int WatchedPageCount => _watchedPages.Count;

    /// <summary>
    /// Watches the 4 KiB page holding <paramref name="pa"/> for writes (self-modifying code detection): the next write
    /// that reaches RAM in that page raises <see cref="WatchedPageWritten"/>. Writes to watched pages leave the
    /// page-cache fast path, so only pages holding decoded code should be watched.
    /// </summary>
    public void WatchPageWrites(ulong pa)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        if (_watchedPages.Add(pageBase)) OnHookAdded(pageBase);
    }

    private void OnHookAdded(ulong pageBase)
    {
        _writeHooks = true;
        _writeGeneration++;
        ref PageCacheEntry entry = ref _pageCache[(int)((pageBase >> BusPage.Shift) & PageCacheMask)];
        if (entry.WriteTag == pageBase) entry.WriteTag = InvalidTag;
    }

    private bool IsHooked(ulong pageBase) => _watchedPages.Contains(pageBase) || _loggedPages.Contains(pageBase);

    /// <summary>
    /// Raised after every write (by any requester, or <see cref="LoadImage"/> as the host) that reaches RAM in a page
    /// logged with <see cref="LogPageWrites"/>, with the physical address and length of the whole write (which may extend
    /// beyond the logged page) and the requester. Unlike
    /// <see cref="WatchedPageWritten"/>, the page stays logged. The cross-CPU coherence checker uses it to learn who
    /// changed a paging-structure entry.
    /// </summary>
    public event Action<ulong, int, BusAttributes>? LoggedPageWritten;

    /// <summary>
    /// Logs every later write to the 4 KiB page holding <paramref name="pa"/> through <see cref="LoggedPageWritten"/>
    /// until <see cref="StopLoggingPageWrites"/>. Writes to logged pages leave the page-cache fast path, so only a few
    /// pages (paging structures) should be logged, and only while a checker needs them.
    /// </summary>
    public void LogPageWrites(ulong pa)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        if (_loggedPages.Add(pageBase)) OnHookAdded(pageBase);
    }

    /// <summary>Whether the page holding <paramref name="pa"/> is logged for writes.</summary>
    public bool IsPageLogged(ulong pa) => _loggedPages.Contains(pa & ~BusPage.OffsetMask);

    /// <summary>Number of pages currently logged for writes.</summary>
    public int LoggedPageCount => _loggedPages.Count;

    /// <summary>Stops logging writes to every page (the write paths are then as fast as before).</summary>
    public void StopLoggingPageWrites()
    {
        _loggedPages.Clear();
        _writeHooks = _watchedPages.Count != 0;
        _writeGeneration++;
    }

    /// <summary>Whether the page holding <paramref name="pa"/> is watched for writes.</summary>
    public bool IsPageWatched(ulong pa) => _watchedPages.Contains(pa & ~BusPage.OffsetMask);

    private void NotifyWritten(ulong pa, int length, BusAttributes attributes)
    {
        ulong first = pa & ~BusPage.OffsetMask, last = (pa + (ulong)Math.Max(length - 1, 0)) & ~BusPage.OffsetMask;
        bool logged = false;
        for (ulong page = first; ; page += BusPage.Size)
        {
            if (_watchedPages.Count != 0 && _watchedPages.Remove(page)) WatchedPageWritten?.Invoke(page);
            logged |= _loggedPages.Count != 0 && _loggedPages.Contains(page);
            if (page >= last) break;
        }
        _writeHooks = _watchedPages.Count != 0 || _loggedPages.Count != 0;
        if (logged) LoggedPageWritten?.Invoke(pa, length, attributes);
    }

    /// <summary>Changes whenever the layout changes (a region added or removed); host pages obtained before are then stale.</summary>
    internal int LayoutGeneration => _layoutGeneration;

    /// <summary>
    /// For a page-granular fast path kept beside a translation (the MMU's TLB entries, like QEMU's TLB addend):
    /// when the whole 4 KiB page at <paramref name="pa"/> is RAM that already has host memory, or ROM, in the current
    /// layout, returns the host array and the index of the page's first byte in it. Reads served from it must be
    /// counted with <see cref="CountFastRead"/>. The answer holds until <see cref="LayoutGeneration"/> changes.
    /// </summary>
    internal bool TryGetReadablePage(ulong pa, out byte[] array, out int pageIndex)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        int index = pageBase <= _maxPhysAddress ? FindRange(pageBase) : -1;
        if (index >= 0)
        {
            ref readonly FlatRange r = ref _view.Ranges[index];
            if (r.End - pageBase >= BusPage.Size)
            {
                ulong offset = r.TerminalOffset + (pageBase - r.Start);
                switch (r.Terminal)
                {
                    case RamRegion ram when (offset & BusPage.OffsetMask) == 0 && ram.TryGetPage(offset) is { } page:
                        array = page;
                        pageIndex = 0;
                        return true;
                    case RomRegion rom:
                        array = rom.Data;
                        pageIndex = (int)offset;
                        return true;
                }
            }
        }

        array = [];
        pageIndex = 0;
        return false;
    }

    /// <summary>Counts one read served from a page obtained through <see cref="TryGetReadablePage"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CountFastRead(RequesterKind kind) => _counters.ReadsByKind[(int)kind & 3]++;
}
