namespace HwMemModel.Mmu;

/// <summary>The kind of a linear-address access.</summary>
public enum AccessKind : byte
{
    /// <summary>A data read.</summary>
    Read = 0,
    /// <summary>A data write.</summary>
    Write = 1,
    /// <summary>An instruction fetch.</summary>
    Execute = 2,
}

/// <summary>The privilege of an access (SDM Vol. 3A §4.6).</summary>
public enum Privilege : byte
{
    /// <summary>An explicit access made at CPL 0, 1 or 2.</summary>
    Supervisor = 0,
    /// <summary>An access made at CPL 3.</summary>
    User = 1,
    /// <summary>
    /// An implicit supervisor-mode access (GDT/IDT/LDT/TSS accesses, delivery of events), supervisor whatever the CPL;
    /// SMAP blocks it from user-mode addresses regardless of EFLAGS.AC.
    /// </summary>
    ImplicitSupervisor = 2,
}

/// <summary>Bits of the #PF error code (SDM Vol. 3A §4.7).</summary>
[Flags]
public enum PageFaultErrorCode : uint
{
    /// <summary>No bits.</summary>
    None = 0,
    /// <summary>Bit 0, P: 0 for a not-present entry, 1 for a protection or reserved-bit violation.</summary>
    Present = 1 << 0,
    /// <summary>Bit 1, W/R: the access was a write.</summary>
    Write = 1 << 1,
    /// <summary>Bit 2, U/S: the access was a user-mode access.</summary>
    User = 1 << 2,
    /// <summary>Bit 3, RSVD: a reserved bit was set in a paging-structure entry.</summary>
    ReservedBit = 1 << 3,
    /// <summary>Bit 4, I/D: the access was an instruction fetch (reported only when EFER.NXE=1 or CR4.SMEP=1).</summary>
    InstructionFetch = 1 << 4,
    /// <summary>Bit 5, PK: a protection-key violation.</summary>
    ProtectionKey = 1 << 5,
}

/// <summary>The architectural outcome class of a translation.</summary>
public enum FaultKind : byte
{
    /// <summary>Translated.</summary>
    None = 0,
    /// <summary>A page fault (#PF, vector 14) with an error code and CR2.</summary>
    PageFault = 14,
    /// <summary>A general-protection fault (#GP(0), vector 13): non-canonical address or invalid control-register value.</summary>
    GeneralProtection = 13,
    /// <summary>The page walk itself could not read memory (bus error under a bus-error policy): a machine-check stop.</summary>
    MachineCheck = 18,
}

/// <summary>The rule that decided a fault, for explanations.</summary>
public enum FaultRule : byte
{
    /// <summary>No fault.</summary>
    None = 0,
    /// <summary>The linear address is not canonical.</summary>
    NonCanonical,
    /// <summary>A paging-structure entry has P=0.</summary>
    NotPresent,
    /// <summary>Physical-address bits at or above MAXPHYADDR are set.</summary>
    ReservedAddressBits,
    /// <summary>XD is set while EFER.NXE=0.</summary>
    ReservedNoExecute,
    /// <summary>PS is set in a PML4E or PML5E.</summary>
    ReservedPageSizeAtTopLevel,
    /// <summary>Reserved low address bits of a 2 MiB or 1 GiB leaf are set.</summary>
    ReservedLargePageBits,
    /// <summary>PS=1 in a PDPTE on a processor without 1 GiB pages.</summary>
    Reserved1GbPageUnsupported,
    /// <summary>A user-mode access to a supervisor-mode address (U/S=0 at some level).</summary>
    UserAccessToSupervisorPage,
    /// <summary>A user-mode write to a page with R/W=0 at some level.</summary>
    UserWriteToReadOnly,
    /// <summary>A supervisor-mode write to a page with R/W=0 at some level while CR0.WP=1.</summary>
    SupervisorWriteToReadOnly,
    /// <summary>An instruction fetch from a page with XD=1 at some level while EFER.NXE=1.</summary>
    FetchFromNoExecute,
    /// <summary>A supervisor-mode fetch from a user-mode address while CR4.SMEP=1.</summary>
    Smep,
    /// <summary>A supervisor-mode data access to a user-mode address while CR4.SMAP=1 (EFLAGS.AC=0 or implicit).</summary>
    Smap,
    /// <summary>PKRU.AD=1 for the page's protection key.</summary>
    ProtectionKeyAccessDisabled,
    /// <summary>PKRU.WD=1 for the page's protection key on a write (user-mode, or supervisor with CR0.WP=1).</summary>
    ProtectionKeyWriteDisabled,
    /// <summary>The page walk read failed on the bus.</summary>
    WalkBusError,
    /// <summary>Paging is enabled in a mode this model does not implement (32-bit or PAE paging).</summary>
    UnsupportedPagingMode,
    /// <summary>A control register or MSR write with a value the processor rejects.</summary>
    InvalidControlValue,
    /// <summary>An INVPCID with an invalid type, PCID or address.</summary>
    InvalidInvpcid,
}

