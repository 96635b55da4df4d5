using HwMemModel.Bus;
using HwMemModel.Devices.Misc;
using HwMemModel.Devices.Platform;
using HwMemModel.Machine.Description;

namespace HwMemModel.Machine.Tests;

// fw_cfg, pc-testdev and the Bochs shutdown port on PcMachine and in machine descriptions. Values from QEMU 7.2
// (hw/nvram/fw_cfg.c, hw/i386/fw_cfg.c, hw/misc/pc-testdev.c) and a probe firmware run there.
public sealed class PlatformDevicesTests
{
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    private static uint In(PcMachine m, ushort port, int size = 1)
    {
        m.Ports.Read(port, size, out uint v, Cpu0);
        return v;
    }

    private static void Out(PcMachine m, ushort port, uint value, int size = 1) => m.Ports.Write(port, size, value, Cpu0);

    private static byte[] FwCfgItem(PcMachine m, ushort key, int count)
    {
        Out(m, 0x510, key, 2);
        return Enumerable.Range(0, count).Select(_ => (byte)In(m, 0x511)).ToArray();
    }

    [Test]
    public void The_built_in_machine_has_fw_cfg_with_one_cpu_and_its_ram_size()
    {
        var m = PcMachine.Create(new PcMachineOptions { RamSize = 64UL << 20 });
        Assert.That(m.FwCfg, Is.SameAs(m.Devices!.FwCfg));
        Assert.That(FwCfgItem(m, FwCfgKeys.Signature, 4), Is.EqualTo("QEMU"u8.ToArray()));
        Assert.That(FwCfgItem(m, FwCfgKeys.Id, 4), Is.EqualTo(new byte[] { 3, 0, 0, 0 }));
        Assert.That(FwCfgItem(m, FwCfgKeys.NbCpus, 2), Is.EqualTo(new byte[] { 1, 0 }));
        Assert.That(FwCfgItem(m, FwCfgKeys.RamSize, 8), Is.EqualTo(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0 }));
        Assert.That(m.Ports.FormatIoPorts(), Does.Contain("0510-0511 : fwcfg\n0514-051b : fwcfg.dma\n"));
    }

    [Test]
    public void Testdev_and_shutdown_port_are_absent_unless_asked_for()
    {
        var m = PcMachine.Create();
        Assert.That(m.PcTestdev, Is.Null);
        Assert.That(m.ShutdownPort, Is.Null);
        Out(m, 0xE0, 0x12, 1);
        Assert.That(In(m, 0xE0), Is.EqualTo(0xFFu), "unassigned as on QEMU without -device pc-testdev");
        Assert.That(In(m, 0x8900), Is.EqualTo(0xFFu), "QEMU 7.2 has no port 0x8900 (observed)");
    }

    [Test]
    public void Testdev_irq_port_raises_the_isa_line_on_the_pic()
    {
        // Observed on QEMU 7.2: outb 0x2005, 1 then OCW3 "read IRR" on 0x20 gives 0x20.
        var m = PcMachine.Create(new PcMachineOptions { PcTestdev = true });
        Out(m, 0x2005, 1);
        Out(m, 0x20, 0x0A);
        Assert.That(In(m, 0x20), Is.EqualTo(0x20u));
        m.Bus.Write(0xFF00_0010, 4, 0xCAFE_F00D, Cpu0);
        m.Bus.Read(0xFF00_0010, 4, out ulong v, Cpu0);
        Assert.That(v, Is.EqualTo(0xCAFE_F00DUL));
    }

    [Test]
    public void Shutdown_written_by_the_guest_stops_with_qemu_exit_status_0()
    {
        // Real mode at F000:FFF0: jmp F000:0000; mov dx, 0x8900; (mov al, c; out dx, al) x 8; hlt.
        var bios = new byte[64 * 1024];
        var code = new List<byte> { 0xBA, 0x00, 0x89 };
        foreach (char c in "Shutdown") code.AddRange([0xB0, (byte)c, 0xEE]);
        code.Add(0xF4);
        code.CopyTo(bios);
        new byte[] { 0xEA, 0x00, 0x00, 0x00, 0xF0 }.CopyTo(bios, 0xFFF0);
        var m = PcMachine.FromBios(bios, "shutdown.bin", new PcMachineOptions { ShutdownPort = true });

        var result = m.Run(1000);

        Assert.That(PcMachine.QemuExitStatus(result, m.Stop), Is.EqualTo(0));
        Assert.That(m.Stop.Reason, Does.Contain("Shutdown"));
    }

    private static MachineDescription Described(params DeviceDescription[] devices) => new() { RamSize = 64UL << 20, Cpus = 2, Devices = devices };

    [Test]
    public void A_description_can_place_fw_cfg_testdev_and_shutdown_port()
    {
        var d = Described(
            new DeviceDescription { Name = "hpet", Compatible = ["intel,hpet"], Base = PcPlatform.HpetBase, Options = new Dictionary<string, string> { ["timers"] = "4" } },
            new DeviceDescription { Name = "fw_cfg", Compatible = [DeviceCatalog.FwCfgIo], Space = Kernel.Drivers.ResourceKind.Io, Base = 0x510 },
            new DeviceDescription { Name = "testdev", Compatible = [DeviceCatalog.PcTestdevKind], Space = Kernel.Drivers.ResourceKind.Io, Base = 0xE0 },
            new DeviceDescription { Name = "poweroff", Compatible = [DeviceCatalog.BochsShutdown], Space = Kernel.Drivers.ResourceKind.Io, Base = 0x8900 });
        var m = PcMachine.Create(new PcMachineOptions { Description = d });

        Assert.That(m.FwCfg, Is.SameAs(m.Device<FwCfg>("fw_cfg")));
        Assert.That(FwCfgItem(m, FwCfgKeys.NbCpus, 2), Is.EqualTo(new byte[] { 2, 0 }));
        Assert.That(FwCfgItem(m, FwCfgKeys.RamSize, 8), Is.EqualTo(new byte[] { 0, 0, 0, 4, 0, 0, 0, 0 }));
        Assert.That(FwCfgItem(m, FwCfgKeys.Hpet, 5), Is.EqualTo(new byte[] { 1, 0x01, 0xA3, 0x86, 0x80 }), "4 timers: block id 0x8086a301");
        Assert.That(In(m, 0x514, 4), Is.EqualTo(0x554D4551u));
        Out(m, 0xE0, 0x1234_5678, 4);
        Assert.That(m.Device<PcTestdev>("testdev").Latch, Is.EqualTo(0x1234_5678u));
        Assert.That(m.Device<BochsShutdownPort>("poweroff").Port, Is.EqualTo(0x8900));
    }

    [Test]
    public void Fw_cfg_without_dma_takes_two_ports_and_reports_id_1()
    {
        var d = Described(new DeviceDescription
        {
            Name = "fw_cfg", Compatible = [DeviceCatalog.FwCfgIo], Space = Kernel.Drivers.ResourceKind.Io, Base = 0x510,
            Options = new Dictionary<string, string> { ["dma"] = "false" },
        });
        var m = PcMachine.Create(new PcMachineOptions { Description = d });
        Assert.That(FwCfgItem(m, FwCfgKeys.Id, 4), Is.EqualTo(new byte[] { 1, 0, 0, 0 }));
        Assert.That(FwCfgItem(m, FwCfgKeys.Hpet, 1), Is.EqualTo(new byte[] { 0xFF }), "no HPET: count 0xff as QEMU with hpet=off");
        Assert.That(In(m, 0x514), Is.EqualTo(0xFFu));
    }

    private static IEnumerable<TestCaseData> BadDescriptions()
    {
        var io = Kernel.Drivers.ResourceKind.Io;
        DeviceDescription Fw(string name = "fw", ulong port = 0x510, ulong? size = null, string? dma = null) => new()
        {
            Name = name, Compatible = [DeviceCatalog.FwCfgIo], Space = io, Base = port, Size = size,
            Options = dma is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["dma"] = dma },
        };
        yield return new TestCaseData(Described(Fw(size: 2)), "$.Machine.Devices[0].Size", "fw_cfg takes 12 ports").SetName("fw_cfg with DMA and 2 ports");
        yield return new TestCaseData(Described(Fw(dma: "maybe")), "$.Machine.Devices[0].Options.dma", "not a boolean").SetName("fw_cfg dma not a boolean");
        yield return new TestCaseData(Described(Fw(), Fw("fw2", 0x600)), "$.Machine.Devices[1]", "at most one").SetName("Two fw_cfg devices");
        yield return new TestCaseData(Described(new DeviceDescription { Name = "t", Compatible = [DeviceCatalog.PcTestdevKind], Space = io, Base = 0xF0 }),
            "$.Machine.Devices[0].Base", "fixed at 0xe0").SetName("pc-testdev elsewhere");
        yield return new TestCaseData(Described(
                new DeviceDescription { Name = "u", Compatible = ["ns16550a"], Space = io, Base = 0x2010 },
                new DeviceDescription { Name = "t", Compatible = [DeviceCatalog.PcTestdevKind], Space = io, Base = 0xE0 }),
            "$.Machine.Devices[1].Base", "overlaps 'u'").SetName("pc-testdev IRQ ports over a UART");
        yield return new TestCaseData(Described(new DeviceDescription { Name = "s", Compatible = [DeviceCatalog.BochsShutdown], Space = io, Base = 0x8900, Size = 2 }),
            "$.Machine.Devices[0].Size", "takes 1 port").SetName("Shutdown port with 2 ports");
        yield return new TestCaseData(Described(new DeviceDescription { Name = "s", Compatible = [DeviceCatalog.BochsShutdown], Base = 0xFEB00000 }),
            "$.Machine.Devices[0].Space", "cannot be placed in memory space").SetName("Shutdown port in memory space");
    }

    [TestCaseSource(nameof(BadDescriptions))]
    public void Bad_descriptions_name_the_path_and_the_rule(MachineDescription d, string path, string message)
    {
        var e = Assert.Throws<MachineDescriptionException>(() => MachineDescriptionValidator.Validate(d));
        Assert.That(e!.JsonPath, Is.EqualTo(path));
        Assert.That(e.Message, Does.Contain(message));
    }
}
