using System.Buffers.Binary;
using System.Text;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Platform;

namespace HwMemModel.Devices.Tests;

// Expected values come from QEMU's sources (hw/nvram/fw_cfg.c, hw/i386/fw_cfg.c,
// include/standard-headers/linux/qemu_fw_cfg.h) and from a probe firmware run on QEMU 7.2
// (-machine pc,accel=tcg -cpu max -m 128M -nodefaults, booted with -bios): the bytes marked "observed" were read
// from ports 0x510/0x511 there.
public sealed class FwCfgTests
{
    private PhysicalBus _memory = null!;
    private PortBus _ports = null!;
    private DeviceLog _log = null!;
    private FwCfg _fw = null!;

    [SetUp]
    public void SetUp()
    {
        _memory = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        _memory.AddRam("ram", 0, 0x10_0000);
        _ports = new PortBus();
        _log = new DeviceLog();
        _fw = PcPlatform.AddFwCfg(_memory, _ports, 128UL << 20, cpus: 1, FwCfgHpet.Default, _log);
    }

    private byte[] ReadItem(ushort key, int count)
    {
        _ports.Out(0x510, key, size: 2);
        var bytes = new byte[count];
        for (int i = 0; i < count; i++) bytes[i] = (byte)_ports.In(0x511);
        return bytes;
    }

    [Test]
    public void Signature_is_QEMU_and_reads_zero_past_its_end()
    {
        // Observed: key 0000: 51 45 4d 55 00 00 00 00.
        Assert.That(ReadItem(FwCfgKeys.Signature, 8), Is.EqualTo(new byte[] { 0x51, 0x45, 0x4D, 0x55, 0, 0, 0, 0 }));
    }

    [Test]
    public void Id_reports_the_traditional_and_dma_interfaces_as_qemu_7_2_pc_does()
    {
        // Observed: key 0001: 03 00 00 00.
        Assert.That(ReadItem(FwCfgKeys.Id, 4), Is.EqualTo(new byte[] { 3, 0, 0, 0 }));
    }

    [Test]
    public void Without_dma_id_reports_only_the_traditional_interface()
    {
        var fw = new FwCfg();
        Assert.That(fw.GetItem(FwCfgKeys.Id), Is.EqualTo(new byte[] { 1, 0, 0, 0 }));
        Assert.That(fw.DmaWindow, Is.Null);
    }

    [Test]
    public void Ram_size_is_64_bit_little_endian()
    {
        // Observed: key 0003: 00 00 00 08 00 00 00 00 for -m 128M.
        Assert.That(ReadItem(FwCfgKeys.RamSize, 8), Is.EqualTo(new byte[] { 0, 0, 0, 8, 0, 0, 0, 0 }));
    }

    [Test]
    public void Cpu_count_and_max_cpus_are_16_bit_little_endian()
    {
        // Observed: key 0005: 01 00 and key 000f: 01 00; with -smp 4 both 04 00.
        Assert.That(ReadItem(FwCfgKeys.NbCpus, 4), Is.EqualTo(new byte[] { 1, 0, 0, 0 }));
        Assert.That(ReadItem(FwCfgKeys.MaxCpus, 2), Is.EqualTo(new byte[] { 1, 0 }));
        var four = PcFwCfg.Create(256UL << 20, 4, FwCfgHpet.Default);
        Assert.That(four.GetItem(FwCfgKeys.NbCpus), Is.EqualTo(new byte[] { 4, 0 }));
        Assert.That(four.GetItem(FwCfgKeys.MaxCpus), Is.EqualTo(new byte[] { 4, 0 }));
    }

