using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine.Description;

namespace HwMemModel.Machine.Tests.Description;

public sealed class MachineDescriptionTests
{
    private static string DefaultJsonPath => Path.Combine(TestContext.CurrentContext.TestDirectory, "machines", "default.json");

    [Test]
    public void The_shipped_default_json_describes_the_built_in_default_machine()
    {
        var fromJson = MachineDescriptionReader.FromJsonFile(DefaultJsonPath);
        var builtIn = MachineDescription.Default;
        Assert.That(fromJson.RamSize, Is.EqualTo(128UL << 20));
        Assert.That(fromJson.RamSize, Is.EqualTo(builtIn.RamSize));
        Assert.That(fromJson.NumaNodes, Is.EqualTo(builtIn.NumaNodes));
        Assert.That(fromJson.Cpus, Is.EqualTo(builtIn.Cpus));
        Assert.That(fromJson.Devices.Select(Key), Is.EqualTo(builtIn.Devices.Select(Key)));
        Assert.That(fromJson.Devices[4].Path, Is.EqualTo("$.Machine.Devices[4]"));

        static string Key(DeviceDescription d) => $"{d.Name}|{string.Join(',', d.Compatible)}|{d.Space}|{d.Base:x}|{d.Irq}|{d.Trigger}|"
            + string.Join(',', d.Options.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key}={o.Value}"));
    }

    [Test]
    public void Sizes_and_numbers_accept_suffixes_and_hex()
    {
        var d = MachineDescriptionReader.FromJson("""{ "Machine": { "RamSize": "0x4000000", "NumaNodes": 2, "Cpus": "4", "Tlb": "tiny" } }""");
        Assert.That(d.RamSize, Is.EqualTo(64UL << 20));
        Assert.That(d.NumaNodes, Is.EqualTo(2));
        Assert.That(d.Cpus, Is.EqualTo(4));
        Assert.That(d.Tlb, Is.SameAs(HwMemModel.Mmu.TlbGeometry.Tiny));
        Assert.That(Quantity.TryParseSize("16M", out var m) ? m : 0, Is.EqualTo(16UL << 20));
        Assert.That(Quantity.TryParseSize("2 GiB", out var g) ? g : 0, Is.EqualTo(2UL << 30));
        Assert.That(Quantity.TryParseSize("12Q", out _), Is.False);
    }

    private static string Machine(string devices, string extra = "")
        => $$"""{ "Machine": { "RamSize": "64M"{{extra}}, "Devices": [ {{devices}} ] } }""";

    private const string Dma0 = """{ "Name": "dma0", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 16 }""";

