using System.CommandLine;
using System.Globalization;
using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Cli;

/// <summary>
/// <c>hwmem script FILE</c>: runs a small script of machine operations line by line and prints what each did — the
/// course labs' format (docs/labs/). A bare machine lets you build page tables by hand (raw entries with
/// <c>poke</c>, or <c>map</c>), switch paging on, make accesses and explain them, change entries and flush (or not,
/// and watch the coherence checker); a kernel machine boots the kernel model for slab caches and their debug checks.
/// Every line is echoed with "&gt; " before its result. A bad line stops the script with exit status 2 naming the
/// line number and what is accepted.
/// </summary>
public static class ScriptCommand
{
    /// <summary>The script's commands and their forms, for errors and --help.</summary>
    public const string Syntax = """
        machine bare [RAM]                     a bus with RAM (default 64M) and CPU 0, paging off
        machine kernel [RAM]                   the default machine with the kernel model booted (default 128M)
        poke PA VALUE                          write 8 raw bytes at a physical address (an entry, by hand)
        peek PA                                read 8 bytes at a physical address
        map VA PA 4K|2M|1G [rw] [user] [nx] [global] [pwt] [pcd] [pat] [pkey=N]   entries made for you (tables from 0x100000)
        paging CR3 [wp] [smep] [smap] [pge] [pke] [nxe] [la57]                   IA-32e paging on with those bits
        read|write|fetch VA [user] [VALUE]     an access through the TLB and the walker (write takes VALUE)
        explain VA read|write|fetch [user]     the walk, level by level, and the verdict
        invlpg VA | flush | flush-global       INVLPG; a CR3 reload (non-global entries); everything
        coherence on|off                       the TLB coherence checker (on by default)
        cache NAME SIZE [poison] [redzone]     kmem_cache_create (kernel machine)
        alloc NAME VAR                         kmem_cache_alloc into a variable
        free NAME VAR                          kmem_cache_free
        store VAR[+OFF] VALUE [SIZE]           a CPU store through the MMU (supervisor)
        load VAR[+OFF] [SIZE]                  a CPU load
        validate NAME                          check every object of the cache (red zones, poison)
        slabinfo NAME                          the cache's /proc/slabinfo line
        """;

    /// <summary>Adds the command to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr)
    {
        var file = new Argument<string>("FILE") { Description = "The script (see docs/labs/README.md for its commands)." };
        var cmd = new Command("script", "Run a script of machine operations (page tables by hand, accesses, flushes, slab caches) and print what each did; the course labs use it.");
        cmd.Arguments.Add(file);
        cmd.SetAction(r =>
        {
            string path = r.GetValue(file)!;
            if (!File.Exists(path))
            {
                stderr.WriteLine($"hwmem script: '{path}' does not exist; give a script file (commands in docs/labs/README.md).");
                return HwmemCommand.ExitUsage;
            }
            return new Runner(stdout, stderr).Run(File.ReadAllLines(path), path);
        });
        root.Subcommands.Add(cmd);
    }

    private sealed class Runner(TextWriter o, TextWriter err)
    {
        private PhysicalBus? _bus;
        private CpuContext? _cpu;
        private PageTableBuilder? _tables;
        private HwMemModel.Kernel.Kernel? _kernel;
        private readonly Dictionary<string, KmemCache> _caches = new(StringComparer.Ordinal);
        private readonly Dictionary<string, ulong> _vars = new(StringComparer.Ordinal);
        private int _staleSeen, _logSeen;

        public int Run(string[] lines, string path)
        {
            for (int n = 0; n < lines.Length; n++)
            {
                string line = lines[n];
                int hash = line.IndexOf('#', StringComparison.Ordinal);
                string text = (hash >= 0 ? line[..hash] : line).Trim();
                if (text.Length == 0) continue;
                o.WriteLine($"> {text}");
                string[] w = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                try
                {
                    Execute(w);
                }
                catch (Exception e) when (e is ScriptError or ArgumentException)
                {
                    // ArgumentException: a value the model's host API refuses (an access size, a cache size, a
                    // control-register value); its message says what is allowed.
                    err.WriteLine($"hwmem script: {path}:{n + 1}: {e.Message}");
                    return HwmemCommand.ExitUsage;
                }
                Reports();
            }
            return 0;
        }

