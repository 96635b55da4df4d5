using System.Text;

namespace HwMemModel.Mmu;

/// <summary>
/// Everything about one translation, for people: each paging-structure entry visited (address, raw value, decoded
/// flags), the outcome, and for a fault the level and the rule that failed, in words. Made without side effects:
/// no Accessed/Dirty updates, no TLB fills, no counters.
/// </summary>
public sealed class WalkExplanation
{
    internal WalkExplanation(ulong va, AccessKind kind, Privilege privilege, string control, IReadOnlyList<WalkStep> steps,
        Fault fault, Translation? translation, string verdict, string? tlbNote)
    {
        VirtualAddress = va;
        Kind = kind;
        Privilege = privilege;
        ControlState = control;
        Steps = steps;
        Fault = fault;
        Translation = translation;
        Verdict = verdict;
        TlbNote = tlbNote;
    }

    /// <summary>The address explained.</summary>
    public ulong VirtualAddress { get; }
    /// <summary>The access kind.</summary>
    public AccessKind Kind { get; }
    /// <summary>The access privilege.</summary>
    public Privilege Privilege { get; }
    /// <summary>The control state that matters, e.g. "4-level, CR0.WP=1, CR4: PGE SMEP, EFER.NXE=1, CPL 0, PCID 0".</summary>
    public string ControlState { get; }
    /// <summary>The entries visited, top level first.</summary>
    public IReadOnlyList<WalkStep> Steps { get; }
    /// <summary>The fault, or no fault.</summary>
    public Fault Fault { get; }
    /// <summary>The translation when allowed.</summary>
    public Translation? Translation { get; }
    /// <summary>The verdict in words, e.g. "user-mode write; the PDE has U/S=0 → #PF(0x7)".</summary>
    public string Verdict { get; }
    /// <summary>What the TLB holds for this address, if anything, and whether it agrees with RAM.</summary>
    public string? TlbNote { get; }

    /// <summary>The explanation as a text table.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{AccessWords(Kind, Privilege)} at 0x{VirtualAddress:x16}");
        sb.AppendLine($"  control: {ControlState}");
        if (Steps.Count > 0)
        {
            sb.AppendLine("  level  index  entry address       raw value           flags");
            foreach (var s in Steps)
                sb.AppendLine($"  {s.Name,-6} {s.Index,5}  0x{s.EntryAddress:x16}  0x{s.Raw:x16}  {s.Decoded}{(s.IsLeaf ? "  (leaf)" : "")}");
        }
        sb.AppendLine($"  verdict: {Verdict}");
        if (TlbNote is not null) sb.AppendLine($"  tlb: {TlbNote}");
        return sb.ToString();
    }

    internal static string AccessWords(AccessKind kind, Privilege privilege)
    {
        string who = privilege switch
        {
            Privilege.User => "user-mode",
            Privilege.Supervisor => "supervisor-mode",
            _ => "implicit supervisor-mode",
        };
        string what = kind switch { AccessKind.Read => "read", AccessKind.Write => "write", _ => "instruction fetch" };
        return $"{who} {what}";
    }
}

public sealed partial class Mmu
{
    /// <summary>Explains the translation of <paramref name="va"/> for an access at the current CPL.</summary>
    public WalkExplanation Explain(ulong va, AccessKind kind) => Explain(va, kind, _ctx.CurrentPrivilege);

