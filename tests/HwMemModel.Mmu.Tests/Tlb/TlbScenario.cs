using System.Text;
using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>One abstract operation; its integer fields are interpreted against the scenario's layout.</summary>
internal sealed record TlbOp(int Code, int A, int B, int C, int D)
{
    public const int Access = 0, LeafChange = 1, UpperChange = 2, SwitchCr3 = 3, ReloadCr3 = 4,
        TogglePge = 5, ToggleSmep = 6, ToggleSmap = 7, ToggleWp = 8, ToggleAc = 9, TogglePcide = 10;

    public override string ToString() => $"({Code},{A},{B},{C},{D})";
}

/// <summary>A random machine: a page-table layout seed, initial control state and a sequence of operations.</summary>
internal sealed record TlbScenario(int LayoutSeed, bool FiveLevel, bool Pcide, bool Pge, bool Smep, TlbOp[] Ops)
{
    public override string ToString()
        => $"TlbScenario(seed {LayoutSeed}, {(FiveLevel ? 5 : 4)}-level, PCIDE={Pcide}, PGE={Pge}, SMEP={Smep}, {Ops.Length} ops: {string.Join(' ', Ops.Select(o => o.ToString()))})";
}

/// <summary>A leaf of the layout: which tree holds it (0 = A private, 1 = B private, 2 = shared), its page and frame.</summary>
internal sealed record LayoutLeaf(int Tree, ulong Va, PageSize Size, ulong Pa, PteFlags Flags);

/// <summary>
/// The page-table layout of a scenario, derived from its seed: two address spaces A and B with private mappings in
/// PML4 slots 0 and 1 (non-global; mostly the same pages in A and B but with their own frames and flags) and a shared
/// kernel half in root slot 511 whose next table (and everything below it) both roots reference, so global pages are
/// identical in both address spaces, as the SDM requires of software that uses global pages (§4.10.2.4). With 5-level
/// paging the private half sits under PML5E 0 and the shared half under PML5E 511.
/// </summary>
internal sealed class TlbLayout
{
    public TlbLayout(int seed)
    {
        var r = new Random(seed);
        // Pass 0 builds the private halves of A and B with one structure (same pages, each present in A, in B or in
        // both, with independent frames and flags: the same linear address translates differently per PCID);
        // pass 1 builds the shared half.
        for (int pass = 0; pass < 2; pass++)
        {
            int[] pml4s = pass == 1 ? [511] : [0, 1];
            int[] trees = pass == 1 ? [2] : [0, 1];
            void Leaf(ulong va, PageSize size, Func<ulong> frame)
            {
                foreach (int tree in trees)
                    if (trees.Length == 1 || r.Next(6) != 0)
                        Leaves.Add(new LayoutLeaf(tree, va, size, frame(), Flags(r, tree)));
            }
            foreach (int pml4 in pml4s)
            {
                for (int pdpt = 0; pdpt < 2; pdpt++)
                {
                    int k = r.Next(8);
                    ulong base1 = Va(pml4, pdpt, 0, 0);
                    if (k == 0) continue;
                    if (k == 1) { Leaf(base1, PageSize.Size1G, () => (ulong)(1 + r.Next(3)) << 30); continue; }
                    for (int pd = 0; pd < 3; pd++)
                    {
                        int k2 = r.Next(6);
                        ulong base2 = Va(pml4, pdpt, pd, 0);
                        if (k2 == 0) continue;
                        if (k2 <= 2) { Leaf(base2, PageSize.Size2M, () => TlbRig.Frames2M + ((ulong)r.Next(64) << 21)); continue; }
                        for (int pt = 0; pt < 5; pt++)
                            if (r.Next(4) != 0)
                                Leaf(Va(pml4, pdpt, pd, pt), PageSize.Size4K, () => TlbRig.Frames4K + ((ulong)r.Next(0x1000) << 12));
                    }
                }
                // A few addresses in this half that may or may not be mapped.
                for (int i = 0; i < 2; i++)
                    Probes.Add(Va(pml4, r.Next(3), r.Next(4), r.Next(8)) + (ulong)r.Next(512) * 8);
            }
        }
        Probes.InsertRange(0, Leaves.Select(l => l.Va).Distinct());
        Probes.AddRange(Special);
        // Shuffle so that the low target indices (used most) mix trees and sizes.
        for (int i = Probes.Count - 1; i > 0; i--)
        {
            int j = r.Next(i + 1);
            (Probes[i], Probes[j]) = (Probes[j], Probes[i]);
        }
    }

