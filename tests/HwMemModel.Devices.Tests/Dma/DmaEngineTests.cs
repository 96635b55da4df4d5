using System.Buffers.Binary;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Dma;

namespace HwMemModel.Devices.Tests.Dma;

/// <summary>
/// The DMA engine programmed as a driver would, through bus writes, with expectations from its programming model
/// (devices/README.md): offsets, bits and codes below are written out from that datasheet, not taken from the code.
/// </summary>
public sealed class DmaEngineTests
{
    private const ulong Base = 0xFEB0_0000;
    private const ulong Id = Base + 0x000, Version = Base + 0x004, Caps = Base + 0x008, Control = Base + 0x010;
    private const ulong Status = Base + 0x014, RingBase = Base + 0x020, RingSize = Base + 0x028, Head = Base + 0x030;
    private const ulong Tail = Base + 0x034, ErrorAddr = Base + 0x040, ErrorIndex = Base + 0x048, Completed = Base + 0x050;

    private const uint Enable = 1, ResetBit = 2, DoneIe = 1 << 8, ErrorIe = 1 << 9;
    private const uint Done = 1, Error = 2, Busy = 4;

    private const byte OpCopy = 1, OpFill = 2, FlagIrq = 1;
    private const ushort StOk = 1, StBadOpcode = 0x10, StBadLength = 0x11, StSrcUnmapped = 0x21;
    private const ushort StDstNotMemory = 0x32, StRingUnmapped = 0x41, StBadRingSize = 0x60, StBadTail = 0x61;

    private const ulong Ring = 0x1_0000;
    private const ulong RamSize = 0x0100_0000;

    private sealed class Rig
    {
        public Rig(long setup, long bytesPerMicrosecond)
        {
            Bus = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
            Bus.AddRam("ram", 0, RamSize);
            Dma = new DmaEngine(Bus, Clock, Log, "dma0", requesterId: 1, setupNanoseconds: setup, bytesPerMicrosecond: bytesPerMicrosecond);
            Bus.AddMmio("dma0", Base, 0x1000, Dma);
            Dma.IrqLineChanged += Irq.Add;
        }

        public GuestClock Clock { get; } = new();
        public DeviceLog Log { get; } = new();
        public PhysicalBus Bus { get; }
        public DmaEngine Dma { get; }
        public List<bool> Irq { get; } = [];

        public uint Reg(ulong pa) => (uint)Bus.Load(pa, 4);

        public void Set(ulong pa, ulong value, int size = 4) => Bus.Store(pa, value, size);

        public void Setup(ulong ring, uint size, uint control = Enable)
        {
            Set(RingBase, ring, 8);
            Set(RingSize, size);
            Set(Control, control);
        }

