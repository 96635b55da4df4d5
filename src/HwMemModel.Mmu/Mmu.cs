using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using HwMemModel.Bus;

namespace HwMemModel.Mmu;

/// <summary>A successful translation.</summary>
/// <param name="PhysicalAddress">The physical address.</param>
/// <param name="PageSize">The size of the page (of the translation, not of a fractured TLB entry).</param>
/// <param name="MemoryType">The memory type selected by IA32_PAT and the leaf's PAT/PCD/PWT bits (WB with paging off).</param>
public readonly record struct Translation(ulong PhysicalAddress, PageSize PageSize, MemoryType MemoryType);

/// <summary>The result of an access through the MMU: a fault, or the bus status of the physical access.</summary>
/// <param name="Fault">The translation fault, if any (then no bus access was made).</param>
/// <param name="BusStatus">The status of the bus transaction(s).</param>
public readonly record struct AccessResult(Fault Fault, BusStatus BusStatus)
{
    /// <summary>True when translated and the bus completed.</summary>
    public bool Ok => !Fault.IsFault && BusStatus == BusStatus.Ok;
    /// <inheritdoc />
    public override string ToString() => Fault.IsFault ? Fault.ToString() : BusStatus.ToString();
}

/// <summary>One paging-structure entry visited by a walk.</summary>
/// <param name="Level">5 = PML5E ... 1 = PTE.</param>
/// <param name="Index">Index of the entry in its table (0-511).</param>
/// <param name="EntryAddress">Physical address of the entry.</param>
/// <param name="Raw">The entry's value.</param>
/// <param name="IsLeaf">Whether the entry maps a page.</param>
public readonly record struct WalkStep(int Level, int Index, ulong EntryAddress, ulong Raw, bool IsLeaf)
{
    /// <summary>The entry's name: PML5E, PML4E, PDPTE, PDE or PTE.</summary>
    public string Name => PageGeometry.EntryName(Level);
    /// <summary>The decoded flags.</summary>
    public string Decoded => new PageTableEntry(Raw).Describe(Level, IsLeaf);
}

internal struct WalkOutcome
{
    public Fault Fault;
    public ulong PaBase;
    public ulong LeafPa;
    public ulong LeafRaw;
    public PageSize Size;
    public byte Rights;
    public byte PKey;
    public MemoryType MemType;
}

/// <summary>
/// The MMU of one <see cref="CpuContext"/>: TLB lookup, then an IA-32e page walk (4- or 5-level) that reads
/// paging-structure entries through the <see cref="PhysicalBus"/> and writes Accessed/Dirty back through it.
/// Faults are returned as values. Cached translations are used without re-checking RAM, as hardware does,
/// unless <see cref="CoherenceChecking"/> is on, which reports (but does not correct) stale translations.
/// </summary>
public sealed partial class Mmu
{
    private const byte RW = TlbEntry.RightWrite, US = TlbEntry.RightUser, XD = TlbEntry.RightNoExecute;
    private const ulong XdBit = 1UL << 63;

    private readonly CpuContext _ctx;
    private readonly PhysicalBus _bus;
    private readonly BusAttributes _attrs;
    private readonly BusAttributes _debugAttrs;
    private readonly TlbLevel _itlb, _dtlb, _stlb;
    private readonly PagingStructureCache?[] _psc = new PagingStructureCache?[6];
    private readonly List<StaleTranslationEvent> _stale = [];
    // Fault rule for [kind, privilege, EFLAGS.AC, rights & 7], rebuilt when control state changes.
    private readonly FaultRule[] _rules = new FaultRule[3 * 3 * 2 * 8];
    // For [kind, privilege, EFLAGS.AC]: bit r set when a TLB entry with rights r (R/W, U/S, XD, D, G) allows the access
    // outright: no rule fails, no protection key applies, and a write finds D set.
    private readonly ulong[] _allowed = new ulong[3 * 3 * 2];
    private bool _fastPath;
    private int _acIndex;
    private readonly TlbArray? _itlb4K, _dtlb4K, _itlb2M, _dtlb2M;
    // The last 4 KiB page served by a 2 MiB L1 entry, for data (0) and fetches (1): while no TLB entry has been
    // inserted or dropped since (the epoch), the 4 KiB array cannot hold that page, so the same 2 MiB entry answers.
    private readonly TlbEpoch _epoch = new();
    private readonly ulong[] _memoVpn = [ulong.MaxValue, ulong.MaxValue];
    private readonly int[] _memoIndex = new int[2];
    private readonly int[] _memoEpoch = new int[2];

    // Cached control state, refreshed by OnControlStateChanged / OnCr3Load.
    private bool _paging, _longMode, _la57, _nxe, _smep, _pke, _wp, _pge;
    private int _levels, _unusedBits;
    private ulong _linearMask, _rsvdHigh, _addrMask;
    private ushort _pcid;

