using System.Text.Json;
using HwMemModel.Cli;
using HwMemModel.Cli.Plots;

namespace HwMemModel.Cli.Tests;

public sealed class PlotCommandTests
{
    private static readonly int[] TlbSizes = [4, 8, 16, 32, 64, 128, 256, 512, 1024];
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private string _dir = "";

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hwmem-plot-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void DeleteDirectory()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string File(string name) => Path.Combine(_dir, name);

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = HwmemCommand.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private (JsonElement Root, string Path) Sweep(string workload, int accesses, string ext = "svg")
    {
        string path = File($"{workload}.{ext}");
        var (code, output, error) = Run("tlb-sweep", "--workload", workload, "--out", path, "--json", "--accesses", accesses.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(code, Is.Zero, error);
        Assert.That(error, Is.Empty);
        return (JsonDocument.Parse(output).RootElement, path);
    }

    private static JsonElement[] Points(JsonElement root, string pageSize, bool l2)
        => root.GetProperty("points").EnumerateArray()
            .Where(p => p.GetProperty("pageSize").GetString() == pageSize && p.GetProperty("l2").GetBoolean() == l2)
            .OrderBy(p => p.GetProperty("tlbEntries").GetInt32())
            .ToArray();

    [Test]
    public void Tlb_sweep_writes_a_png_when_out_ends_in_png()
    {
        var (_, path) = Sweep("sequential", 4096, "png");
        byte[] bytes = System.IO.File.ReadAllBytes(path);
        Assert.That(bytes.Take(8), Is.EqualTo(PngSignature));
    }

    [Test]
    public void Tlb_sweep_writes_an_svg_when_out_ends_in_svg()
    {
        var (_, path) = Sweep("strided", 4096, "svg");
        string text = System.IO.File.ReadAllText(path);
        Assert.That(text, Does.Contain("<svg"));
        Assert.That(text, Does.Contain("strided"));
    }

    [Test]
    public void Sequential_4K_miss_rate_never_rises_with_TLB_size_and_is_one_miss_per_page()
    {
        const int Accesses = 65536; // 8-byte loads: 512 per 4 KiB page, 128 pages
        var (root, _) = Sweep("sequential", Accesses);
        Assert.That(root.GetProperty("workload").GetString(), Is.EqualTo("sequential"));
        Assert.That(root.GetProperty("accesses").GetInt64(), Is.EqualTo(Accesses));
        foreach (bool l2 in new[] { false, true })
        {
            var points = Points(root, "4K", l2);
            Assert.That(points.Select(p => p.GetProperty("tlbEntries").GetInt32()), Is.EqualTo(TlbSizes));
            double[] rates = points.Select(p => p.GetProperty("missRate").GetDouble()).ToArray();
            for (int i = 1; i < rates.Length; i++)
                Assert.That(rates[i], Is.LessThanOrEqualTo(rates[i - 1]), $"L2 {l2}: {points[i].GetProperty("tlbEntries")} entries");
            Assert.That(rates[^1], Is.LessThanOrEqualTo(1.0 / 512 + 1e-12));
            Assert.That(points[^1].GetProperty("misses").GetInt64(), Is.EqualTo(Accesses * 8 / 4096));
        }
    }

    [Test]
    public void Walks_read_at_most_four_entries_and_sequential_4K_walks_start_from_the_PDE_cache()
    {
        var (root, _) = Sweep("sequential", 65536);
        foreach (var p in root.GetProperty("points").EnumerateArray())
        {
            Assert.That(p.GetProperty("walkReadsPerMiss").GetDouble(), Is.InRange(1.0, 4.0));
            Assert.That(p.GetProperty("walkReadsPerAccess").GetDouble(),
                Is.EqualTo(p.GetProperty("walkReads").GetDouble() / p.GetProperty("translations").GetDouble()).Within(1e-12));
        }
        // 128 walks down one page table: the first reads 4 entries, the rest hit the PDE cache and read only the PTE.
        foreach (var p in Points(root, "4K", false))
            Assert.That(p.GetProperty("walkReadsPerMiss").GetDouble(), Is.LessThan(1.1));
    }

    [Test]
    public void Random_over_a_large_buffer_misses_less_with_2M_pages_than_with_4K()
    {
        var (root, _) = Sweep("random", 20000);
        foreach (bool l2 in new[] { false, true })
        {
            var small = Points(root, "4K", l2);
            var large = Points(root, "2M", l2);
            Assert.That(large, Has.Length.EqualTo(small.Length));
            for (int i = 0; i < small.Length; i++)
                Assert.That(large[i].GetProperty("missRate").GetDouble(), Is.LessThan(small[i].GetProperty("missRate").GetDouble()),
                    $"{small[i].GetProperty("tlbEntries")} entries, L2 {l2}");
        }
        // 512 2 MiB pages fit a 1024-entry TLB: only compulsory misses are left.
        Assert.That(Points(root, "2M", false)[^1].GetProperty("misses").GetInt64(), Is.LessThanOrEqualTo(512));
    }

    [Test]
    public void Kernel_mix_replays_through_the_kernel_page_tables()
    {
        var (root, _) = Sweep("kernel-mix", 5000);
        var points = root.GetProperty("points").EnumerateArray().ToArray();
        Assert.That(points, Has.Length.EqualTo(TlbSizes.Length * 2));
        Assert.That(points.Select(p => p.GetProperty("pageSize").GetString()).Distinct(), Is.EqualTo(new[] { "mixed" }));
        foreach (var p in points)
        {
            Assert.That(p.GetProperty("missRate").GetDouble(), Is.InRange(0.0, 1.0));
            Assert.That(p.GetProperty("walkReadsPerMiss").GetDouble(), Is.InRange(1.0, 4.0));
        }
        var l1Only = Points(root, "mixed", false);
        Assert.That(l1Only[^1].GetProperty("missRate").GetDouble(), Is.LessThan(l1Only[0].GetProperty("missRate").GetDouble()));
    }

    [Test]
    public void Tlb_sweep_is_deterministic_for_a_seed()
    {
        string path = File("r.svg");
        string[] args = ["tlb-sweep", "--workload", "random", "--out", path, "--json", "--accesses", "3000", "--seed", "42"];
        var first = Run(args);
        var second = Run(args);
        Assert.That(first.Code, Is.Zero);
        Assert.That(second.Out, Is.EqualTo(first.Out));
        var other = Run("tlb-sweep", "--workload", "random", "--out", path, "--json", "--accesses", "3000", "--seed", "43");
        Assert.That(other.Out, Is.Not.EqualTo(first.Out));
    }

    [Test]
    public void Tlb_sweep_prints_the_text_table_without_control_characters_when_not_json()
    {
        string path = File("t.png");
        var (code, output, error) = Run("tlb-sweep", "--workload", "strided", "--out", path, "--accesses", "2000");
        Assert.That(code, Is.Zero, error);
        Assert.That(output, Does.StartWith("tlb-sweep strided: 8-byte loads with a stride of 4160 B"));
        Assert.That(output, Does.Contain("page  L1 entries  L2   miss rate"));
        Assert.That(output, Does.Contain($"wrote {path}"));
        Assert.That(output.Split('\n').Count(l => l.StartsWith("4K ", StringComparison.Ordinal)), Is.EqualTo(18));
        Assert.That(output.Any(c => char.IsControl(c) && c != '\n'), Is.False);
    }

    [TestCase("tlb-sweep", "--workload", "sequential")]
    [TestCase("map")]
    public void An_out_file_that_is_not_png_or_svg_is_a_usage_error(params string[] command)
    {
        string path = File("plot.jpg");
        var (code, output, error) = Run([.. command, "--out", path]);
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(error, Is.EqualTo($"hwmem {command[0]}: --out must end in .png or .svg" + Environment.NewLine));
        Assert.That(output, Is.Empty);
        Assert.That(System.IO.File.Exists(path), Is.False);
    }

    [Test]
    public void An_unknown_workload_is_a_usage_error_listing_the_workloads()
    {
        var (code, _, error) = Run("tlb-sweep", "--workload", "zipf", "--out", File("z.svg"));
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(error, Is.EqualTo("hwmem tlb-sweep: unknown workload 'zipf'; workloads: sequential, random, strided, kernel-mix." + Environment.NewLine));
    }

    [Test]
    public void Out_of_range_accesses_is_a_usage_error()
    {
        var (code, _, error) = Run("tlb-sweep", "--workload", "random", "--out", File("a.svg"), "--accesses", "0");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
    }

    [Test]
    public void A_plot_that_cannot_be_written_gives_its_own_exit_status_and_one_line()
    {
        string path = Path.Combine(_dir, "no-such-directory", "plot.svg");
        var (code, _, error) = Run("map", "--out", path);
        Assert.That(code, Is.EqualTo(PlotCommands.ExitCannotWrite));
        Assert.That(error, Does.StartWith($"hwmem map: cannot write {path}: "));
        Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
    }

    [Test]
    public void Map_json_lists_the_direct_map_vmalloc_areas_with_guard_pages_and_the_HPET_ioremap_as_UC_minus()
    {
        string path = File("map.svg");
        var (code, output, error) = Run("map", "--out", path, "--json");
        Assert.That(code, Is.Zero, error);
        Assert.That(System.IO.File.ReadAllText(path), Does.Contain("<svg"));
        var regions = JsonDocument.Parse(output).RootElement.GetProperty("regions").EnumerateArray().ToArray();
        static string Kind(JsonElement r) => r.GetProperty("kind").GetString()!;
        static ulong Addr(JsonElement r, string name) => Convert.ToUInt64(r.GetProperty(name).GetString(), 16);

        var direct = regions.Where(r => Kind(r) == "direct-map").ToArray();
        Assert.That(direct, Is.Not.Empty);
        Assert.That(direct.Min(r => Addr(r, "start")), Is.EqualTo(0xffff_8880_0000_0000UL));
        Assert.That(direct.All(r => r.GetProperty("memoryType").GetString() == "WB"));

        var vmallocs = regions.Where(r => Kind(r) == "vmalloc").ToArray();
        Assert.That(vmallocs, Has.Length.GreaterThanOrEqualTo(1));
        Assert.That(vmallocs.Any(v => regions.Any(g => Kind(g) == "guard" && Addr(g, "start") == Addr(v, "end") && Addr(g, "end") - Addr(g, "start") == 4096)));

        var hpet = regions.Single(r => Kind(r) == "ioremap" && r.GetProperty("physAddr").GetString() == "0xfed00000");
        Assert.That(hpet.GetProperty("memoryType").GetString(), Is.EqualTo("UC-"));
        Assert.That(hpet.GetProperty("caller").GetString(), Is.EqualTo("hpet_enable"));
        Assert.That(Addr(hpet, "start"), Is.InRange(0xffff_c900_0000_0000UL, 0xffff_e8ff_ffff_ffffUL));
        Assert.That(regions.Any(r => Kind(r) == "ioremap" && r.GetProperty("memoryType").GetString() == "WC"));
        Assert.That(regions.Any(r => Kind(r) == "kernel-text"));
    }

    [Test]
    public void Map_writes_a_png_and_prints_the_listing()
    {
        string path = File("map.png");
        var (code, output, error) = Run("map", "--out", path);
        Assert.That(code, Is.Zero, error);
        Assert.That(System.IO.File.ReadAllBytes(path).Take(8), Is.EqualTo(PngSignature));
        Assert.That(output, Does.Contain("direct map: 0xffff888000000000-0xffff888007ffffff"));
        Assert.That(output, Does.Contain("ioremap     UC- 4K phys 0xfed00000 hpet_enable"));
        Assert.That(output, Does.Contain($"wrote {path}"));
    }
}
