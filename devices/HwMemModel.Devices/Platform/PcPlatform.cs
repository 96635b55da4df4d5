using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Interrupts;
using HwMemModel.Devices.Misc;
using HwMemModel.Devices.Serial;
using HwMemModel.Devices.Timers;

namespace HwMemModel.Devices.Platform;

/// <summary>The devices of the default machine, as <see cref="PcPlatform.AddDefaultDevices"/> created and mapped them.</summary>
public sealed class PcDevices
{
    internal PcDevices(PcChipset chipset, Uart16550 serial, IsaDebugExit debugExit, Hpet hpet, FwCfg fwCfg)
    {
        Chipset = chipset;
        Serial = serial;
        DebugExit = debugExit;
        Hpet = hpet;
        FwCfg = fwCfg;
    }

    /// <summary>The fixed chipset (interrupt controllers, PIT, RTC, i8042, ports 0x92 and 0x80).</summary>
    public PcChipset Chipset { get; }

    /// <summary>COM1 at ports 0x3F8-0x3FF (GSI 4).</summary>
    public Uart16550 Serial { get; }

    /// <summary>isa-debug-exit at ports 0xF4-0xF7.</summary>
    public IsaDebugExit DebugExit { get; }

    /// <summary>The HPET at 0xFED00000 (0x400 bytes).</summary>
    public Hpet Hpet { get; }

    /// <summary>QEMU's fw_cfg at ports 0x510-0x511 with its DMA register at 0x514-0x51B.</summary>
    public FwCfg FwCfg { get; }

    /// <summary>The I/O APIC at 0xFEC00000.</summary>
    public IoApic IoApic => Chipset.IoApic;

    /// <summary>CPU 0's local APIC at 0xFEE00000.</summary>
    public LocalApic LocalApic => Chipset.LocalApic;

    /// <summary>The 8259 pair at 0x20-0x21 and 0xA0-0xA1, ELCR at 0x4D0-0x4D1.</summary>
    public Pic8259 Pic => Chipset.Pic;

    /// <summary>The 8254 PIT at 0x40-0x43.</summary>
    public Pit8254 Pit => Chipset.Pit;

    /// <summary>Port 0x61.</summary>
    public PcSpeakerPort PcSpeaker => Chipset.PcSpeaker;

    /// <summary>The RTC and CMOS at 0x70-0x71.</summary>
    public CmosRtc Rtc => Chipset.Rtc;

    /// <summary>The i8042 at 0x60 and 0x64.</summary>
    public I8042 Keyboard => Chipset.Keyboard;

    /// <summary>Port 0x92.</summary>
    public Port92 Port92 => Chipset.Port92;

    /// <summary>Port 0x80.</summary>
    public IoPort80 IoPort80 => Chipset.IoPort80;

    /// <summary>The GSI lines in front of the PIC pair and the I/O APIC.</summary>
    public GsiRouter Gsi => Chipset.Gsi;

    /// <summary>The devices that act on guest time.</summary>
    public IReadOnlyList<ITimedDevice> TimedDevices => Chipset.TimedDevices;

    /// <summary>The earliest <see cref="ITimedDevice.NextDeadline"/> of all devices (<see cref="long.MaxValue"/> for none).</summary>
    public long NextDeadline => Chipset.NextDeadline;

    /// <summary>Polls every timed device (cheap when nothing is due).</summary>
    public void Poll() => Chipset.Poll();

    /// <inheritdoc cref="PcChipset.CpuInterruptPending" />
    public bool CpuInterruptPending => Chipset.CpuInterruptPending;

    /// <inheritdoc cref="PcChipset.AcknowledgeInterrupt" />
    public int AcknowledgeInterrupt() => Chipset.AcknowledgeInterrupt();
}

/// <summary>Builds the devices of the default machine (a QEMU 7.2 <c>pc</c> subset; see PLATFORM.md).</summary>
public static class PcPlatform
{
    /// <summary>Base of the I/O APIC window.</summary>
    public const ulong IoApicBase = 0xFEC0_0000;