    internal Mmu(CpuContext ctx, PhysicalBus bus, TlbGeometry geometry)
    {
        geometry.Validate();
        _ctx = ctx;
        _bus = bus;
        _attrs = BusAttributes.Cpu(ctx.Id);
        _debugAttrs = new BusAttributes(RequesterKind.Debugger, ctx.Id);
        Geometry = geometry;
        _itlb = new TlbLevel("ITLB", geometry.InstructionL1);
        _dtlb = new TlbLevel("DTLB", geometry.DataL1);
        _stlb = new TlbLevel("STLB", geometry.UnifiedL2);
        _itlb4K = _itlb.Array4K;
        _dtlb4K = _dtlb.Array4K;
        _itlb2M = _itlb.Array2M;
        _dtlb2M = _dtlb.Array2M;
        foreach (var level in new[] { _itlb, _dtlb, _stlb })
            foreach (var a in level.Arrays) a.Epoch = _epoch;
        Counters.FastTranslations = () => (_itlb4K?.Counters.FastHits4K ?? 0) + (_dtlb4K?.Counters.FastHits4K ?? 0)
            + (_itlb2M?.Counters.FastHits2M ?? 0) + (_dtlb2M?.Counters.FastHits2M ?? 0);
        if (geometry.PagingStructureCaches)
        {
            _psc[2] = new PagingStructureCache(2, geometry.PdCacheEntries);
            _psc[3] = new PagingStructureCache(3, geometry.PdptCacheEntries);
            _psc[4] = new PagingStructureCache(4, geometry.Pml4CacheEntries);
            _psc[5] = new PagingStructureCache(5, geometry.Pml5CacheEntries);
        }
        OnControlStateChanged();
    }

    /// <summary>The geometry in use.</summary>
    public TlbGeometry Geometry { get; }
    /// <summary>The L1 instruction TLB.</summary>
    public TlbLevel InstructionTlb => _itlb;
    /// <summary>The L1 data TLB.</summary>
    public TlbLevel DataTlb => _dtlb;
    /// <summary>The unified second-level TLB.</summary>
    public TlbLevel UnifiedTlb => _stlb;
    /// <summary>The paging-structure caches (PDE, PDPTE, PML4E, PML5E), empty when turned off.</summary>
    public IReadOnlyList<PagingStructureCache> PagingStructureCaches => _psc.Where(p => p is not null).Select(p => p!).ToArray();
    /// <summary>Counters.</summary>
    public MmuCounters Counters { get; } = new();

    /// <summary>
    /// When on, every TLB hit is compared with the page tables in RAM (a side-effect-free walk) and a mismatch is
    /// reported once per cached entry as a <see cref="StaleTranslationEvent"/>. The cached translation is still used.
    /// </summary>
    public bool CoherenceChecking
    {
        get => _coherenceChecking;
        set { _coherenceChecking = value; OnControlStateChanged(); }
    }
    private bool _coherenceChecking;
    /// <summary>
    /// The machine's shared write log for the cross-CPU coherence checker: while <see cref="CoherenceChecking"/> is on,
    /// every TLB fill registers the paging-structure pages its walk read, and a stale translation is reported with the
    /// last change of the entries behind it (which CPU, which instruction, the entry before and after) and this CPU's
    /// current instruction. Null: stale translations are reported without that attribution.
    /// </summary>
    public PagingWriteLog? WriteLog { get; set; }
    /// <summary>Stale translations found so far (the first 10,000).</summary>
    public IReadOnlyList<StaleTranslationEvent> StaleTranslations => _stale;
    /// <summary>Raised for each stale translation found.</summary>
    public event Action<StaleTranslationEvent>? StaleTranslationDetected;

    // ------------------------------------------------------------------ translation

    /// <summary>Translates <paramref name="va"/> for an access at the current CPL.</summary>
    public Fault Translate(ulong va, AccessKind kind, out Translation translation)
        => Translate(va, kind, _ctx.CurrentPrivilege, out translation);

    /// <summary>
    /// Translates <paramref name="va"/> for an access of <paramref name="kind"/> and <paramref name="privilege"/>:
    /// TLB first, then the page walk. Returns the fault (#GP(0) for a non-canonical address, #PF with its error
    /// code otherwise) or <see cref="Fault.None"/> with the translation.
    /// </summary>
    public Fault Translate(ulong va, AccessKind kind, Privilege privilege, out Translation translation)
    {
        ref var e = ref FastHit(va, kind, privilege);
        if (!Unsafe.IsNullRef(ref e))
        {
            translation = new Translation(e.PaBase | FastOffset(in e, va), e.OrigSize, e.MemType);
            return default;
        }
        return TranslateSlow(va, kind, privilege, out translation);
    }

