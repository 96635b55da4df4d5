using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>The access-rights bits of one paging-structure entry on a translation path.</summary>
/// <param name="Writable">R/W (bit 1).</param>
/// <param name="User">U/S (bit 2).</param>
/// <param name="NoExecute">XD (bit 63).</param>
public readonly record struct EntryRights(bool Writable, bool User, bool NoExecute)
{
    public static EntryRights Permissive => new(true, true, false);

    public override string ToString() => $"{(Writable ? "RW" : "RO")} {(User ? "U" : "S")}{(NoExecute ? " XD" : "")}";
}

/// <summary>The processor state that §4.6 consults.</summary>
public readonly record struct RightsControls(bool Wp, bool Nxe, bool Smep, bool Smap, bool Ac, bool Pke, uint Pkru)
{
    public override string ToString()
        => $"WP={B(Wp)} NXE={B(Nxe)} SMEP={B(Smep)} SMAP={B(Smap)} AC={B(Ac)} PKE={B(Pke)} PKRU=0x{Pkru:x8}";

    private static int B(bool b) => b ? 1 : 0;
}

/// <summary>What the SDM says must happen: no fault, or #PF with this error code.</summary>
public readonly record struct SdmOutcome(bool Faults, PageFaultErrorCode ErrorCode)
{
    public static SdmOutcome Allowed => new(false, PageFaultErrorCode.None);

    public override string ToString() => Faults ? $"#PF(0x{(uint)ErrorCode:x})" : "allowed";
}

