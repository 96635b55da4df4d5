using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using HwMemModel.Bus;
using HwMemModel.Kernel.Drivers;

namespace HwMemModel.Kernel;

/// <summary>irqreturn_t.</summary>
public enum IrqReturn : byte
{
    /// <summary>IRQ_NONE: not this device's interrupt.</summary>
    None = 0,
    /// <summary>IRQ_HANDLED.</summary>
    Handled = 1,
}

/// <summary>irq_handler_t: the interrupt handler a driver registers with request_irq.</summary>
public delegate IrqReturn IrqHandler(int irq, object? devId);

/// <summary>request_irq flags (include/linux/interrupt.h).</summary>
[Flags]
public enum IrqFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>IRQF_SHARED: the line may be shared by several devices.</summary>
    Shared = 0x80,
}

/// <summary>
/// What the kernel model needs from the machine to take interrupts on its CPU: the guest clock, the timed devices'
/// deadlines and polling, the CPU's interrupt input and acknowledge cycle, and where the IOAPIC and local APIC are.
/// The machine (HwMemModel.Machine) implements it over the device models.
/// </summary>
public interface IInterruptPlatform
{
    /// <summary>Guest time.</summary>
    GuestClock Clock { get; }
    /// <summary>The earliest time a device needs polling (<see cref="long.MaxValue"/> for none).</summary>
    long NextDeadline { get; }
    /// <summary>Brings timed devices up to the clock, raising their interrupts.</summary>
    void Poll();
    /// <summary>Whether the CPU's interrupt input is asserted.</summary>
    bool InterruptPending { get; }
    /// <summary>The interrupt-acknowledge cycle: the vector, or -1 when none is pending.</summary>
    int AcknowledgeInterrupt();
    /// <summary>Physical base of the IOAPIC register window.</summary>
    ulong IoApicBase { get; }
    /// <summary>Physical base of the local APIC register window.</summary>
    ulong LocalApicBase { get; }
    /// <summary>IOAPIC inputs (GSIs) available.</summary>
    int IoApicPins { get; }
}

/// <summary>One interrupt line's state, as /proc/interrupts shows it.</summary>
/// <param name="Irq">The IRQ number (equal to the GSI).</param>
/// <param name="Vector">The CPU vector the IOAPIC entry delivers.</param>
/// <param name="Trigger">Edge or level.</param>
/// <param name="Count">Interrupts handled on CPU 0.</param>
/// <param name="Unhandled">Interrupts no handler claimed.</param>
/// <param name="Actions">Names of the registered handlers.</param>
public readonly record struct IrqInfo(int Irq, int Vector, IrqTrigger Trigger, long Count, long Unhandled, IReadOnlyList<string> Actions);

/// <summary>A completion (include/linux/completion.h): a count of done events that waiters consume.</summary>
public sealed class Completion
{
    /// <summary>Events completed and not yet consumed.</summary>
    public int Done { get; private set; }

    /// <summary>complete: one waiter may proceed.</summary>
    public void Complete() { if (Done != int.MaxValue) Done++; }

    /// <summary>complete_all: every waiter may proceed, from now on.</summary>
    public void CompleteAll() => Done = int.MaxValue;

    /// <summary>reinit_completion.</summary>
    public void Reinit() => Done = 0;

    /// <summary>try_wait_for_completion: consumes one event if there is one.</summary>
    public bool TryWait()
    {
        if (Done == 0) return false;
        if (Done != int.MaxValue) Done--;
        return true;
    }
}

/// <content>
/// Interrupts and time on the kernel model's CPU (kernel/irq/, arch/x86/kernel/apic/io_apic.c, kernel/sched/completion.c).
/// request_irq programs the IOAPIC redirection entry of the line through its ioremapped registers (vector
/// 0x30 + irq, as Linux's legacy ISA_IRQ_VECTOR, fixed delivery to APIC ID 0, the line's trigger and polarity) and
/// unmasks it; free_irq of the last handler masks it again. Interrupts are taken when the CPU is idle or waiting —
/// in <see cref="HandleInterrupts"/>, <see cref="Udelay"/>, <see cref="Msleep"/> and
/// <see cref="WaitForCompletionTimeout"/> — never in the middle of a driver's register sequence, so a run is
/// deterministic: acknowledge through the local APIC, every handler of the line, then EOI through the local APIC's
/// registers (which lets a level-triggered IOAPIC entry deliver again).
/// </content>
public sealed partial class Kernel
{
    /// <summary>Vector of IRQ 0 (ISA_IRQ_VECTOR(0) on x86-64).</summary>
    public const int IrqVectorBase = 0x30;
    /// <summary>sizeof(struct irqaction) on x86-64.</summary>
    public const ulong IrqActionSize = 128;
    private const uint ApicEoi = 0xB0, ApicSvr = 0xF0, ApicTpr = 0x80;
    private IInterruptPlatform? _irqPlatform;
    private ulong _ioApicVa, _lapicVa;
    private IrqLine[] _irqs = [];
    private bool _inInterrupt;
    private long _spurious;

