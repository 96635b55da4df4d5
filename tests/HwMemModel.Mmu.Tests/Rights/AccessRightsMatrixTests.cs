using System.Diagnostics;
using System.Text;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>
/// The access-rights matrix: leaf size × per-level R/W, U/S, XD × CR0.WP, EFER.NXE, CR4.SMEP/SMAP/PKE, EFLAGS.AC, PKRU ×
/// access kind × privilege, each case compared with <see cref="SdmAccessRights"/> (written from SDM Vol. 3A §4.6/§4.7):
/// fault or not, the whole #PF error code, CR2, and the leaf's A/D bits afterwards.
/// </summary>
public sealed class AccessRightsMatrixTests
{
    private const int MaxListed = 20;

    private static readonly (AccessKind Kind, Privilege Privilege)[] Accesses =
    [
        (AccessKind.Read, Privilege.Supervisor), (AccessKind.Write, Privilege.Supervisor), (AccessKind.Execute, Privilege.Supervisor),
        (AccessKind.Read, Privilege.User), (AccessKind.Write, Privilege.User), (AccessKind.Execute, Privilege.User),
        // Implicit supervisor-mode accesses (GDT/IDT/TSS...) are data accesses; there is no implicit instruction fetch.
        (AccessKind.Read, Privilege.ImplicitSupervisor), (AccessKind.Write, Privilege.ImplicitSupervisor),
    ];

    /// <summary>Addresses and protection keys per leaf size: one low-half and two high-half (sign-extended) addresses.</summary>
    private static (ulong Va, ulong Pa, int Key) Layout(PageSize size) => size switch
    {
        PageSize.Size4K => (0x0000_7F80_4020_3123UL, 0x0234_5000UL, 5),
        PageSize.Size2M => (0xFFFF_C900_1240_0456UL, 0x0260_0000UL, 15),
        _ => (0xFFFF_FF80_4000_0789UL, 0x4000_0000UL, 0),
    };

    /// <summary>Entry configurations, top level first: the leaf and the level above it take all 8 R/W-U/S-XD combinations,
    /// levels further up take a sample (all permissive, or one restriction, or several).</summary>
    private static List<EntryRights[]> PathConfigs(int levelsOnPath)
    {
        var all8 = Enumerable.Range(0, 8).Select(i => new EntryRights((i & 1) != 0, (i & 2) != 0, (i & 4) != 0)).ToArray();
        int sampled = levelsOnPath - 2;
        var samples = new List<EntryRights[]>();
        var perm = Enumerable.Repeat(EntryRights.Permissive, sampled).ToArray();
        samples.Add(perm);
        if (sampled > 0)
        {
            samples.Add(With(perm, 0, new EntryRights(false, true, false)));              // top level read-only
            samples.Add(With(perm, sampled - 1, new EntryRights(true, false, false)));    // lowest sampled level supervisor
            samples.Add(With(perm, 0, new EntryRights(true, true, true)));                // top level XD
        }
        if (sampled > 1)
        {
            var mixed = With(perm, 0, new EntryRights(true, false, false));
            samples.Add(With(mixed, sampled - 1, new EntryRights(false, true, true)));
        }
        var configs = new List<EntryRights[]>();
        foreach (var s in samples)
            foreach (var upper in all8)
                foreach (var leaf in all8)
                    configs.Add([.. s, upper, leaf]);
        return configs;

        static EntryRights[] With(EntryRights[] a, int i, EntryRights r)
        {
            var b = (EntryRights[])a.Clone();
            b[i] = r;
            return b;
        }
    }