    /// <summary>
    /// Explains how <paramref name="va"/> translates for an access of <paramref name="kind"/> and
    /// <paramref name="privilege"/>, reading the page tables through the bus as a debugger (no side effects).
    /// </summary>
    public WalkExplanation Explain(ulong va, AccessKind kind, Privilege privilege)
    {
        string control = DescribeControl();
        string access = WalkExplanation.AccessWords(kind, privilege);
        if (!_paging)
        {
            var t = new Translation(_longMode ? va : va & 0xFFFF_FFFFUL, PageSize.Size4K, MemoryType.WriteBack);
            return new WalkExplanation(va, kind, privilege, control, [], Fault.None, t,
                $"{access}; paging is off (CR0.PG=0): physical address 0x{t.PhysicalAddress:x}", null);
        }
        if (!_longMode)
        {
            var f = new Fault(FaultKind.MachineCheck, 0, va, 0, FaultRule.UnsupportedPagingMode);
            return new WalkExplanation(va, kind, privilege, control, [], f, null,
                $"{access}; CR0.PG=1 without IA-32e mode: 32-bit and PAE paging are not modelled", null);
        }
        if (!IsCanonical(va))
        {
            int width = _la57 ? 57 : 48;
            var f = new Fault(FaultKind.GeneralProtection, 0, va, 0, FaultRule.NonCanonical);
            return new WalkExplanation(va, kind, privilege, control, [], f, null,
                $"{access}; the address is not canonical (bits 63:{width - 1} must all equal bit {width - 1} with {(_la57 ? 5 : 4)}-level paging) → #GP(0)", null);
        }
        ulong vam = va & _linearMask;
        var steps = new List<WalkStep>(5);
        var o = Walk(va, vam, kind, privilege, sideEffects: false, steps);
        string? tlb = DescribeTlb(va, vam, kind);
        if (!o.Fault.IsFault)
        {
            var t = new Translation(o.PaBase | (va & (o.Size.Bytes() - 1)), o.Size, o.MemType);
            bool setA = (o.LeafRaw & (ulong)PteFlags.Accessed) == 0, setD = kind == AccessKind.Write && (o.LeafRaw & (ulong)PteFlags.Dirty) == 0;
            string leafName = PageGeometry.EntryName(o.Size.LeafLevel());
            string bits = (setA, setD) switch
            {
                (true, true) => $"the access sets A and D in the {leafName}",
                (true, false) => $"the access sets A in the {leafName}",
                (false, true) => $"the access sets D in the {leafName} (A is already set)",
                _ => $"{(kind == AccessKind.Write ? "A and D are" : "A is")} already set in the {leafName}",
            };
            return new WalkExplanation(va, kind, privilege, control, steps, Fault.None, t,
                $"{access} allowed: physical address 0x{t.PhysicalAddress:x} in a {t.PageSize.Label()} page, memory type {t.MemoryType.ShortName()} "
                + $"(PAT index {Pat.Index(o.LeafRaw, o.Size != PageSize.Size4K)}); {bits}", tlb);
        }
        return new WalkExplanation(va, kind, privilege, control, steps, o.Fault, null,
            $"{access}; {Reason(o, steps, kind, privilege)} → {FaultText(o.Fault)}", tlb);
    }

    private static string FaultText(Fault f) => f.Kind switch
    {
        FaultKind.PageFault => $"#PF, error code 0x{(uint)f.ErrorCode:x} ({ErrorCodeWords(f.ErrorCode)}), CR2=0x{f.Address:x}",
        FaultKind.GeneralProtection => "#GP(0)",
        _ => "machine check",
    };

    /// <summary>The error-code bits in words: "P W U RSVD I/D PK".</summary>
    public static string ErrorCodeWords(PageFaultErrorCode ec)
    {
        var parts = new List<string>
        {
            (ec & PageFaultErrorCode.Present) != 0 ? "P=1 protection" : "P=0 not-present",
            (ec & PageFaultErrorCode.Write) != 0 ? "W/R=1 write" : "W/R=0 read",
            (ec & PageFaultErrorCode.User) != 0 ? "U/S=1 user" : "U/S=0 supervisor",
        };
        if ((ec & PageFaultErrorCode.ReservedBit) != 0) parts.Add("RSVD=1");
        if ((ec & PageFaultErrorCode.InstructionFetch) != 0) parts.Add("I/D=1 fetch");
        if ((ec & PageFaultErrorCode.ProtectionKey) != 0) parts.Add("PK=1");
        return string.Join(", ", parts);
    }