    private sealed class IrqLine
    {
        public IrqTrigger Trigger;
        public long Count, Unhandled;
        public readonly List<(string Name, IrqHandler Handler, object? DevId, IrqFlags Flags, ulong Action)> Actions = [];
        // What an interrupt runs: a copy made when handlers change, so a handler may free its own line safely and
        // taking an interrupt allocates nothing.
        public (string Name, IrqHandler Handler, object? DevId, IrqFlags Flags, ulong Action)[] Running = [];
    }

    /// <summary>Whether a machine's interrupt controllers are attached (<see cref="AttachInterruptPlatform"/>).</summary>
    public bool HasInterrupts => _irqPlatform is not null;

    /// <summary>Interrupts delivered to the spurious vector.</summary>
    public long SpuriousInterrupts => _spurious;

    /// <summary>
    /// Connects the machine's interrupt controllers: maps the IOAPIC and the local APIC, masks every IOAPIC entry,
    /// software-enables the local APIC (spurious vector 0xFF) with TPR 0, and starts checking device DMA against the
    /// live DMA mappings.
    /// </summary>
    /// <exception cref="InvalidOperationException">Already attached.</exception>
    public void AttachInterruptPlatform(IInterruptPlatform platform)
    {
        ArgumentNullException.ThrowIfNull(platform);
        if (_irqPlatform is not null) throw new InvalidOperationException("An interrupt platform is already attached to this kernel.");
        if (platform.IoApicPins is < 1 or > 240) throw new ArgumentOutOfRangeException(nameof(platform), platform.IoApicPins, "IoApicPins must be 1 to 240.");
        _ioApicVa = IoRemap(platform.IoApicBase, 0x1000, "native_io_apic_init_mappings");
        _lapicVa = IoRemap(platform.LocalApicBase, 0x1000, "init_apic_mappings");
        if (_ioApicVa == 0 || _lapicVa == 0) throw new InvalidOperationException("The IOAPIC or local APIC window could not be mapped; see the kernel log.");
        _irqPlatform = platform;
        _irqs = new IrqLine[platform.IoApicPins];
        for (int i = 0; i < _irqs.Length; i++)
        {
            _irqs[i] = new IrqLine { Trigger = i < 16 ? IrqTrigger.EdgeRising : IrqTrigger.LevelLow };
            WriteRedirection(i, 1u << 16, 0);
        }
        WriteL(0, _lapicVa + ApicTpr);
        WriteL(0x1FF, _lapicVa + ApicSvr);
        Log.Print(string.Create(CultureInfo.InvariantCulture,
            $"IOAPIC[0]: apic_id 0, version 32, address 0x{platform.IoApicBase:x}, GSI 0-{platform.IoApicPins - 1}"));
        EnableDmaChecking();
    }

    /// <summary>irq_set_irq_type: how line <paramref name="irq"/> signals (from the device's resource); -EINVAL for a bad line, -EBUSY while it has handlers.</summary>
    public int IrqSetType(int irq, IrqTrigger trigger)
    {
        if (_irqPlatform is null || (uint)irq >= (uint)_irqs.Length) return -Errno.EINVAL;
        if (_irqs[irq].Actions.Count > 0 && _irqs[irq].Trigger != trigger) return -Errno.EBUSY;
        _irqs[irq].Trigger = trigger;
        return 0;
    }

    /// <summary>
    /// request_irq: registers <paramref name="handler"/> for line <paramref name="irq"/>. Returns 0, -EINVAL (no
    /// interrupt controller, line out of range, no handler, IRQF_SHARED without a dev_id), -EBUSY (line taken and not
    /// shared by both, reported as genirq does) or -ENOMEM (failslab injected into the irqaction allocation).
    /// </summary>
    public int RequestIrq(int irq, IrqHandler handler, string name, object? devId, IrqFlags flags = IrqFlags.None)
    {
        if (_irqPlatform is null || (uint)irq >= (uint)_irqs.Length || handler is null) return -Errno.EINVAL;
        if ((flags & IrqFlags.Shared) != 0 && devId is null) return -Errno.EINVAL;
        var line = _irqs[irq];
        if (line.Actions.Count > 0)
        {
            var first = line.Actions[0];
            if ((first.Flags & flags & IrqFlags.Shared) == 0)
            {
                Log.Print(string.Create(CultureInfo.InvariantCulture,
                    $"genirq: Flags mismatch irq {irq}. {(uint)flags:x8} ({name}) vs. {(uint)first.Flags:x8} ({first.Name})"));
                return -Errno.EBUSY;
            }
        }
        // struct irqaction (128 bytes on x86-64) is kzalloc'd and lives until free_irq: it shows in /proc/slabinfo and
        // an injected slab failure fails the request.
        ulong action = Kzalloc(IrqActionSize, Gfp.Kernel, "request_threaded_irq");
        if (action == 0) return -Errno.ENOMEM;
        line.Actions.Add((name, handler, devId, flags, action));
        line.Running = [.. line.Actions];
        if (line.Actions.Count == 1) ProgramLine(irq, masked: false);
        return 0;
    }

