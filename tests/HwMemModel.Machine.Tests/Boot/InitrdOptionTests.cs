using HwMemModel.Machine.Boot;

namespace HwMemModel.Machine.Tests.Boot;

// QEMU 7.2's -initrd handling for multiboot kernels (hw/i386/multiboot.c, get_opt_value in util/qemu-option.c).
public sealed class InitrdOptionTests
{
    private static readonly Dictionary<string, byte[]> Files = new(StringComparer.Ordinal)
    {
        ["mod1.bin"] = [1, 2, 3],
        ["mod2"] = [4],
        ["a,b"] = [5, 6],
    };

    private static byte[] Read(string path) => Files.TryGetValue(path, out var b) ? b : throw new FileNotFoundException($"Could not find file '{path}'.");

    [Test]
    public void A_single_file_becomes_module_0_with_its_path_as_string()
    {
        var modules = MultibootLoader.ModulesFromInitrd("mod1.bin", Read);
        Assert.That(modules, Has.Count.EqualTo(1));
        Assert.That(modules[0].CommandLine, Is.EqualTo("mod1.bin"));
        Assert.That(modules[0].Image, Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void Items_split_at_commas_and_text_after_a_space_is_the_modules_arguments()
    {
        var modules = MultibootLoader.ModulesFromInitrd("mod1.bin arg x,mod2", Read);
        Assert.That(modules.Select(m => m.CommandLine), Is.EqualTo(new[] { "mod1.bin arg x", "mod2" }));
        Assert.That(modules[1].Image, Is.EqualTo(new byte[] { 4 }));
    }

    [Test]
    public void A_doubled_comma_is_a_comma_in_the_name()
    {
        Assert.That(MultibootLoader.SplitInitrd("a,,b,mod2"), Is.EqualTo(new[] { "a,b", "mod2" }));
        Assert.That(MultibootLoader.SplitInitrd(",,,"), Is.EqualTo(new[] { ",", "" }));
        Assert.That(MultibootLoader.ModulesFromInitrd("a,,b", Read)[0].Image, Is.EqualTo(new byte[] { 5, 6 }));
    }

    [Test]
    public void A_missing_file_is_a_one_line_error_naming_it()
    {
        var e = Assert.Throws<ImageLoadException>(() => MultibootLoader.ModulesFromInitrd("mod2,nope.bin", Read));
        Assert.That(e!.ImagePath, Is.EqualTo("nope.bin"));
        Assert.That(e.Message, Does.StartWith("nope.bin: Failed to open file 'nope.bin' for --initrd module 1"));
        Assert.That(e.Message, Does.Not.Contain("\n"));
    }

    [Test]
    public void Modules_from_initrd_load_as_qemu_places_them()
    {
        // Same layout as Modules_are_placed_as_qemu_places_initrd_items (observed on QEMU 7.2 with
        // -append x -initrd "mod1.bin arg,mod2"): module 0's string is "mod1.bin arg".
        var files = new Dictionary<string, byte[]> { ["mod1.bin"] = new byte[0x1388], ["mod2"] = new byte[10] };
        var modules = MultibootLoader.ModulesFromInitrd("mod1.bin arg,mod2", p => files[p]);
        var bus = DefaultMachine.CreateBus();
        var result = MultibootLoader.Load(bus, TestImages.Aout(0x10_0000, TestImages.Pattern(0x100), bssEnd: 0x10_2004), "kernel.bin", "x", DefaultMachine.DefaultRamSize, modules);
        Assert.That(result.Modules, Is.EqualTo(new[] { new LoadedModule(0x10_4000, 0x10_5388, 0x10_3020), new LoadedModule(0x10_6000, 0x10_600A, 0x10_302D) }));
    }
}