    /// <summary>Probes used as they are: non-canonical with 48-bit addresses (canonical, unmapped, with 57-bit ones), and non-canonical with both.</summary>
    public static readonly ulong[] Special = [0x0000_8000_0000_0000, 0x0100_0000_0000_0000];

    public List<LayoutLeaf> Leaves { get; } = [];
    public List<ulong> Probes { get; } = [];

    private static ulong Va(int pml4, int pdpt, int pd, int pt)
    {
        ulong va = ((ulong)pml4 << 39) | ((ulong)pdpt << 30) | ((ulong)pd << 21) | ((ulong)pt << 12);
        return (va & (1UL << 47)) != 0 ? va | 0xFFFF_0000_0000_0000 : va;
    }

    private static PteFlags Flags(Random r, int tree)
    {
        var f = PteFlags.None;
        if (r.Next(10) < 7) f |= PteFlags.Writable;
        if (r.Next(2) == 0) f |= PteFlags.User;
        if (r.Next(4) == 0) f |= PteFlags.NoExecute;
        if (tree == 2 && r.Next(2) == 0) f |= PteFlags.Global;
        if (r.Next(7) == 0) f |= PteFlags.WriteThrough;
        if (r.Next(7) == 0) f |= PteFlags.CacheDisable;
        return f;
    }
}

/// <summary>What one run of a scenario produced.</summary>
internal sealed record TlbRunResult(List<string> Log, byte[] TablesA, byte[] TablesB, IReadOnlyList<StaleTranslationEvent> Stale, long TlbHits, long Walks);

/// <summary>
/// Runs a <see cref="TlbScenario"/> on a fresh machine with a given TLB geometry. Every paging-structure change is
/// followed by an invalidation that the SDM (§4.10.4.2) makes sufficient for it, chosen by the op among the
/// sufficient ones, unless <c>omitFlushes</c> (used only to show that the comparison can fail).
/// </summary>
internal sealed class TlbScenarioRunner
{
    private const ulong PoolA = 0x100_0000, PoolB = 0x200_0000, PoolSize = 0x100_0000;
    private const ulong A = 1UL << 5;

    private readonly TlbScenario _s;
    private readonly TlbLayout _layout;
    private readonly bool _omitFlushes;
    private readonly PhysicalBus _bus;
    private readonly PageTableBuilder _treeA, _treeB;
    private readonly CpuContext _cpu;
    private readonly ulong[][] _entryPa;        // per leaf: index = level, entry address (level 4 of shared: root A's)
    private readonly List<string> _log = [];
    private readonly int _levels;
    private bool _pcide;
    private int _cur;                            // 0 = A, 1 = B