    /// <summary>free_irq: removes the handler registered with <paramref name="devId"/>; the line is masked when none is left. Freeing a free line is a WARNING.</summary>
    public void FreeIrq(int irq, object? devId, [CallerMemberName] string caller = "")
    {
        if (_irqPlatform is null || (uint)irq >= (uint)_irqs.Length)
        {
            Log.Warn($"Trying to free already-free IRQ {irq}", $"__free_irq+0x0/0x0 [{caller}]");
            return;
        }
        var line = _irqs[irq];
        int i = line.Actions.FindIndex(a => ReferenceEquals(a.DevId, devId));
        if (i < 0)
        {
            Log.Warn(string.Create(CultureInfo.InvariantCulture, $"Trying to free already-free IRQ {irq}"), $"__free_irq+0x0/0x0 [{caller}]");
            return;
        }
        ulong freed = line.Actions[i].Action;
        line.Actions.RemoveAt(i);
        line.Running = [.. line.Actions];
        if (line.Actions.Count == 0) ProgramLine(irq, masked: true);
        Kfree(freed, "free_irq");
    }

    /// <summary>The lines with handlers, as /proc/interrupts lists them.</summary>
    public IReadOnlyList<IrqInfo> Interrupts()
    {
        var list = new List<IrqInfo>();
        for (int i = 0; i < _irqs.Length; i++)
        {
            var l = _irqs[i];
            if (l.Actions.Count == 0 && l.Count == 0) continue;
            list.Add(new IrqInfo(i, IrqVectorBase + i, l.Trigger, l.Count, l.Unhandled, l.Actions.Select(a => a.Name).ToArray()));
        }
        return list;
    }

    /// <summary>/proc/interrupts in Linux's layout (show_interrupts and arch_show_interrupts' SPU line).</summary>
    public string FormatInterrupts()
    {
        var sb = new StringBuilder();
        // show_interrupts: "%*s" of prec + 8 spaces, "CPU%-8d" per CPU; then "%*d: ", "%10u " per CPU, " %8s" chip,
        // " %*lu" hardware IRQ, "-%-8s" flow handler, "  %s" and ", %s" per action (prec = 3 digits).
        sb.Append(' ', 3 + 8).Append("CPU0       ").Append('\n');
        foreach (var i in Interrupts())
        {
            sb.Append(string.Create(CultureInfo.InvariantCulture, $"{i.Irq,3}: {i.Count,10}   IO-APIC {i.Irq,4}-{(i.Trigger == IrqTrigger.EdgeRising ? "edge    " : "fasteoi ")}"));
            sb.Append("  ").Append(string.Join(", ", i.Actions)).Append('\n');
        }
        sb.Append(string.Create(CultureInfo.InvariantCulture, $"SPU: {_spurious,10}   Spurious interrupts\n"));
        return sb.ToString();
    }

    /// <summary>
    /// Takes every pending interrupt on the current CPU: acknowledge, run the line's handlers, EOI. Does nothing when
    /// called from a handler (interrupts are off there). Returns the number of interrupts taken.
    /// </summary>
    public int HandleInterrupts()
    {
        if (_irqPlatform is null || _inInterrupt) return 0;
        int taken = 0;
        _inInterrupt = true;
        try
        {
            // A level line a handler does not quiet would interrupt forever; bound one call's work.
            for (int guard = 0; guard < 10_000 && _irqPlatform.InterruptPending; guard++)
            {
                int vector = _irqPlatform.AcknowledgeInterrupt();
                if (vector < 0) break;
                taken++;
                if (vector == 0xFF) { _spurious++; continue; }
                int irq = vector - IrqVectorBase;
                if ((uint)irq < (uint)_irqs.Length)
                {
                    var line = _irqs[irq];
                    bool handled = false;
                    foreach (var action in line.Running)
                        handled |= action.Handler(irq, action.DevId) == IrqReturn.Handled;
                    line.Count++;
                    if (!handled && ++line.Unhandled == 100_000)
                        Log.Print(string.Create(CultureInfo.InvariantCulture, $"irq {irq}: nobody cared (try booting with the \"irqpoll\" option)"));
                }
                else
                {
                    Log.Print(string.Create(CultureInfo.InvariantCulture, $"do_IRQ: 0.{vector} No irq handler for vector"));
                }
                WriteL(0, _lapicVa + ApicEoi);
            }
        }
        finally
        {
            _inInterrupt = false;
        }
        return taken;
    }

