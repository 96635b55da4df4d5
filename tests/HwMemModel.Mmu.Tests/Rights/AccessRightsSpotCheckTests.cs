using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>
/// Hand-worked cases from SDM Vol. 3A §4.6/§4.7 with literal error codes. Each runs against the model and also against
/// the matrix oracle (<see cref="SdmAccessRights"/>), so a mistake in the oracle cannot hide behind the matrix.
/// </summary>
public sealed class AccessRightsSpotCheckTests
{
    private const ulong Va = 0x0000_0040_1234_5678UL;
    private const ulong Pa = 0x0300_0000UL;
    private const int Key = 9;
    private const uint Ad = 1u << (2 * Key), Wd = 2u << (2 * Key);

    private static readonly EntryRights Rw = new(true, true, false);    // user, writable
    private static readonly EntryRights Ro = new(false, true, false);   // user, read-only
    private static readonly EntryRights Sup = new(true, false, false);  // supervisor, writable
    private static readonly EntryRights SupRo = new(false, false, false);
    private static readonly EntryRights Xd = new(true, true, true);     // user, writable, execute-disable

    private static readonly RightsControls Base = new(Wp: true, Nxe: true, Smep: false, Smap: false, Ac: false, Pke: false, Pkru: 0);

    /// <summary>A case: PDE and PTE rights (PML4E/PDPTE permissive), controls, the access and the SDM outcome (null = allowed).</summary>
    public sealed record Spot(string Name, EntryRights Pde, EntryRights Pte, RightsControls Controls, AccessKind Kind, Privilege Privilege, uint? ErrorCode)
    {
        public override string ToString() => Name;
    }

    private static IEnumerable<Spot> Spots()
    {
        const AccessKind R = AccessKind.Read, W = AccessKind.Write, X = AccessKind.Execute;
        const Privilege S = Privilege.Supervisor, U = Privilege.User, I = Privilege.ImplicitSupervisor;
        yield return new("supervisor write to read-only supervisor page, WP=0: allowed", Rw, SupRo, Base with { Wp = false }, W, S, null);
        yield return new("supervisor write to read-only supervisor page, WP=1: 0x3", Rw, SupRo, Base, W, S, 0x3);
        yield return new("supervisor write to read-only user page, WP=0: allowed", Rw, Ro, Base with { Wp = false }, W, S, null);
        yield return new("user write to read-only page, WP=0: 0x7", Rw, Ro, Base with { Wp = false }, W, U, 0x7);
        yield return new("user write with R/W=0 only in the PDE: 0x7", Ro, Rw, Base, W, U, 0x7);
        yield return new("user read with U/S=0 only in the PDE: 0x5", Sup, Rw, Base, R, U, 0x5);
        yield return new("user fetch from supervisor page, NXE=0 SMEP=0: 0x5 without I/D", Sup, Rw, Base with { Nxe = false }, X, U, 0x5);
        yield return new("user fetch from supervisor page, NXE=1: 0x15", Sup, Rw, Base, X, U, 0x15);
        yield return new("supervisor fetch from XD page, NXE=1: 0x11", Rw, Xd, Base, X, S, 0x11);
        yield return new("user fetch with XD only in the PDE: 0x15", Xd, Rw, Base, X, U, 0x15);
        yield return new("XD while NXE=0 is a reserved bit: supervisor read 0x9", Rw, Xd, Base with { Nxe = false }, R, S, 0x9);
        yield return new("supervisor fetch from user page, SMEP=1 NXE=0: 0x11 (I/D set by SMEP)", Rw, Rw, Base with { Nxe = false, Smep = true }, X, S, 0x11);
        yield return new("supervisor fetch from supervisor page, SMEP=1: allowed", Rw, Sup, Base with { Smep = true }, X, S, null);
        yield return new("supervisor read of user page, SMAP=1 AC=0: 0x1", Rw, Rw, Base with { Smap = true }, R, S, 0x1);
        yield return new("supervisor read of user page, SMAP=1 AC=1: allowed", Rw, Rw, Base with { Smap = true, Ac = true }, R, S, null);
        yield return new("implicit read of user page at CPL3, SMAP=1 AC=1: 0x1 (U/S=0)", Rw, Rw, Base with { Smap = true, Ac = true }, R, I, 0x1);
        yield return new("implicit write of user page at CPL3, SMAP=1 AC=0: 0x3", Rw, Rw, Base with { Smap = true }, W, I, 0x3);
        yield return new("implicit read of user page, SMAP=0: allowed", Rw, Rw, Base, R, I, null);
        yield return new("implicit write to read-only supervisor page at CPL3, WP=1: 0x3", Rw, SupRo, Base, W, I, 0x3);
        yield return new("supervisor write to read-only user page, SMAP=1 AC=1 WP=1: 0x3", Rw, Ro, Base with { Smap = true, Ac = true }, W, S, 0x3);
        yield return new("user read, PKRU.AD: 0x25", Rw, Rw, Base with { Pke = true, Pkru = Ad }, R, U, 0x25);
        yield return new("user write, PKRU.WD: 0x27", Rw, Rw, Base with { Pke = true, Pkru = Wd }, W, U, 0x27);
        yield return new("user read, PKRU.WD: allowed", Rw, Rw, Base with { Pke = true, Pkru = Wd }, R, U, null);
        yield return new("supervisor write to user page, PKRU.WD, WP=1: 0x23", Rw, Rw, Base with { Pke = true, Pkru = Wd }, W, S, 0x23);
        yield return new("supervisor write to user page, PKRU.WD, WP=0: allowed", Rw, Rw, Base with { Pke = true, Pkru = Wd, Wp = false }, W, S, null);
        yield return new("supervisor read of user page, PKRU.AD: 0x21", Rw, Rw, Base with { Pke = true, Pkru = Ad }, R, S, 0x21);
        yield return new("supervisor write to user page, PKRU.AD, WP=0: 0x23", Rw, Rw, Base with { Pke = true, Pkru = Ad, Wp = false }, W, S, 0x23);
        yield return new("user fetch, PKRU.AD: allowed (keys do not apply to fetches)", Rw, Rw, Base with { Pke = true, Pkru = Ad }, X, U, null);
        yield return new("user read of supervisor page, PKRU.AD: 0x5 (keys apply only to user-mode addresses)", Sup, Rw, Base with { Pke = true, Pkru = Ad }, R, U, 0x5);
        yield return new("supervisor read of supervisor page, PKRU.AD: allowed", Rw, Sup, Base with { Pke = true, Pkru = Ad }, R, S, null);
        yield return new("user write to read-only page, PKRU.AD: 0x27 (PK with R/W)", Rw, Ro, Base with { Pke = true, Pkru = Ad }, W, U, 0x27);
        yield return new("user write to read-only page, PKRU.WD: 0x27", Rw, Ro, Base with { Pke = true, Pkru = Wd }, W, U, 0x27);
        yield return new("supervisor read of user page, SMAP=1 AC=0, PKRU.AD: 0x21 (PK with SMAP)", Rw, Rw, Base with { Smap = true, Pke = true, Pkru = Ad }, R, S, 0x21);
        yield return new("supervisor write to read-only user page, WP=1, PKRU.WD: 0x23", Rw, Ro, Base with { Pke = true, Pkru = Wd }, W, S, 0x23);
        yield return new("supervisor write to user page, SMAP=1 AC=0, WP=0, PKRU.WD: 0x3 (WD ignored with WP=0)", Rw, Rw, Base with { Smap = true, Wp = false, Pke = true, Pkru = Wd }, W, S, 0x3);
        yield return new("user write, PKRU with every other key disabled: allowed", Rw, Rw, Base with { Pke = true, Pkru = ~(Ad | Wd) }, W, U, null);
        yield return new("user write, PKE=0 with PKRU all ones: allowed", Rw, Rw, Base with { Pkru = 0xFFFF_FFFF }, W, U, null);
    }

