using FsCheck;
using FsCheck.Fluent;
using HwMemModel.Mmu;
using Microsoft.FSharp.Core;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// Property tests: when software follows the SDM's invalidation rules (§4.10.4.2), caching is invisible. Random
/// page tables (4K/2M/1G pages, random R/W, U/S, XD, G, PWT/PCD, two address spaces with PCIDs and a shared global
/// half) and random operations (accesses of every kind and privilege, leaf and upper-level changes each followed by
/// a sufficient invalidation, CR3 switches with and without bit 63, CR4.PGE/SMEP/SMAP, CR0.WP and EFLAGS.AC toggles)
/// give the same fault, error code, CR2, physical address, page size, memory type and data on a machine with TLBs and
/// paging-structure caches as on one with <see cref="TlbGeometry.None"/>, and the same A/D bits in RAM at the end.
/// Runs are deterministic: a fixed replay seed.
/// </summary>
public sealed class TlbEquivalencePropertyTests
{
    private const int MaxTest = 250;

    private static Config Deterministic(ulong seed) => Config.QuickThrowOnFailure
        .WithMaxTest(MaxTest)
        .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(seed, 0x9E37_79B9_7F4A_7C15UL), FSharpOption<int>.None)));

    private static Gen<TlbOp> OpGen()
    {
        var target = Gen.Frequency((4, Gen.Choose(0, 5)), (1, Gen.Choose(0, 1_000_000)));
        var code = Gen.Frequency(
            (60, Gen.Constant(TlbOp.Access)),
            (6, Gen.Constant(TlbOp.LeafChange)),
            (2, Gen.Constant(TlbOp.UpperChange)),
            (3, Gen.Constant(TlbOp.SwitchCr3)),
            (1, Gen.Constant(TlbOp.ReloadCr3)),
            (1, Gen.Constant(TlbOp.TogglePge)),
            (1, Gen.Constant(TlbOp.ToggleSmep)),
            (1, Gen.Constant(TlbOp.ToggleSmap)),
            (1, Gen.Constant(TlbOp.ToggleWp)),
            (1, Gen.Constant(TlbOp.ToggleAc)),
            (1, Gen.Constant(TlbOp.TogglePcide)));
        return from c in code
               from a in target
               from b in Gen.Choose(0, 1_000_000)
               from x in Gen.Choose(0, 1_000_000)
               from d in Gen.Choose(0, 1_000_000)
               select new TlbOp(c, a, b, x, d);
    }

    private static Arbitrary<TlbScenario> Scenarios()
    {
        var gen = from seed in Gen.Choose(0, int.MaxValue)
                  from five in Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true)))
                  from pcide in Gen.Elements(true, false)
                  from pge in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
                  from smep in Gen.Elements(true, false)
                  from n in Gen.Choose(40, 160)
                  from ops in Gen.ArrayOf(OpGen(), n)
                  select new TlbScenario(seed, five, pcide, pge, smep, ops);
        return Arb.From(gen, Shrink);
    }

    /// <summary>Shrinks by dropping halves, quarters and single operations of the sequence (layout kept).</summary>
    private static IEnumerable<TlbScenario> Shrink(TlbScenario s)
    {
        int n = s.Ops.Length;
        for (int chunk = n / 2; chunk >= 1; chunk /= 2)
            for (int start = 0; start + chunk <= n; start += chunk)
                yield return s with { Ops = [.. s.Ops[..start], .. s.Ops[(start + chunk)..]] };
    }

    private static void CheckEquivalent(TlbScenario s, TlbGeometry geometry, string name)
    {
        var reference = TlbScenarioRunner.Run(s, TlbGeometry.None);
        var cached = TlbScenarioRunner.Run(s, geometry);
        string? diff = TlbScenarioRunner.Compare(reference, cached);
        if (diff is not null) throw new InvalidOperationException($"{name} geometry differs from TlbGeometry.None: {diff}");
    }

    [Test]
    public void Default_geometry_gives_the_same_results_as_no_tlb_when_software_flushes_properly()
    {
        Check.One(Deterministic(0x7110_0001), Prop.ForAll(Scenarios(), s => CheckEquivalent(s, TlbGeometry.Default, "Default")));
    }

    [Test]
    public void Tiny_geometry_gives_the_same_results_as_no_tlb_when_software_flushes_properly()
    {
        // Tiny: 2-way sets (frequent LRU eviction), no STLB, 1 GiB pages fractured into 2 MiB pieces in the ITLB.
        Check.One(Deterministic(0x7110_0002), Prop.ForAll(Scenarios(), s => CheckEquivalent(s, TlbGeometry.Tiny, "Tiny")));
    }

    /// <summary>
    /// An odd geometry: the DTLB holds only 4 KiB entries (2 MiB and 1 GiB pages fractured into 4 KiB pieces, served
    /// by the fast path), the ITLB only 2 MiB entries (4 KiB pages not cached there at all), the STLB only 1 GiB pages,
    /// tiny paging-structure caches.
    /// </summary>
    internal static readonly TlbGeometry Odd = new()
    {
        InstructionL1 = [new TlbArrayConfig("I2M", 4, 2, PageSize.Size2M)],
        DataL1 = [new TlbArrayConfig("D4K", 4, 2, PageSize.Size4K)],
        UnifiedL2 = [new TlbArrayConfig("S1G", 2, 1, PageSize.Size1G)],
        PdCacheEntries = 1, PdptCacheEntries = 1, Pml4CacheEntries = 1, Pml5CacheEntries = 1,
    };

    [Test]
    public void Odd_geometry_gives_the_same_results_as_no_tlb_when_software_flushes_properly()
    {
        Check.One(Deterministic(0x7110_0005), Prop.ForAll(Scenarios(), s => CheckEquivalent(s, Odd, "Odd")));
    }

    [Test]
    public void Coherence_checker_reports_nothing_when_software_flushes_properly()
    {
        Check.One(Deterministic(0x7110_0003), Prop.ForAll(Scenarios(), s =>
        {
            foreach (var (g, name) in new[] { (TlbGeometry.Default, "Default"), (TlbGeometry.Tiny, "Tiny"), (Odd, "Odd") })
            {
                var run = TlbScenarioRunner.Run(s, g, checking: true);
                if (run.Stale.Count != 0)
                    throw new InvalidOperationException($"{name}: {run.Stale.Count} stale-translation event(s); first: {run.Stale[0].Description}");
            }
        }));
    }

    // ------------------------------------------------------------------ the properties can fail

    private static IEnumerable<TlbScenario> FixedScenarios()
    {
        return Gen.Sample(Scenarios().Generator, 20, new Rnd(0x7110_0004UL, 0x9E37_79B9_7F4A_7C15UL), 50);
    }

    [Test]
    public void Equivalence_check_detects_omitted_flushes()
    {
        int differing = FixedScenarios().Count(s =>
            TlbScenarioRunner.Compare(TlbScenarioRunner.Run(s, TlbGeometry.None, omitFlushes: true),
                                      TlbScenarioRunner.Run(s, TlbGeometry.Default, omitFlushes: true)) is not null);
        Assert.That(differing, Is.GreaterThan(0), "without the flushes, cached translations must show through in some scenario");
    }

    [Test]
    public void Coherence_checker_reports_omitted_flushes()
    {
        int withEvents = FixedScenarios().Count(s => TlbScenarioRunner.Run(s, TlbGeometry.Default, checking: true, omitFlushes: true).Stale.Count > 0);
        Assert.That(withEvents, Is.GreaterThan(0));
    }
}
