using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class LayoutTests
{
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    [Test]
    public void Higher_priority_region_is_visible_and_lower_one_shows_around_it()
    {
        var bus = new PhysicalBus();
        RamRegion low = bus.AddRam("low", 0, 0x4000);
        RamRegion high = bus.AddRam("high", 0x1000, 0x1000, priority: 1);
        low.HostWrite(0, Enumerable.Repeat((byte)0x11, 0x4000).ToArray());
        high.HostWrite(0, Enumerable.Repeat((byte)0x22, 0x1000).ToArray());

        bus.Read(0x0FFF, 1, out ulong before, Cpu0);
        bus.Read(0x1000, 1, out ulong inside, Cpu0);
        bus.Read(0x1FFF, 1, out ulong lastInside, Cpu0);
        bus.Read(0x2000, 1, out ulong after, Cpu0);

        Assert.That((before, inside, lastInside, after), Is.EqualTo((0x11UL, 0x22UL, 0x22UL, 0x11UL)));
    }

    [Test]
    public void Lower_priority_added_later_stays_hidden_under_the_higher_one()
    {
        var bus = new PhysicalBus();
        var device = new RecordingDevice("dev", 0x100, AccessConstraints.Any, AccessConstraints.Any);
        bus.AddMmio("dev", 0x1800, 0x100, device, priority: 5);
        bus.AddRam("ram", 0, 0x4000, priority: -1);

        bus.Write(0x1810, 4, 0xCAFE, Cpu0);
        bus.Write(0x1900, 4, 0xBEEF, Cpu0);
        bus.Read(0x1900, 4, out ulong ramValue, Cpu0);

        Assert.That(device.Accesses.Select(a => a.Offset), Is.EqualTo(new[] { 0x10UL }));
        Assert.That(ramValue, Is.EqualTo(0xBEEFUL));
    }

    [Test]
    public void Removing_the_higher_region_rebuilds_the_view_and_uncovers_the_lower_one()
    {
        var bus = new PhysicalBus();
        RamRegion low = bus.AddRam("low", 0, 0x4000);
        RamRegion high = bus.AddRam("high", 0x1000, 0x1000, priority: 1);
        low.HostWrite(0x1008, new byte[] { 0x5A });
        high.HostWrite(0x8, new byte[] { 0xA5 });
        bus.Read(0x1008, 1, out ulong whileCovered, Cpu0); // also primes the page cache with the high page

        bus.Remove(high);
        bus.Read(0x1008, 1, out ulong afterRemoval, Cpu0);

        Assert.That((whileCovered, afterRemoval), Is.EqualTo((0xA5UL, 0x5AUL)));
        Assert.That(bus.Regions, Is.EqualTo(new MemoryRegion[] { low }));
    }

    [Test]
    public void Adding_a_covering_region_takes_effect_for_pages_already_cached()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x4000);
        bus.Write(0x2000, 8, 0x1111, Cpu0);
        bus.Read(0x2000, 8, out _, Cpu0);
        var device = new RecordingDevice("dev", 0x1000, AccessConstraints.Any, AccessConstraints.Any);
        bus.AddMmio("dev", 0x2000, 0x1000, device, priority: 1);

        bus.Read(0x2000, 8, out _, Cpu0);
        bus.Write(0x2000, 8, 0x2222, Cpu0);

        Assert.That(device.Accesses, Has.Count.EqualTo(2));
    }

    [Test]
    public void Small_device_window_over_ram_leaves_the_rest_of_its_page_in_ram()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x4000);
        var device = new RecordingDevice("dev", 0x10, AccessConstraints.Any, AccessConstraints.Any);
        bus.AddMmio("dev", 0x1000, 0x10, device, priority: 1);

        bus.Write(0x1010, 8, 0x77, Cpu0);
        bus.Read(0x1010, 8, out ulong ram, Cpu0);
        bus.Read(0x1000, 8, out _, Cpu0);

        Assert.That(ram, Is.EqualTo(0x77UL));
        Assert.That(device.Accesses.Select(a => (a.IsWrite, a.Offset)), Is.EqualTo(new[] { (false, 0UL) }));
    }

    [Test]
    public void Guest_write_to_rom_is_dropped_and_counted()
    {
        var bus = new PhysicalBus();
        byte[] image = Enumerable.Range(0, 0x1000).Select(i => (byte)i).ToArray();
        RomRegion rom = bus.AddRom("rom", 0xC0000, image);

        bus.Read(0xC0010, 4, out ulong before, Cpu0);
        BusStatus write = bus.Write(0xC0010, 4, 0xFFFFFFFF, Cpu0);
        BusStatus bytes = bus.WriteBytes(0xC0FFE, new byte[] { 1, 2 }, Cpu0);
        bus.Read(0xC0010, 4, out ulong after, Cpu0);

        Assert.That((write, bytes), Is.EqualTo((BusStatus.Ok, BusStatus.Ok)));
        Assert.That(before, Is.EqualTo(0x13121110UL));
        Assert.That(after, Is.EqualTo(0x13121110UL));
        Assert.That(rom.Image[0xFFE], Is.EqualTo((byte)0xFE));
        Assert.That(bus.Counters.RomWritesDropped, Is.EqualTo(2));
    }

    [Test]
    public void Rom_image_is_copied_when_the_rom_is_added()
    {
        var bus = new PhysicalBus();
        var image = new byte[0x1000];
        bus.AddRom("rom", 0x10000, image);
        image[0] = 0x99;

        bus.Read(0x10000, 1, out ulong value, Cpu0);

        Assert.That(value, Is.Zero);
    }

    [Test]
    public void LoadImage_writes_rom_through_an_alias()
    {
        var bus = new PhysicalBus();
        RomRegion bios = bus.AddRom("bios", 0xFFFF_0000, new byte[0x10000]);
        bus.AddAlias("System ROM", 0xF0000, 0x10000, bios, 0);

        bus.LoadImage(0xFFFF0, new byte[] { 0xEA, 0x5B, 0xE0 });

        Assert.That(bios.Image[0xFFF0..0xFFF3].ToArray(), Is.EqualTo(new byte[] { 0xEA, 0x5B, 0xE0 }));
    }

    [Test]
    public void Bios_alias_at_f0000_shows_the_top_64_KiB_of_the_rom()
    {
        var bus = new PhysicalBus();
        var image = new byte[0x40000];
        image[0x3FFF0] = 0xEA;               // reset vector: 4 GiB - 16
        image[0x30000] = 0x42;               // first byte of the top 64 KiB
        RomRegion bios = bus.AddRom("bios", 0xFFFC_0000, image);
        bus.AddAlias("System ROM", 0xF0000, 0x10000, bios, 0x30000);

        bus.Read(0xFFFF0, 1, out ulong resetByte, Cpu0);
        bus.Read(0xF0000, 1, out ulong first, Cpu0);
        bus.Read(0xFFFF_FFF0, 1, out ulong direct, Cpu0);

        Assert.That((resetByte, first, direct), Is.EqualTo((0xEAUL, 0x42UL, 0xEAUL)));
    }

    [Test]
    public void Alias_of_ram_reads_and_writes_reach_the_target()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0x100000, 0x10000);
        bus.AddAlias("mirror", 0x800000, 0x2000, ram, 0x3000);

        bus.Write(0x800FFC, 8, 0x0102030405060708, Cpu0);  // crosses a page inside the alias
        bus.Read(0x103FFC, 8, out ulong throughTarget, Cpu0);
        ram.HostWrite(0x4100, new byte[] { 0x5C });
        bus.Read(0x801100, 1, out ulong throughAlias, Cpu0);

        Assert.That(throughTarget, Is.EqualTo(0x0102030405060708UL));
        Assert.That(throughAlias, Is.EqualTo(0x5CUL));
    }

    [Test]
    public void Alias_at_an_unaligned_offset_still_maps_byte_for_byte()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 0x4000);
        bus.AddAlias("odd", 0x10000, 0x1000, ram, 0x123);
        ram.HostWrite(0x123 + 0x800, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 });

        bus.Read(0x10800, 8, out ulong first, Cpu0);
        bus.Read(0x10800, 8, out ulong second, Cpu0);

        Assert.That((first, second), Is.EqualTo((0x0807060504030201UL, 0x0807060504030201UL)));
    }

    [Test]
    public void Alias_of_a_device_window_offsets_the_device_registers()
    {
        var bus = new PhysicalBus();
        var device = new RecordingDevice("dev", 0x100, AccessConstraints.Any, AccessConstraints.Any);
        MmioRegion window = bus.AddMmio("dev", 0xFEC00000, 0x100, device);
        bus.AddAlias("dev-alias", 0xE0000000, 0x80, window, 0x40);

        bus.Write(0xE0000010, 4, 0x1234, Cpu0);

        Assert.That(device.Accesses.Select(a => (a.Offset, a.Value)), Is.EqualTo(new[] { (0x50UL, 0x1234UL) }));
    }

    [Test]
    public void Alias_of_an_alias_reaches_the_final_target()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 0x10000);
        AliasRegion first = bus.AddAlias("a1", 0x100000, 0x8000, ram, 0x4000);
        bus.AddAlias("a2", 0x200000, 0x1000, first, 0x2000);
        ram.HostWrite(0x6010, new byte[] { 0x77 });

        bus.Read(0x200010, 1, out ulong value, Cpu0);

        Assert.That(value, Is.EqualTo(0x77UL));
    }
}
