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
    private readonly ITimedDevice[] _timed;

    internal PcDevices(Uart16550 serial, IsaDebugExit debugExit, Hpet hpet, IoApic ioApic, LocalApic localApic,
        Pic8259 pic, Pit8254 pit, PcSpeakerPort pcSpeaker, CmosRtc rtc, I8042 keyboard, Port92 port92,
        IoPort80 ioPort80, GsiRouter gsi)
    {
        Serial = serial;
        DebugExit = debugExit;
        Hpet = hpet;
        IoApic = ioApic;
        LocalApic = localApic;
        Pic = pic;
        Pit = pit;
        PcSpeaker = pcSpeaker;
        Rtc = rtc;
        Keyboard = keyboard;
        Port92 = port92;
        IoPort80 = ioPort80;
        Gsi = gsi;
        _timed = [pit, hpet, rtc, serial, localApic];
    }

    /// <summary>COM1 at ports 0x3F8-0x3FF (GSI 4).</summary>
    public Uart16550 Serial { get; }

    /// <summary>isa-debug-exit at ports 0xF4-0xF7.</summary>
    public IsaDebugExit DebugExit { get; }

    /// <summary>The HPET at 0xFED00000 (0x400 bytes).</summary>
    public Hpet Hpet { get; }

    /// <summary>The I/O APIC at 0xFEC00000.</summary>
    public IoApic IoApic { get; }

    /// <summary>CPU 0's local APIC at 0xFEE00000.</summary>
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

    /// <summary>The devices that act on guest time.</summary>
    public IReadOnlyList<ITimedDevice> TimedDevices => _timed;

    /// <summary>The earliest <see cref="ITimedDevice.NextDeadline"/> of all devices (<see cref="long.MaxValue"/> for none).</summary>
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

    /// <summary>
    /// Creates every device of the default machine, maps it on <paramref name="memory"/> or <paramref name="ports"/>
    /// at PLATFORM.md's addresses and wires the interrupt lines as QEMU's pc machine does: COM1 to GSI 4; the PIT
    /// and the RTC through the HPET's legacy inputs to GSI 0 and 8; HPET timers to the GSI their route selects;
    /// the i8042 to GSI 1 and 12; GSIs to the PIC pair (below 16) and the I/O APIC; the PIC's INTR to LINT0 of
    /// CPU 0's local APIC (when it accepts PIC interrupts); local APIC EOIs to the I/O APIC; fixed and lowest-priority I/O APIC messages addressed to CPU 0 into its local APIC; HPET legacy
    /// replacement switching the PIT's output off.
    /// </summary>
    /// <param name="memory">The physical bus (MMIO windows).</param>
    /// <param name="ports">The port bus.</param>
    /// <param name="clock">Guest time.</param>
    /// <param name="stop">Receives isa-debug-exit and reset requests.</param>
    /// <param name="serialOutput">Where COM1's output goes.</param>
    /// <param name="ramSize">The RAM size in bytes (for the CMOS memory bytes), at least 1 MiB.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">A window or port range overlaps an existing one, the stream cannot be written, or the RAM size is below 1 MiB.</exception>
    public static PcDevices AddDefaultDevices(PhysicalBus memory, PortBus ports, GuestClock clock, StopRequest stop,
        Stream serialOutput, ulong ramSize)
    {
        const string Who = "The default machine's device set";
        DeviceThrow.NotNull(memory, nameof(memory), Who);
        DeviceThrow.NotNull(ports, nameof(ports), Who);
        DeviceThrow.NotNull(clock, nameof(clock), Who);
        DeviceThrow.NotNull(stop, nameof(stop), Who);
        DeviceThrow.NotNull(serialOutput, nameof(serialOutput), Who);

        var rtc = new CmosRtc(clock, ramSize);
        var serial = new Uart16550(serialOutput, clock);
        var debugExit = new IsaDebugExit(stop, DebugExitPort);
        var hpet = new Hpet(clock);
        var ioApic = new IoApic();
        var localApic = new LocalApic(clock);
        var pic = new Pic8259();
        var pit = new Pit8254(clock);
        var pcSpeaker = new PcSpeakerPort(pit);
        var keyboard = new I8042(stop);
        var port92 = new Port92(stop);
        var ioPort80 = new IoPort80();
        var gsi = new GsiRouter(pic, ioApic);

        serial.IrqLineChanged += level => gsi.SetIrq(Com1Irq, level);
        pit.IrqChanged += hpet.SetLegacyPitInput;
        rtc.IrqChanged += hpet.SetLegacyRtcInput;
        hpet.IrqChanged += (line, level) =>
        {
            if (line < GsiRouter.GsiCount)
            {
                gsi.SetIrq(line, level);
            }
        };
        hpet.PitEnableChanged += enabled => pit.IrqEnabled = enabled;
        keyboard.IrqChanged += gsi.SetIrq;
        localApic.EoiBroadcast += ioApic.EndOfInterrupt;
        pic.IntrChanged += level =>
        {
            // QEMU's pic_irq_request: INTR goes to LINT0 when the local APIC accepts PIC interrupts.
            if (localApic.AcceptsPicInterrupts)
            {
                localApic.SetLint0(level);
            }
        };
        ioApic.InterruptRequested += message =>
        {
            if (message.DeliveryMode is (int)ApicDeliveryMode.Fixed or (int)ApicDeliveryMode.LowestPriority
                && localApic.MatchesDestination(message.Destination, message.LogicalDestination))
            {
                localApic.AcceptInterrupt(message.Vector, message.LevelTriggered);
            }
        };

        memory.AddMmio("IOAPIC 0", IoApicBase, ApicWindowSize, ioApic);
        memory.AddMmio("hpet", HpetBase, HpetSize, hpet);
        memory.AddMmio("Local APIC", LocalApicBase, ApicWindowSize, localApic);

        ports.Add("pic1", 0x20, 2, pic.Master);
        ports.Add("pit", 0x40, 4, pit);
        ports.Add("keyboard", 0x60, 1, keyboard.DataPort);
        ports.Add("pcspk", 0x61, 1, pcSpeaker);
        ports.Add("keyboard", 0x64, 1, keyboard.CommandPort);
        ports.Add("rtc0", 0x70, 2, rtc);
        ports.Add("dma page reg", 0x80, 1, ioPort80);
        ports.Add("port92", 0x92, 1, port92);
        ports.Add("pic2", 0xA0, 2, pic.Slave);
        ports.Add("isa-debug-exit", DebugExitPort, 4, debugExit);
        ports.Add("serial", Com1Port, 8, serial);
        ports.Add("elcr", 0x4D0, 2, pic.Elcr);

        return new PcDevices(serial, debugExit, hpet, ioApic, localApic, pic, pit, pcSpeaker, rtc, keyboard, port92,
            ioPort80, gsi);
    }
}
