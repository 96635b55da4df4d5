using HwMemModel.Bus;
using HwMemModel.Machine;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Tests;

public sealed class DefaultMachineTests
{
    [Test]
    public void Memory_map_matches_the_pc_machine_of_platform_md()
    {
        var bus = DefaultMachine.CreateBus();
        // PLATFORM.md: RAM 0-0x9FFFF and 1 MiB up to 128 MiB, BIOS ending at 4 GiB, its top 64 KiB at 0xF0000.
        Assert.That(bus.E820Table().Select(e => (e.Start, e.Last, e.Type)), Is.EqualTo(new[]
        {
            (0x0UL, 0x9_FFFFUL, E820Type.Usable),
            (0xF_0000UL, 0xF_FFFFUL, E820Type.Reserved),
            (0x10_0000UL, 0x7FF_FFFFUL, E820Type.Usable),
            (0xFFFF_0000UL, 0xFFFF_FFFFUL, E820Type.Reserved),
        }));
    }

    [Test]
    public void Reset_vector_is_visible_at_both_the_top_of_4_GiB_and_the_low_alias()
    {
        var bus = DefaultMachine.CreateBus();
        bus.Read(0xFFFF_FFF0, 2, out ulong high, BusAttributes.Host);
        bus.Read(0xF_FFF0, 2, out ulong low, BusAttributes.Host);
        Assert.That(high, Is.EqualTo(0xF4FAUL), "CLI; HLT");
        Assert.That(low, Is.EqualTo(high));
    }

    [Test]
    public void Unassigned_memory_reads_zero_as_on_qemu_pc()
    {
        var bus = DefaultMachine.CreateBus();
        Assert.That(bus.Read(0xFEBF_F000, 4, out ulong v, BusAttributes.Host), Is.EqualTo(BusStatus.Ok));
        Assert.That(v, Is.Zero);
        Assert.That(bus.Counters.UnmappedReads, Is.EqualTo(1));
    }

    [TestCase(1UL << 20)]
    [TestCase((4UL << 30))]
    [TestCase((128UL << 20) + 4096)]
    public void Bad_ram_size_is_rejected_with_the_allowed_range(ulong size)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => DefaultMachine.CreateBus(size));
        Assert.That(ex!.Message, Does.Contain("multiple of 1 MiB between 2 MiB and 3 GiB"));
    }

    [Test]
    public void Bios_that_is_not_a_multiple_of_64_KiB_is_rejected_as_qemu_does()
    {
        var ex = Assert.Throws<ArgumentException>(() => DefaultMachine.CreateBus(bios: new byte[1000]));
        Assert.That(ex!.Message, Does.Contain("multiple of 64 KiB"));
    }

    [Test]
    public void Demo_tables_map_the_direct_map_with_global_nx_2_MiB_pages()
    {
        var demo = DemoPageTables.Create();
        var e = demo.Cpu.Mmu.Explain(DemoPageTables.DirectMap + 0x12_3456, AccessKind.Read, Privilege.Supervisor);
        Assert.That(e.Fault.IsFault, Is.False);
        Assert.That(e.Translation!.Value.PhysicalAddress, Is.EqualTo(0x12_3456UL));
        Assert.That(e.Translation!.Value.PageSize, Is.EqualTo(PageSize.Size2M));
        ulong pde = e.Steps[^1].Raw;
        Assert.That(pde & 0x8000_0000_0000_0183UL, Is.EqualTo(0x8000_0000_0000_0183UL), "P RW PS G NX");
    }
}
