using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Misc;

namespace HwMemModel.Devices.Tests;

// Expected values from QEMU's hw/misc/pc-testdev.c and a probe firmware run on QEMU 7.2
// (-machine pc,accel=tcg -cpu max -nodefaults -device pc-testdev); "observed" marks values read there.
public sealed class PcTestdevTests
{
    private PhysicalBus _memory = null!;
    private PortBus _ports = null!;
    private StopRequest _stop = null!;
    private DeviceLog _log = null!;
    private List<(int Line, bool Level)> _irqs = null!;
    private PcTestdev _dev = null!;

    [SetUp]
    public void SetUp()
    {
        _memory = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        _ports = new PortBus();
        _stop = new StopRequest();
        _log = new DeviceLog();
        _irqs = [];
        _dev = new PcTestdev((line, level) => _irqs.Add((line, level)), _stop, _log);
        _dev.Map(_ports, _memory);
    }

    [Test]
    public void Port_e0_latches_a_dword_and_reads_it_back_by_byte_word_and_dword()
    {
        // Observed after outl 0xe0, 0x12345678.
        _ports.Out(0xE0, 0x1234_5678, size: 4);
        Assert.Multiple(() =>
        {
            Assert.That(_ports.In(0xE0), Is.EqualTo(0x78u));
            Assert.That(_ports.In(0xE1), Is.EqualTo(0x56u));
            Assert.That(_ports.In(0xE2), Is.EqualTo(0x34u));
            Assert.That(_ports.In(0xE3), Is.EqualTo(0x12u));
            Assert.That(_ports.In(0xE0, 2), Is.EqualTo(0x5678u));
            Assert.That(_ports.In(0xE2, 2), Is.EqualTo(0x1234u));
            Assert.That(_ports.In(0xE0, 4), Is.EqualTo(0x1234_5678u));
        });
    }

    [Test]
    public void Unaligned_latch_accesses_read_zero_and_writes_are_ignored()
    {
        // Observed: inw 0xe1, inl 0xe1, inl 0xe2, inw 0xe3 read 0; outw 0xe1 and outl 0xe1 change nothing.
        _ports.Out(0xE0, 0x1234_5678, size: 4);
        Assert.Multiple(() =>
        {
            Assert.That(_ports.In(0xE1, 2), Is.Zero);
            Assert.That(_ports.In(0xE1, 4), Is.Zero);
            Assert.That(_ports.In(0xE2, 4), Is.Zero);
            Assert.That(_ports.In(0xE3, 2), Is.Zero);
        });
        _ports.Out(0xE1, 0xAA);
        Assert.That(_ports.In(0xE0, 4), Is.EqualTo(0x1234_AA78u), "byte write at 0xe1 (observed)");
        _ports.Out(0xE2, 0xBEEF, size: 2);
        Assert.That(_ports.In(0xE0, 4), Is.EqualTo(0xBEEF_AA78u), "word write at 0xe2 (observed)");
        _ports.Out(0xE1, 0x5566, size: 2);
        _ports.Out(0xE1, 0x0102_0304, size: 4);
        Assert.That(_ports.In(0xE0, 4), Is.EqualTo(0xBEEF_AA78u), "unaligned writes ignored (observed)");
        Assert.That(_log.Entries, Has.Some.Contains("must be aligned"));
    }

    [Test]
    public void Port_e8_reaches_the_same_latch_byte_by_byte()
    {
        // Observed: outl 0xe8, 0xcafebabe then inl 0xe0 = cafebabe; inw 0xe9 = 0; inl 0xea = 0; outw 0xe9 ignored.
        _ports.Out(0xE8, 0xCAFE_BABE, size: 4);
        Assert.That(_ports.In(0xE0, 4), Is.EqualTo(0xCAFE_BABEu));
        Assert.That(_ports.In(0xE8, 4), Is.EqualTo(0xCAFE_BABEu));
        Assert.That(_ports.In(0xEA, 2), Is.EqualTo(0xCAFEu));
        Assert.That(_ports.In(0xE9, 2), Is.Zero);
        _ports.Out(0xE9, 0x1122, size: 2);
        Assert.That(_dev.Latch, Is.EqualTo(0xCAFE_BABEu));
    }

    [Test]
    public void Flush_port_takes_dword_writes_and_reads_zero()
    {
        // Observed: inl/inb/inw 0xe4 and inb 0xe5 read 0; a flush leaves the latch alone.
        _ports.Out(0xE0, 0x1234_5678, size: 4);
        _ports.Out(0xE4, 0x0010_0123, size: 4);
        Assert.Multiple(() =>
        {
            Assert.That(_ports.In(0xE4, 4), Is.Zero);
            Assert.That(_ports.In(0xE4), Is.Zero);
            Assert.That(_ports.In(0xE4, 2), Is.Zero);
            Assert.That(_ports.In(0xE5), Is.Zero);
            Assert.That(_dev.LastFlushedPage, Is.EqualTo(0x10_0000UL));
            Assert.That(_dev.FlushCount, Is.EqualTo(1));
            Assert.That(_dev.Latch, Is.EqualTo(0x1234_5678u));
        });
        _ports.Out(0xE4, 0x1, size: 2);
        Assert.That(_dev.FlushCount, Is.EqualTo(1), "2-byte writes are rejected");
    }