    private TlbScenarioRunner(TlbScenario s, TlbLayout layout, TlbGeometry geometry, bool checking, bool omitFlushes)
    {
        _s = s;
        _layout = layout;
        _omitFlushes = omitFlushes;
        _bus = new PhysicalBus();
        _bus.AddRam("ram", 0, 0x1_0000_0000);
        _treeA = new PageTableBuilder(_bus, PoolA, PoolSize, s.FiveLevel);
        _treeB = new PageTableBuilder(_bus, PoolB, PoolSize, s.FiveLevel);
        _levels = s.FiveLevel ? 5 : 4;
        foreach (var leaf in layout.Leaves)
            (leaf.Tree == 1 ? _treeB : _treeA).Map(leaf.Va, leaf.Pa, leaf.Size, leaf.Flags);
        // Shared half: root B's entry 511 references root A's next table; A preset in both so that a global TLB entry
        // serving address space B without a walk leaves the same bits as a walk would.
        ulong k = Peek(_treeA.Root + 511 * 8);
        if ((k & 1) != 0) k |= A;
        Poke(_treeA.Root + 511 * 8, k);
        Poke(_treeB.Root + 511 * 8, k);
        _entryPa = layout.Leaves.Select(l =>
        {
            var tree = l.Tree == 1 ? _treeB : _treeA;
            var pas = new ulong[6];
            for (int level = _levels; level >= l.Size.LeafLevel(); level--)
                pas[level] = tree.EntryAddress(l.Va, level) ?? throw new InvalidOperationException("layout path missing");
            return pas;
        }).ToArray();

        _cpu = new CpuContext(_bus, 0, null, geometry);
        _cpu.Mmu.CoherenceChecking = checking;
        _cpu.EnterLongMode(_treeA.Root, s.FiveLevel, (s.Pge ? Cr4.PGE : 0) | (s.Smep ? Cr4.SMEP : 0) | (s.Pcide ? Cr4.PCIDE : 0));
        _pcide = s.Pcide;
        if (s.Pcide) Must(_cpu.WriteCr3(_treeA.Root | 1));
    }

    public static TlbRunResult Run(TlbScenario s, TlbGeometry geometry, bool checking = false, bool omitFlushes = false)
    {
        var layout = new TlbLayout(s.LayoutSeed);
        var run = new TlbScenarioRunner(s, layout, geometry, checking, omitFlushes);
        for (int i = 0; i < s.Ops.Length; i++) run.Step(i, s.Ops[i]);
        var mmu = run._cpu.Mmu;
        return new TlbRunResult(run._log, run.Tables(PoolA, run._treeA), run.Tables(PoolB, run._treeB), mmu.StaleTranslations.ToList(),
            mmu.InstructionTlb.TotalHits + mmu.DataTlb.TotalHits + mmu.UnifiedTlb.TotalHits, mmu.Counters.Walks);
    }

    /// <summary>Compares two runs; null when identical, else a description of the first difference.</summary>
    public static string? Compare(TlbRunResult reference, TlbRunResult other)
    {
        int n = Math.Min(reference.Log.Count, other.Log.Count);
        for (int i = 0; i < n; i++)
            if (reference.Log[i] != other.Log[i])
                return $"first difference at log line {i}:\n  no TLB : {reference.Log[i]}\n  cached : {other.Log[i]}\n"
                    + $"  preceding: {string.Join(" | ", reference.Log.Skip(Math.Max(0, i - 6)).Take(Math.Min(6, i)))}";
        if (reference.Log.Count != other.Log.Count) return $"log lengths differ: {reference.Log.Count} vs {other.Log.Count}";
        foreach (var (name, x, y, pool) in new[] { ("A", reference.TablesA, other.TablesA, PoolA), ("B", reference.TablesB, other.TablesB, PoolB) })
        {
            if (x.Length != y.Length) return $"tree {name}: table counts differ";
            for (int off = 0; off < x.Length; off += 8)
            {
                ulong ex = BitConverter.ToUInt64(x, off), ey = BitConverter.ToUInt64(y, off);
                if (ex != ey)
                    return $"tree {name}: paging-structure entry at PA 0x{pool + (ulong)off:x} is 0x{ex:x} without TLB but 0x{ey:x} with it (A/D bits differ: 0x{(ex ^ ey):x})";
            }
        }
        return null;
    }