    private static IEnumerable<TestCaseData> BadDescriptions()
    {
        // Overlapping device windows.
        yield return new TestCaseData(Machine(Dma0 + "," + """{ "Name": "dma1", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 18 }"""),
            "$.Machine.Devices[1].Base", "overlaps 'dma0'").SetName("Overlapping device windows");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfec00000", "Irq": 16 }"""),
            "$.Machine.Devices[0].Base", "overlaps 'IOAPIC 0'").SetName("Window over the IOAPIC");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0x200000", "Irq": 16 }"""),
            "$.Machine.Devices[0].Base", "overlaps 'System RAM'").SetName("Window over RAM");
        yield return new TestCaseData(Machine("""{ "Name": "u", "Compatible": "ns16550a", "Space": "io", "Base": "0x40" }"""),
            "$.Machine.Devices[0].Base", "overlaps 'pit'").SetName("Ports over the PIT");
        // Unknown compatible string.
        yield return new TestCaseData(Machine("""{ "Name": "w", "Compatible": [ "acme,widget" ], "Base": "0xfeb00000" }"""),
            "$.Machine.Devices[0].Compatible", "unknown compatible string 'acme,widget'; known: ns16550a").SetName("Unknown compatible string");
        // IRQ out of range, or taken.
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 24 }"""),
            "$.Machine.Devices[0].Irq", "24 is out of range; the IOAPIC has GSIs 0 to 23").SetName("IRQ out of range");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 8 }"""),
            "$.Machine.Devices[0].Irq", "GSI 8 is already driven by the RTC").SetName("IRQ of the RTC");
        yield return new TestCaseData(Machine(Dma0 + "," + """{ "Name": "v", "Compatible": "virtio,mmio", "Base": "0xfeb01000", "Irq": 16, "Options": { "disk-size": "1M" } }"""),
            "$.Machine.Devices[1].Irq", "GSI 16 is already driven by dma0 ($.Machine.Devices[0])").SetName("IRQ shared by two devices");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000" }"""),
            "$.Machine.Devices[0].Irq", "missing: hwmem,dma-engine needs an interrupt line").SetName("Required IRQ missing");
        yield return new TestCaseData(Machine("""{ "Name": "h", "Compatible": "intel,hpet", "Base": "0xfed00000", "Irq": 2 }"""),
            "$.Machine.Devices[0].Irq", "intel,hpet has no interrupt line to connect").SetName("IRQ for the HPET");
        // Missing or bad options.
        yield return new TestCaseData(Machine("""{ "Name": "v", "Compatible": "virtio,mmio", "Base": "0xfeb01000", "Irq": 17 }"""),
            "$.Machine.Devices[0].Options", "missing required option: virtio,mmio needs disk-size").SetName("Missing required option");
        yield return new TestCaseData(Machine("""{ "Name": "v", "Compatible": "virtio,mmio", "Base": "0xfeb01000", "Irq": 17, "Options": { "disk-size": "1000" } }"""),
            "$.Machine.Devices[0].Options.disk-size", "a multiple of 512 bytes").SetName("Disk size not in sectors");
        yield return new TestCaseData(Machine("""{ "Name": "v", "Compatible": "virtio,mmio", "Base": "0xfeb01000", "Irq": 17, "Options": { "disk-file": "/nonexistent/disk.img" } }"""),
            "$.Machine.Devices[0].Options.disk-file", "does not exist").SetName("Missing disk file");
        yield return new TestCaseData(Machine("""{ "Name": "u", "Compatible": "ns16550a", "Space": "io", "Base": "0x2f8", "Options": { "baud": "9600" } }"""),
            "$.Machine.Devices[0].Options.baud", "unknown option for ns16550a; allowed: reg-shift, output, input").SetName("Unknown option");
        yield return new TestCaseData(Machine("""{ "Name": "u", "Compatible": "ns16550a", "Space": "io", "Base": "0x2f8", "Options": { "reg-shift": "2" } }"""),
            "$.Machine.Devices[0].Options.reg-shift", "needs a memory-space UART").SetName("Register shift on ports");
        // Shape errors.
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Bsae": "0xfeb00000", "Irq": 16 }"""),
            "$.Machine.Devices[0].Bsae", "unknown key; allowed here: Name, Compatible").SetName("Misspelt key");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Irq": 16 }"""),
            "$.Machine.Devices[0].Base", "missing: hwmem,dma-engine needs a base address").SetName("Missing base");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfeb0zz00", "Irq": 16 }"""),
            "$.Machine.Devices[0].Base", "'0xfeb0zz00' is not a number").SetName("Bad number");
        yield return new TestCaseData(Machine("""{ "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 16 }"""),
            "$.Machine.Devices[0].Name", "missing").SetName("Missing name");
        yield return new TestCaseData(Machine(Dma0 + "," + """{ "Name": "dma0", "Compatible": "virtio,mmio", "Base": "0xfeb01000", "Irq": 17, "Options": { "disk-size": "1M" } }"""),
            "$.Machine.Devices[1].Name", "'dma0' is already the name of $.Machine.Devices[0]").SetName("Duplicate name");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Base": "0xfeb00000", "Irq": 16, "Trigger": "sideways" }"""),
            "$.Machine.Devices[0].Trigger", "allowed: edge, level-high, level-low").SetName("Bad trigger");
        yield return new TestCaseData(Machine("""{ "Name": "d", "Compatible": "hwmem,dma-engine", "Space": "io", "Base": "0x300", "Irq": 16 }"""),
            "$.Machine.Devices[0].Space", "cannot be placed in io space; allowed: memory").SetName("Wrong address space");
        yield return new TestCaseData(Machine("").Replace("64M", "16M", StringComparison.Ordinal), "$.Machine.RamSize", "from 32M to 3G").SetName("RAM too small");
        yield return new TestCaseData(Machine("", ", \"Cpus\": 65"), "$.Machine.Cpus", "65 is out of range; 1 to 64").SetName("Too many CPUs");
        yield return new TestCaseData(Machine("", ", \"Tlb\": \"huge\""), "$.Machine.Tlb", "allowed: default, tiny, none").SetName("Unknown TLB geometry");
        yield return new TestCaseData("""{ "Machine": { "RamSize": "64M", """, "$", "not valid JSON").SetName("Broken JSON");
        yield return new TestCaseData("""{ "Machine": { "RamSize": "64M", "NumaNodes": [ "32M", "16M" ] } }""",
            "$.Machine.NumaNodes", "the node sizes add up to 48 MiB but RamSize is 64 MiB").SetName("NUMA sizes not adding up");
        yield return new TestCaseData("""{ "Machine": { "RamSize": "64M", "NumaNodes": [ "33M", "31M" ] } }""",
            "$.Machine.NumaNodes[0]", "a multiple of 2 MiB").SetName("NUMA node not 2 MiB aligned");
        yield return new TestCaseData("""{ "Machine": { "RamSize": "64M", "Tlb": { "DataL1": [ { "Entries": 48, "Ways": 4, "PageSizes": [ "4K" ] } ] } } }""",
            "$.Machine.Tlb", "the number of sets (entries / ways) must be a power of two").SetName("TLB with 12 sets");
        yield return new TestCaseData("""{ "Machine": { "RamSize": "64M", "Tlb": { "DataL1": [ { "Entries": 64, "Ways": 4, "PageSizes": [ "8K" ] } ] } } }""",
            "$.Machine.Tlb.DataL1[0].PageSizes", "'8K' is not a page size; allowed: 4K, 2M, 1G").SetName("TLB page size unknown");
    }

    [TestCaseSource(nameof(BadDescriptions))]
    public void Bad_descriptions_fail_with_the_json_path_and_what_is_allowed(string json, string path, string message)
    {
        var e = Assert.Throws<MachineDescriptionException>(() => MachineDescriptionReader.FromJson(json))!;
        Assert.That(e.JsonPath, Is.EqualTo(path));
        Assert.That(e.Message, Does.StartWith(path + ": "));
        Assert.That(e.Message, Does.Contain(message));
    }

    [Test]
    public void Uneven_NUMA_nodes_and_a_custom_TLB_reach_the_kernel_and_its_CPUs()
    {
        var d = MachineDescriptionReader.FromJson("""
            { "Machine": { "RamSize": "128M", "NumaNodes": [ "96M", "32M" ],
              "Tlb": { "DataL1": [ { "Name": "D4K", "Entries": 16, "Ways": 4, "PageSizes": [ "4K" ] } ], "PagingStructureCaches": false } } }
            """);
        Assert.That(d.NumaNodes, Is.EqualTo(2));
        using var m = SimulatedMachine.Build(d);
        var zones = m.Kernel.Pages.Zones;
        // Node 1 starts at 96 MiB: every zone of node 1 lies at or above it, every zone of node 0 below it.
        Assert.That(m.Kernel.Pages.NodeOf(95UL << 20), Is.Zero);
        Assert.That(m.Kernel.Pages.NodeOf(96UL << 20), Is.EqualTo(1));
        Assert.That(m.Kernel.Cpus[0].Mmu.Geometry.DataL1.Single().Entries, Is.EqualTo(16));
        Assert.That(zones, Is.Not.Empty);
    }

    [Test]
    public void A_missing_file_is_reported_with_its_name()
    {
        var e = Assert.Throws<MachineDescriptionException>(() => MachineDescriptionReader.FromJsonFile("/nonexistent/machine.json"))!;
        Assert.That(e.Message, Does.Contain("cannot read machine description '/nonexistent/machine.json'"));
    }

    [Test]
    public void Descriptions_written_in_code_are_checked_the_same_way()
    {
        var d = MachineDescription.Default with
        {
            Devices = [.. MachineDescription.Default.Devices, new DeviceDescription { Name = "late", Compatible = ["hwmem,dma-engine"], Base = 0xFEB00000, Irq = 19 }],
        };
        var e = Assert.Throws<MachineDescriptionException>(() => SimulatedMachine.Build(d))!;
        Assert.That(e.JsonPath, Is.EqualTo("$.Machine.Devices[5].Base"));
        Assert.That(e.Message, Does.Contain("overlaps 'dma0'"));
    }

    [Test]
    public void A_built_machine_maps_every_described_device_where_the_description_says()
    {
        var d = MachineDescriptionReader.FromJson(Machine(Dma0 + "," +
            """{ "Name": "uart9", "Compatible": "ns16550a", "Base": "0xfeb02000", "Irq": 18, "Options": { "reg-shift": "2" } }""", ", \"NumaNodes\": 2, \"Cpus\": 2"));
        using var m = SimulatedMachine.Build(d);
        string iomem = m.Bus.FormatIoMem();
        Assert.That(iomem, Does.Contain("feb00000-feb00fff : dma0"));
        Assert.That(iomem, Does.Contain("feb02000-feb0201f : uart9")); // 8 registers, 4 bytes apart
        Assert.That(m.Kernel.Cpus, Has.Count.EqualTo(2));
        Assert.That(m.Kernel.Pages.NodeCount, Is.EqualTo(2));
        Assert.That(m.PlatformDevices.Select(p => p.Name), Is.EqualTo(new[] { "dma0", "uart9" }));
        var dma = m.PlatformDevices[0];
        Assert.That(dma.GetResource(ResourceKind.Memory)!.Value.Start, Is.EqualTo(0xFEB00000UL));
        Assert.That(dma.GetIrq(), Is.EqualTo(16));
        Assert.That(dma.GetResource(ResourceKind.Irq)!.Value.Trigger, Is.EqualTo(IrqTrigger.LevelHigh));
    }
}