    /// <summary>WP × NXE × SMEP × SMAP × AC × (PKE=0 with PKRU 0 or all-ones; PKE=1 with PKRU 0, ADk, WDk, ADk|WDk, every other key disabled).</summary>
    private static List<RightsControls> ControlConfigs(int key)
    {
        uint ad = 1u << (2 * key), wd = 2u << (2 * key);
        var pk = new (bool Pke, uint Pkru)[]
        {
            (false, 0), (false, 0xFFFF_FFFF),
            (true, 0), (true, ad), (true, wd), (true, ad | wd), (true, ~(ad | wd)),
        };
        var list = new List<RightsControls>();
        for (int bits = 0; bits < 32; bits++)
            foreach (var (pke, pkru) in pk)
                list.Add(new RightsControls((bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0, (bits & 8) != 0, (bits & 16) != 0, pke, pkru));
        return list;
    }

    [TestCase(PageSize.Size4K, false)]
    [TestCase(PageSize.Size2M, false)]
    [TestCase(PageSize.Size1G, false)]
    [TestCase(PageSize.Size4K, true)]
    public void Every_rights_combination_on_a_fresh_walk_matches_sdm(PageSize size, bool fiveLevel)
    {
        var (va, pa, key) = Layout(size);
        if (fiveLevel) (va, key) = (0x00AB_7F80_4020_3123UL, 11); // 57-bit address, PML5 index 0xAB
        var rig = new RightsRig(size, va, pa, fiveLevel);
        var levels = rig.PathLevels.ToArray();
        var paths = PathConfigs(levels.Length);
        var controls = ControlConfigs(key);
        var mismatches = new List<string>();
        int cases = 0, allowed = 0, walkMisses = 0, mismatchCount = 0;
        var sw = Stopwatch.StartNew();

        foreach (var path in paths)
        {
            for (int i = 0; i < levels.Length - 1; i++) rig.WriteEntry(levels[i], rig.NonLeafValue(levels[i], path[i]));
            ulong leafClean = rig.LeafValue(path[^1], key);
            foreach (var c in controls)
            {
                rig.Apply(c);
                foreach (var (kind, privilege) in Accesses)
                {
                    cases++;
                    rig.SetCplFor(privilege);
                    rig.WriteEntry(rig.LeafLevel, leafClean);
                    rig.Mmu.FlushAll();
                    long walks = rig.Mmu.Counters.Walks;
                    var fault = rig.Mmu.Translate(va, kind, privilege, out var t);
                    if (rig.Mmu.Counters.Walks != walks + 1) walkMisses++;
                    ulong leafAfter = rig.ReadEntry(rig.LeafLevel);
                    var expected = SdmAccessRights.Evaluate(path, key, c, kind, privilege);
                    if (!expected.Faults) allowed++;
                    string? why = Compare(expected, fault, t, va, pa, size, kind, leafClean, leafAfter);
                    if (why is not null && ++mismatchCount <= MaxListed)
                        mismatches.Add($"{size.Label()} {DescribePath(levels, path)} key={key} | {c} | {SdmAccessRights.Describe(kind, privilege)}: {why}");
                }
            }
        }
        sw.Stop();
        TestContext.Out.WriteLine($"{size.Label()}{(fiveLevel ? " 5-level" : "")}: {cases} cases ({allowed} allowed by the SDM, {cases - allowed} faulting), {paths.Count} entry configurations × {controls.Count} control states × {Accesses.Length} accesses, {sw.ElapsedMilliseconds} ms");
        Assert.Multiple(() =>
        {
            Assert.That(walkMisses, Is.Zero, "cases that did not walk the page tables after FlushAll");
            Assert.That(mismatchCount, Is.Zero, Report(mismatches, mismatchCount, cases));
        });
    }

    [TestCase(PageSize.Size4K)]
    [TestCase(PageSize.Size2M)]
    [TestCase(PageSize.Size1G)]
    public void Data_access_rights_through_a_cached_translation_match_sdm(PageSize size)
    {
        // SDM §4.10.2.2: a TLB entry caches the AND of R/W, the AND of U/S, the OR of XD and the protection key;
        // CR0.WP, CR4.SMAP, EFLAGS.AC and PKRU are applied when the entry is used. A supervisor read with SMAP off and
        // PKRU=0 caches the translation, then the control state of the case is applied (no invalidating change:
        // NXE, SMEP, PKE keep their values) and the access must be judged exactly as on a walk.
        var (va, pa, key) = Layout(size);
        var rig = new RightsRig(size, va, pa);
        var levels = rig.PathLevels.ToArray();
        var paths = PathConfigs(levels.Length);
        var controls = ControlConfigs(key);
        var mismatches = new List<string>();
        int cases = 0, readsFromTlb = 0, reads = 0, mismatchCount = 0;
        var sw = Stopwatch.StartNew();

        foreach (var path in paths)
        {
            for (int i = 0; i < levels.Length - 1; i++) rig.WriteEntry(levels[i], rig.NonLeafValue(levels[i], path[i]));
            ulong leafClean = rig.LeafValue(path[^1], key);
            foreach (var c in controls)
            {
                var warmControls = c with { Smap = false, Pkru = 0 };
                foreach (var (kind, privilege) in Accesses)
                {
                    if (kind == AccessKind.Execute) continue;
                    rig.WriteEntry(rig.LeafLevel, leafClean);
                    rig.Mmu.FlushAll();
                    rig.Apply(warmControls);
                    rig.Cpu.Cpl = 0;
                    var warm = rig.Mmu.Translate(va, AccessKind.Read, Privilege.Supervisor, out _);
                    var warmExpected = SdmAccessRights.Evaluate(path, key, warmControls, AccessKind.Read, Privilege.Supervisor);
                    if (warmExpected.Faults) continue; // XD with NXE=0: nothing can be cached; the walk matrix covers it
                    cases++;
                    ulong leafWarm = rig.ReadEntry(rig.LeafLevel);
                    if (warm.IsFault || leafWarm != (leafClean | RightsRig.A))
                    {
                        if (++mismatchCount <= MaxListed) mismatches.Add($"{size.Label()} {DescribePath(levels, path)} | {warmControls} | warm-up supervisor read: model {Show(warm)}, leaf 0x{leafWarm:x}; SDM allowed with A set");
                        continue;
                    }
                    rig.Apply(c);
                    rig.SetCplFor(privilege);
                    long walks = rig.Mmu.Counters.Walks;
                    var fault = rig.Mmu.Translate(va, kind, privilege, out var t);
                    if (kind == AccessKind.Read)
                    {
                        reads++;
                        if (rig.Mmu.Counters.Walks == walks) readsFromTlb++;
                    }
                    ulong leafAfter = rig.ReadEntry(rig.LeafLevel);
                    var expected = SdmAccessRights.Evaluate(path, key, c, kind, privilege);
                    string? why = Compare(expected, fault, t, va, pa, size, kind, leafWarm, leafAfter);
                    if (why is not null && ++mismatchCount <= MaxListed)
                        mismatches.Add($"{size.Label()} cached {DescribePath(levels, path)} key={key} | {c} | {SdmAccessRights.Describe(kind, privilege)}: {why}");
                }
            }
        }
        sw.Stop();
        TestContext.Out.WriteLine($"{size.Label()} cached: {cases} cases, {readsFromTlb}/{reads} reads served by the TLB, {sw.ElapsedMilliseconds} ms");
        Assert.Multiple(() =>
        {
            Assert.That(readsFromTlb, Is.GreaterThan(reads / 2), "most reads after the warm-up should hit the TLB (otherwise this matrix tests walks again)");
            Assert.That(mismatchCount, Is.Zero, Report(mismatches, mismatchCount, cases));
        });
    }

    /// <summary>Null when the model agrees with the SDM outcome, else what differs.</summary>
    private static string? Compare(SdmOutcome expected, Fault fault, Translation t, ulong va, ulong pa, PageSize size, AccessKind kind,
        ulong leafBefore, ulong leafAfter)
    {
        var problems = new List<string>(3);
        if (expected.Faults)
        {
            if (fault.Kind != FaultKind.PageFault || fault.ErrorCode != expected.ErrorCode)
                problems.Add($"model {Show(fault)}, SDM {expected}");
            else if (fault.Address != va)
                problems.Add($"CR2 0x{fault.Address:x}, expected 0x{va:x}");
            if (leafAfter != leafBefore)
                problems.Add($"faulting access changed the leaf 0x{leafBefore:x} -> 0x{leafAfter:x} (must stay unchanged)");
        }
        else
        {
            if (fault.IsFault)
                problems.Add($"model {Show(fault)}, SDM allowed");
            else
            {
                ulong wantPa = pa | (va & (size.Bytes() - 1));
                if (t.PhysicalAddress != wantPa || t.PageSize != size)
                    problems.Add($"translated to 0x{t.PhysicalAddress:x} ({t.PageSize.Label()}), expected 0x{wantPa:x} ({size.Label()})");
            }
            ulong want = leafBefore | RightsRig.A | (kind == AccessKind.Write ? RightsRig.D : 0);
            if (!fault.IsFault && leafAfter != want)
                problems.Add($"leaf after the allowed access is 0x{leafAfter:x}, expected 0x{want:x} (A{(kind == AccessKind.Write ? " and D" : " only")})");
        }
        return problems.Count == 0 ? null : string.Join("; ", problems);
    }

    private static string Show(Fault f) => f.Kind switch
    {
        FaultKind.None => "allowed",
        FaultKind.PageFault => $"#PF(0x{(uint)f.ErrorCode:x}) [{f.Rule}]",
        _ => $"{f.Kind} [{f.Rule}]",
    };

    private static string DescribePath(int[] levels, EntryRights[] path)
        => string.Join(' ', levels.Select((l, i) => $"{PageGeometry.EntryName(l)}[{path[i]}]"));

    private static string Report(List<string> listed, int mismatchCount, int cases)
    {
        if (mismatchCount == 0) return "";
        var sb = new StringBuilder();
        sb.AppendLine($"{mismatchCount} of {cases} cases disagree with the SDM; the first {listed.Count}:");
        foreach (var m in listed) sb.AppendLine("  " + m);
        return sb.ToString();
    }
}