        /// <summary>Writes descriptor <paramref name="index"/> in the layout of the datasheet.</summary>
        public void Desc(ulong ring, uint index, byte op, byte flags, uint length, ulong src, ulong dst, ulong fill = 0)
        {
            var d = new byte[32];
            d[0] = op;
            d[1] = flags;
            BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(4), length);
            BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(8), src);
            BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(16), dst);
            BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(24), fill);
            Bus.WriteBytes(ring + 32 * (ulong)index, d, BusAttributes.Host);
        }

        public ushort DescStatus(ulong ring, uint index) => (ushort)Bus.Load(ring + 32 * (ulong)index + 2, 2);

        public byte[] Bytes(ulong pa, int length)
        {
            var b = new byte[length];
            Bus.ReadBytes(pa, b, BusAttributes.Host);
            return b;
        }

        public void Fill(ulong pa, int length, Func<int, byte> f)
        {
            var b = new byte[length];
            for (int i = 0; i < length; i++) b[i] = f(i);
            Bus.WriteBytes(pa, b, BusAttributes.Host);
        }

        public void Advance(long ns)
        {
            Clock.Advance(ns);
            Dma.Poll();
        }
    }

    /// <summary>Transfers complete inside the doorbell write (no set-up, no per-byte time).</summary>
    private static Rig Instant() => new(0, 0);

    private static byte Pattern(int i) => (byte)(i * 7 + 3);

    // ------------------------------------------------------------ identification and reset state

    [Test]
    public void Identification_registers_and_reset_values_follow_the_datasheet()
    {
        var rig = Instant();
        Assert.Multiple(() =>
        {
            Assert.That(rig.Reg(Id), Is.EqualTo(0x414D_4448u));
            Assert.That(rig.Reg(Version), Is.EqualTo(0x0001_0000u));
            Assert.That(rig.Reg(Caps), Is.EqualTo(0x0018_0C20u));
            foreach (ulong r in new[] { Control, Status, RingBase, RingBase + 4, RingSize, Head, Tail, ErrorAddr, ErrorAddr + 4, ErrorIndex, Completed })
            {
                Assert.That(rig.Reg(r), Is.Zero, $"register at 0x{r - Base:x3}");
            }

            Assert.That(rig.Dma.IrqLine, Is.False);
            Assert.That(DmaEngine.Compatible, Is.EqualTo("hwmem,dma-engine"));
        });
    }

    [Test]
    public void Ring_base_takes_8_byte_and_4_byte_halves_and_keeps_bits_4_to_0_zero_with_a_report()
    {
        var rig = Instant();
        rig.Set(RingBase, 0x0000_0012_3456_7800, 8);
        Assert.That(rig.Bus.Load(RingBase, 8), Is.EqualTo(0x0000_0012_3456_7800UL));
        rig.Set(RingBase + 4, 0x1);
        Assert.That(rig.Bus.Load(RingBase, 8), Is.EqualTo(0x0000_0001_3456_7800UL));
        Assert.That(rig.Log.Entries, Is.Empty);

        rig.Set(RingBase, 0x1000_001F);
        Assert.That(rig.Reg(RingBase), Is.EqualTo(0x1000_0000u));
        Assert.That(rig.Log.Entries, Has.Count.EqualTo(1));
        Assert.That(rig.Log.Entries[0], Does.StartWith("dma0: write of 0x1000001f (4 bytes) to RING_BASE").And.Contain("0x1f"));
    }

    [Test]
    public void Undefined_offset_and_a_64_bit_access_to_a_32_bit_register_are_reported_not_errors()
    {
        var rig = Instant();
        rig.Set(Base + 0x38, 0x1234);
        Assert.That(rig.Bus.Load(Control, 8), Is.EqualTo(0UL));
        Assert.That(rig.Log.Entries, Is.EqualTo(new[]
        {
            "dma0: write of 0x1234 (4 bytes) to undefined offset 0x38 ignored",
            rig.Log.Entries[1],
        }));
        Assert.That(rig.Log.Entries[1], Does.StartWith("dma0: read of 8 bytes from offset 0x10 returned 0").And.Contain("CONTROL"));
    }

    [Test]
    public void Accesses_of_1_or_2_bytes_are_refused_by_the_bus()
    {
        var rig = Instant();
        Assert.That(rig.Bus.Read(Control, 2, out _, BusAttributes.Cpu(0)), Is.EqualTo(BusStatus.DeviceError));
        Assert.That(rig.Bus.Write(Control, 1, 1, BusAttributes.Cpu(0)), Is.EqualTo(BusStatus.DeviceError));
        Assert.That(rig.Reg(Control), Is.Zero);
    }

    // ------------------------------------------------------------ copy and fill

    [Test]
    public void Copy_moves_the_bytes_writes_status_ok_and_advances_head_and_completed()
    {
        var rig = Instant();
        rig.Fill(0x2_0000, 4096, Pattern);
        rig.Setup(Ring, 8);
        rig.Desc(Ring, 0, OpCopy, 0, 4096, 0x2_0000, 0x3_0000);
        rig.Set(Tail, 1);

        Assert.That(rig.Bytes(0x3_0000, 4096), Is.EqualTo(rig.Bytes(0x2_0000, 4096)));
        Assert.That(rig.Bytes(0x3_1000, 1), Is.EqualTo(new byte[] { 0 }), "nothing past the length");
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StOk));
        Assert.That(rig.Reg(Head), Is.EqualTo(1u));
        Assert.That(rig.Reg(Completed), Is.EqualTo(1u));
        Assert.That(rig.Reg(Status), Is.Zero, "no interrupt flag: DONE stays clear; not busy; no error");
        Assert.That(rig.Dma.Port.Transfers, Is.GreaterThanOrEqualTo(2), "the engine goes through its DmaPort");
    }

    [Test]
    public void Fill_repeats_the_8_byte_pattern_low_byte_first_for_exactly_the_length()
    {
        var rig = Instant();
        rig.Fill(0x4_0000, 32, _ => 0xEE);
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpFill, 0, 13, 0, 0x4_0000, 0x1122_3344_5566_7788);
        rig.Set(Tail, 1);

        Assert.That(rig.Bytes(0x4_0000, 14), Is.EqualTo(new byte[]
        {
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55, 0x44, 0xEE,
        }));
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StOk));
    }

    [Test]
    public void Overlapping_copy_behaves_like_memmove()
    {
        var rig = Instant();
        rig.Fill(0x5_0000, 16, i => (byte)i);
        rig.Setup(Ring, 2);
        rig.Desc(Ring, 0, OpCopy, 0, 12, 0x5_0000, 0x5_0004);
        rig.Set(Tail, 1);
        Assert.That(rig.Bytes(0x5_0000, 16), Is.EqualTo(new byte[] { 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }));
    }

    [Test]
    public void Zero_length_descriptor_completes_at_the_doorbell_even_with_a_set_up_cost()
    {
        var rig = new Rig(setup: 500, bytesPerMicrosecond: 1000);
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpCopy, FlagIrq, 0, 0x9_0000_0000, 0x9_0000_0000); // addresses irrelevant for 0 bytes
        rig.Set(Tail, 1);
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StOk));
        Assert.That(rig.Reg(Head), Is.EqualTo(1u));
        Assert.That(rig.Reg(Status) & (Done | Error | Busy), Is.EqualTo(Done));
    }

    [Test]
    public void Disabled_engine_does_not_process_until_enable_is_set()
    {
        var rig = Instant();
        rig.Fill(0x2_0000, 8, Pattern);
        rig.Setup(Ring, 4, control: 0);
        rig.Desc(Ring, 0, OpCopy, 0, 8, 0x2_0000, 0x3_0000);
        rig.Set(Tail, 1);
        Assert.That(rig.Reg(Head), Is.Zero);
        Assert.That(rig.DescStatus(Ring, 0), Is.Zero);
        rig.Set(Control, Enable);
        Assert.That(rig.Reg(Head), Is.EqualTo(1u));
        Assert.That(rig.Bytes(0x3_0000, 8), Is.EqualTo(rig.Bytes(0x2_0000, 8)));
    }

    // ------------------------------------------------------------ interrupt

    [Test]
    public void Interrupt_rises_on_done_with_done_ie_and_falls_when_done_is_written_one()
    {
        var rig = Instant();
        rig.Setup(Ring, 4, Enable | DoneIe);
        rig.Desc(Ring, 0, OpFill, FlagIrq, 64, 0, 0x6_0000, 0xAB);
        rig.Set(Tail, 1);

        Assert.That(rig.Dma.IrqLine, Is.True);
        Assert.That(rig.Reg(Status) & Done, Is.EqualTo(Done));
        rig.Set(Status, 0); // writing 0 clears nothing
        Assert.That(rig.Dma.IrqLine, Is.True);
        rig.Set(Status, Done);
        Assert.That(rig.Dma.IrqLine, Is.False);
        Assert.That(rig.Reg(Status) & Done, Is.Zero);
        Assert.That(rig.Irq, Is.EqualTo(new[] { true, false }));
    }

    [Test]
    public void Done_without_done_ie_raises_no_interrupt_until_it_is_enabled()
    {
        var rig = Instant();
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpFill, FlagIrq, 8, 0, 0x6_0000, 0);
        rig.Set(Tail, 1);
        Assert.That(rig.Dma.IrqLine, Is.False);
        rig.Set(Control, Enable | DoneIe);
        Assert.That(rig.Dma.IrqLine, Is.True, "the line is a level: status AND enable");
        rig.Set(Control, Enable);
        Assert.That(rig.Dma.IrqLine, Is.False);
    }

    [Test]
    public void Descriptor_without_the_interrupt_flag_does_not_set_done()
    {
        var rig = Instant();
        rig.Setup(Ring, 4, Enable | DoneIe);
        rig.Desc(Ring, 0, OpFill, 0, 8, 0, 0x6_0000, 0);
        rig.Set(Tail, 1);
        Assert.That(rig.Reg(Status) & Done, Is.Zero);
        Assert.That(rig.Dma.IrqLine, Is.False);
        Assert.That(rig.Reg(Completed), Is.EqualTo(1u));
    }

    // ------------------------------------------------------------ errors

    [Test]
    public void Destination_in_an_mmio_window_fails_with_0x32_and_halts_the_ring()
    {
        var rig = Instant();
        rig.Fill(0x2_0000, 64, Pattern);
        rig.Setup(Ring, 8, Enable | ErrorIe);
        rig.Desc(Ring, 0, OpCopy, FlagIrq, 64, 0x2_0000, Base); // into the engine's own register window
        rig.Desc(Ring, 1, OpFill, 0, 16, 0, 0x7_0000, 0x0101_0101_0101_0101);
        rig.Set(Tail, 2);

        Assert.Multiple(() =>
        {
            Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StDstNotMemory));
            Assert.That(rig.Reg(Status), Is.EqualTo(Error | (StDstNotMemory << 8)), "ERROR and LAST_ERROR, DONE not set by a failure");
            Assert.That(rig.Bus.Load(ErrorAddr, 8), Is.EqualTo(Base));
            Assert.That(rig.Reg(ErrorIndex), Is.Zero);
            Assert.That(rig.Reg(Head), Is.EqualTo(1u), "HEAD moves past the failed descriptor");
            Assert.That(rig.Reg(Completed), Is.Zero);
            Assert.That(rig.DescStatus(Ring, 1), Is.Zero, "the ring is halted: descriptor 1 not processed");
            Assert.That(rig.Bytes(0x7_0000, 1), Is.EqualTo(new byte[] { 0 }));
            Assert.That(rig.Reg(Id), Is.EqualTo(0x414D_4448u), "nothing was written into the MMIO window");
            Assert.That(rig.Dma.IrqLine, Is.True, "ERROR with ERROR_IE");
            Assert.That(rig.Log.Entries, Has.Count.EqualTo(1));
            Assert.That(rig.Log.Entries[0], Does.StartWith("dma0: descriptor 0 at 0x10000"));
            Assert.That(rig.Log.Entries[0], Is.EqualTo(
                "dma0: descriptor 0 at 0x10000 (copy of 64 bytes from 0x20000 to 0xfeb00000) failed: destination 0xfeb00000 " +
                "(+64 bytes) is not memory (a device window, or ROM for a write); error 0x32, ring halted until STATUS.ERROR " +
                "is cleared or the engine is reset"), "the example line of devices/README.md");
        });
    }

    [Test]
    public void Clearing_error_resumes_the_ring_at_head()
    {
        var rig = Instant();
        rig.Setup(Ring, 8, Enable | ErrorIe);
        rig.Desc(Ring, 0, OpFill, 0, 16, 0, Base + 0x100, 0);
        rig.Desc(Ring, 1, OpFill, 0, 16, 0, 0x7_0000, 0x0101_0101_0101_0101);
        rig.Set(Tail, 2);
        Assert.That(rig.Reg(Status) & Error, Is.EqualTo(Error));

        rig.Set(Status, Error);
        Assert.That(rig.Dma.IrqLine, Is.False);
        Assert.That(rig.DescStatus(Ring, 1), Is.EqualTo(StOk));
        Assert.That(rig.Bytes(0x7_0000, 16), Is.All.EqualTo(1));
        Assert.That(rig.Reg(Head), Is.EqualTo(2u));
        Assert.That(rig.Reg(Completed), Is.EqualTo(1u));
        Assert.That(rig.Reg(Status) >> 8 & 0xFF, Is.EqualTo((uint)StDstNotMemory), "LAST_ERROR is kept until reset");
    }

    [Test]
    public void Unmapped_source_fails_with_0x21_and_names_the_address()
    {
        var rig = Instant();
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpCopy, 0, 4096, 0x8000_0000, 0x3_0000);
        rig.Fill(0x3_0000, 8, _ => 0x5A);
        rig.Set(Tail, 1);

        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StSrcUnmapped));
        Assert.That(rig.Bus.Load(ErrorAddr, 8), Is.EqualTo(0x8000_0000UL));
        Assert.That(rig.Reg(Status) >> 8 & 0xFF, Is.EqualTo((uint)StSrcUnmapped));
        Assert.That(rig.Bytes(0x3_0000, 8), Is.All.EqualTo(0x5A), "nothing written");
        Assert.That(rig.Log.Entries[0], Does.Contain("0x80000000").And.Contain("unmapped"));
        Assert.That(rig.Dma.IrqLine, Is.False, "ERROR_IE is off");
    }

    [Test]
    public void Source_range_running_off_the_end_of_ram_is_refused_as_a_whole()
    {
        var rig = Instant();
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpCopy, 0, 0x2000, RamSize - 0x1000, 0x3_0000);
        rig.Fill(0x3_0000, 8, _ => 0x5A);
        rig.Set(Tail, 1);
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StSrcUnmapped));
        Assert.That(rig.Bytes(0x3_0000, 8), Is.All.EqualTo(0x5A));
    }

    [Test]
    public void Unmapped_ring_fails_with_0x41_without_moving_head()
    {
        var rig = Instant();
        rig.Setup(0x4000_0000, 4, Enable | ErrorIe);
        rig.Set(Tail, 1);
        Assert.That(rig.Reg(Status), Is.EqualTo(Error | (StRingUnmapped << 8)));
        Assert.That(rig.Bus.Load(ErrorAddr, 8), Is.EqualTo(0x4000_0000UL));
        Assert.That(rig.Reg(Head), Is.Zero);
        Assert.That(rig.Dma.IrqLine, Is.True);
        Assert.That(rig.Log.Entries[0], Does.StartWith("dma0: cannot fetch descriptor 0 at 0x40000000"));
    }

    [Test]
    public void Bad_opcode_and_oversized_length_complete_with_their_codes()
    {
        var rig = Instant();
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, 0x7F, 0, 8, 0x2_0000, 0x3_0000);
        rig.Desc(Ring, 1, OpFill, 0, (16 << 20) + 1, 0, 0x3_0000, 0xFFFF_FFFF_FFFF_FFFF);
        rig.Fill(0x3_0000, 8, _ => 0x5A);
        rig.Set(Tail, 2);
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StBadOpcode));
        rig.Set(Status, Error);
        Assert.That(rig.DescStatus(Ring, 1), Is.EqualTo(StBadLength));
        Assert.That(rig.Bytes(0x3_0000, 8), Is.All.EqualTo(0x5A));
        Assert.That(rig.Reg(Head), Is.EqualTo(2u));
    }

    [Test]
    public void Exactly_16_MiB_is_allowed()
    {
        var rig = Instant();
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpFill, 0, 16 << 20, 0, 0, 0); // fills all RAM with zeros, ring included
        rig.Set(Tail, 1);
        Assert.That(rig.Reg(Status) & Error, Is.Zero);
        Assert.That(rig.Reg(Completed), Is.EqualTo(1u));
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StOk), "status is written back after the transfer");
    }

    [Test]
    public void Invalid_ring_size_and_tail_outside_the_ring_are_errors_when_there_is_work()
    {
        var rig = Instant();
        rig.Setup(Ring, 3);
        rig.Set(Tail, 1);
        Assert.That(rig.Reg(Status) >> 8 & 0xFF, Is.EqualTo((uint)StBadRingSize));
        Assert.That(rig.Bus.Load(ErrorAddr, 8), Is.EqualTo(Ring));

        rig.Set(Control, ResetBit);
        rig.Setup(Ring, 8);
        rig.Set(Tail, 9);
        Assert.That(rig.Reg(Status), Is.EqualTo(Error | (StBadTail << 8)));
        Assert.That(rig.Reg(ErrorIndex), Is.EqualTo(9u));
        Assert.That(rig.Log.Entries[^1], Does.Contain("TAIL 9"));
    }

    [Test]
    public void Fill_into_rom_is_refused_as_not_memory_and_the_rom_is_unchanged()
    {
        var rig = Instant();
        rig.Bus.AddRom("rom", 0x0200_0000, new byte[0x1000]);
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpFill, 0, 16, 0, 0x0200_0000, 0xFFFF_FFFF_FFFF_FFFF);
        rig.Set(Tail, 1);
        Assert.That(rig.DescStatus(Ring, 0), Is.EqualTo(StDstNotMemory));
        Assert.That(rig.Bytes(0x0200_0000, 16), Is.All.EqualTo(0));
    }

    [Test]
    public void Clearing_enable_lets_the_descriptor_in_flight_finish_and_starts_no_other()
    {
        var rig = new Rig(setup: 100, bytesPerMicrosecond: 1000);
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpFill, 0, 100, 0, 0x6_0000, 0x0505_0505_0505_0505);
        rig.Desc(Ring, 1, OpFill, 0, 100, 0, 0x6_1000, 0x0505_0505_0505_0505);
        rig.Set(Tail, 2);
        rig.Clock.Advance(50);
        rig.Set(Control, 0);
        rig.Advance(10_000);
        Assert.That(rig.Reg(Head), Is.EqualTo(1u));
        Assert.That(rig.Bytes(0x6_0000, 100), Is.All.EqualTo(5));
        Assert.That(rig.DescStatus(Ring, 1), Is.Zero);
        rig.Set(Control, Enable); // starts descriptor 1 now: 200 ns
        Assert.That(rig.Dma.NextDeadline, Is.EqualTo(10_050 + 200));
    }

    // ------------------------------------------------------------ ring wrap-around

    [Test]
    public void Head_wraps_around_the_ring()
    {
        var rig = Instant();
        rig.Setup(Ring, 4);
        for (uint i = 0; i < 3; i++) rig.Desc(Ring, i, OpFill, 0, 8, 0, 0x8_0000 + 8 * i, 0x0101_0101_0101_0101UL * (i + 1));
        rig.Set(Tail, 3);
        Assert.That(rig.Reg(Head), Is.EqualTo(3u));

        // Descriptors 3, 0, 1: TAIL wraps to 2.
        uint[] slots = [3, 0, 1];
        for (int k = 0; k < 3; k++)
        {
            rig.Desc(Ring, slots[k], OpFill, 0, 8, 0, 0x9_0000 + 8 * (ulong)k, 0x1111_1111_1111_1111 * (ulong)(k + 1));
        }

        rig.Set(Tail, 2);
        Assert.That(rig.Reg(Head), Is.EqualTo(2u));
        Assert.That(rig.Reg(Completed), Is.EqualTo(6u));
        Assert.That(rig.Bytes(0x9_0000, 24), Is.EqualTo(
            Enumerable.Repeat((byte)0x11, 8).Concat(Enumerable.Repeat((byte)0x22, 8)).Concat(Enumerable.Repeat((byte)0x33, 8)).ToArray()));
        foreach (uint s in slots) Assert.That(rig.DescStatus(Ring, s), Is.EqualTo(StOk));
    }

    // ------------------------------------------------------------ timing

    [Test]
    public void Copy_completes_at_set_up_plus_bytes_over_throughput()
    {
        // 100 ns + 4096 bytes at 1000 bytes/us = 100 + 4096 = 4196 ns.
        var rig = new Rig(setup: 100, bytesPerMicrosecond: 1000);
        rig.Fill(0x2_0000, 4096, Pattern);
        rig.Setup(Ring, 4, Enable | DoneIe);
        rig.Desc(Ring, 0, OpCopy, FlagIrq, 4096, 0x2_0000, 0x3_0000);
        rig.Set(Tail, 1);

        Assert.That(rig.Dma.NextDeadline, Is.EqualTo(4196));
        Assert.That(rig.Reg(Status) & Busy, Is.EqualTo(Busy));
        rig.Advance(4195);
        Assert.That(rig.Reg(Head), Is.Zero);
        Assert.That(rig.Bytes(0x3_0000, 4), Is.All.EqualTo(0), "memory is written at completion");
        Assert.That(rig.Dma.IrqLine, Is.False);

        rig.Advance(1);
        Assert.That(rig.Dma.IrqLine, Is.True, "Poll at the deadline delivers the interrupt");
        Assert.That(rig.Reg(Head), Is.EqualTo(1u));
        Assert.That(rig.Bytes(0x3_0000, 4096), Is.EqualTo(rig.Bytes(0x2_0000, 4096)));
        Assert.That(rig.Reg(Status) & Busy, Is.Zero);
        Assert.That(rig.Dma.NextDeadline, Is.EqualTo(long.MaxValue));
    }

    [Test]
    public void A_chain_starts_each_descriptor_at_its_predecessors_completion_however_late_the_poll()
    {
        // 0: 100 + 1000 = 1100 ns; 1: 100 + 1 (1 byte rounds up to 1 ns) = 101 ns -> completes at 1201.
        var rig = new Rig(setup: 100, bytesPerMicrosecond: 1000);
        rig.Setup(Ring, 4);
        rig.Desc(Ring, 0, OpFill, 0, 1000, 0, 0x6_0000, 0);
        rig.Desc(Ring, 1, OpFill, 0, 1, 0, 0x6_1000, 0);
        rig.Desc(Ring, 2, OpFill, 0, 1000, 0, 0x6_2000, 0);
        rig.Set(Tail, 2);
        rig.Clock.Advance(1150);
        Assert.That(rig.Reg(Head), Is.EqualTo(1u), "a register read brings the engine up to date");
        Assert.That(rig.Dma.NextDeadline, Is.EqualTo(1201));

        rig.Set(Tail, 3); // descriptor 2 waits for descriptor 1: starts at 1201, ends at 2301
        rig.Clock.Advance(10_000);
        rig.Dma.Poll();
        Assert.That(rig.Reg(Head), Is.EqualTo(3u));

        var second = new Rig(setup: 100, bytesPerMicrosecond: 1000);
        second.Setup(Ring, 4);
        second.Desc(Ring, 0, OpFill, 0, 1000, 0, 0x6_0000, 0);
        second.Desc(Ring, 1, OpFill, 0, 1, 0, 0x6_1000, 0);
        second.Desc(Ring, 2, OpFill, 0, 1000, 0, 0x6_2000, 0);
        second.Set(Tail, 3);
        second.Clock.Advance(2300);
        Assert.That(second.Reg(Head), Is.EqualTo(2u));
        second.Clock.Advance(1);
        Assert.That(second.Reg(Head), Is.EqualTo(3u), "1100 + 101 + 1100 = 2301 ns");
    }

    // ------------------------------------------------------------ reset

    [Test]
    public void Control_reset_restores_every_register_abandons_the_transfer_and_drops_the_interrupt()
    {
        var rig = new Rig(setup: 100, bytesPerMicrosecond: 1000);
        rig.Setup(Ring, 4, Enable | DoneIe | ErrorIe);
        rig.Desc(Ring, 0, OpFill, FlagIrq, 16, 0, 0x6_0000, 0x7777_7777_7777_7777);
        rig.Desc(Ring, 1, OpFill, FlagIrq, 16, 0, Base, 0);
        rig.Desc(Ring, 2, OpFill, FlagIrq, 4000, 0, 0x6_1000, 0x7777_7777_7777_7777);
        rig.Set(Tail, 3);
        rig.Advance(1000); // 0 done at 116 and 1 failed at 232: halted with DONE and ERROR
        Assert.That(rig.Dma.IrqLine, Is.True);
        rig.Set(Status, Error); // resume: descriptor 2 starts at 1000, would end at 5100
        Assert.That(rig.Reg(Status) & Busy, Is.EqualTo(Busy));

        rig.Set(Control, ResetBit | Enable);
        Assert.Multiple(() =>
        {
            foreach (ulong r in new[] { Control, Status, RingBase, RingSize, Head, Tail, ErrorAddr, ErrorIndex, Completed })
            {
                Assert.That(rig.Reg(r), Is.Zero, $"register at 0x{r - Base:x3}");
            }

            Assert.That(rig.Dma.IrqLine, Is.False);
            Assert.That(rig.Dma.NextDeadline, Is.EqualTo(long.MaxValue));
        });
        rig.Advance(10_000);
        Assert.That(rig.Bytes(0x6_1000, 4), Is.All.EqualTo(0), "the abandoned fill never reaches memory");
        Assert.That(rig.DescStatus(Ring, 2), Is.Zero);
    }

    // ------------------------------------------------------------ determinism

    [Test]
    public void Two_identical_runs_give_identical_memory_registers_and_log()
    {
        static (byte[] Memory, ulong[] Registers, string[] Log, bool[] Irq) Run()
        {
            // Descriptor i takes 37 + ceil((500 + 300 i) * 1000 / 3333) ns: 0-2 end at 188, 466, 834; TAIL 7 at 582; 3 ends
            // at 1292; 4 fails at 1840 and halts; the clear at 2037 runs 5 and 6 (ends 2675, 3403), all before 3880.
            var rig = new Rig(setup: 37, bytesPerMicrosecond: 3333);
            rig.Fill(0x2_0000, 0x3000, Pattern);
            rig.Setup(Ring, 8, Enable | DoneIe | ErrorIe);
            for (uint i = 0; i < 7; i++)
            {
                bool bad = i == 4;
                rig.Desc(Ring, i, i % 2 == 0 ? OpCopy : OpFill, FlagIrq, 500 + 300 * i, 0x2_0000 + 0x100 * i,
                    bad ? 0xC000_0000 : 0x4_0000 + 0x1000 * i, 0x0102_0304_0506_0708UL * i);
            }

            rig.Set(Tail, 3);
            for (int step = 0; step < 40; step++)
            {
                rig.Advance(97);
                if (step == 5) rig.Set(Tail, 7);
                if (step == 20) rig.Set(Status, Done | Error);
            }

            ulong[] regs = [.. new[] { Control, Status, RingBase, RingSize, Head, Tail, ErrorAddr, ErrorIndex, Completed }.Select(r => rig.Bus.Load(r, 4))];
            return (rig.Bytes(0, 0x5_0000), regs, [.. rig.Log.Entries], [.. rig.Irq]);
        }

        var a = Run();
        var b = Run();
        Assert.That(b.Memory, Is.EqualTo(a.Memory));
        Assert.That(b.Registers, Is.EqualTo(a.Registers));
        Assert.That(b.Log, Is.EqualTo(a.Log));
        Assert.That(b.Irq, Is.EqualTo(a.Irq));
        Assert.That(a.Log, Is.Not.Empty, "the scenario includes an error");
        Assert.That(a.Registers[8], Is.EqualTo(6u), "six of seven descriptors succeed");
        Assert.That(a.Registers[7], Is.EqualTo(4u), "descriptor 4 failed");
        Assert.That(a.Registers[1], Is.EqualTo(Done | (0x31u << 8)), "DONE again after the clear; LAST_ERROR 0x31 (destination unmapped)");
    }
}