    /// <summary>
    /// The fast path: IA-32e paging, canonical address, an L1 hit in the 4 KiB array whose cached rights allow the
    /// access outright (no rule fails, no protection key applies, a write finds D set), coherence checking off.
    /// Counts the translation and the hit and returns the entry; otherwise counts nothing and returns a null ref,
    /// and the full path (which gives the same results) takes over.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref TlbEntry FastHit(ulong va, AccessKind kind, Privilege privilege)
    {
        if (_fastPath && (ulong)((long)(va << _unusedBits) >> _unusedBits) == va)
        {
            int m = kind == AccessKind.Execute ? 1 : 0;
            if (_memoVpn[m] == ((va & _linearMask) >> 12) && _memoEpoch[m] == _epoch.Value)
                return ref MemoHit(m, kind, privilege);
            var a = kind == AccessKind.Execute ? _itlb4K : _dtlb4K;
            if (a is not null)
            {
                ref var e = ref a.FindFast4K((va & _linearMask) >> 12, _pcid);
                if (!Unsafe.IsNullRef(ref e))
                {
                    if (((Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_allowed), (((int)kind * 3 + (int)privilege) << 1) | _acIndex) >> e.Rights) & 1) != 0)
                    {
                        a.Counters.FastHits4K++;
                        return ref e;
                    }
                    return ref Unsafe.NullRef<TlbEntry>();
                }
            }
            var b = kind == AccessKind.Execute ? _itlb2M : _dtlb2M;
            if (b is not null) return ref FastHit2M(b, va, kind, privilege);
        }
        return ref Unsafe.NullRef<TlbEntry>();
    }

    private ref TlbEntry FastHit2M(TlbArray b, ulong va, AccessKind kind, Privilege privilege)
    {
        ref var e = ref b.FindFast2M((va & _linearMask) >> 21, _pcid, out int index);
        if (!Unsafe.IsNullRef(ref e)
            && ((Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_allowed), (((int)kind * 3 + (int)privilege) << 1) | _acIndex) >> e.Rights) & 1) != 0)
        {
            b.Counters.FastHits2M++;
            int m = kind == AccessKind.Execute ? 1 : 0;
            _memoVpn[m] = (va & _linearMask) >> 12;
            _memoIndex[m] = index;
            _memoEpoch[m] = _epoch.Value;
            return ref e;
        }
        return ref Unsafe.NullRef<TlbEntry>();
    }

    /// <summary>The remembered 2 MiB entry answers again (same 4 KiB page, no TLB change since): same checks, counters and LRU update as a lookup.</summary>
    private ref TlbEntry MemoHit(int m, AccessKind kind, Privilege privilege)
    {
        var b = m == 1 ? _itlb2M! : _dtlb2M!;
        ref var e = ref b.Touch(_memoIndex[m]);
        if (((Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_allowed), (((int)kind * 3 + (int)privilege) << 1) | _acIndex) >> e.Rights) & 1) != 0)
        {
            b.Counters.FastHits2M++;
            return ref e;
        }
        return ref Unsafe.NullRef<TlbEntry>();
    }

    /// <summary>Offset of <paramref name="va"/> within the page of a fast-path entry (4 KiB or 2 MiB).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong FastOffset(in TlbEntry e, ulong va) => va & (e.Size == PageSize.Size4K ? 0xFFFUL : 0x1F_FFFFUL);

    /// <summary>Fast path for a physical address; false when the full path must run.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryFastTranslate(ulong va, AccessKind kind, Privilege privilege, out ulong pa)
    {
        ref var e = ref FastHit(va, kind, privilege);
        if (Unsafe.IsNullRef(ref e)) { pa = 0; return false; }
        pa = e.PaBase | FastOffset(in e, va);
        return true;
    }

    /// <summary>An instruction fetch on the fast path; <paramref name="large"/> tells whether a 2 MiB entry answered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryFastTranslateFetch(ulong va, Privilege privilege, out ulong pa, out bool large)
    {
        ref var e = ref FastHit(va, AccessKind.Execute, privilege);
        if (Unsafe.IsNullRef(ref e)) { pa = 0; large = false; return false; }
        large = e.Size != PageSize.Size4K;
        pa = e.PaBase | FastOffset(in e, va);
        return true;
    }

    /// <summary>
    /// Changes whenever any TLB entry of this MMU is inserted or dropped, or CR3 or the paging controls change. While
    /// it stays the same, a fast-path lookup repeated for the same page, privilege and kind gives the same answer.
    /// </summary>
    internal int TlbEpoch => _epoch.Value;

    /// <summary>
    /// Counts an instruction fetch that a CPU answered from its previous fast-path fetch translation (same page, same
    /// epoch, no other ITLB lookup in between): the counters and the LRU order end up as a lookup would leave them
    /// (the entry is already the most recently used of its array).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CountRepeatedFetchHit(bool large)
    {
        if (large) _itlb2M!.Counters.FastHits2M++;
        else _itlb4K!.Counters.FastHits4K++;
    }

    /// <summary>Called by <see cref="CpuContext.AlignmentCheck"/>: EFLAGS.AC selects the SMAP rule set.</summary>
    internal void OnAlignmentCheckChanged(bool ac) => _acIndex = ac ? 1 : 0;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private Fault TranslateSlow(ulong va, AccessKind kind, Privilege privilege, out Translation translation)
    {
        Counters.SlowTranslations++;
        if (!_paging)
        {
            translation = new Translation(_longMode ? va : va & 0xFFFF_FFFFUL, PageSize.Size4K, MemoryType.WriteBack);
            return Fault.None;
        }
        if (!_longMode)
        {
            translation = default;
            return new Fault(FaultKind.MachineCheck, 0, va, 0, FaultRule.UnsupportedPagingMode);
        }
        if (!IsCanonical(va))
        {
            Counters.GeneralProtectionFaults++;
            translation = default;
            return new Fault(FaultKind.GeneralProtection, 0, va, 0, FaultRule.NonCanonical);
        }
        ulong vam = va & _linearMask;
        var l1 = kind == AccessKind.Execute ? _itlb : _dtlb;
        l1.SlowLookups++;
        if (l1.Find(vam, _pcid, out var array, out int index))
        {
            ref var e = ref array!.At(index);
            array.Counters.HitsBySize[(int)e.OrigSize]++;
            return FromEntry(ref e, va, vam, kind, privilege, out translation);
        }
        if (!_stlb.IsEmpty)
        {
            _stlb.SlowLookups++;
            if (_stlb.Find(vam, _pcid, out var a2, out int i2))
            {
                ref var e2 = ref a2!.At(i2);
                a2.Counters.HitsBySize[(int)e2.OrigSize]++;
                l1.MissesBySize[(int)e2.OrigSize]++;
                var copy = e2;
                copy.Size = copy.OrigSize;
                copy.PaBase = e2.PaBase & ~(e2.OrigSize.Bytes() - 1);
                copy.Host = null; // the host page is resolved per 4 KiB L1 entry
                copy.WriteHost = null;
                l1.Insert(copy, vam);
                return FromEntry(ref e2, va, vam, kind, privilege, out translation);
            }
        }
        return WalkAndFill(va, vam, kind, privilege, l1, out translation);
    }

    private Fault FromEntry(ref TlbEntry e, ulong va, ulong vam, AccessKind kind, Privilege privilege, out Translation translation)
    {
        if (CoherenceChecking) CheckCoherence(ref e, va, vam);
        FaultRule rule = _rules[RuleIndex(kind, privilege, e.Rights)];
        bool pk = false;
        if (_pke && kind != AccessKind.Execute && (e.Rights & US) != 0)
        {
            var pkRule = PkeyRule(kind, privilege, e.PKey);
            if (pkRule != FaultRule.None) { pk = true; if (rule == FaultRule.None) rule = pkRule; }
        }
        if (rule != FaultRule.None)
        {
            translation = default;
            return RaisePageFault(va, vam, kind, privilege, PageFaultErrorCode.Present | (pk ? PageFaultErrorCode.ProtectionKey : 0), 0, rule);
        }
        if (kind == AccessKind.Write && !e.Dirty)
        {
            // The TLB holds a clean entry: the processor walks again to set D in the leaf.
            Counters.DirtyRewalks++;
            InvalidateAddressEverywhere(vam, includeGlobal: true);
            return WalkAndFill(va, vam, kind, privilege, kind == AccessKind.Execute ? _itlb : _dtlb, out translation);
        }
        ulong offsetMask = e.Size.Bytes() - 1;
        translation = new Translation(e.PaBase | (va & offsetMask), e.OrigSize, e.MemType);
        return Fault.None;
    }

    private Fault WalkAndFill(ulong va, ulong vam, AccessKind kind, Privilege privilege, TlbLevel l1, out Translation translation)
    {
        var o = Walk(va, vam, kind, privilege, sideEffects: true, steps: null);
        if (o.Fault.IsFault)
        {
            translation = default;
            l1.FaultingMisses++;
            if (!_stlb.IsEmpty) _stlb.FaultingMisses++;
            if (o.Fault.Kind == FaultKind.PageFault) InvalidateForFault(vam);
            return o.Fault;
        }
        l1.MissesBySize[(int)o.Size]++;
        if (!_stlb.IsEmpty) _stlb.MissesBySize[(int)o.Size]++;
        var entry = new TlbEntry
        {
            PaBase = o.PaBase,
            LeafPa = o.LeafPa,
            LeafRaw = o.LeafRaw,
            Pcid = _pcid,
            Rights = o.Rights,
            PKey = o.PKey,
            MemType = o.MemType,
            Size = o.Size,
            OrigSize = o.Size,
        };
        if (!_stlb.IsEmpty) _stlb.Insert(entry, vam);
        l1.Insert(entry, vam);
        if (_coherenceChecking && WriteLog is { } log) TrackWalk(va, vam, log);
        translation = new Translation(o.PaBase | (va & (o.Size.Bytes() - 1)), o.Size, o.MemType);
        return Fault.None;
    }

    private Fault RaisePageFault(ulong va, ulong vam, AccessKind kind, Privilege privilege, PageFaultErrorCode extra, int level, FaultRule rule)
    {
        InvalidateForFault(vam);
        return new Fault(FaultKind.PageFault, BaseErrorCode(kind, privilege) | extra, va, level, rule);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int RuleIndex(AccessKind kind, Privilege privilege, byte rights)
        => (((((int)kind * 3 + (int)privilege) << 1) | _acIndex) << 3) | (rights & 7);

    private PageFaultErrorCode BaseErrorCode(AccessKind kind, Privilege privilege)
    {
        var ec = PageFaultErrorCode.None;
        if (kind == AccessKind.Write) ec |= PageFaultErrorCode.Write;
        if (privilege == Privilege.User) ec |= PageFaultErrorCode.User;
        if (kind == AccessKind.Execute && (_nxe || _smep)) ec |= PageFaultErrorCode.InstructionFetch;
        return ec;
    }

    // ------------------------------------------------------------------ the walk

    /// <summary>
    /// The IA-32e page walk. With side effects it uses and fills the paging-structure caches, sets A in each
    /// non-leaf entry it uses and, when the access is allowed, A (and D for a write) in the leaf.
    /// </summary>
    internal WalkOutcome Walk(ulong va, ulong vam, AccessKind kind, Privilege privilege, bool sideEffects, List<WalkStep>? steps, bool checkRights = true)
    {
        var o = new WalkOutcome();
        var attrs = sideEffects ? _attrs : _debugAttrs;
        if (sideEffects) Counters.Walks++;
        int level = _levels;
        ulong table = _ctx.Cr3Value & _addrMask;
        byte rights = RW | US;
        int roLevel = 0, supLevel = 0, xdLevel = 0;
        if (sideEffects && _psc[2] is not null)
        {
            for (int l = 2; l <= _levels; l++)
            {
                if (_psc[l]!.TryGet(vam, _pcid, out ulong next, out byte r))
                {
                    table = next; rights = r; level = l - 1;
                    if ((r & RW) == 0) roLevel = l;
                    if ((r & US) == 0) supLevel = l;
                    if ((r & XD) != 0) xdLevel = l;
                    Counters.WalksFromPagingStructureCache++;
                    break;
                }
            }
        }
        while (true)
        {
            int shift = PageGeometry.LevelShift(level);
            int idx = (int)((vam >> shift) & 511);
            ulong entryPa = table + (ulong)idx * 8;
            var status = _bus.Read(entryPa, 8, out ulong raw, attrs);
            if (sideEffects) Counters.WalkReads++;
            if (status != BusStatus.Ok)
            {
                o.Fault = new Fault(FaultKind.MachineCheck, 0, va, level, FaultRule.WalkBusError);
                return o;
            }
            bool present = (raw & 1) != 0;
            bool leaf = present && (level == 1 || (level <= 3 && (raw & (ulong)PteFlags.PageSize) != 0));
            steps?.Add(new WalkStep(level, idx, entryPa, raw, leaf));
            if (!present)
            {
                o.Fault = new Fault(FaultKind.PageFault, BaseErrorCode(kind, privilege), va, level, FaultRule.NotPresent);
                return o;
            }
            var rsvd = ReservedRule(raw, level, leaf);
            if (rsvd != FaultRule.None)
            {
                o.Fault = new Fault(FaultKind.PageFault, BaseErrorCode(kind, privilege) | PageFaultErrorCode.Present | PageFaultErrorCode.ReservedBit, va, level, rsvd);
                return o;
            }
            if ((raw & 2) == 0) { rights &= unchecked((byte)~RW); if (roLevel == 0) roLevel = level; }
            if ((raw & 4) == 0) { rights &= unchecked((byte)~US); if (supLevel == 0) supLevel = level; }
            if (_nxe && (raw & XdBit) != 0) { rights |= XD; if (xdLevel == 0) xdLevel = level; }
            if (leaf)
            {
                o.Size = (PageSize)(level - 1);
                o.LeafPa = entryPa;
                o.PKey = (byte)((raw >> 59) & 0xF);
                var rule = checkRights ? _rules[RuleIndex(kind, privilege, rights)] : FaultRule.None;
                bool pk = false;
                if (checkRights && _pke && kind != AccessKind.Execute && (rights & US) != 0)
                {
                    var pkRule = PkeyRule(kind, privilege, o.PKey);
                    if (pkRule != FaultRule.None) { pk = true; if (rule == FaultRule.None) rule = pkRule; }
                }
                if (rule != FaultRule.None)
                {
                    int lvl = rule switch
                    {
                        FaultRule.UserAccessToSupervisorPage => supLevel,
                        FaultRule.UserWriteToReadOnly or FaultRule.SupervisorWriteToReadOnly => roLevel,
                        FaultRule.FetchFromNoExecute => xdLevel,
                        _ => level,
                    };
                    o.Fault = new Fault(FaultKind.PageFault,
                        BaseErrorCode(kind, privilege) | PageFaultErrorCode.Present | (pk ? PageFaultErrorCode.ProtectionKey : 0), va, lvl, rule);
                    return o;
                }
                ulong updated = raw | (ulong)PteFlags.Accessed | (kind == AccessKind.Write ? (ulong)PteFlags.Dirty : 0);
                if (sideEffects && updated != raw)
                {
                    _bus.Write(entryPa, 8, updated, attrs);
                    Counters.AccessedDirtyWrites++;
                }
                o.LeafRaw = sideEffects ? updated : raw;
                if ((o.LeafRaw & (ulong)PteFlags.Dirty) != 0) rights |= TlbEntry.RightDirty;
                if (_pge && (raw & (ulong)PteFlags.Global) != 0) rights |= TlbEntry.RightGlobal;
                o.Rights = rights;
                o.MemType = Pat.TypeAt(_ctx.PatValue, Pat.Index(raw, level > 1));
                o.PaBase = raw & _addrMask & ~(o.Size.Bytes() - 1);
                return o;
            }
            if (sideEffects)
            {
                if ((raw & (ulong)PteFlags.Accessed) == 0)
                {
                    _bus.Write(entryPa, 8, raw | (ulong)PteFlags.Accessed, attrs);
                    Counters.AccessedDirtyWrites++;
                }
                _psc[level]?.Insert(vam, _pcid, raw & _addrMask, (byte)(rights & (RW | US | XD)));
            }
            table = raw & _addrMask;
            level--;
        }
    }

    private FaultRule ReservedRule(ulong raw, int level, bool leaf)
    {
        if ((raw & _rsvdHigh) != 0) return FaultRule.ReservedAddressBits;
        if (!_nxe && (raw & XdBit) != 0) return FaultRule.ReservedNoExecute;
        if (level >= 4 && (raw & (ulong)PteFlags.PageSize) != 0) return FaultRule.ReservedPageSizeAtTopLevel;
        if (leaf && level == 3)
        {
            if (!_ctx.Features.Pages1G) return FaultRule.Reserved1GbPageUnsupported;
            if ((raw & 0x3FFF_E000UL) != 0) return FaultRule.ReservedLargePageBits;
        }
        if (leaf && level == 2 && (raw & 0x1F_E000UL) != 0) return FaultRule.ReservedLargePageBits;
        return FaultRule.None;
    }

    /// <summary>The access-rights rules of SDM Vol. 3A §4.6 on combined rights, without protection keys.</summary>
    internal static FaultRule RightsRule(AccessKind kind, Privilege privilege, bool ac, byte rights, bool nxe, bool smep, bool smap, bool wp)
    {
        bool w = (rights & RW) != 0, u = (rights & US) != 0, xd = nxe && (rights & XD) != 0;
        if (privilege == Privilege.User)
        {
            if (!u) return FaultRule.UserAccessToSupervisorPage;
            if (kind == AccessKind.Write && !w) return FaultRule.UserWriteToReadOnly;
            if (kind == AccessKind.Execute && xd) return FaultRule.FetchFromNoExecute;
            return FaultRule.None;
        }
        if (kind == AccessKind.Execute)
        {
            if (u && smep) return FaultRule.Smep;
            return xd ? FaultRule.FetchFromNoExecute : FaultRule.None;
        }
        if (u && smap && (privilege == Privilege.ImplicitSupervisor || !ac)) return FaultRule.Smap;
        if (kind == AccessKind.Write && wp && !w) return FaultRule.SupervisorWriteToReadOnly;
        return FaultRule.None;
    }

    /// <summary>Protection-key rule for a data access to a user-mode address (SDM Vol. 3A §4.6.2).</summary>
    private FaultRule PkeyRule(AccessKind kind, Privilege privilege, int key)
    {
        uint bits = _ctx.Pkru >> (key * 2);
        if ((bits & 1) != 0) return FaultRule.ProtectionKeyAccessDisabled;
        if (kind == AccessKind.Write && (bits & 2) != 0 && (privilege == Privilege.User || _wp)) return FaultRule.ProtectionKeyWriteDisabled;
        return FaultRule.None;
    }

    // ------------------------------------------------------------------ control-state hooks and invalidation

    internal void OnControlStateChanged()
    {
        _epoch.Value++;
        ulong cr0 = _ctx.Cr0Value, cr4 = _ctx.Cr4Value, efer = _ctx.EferValue;
        _paging = (cr0 & Cr0.PG) != 0;
        _longMode = (efer & Efer.LMA) != 0;
        _la57 = (cr4 & Cr4.LA57) != 0;
        _nxe = (efer & Efer.NXE) != 0;
        _smep = (cr4 & Cr4.SMEP) != 0;
        bool smap = (cr4 & Cr4.SMAP) != 0;
        _pke = (cr4 & Cr4.PKE) != 0;
        _wp = (cr0 & Cr0.WP) != 0;
        _pge = (cr4 & Cr4.PGE) != 0;
        _levels = _la57 ? 5 : 4;
        int width = _la57 ? 57 : 48;
        _unusedBits = 64 - width;
        _linearMask = (1UL << width) - 1;
        int maxPhys = _ctx.Features.MaxPhysAddrBits;
        _addrMask = ((1UL << maxPhys) - 1) & ~0xFFFUL;
        _rsvdHigh = ((1UL << 52) - 1) & ~((1UL << maxPhys) - 1);
        _pcid = _ctx.CurrentPcid;
        _fastPath = _paging && _longMode && !CoherenceChecking;
        for (int k = 0; k < 3; k++)
            for (int p = 0; p < 3; p++)
                for (int ac = 0; ac < 2; ac++)
                {
                    ulong allowed = 0;
                    for (int r = 0; r < 8; r++)
                    {
                        var rule = RightsRule((AccessKind)k, (Privilege)p, ac == 1, (byte)r, _nxe, _smep, smap, _wp);
                        _rules[((((k * 3 + p) << 1) | ac) << 3) | r] = rule;
                        bool keyed = _pke && k != (int)AccessKind.Execute && (r & US) != 0;
                        if (rule != FaultRule.None || keyed) continue;
                        for (int extra = 0; extra < 4; extra++) // D and G bits
                        {
                            int full = r | (extra << 3);
                            if (k == (int)AccessKind.Write && (full & TlbEntry.RightDirty) == 0) continue;
                            allowed |= 1UL << full; // entries with the Fractured bit (32) never take the fast path
                        }
                    }
                    _allowed[((k * 3 + p) << 1) | ac] = allowed;
                }
    }

    internal void OnCr3Load(bool noFlush)
    {
        _epoch.Value++;
        _pcid = _ctx.CurrentPcid;
        if (noFlush) { Counters.FlushesByKind[(int)FlushKind.Cr3LoadNoFlush]++; return; }
        Counters.FlushesByKind[(int)FlushKind.Cr3Load]++;
        InvalidateContext(_pcid, anyPcid: false, includeGlobal: false);
    }

    /// <summary>INVLPG: drops TLB entries for the page of <paramref name="va"/> for the current PCID and global ones,
    /// and every paging-structure-cache entry of the current PCID. A non-canonical address is a no-op, as on hardware.</summary>
    public void Invlpg(ulong va)
    {
        Counters.FlushesByKind[(int)FlushKind.Invlpg]++;
        if (!IsCanonical(va)) return;
        ulong vam = va & _linearMask;
        _itlb.InvalidateAddress(vam, _pcid, anyPcid: false, includeGlobal: true);
        _dtlb.InvalidateAddress(vam, _pcid, anyPcid: false, includeGlobal: true);
        _stlb.InvalidateAddress(vam, _pcid, anyPcid: false, includeGlobal: true);
        InvalidatePsc(_pcid, anyPcid: false, null);
    }

    /// <summary>
    /// INVPCID with <paramref name="type"/> 0 (individual address), 1 (single context), 2 (all contexts including
    /// globals) or 3 (all contexts except globals). Returns #GP(0) as the instruction does for a type above 3, a PCID
    /// above 4095, a non-canonical address with type 0, or a nonzero PCID with types 0/1 while CR4.PCIDE=0.
    /// </summary>
    public Fault Invpcid(int type, ulong pcid, ulong va = 0)
    {
        var gp = new Fault(FaultKind.GeneralProtection, 0, 0, 0, FaultRule.InvalidInvpcid);
        if (type is < 0 or > 3 || pcid > 0xFFF) return gp;
        if (type <= 1 && pcid != 0 && (_ctx.Cr4Value & Cr4.PCIDE) == 0) return gp;
        if (type == 0 && !IsCanonical(va)) return gp;
        ushort p = (ushort)pcid;
        switch (type)
        {
            case 0:
                Counters.FlushesByKind[(int)FlushKind.InvpcidAddress]++;
                ulong vam = va & _linearMask;
                _itlb.InvalidateAddress(vam, p, anyPcid: false, includeGlobal: false);
                _dtlb.InvalidateAddress(vam, p, anyPcid: false, includeGlobal: false);
                _stlb.InvalidateAddress(vam, p, anyPcid: false, includeGlobal: false);
                InvalidatePsc(p, anyPcid: false, null);
                break;
            case 1:
                Counters.FlushesByKind[(int)FlushKind.InvpcidSingleContext]++;
                InvalidateContext(p, anyPcid: false, includeGlobal: false);
                break;
            case 2:
                Counters.FlushesByKind[(int)FlushKind.InvpcidAllIncludingGlobal]++;
                InvalidateContext(0, anyPcid: true, includeGlobal: true);
                break;
            default:
                Counters.FlushesByKind[(int)FlushKind.InvpcidAllExceptGlobal]++;
                InvalidateContext(0, anyPcid: true, includeGlobal: false);
                break;
        }
        return Fault.None;
    }

    /// <summary>Drops every TLB and paging-structure-cache entry (all PCIDs, globals included).</summary>
    public void FlushAll() => FlushAll(FlushKind.Host);

    internal void FlushAll(FlushKind kind)
    {
        Counters.FlushesByKind[(int)kind]++;
        InvalidateContext(0, anyPcid: true, includeGlobal: true);
    }

    internal void FlushCurrentPcid(FlushKind kind)
    {
        Counters.FlushesByKind[(int)kind]++;
        InvalidateContext(_pcid, anyPcid: false, includeGlobal: true);
    }

    private void InvalidateContext(ushort pcid, bool anyPcid, bool includeGlobal)
    {
        _itlb.InvalidateAll(pcid, anyPcid, includeGlobal);
        _dtlb.InvalidateAll(pcid, anyPcid, includeGlobal);
        _stlb.InvalidateAll(pcid, anyPcid, includeGlobal);
        InvalidatePsc(pcid, anyPcid, null);
    }

    private void InvalidatePsc(ushort pcid, bool anyPcid, ulong? vam)
    {
        for (int l = 2; l <= 5; l++) _psc[l]?.Invalidate(pcid, anyPcid, vam);
    }

    /// <summary>Counts a page fault, which invalidates the TLB entries for the faulting page and the paging-structure-cache entries used for it.</summary>
    private void InvalidateForFault(ulong vam)
    {
        Counters.PageFaults++;
        Counters.FlushesByKind[(int)FlushKind.PageFault]++;
        InvalidateAddressEverywhere(vam, includeGlobal: true);
        InvalidatePsc(_pcid, anyPcid: false, vam);
    }

    private void InvalidateAddressEverywhere(ulong vam, bool includeGlobal)
    {
        _itlb.InvalidateAddress(vam, _pcid, anyPcid: false, includeGlobal);
        _dtlb.InvalidateAddress(vam, _pcid, anyPcid: false, includeGlobal);
        _stlb.InvalidateAddress(vam, _pcid, anyPcid: false, includeGlobal);
    }

    private bool IsCanonical(ulong va) => (ulong)((long)(va << _unusedBits) >> _unusedBits) == va;

    // ------------------------------------------------------------------ coherence checker

    private void CheckCoherence(ref TlbEntry e, ulong va, ulong vam)
    {
        if (e.StaleReported) return;
        // Side-effect-free walk that reaches the leaf without judging this access: structure and rights are compared.
        var now = Walk(va, vam, AccessKind.Read, Privilege.Supervisor, sideEffects: false, steps: null, checkRights: false);
        ulong cachedPa = e.PaBase | (va & (e.Size.Bytes() - 1));
        StaleKind? kind = null;
        ulong? currentPa = null;
        const byte rightsMask = RW | US | XD;
        if (now.Fault.IsFault)
            kind = StaleKind.NowUnmapped;
        else
        {
            currentPa = now.PaBase | (va & (now.Size.Bytes() - 1));
            if (currentPa != cachedPa || now.Size != e.OrigSize) kind = StaleKind.DifferentFrame;
            else if ((e.Rights & rightsMask) != (now.Rights & rightsMask) || e.PKey != now.PKey)
            {
                bool more = ((e.Rights & RW) != 0 && (now.Rights & RW) == 0) || ((e.Rights & US) != 0 && (now.Rights & US) == 0)
                    || ((e.Rights & XD) == 0 && (now.Rights & XD) != 0) || e.PKey != now.PKey;
                kind = more ? StaleKind.MorePermissive : StaleKind.LessPermissive;
            }
            else if (e.MemType != now.MemType) kind = StaleKind.DifferentMemoryType;
        }
        if (kind is null) return;
        e.StaleReported = true;
        Counters.StaleTranslations++;
        string desc = $"CPU {_ctx.Id}: TLB entry for 0x{va:x16} (PCID {e.Pcid}) gives PA 0x{cachedPa:x} but the page tables now "
            + kind switch
            {
                StaleKind.NowUnmapped => $"do not map it ({FaultRules.Describe(now.Fault.Rule)} at the {PageGeometry.EntryName(now.Fault.Level)})",
                StaleKind.DifferentFrame => $"map it to PA 0x{currentPa:x} ({now.Size.Label()} page)",
                StaleKind.MorePermissive => $"forbid what the cached rights allow (cached leaf 0x{e.LeafRaw:x}, now 0x{now.LeafRaw:x})",
                StaleKind.LessPermissive => $"allow more than the cached rights (cached leaf 0x{e.LeafRaw:x}, now 0x{now.LeafRaw:x})",
                _ => $"give memory type {now.MemType.ShortName()} instead of {e.MemType.ShortName()}",
            } + "; a TLB flush is missing.";
        PagingEntryWrite? change = null;
        CpuPosition? reader = null;
        if (WriteLog is { } log)
        {
            change = FindChange(log, va, vam, e.LeafPa);
            reader = log.Position(_ctx.Id);
            if (change is not null) desc = DescribeMissingShootdown(va, change, reader);
        }
        var ev = new StaleTranslationEvent(_ctx.Id, va, kind.Value, _pcid, cachedPa, e.LeafRaw, now.Fault.IsFault ? 0 : now.LeafRaw, currentPa, desc)
        {
            Change = change,
            ReaderInstructionPointer = reader?.InstructionPointer,
            ReaderInstruction = reader?.Instruction,
        };
        if (_stale.Count < 10_000) _stale.Add(ev);
        StaleTranslationDetected?.Invoke(ev);
    }

    // Registers every paging-structure page the walk for va reads (a side-effect-free walk of the current tables).
    private void TrackWalk(ulong va, ulong vam, PagingWriteLog log)
    {
        var steps = new List<WalkStep>(_levels);
        Walk(va, vam, AccessKind.Read, Privilege.Supervisor, sideEffects: false, steps, checkRights: false);
        foreach (var s in steps) log.Track(s.EntryAddress);
    }

    // The latest logged change among the cached leaf entry and the entries of the current walk for va.
    private PagingEntryWrite? FindChange(PagingWriteLog log, ulong va, ulong vam, ulong cachedLeafPa)
    {
        var best = log.LastChange(cachedLeafPa);
        var steps = new List<WalkStep>(_levels);
        Walk(va, vam, AccessKind.Read, Privilege.Supervisor, sideEffects: false, steps, checkRights: false);
        foreach (var s in steps)
            if (log.LastChange(s.EntryAddress) is { } c && (best is null || c.Sequence > best.Sequence)) best = c;
        return best;
    }

    private string DescribeMissingShootdown(ulong va, PagingEntryWrite change, CpuPosition? reader)
    {
        string who = change.WriterName;
        string with = change.Instruction is { } text ? $" with '{text}' at 0x{change.InstructionPointer:x}" : "";
        string then = reader is { } r ? $"; CPU {_ctx.Id} then executed '{r.Instruction}' at 0x{r.InstructionPointer:x}" : $"; CPU {_ctx.Id} then used it";
        bool remote = change.Writer.Kind == RequesterKind.Cpu && change.Writer.RequesterId != _ctx.Id;
        return $"CPU {_ctx.Id} used a stale TLB entry for 0x{va:x}: {who} changed the {EntryName(change.EntryAddress, va)} at PA 0x{change.EntryAddress:x} "
            + $"from 0x{change.OldValue:x} to 0x{change.NewValue:x}{with}{then} without an INVLPG or CR3 reload since"
            + (remote ? ": a TLB shootdown is missing." : ": a TLB flush is missing.");
    }

    // The name of the paging-structure entry at entryAddress on the walk for va (PTE, PDE, ...), "entry" when not on it.
    private string EntryName(ulong entryAddress, ulong va)
    {
        var steps = new List<WalkStep>(_levels);
        Walk(va, va & _linearMask, AccessKind.Read, Privilege.Supervisor, sideEffects: false, steps, checkRights: false);
        foreach (var s in steps)
            if (s.EntryAddress == entryAddress) return s.Name;
        return "paging-structure entry";
    }
}
