using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class HostMisuseTests
{
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    private static RecordingDevice Device(AccessConstraints valid, AccessConstraints impl) => new("dev", 16, valid, impl);

    [Test]
    public void Zero_size_ram_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new PhysicalBus().AddRam("ram", 0x1000, 0));

        Assert.That(ex!.Message, Does.StartWith("RAM 'ram' at 0x1000 has size 0; RAM must cover at least one 4 KiB page."));
    }

    [Test]
    public void Zero_size_mmio_window_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new PhysicalBus().AddMmio("dev", 0x1000, 0, Device(AccessConstraints.Any, AccessConstraints.Any)));

        Assert.That(ex!.Message, Does.StartWith("MMIO 'dev' at 0x1000 has size 0; a region must cover at least one byte."));
    }

    [Test]
    public void Unaligned_ram_base_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new PhysicalBus().AddRam("ram", 0x1234, 0x1000));

        Assert.That(ex!.Message, Does.StartWith(
            "RAM 'ram' base 0x1234 is not 4 KiB aligned; RAM and ROM must start and end on 4 KiB page boundaries"));
    }

    [Test]
    public void Rom_image_of_partial_page_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new PhysicalBus().AddRom("bios", 0xF0000, new byte[0x800]));

        Assert.That(ex!.Message, Does.StartWith("ROM 'bios' size 0x800 is not 4 KiB aligned"));
    }

    [Test]
    public void Mmio_window_may_be_unaligned_and_smaller_than_a_page()
    {
        var bus = new PhysicalBus();

        MmioRegion window = bus.AddMmio("tiny", 0x1003, 3, Device(AccessConstraints.Any, AccessConstraints.Any));

        Assert.That((window.Base, window.Size, window.Last), Is.EqualTo((0x1003UL, 3UL, 0x1005UL)));
    }

    [Test]
    public void Region_beyond_maxphyaddr_is_rejected_naming_the_limit()
    {
        var ex = Assert.Throws<ArgumentException>(() => new PhysicalBus(40).AddRam("ram", 0xFF_FFFF_F000, 0x2000));

        Assert.That(ex!.Message, Does.StartWith(
            "RAM 'ram' ends at 0x10000000fff beyond MAXPHYADDR 40 bits (highest physical address 0xffffffffff)."));
    }

    [Test]
    public void Region_wrapping_past_2_to_the_64_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new PhysicalBus().AddMmio("dev", 0xFFFF_FFFF_FFFF_FF00, 0x200, Device(AccessConstraints.Any, AccessConstraints.Any)));

        Assert.That(ex!.Message, Does.StartWith("MMIO 'dev' at 0xffffffffffffff00 with size 0x200 wraps past 2^64"));
    }

    [Test]
    public void Overlap_at_equal_priority_is_rejected_naming_both_regions()
    {
        var bus = new PhysicalBus();
        bus.AddRam("low", 0, 0x10000);

        var ex = Assert.Throws<ArgumentException>(() =>
            bus.AddMmio("dev", 0xF000, 0x2000, Device(AccessConstraints.Any, AccessConstraints.Any)));

        Assert.That(ex!.Message, Does.StartWith(
            "MMIO 'dev' [0xf000-0x10fff] overlaps RAM 'low' [0x0-0xffff] at equal priority 0; " +
            "overlapping regions need distinct priorities"));
    }

    [Test]
    public void Adjacent_regions_of_equal_priority_do_not_overlap()
    {
        var bus = new PhysicalBus();
        bus.AddRam("a", 0, 0x1000);

        Assert.DoesNotThrow(() => bus.AddRam("b", 0x1000, 0x1000));
    }

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(16)]
    [TestCase(-1)]
    public void Unsupported_access_size_is_rejected_naming_the_allowed_sizes(int size)
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x1000);

        var read = Assert.Throws<ArgumentOutOfRangeException>(() => bus.Read(0, size, out _, Cpu0));
        var write = Assert.Throws<ArgumentOutOfRangeException>(() => bus.Write(0, size, 0, Cpu0));

        string expected = $"Access size {size} is not supported: only 1, 2, 4 or 8 bytes are allowed.";
        Assert.That(read!.Message, Does.StartWith(expected));
        Assert.That(write!.Message, Does.StartWith(expected));
    }

    [Test]
    public void Access_size_is_checked_even_on_a_cached_page()
    {
        var bus = new PhysicalBus();
        bus.AddRam("ram", 0, 0x1000);
        bus.Write(0, 8, 1, Cpu0);
        bus.Read(0, 8, out _, Cpu0);

        Assert.Throws<ArgumentOutOfRangeException>(() => bus.Read(0, 3, out _, Cpu0));
        Assert.Throws<ArgumentOutOfRangeException>(() => bus.Write(0, 6, 0, Cpu0));
    }

    [Test]
    public void Access_wrapping_past_2_to_the_64_is_rejected()
    {
        var bus = new PhysicalBus();

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => bus.ReadBytes(ulong.MaxValue - 1, new byte[4], Cpu0));
        Assert.Throws<ArgumentOutOfRangeException>(() => bus.Read(ulong.MaxValue - 3, 8, out _, Cpu0));

        Assert.That(ex!.Message, Does.StartWith("An access of 4 bytes at 0xfffffffffffffffe wraps past 2^64"));
    }

    [TestCase(3, 4, "Valid.MinSize 3 is not a power of two in 1..8; allowed sizes are 1, 2, 4 and 8.")]
    [TestCase(1, 16, "Valid.MaxSize 16 is not a power of two in 1..8; allowed sizes are 1, 2, 4 and 8.")]
    [TestCase(0, 4, "Valid.MinSize 0 is not a power of two in 1..8")]
    [TestCase(8, 4, "Valid.MinSize 8 is greater than Valid.MaxSize 4; MinSize must not exceed MaxSize.")]
    public void Invalid_valid_constraints_are_rejected(int min, int max, string message)
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new PhysicalBus().AddMmio("dev", 0x1000, 0x10, Device(new AccessConstraints(min, max), AccessConstraints.Any)));

        Assert.That(ex!.Message, Does.StartWith("MMIO 'dev' device 'dev': " + message));
    }

    [Test]
    public void Invalid_impl_constraints_are_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() =>
            new PhysicalBus().AddMmio("dev", 0x1000, 0x10, Device(AccessConstraints.Any, new AccessConstraints(4, 2))));

        Assert.That(ex!.Message, Does.Contain("Impl.MinSize 4 is greater than Impl.MaxSize 2"));
    }

    [Test]
    public void Alias_reaching_past_its_target_is_rejected()
    {
        var bus = new PhysicalBus();
        RomRegion bios = bus.AddRom("bios", 0xFFFF0000, new byte[0x10000]);

        var ex = Assert.Throws<ArgumentException>(() => bus.AddAlias("System ROM", 0xF0000, 0x10000, bios, 0x8000));

        Assert.That(ex!.Message, Does.StartWith(
            "Alias 'System ROM' shows 0x10000 bytes from offset 0x8000 of ROM 'bios' [0xffff0000-0xffffffff], " +
            "which is only 0x10000 bytes long; the aliased range must lie inside the target."));
    }

    [Test]
    public void Removing_a_region_twice_is_rejected()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 0x1000);
        bus.Remove(ram);

        var ex = Assert.Throws<ArgumentException>(() => bus.Remove(ram));

        Assert.That(ex!.Message, Does.StartWith("RAM 'ram' [0x0-0xfff] is not mapped on this bus"));
    }

    [TestCase(11)]
    [TestCase(53)]
    public void Maxphyaddr_outside_12_to_52_is_rejected(int bits)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new PhysicalBus(bits));

        Assert.That(ex!.Message, Does.StartWith($"MAXPHYADDR {bits} bits is not supported: x86-64 allows 12 to 52 physical address bits."));
    }

    [Test]
    public void Empty_region_name_is_rejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => new PhysicalBus().AddRam(" ", 0, 0x1000));

        Assert.That(ex!.Message, Does.StartWith("A RAM region needs a non-empty name."));
    }

    [Test]
    public void Loading_an_image_over_mmio_or_unmapped_space_is_rejected_and_writes_nothing()
    {
        var bus = new PhysicalBus();
        RamRegion ram = bus.AddRam("ram", 0, 0x1000);
        bus.AddMmio("dev", 0x1000, 0x10, Device(AccessConstraints.Any, AccessConstraints.Any));

        var overMmio = Assert.Throws<ArgumentException>(() => bus.LoadImage(0xFF0, Enumerable.Repeat((byte)0x11, 0x20).ToArray()));
        var overGap = Assert.Throws<ArgumentException>(() => bus.LoadImage(0x2000, new byte[] { 1 }));

        Assert.That(overMmio!.Message, Does.StartWith(
            "LoadImage: 0x1000 (in the image of 32 bytes at 0xff0) is MMIO 'dev' [0x1000-0x100f]; images may only be loaded into RAM and ROM."));
        Assert.That(overGap!.Message, Does.StartWith("LoadImage: 0x2000 (in the image of 1 bytes at 0x2000) is unmapped"));
        Assert.That(ram.TouchedPages, Is.Zero);
    }

    [Test]
    public void Host_access_outside_a_region_is_rejected()
    {
        RamRegion ram = new PhysicalBus().AddRam("ram", 0, 0x1000);

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ram.HostWrite(0xFFF, new byte[2]));

        Assert.That(ex!.Message, Does.StartWith(
            "Host access of 2 bytes at offset 0xfff does not fit in RAM 'ram' [0x0-0xfff] (size 0x1000): offsets must lie in 0..0xfff."));
    }
}