        private void Execute(string[] w)
        {
            switch (w[0])
            {
                case "machine":
                    Need(w, 2, "machine bare|kernel [RAM]");
                    ulong ram = w.Length > 2 ? Size(w[2]) : w[1] == "kernel" ? 128UL << 20 : 64UL << 20;
                    if (w[1] == "bare")
                    {
                        _bus = new PhysicalBus(40, UnmappedPolicy.Zero);
                        _bus.AddRam("System RAM", 0, ram);
                        _cpu = new CpuContext(_bus, 0);
                        _cpu.Mmu.CoherenceChecking = true;
                        _tables = null;
                        _kernel = null;
                        o.WriteLine($"  bare machine: {ram >> 20} MiB of RAM at 0, CPU 0 with paging off");
                    }
                    else if (w[1] == "kernel")
                    {
                        _bus = DefaultMachine.CreateBus(ram);
                        _kernel = HwMemModel.Kernel.Kernel.Boot(_bus);
                        _cpu = _kernel.CurrentCpu;
                        _logSeen = _kernel.Log.Lines.Count;
                        o.WriteLine($"  kernel model booted on the default machine ({ram >> 20} MiB), CPU 0 in long mode on the kernel page tables");
                    }
                    else throw new ScriptError("machine takes bare or kernel.");
                    break;
                case "poke":
                    Need(w, 3, "poke PA VALUE");
                    Bus.Write(Num(w[1]), 8, Num(w[2]), BusAttributes.Host);
                    o.WriteLine($"  [0x{Num(w[1]):x}] = 0x{Num(w[2]):x16}");
                    break;
                case "peek":
                    Need(w, 2, "peek PA");
                    Bus.Read(Num(w[1]), 8, out ulong pv, BusAttributes.Debugger);
                    o.WriteLine($"  [0x{Num(w[1]):x}] = 0x{pv:x16}");
                    break;
                case "map":
                    Map(w);
                    break;
                case "paging":
                    Paging(w);
                    break;
                case "read" or "write" or "fetch":
                    Access(w);
                    break;
                case "explain":
                    Need(w, 3, "explain VA read|write|fetch [user]");
                    o.Write(Indent(Cpu.Mmu.Explain(Num(w[1]), Kind(w[2]), w.Contains("user") ? Privilege.User : Privilege.Supervisor).ToString()));
                    break;
                case "invlpg":
                    Need(w, 2, "invlpg VA");
                    Cpu.Mmu.Invlpg(Num(w[1]));
                    o.WriteLine($"  TLB entries for 0x{Num(w[1]):x} dropped (global ones too)");
                    break;
                case "flush":
                    Cpu.SetCr3(Cpu.Cr3Value);
                    o.WriteLine("  CR3 reloaded: non-global TLB entries dropped");
                    break;
                case "flush-global":
                    Cpu.Mmu.FlushAll();
                    o.WriteLine("  every TLB entry and paging-structure cache entry dropped");
                    break;
                case "coherence":
                    Need(w, 2, "coherence on|off");
                    Cpu.Mmu.CoherenceChecking = w[1] == "on";
                    o.WriteLine($"  coherence checker {(Cpu.Mmu.CoherenceChecking ? "on" : "off")}");
                    break;
                case "cache":
                    Need(w, 3, "cache NAME SIZE [poison] [redzone]");
                    var flags = (w.Contains("poison") ? SlabFlags.Poison : 0) | (w.Contains("redzone") ? SlabFlags.RedZone : 0);
                    var cache = Kernel.KmemCacheCreate(w[1], (uint)Num(w[2]), 0, flags, null, "script")
                        ?? throw new ScriptError($"kmem_cache_create({w[1]}) failed; see the kernel log.");
                    _caches[w[1]] = cache;
                    o.WriteLine($"  {cache}");
                    break;
                case "alloc":
                    Need(w, 3, "alloc NAME VAR");
                    ulong obj = Kernel.KmemCacheAlloc(Cache(w[1]), Gfp.Kernel, "script");
                    _vars[w[2]] = obj;
                    o.WriteLine($"  {w[2]} = 0x{obj:x16}");
                    break;
                case "free":
                    Need(w, 3, "free NAME VAR");
                    Kernel.KmemCacheFree(Cache(w[1]), Var(w[2]), "script");
                    o.WriteLine($"  {w[2]} (0x{Var(w[2]):x16}) freed; the variable still holds the address");
                    break;
                case "store":
                {
                    Need(w, 3, "store VAR[+OFF] VALUE [SIZE]");
                    ulong va = Var(w[1]);
                    int size = w.Length > 3 ? (int)Num(w[3]) : 8;
                    Kernel.Memory.Write(va, size, Num(w[2]));
                    o.WriteLine($"  [{w[1]}] = 0x{Num(w[2]):x} ({size} bytes at 0x{va:x16})");
                    break;
                }
                case "load":
                {
                    Need(w, 2, "load VAR[+OFF] [SIZE]");
                    ulong va = Var(w[1]);
                    int size = w.Length > 2 ? (int)Num(w[2]) : 8;
                    o.WriteLine($"  [{w[1]}] = 0x{Kernel.Memory.Read(va, size):x} ({size} bytes at 0x{va:x16})");
                    break;
                }
                case "validate":
                    Need(w, 2, "validate NAME");
                    int bad = Kernel.KmemCacheValidate(Cache(w[1]), "script");
                    o.WriteLine($"  {w[1]}: {(bad == 0 ? "no errors" : $"{bad} error(s) found; the reports follow")}");
                    break;
                case "slabinfo":
                    Need(w, 2, "slabinfo NAME");
                    o.WriteLine("  " + Kernel.FormatSlabInfo().Split('\n').First(l => l.StartsWith(w[1] + " ", StringComparison.Ordinal)));
                    break;
                default:
                    throw new ScriptError($"unknown command '{w[0]}'; the commands are:\n{Syntax}");
            }
        }

