using HwMemModel.Bus;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Devices.Tests;

public sealed class IoApicTests
{
    private const ulong Base = 0xFEC0_0000, IoRegSel = Base, IoWin = Base + 0x10;

    private IoApic _ioApic = null!;
    private PhysicalBus _bus = null!;
    private List<IoApicInterrupt> _sent = null!;

    [SetUp]
    public void SetUp()
    {
        _ioApic = new IoApic();
        _bus = BusExtensions.MemoryWith(_ioApic, Base, 0x1000);
        _sent = [];
        _ioApic.InterruptRequested += _sent.Add;
    }

    private uint ReadReg(uint index)
    {
        _bus.Store(IoRegSel, index);
        return (uint)_bus.Load(IoWin);
    }

    private void WriteReg(uint index, uint value)
    {
        _bus.Store(IoRegSel, index);
        _bus.Store(IoWin, value);
    }

    [Test]
    public void Id_version_and_arbitration_read_through_IOREGSEL_and_IOWIN()
    {
        Assert.That(ReadReg(0), Is.Zero, "ID 0");
        Assert.That(ReadReg(1), Is.EqualTo(0x0017_0020u), "24 entries, version 0x20");
        Assert.That(ReadReg(2), Is.Zero);
    }

    [Test]
    public void Redirection_entries_reset_masked()
    {
        for (uint pin = 0; pin < 24; pin++)
        {
            Assert.That(ReadReg(0x10 + 2 * pin), Is.EqualTo(0x0001_0000u), $"pin {pin} low");
            Assert.That(ReadReg(0x11 + 2 * pin), Is.Zero, $"pin {pin} high");
            Assert.That(_ioApic.GetRedirectionEntry((int)pin), Is.EqualTo(0x1_0000UL));
        }
    }

    [Test]
    public void The_ID_keeps_four_bits_and_arbitration_follows_it()
    {
        WriteReg(0, 0xFFFF_FFFF);
        Assert.That(ReadReg(0), Is.EqualTo(0x0F00_0000u));
        Assert.That(ReadReg(2), Is.EqualTo(0x0F00_0000u));
        WriteReg(1, 0);
        Assert.That(ReadReg(1), Is.EqualTo(0x0017_0020u), "version is read-only");
    }

    [Test]
    public void Remote_IRR_and_delivery_status_are_read_only()
    {
        WriteReg(0x14, 0xFFFF_FFFF);
        WriteReg(0x15, 0xFFFF_FFFF);
        Assert.That(ReadReg(0x14), Is.EqualTo(0xFFFF_AFFFu), "observed on QEMU 7.2");
        Assert.That(ReadReg(0x15), Is.EqualTo(0xFFFF_FFFFu));
    }

    [Test]
    public void IOREGSEL_is_eight_bits_wide()
    {
        _bus.Store(IoRegSel, 0x123);
        Assert.That(_bus.Load(IoRegSel), Is.EqualTo(0x23UL));
    }

    [Test]
    public void Unknown_registers_and_narrow_IOWIN_reads_return_zero()
    {
        Assert.That(ReadReg(0x03), Is.Zero);
        Assert.That(ReadReg(0x40), Is.Zero);
        _bus.Store(IoRegSel, 1);
        Assert.That(_bus.Load(IoWin, 1), Is.Zero, "IOWIN answers only 32-bit accesses");
        Assert.That(_bus.Load(Base + 0x20), Is.Zero);
        Assert.That(_bus.Load(Base + 0x110), Is.EqualTo(0x0017_0020UL), "offsets decode modulo 0x100");
    }

    [Test]
    public void An_edge_on_an_unmasked_pin_sends_its_vector()
    {
        WriteReg(0x11 + 2 * 4, 0x0100_0000); // destination 1
        WriteReg(0x10 + 2 * 4, 0x0000_0034);
        _ioApic.SetIrq(4, true);
        Assert.That(_sent, Is.EqualTo(new[] { new IoApicInterrupt(4, 0x34, 0, false, 1, false, false) }));
        _ioApic.SetIrq(4, false);
        _ioApic.SetIrq(4, true);
        Assert.That(_sent, Has.Count.EqualTo(2));
    }

    [Test]
    public void Edges_on_masked_pins_are_ignored()
    {
        WriteReg(0x10 + 2 * 5, 0x0001_0035);
        _ioApic.SetIrq(5, true);
        WriteReg(0x10 + 2 * 5, 0x0000_0035);
        Assert.That(_sent, Is.Empty, "the edge was not latched");
    }

    [Test]
    public void Level_interrupts_wait_for_EOI_and_resend_while_asserted()
    {
        WriteReg(0x10 + 2 * 9, 0x0000_A039); // level, active low, vector 0x39
        _ioApic.SetIrq(9, true);
        Assert.That(_sent, Has.Count.EqualTo(1));
        Assert.That(_sent[0].LevelTriggered && _sent[0].ActiveLow, Is.True);
        Assert.That(ReadReg(0x10 + 2 * 9) & 0x4000, Is.EqualTo(0x4000u), "remote IRR");

        _ioApic.SetIrq(9, true);
        Assert.That(_sent, Has.Count.EqualTo(1), "remote IRR holds the line");

        _ioApic.EndOfInterrupt(0x39);
        Assert.That(_sent, Has.Count.EqualTo(2), "still asserted: sent again");

        _ioApic.SetIrq(9, false);
        _bus.Store(Base + 0x40, 0x39); // the version 0x20 EOI register
        Assert.That(_sent, Has.Count.EqualTo(2));
        Assert.That(ReadReg(0x10 + 2 * 9) & 0x4000, Is.Zero);
    }

    [Test]
    public void ISA_IRQ_0_arrives_on_pin_2()
    {
        WriteReg(0x10 + 2 * 2, 0x30);
        _ioApic.SetIrq(0, true);
        Assert.That(_sent.Single().Pin, Is.EqualTo(2));
    }

    [Test]
    public void Lines_outside_0_to_23_are_rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => _ioApic.SetIrq(24, true));
        Assert.That(ex!.Message, Does.StartWith("The I/O APIC has pins 0 to 23; 24 is not one."));
        Assert.That(ex.ParamName, Is.EqualTo("line"));
    }
}