/// <summary>A fault as a value: kind, #PF error code, faulting address (CR2), level and rule. 16 bytes, so it is returned in registers.</summary>
public readonly record struct Fault
{
    private readonly byte _level;

    /// <summary>Creates a fault.</summary>
    /// <param name="kind">The exception class.</param>
    /// <param name="errorCode">The #PF error code (0 for #GP(0)).</param>
    /// <param name="address">The linear address that faulted (CR2 for #PF).</param>
    /// <param name="level">The paging level that decided the fault (5..1), or 0 when decided from combined rights or before the walk.</param>
    /// <param name="rule">The rule that failed.</param>
    public Fault(FaultKind kind, PageFaultErrorCode errorCode, ulong address, int level, FaultRule rule)
    {
        Address = address;
        ErrorCode = errorCode;
        Kind = kind;
        Rule = rule;
        _level = (byte)level;
    }

    /// <summary>The linear address that faulted (CR2 for #PF).</summary>
    public ulong Address { get; }
    /// <summary>The #PF error code (0 for #GP(0)).</summary>
    public PageFaultErrorCode ErrorCode { get; }
    /// <summary>The exception class.</summary>
    public FaultKind Kind { get; }
    /// <summary>The rule that failed.</summary>
    public FaultRule Rule { get; }
    /// <summary>The paging level that decided the fault (5..1), or 0 when decided from cached rights or before the walk.</summary>
    public int Level => _level;

    /// <summary>No fault.</summary>
    public static Fault None => default;

    /// <summary>True when there is a fault.</summary>
    public bool IsFault => Kind != FaultKind.None;

    /// <summary>The x86 exception vector (14 for #PF, 13 for #GP, 18 for a machine check).</summary>
    public int Vector => (int)Kind;

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        FaultKind.None => "no fault",
        FaultKind.PageFault => $"#PF(0x{(uint)ErrorCode:x}) at 0x{Address:x16} ({FaultRules.Describe(Rule)})",
        FaultKind.GeneralProtection => $"#GP(0) at 0x{Address:x16} ({FaultRules.Describe(Rule)})",
        _ => $"machine check at 0x{Address:x16} ({FaultRules.Describe(Rule)})",
    };
}

/// <summary>Text for fault rules.</summary>
public static class FaultRules
{
    /// <summary>A short description of a rule.</summary>
    public static string Describe(FaultRule rule) => rule switch
    {
        FaultRule.None => "allowed",
        FaultRule.NonCanonical => "non-canonical linear address",
        FaultRule.NotPresent => "entry not present (P=0)",
        FaultRule.ReservedAddressBits => "reserved bit: physical-address bits at or above MAXPHYADDR are set",
        FaultRule.ReservedNoExecute => "reserved bit: XD is set while EFER.NXE=0",
        FaultRule.ReservedPageSizeAtTopLevel => "reserved bit: PS is set in a PML4E/PML5E",
        FaultRule.ReservedLargePageBits => "reserved bit: low address bits of a large-page leaf are set",
        FaultRule.Reserved1GbPageUnsupported => "reserved bit: PS=1 in a PDPTE but 1 GiB pages are not supported",
        FaultRule.UserAccessToSupervisorPage => "user-mode access to a supervisor-mode page (U/S=0)",
        FaultRule.UserWriteToReadOnly => "user-mode write to a read-only page (R/W=0)",
        FaultRule.SupervisorWriteToReadOnly => "supervisor write to a read-only page with CR0.WP=1",
        FaultRule.FetchFromNoExecute => "instruction fetch from an execute-disabled page (XD=1, EFER.NXE=1)",
        FaultRule.Smep => "supervisor-mode fetch from a user-mode page with CR4.SMEP=1",
        FaultRule.Smap => "supervisor-mode data access to a user-mode page with CR4.SMAP=1",
        FaultRule.ProtectionKeyAccessDisabled => "protection key access-disabled in PKRU",
        FaultRule.ProtectionKeyWriteDisabled => "protection key write-disabled in PKRU",
        FaultRule.WalkBusError => "page-walk read failed on the bus",
        FaultRule.UnsupportedPagingMode => "paging mode not implemented (only IA-32e 4/5-level paging)",
        FaultRule.InvalidControlValue => "invalid control-register or MSR value",
        FaultRule.InvalidInvpcid => "invalid INVPCID type, PCID or address",
        _ => rule.ToString(),
    };
}
