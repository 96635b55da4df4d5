using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Interrupts;
using HwMemModel.Devices.Misc;
using HwMemModel.Devices.Timers;

namespace HwMemModel.Devices.Platform;

/// <summary>
/// The fixed part of QEMU's <c>pc</c> machine that every machine description gets: the I/O APIC and CPU 0's local
/// APIC, the 8259 pair with its ELCR, the 8254 PIT with the speaker port, the RTC/CMOS, the i8042, ports 0x92 and
/// 0x80, and the GSI lines in front of the interrupt controllers. Optional devices (serial ports, the HPET,
/// isa-debug-exit, bus masters) are added beside it; <see cref="AttachHpet"/> routes the PIT and the RTC through
/// the HPET's legacy inputs as QEMU does when an HPET exists (without one they drive GSI 0 and GSI 8 directly).
/// </summary>
public sealed class PcChipset
{
    private readonly List<ITimedDevice> _extraTimed = [];
    private ITimedDevice[] _timed = [];

    private PcChipset(PhysicalBus memory, PortBus ports, GuestClock clock, StopRequest stop, ulong ramSize, ulong ioApicBase, ulong localApicBase,
        int cpus, bool x2Apic, DeviceLog? log)
    {
        Rtc = new CmosRtc(clock, ramSize);
        IoApic = new IoApic();
        // One local APIC per CPU behind an APIC bus that routes MMIO by requesting CPU (and IA32_APIC_BASE) and carries
        // IPIs, also with one CPU (self IPIs, MSIs); CPU 0's APIC is the one the PIC and the paths below use.
        ApicBus = new ApicBus(clock, cpus, x2Apic, localApicBase, log);
        LocalApic = ApicBus[0];
        Pic = new Pic8259();
        Pit = new Pit8254(clock);
        PcSpeaker = new PcSpeakerPort(Pit);
        Keyboard = new I8042(stop);
        Port92 = new Port92(stop);
        IoPort80 = new IoPort80();
        Gsi = new GsiRouter(Pic, IoApic);
        IoApicBase = ioApicBase;
        LocalApicBase = localApicBase;

        Pit.IrqChanged += level =>
        {
            if (Hpet is { } hpet) hpet.SetLegacyPitInput(level);
            else Gsi.SetIrq(0, level);
        };
        Rtc.IrqChanged += level =>
        {
            if (Hpet is { } hpet) hpet.SetLegacyRtcInput(level);
            else Gsi.SetIrq(8, level);
        };
        Keyboard.IrqChanged += Gsi.SetIrq;
        ApicBus.EoiBroadcast += IoApic.EndOfInterrupt;
        Pic.IntrChanged += level =>
        {
            // QEMU's pic_irq_request: INTR goes to LINT0 when the local APIC accepts PIC interrupts.
            if (LocalApic.AcceptsPicInterrupts)
            {
                LocalApic.SetLint0(level);
            }
        };
        IoApic.InterruptRequested += ApicBus.DeliverIoApicInterrupt;

        memory.AddMmio("IOAPIC 0", ioApicBase, PcPlatform.ApicWindowSize, IoApic);
        ApicBus.MapWindows(memory, PcPlatform.ApicWindowSize);
        ports.Add("pic1", 0x20, 2, Pic.Master);
        ports.Add("pit", 0x40, 4, Pit);
        ports.Add("keyboard", 0x60, 1, Keyboard.DataPort);
        ports.Add("pcspk", 0x61, 1, PcSpeaker);
        ports.Add("keyboard", 0x64, 1, Keyboard.CommandPort);
        ports.Add("rtc0", 0x70, 2, Rtc);
        ports.Add("dma page reg", 0x80, 1, IoPort80);
        ports.Add("port92", 0x92, 1, Port92);
        ports.Add("pic2", 0xA0, 2, Pic.Slave);
        ports.Add("elcr", 0x4D0, 2, Pic.Elcr);
        RebuildTimed();
    }