    /// <summary>Base of the HPET window.</summary>
    public const ulong HpetBase = 0xFED0_0000;

    /// <summary>Size of the HPET window.</summary>
    public const ulong HpetSize = 0x400;

    /// <summary>Base of the local APIC window.</summary>
    public const ulong LocalApicBase = 0xFEE0_0000;

    /// <summary>Size of the I/O APIC and local APIC windows.</summary>
    public const ulong ApicWindowSize = 0x1000;

    /// <summary>COM1's first port.</summary>
    public const ushort Com1Port = 0x3F8;

    /// <summary>isa-debug-exit's first port (iosize 4).</summary>
    public const ushort DebugExitPort = 0xF4;

    /// <summary>COM1's ISA IRQ.</summary>
    public const int Com1Irq = 4;

    /// <summary>The requester id of fw_cfg's DMA (its <see cref="DmaPort"/> is named "fw_cfg").</summary>
    public const int FwCfgRequesterId = 0x510;

    /// <summary>
    /// Creates every device of the default machine, maps it on <paramref name="memory"/> or <paramref name="ports"/>
    /// at PLATFORM.md's addresses and wires the interrupt lines as QEMU's pc machine does: COM1 to GSI 4; the PIT
    /// and the RTC through the HPET's legacy inputs to GSI 0 and 8; HPET timers to the GSI their route selects;
    /// the i8042 to GSI 1 and 12; GSIs to the PIC pair (below 16) and the I/O APIC; the PIC's INTR to LINT0 of
    /// CPU 0's local APIC (when it accepts PIC interrupts); local APIC EOIs to the I/O APIC; I/O APIC messages over the APIC bus to the local APICs they address; HPET legacy
    /// replacement switching the PIT's output off. QEMU's fw_cfg (always present on its pc machine) answers at
    /// ports 0x510-0x511 with DMA at 0x514-0x51B (<see cref="AddFwCfg"/>).
    /// </summary>
    /// <param name="memory">The physical bus (MMIO windows).</param>
    /// <param name="ports">The port bus.</param>
    /// <param name="clock">Guest time.</param>
    /// <param name="stop">Receives isa-debug-exit and reset requests.</param>
    /// <param name="serialOutput">Where COM1's output goes.</param>
    /// <param name="ramSize">The RAM size in bytes (for the CMOS memory bytes and fw_cfg), at least 1 MiB.</param>
    /// <param name="cpus">The CPU count fw_cfg reports (FW_CFG_NB_CPUS and FW_CFG_MAX_CPUS), 1 to 255.</param>
    /// <param name="x2Apic">Whether the local APICs support x2APIC mode (see <see cref="PcChipset.Add"/>); off as on QEMU 7.2's TCG.</param>
    /// <param name="log">Where the devices report guest mistakes (fw_cfg, the APICs); none when null.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A window or port range overlaps an existing one, the stream cannot be written, or the RAM size is below 1 MiB.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpus"/> is outside 1-255.</exception>
    public static PcDevices AddDefaultDevices(PhysicalBus memory, PortBus ports, GuestClock clock, StopRequest stop,
        Stream serialOutput, ulong ramSize, int cpus = 1, bool x2Apic = false, DeviceLog? log = null)
    {
        const string Who = "The default machine's device set";
        DeviceThrow.NotNull(memory, nameof(memory), Who);
        DeviceThrow.NotNull(ports, nameof(ports), Who);
        DeviceThrow.NotNull(clock, nameof(clock), Who);
        DeviceThrow.NotNull(stop, nameof(stop), Who);
        DeviceThrow.NotNull(serialOutput, nameof(serialOutput), Who);
        if (cpus is < 1 or > 255) DeviceThrow.OutOfRange(nameof(cpus), cpus, "The pc machine's fw_cfg reports 1 to 255 CPUs.");

        var chipset = PcChipset.Add(memory, ports, clock, stop, ramSize, cpus: Math.Min(cpus, 64), x2Apic: x2Apic, log: log);
        var serial = new Uart16550(serialOutput, clock);
        var debugExit = new IsaDebugExit(stop, DebugExitPort);
        var hpet = new Hpet(clock);
        serial.IrqLineChanged += chipset.IrqLine(Com1Irq);
        chipset.AttachHpet(hpet);
        chipset.AddTimedDevice(serial);
        memory.AddMmio("hpet", HpetBase, HpetSize, hpet);
        ports.Add("isa-debug-exit", DebugExitPort, 4, debugExit);
        ports.Add("serial", Com1Port, 8, serial);
        var fwCfg = AddFwCfg(memory, ports, ramSize, cpus, FwCfgHpet.Default, log);
        return new PcDevices(chipset, serial, debugExit, hpet, fwCfg);
    }

