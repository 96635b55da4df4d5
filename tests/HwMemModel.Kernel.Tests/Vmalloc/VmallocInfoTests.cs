using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.Vmalloc;

public sealed class VmallocInfoTests
{
    private static string Range(ulong start, ulong size) => $"0x{start:x16}-0x{start + size:x16} {size,7}";

    [Test]
    public void Lines_follow_linux_format_in_address_order()
    {
        var k = Boot();
        ulong v = k.Vmalloc(2 * Page, "probe_one");
        ulong io = k.IoRemap(0xFED0_0010, 0x20, "hpet_enable");
        var own = new[] { k.Pages.AllocPages(Gfp.Kernel, 0)!.Value };
        ulong m = k.Vmap(own, caller: "map_it");
        Assert.That(k.FormatVmallocInfo(), Is.EqualTo(
            $"{Range(v, 3 * Page)} probe_one pages=2 vmalloc N0=2\n"
            + $"{Range(io & ~0xFFFUL, 2 * Page)} hpet_enable phys=0x00000000fed00000 ioremap\n"
            + $"{Range(m, 2 * Page)} map_it vmap\n"));
    }

    [Test]
    public void Lazily_freed_areas_show_as_unpurged_in_their_place_until_the_purge()
    {
        var k = Boot();
        ulong a = k.Vmalloc(Page, "first");
        ulong b = k.Vmalloc(Page, "second");
        k.Vfree(a);
        ulong c = k.Vmalloc(Page, "third");
        Assert.That(k.FormatVmallocInfo(), Is.EqualTo(
            $"{Range(a, 2 * Page)} unpurged vm_area\n"
            + $"{Range(b, 2 * Page)} second pages=1 vmalloc N0=1\n"
            + $"{Range(c, 2 * Page)} third pages=1 vmalloc N0=1\n"));
        k.VmUnmapAliases();
        Assert.That(k.FormatVmallocInfo(), Does.Not.Contain("unpurged"));
    }

    [Test]
    public void Numa_counts_name_each_node_that_holds_pages()
    {
        var k = Boot(nodes: 2);
        ulong v = k.VmallocNode(3 * Page, 1, "on_node_1");
        Assert.That(k.FormatVmallocInfo(), Is.EqualTo($"{Range(v, 4 * Page)} on_node_1 pages=3 vmalloc N1=3\n"));
    }

    [Test]
    public void The_caller_defaults_to_the_calling_member()
    {
        var k = Boot();
        k.Vmalloc(Page);
        Assert.That(k.FormatVmallocInfo(), Does.Contain($" {nameof(The_caller_defaults_to_the_calling_member)} pages=1 vmalloc"));
        Assert.That(k.VmAreas().Single().Caller, Is.EqualTo(nameof(The_caller_defaults_to_the_calling_member)));
    }
}