    [Test]
    public void Irq_ports_set_isa_lines_with_byte_writes()
    {
        // Observed with the PIC's IRR: a write of 1 to 0x2005 sets IRR bit 5, a write of 7 to 0x2003 raises line 3,
        // outw 0x2006 is ignored, 0x200a raises the slave's IRQ 2 (line 10).
        _ports.Out(0x2005, 1);
        _ports.Out(0x2005, 0);
        _ports.Out(0x2003, 7);
        _ports.Out(0x2006, 0x0101, size: 2);
        _ports.Out(0x200A, 1);
        Assert.That(_irqs, Is.EqualTo(new[] { (5, true), (5, false), (3, true), (10, true) }));
        Assert.That(_dev.IrqLevels, Is.EqualTo((1u << 3) | (1u << 10)));
        Assert.That(_ports.In(0x2000), Is.Zero);
        Assert.That(_ports.In(0x2000, 2), Is.Zero);
        Assert.That(_ports.In(0x2000, 4), Is.Zero);
        Assert.That(_ports.In(0x2017), Is.Zero);
        Assert.That(_stop.IsRequested, Is.False);
    }

    [Test]
    public void Writing_a_line_above_15_stops_as_qemus_assertion_does()
    {
        // Observed: QEMU 7.2 prints "isa_get_irq: Assertion `isairq < ISA_NUM_IRQS' failed" and aborts (status 134).
        _ports.Out(0x2010, 1);
        Assert.That(_stop.IsRequested, Is.True);
        Assert.That(_stop.ExitStatus, Is.EqualTo(134));
        Assert.That(_stop.Reason, Does.Contain("ISA IRQ 16").And.Contain("Assertion"));
        Assert.That(_irqs, Is.Empty);
    }

    [Test]
    public void Memory_window_is_zeroed_memory_with_any_size_and_alignment()
    {
        // Observed at 0xff000000: initial 0; after storing 0x11223344 byte 0 = 44, byte 3 = 11, word 1 = 1122,
        // unaligned dword at +1 = 00112233, unaligned word at +1 = 2233; an unaligned dword store of deadbeef at +1
        // leaves +0 = adbeef44 and +4 = 000000de; the last dword and word of the window work; 0xff010000 reads 0.
        Assert.That(_memory.Load(0xFF00_0000), Is.Zero);
        _memory.Store(0xFF00_0000, 0x1122_3344);
        Assert.Multiple(() =>
        {
            Assert.That(_memory.Load(0xFF00_0000, 1), Is.EqualTo(0x44UL));
            Assert.That(_memory.Load(0xFF00_0003, 1), Is.EqualTo(0x11UL));
            Assert.That(_memory.Load(0xFF00_0002, 2), Is.EqualTo(0x1122UL));
            Assert.That(_memory.Load(0xFF00_0001, 4), Is.EqualTo(0x0011_2233UL));
            Assert.That(_memory.Load(0xFF00_0001, 2), Is.EqualTo(0x2233UL));
        });
        _memory.Store(0xFF00_0001, 0xDEAD_BEEF);
        Assert.That(_memory.Load(0xFF00_0000), Is.EqualTo(0xADBE_EF44UL));
        Assert.That(_memory.Load(0xFF00_0004), Is.EqualTo(0x0000_00DEUL));
        _memory.Store(0xFF00_0008, 0x8877_6655_4433_2211, size: 8);
        Assert.That(_memory.Load(0xFF00_0008), Is.EqualTo(0x4433_2211UL));
        Assert.That(_memory.Load(0xFF00_000C), Is.EqualTo(0x8877_6655UL));
        _memory.Store(0xFF00_FFFC, 0xA5A5_A5A5);
        Assert.That(_memory.Load(0xFF00_FFFC), Is.EqualTo(0xA5A5_A5A5UL));
        Assert.That(_memory.Load(0xFF01_0000), Is.Zero);
        Assert.That(_dev.Memory[1], Is.EqualTo(0xEF));
    }

    [Test]
    public void Windows_are_mapped_at_qemus_addresses()
    {
        Assert.That(_ports.FormatIoPorts(), Is.EqualTo("00e0-00eb : pc-testdev\n2000-2017 : pc-testdev-irq-line\n"));
        Assert.That(_memory.Regions.Select(r => (r.Name, r.Base, r.Size)),
            Is.EqualTo(new[] { ("pc-testdev-iomem", 0xFF00_0000UL, 0x1_0000UL) }));
    }
}