        private void Map(string[] w)
        {
            Need(w, 4, "map VA PA 4K|2M|1G [flags]");
            var size = w[3].ToUpperInvariant() switch
            {
                "4K" => PageSize.Size4K,
                "2M" => PageSize.Size2M,
                "1G" => PageSize.Size1G,
                _ => throw new ScriptError($"page size '{w[3]}'; use 4K, 2M or 1G."),
            };
            var flags = PteFlags.None;
            int pkey = 0;
            foreach (var f in w.Skip(4))
            {
                flags |= f switch
                {
                    "rw" => PteFlags.Writable,
                    "user" => PteFlags.User,
                    "nx" => PteFlags.NoExecute,
                    "global" => PteFlags.Global,
                    "pwt" => PteFlags.WriteThrough,
                    "pcd" => PteFlags.CacheDisable,
                    "pat" => size == PageSize.Size4K ? PteFlags.Pat4K : PteFlags.PatLarge,
                    _ when f.StartsWith("pkey=", StringComparison.Ordinal) => PteFlags.None,
                    _ => throw new ScriptError($"flag '{f}'; use rw, user, nx, global, pwt, pcd, pat, pkey=N."),
                };
                if (f.StartsWith("pkey=", StringComparison.Ordinal)) pkey = (int)Num(f[5..]);
            }
            if (_kernel is not null) throw new ScriptError("map builds its own tables; use it on a bare machine.");
            _tables ??= new PageTableBuilder(Bus, 0x10_0000, 0x10_0000);
            try
            {
                _tables.Map(Num(w[1]), Num(w[2]), size, flags, pkey);
            }
            catch (ArgumentException e)
            {
                throw new ScriptError(e.Message);
            }
            o.WriteLine($"  0x{Num(w[1]):x} -> 0x{Num(w[2]):x} ({size.Label()}) in the tables rooted at 0x{_tables.Root:x}");
        }