    private byte[] Tables(ulong pool, PageTableBuilder tree)
    {
        var bytes = new byte[tree.TablesAllocated * 0x1000];
        _bus.ReadBytes(pool, bytes, BusAttributes.Host);
        return bytes;
    }

    private ushort Pcid(int tree) => _pcide ? (ushort)(tree + 1) : (ushort)0;
    private ulong Root(int tree) => tree == 0 ? _treeA.Root : _treeB.Root;
    private ulong Peek(ulong pa) { _bus.Read(pa, 8, out ulong v, BusAttributes.Host); return v; }
    private void Poke(ulong pa, ulong v) => _bus.Write(pa, 8, v, BusAttributes.Host);

    private static void Must(Fault f)
    {
        if (f.IsFault) throw new InvalidOperationException($"control write faulted: {f}");
    }

    private void Step(int i, TlbOp op)
    {
        switch (op.Code)
        {
            case TlbOp.Access: DoAccess(i, op); break;
            case TlbOp.LeafChange: DoLeafChange(i, op); break;
            case TlbOp.UpperChange: DoUpperChange(i, op); break;
            case TlbOp.SwitchCr3:
                _cur ^= 1;
                Must(_cpu.WriteCr3(Root(_cur) | Pcid(_cur) | (_pcide && op.A % 2 == 1 ? Cr3.NoFlush : 0)));
                _log.Add($"{i}: CR3 -> tree {_cur}");
                break;
            case TlbOp.ReloadCr3:
                Must(_cpu.WriteCr3(Root(_cur) | Pcid(_cur) | (_pcide && op.A % 2 == 1 ? Cr3.NoFlush : 0)));
                _log.Add($"{i}: CR3 reload");
                break;
            case TlbOp.TogglePge: _cpu.SetCr4(_cpu.Cr4Value ^ Cr4.PGE); _log.Add($"{i}: PGE^"); break;
            case TlbOp.ToggleSmep: _cpu.SetCr4(_cpu.Cr4Value ^ Cr4.SMEP); _log.Add($"{i}: SMEP^"); break;
            case TlbOp.ToggleSmap: _cpu.SetCr4(_cpu.Cr4Value ^ Cr4.SMAP); _log.Add($"{i}: SMAP^"); break;
            case TlbOp.ToggleWp: _cpu.SetCr0(_cpu.Cr0Value ^ Cr0.WP); _log.Add($"{i}: WP^"); break;
            case TlbOp.TogglePcide: TogglePcide(i, op); break;
            default: _cpu.AlignmentCheck = !_cpu.AlignmentCheck; _log.Add($"{i}: AC^"); break;
        }
    }

    /// <summary>
    /// PCIDE 1 to 0 invalidates everything; 0 to 1 needs CR3[11:0] = 0, so CR3 is loaded with PCID 0 first and then
    /// with the tree's own PCID at once, so that PCID 0 is never current while PCIDE=1 (its leftovers are never used).
    /// </summary>
    private void TogglePcide(int i, TlbOp op)
    {
        if (_pcide)
        {
            _cpu.SetCr4(_cpu.Cr4Value & ~Cr4.PCIDE);
            _pcide = false;
        }
        else
        {
            Must(_cpu.WriteCr3(Root(_cur)));
            Must(_cpu.WriteCr4(_cpu.Cr4Value | Cr4.PCIDE));
            _pcide = true;
            Must(_cpu.WriteCr3(Root(_cur) | Pcid(_cur) | (op.A % 2 == 1 ? Cr3.NoFlush : 0)));
        }
        _log.Add($"{i}: PCIDE -> {_pcide}");
    }