    /// <summary>
    /// Creates the chipset and maps it: the I/O APIC and local APIC windows (4 KiB each) at the given bases, the
    /// legacy ports at their fixed numbers.
    /// </summary>
    /// <param name="memory">The physical bus (the APIC windows).</param>
    /// <param name="ports">The port bus.</param>
    /// <param name="clock">Guest time.</param>
    /// <param name="stop">Receives reset requests (i8042, port 0x92).</param>
    /// <param name="ramSize">The RAM size in bytes (the CMOS memory bytes).</param>
    /// <param name="ioApicBase">The I/O APIC window's base.</param>
    /// <param name="localApicBase">The local APICs' base after reset (IA32_APIC_BASE; the window follows it, see <see cref="ApicBus.MapWindows"/>).</param>
    /// <param name="cpus">CPUs, one local APIC each, 1 to 64.</param>
    /// <param name="x2Apic">Whether the APICs support x2APIC mode (the CPUs report CPUID.1:ECX bit 21); QEMU 7.2's TCG does not.</param>
    /// <param name="log">Where the APICs report messages that reach no APIC, reserved start-up vectors and window moves; none when null.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A window or port range overlaps an existing one, or the RAM size is below 1 MiB.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpus"/> is outside 1-64, or <paramref name="localApicBase"/> is not a valid APIC base.</exception>
    public static PcChipset Add(PhysicalBus memory, PortBus ports, GuestClock clock, StopRequest stop, ulong ramSize,
        ulong ioApicBase = PcPlatform.IoApicBase, ulong localApicBase = PcPlatform.LocalApicBase, int cpus = 1, bool x2Apic = false,
        DeviceLog? log = null)
    {
        if (cpus is < 1 or > 64) DeviceThrow.OutOfRange(nameof(cpus), cpus, $"The pc chipset takes 1 to 64 CPUs; {cpus} is not allowed.");
        const string Who = "The pc chipset";
        DeviceThrow.NotNull(memory, nameof(memory), Who);
        DeviceThrow.NotNull(ports, nameof(ports), Who);
        DeviceThrow.NotNull(clock, nameof(clock), Who);
        DeviceThrow.NotNull(stop, nameof(stop), Who);
        return new PcChipset(memory, ports, clock, stop, ramSize, ioApicBase, localApicBase, cpus, x2Apic, log);
    }

    /// <summary>Base of the I/O APIC window.</summary>
    public ulong IoApicBase { get; }
    /// <summary>Base of the local APIC window.</summary>
    public ulong LocalApicBase { get; }
    /// <summary>The I/O APIC.</summary>
    public IoApic IoApic { get; }
    /// <summary>CPU 0's local APIC.</summary>
    public LocalApic LocalApic { get; }
    /// <summary>The 8259 pair at 0x20-0x21 and 0xA0-0xA1, ELCR at 0x4D0-0x4D1.</summary>
    public Pic8259 Pic { get; }
    /// <summary>The 8254 PIT at 0x40-0x43.</summary>
    public Pit8254 Pit { get; }
    /// <summary>Port 0x61.</summary>
    public PcSpeakerPort PcSpeaker { get; }
    /// <summary>The RTC and CMOS at 0x70-0x71.</summary>
    public CmosRtc Rtc { get; }
    /// <summary>The i8042 at 0x60 and 0x64.</summary>
    public I8042 Keyboard { get; }
    /// <summary>Port 0x92.</summary>
    public Port92 Port92 { get; }
    /// <summary>Port 0x80.</summary>
    public IoPort80 IoPort80 { get; }
    /// <summary>The GSI lines in front of the PIC pair and the I/O APIC.</summary>
    public GsiRouter Gsi { get; }
    /// <summary>The local APICs (one per CPU) and the bus between them; never null (a one-CPU machine has a bus of one).</summary>
    public ApicBus ApicBus { get; }
    /// <summary>The HPET, once attached.</summary>
    public Hpet? Hpet { get; private set; }

    /// <summary>The devices that act on guest time, in polling order.</summary>
    public IReadOnlyList<ITimedDevice> TimedDevices => _timed;

    /// <summary>
    /// Wires <paramref name="hpet"/> in as QEMU's pc machine does: the PIT and the RTC through its legacy inputs, its
    /// timers to the GSI their route selects, legacy replacement switching the PIT's output off. The caller maps its
    /// window.
    /// </summary>
    /// <exception cref="InvalidOperationException">An HPET is already attached.</exception>
    public void AttachHpet(Hpet hpet)
    {
        DeviceThrow.NotNull(hpet, nameof(hpet), "AttachHpet");
        if (Hpet is not null) throw new InvalidOperationException("The pc chipset already has an HPET; a machine has at most one.");
        Hpet = hpet;
        hpet.IrqChanged += (line, level) =>
        {
            if (line < GsiRouter.GsiCount)
            {
                Gsi.SetIrq(line, level);
            }
        };
        hpet.PitEnableChanged += enabled => Pit.IrqEnabled = enabled;
        RebuildTimed();
    }