    /// <summary>
    /// Creates QEMU's fw_cfg with the pc machine's items (<see cref="PcFwCfg.Create"/>) and maps it at ports
    /// 0x510-0x511 ("fwcfg") with its DMA register at 0x514-0x51B ("fwcfg.dma"), as <c>info mtree</c> shows on QEMU.
    /// </summary>
    /// <param name="memory">The bus fw_cfg's DMA transfers reach (through a <see cref="DmaPort"/> named "fw_cfg").</param>
    /// <param name="ports">The port bus.</param>
    /// <param name="ramSize">The RAM size it reports.</param>
    /// <param name="cpus">The CPU count it reports (1-255).</param>
    /// <param name="hpet">The HPET it reports, or null for none.</param>
    /// <param name="log">Where invalid guest accesses are reported.</param>
    /// <exception cref="ArgumentException">The ports are taken.</exception>
    public static FwCfg AddFwCfg(PhysicalBus memory, PortBus ports, ulong ramSize, int cpus, FwCfgHpet? hpet, DeviceLog? log = null)
    {
        DeviceThrow.NotNull(memory, nameof(memory), "fw_cfg");
        DeviceThrow.NotNull(ports, nameof(ports), "fw_cfg");
        var fwCfg = PcFwCfg.Create(ramSize, cpus, hpet, new DmaPort(memory, "fw_cfg", FwCfgRequesterId), log);
        ports.Add("fwcfg", FwCfg.IoBase, FwCfg.IoPorts, fwCfg);
        ports.Add("fwcfg.dma", FwCfg.DmaIoBase, FwCfg.DmaIoPorts, fwCfg.DmaWindow!);
        return fwCfg;
    }

    /// <summary>
    /// Adds QEMU's <c>pc-testdev</c> (<c>-device pc-testdev</c>): ports 0xE0-0xEB, the IRQ ports 0x2000-0x2017
    /// driving ISA lines (GSIs) 0-15 through <paramref name="chipset"/>, and 64 KiB of memory at 0xFF000000.
    /// </summary>
    /// <exception cref="ArgumentNullException">An argument other than <paramref name="log"/> is null.</exception>
    /// <exception cref="ArgumentException">A window overlaps something already mapped (a BIOS image larger than 16 MiB reaches 0xFF000000).</exception>
    public static PcTestdev AddPcTestdev(PhysicalBus memory, PortBus ports, PcChipset chipset, StopRequest stop, DeviceLog? log = null)
    {
        DeviceThrow.NotNull(chipset, nameof(chipset), "pc-testdev");
        DeviceThrow.NotNull(stop, nameof(stop), "pc-testdev");
        var testdev = new PcTestdev((line, level) => chipset.Gsi.SetIrq(line, level), stop, log);
        testdev.Map(ports, memory);
        return testdev;
    }

    /// <summary>Adds the Bochs power-off port ("Shutdown" written byte by byte; not in QEMU 7.2) at <paramref name="port"/>.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The port is taken.</exception>
    public static BochsShutdownPort AddShutdownPort(PortBus ports, StopRequest stop, ushort port = BochsShutdownPort.DefaultPort)
    {
        DeviceThrow.NotNull(ports, nameof(ports), "The Bochs shutdown port");
        var device = new BochsShutdownPort(stop, port);
        ports.Add("bochs-shutdown", port, 1, device);
        return device;
    }
}
