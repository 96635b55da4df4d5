using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel.Tests.ProcViews;

public sealed class PtDumpTests
{
    private static Kernel Boot() => Kernel.Boot(DefaultMachine.CreateBus(256UL << 20));

    [Test]
    public void Dump_starts_like_a_linux_4_level_dump()
    {
        string[] lines = PtDump.Format(Boot()).Split('\n');
        // Shapes as printed by arch/x86/mm/dump_pagetables.c on x86-64 (4-level, no PTI).
        Assert.That(lines[0], Is.EqualTo("---[ User Space ]---"));
        Assert.That(lines[1], Is.EqualTo("0x0000000000000000-0xffff800000000000    16777088T                               pgd"));
        Assert.That(lines[2], Is.EqualTo("---[ Kernel Space ]---"));
        Assert.That(lines[3], Is.EqualTo("0xffff800000000000-0xffff880000000000           8T                               pgd"));
        Assert.That(lines[4], Is.EqualTo("---[ LDT remap ]---"));
        Assert.That(lines[5], Is.EqualTo("0xffff880000000000-0xffff888000000000         512G                               pgd"));
        Assert.That(lines[6], Is.EqualTo("---[ Low Kernel Mapping ]---"));
        // The ISA range is always mapped, so [0, 2 MiB) is one run of 4 KiB pages, RW, global, NX.
        Assert.That(lines[7], Is.EqualTo("0xffff888000000000-0xffff888000200000           2M     RW                 GLB NX pte"));
    }

    [Test]
    public void Direct_map_large_pages_show_pse_and_pmd_level()
    {
        string dump = PtDump.Format(Boot());
        Assert.That(dump, Does.Contain("0xffff888000200000-0xffff888010000000         254M     RW         PSE     GLB NX pmd"));
    }

    [Test]
    public void Kernel_text_is_shown_read_only_executable_in_the_high_kernel_mapping()
    {
        string dump = PtDump.Format(Boot());
        int marker = dump.IndexOf("---[ High Kernel Mapping ]---", StringComparison.Ordinal);
        Assert.That(marker, Is.GreaterThan(0));
        Assert.That(dump[marker..], Does.Contain("0xffffffff81000000-0xffffffff81400000           4M     ro         PSE     GLB x  pmd"));
        Assert.That(dump[marker..], Does.Contain("0xffffffff81400000-0xffffffff81800000           4M     RW         PSE     GLB NX pmd"));
    }

    [Test]
    public void Booted_kernel_passes_the_wx_check()
    {
        var k = Boot();
        Assert.That(PtDump.CheckWx(k), Is.Zero);
        Assert.That(k.Log.Lines[^1], Is.EqualTo("x86/mm: Checked W+X mappings: passed, no W+X pages found."));
    }

    [Test]
    public void A_writable_executable_mapping_fails_the_wx_check_with_linux_messages()
    {
        var k = Boot();
        ulong va = k.Layout.VmallocStart + 0x10_0000;
        k.PageTables.Map(va, 0x300_0000, PageSize.Size4K, KernelPageTables.PageKernelExec);
        k.PageTables.Map(va + 0x1000, 0x300_1000, PageSize.Size4K, KernelPageTables.PageKernelExec);
        Assert.That(PtDump.CheckWx(k), Is.EqualTo(2));
        Assert.That(k.Log.Lines, Has.Some.StartsWith($"x86/mm: Found insecure W+X mapping at address 0x{va:x16}"));
        Assert.That(k.Log.Lines[^1], Is.EqualTo("x86/mm: Checked W+X mappings: FAILED, 2 W+X pages found."));
    }
}