    private void DoAccess(int i, TlbOp op)
    {
        ulong probe = _layout.Probes[op.A % _layout.Probes.Count];
        var leaf = _layout.Leaves.FirstOrDefault(l => l.Va == probe);
        ulong pageBytes = leaf?.Size.Bytes() ?? 0x1000;
        ulong pageBase = probe & ~(pageBytes - 1);
        var kind = (AccessKind)(op.C % 3);
        var priv = (op.C / 3 % 20) switch { < 12 => Privilege.Supervisor, < 19 => Privilege.User, _ => Privilege.ImplicitSupervisor };
        int size = 1 << (op.D % 4);
        bool crossing = op.D % 16 == 15;
        ulong va = crossing ? pageBase + pageBytes - 4 : pageBase + (((ulong)op.B * 0x1000 + (ulong)(op.C % 512) * 8) & (pageBytes - 1));
        if (TlbLayout.Special.Contains(probe)) va = probe;
        bool viaApi = crossing || op.D % 4 == 3;
        string what = $"{i}: {kind} {priv} {size}B 0x{va:x}";
        if (viaApi)
        {
            AccessResult r;
            ulong value = 0;
            if (kind == AccessKind.Write) r = _cpu.Mmu.Write(va, size, (ulong)i * 0x0101_0101_0101_0101UL, priv);
            else r = _cpu.Mmu.Read(va, size, priv, out value, kind);
            _log.Add($"{what} api -> {Describe(r.Fault)} bus={r.BusStatus} v=0x{value:x}");
            return;
        }
        var f = _cpu.Mmu.Translate(va, kind, priv, out var t);
        if (f.IsFault) { _log.Add($"{what} -> {Describe(f)}"); return; }
        ulong v = 0;
        if (kind == AccessKind.Write) _bus.Write(t.PhysicalAddress, size, (ulong)i * 0x0101_0101_0101_0101UL, BusAttributes.Cpu(0));
        else _bus.Read(t.PhysicalAddress, size, out v, BusAttributes.Cpu(0));
        _log.Add($"{what} -> pa=0x{t.PhysicalAddress:x} {t.PageSize} {t.MemoryType} v=0x{v:x}");
    }

    private static string Describe(Fault f) => f.IsFault ? $"{f.Kind} ec=0x{(uint)f.ErrorCode:x} cr2=0x{f.Address:x}" : "ok";

    private void DoLeafChange(int i, TlbOp op)
    {
        int index = op.A % _layout.Leaves.Count;
        var leaf = _layout.Leaves[index];
        int level = leaf.Size.LeafLevel();
        ulong pa = _entryPa[index][level];
        ulong raw = Peek(pa);
        ulong addrMask = 0x000F_FFFF_FFFF_F000UL & ~(leaf.Size.Bytes() - 1);
        int change = op.B % 8;
        if (change == 3 && leaf.Tree != 2) change = 5;      // G only in the shared half
        ulong updated = change switch
        {
            0 => raw ^ (ulong)PteFlags.Writable,
            1 => raw ^ (ulong)PteFlags.User,
            2 => raw ^ (ulong)PteFlags.NoExecute,
            3 => raw ^ (ulong)PteFlags.Global,
            4 => raw ^ (ulong)PteFlags.Present,
            5 or 6 => (raw & ~addrMask) | NewFrame(leaf.Size, op.B / 8),
            _ => raw ^ (op.B / 8 % 3 == 0 ? (ulong)PteFlags.WriteThrough : op.B / 8 % 3 == 1 ? (ulong)PteFlags.CacheDisable : (ulong)(PteFlags.WriteThrough | PteFlags.CacheDisable)),
        };
        Poke(pa, updated);
        ulong addr = leaf.Va + (((ulong)op.D * 0x1000) & (leaf.Size.Bytes() - 1));
        string flush = Flush(leaf.Tree, upper: false, addr, op.C);
        _log.Add($"{i}: leaf {leaf.Size} 0x{leaf.Va:x} tree {leaf.Tree}: 0x{raw:x} -> 0x{updated:x}; {flush}");
    }