    [Test]
    public void File_directory_is_big_endian_and_sorted_by_name()
    {
        _ports.Out(0x510, FwCfgKeys.FileDir, size: 2);
        byte[] dir = new byte[4 + 64 * 5];
        for (int i = 0; i < dir.Length; i++) dir[i] = (byte)_ports.In(0x511);

        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(dir), Is.EqualTo(4u));
        var entries = Enumerable.Range(0, 4).Select(i =>
        {
            var e = dir.AsSpan(4 + 64 * i, 64);
            return (Size: BinaryPrimitives.ReadUInt32BigEndian(e), Select: BinaryPrimitives.ReadUInt16BigEndian(e[4..]),
                Reserved: BinaryPrimitives.ReadUInt16BigEndian(e[6..]), Name: Encoding.ASCII.GetString(e[8..]).TrimEnd('\0'));
        }).ToArray();
        // QEMU 7.2 lists these four among its twelve, with the same sizes (observed); the model numbers them from 0x20.
        Assert.That(entries, Is.EqualTo(new[]
        {
            (0u, (ushort)0x20, (ushort)0, "bios-geometry"),
            (0u, (ushort)0x21, (ushort)0, "bootorder"),
            (4u, (ushort)0x22, (ushort)0, "etc/boot-fail-wait"),
            (40u, (ushort)0x23, (ushort)0, "etc/e820"),
        }));
        Assert.That(dir.AsSpan(4 + 64 * 4).ToArray(), Is.All.EqualTo(0), "unused slots read as zeros (observed)");
    }

    [Test]
    public void Etc_e820_lists_the_ht_hole_then_ram_from_zero()
    {
        // Observed etc/e820 for 128 MiB: {0xfd00000000, 0x300000000, 2}, {0, 0x8000000, 1}.
        byte[] expected =
        [
            0, 0, 0, 0, 0xFD, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0, 0,
        ];
        Assert.That(ReadItem(0x23, 40), Is.EqualTo(expected));
        Assert.That(ReadItem(0x22, 4), Is.EqualTo(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }), "etc/boot-fail-wait (observed)");
    }

    [Test]
    public void X86_items_match_qemu()
    {
        // Observed: key 8002: 01 00 00 00; key 8004: 01 01 a2 86 80 00 00 d0 fe 00 ...; with hpet=off the count is ff.
        Assert.That(ReadItem(FwCfgKeys.Irq0Override, 4), Is.EqualTo(new byte[] { 1, 0, 0, 0 }));
        byte[] hpet = ReadItem(FwCfgKeys.Hpet, 20);
        Assert.That(hpet[..16], Is.EqualTo(new byte[] { 0x01, 0x01, 0xA2, 0x86, 0x80, 0x00, 0x00, 0xD0, 0xFE, 0, 0, 0, 0, 0, 0, 0 }));
        Assert.That(PcFwCfg.HpetConfig(null)[0], Is.EqualTo(0xFF));
        Assert.That(PcFwCfg.HpetConfig(null), Has.Length.EqualTo(121));
        Assert.That(FwCfgHpet.BlockIdFor(3), Is.EqualTo(0x8086A201u));
    }

    [TestCase((ushort)0x0006)]
    [TestCase((ushort)0x0007)]
    [TestCase((ushort)0x0030)]
    [TestCase((ushort)0x003F)]
    [TestCase((ushort)0x0040)]
    [TestCase((ushort)0x7777)]
    [TestCase((ushort)0xFFFF)]
    [TestCase((ushort)0xC000)]
    public void Unknown_and_out_of_range_keys_read_zero(ushort key)
    {
        // Observed for 0x30, 0x3f, 0x40, 0x7777, 0xffff, 0xc000 and the unused well-known keys.
        Assert.That(ReadItem(key, 4), Is.All.EqualTo(0));
    }

    [Test]
    public void The_write_channel_bit_is_ignored_by_the_lookup()
    {
        // Observed: key 4000 reads "QEMU", key 4019 the directory count.
        Assert.That(ReadItem(0x4000, 4), Is.EqualTo("QEMU"u8.ToArray()));
        Assert.That(ReadItem(0x4019, 4), Is.EqualTo(new byte[] { 0, 0, 0, 4 }));
        Assert.That(_fw.SelectedKey, Is.EqualTo(0x4019));
        _ports.Out(0x510, 0x7777, size: 2);
        Assert.That(_fw.SelectedKey, Is.EqualTo(FwCfgKeys.Invalid));
    }

    [Test]
    public void Selecting_resets_the_offset_and_both_ports_read_data()
    {
        _ports.Out(0x510, 0, size: 2);
        Assert.That(_ports.In(0x510), Is.EqualTo((uint)'Q'), "a byte read of 0x510 reads data (observed)");
        Assert.That(_ports.In(0x510), Is.EqualTo((uint)'E'));
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'M'));
        _ports.Out(0x510, 0, size: 2);
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'Q'));
    }

    [Test]
    public void Power_on_selects_the_signature()
    {
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'Q'));
        _ports.In(0x511);
        _fw.Reset();
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'Q'));
    }

    [Test]
    public void Wide_reads_return_zero_without_advancing()
    {
        // Observed: after reading "QE", inw 0x510 = 0000 and the next byte is 'M'.
        _ports.Out(0x510, 0, size: 2);
        _ports.In(0x511);
        _ports.In(0x511);
        Assert.That(_ports.In(0x510, 2), Is.Zero);
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'M'));
        Assert.That(_log.Entries, Has.Some.Contains("2-byte read of port 0x510"));
    }

    [Test]
    public void Byte_writes_and_unaligned_word_writes_do_not_select()
    {
        // Observed: outb 0x510, outb 0x511 and outw 0x511 leave the selection and offset alone.
        _ports.Out(0x510, 0, size: 2);
        _ports.In(0x511);
        _ports.Out(0x510, 1);
        _ports.Out(0x511, 1);
        _ports.Out(0x511, 1, size: 2);
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'E'));
        Assert.That(_log.Entries, Has.Some.Contains("data register"));
    }

    [Test]
    public void Dma_register_reads_the_signature_in_memory_order()
    {
        // Observed: bytes 51 45 4d 55 20 43 46 47, inl 0x514 = 554d4551, inl 0x518 = 47464320, inw 0x516 = 554d.
        Assert.That(Enumerable.Range(0, 8).Select(i => (byte)_ports.In((ushort)(0x514 + i))), Is.EqualTo("QEMU CFG"u8.ToArray()));
        Assert.That(_ports.In(0x514, 4), Is.EqualTo(0x554D4551u));
        Assert.That(_ports.In(0x518, 4), Is.EqualTo(0x47464320u));
        Assert.That(_ports.In(0x516, 2), Is.EqualTo(0x554Du));
        Assert.That(_ports.In(0x515, 2), Is.Zero, "unaligned");
    }

    private void StartDma(ulong descriptor)
    {
        _ports.Out(0x514, BinaryPrimitives.ReverseEndianness((uint)(descriptor >> 32)), size: 4);
        _ports.Out(0x518, BinaryPrimitives.ReverseEndianness((uint)descriptor), size: 4);
    }

    private void PutDescriptor(ulong at, uint control, uint length, ulong address)
    {
        var d = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(d, control);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), length);
        BinaryPrimitives.WriteUInt64BigEndian(d.AsSpan(8), address);
        _memory.LoadImage(at, d);
    }

    private byte[] Memory(ulong at, int count)
    {
        var b = new byte[count];
        _memory.ReadBytes(at, b, BusAttributes.Host);
        return b;
    }

    [Test]
    public void Dma_select_and_read_copies_the_item_zero_fills_past_its_end_and_clears_control()
    {
        _memory.LoadImage(0x2000, Enumerable.Repeat((byte)0xAA, 16).ToArray());
        PutDescriptor(0x1000, (FwCfgKeys.RamSize << 16) | FwCfgKeys.DmaControlSelect | FwCfgKeys.DmaControlRead, 12, 0x2000);

        StartDma(0x1000);

        Assert.That(Memory(0x2000, 16), Is.EqualTo(new byte[] { 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0xAA, 0xAA, 0xAA, 0xAA }));
        Assert.That(Memory(0x1000, 4), Is.All.EqualTo(0), "control written back as 0 (big-endian)");
        Assert.That(_fw.SelectedKey, Is.EqualTo(FwCfgKeys.RamSize));
        Assert.That(_fw.DmaTransfers, Is.EqualTo(1));
    }

    [Test]
    public void Dma_skip_advances_the_offset_for_port_reads()
    {
        PutDescriptor(0x1000, (FwCfgKeys.Signature << 16) | FwCfgKeys.DmaControlSelect | FwCfgKeys.DmaControlSkip, 2, 0);
        StartDma(0x1000);
        Assert.That(_ports.In(0x511), Is.EqualTo((uint)'M'));
    }

    [Test]
    public void Dma_write_sets_the_error_bit()
    {
        PutDescriptor(0x1000, FwCfgKeys.DmaControlWrite, 4, 0x2000);
        StartDma(0x1000);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(Memory(0x1000, 4)), Is.EqualTo(FwCfgKeys.DmaControlError));
    }

    [Test]
    public void Dma_to_memory_that_is_not_ram_sets_the_error_bit()
    {
        PutDescriptor(0x1000, FwCfgKeys.DmaControlSelect | FwCfgKeys.DmaControlRead, 4, 0x8000_0000);
        StartDma(0x1000);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(Memory(0x1000, 4)), Is.EqualTo(FwCfgKeys.DmaControlError));
        Assert.That(_log.Entries, Has.Some.Contains("refused"));
    }

    [Test]
    public void Dma_with_no_operation_bit_transfers_nothing()
    {
        _memory.LoadImage(0x2000, [0xAA]);
        PutDescriptor(0x1000, FwCfgKeys.DmaControlSelect, 4, 0x2000);
        StartDma(0x1000);
        Assert.That(Memory(0x2000, 1), Is.EqualTo(new byte[] { 0xAA }));
        Assert.That(Memory(0x1000, 4), Is.All.EqualTo(0));
    }

    [Test]
    public void Dma_descriptor_outside_ram_is_dropped_quietly_to_the_log()
    {
        StartDma(0x4000_0000);
        Assert.That(_fw.DmaTransfers, Is.EqualTo(1));
        Assert.That(_log.Entries, Has.Some.Contains("cannot be read"));
    }

    [Test]
    public void Host_misuse_throws()
    {
        var fw = new FwCfg();
        Assert.Throws<ArgumentException>(() => fw.AddBytes(FwCfgKeys.Signature, [1]));
        Assert.Throws<ArgumentException>(() => fw.AddBytes(FwCfgKeys.FileDir, [1]));
        Assert.Throws<ArgumentException>(() => fw.AddBytes(0x40, [1]));
        Assert.Throws<ArgumentException>(() => fw.AddFile("bootorder", []));
        Assert.Throws<ArgumentException>(() => fw.AddFile(new string('a', 56), []));
        Assert.Throws<ArgumentOutOfRangeException>(() => PcFwCfg.Create(128UL << 20, 0, null));
    }

    [Test]
    public void Files_added_later_move_others_to_keep_name_order()
    {
        var fw = new FwCfg();
        ushort key = fw.AddFile("aaa", [7]);
        Assert.That(key, Is.EqualTo(0x20));
        Assert.That(fw.Files.Select(f => (f.Name, f.Select)), Is.EqualTo(new[]
        {
            ("aaa", (ushort)0x20), ("bios-geometry", (ushort)0x21), ("bootorder", (ushort)0x22), ("etc/boot-fail-wait", (ushort)0x23),
        }));
        Assert.That(fw.GetItem(0x20), Is.EqualTo(new byte[] { 7 }));
        Assert.That(fw.GetItem(0x23), Is.EqualTo(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }));
    }
}
