using System.Text.Json;
using HwMemModel.Cli;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

public sealed class KernelViewsTests
{
    [Test]
    public void Demo_binds_the_drivers_and_shows_proc_interrupts()
    {
        var (code, output, _) = Run("demo");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("  virtio0     virtio,mmio          -> virtio_blk"));
        Assert.That(output, Does.Contain("interrupt arrived after 250.0 us of guest time"));
        Assert.That(output, Does.Contain("destination reads \"bytes moved by the DMA engine\""));
        Assert.That(output, Does.Contain(" 17:          2   IO-APIC   17-fasteoi   virtio0"));
    }

    [TestCase("vmallocinfo", "__devm_ioremap_resource phys=0x00000000feb01000 ioremap")]
    [TestCase("slabinfo", "slabinfo - version: 2.1")]
    [TestCase("buddyinfo", "Node 0, zone    DMA32")]
    [TestCase("iomem", "feb01000-feb011ff : virtio0")]
    [TestCase("ioports", "serial0")]
    [TestCase("meminfo", "MemTotal:")]
    [TestCase("interrupts", "  4:          0   IO-APIC    4-edge      serial0")]
    public void Proc_views_print_Linux_formats(string view, string expected)
    {
        var (code, output, err) = Run("proc", view);
        Assert.That(code, Is.Zero, err);
        Assert.That(output, Does.Contain(expected));
    }

    [Test]
    public void Proc_json_gives_data_with_the_documented_fields()
    {
        using var vm = JsonDocument.Parse(Run("proc", "vmallocinfo", "--json").Out);
        var hpet = vm.RootElement.EnumerateArray().Single(a => a.TryGetProperty("phys", out var p) && p.GetString() == "0xfed00000");
        Assert.That(hpet.GetProperty("size").GetUInt64(), Is.EqualTo(8192UL), "one page and its guard page");
        using var irq = JsonDocument.Parse(Run("proc", "interrupts", "--json").Out);
        var virtio = irq.RootElement.EnumerateArray().Single(i => i.GetProperty("irq").GetInt32() == 17);
        Assert.That(virtio.GetProperty("vector").GetString(), Is.EqualTo("0x41"), "0x30 + 17");
        Assert.That(virtio.GetProperty("trigger").GetString(), Is.EqualTo("level-high"));
        using var buddy = JsonDocument.Parse(Run("proc", "buddyinfo", "--json").Out);
        Assert.That(buddy.RootElement.EnumerateArray().First().GetProperty("free").GetArrayLength(), Is.EqualTo(11), "orders 0 to 10");
    }

    [Test]
    public void Ptdump_shows_the_ioremap_of_the_hpet_uncached_and_json_rows_carry_the_flags()
    {
        var (code, output, _) = Run("ptdump");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("---[ vmalloc() Area ]---"));
        using var doc = JsonDocument.Parse(Run("ptdump", "--json").Out);
        var rows = doc.RootElement.EnumerateArray().ToArray();
        Assert.That(rows.Any(r => r.GetProperty("section").GetString() == "vmalloc() Area" && r.GetProperty("flags").EnumerateArray().Any(f => f.GetString() == "PCD")), Is.True);
    }

    [Test]
    public void Walk_on_a_machine_uses_the_kernel_page_tables_and_json_names_each_level()
    {
        var (code, output, _) = Run("walk", "0xffffc90000004000", "--machine", "default", "--json");
        Assert.That(code, Is.Zero);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.That(root.GetProperty("levels").EnumerateArray().Select(l => l.GetProperty("level").GetString()), Is.EqualTo(new[] { "PML4E", "PDPTE", "PDE", "PTE" }));
        Assert.That(root.GetProperty("physicalAddress").GetString(), Is.EqualTo("0xfed00000"), "the HPET's ioremap");
        Assert.That(root.GetProperty("memoryType").GetString(), Is.EqualTo("UC-"));
        var (faultCode, faultOut, _) = Run("walk", "0xffffc90000004000", "--machine", "default", "--user");
        Assert.That(faultCode, Is.EqualTo(HwmemCommand.ExitFault));
        Assert.That(faultOut, Does.Contain("U/S=0"));
    }

    [Test]
    public void A_bad_machine_description_is_one_line_with_its_own_exit_status()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-bad-{Environment.ProcessId}.json");
        File.WriteAllText(path, """{ "Machine": { "Devices": [ { "Name": "x", "Compatible": "acme,widget", "Base": "0xfeb00000" } ] } }""");
        try
        {
            var (code, output, err) = Run("proc", "iomem", "--machine", path);
            Assert.That(code, Is.EqualTo(HwmemCommand.ExitMachineDescription));
            Assert.That(output, Is.Empty);
            Assert.That(err.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1));
            Assert.That(err, Does.StartWith("hwmem: machine description: $.Machine.Devices[0].Compatible: unknown compatible string 'acme,widget'"));
            var (missing, _, err2) = Run("ptdump", "--machine", "/nonexistent.json");
            Assert.That(missing, Is.EqualTo(HwmemCommand.ExitMachineDescription));
            Assert.That(err2, Does.Contain("cannot read machine description '/nonexistent.json'"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void An_unknown_view_is_a_usage_error_listing_the_views()
    {
        var (code, _, err) = Run("proc", "cpuinfo");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.Contain("vmallocinfo"));
    }
}

public sealed class BenchFiguresTests
{
    [Test]
    public void Bench_quick_json_lists_every_issue_figure_with_its_target()
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = HwmemCommand.Run(["bench", "--quick", "--json", "--repeat", "1"], o, e);
        Assert.That(code, Is.Zero, e.ToString());
        using var doc = System.Text.Json.JsonDocument.Parse(o.ToString());
        var figures = doc.RootElement.GetProperty("figures").EnumerateArray().ToArray();
        Assert.That(figures.Select(f => f.GetProperty("issue").GetString()).Distinct(), Is.EquivalentTo(new[] { "MMU", "kernel", "devices", "processes" }));
        Assert.That(figures.Single(f => f.GetProperty("name").GetString()!.StartsWith("readl", StringComparison.Ordinal)).GetProperty("target").GetString(), Is.EqualTo(">= 20,000,000/s"));
        foreach (var f in figures)
        {
            double ns = f.GetProperty("nsPerOp").GetDouble();
            Assert.That(ns, Is.GreaterThan(0));
            Assert.That(f.GetProperty("perSecond").GetDouble(), Is.EqualTo(1e9 / ns).Within(0.5).Percent);
        }
    }
}