/// <summary>
/// An oracle for IA-32e paging access rights written from the text of the Intel SDM Vol. 3A, §4.5 (XD reserved when
/// NXE=0), §4.6.1 (determination of access rights), §4.6.2 (protection keys) and §4.7 (page-fault error code).
/// It is deliberately structured like the SDM's prose (one branch per bullet) and shares nothing with the model.
/// </summary>
internal static class SdmAccessRights
{
    /// <summary>
    /// The outcome of an access through a translation whose entries (top level first, leaf last) all have P=1 and no
    /// reserved bits other than possibly XD.
    /// </summary>
    public static SdmOutcome Evaluate(IReadOnlyList<EntryRights> path, int protectionKey, RightsControls c, AccessKind kind, Privilege privilege)
    {
        bool fetch = kind == AccessKind.Execute;
        bool write = kind == AccessKind.Write;
        bool userAccess = privilege == Privilege.User;          // §4.6.1: CPL=3 explicit accesses
        bool implicitAccess = privilege == Privilege.ImplicitSupervisor;

        // §4.7 error-code bits that describe the access, not the rights.
        // "W/R flag (bit 1). If the access causing the page-fault exception was a write, this flag is 1".
        // "U/S flag (bit 2). If a user-mode access caused the page-fault exception, this flag is 1; it is 0 if a
        //  supervisor-mode access did so." Implicit supervisor-mode accesses are supervisor-mode accesses whatever the CPL.
        // "I/D flag (bit 4). This flag is 1 if (1) the access causing the page-fault exception was an instruction fetch;
        //  and (2) either (a) CR4.SMEP = 1; or (b) both (i) CR4.PAE = 1 and (ii) IA32_EFER.NXE = 1."
        var accessBits = PageFaultErrorCode.None;
        if (write) accessBits |= PageFaultErrorCode.Write;
        if (userAccess) accessBits |= PageFaultErrorCode.User;
        if (fetch && (c.Smep || c.Nxe)) accessBits |= PageFaultErrorCode.InstructionFetch;

        // §4.5 (Table 4-14 ... 4-20): bit 63 is XD if IA32_EFER.NXE = 1; otherwise it is reserved (must be 0).
        // A reserved bit gives #PF with P=1 and RSVD=1 (§4.7: "RSVD flag (bit 3) ... can be set only if bit 0 is also set").
        bool anyXdBit = false, allWritable = true, allUser = true;
        foreach (var e in path)
        {
            anyXdBit |= e.NoExecute;
            allWritable &= e.Writable;
            allUser &= e.User;
        }
        if (anyXdBit && !c.Nxe)
            return new SdmOutcome(true, accessBits | PageFaultErrorCode.Present | PageFaultErrorCode.ReservedBit);

        // §4.6.1: "If the U/S flag (bit 2) is 0 in at least one of the paging-structure entries, the address is a
        // supervisor-mode address. Otherwise, the address is a user-mode address."
        bool userModeAddress = allUser;
        bool executeDisabled = c.Nxe && anyXdBit;

        // §4.6.2 (paraphrased): protection keys apply only with CR4.PKE=1 in IA-32e paging, only to data accesses, only to
        // user-mode addresses; the key is bits 62:59 of the leaf. PKRU.ADi (bit 2i) = 1 forbids every data access (read
        // or write, user or supervisor); PKRU.WDi (bit 2i+1) = 1 forbids user-mode writes, and supervisor-mode writes
        // only when CR0.WP = 1.
        bool keyApplies = c.Pke && !fetch && userModeAddress;
        bool ad = ((c.Pkru >> (2 * protectionKey)) & 1) != 0;
        bool wd = ((c.Pkru >> (2 * protectionKey + 1)) & 1) != 0;
        bool keyPermitsRead = !keyApplies || !ad;
        bool keyPermitsWrite = !keyApplies || (!ad && !(wd && (userAccess || c.Wp)));

        // §4.6.1 SMAP: with CR4.SMAP=1, supervisor data accesses to user-mode addresses are allowed only when
        // "EFLAGS.AC = 1 and the access is explicit"; "If EFLAGS.AC = 0 or the access is implicit, data may not be
        // read/written from/to any user-mode address."
        bool smapAllowsUserData = !c.Smap || (c.Ac && !implicitAccess);

        bool allowed;
        if (!userAccess)
        {
            // "For supervisor-mode accesses:"
            if (kind == AccessKind.Read)
            {
                // "Data may be read (implicitly or explicitly) from any supervisor-mode address."
                // "Data reads from user-mode pages": SMAP as above, "with a protection key for which read access is permitted".
                allowed = !userModeAddress || (smapAllowsUserData && keyPermitsRead);
            }
            else if (write)
            {
                // "Data writes to supervisor-mode addresses": CR0.WP=0 -> any; CR0.WP=1 -> R/W=1 in every entry.
                // "Data writes to user-mode addresses": CR0.WP=0 -> any (SMAP, key permitting);
                //  CR0.WP=1 -> R/W=1 in every entry (SMAP, key permitting).
                bool rwAllows = !c.Wp || allWritable;
                allowed = userModeAddress ? smapAllowsUserData && rwAllows && keyPermitsWrite : rwAllows;
            }
            else
            {
                // "Instruction fetches from supervisor-mode addresses": NXE=0 -> any; NXE=1 -> XD=0 in every entry.
                // "Instruction fetches from user-mode addresses": SMEP=0 -> as for supervisor-mode addresses;
                //  "If CR4.SMEP = 1, instructions may not be fetched from any user-mode address."
                allowed = userModeAddress ? !c.Smep && !executeDisabled : !executeDisabled;
            }
        }
        else
        {
            // "For user-mode accesses:"
            if (kind == AccessKind.Read)
                allowed = userModeAddress && keyPermitsRead;   // "Data may not be read from any supervisor-mode address."
            else if (write)
                allowed = userModeAddress && allWritable && keyPermitsWrite;
            else
                allowed = userModeAddress && !executeDisabled; // "Instructions may not be fetched from any supervisor-mode address."
        }

        if (allowed) return SdmOutcome.Allowed;

        // §4.7 "PK flag (bit 5). This flag is 1 if (1) IA32_EFER.LMA = CR4.PKE = 1; (2) the access causing the page-fault
        // exception was a data access; (3) the linear address was a user-mode address with protection key i; and (5) the
        // PKRU register is such that either (a) ADi = 1; or (b) the following all hold: (i) WDi = 1; (ii) the access is
        // a write access; and (iii) either CR0.WP = 1 or the access causing the page-fault exception was a user-mode access."
        // The flag depends only on those conditions, so it is set even when another rule also denies the access.
        bool pk = c.Pke && !fetch && userModeAddress && (ad || (wd && write && (c.Wp || userAccess)));
        return new SdmOutcome(true, accessBits | PageFaultErrorCode.Present | (pk ? PageFaultErrorCode.ProtectionKey : 0));
    }

    /// <summary>"supervisor write", "user read", "implicit read", ...</summary>
    public static string Describe(AccessKind kind, Privilege privilege)
    {
        string who = privilege switch { Privilege.User => "user", Privilege.Supervisor => "supervisor", _ => "implicit-supervisor" };
        string what = kind switch { AccessKind.Read => "read", AccessKind.Write => "write", _ => "fetch" };
        return $"{who} {what}";
    }
}