    /// <summary>Adds a device to the timed set (polled after the chipset's own timers, before the local APIC).</summary>
    public void AddTimedDevice(ITimedDevice device)
    {
        DeviceThrow.NotNull(device, nameof(device), "AddTimedDevice");
        _extraTimed.Add(device);
        RebuildTimed();
    }

    /// <summary>Connects a device's level interrupt output to GSI <paramref name="gsi"/> (0-23).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gsi"/> is outside 0-23.</exception>
    public Action<bool> IrqLine(int gsi)
    {
        if ((uint)gsi >= GsiRouter.GsiCount) DeviceThrow.OutOfRange(nameof(gsi), gsi, $"The pc machine has GSIs 0 to 23; {gsi} is not one.");
        return level => Gsi.SetIrq(gsi, level);
    }

    /// <summary>The earliest <see cref="ITimedDevice.NextDeadline"/> of all timed devices (<see cref="long.MaxValue"/> for none).</summary>
    public long NextDeadline
    {
        get
        {
            long next = long.MaxValue;
            foreach (ITimedDevice device in _timed)
            {
                next = Math.Min(next, device.NextDeadline);
            }

            return next;
        }
    }

    /// <summary>Polls every timed device (cheap when nothing is due).</summary>
    public void Poll()
    {
        foreach (ITimedDevice device in _timed)
        {
            device.Poll();
        }
    }

    /// <summary>
    /// Whether CPU 0's interrupt input is asserted, as QEMU raises CPU_INTERRUPT_HARD: a deliverable local APIC
    /// interrupt, or the PIC's INTR through LINT0 programmed as ExtINT. With LINT0 masked (its power-on state) PIC
    /// interrupts never reach the CPU, as observed on QEMU 7.2; firmware such as SeaBIOS writes 0x700 to LINT0.
    /// </summary>
    public bool CpuInterruptPending
    {
        get
        {
            Poll();
            return LocalApic.InterruptPending || (Pic.Intr && LocalApic.Lint0PassesExtInt);
        }
    }

    /// <summary>
    /// CPU 0's interrupt acknowledge (QEMU's cpu_get_pic_interrupt with apic_get_interrupt): a local APIC interrupt
    /// unless the PIC has one the local APIC accepts (ExtINT ignores priorities), in which case the PIC supplies the
    /// vector; the APIC's spurious vector when its requests are below the processor priority; -1 when neither
    /// controller offers one.
    /// </summary>
    public int AcknowledgeInterrupt()
    {
        Poll();
        if (LocalApic.SoftwareEnabled)
        {
            int pending = LocalApic.PendingVector();
            if (pending != 0 && !CheckPic())
            {
                return pending < 0 ? LocalApic.SpuriousVector & 0xFF : LocalApic.Acknowledge();
            }
        }

        return LocalApic.AcceptsPicInterrupts ? Pic.Acknowledge() : -1;
    }

    /// <summary>Whether CPU <paramref name="cpu"/>'s interrupt input is asserted (CPU 0 as <see cref="CpuInterruptPending"/>).</summary>
    public bool CpuInterruptPendingFor(int cpu)
    {
        if (cpu == 0) return CpuInterruptPending;
        Poll();
        return ApicBus[cpu].InterruptPending;
    }

    /// <summary>CPU <paramref name="cpu"/>'s interrupt acknowledge (CPU 0 as <see cref="AcknowledgeInterrupt"/>; the others have no PIC).</summary>
    public int AcknowledgeInterruptFor(int cpu)
    {
        if (cpu == 0) return AcknowledgeInterrupt();
        Poll();
        var apic = ApicBus[cpu];
        if (!apic.SoftwareEnabled) return -1;
        int pending = apic.PendingVector();
        return pending == 0 ? -1 : pending < 0 ? apic.SpuriousVector & 0xFF : apic.Acknowledge();
    }

    /// <summary>QEMU's apic_check_pic: a pending PIC interrupt the APIC accepts is re-offered to LINT0 and goes first.</summary>
    private bool CheckPic()
    {
        if (!LocalApic.AcceptsPicInterrupts || !Pic.Intr)
        {
            return false;
        }

        LocalApic.SetLint0(true);
        return true;
    }

    private void RebuildTimed()
    {
        var list = new List<ITimedDevice> { Pit };
        if (Hpet is not null) list.Add(Hpet);
        list.Add(Rtc);
        list.AddRange(_extraTimed);
        list.Add(ApicBus);
        _timed = [.. list];
    }
}
