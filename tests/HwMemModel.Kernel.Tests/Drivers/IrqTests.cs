using HwMemModel.Devices.Interrupts;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;

namespace HwMemModel.Kernel.Tests.Drivers;

/// <summary>request_irq over the machine's IOAPIC and local APIC.</summary>
public sealed class IrqTests
{
    private SimulatedMachine _m = null!;
    private Kernel K => _m.Kernel;

    [SetUp]
    public void SetUp() => _m = SimulatedMachine.Build(MachineDescription.Default);

    [TearDown]
    public void TearDown() => _m.Dispose();

    // IOAPIC redirection entry n: registers 0x10 + 2n (low dword) and 0x11 + 2n (high), through IOREGSEL/IOWIN.
    private ulong Redirection(int pin)
    {
        var io = _m.Chipset.IoApic;
        io.Write(0x00, 4, (ulong)(0x10 + 2 * pin), default);
        io.Read(0x10, 4, out ulong low, default);
        io.Write(0x00, 4, (ulong)(0x11 + 2 * pin), default);
        io.Read(0x10, 4, out ulong high, default);
        return (high << 32) | low;
    }

    [Test]
    public void Request_programs_the_redirection_entry_and_free_masks_it()
    {
        Assert.That(Redirection(16) & (1UL << 16), Is.Not.Zero, "masked at boot");
        Assert.That(K.IrqSetType(16, IrqTrigger.LevelHigh), Is.Zero);
        Assert.That(K.RequestIrq(16, (_, _) => IrqReturn.Handled, "a", this), Is.Zero);
        ulong e = Redirection(16);
        Assert.That(e & 0xFF, Is.EqualTo((ulong)(0x30 + 16)), "vector");
        Assert.That((e >> 8) & 7, Is.Zero, "fixed delivery");
        Assert.That((e >> 13) & 1, Is.Zero, "active high");
        Assert.That((e >> 15) & 1, Is.EqualTo(1UL), "level");
        Assert.That((e >> 16) & 1, Is.Zero, "unmasked");
        Assert.That(e >> 56, Is.Zero, "APIC ID 0");
        K.FreeIrq(16, this);
        Assert.That(Redirection(16) & (1UL << 16), Is.Not.Zero);
    }

    [Test]
    public void A_level_interrupt_runs_the_handler_once_per_assertion_and_EOI_lets_it_come_again()
    {
        K.IrqSetType(16, IrqTrigger.LevelHigh);
        int calls = 0;
        K.RequestIrq(16, (irq, dev) => { calls++; _m.Chipset.Gsi.SetIrq(16, false); return IrqReturn.Handled; }, "dev", this);
        _m.Chipset.Gsi.SetIrq(16, true);
        Assert.That(K.HandleInterrupts(), Is.EqualTo(1));
        Assert.That(calls, Is.EqualTo(1));
        _m.Chipset.Gsi.SetIrq(16, true);
        K.HandleInterrupts();
        Assert.That(calls, Is.EqualTo(2));
        Assert.That(K.Interrupts().Single(i => i.Irq == 16).Count, Is.EqualTo(2));
        Assert.That(K.FormatInterrupts(), Does.Contain(" 16:          2   IO-APIC   16-fasteoi   dev"));
    }

    [Test]
    public void A_taken_line_answers_EBUSY_unless_both_share()
    {
        object a = new(), b = new();
        Assert.That(K.RequestIrq(16, (_, _) => IrqReturn.None, "first", a), Is.Zero);
        Assert.That(K.RequestIrq(16, (_, _) => IrqReturn.None, "second", b), Is.EqualTo(-Errno.EBUSY));
        Assert.That(K.Log.ToString(), Does.Contain("genirq: Flags mismatch irq 16. 00000000 (second) vs. 00000000 (first)"));
        Assert.That(K.RequestIrq(17, (_, _) => IrqReturn.None, "s1", a, IrqFlags.Shared), Is.Zero);
        Assert.That(K.RequestIrq(17, (_, _) => IrqReturn.None, "s2", b, IrqFlags.Shared), Is.Zero);
        Assert.That(K.Interrupts().Single(i => i.Irq == 17).Actions, Is.EqualTo(new[] { "s1", "s2" }));
    }

    [Test]
    public void Bad_requests_are_refused_with_EINVAL()
    {
        Assert.That(K.RequestIrq(24, (_, _) => IrqReturn.None, "x", this), Is.EqualTo(-Errno.EINVAL), "no GSI 24");
        Assert.That(K.RequestIrq(-1, (_, _) => IrqReturn.None, "x", this), Is.EqualTo(-Errno.EINVAL));
        Assert.That(K.RequestIrq(5, null!, "x", this), Is.EqualTo(-Errno.EINVAL), "no handler");
        Assert.That(K.RequestIrq(5, (_, _) => IrqReturn.None, "x", null, IrqFlags.Shared), Is.EqualTo(-Errno.EINVAL), "shared without dev_id");
    }

    [Test]
    public void Freeing_a_free_line_is_a_warning()
    {
        K.FreeIrq(9, this);
        Assert.That(K.Log.ToString(), Does.Contain("Trying to free already-free IRQ 9").And.Contain("WARNING: CPU: 0 PID: 1 at __free_irq"));
    }

    [Test]
    public void An_injected_slab_failure_fails_request_irq_with_ENOMEM()
    {
        K.Failslab.Configure(100, times: 1);
        Assert.That(K.RequestIrq(5, (_, _) => IrqReturn.None, "x", this), Is.EqualTo(-Errno.ENOMEM));
        Assert.That(K.RequestIrq(5, (_, _) => IrqReturn.None, "x", this), Is.Zero);
    }

    [Test]
    public void Waiting_for_a_completion_nobody_completes_times_out_after_the_guest_time_given()
    {
        var c = new Completion();
        long t0 = _m.Clock.Nanoseconds;
        Assert.That(K.WaitForCompletionTimeout(c, 2_000_000), Is.Zero);
        Assert.That(_m.Clock.Nanoseconds - t0, Is.EqualTo(2_000_000));
        c.Complete();
        Assert.That(K.WaitForCompletionTimeout(c, 1000), Is.GreaterThan(0));
        Assert.That(K.PollTimeout(() => false, 100, 1000), Is.EqualTo(-Errno.ETIMEDOUT));
    }

    [Test]
    public void The_IOAPIC_and_local_APIC_are_set_up_at_attach()
    {
        Assert.That(_m.Chipset.LocalApic.SoftwareEnabled, Is.True);
        Assert.That(K.Log.ToString(), Does.Contain("IOAPIC[0]: apic_id 0, version 32, address 0xfec00000, GSI 0-23"));
        Assert.Throws<InvalidOperationException>(() => K.AttachInterruptPlatform(_m));
        Assert.That(IoApic.PinCount, Is.EqualTo(24));
    }
}