        private void Paging(string[] w)
        {
            Need(w, 2, "paging CR3 [wp] [smep] [smap] [pge] [pke] [nxe] [la57]");
            if (_kernel is not null) throw new ScriptError("the kernel machine is already paging.");
            ulong cr4 = (w.Contains("smep") ? Cr4.SMEP : 0) | (w.Contains("smap") ? Cr4.SMAP : 0) | (w.Contains("pge") ? Cr4.PGE : 0) | (w.Contains("pke") ? Cr4.PKE : 0);
            try
            {
                Cpu.EnterLongMode(Num(w[1]), w.Contains("la57"), cr4, nxe: w.Contains("nxe"), writeProtect: w.Contains("wp"));
            }
            catch (ArgumentException e)
            {
                throw new ScriptError(e.Message);
            }
            o.WriteLine($"  long mode: CR3=0x{Cpu.Cr3Value:x} CR0.WP={(w.Contains("wp") ? 1 : 0)} CR4=0x{Cpu.Cr4Value:x} EFER.NXE={(w.Contains("nxe") ? 1 : 0)}");
        }

        private void Access(string[] w)
        {
            Need(w, w[0] == "write" ? 3 : 2, $"{w[0]} VA{(w[0] == "write" ? " VALUE" : "")} [user]");
            ulong va = Num(w[1]);
            var priv = w.Contains("user") ? Privilege.User : Privilege.Supervisor;
            AccessResult r;
            ulong value = 0;
            if (w[0] == "write") r = Cpu.Mmu.Write(va, 8, Num(w[2]), priv);
            else r = Cpu.Mmu.Read(va, 8, priv, out value, w[0] == "fetch" ? AccessKind.Execute : AccessKind.Read);
            string who = priv == Privilege.User ? "user" : "supervisor";
            if (r.Fault.IsFault)
                o.WriteLine($"  {who} {w[0]} of 0x{va:x}: {r.Fault}");
            else if (w[0] == "write")
                o.WriteLine($"  {who} write of 0x{va:x}: ok (0x{Num(w[2]):x})");
            else
                o.WriteLine($"  {who} {w[0]} of 0x{va:x}: 0x{value:x16}");
        }

        private void Reports()
        {
            if (_cpu is { } cpu)
            {
                var stale = cpu.Mmu.StaleTranslations;
                for (; _staleSeen < stale.Count; _staleSeen++) o.WriteLine($"  coherence checker: {stale[_staleSeen].Description}");
            }
            if (_kernel is { } k)
            {
                for (; _logSeen < k.Log.Lines.Count; _logSeen++) o.WriteLine($"  dmesg: {k.Log.Lines[_logSeen]}");
            }
        }

        private PhysicalBus Bus => _bus ?? throw new ScriptError("no machine yet; start with 'machine bare' or 'machine kernel'.");
        private CpuContext Cpu => _cpu ?? throw new ScriptError("no machine yet; start with 'machine bare' or 'machine kernel'.");
        private HwMemModel.Kernel.Kernel Kernel => _kernel ?? throw new ScriptError("this needs the kernel model; start with 'machine kernel'.");
        private KmemCache Cache(string name) => _caches.TryGetValue(name, out var c) ? c : throw new ScriptError($"no cache '{name}'; create it with 'cache {name} SIZE'.");

        private ulong Var(string text)
        {
            int plus = text.IndexOf('+', StringComparison.Ordinal);
            string name = plus >= 0 ? text[..plus] : text;
            ulong off = plus >= 0 ? Num(text[(plus + 1)..]) : 0;
            if (!_vars.TryGetValue(name, out var v)) throw new ScriptError($"no variable '{name}'; 'alloc CACHE {name}' sets it.");
            return v + off;
        }

        private static ulong Num(string text)
            => HwmemCommand.TryParseAddress(text, out ulong v) ? v : throw new ScriptError($"'{text}' is not a number; use hex (0x...) or decimal.");

        private static ulong Size(string text)
            => Machine.Description.Quantity.TryParseSize(text, out ulong v) ? v : throw new ScriptError($"'{text}' is not a size; e.g. 64M.");

        private static AccessKind Kind(string text) => text switch
        {
            "read" => AccessKind.Read,
            "write" => AccessKind.Write,
            "fetch" => AccessKind.Execute,
            _ => throw new ScriptError($"access '{text}'; use read, write or fetch."),
        };

        private static void Need(string[] w, int count, string form)
        {
            if (w.Length < count) throw new ScriptError($"'{w[0]}' needs more: {form}.");
        }

        private static string Indent(string text) => string.Concat(text.Split('\n').Where(l => l.Length > 0).Select(l => "  " + l + "\n"));
    }

    private sealed class ScriptError(string message) : Exception(message);
}
