using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using Microsoft.Extensions.Logging;

namespace HwMemModel.Drivers.Timers;

/// <summary>
/// A driver for the HPET ("intel,hpet"), after Linux's arch/x86/kernel/hpet.c: it maps the register block, checks
/// the capabilities (a period from 0 to 100 ns, as the HPET 1.0a specification bounds it), starts the main counter
/// and offers it as a clocksource, and uses comparator 0 in legacy replacement mode (IRQ 0, IOAPIC pin 2, the PIT's
/// output switched off) as a one-shot timer interrupt.
/// </summary>
public sealed class HpetDriver : IPlatformDriver
{
    /// <summary>The IOAPIC input legacy replacement routes comparator 0 to (ISA IRQ 0 arrives on pin 2 of the pc machine).</summary>
    public const int LegacyTimerIrq = 2;
    internal const ulong CapId = 0x000, Config = 0x010, IntStatus = 0x020, Counter = 0x0F0, Timer0Config = 0x100, Timer0Comparator = 0x108;
    internal const ulong CfgEnable = 1, CfgLegacy = 2, TnIntEnable = 1 << 2, TnPeriodic = 1 << 3, Tn32Bit = 1 << 8;
    private const ulong MaxPeriodFs = 100_000_000; // 100 ns
    private readonly IIoMemApi _io;
    private readonly IDevresApi _devres;
    private readonly IIrqApi _irq;
    private readonly ILogger<HpetDriver> _log;

    /// <summary>Creates the driver with the kernel-model services it uses.</summary>
    public HpetDriver(IIoMemApi io, IIrqApi irq, IDevresApi devres, ILogger<HpetDriver> log)
    {
        _io = io ?? throw new ArgumentNullException(nameof(io));
        _irq = irq ?? throw new ArgumentNullException(nameof(irq));
        _devres = devres ?? throw new ArgumentNullException(nameof(devres));
        _log = log ?? throw new ArgumentNullException(nameof(log));
    }

    /// <inheritdoc />
    public string Name => "hpet";

    /// <inheritdoc />
    public IReadOnlyList<string> Compatible { get; } = ["intel,hpet"];

    /// <summary>The bound HPET, or null.</summary>
    public HpetTimer? Timer { get; private set; }

    /// <inheritdoc />
    public int Probe(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ulong regs = _devres.DevmPlatformIoRemapResource(device);
        if (regs == 0) return -Errno.ENOMEM;
        ulong cap = _io.ReadQ(regs + CapId);
        ulong period = cap >> 32;
        if (period == 0 || period > MaxPeriodFs)
        {
            _log.LogWarning("hpet: invalid HPET period {Period} fs", period);
            return -Errno.ENODEV;
        }
        int timers = (int)((cap >> 8) & 0x1F) + 1;
        if ((cap & (1 << 15)) == 0)
        {
            _log.LogWarning("hpet: no legacy replacement route; the timer interrupt needs it");
            return -Errno.ENODEV;
        }
        var timer = new HpetTimer(_io, _irq, regs, period, timers);
        // Stop, clear the counter, then run with legacy replacement (hpet_enable_legacy_int).
        _io.WriteQ(0, regs + Config);
        _io.WriteQ(0, regs + Counter);
        _io.WriteQ(_io.ReadQ(regs + Timer0Config) & ~(TnIntEnable | TnPeriodic | Tn32Bit), regs + Timer0Config);
        _io.WriteQ(CfgEnable | CfgLegacy, regs + Config);
        int rc = _devres.DevmRequestIrq(device, LegacyTimerIrq, timer.Interrupt, "hpet", timer);
        if (rc != 0) return rc;
        device.AddManagedAction("hpet: counter stopped, legacy replacement off", () => _io.WriteQ(0, regs + Config));
        device.DriverData = timer;
        Timer = timer;
        _log.LogInformation("hpet0: at MMIO 0x{Base:x}, IRQs {Irq}, {Timers} comparators, {Bits}-bit {Mhz} MHz counter",
            device.GetResource(ResourceKind.Memory)!.Value.Start, LegacyTimerIrq, timers, (cap & (1 << 13)) != 0 ? 64 : 32,
            1_000_000_000UL / period);
        return 0;
    }

    /// <inheritdoc />
    public void Remove(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DriverData is HpetTimer t) t.Disarm();
        Timer = null;
    }
}

/// <summary>A bound HPET: its counter as a clocksource and comparator 0 as a one-shot timer.</summary>
public sealed class HpetTimer
{
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly ulong _regs;
    private ulong _target;
    private bool _armed;

    internal HpetTimer(IIoMemApi io, IIrqApi irq, ulong regs, ulong periodFs, int timers)
    {
        _io = io;
        _irq = irq;
        _regs = regs;
        PeriodFs = periodFs;
        Timers = timers;
    }

    /// <summary>Counter period in femtoseconds (from the capabilities register).</summary>
    public ulong PeriodFs { get; }
    /// <summary>Comparators the device has.</summary>
    public int Timers { get; }
    /// <summary>Timer interrupts handled.</summary>
    public long Interrupts { get; private set; }
    /// <summary>Completed once per timer interrupt.</summary>
    public Completion Fired { get; } = new();

    /// <summary>The main counter (one readq).</summary>
    public ulong ReadCounter() => _io.ReadQ(_regs + HpetDriver.Counter);

    /// <summary>Clocksource read: the counter in nanoseconds.</summary>
    public ulong ReadNanoseconds() => (ulong)((UInt128)ReadCounter() * PeriodFs / 1_000_000);

    /// <summary>Arms comparator 0 to interrupt once, <paramref name="deltaNs"/> from now (edge-triggered, legacy IRQ 0).</summary>
    public void ArmOneShot(ulong deltaNs)
    {
        ulong ticks = Math.Max(1, (ulong)((UInt128)deltaNs * 1_000_000 / PeriodFs));
        _target = ReadCounter() + ticks;
        _armed = true;
        _io.WriteQ(_target, _regs + HpetDriver.Timer0Comparator);
        ulong cfg = _io.ReadQ(_regs + HpetDriver.Timer0Config);
        _io.WriteQ((cfg & ~(HpetDriver.TnPeriodic | HpetDriver.Tn32Bit | 0x2)) | HpetDriver.TnIntEnable, _regs + HpetDriver.Timer0Config);
    }

    /// <summary>Switches comparator 0's interrupt off.</summary>
    public void Disarm()
    {
        _armed = false;
        ulong cfg = _io.ReadQ(_regs + HpetDriver.Timer0Config);
        _io.WriteQ(cfg & ~HpetDriver.TnIntEnable, _regs + HpetDriver.Timer0Config);
    }

    /// <summary>Arms the timer and waits for its interrupt; true when it came within <paramref name="timeoutNs"/>.</summary>
    public bool Sleep(ulong deltaNs, long timeoutNs)
    {
        Fired.Reinit();
        ArmOneShot(deltaNs);
        return _irq.WaitForCompletionTimeout(Fired, timeoutNs) > 0;
    }

    internal IrqReturn Interrupt(int irq, object? devId)
    {
        // Edge mode sets no status bit: the interrupt is ours when the armed comparator has been reached.
        if (!_armed || ReadCounter() < _target) return IrqReturn.None;
        _armed = false;
        Interrupts++;
        Fired.Complete();
        return IrqReturn.Handled;
    }
}