    private void DoUpperChange(int i, TlbOp op)
    {
        int index = op.A % _layout.Leaves.Count;
        var leaf = _layout.Leaves[index];
        int leafLevel = leaf.Size.LeafLevel();
        int level = leafLevel + 1 + op.B % (_levels - leafLevel);
        ulong bit = (op.B / 4 % 4) switch
        {
            0 => (ulong)PteFlags.Writable,
            1 => (ulong)PteFlags.User,
            2 => (ulong)PteFlags.NoExecute,
            _ => (ulong)PteFlags.Present,
        };
        ulong pa = _entryPa[index][level];
        ulong raw = Peek(pa);
        Poke(pa, raw ^ bit);
        if (leaf.Tree == 2 && level == _levels) Poke(_treeB.Root + 511 * 8, raw ^ bit);   // both roots' entry 511 is shared
        string flush = Flush(leaf.Tree, upper: true, leaf.Va, op.C);
        _log.Add($"{i}: {PageGeometry.EntryName(level)} of 0x{leaf.Va:x} tree {leaf.Tree}: ^0x{bit:x}; {flush}");
    }

    private static ulong NewFrame(PageSize size, int n) => size switch
    {
        PageSize.Size4K => TlbRig.Frames4K + ((ulong)(n % 0x1000) << 12),
        PageSize.Size2M => TlbRig.Frames2M + ((ulong)(n % 64) << 21),
        _ => (ulong)(1 + n % 3) << 30,
    };

    /// <summary>Applies one invalidation sufficient (SDM Vol. 3A §4.10.4.2) for a change in <paramref name="tree"/>.</summary>
    private string Flush(int tree, bool upper, ulong addr, int choice)
    {
        if (_omitFlushes) return "no flush (omitted)";
        bool pge = (_cpu.Cr4Value & Cr4.PGE) != 0;
        var mmu = _cpu.Mmu;
        var options = new List<(string Name, Action Do)>();
        void Add(string name, Action a) => options.Add((name, a));
        void Type2() => Must(mmu.Invpcid(2, 0));
        void Type3() => Must(mmu.Invpcid(3, 0));
        void PgeTwice() { _cpu.SetCr4(_cpu.Cr4Value ^ Cr4.PGE); _cpu.SetCr4(_cpu.Cr4Value ^ Cr4.PGE); }
        void Reload() => Must(_cpu.WriteCr3(Root(_cur) | Pcid(_cur)));

        if (tree != 2)
        {
            ushort p = Pcid(tree);
            bool current = tree == _cur;
            if (!_pcide && !current)
            {
                Add("none needed (other tree, PCIDE=0: its entries went with the CR3 load)", () => { });
            }
            else
            {
                if (!upper)
                {
                    if (current) Add("INVLPG", () => mmu.Invlpg(addr));
                    Add("INVPCID address", () => Must(mmu.Invpcid(0, p, addr)));
                }
                if (current) Add("MOV CR3 reload", Reload);
                Add("INVPCID single context", () => Must(mmu.Invpcid(1, p)));
                Add("INVPCID all except globals", Type3);
            }
        }
        else
        {
            ushort other = Pcid(_cur ^ 1);
            if (!upper)
                Add("INVLPG (+ INVPCID address for the other PCID)", () =>
                {
                    mmu.Invlpg(addr);
                    if (_pcide) Must(mmu.Invpcid(0, other, addr));
                });
            if (!pge)
            {
                Add("INVPCID all except globals (PGE=0)", Type3);
                Add("MOV CR3 reload (+ INVPCID single context for the other PCID) (PGE=0)", () =>
                {
                    Reload();
                    if (_pcide) Must(mmu.Invpcid(1, other));
                });
            }
        }
        Add("INVPCID all incl. globals", Type2);
        Add("PGE off/on", PgeTwice);
        // Mostly the most precise sufficient invalidation (listed first), so that the TLBs stay populated.
        var chosen = choice % 4 != 0 ? options[0] : options[choice / 4 % options.Count];
        chosen.Do();
        return chosen.Name;
    }
}
