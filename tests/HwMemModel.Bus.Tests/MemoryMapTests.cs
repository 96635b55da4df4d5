using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class MemoryMapTests
{
    private PhysicalBus _bus = null!;

    /// <summary>The 128 MiB QEMU pc subset: low RAM, high RAM, a 256 KiB BIOS below 4 GiB with its top 64 KiB at 0xF0000, HPET.</summary>
    [SetUp]
    public void SetUp()
    {
        _bus = new PhysicalBus(maxPhysAddrBits: 40, unmappedPolicy: UnmappedPolicy.Zero);
        _bus.AddRam("ram-below-1m", 0, 0xA0000);
        _bus.AddRam("ram", 0x100000, 0x7F00000);
        RomRegion bios = _bus.AddRom("bios", 0xFFFC0000, new byte[0x40000]);
        _bus.AddAlias("System ROM", 0xF0000, 0x10000, bios, 0x30000);
        _bus.AddMmio("HPET 0", 0xFED00000, 0x400,
            new RecordingDevice("hpet", 0x400, new AccessConstraints(4, 8), new AccessConstraints(4, 8)));
    }

    [Test]
    public void Iomem_lists_a_pc_like_map_in_linux_format()
    {
        const string expected =
            "00000000-0009ffff : System RAM\n" +
            "000f0000-000fffff : System ROM\n" +
            "00100000-07ffffff : System RAM\n" +
            "fed00000-fed003ff : HPET 0\n" +
            "fffc0000-ffffffff : Reserved\n";

        Assert.That(_bus.FormatIoMem(), Is.EqualTo(expected));
    }

    [Test]
    public void E820_lists_a_pc_like_map_as_linux_prints_it_at_boot()
    {
        const string expected =
            "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\n" +
            "BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved\n" +
            "BIOS-e820: [mem 0x0000000000100000-0x0000000007ffffff] usable\n" +
            "BIOS-e820: [mem 0x00000000fed00000-0x00000000fed003ff] reserved\n" +
            "BIOS-e820: [mem 0x00000000fffc0000-0x00000000ffffffff] reserved\n";

        Assert.That(_bus.FormatE820(), Is.EqualTo(expected));
    }

    [Test]
    public void Memory_map_entries_resolve_aliases_to_their_targets()
    {
        IReadOnlyList<MemoryMapEntry> map = _bus.MemoryMap();

        Assert.That(map.Select(e => (e.Start, e.Last, e.Kind, e.Region.Name)), Is.EqualTo(new[]
        {
            (0x0UL, 0x9FFFFUL, MemoryRegionKind.Ram, "ram-below-1m"),
            (0xF0000UL, 0xFFFFFUL, MemoryRegionKind.Rom, "System ROM"),
            (0x100000UL, 0x7FFFFFFUL, MemoryRegionKind.Ram, "ram"),
            (0xFED00000UL, 0xFED003FFUL, MemoryRegionKind.Mmio, "HPET 0"),
            (0xFFFC0000UL, 0xFFFFFFFFUL, MemoryRegionKind.Rom, "bios"),
        }));
        Assert.That(map[1].Target.Name, Is.EqualTo("bios"));
        Assert.That(map[1].TargetOffset, Is.EqualTo(0x30000UL));
    }

    [Test]
    public void Region_inside_another_is_indented_under_it_in_iomem()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x100000);
        bus.AddMmio("vga", 0xA0000, 0x20000,
            new RecordingDevice("vga", 0x10, AccessConstraints.Any, AccessConstraints.Any), priority: 1);
        bus.AddRam("high", 0x1_0000_0000, 0x4000_0000);

        Assert.That(bus.FormatIoMem(), Is.EqualTo(
            "00000000-000fffff : System RAM\n" +
            "  000a0000-000bffff : vga\n" +
            "100000000-13fffffff : System RAM\n"));
    }

    [Test]
    public void E820_splits_ram_around_a_higher_priority_window_and_merges_adjacent_ram()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x100000);
        bus.AddRam("more", 0x100000, 0x100000);
        bus.AddMmio("vga", 0xA0000, 0x20000,
            new RecordingDevice("vga", 0x10, AccessConstraints.Any, AccessConstraints.Any), priority: 1);

        Assert.That(bus.E820Table(), Is.EqualTo(new[]
        {
            new E820Entry(0, 0xA0000, E820Type.Usable),
            new E820Entry(0xA0000, 0x20000, E820Type.Reserved),
            new E820Entry(0xC0000, 0x140000, E820Type.Usable),
        }));
    }

    [Test]
    public void Empty_bus_lists_nothing()
    {
        var bus = new PhysicalBus();

        Assert.That((bus.FormatIoMem(), bus.FormatE820(), bus.MemoryMap().Count), Is.EqualTo((string.Empty, string.Empty, 0)));
    }
}