    [TestCaseSource(nameof(Spots))]
    public void Model_gives_the_sdm_outcome(Spot s)
    {
        var rig = new RightsRig(PageSize.Size4K, Va, Pa);
        rig.WriteEntry(2, rig.NonLeafValue(2, s.Pde));
        ulong leaf = rig.LeafValue(s.Pte, Key);
        rig.WriteEntry(1, leaf);
        rig.Apply(s.Controls);
        rig.SetCplFor(s.Privilege);

        var f = rig.Mmu.Translate(Va, s.Kind, s.Privilege, out var t);

        if (s.ErrorCode is { } code)
        {
            Assert.That(f.Kind, Is.EqualTo(FaultKind.PageFault), f.ToString());
            Assert.That((uint)f.ErrorCode, Is.EqualTo(code), f.ToString());
            Assert.That(f.Address, Is.EqualTo(Va), "CR2");
            Assert.That(rig.ReadEntry(1), Is.EqualTo(leaf), "a faulting access leaves the PTE unchanged");
        }
        else
        {
            Assert.That(f.IsFault, Is.False, f.ToString());
            Assert.That(t.PhysicalAddress, Is.EqualTo(Pa | (Va & 0xFFF)));
            ulong want = leaf | RightsRig.A | (s.Kind == AccessKind.Write ? RightsRig.D : 0);
            Assert.That(rig.ReadEntry(1), Is.EqualTo(want), "A set, D only for a write");
        }
    }

    [TestCaseSource(nameof(Spots))]
    public void Matrix_oracle_gives_the_hand_worked_outcome(Spot s)
    {
        var path = new[] { EntryRights.Permissive, EntryRights.Permissive, s.Pde, s.Pte };
        var o = SdmAccessRights.Evaluate(path, Key, s.Controls, s.Kind, s.Privilege);
        Assert.That(o, Is.EqualTo(s.ErrorCode is { } c ? new SdmOutcome(true, (PageFaultErrorCode)c) : SdmOutcome.Allowed));
    }

    [Test]
    public void Supervisor_write_to_read_only_page_faults_only_with_wp()
    {
        var rig = new RightsRig(PageSize.Size4K, Va, Pa);
        rig.WriteEntry(1, rig.LeafValue(SupRo));
        rig.Apply(Base with { Wp = false });
        Assert.That(rig.Mmu.Translate(Va, AccessKind.Write, Privilege.Supervisor, out _).IsFault, Is.False);
        rig.WriteEntry(1, rig.LeafValue(SupRo));
        rig.Apply(Base);
        rig.Mmu.FlushAll();
        var f = rig.Mmu.Translate(Va, AccessKind.Write, Privilege.Supervisor, out _);
        Assert.That(f.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.Write));
    }

    [Test]
    public void Faulting_access_through_1g_leaf_leaves_the_leaf_unchanged()
    {
        // PLATFORM.md: QEMU 7.2 sets A on a 1 GiB leaf whose access then faults; the SDM/hardware leave it unchanged.
        var rig = new RightsRig(PageSize.Size1G, 0x0000_0080_0000_0123UL, 0x4000_0000UL);
        ulong leaf = rig.LeafValue(Ro);
        rig.WriteEntry(3, leaf);
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Write, Privilege.User, out _);
        Assert.That((uint)f.ErrorCode, Is.EqualTo(0x7u));
        Assert.That(rig.ReadEntry(3), Is.EqualTo(leaf), "no A, no D on the faulting 1 GiB leaf");
    }
}
