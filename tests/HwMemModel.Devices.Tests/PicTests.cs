using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Devices.Tests;

public sealed class PicTests
{
    private Pic8259 _pic = null!;
    private PortBus _ports = null!;

    [SetUp]
    public void SetUp()
    {
        _pic = new Pic8259();
        _ports = new PortBus();
        _ports.Add("pic1", 0x20, 2, _pic.Master);
        _ports.Add("pic2", 0xA0, 2, _pic.Slave);
        _ports.Add("elcr", 0x4D0, 2, _pic.Elcr);
    }

    /// <summary>The BIOS/Linux sequence: ICW1 0x11, vector base, cascade wiring, ICW4 8086 mode.</summary>
    private void Initialise(byte masterBase = 0x20, byte slaveBase = 0x28)
    {
        _ports.Out(0x20, 0x11);
        _ports.Out(0xA0, 0x11);
        _ports.Out(0x21, masterBase);
        _ports.Out(0xA1, slaveBase);
        _ports.Out(0x21, 0x04);
        _ports.Out(0xA1, 0x02);
        _ports.Out(0x21, 0x01);
        _ports.Out(0xA1, 0x01);
    }

    [Test]
    public void IMR_and_requests_are_clear_after_reset()
    {
        Assert.That(_ports.In(0x21), Is.Zero);
        Assert.That(_ports.In(0xA1), Is.Zero);
        Assert.That(_ports.In(0x20), Is.Zero, "IRR");
        Assert.That(_ports.In(0x4D0), Is.Zero);
        Assert.That(_ports.In(0x4D1), Is.Zero);
    }

    [Test]
    public void Initialisation_sequence_sets_the_vector_base_and_IMR_reads_back()
    {
        _ports.Out(0x21, 0x55);
        Initialise();
        Assert.That(_pic.Master.VectorBase, Is.EqualTo(0x20));
        Assert.That(_pic.Slave.VectorBase, Is.EqualTo(0x28));
        Assert.That(_pic.Master.Initialising, Is.False);
        Assert.That(_ports.In(0x21), Is.Zero, "ICW1 clears IMR");

        _ports.Out(0x21, 0xFB);
        _ports.Out(0xA1, 0xFF);
        Assert.That(_ports.In(0x21), Is.EqualTo(0xFB));
        Assert.That(_ports.In(0xA1), Is.EqualTo(0xFF));
    }

    [Test]
    public void A_master_IRQ_is_acknowledged_with_its_vector_and_retired_by_EOI()
    {
        Initialise();
        var intr = new List<bool>();
        _pic.IntrChanged += intr.Add;
        _pic.SetIrq(1, true);
        Assert.That(_pic.Intr, Is.True);
        Assert.That(_pic.PeekVector(), Is.EqualTo(0x21));
        _ports.Out(0x20, 0x0A);
        Assert.That(_ports.In(0x20), Is.EqualTo(0x02), "IRR via OCW3");

        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x21));
        Assert.That(_pic.Intr, Is.False);
        _ports.Out(0x20, 0x0B);
        Assert.That(_ports.In(0x20), Is.EqualTo(0x02), "ISR via OCW3");
        _ports.Out(0x20, 0x20);
        Assert.That(_ports.In(0x20), Is.Zero);
        Assert.That(intr, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void A_slave_IRQ_cascades_through_master_input_2()
    {
        Initialise();
        _pic.SetIrq(12, true);
        Assert.That(_pic.Intr, Is.True);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x2C));
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x04));
        Assert.That(_pic.Slave.Isr, Is.EqualTo(0x10));
    }

    [Test]
    public void Masked_IRQs_do_not_interrupt()
    {
        Initialise();
        _ports.Out(0x21, 0x01);
        _pic.SetIrq(0, true);
        Assert.That(_pic.Intr, Is.False);
        Assert.That(_pic.Master.Irr, Is.EqualTo(0x01), "still requested");
        _ports.Out(0x21, 0x00);
        Assert.That(_pic.Intr, Is.True);
    }

    [Test]
    public void Without_a_request_the_acknowledge_is_spurious_IRQ_7()
    {
        Initialise();
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x27));
    }

    [Test]
    public void A_lower_priority_request_waits_for_the_EOI_of_a_higher_one()
    {
        Initialise();
        _pic.SetIrq(3, true);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x23));
        _pic.SetIrq(5, true);
        Assert.That(_pic.Intr, Is.False);
        _pic.SetIrq(1, true);
        Assert.That(_pic.Intr, Is.True, "a higher priority nests");
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x21));
        _ports.Out(0x20, 0x61); // specific EOI for IRQ 1
        _ports.Out(0x20, 0x63); // specific EOI for IRQ 3
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x25));
    }

    [Test]
    public void Edge_inputs_trigger_once_per_rising_edge()
    {
        Initialise();
        _pic.SetIrq(4, true);
        _pic.Acknowledge();
        _ports.Out(0x20, 0x20);
        _pic.SetIrq(4, true);
        Assert.That(_pic.Intr, Is.False, "no new edge");
        _pic.SetIrq(4, false);
        _pic.SetIrq(4, true);
        Assert.That(_pic.Intr, Is.True);
    }

    [Test]
    public void ELCR_masks_the_always_edge_IRQs_and_level_requests_persist()
    {
        _ports.Out(0x4D0, 0xFF);
        _ports.Out(0x4D1, 0xFF);
        Assert.That(_ports.In(0x4D0), Is.EqualTo(0xF8), "observed on QEMU 7.2");
        Assert.That(_ports.In(0x4D1), Is.EqualTo(0xDE));

        Initialise();
        _pic.SetIrq(11, true);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x2B));
        Assert.That(_pic.Slave.Irr & 0x08, Is.EqualTo(0x08), "level input still high");
        _pic.SetIrq(11, false);
        Assert.That(_pic.Slave.Irr & 0x08, Is.Zero);
    }

    [Test]
    public void Poll_mode_reads_acknowledge_the_highest_request()
    {
        Initialise();
        _pic.SetIrq(6, true);
        _ports.Out(0x20, 0x0C);
        Assert.That(_ports.In(0x20), Is.EqualTo(0x86));
        Assert.That(_pic.Master.Isr, Is.EqualTo(0x40));
        _ports.Out(0x20, 0x0C);
        Assert.That(_ports.In(0x20), Is.Zero, "nothing left");
    }

    [Test]
    public void Auto_EOI_leaves_nothing_in_service()
    {
        _ports.Out(0x20, 0x11);
        _ports.Out(0x21, 0x08);
        _ports.Out(0x21, 0x04);
        _ports.Out(0x21, 0x03);
        _pic.SetIrq(0, true);
        Assert.That(_pic.Acknowledge(), Is.EqualTo(0x08));
        Assert.That(_pic.Master.Isr, Is.Zero);
    }

    [Test]
    public void IRQs_outside_0_to_15_are_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _pic.SetIrq(16, true));
        Assert.That(ex!.Message, Does.StartWith("The PIC pair has ISA IRQ inputs 0 to 15; 16 is not one."));
    }
}