    private string Reason(in WalkOutcome o, List<WalkStep> steps, AccessKind kind, Privilege privilege)
    {
        var f = o.Fault;
        string at = PageGeometry.EntryName(f.Level);
        ulong raw = steps.Count > 0 ? steps[^1].Raw : 0;
        int maxPhys = _ctx.Features.MaxPhysAddrBits;
        string pk = (f.ErrorCode & PageFaultErrorCode.ProtectionKey) != 0 && f.Rule is not (FaultRule.ProtectionKeyAccessDisabled or FaultRule.ProtectionKeyWriteDisabled)
            ? $" (the protection key {o.PKey} also denies it: PK=1)" : "";
        return f.Rule switch
        {
            FaultRule.NotPresent => $"the {at} (0x{raw:x16} at 0x{steps[^1].EntryAddress:x}) is not present (P=0)",
            FaultRule.ReservedAddressBits => $"the {at} 0x{raw:x16} sets address bits 0x{raw & _rsvdHigh:x} at or above MAXPHYADDR ({maxPhys}), which are reserved",
            FaultRule.ReservedNoExecute => $"the {at} has XD=1 but EFER.NXE=0, so bit 63 is reserved",
            FaultRule.ReservedPageSizeAtTopLevel => $"the {at} has PS=1, which is reserved at this level",
            FaultRule.ReservedLargePageBits => $"the {at} maps a {(f.Level == 3 ? "1 GiB" : "2 MiB")} page but sets reserved bits 0x{raw & (f.Level == 3 ? 0x3FFF_E000UL : 0x1F_E000UL):x} below the page's alignment",
            FaultRule.Reserved1GbPageUnsupported => $"the {at} has PS=1 but this CPU has no 1 GiB pages, so PS is reserved",
            FaultRule.UserAccessToSupervisorPage => $"the {at} has U/S=0 (a supervisor-mode page)",
            FaultRule.UserWriteToReadOnly => $"the {at} has R/W=0 (read-only)",
            FaultRule.SupervisorWriteToReadOnly => $"the {at} has R/W=0 and CR0.WP=1",
            FaultRule.FetchFromNoExecute => $"the {at} has XD=1 and EFER.NXE=1",
            FaultRule.Smep => "the page is a user-mode page (U/S=1 at every level) and CR4.SMEP=1",
            FaultRule.Smap => privilege == Privilege.ImplicitSupervisor
                ? "the page is a user-mode page (U/S=1 at every level), CR4.SMAP=1, and implicit supervisor accesses are never allowed to user pages"
                : "the page is a user-mode page (U/S=1 at every level), CR4.SMAP=1 and EFLAGS.AC=0",
            FaultRule.ProtectionKeyAccessDisabled => $"the page has protection key {o.PKey} and PKRU.AD{o.PKey}=1",
            FaultRule.ProtectionKeyWriteDisabled => $"the page has protection key {o.PKey} and PKRU.WD{o.PKey}=1"
                + (privilege == Privilege.User ? "" : " with CR0.WP=1"),
            FaultRule.WalkBusError => $"reading the {at} failed on the bus",
            _ => FaultRules.Describe(f.Rule),
        } + pk;
    }

    private string DescribeControl()
    {
        ulong cr4 = _ctx.Cr4Value;
        var bits = new List<string>();
        foreach (var (bit, name) in new[] { (Cr4.PAE, "PAE"), (Cr4.PGE, "PGE"), (Cr4.LA57, "LA57"), (Cr4.PCIDE, "PCIDE"), (Cr4.SMEP, "SMEP"), (Cr4.SMAP, "SMAP"), (Cr4.PKE, "PKE") })
            if ((cr4 & bit) != 0) bits.Add(name);
        string mode = !_paging ? "paging off" : !_longMode ? "legacy paging" : $"{_levels}-level";
        return $"{mode}, CR3=0x{_ctx.Cr3Value:x}, CR0.WP={(_wp ? 1 : 0)}, CR4: {(bits.Count == 0 ? "-" : string.Join(' ', bits))}, "
            + $"EFER.NXE={(_nxe ? 1 : 0)}, CPL {_ctx.Cpl}, EFLAGS.AC={(_ctx.AlignmentCheck ? 1 : 0)}, PCID {_pcid}, PKRU=0x{_ctx.Pkru:x8}";
    }

    private string? DescribeTlb(ulong va, ulong vam, AccessKind kind)
    {
        foreach (var level in new[] { kind == AccessKind.Execute ? _itlb : _dtlb, _stlb })
            foreach (var array in level.Arrays)
                foreach (var e in array.Snapshot())
                {
                    if (e.Vpn != vam >> e.Size.Shift() || !(e.Global || e.Pcid == _pcid)) continue;
                    ulong cachedPa = e.PaBase | (va & (e.Size.Bytes() - 1));
                    var structural = Walk(va, vam, AccessKind.Read, Privilege.Supervisor, sideEffects: false, steps: null, checkRights: false);
                    bool same = !structural.Fault.IsFault && (structural.PaBase | (va & (structural.Size.Bytes() - 1))) == cachedPa
                        && (structural.Rights & (RW | US | XD)) == (e.Rights & (RW | US | XD));
                    return $"{array.Config.Name} holds PA 0x{cachedPa:x} (PCID {e.Pcid}{(e.Global ? ", global" : "")}, {(e.Dirty ? "dirty" : "clean")})"
                        + (same ? ", consistent with the page tables" : " — STALE: the page tables in RAM now say otherwise; a flush is missing");
                }
        return null;
    }
}