    /// <summary>Guest time in nanoseconds (ktime_get), or 0 without an interrupt platform.</summary>
    public long NowNs => _irqPlatform?.Clock.Nanoseconds ?? 0;

    /// <summary>udelay: lets <paramref name="microseconds"/> of guest time pass, taking interrupts as they come.</summary>
    public void Udelay(ulong microseconds) => AdvanceBy(checked((long)microseconds * 1000));

    /// <summary>msleep: lets <paramref name="milliseconds"/> of guest time pass, taking interrupts as they come.</summary>
    public void Msleep(uint milliseconds) => AdvanceBy(milliseconds * 1_000_000L);

    /// <summary>
    /// wait_for_completion_timeout: waits up to <paramref name="timeoutNs"/> of guest time for <paramref name="done"/>,
    /// taking interrupts meanwhile (their handlers complete it). Returns the time left (at least 1) or 0 on timeout.
    /// </summary>
    public long WaitForCompletionTimeout(Completion done, long timeoutNs)
    {
        ArgumentNullException.ThrowIfNull(done);
        ArgumentOutOfRangeException.ThrowIfNegative(timeoutNs);
        long deadline = NowNs + timeoutNs;
        while (true)
        {
            HandleInterrupts();
            if (done.TryWait()) return Math.Max(1, deadline - NowNs);
            if (_irqPlatform is null || NowNs >= deadline) return 0;
            StepTime(deadline);
        }
    }

    /// <summary>readx_poll_timeout: evaluates <paramref name="condition"/> every <paramref name="sleepNs"/> until it holds (0) or <paramref name="timeoutNs"/> passes (-ETIMEDOUT).</summary>
    public int PollTimeout(Func<bool> condition, long sleepNs, long timeoutNs)
    {
        ArgumentNullException.ThrowIfNull(condition);
        long deadline = NowNs + timeoutNs;
        while (true)
        {
            if (condition()) return 0;
            if (_irqPlatform is null || NowNs >= deadline) return condition() ? 0 : -Errno.ETIMEDOUT;
            AdvanceBy(Math.Max(1, Math.Min(sleepNs, deadline - NowNs)));
        }
    }

    private void AdvanceBy(long ns)
    {
        if (_irqPlatform is null) return;
        long target = NowNs + ns;
        do
        {
            HandleInterrupts();
            StepTime(target);
            HandleInterrupts();
        }
        while (NowNs < target);
    }

    // Moves the clock to the next device deadline or the target, whichever is first, and polls the devices.
    private void StepTime(long target)
    {
        var p = _irqPlatform!;
        long now = p.Clock.Nanoseconds;
        long next = Math.Min(p.NextDeadline, target);
        p.Clock.Advance(next > now ? next - now : (target > now ? 1 : 0));
        p.Poll();
    }

    private void ProgramLine(int irq, bool masked)
    {
        var trigger = _irqs[irq].Trigger;
        uint low = (uint)(IrqVectorBase + irq)
            | (trigger == IrqTrigger.LevelLow ? 1u << 13 : 0)
            | (trigger != IrqTrigger.EdgeRising ? 1u << 15 : 0)
            | (masked ? 1u << 16 : 0);
        WriteRedirection(irq, low, 0);
    }

    private void WriteRedirection(int pin, uint low, uint high)
    {
        // IOREGSEL at 0x00, IOWIN at 0x10; redirection entry n is registers 0x10 + 2n (low) and 0x11 + 2n (high).
        // Mask first, then the destination, then the low word, as io_apic's __ioapic_write_entry does.
        WriteL((uint)(0x10 + 2 * pin), _ioApicVa);
        WriteL(low | (1u << 16), _ioApicVa + 0x10);
        WriteL((uint)(0x11 + 2 * pin), _ioApicVa);
        WriteL(high, _ioApicVa + 0x10);
        WriteL((uint)(0x10 + 2 * pin), _ioApicVa);
        WriteL(low, _ioApicVa + 0x10);
    }
}
