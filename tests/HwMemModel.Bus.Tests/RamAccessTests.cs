using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

public sealed class RamAccessTests
{
    private static readonly BusAttributes Cpu0 = BusAttributes.Cpu(0);

    private PhysicalBus _bus = null!;
    private RamRegion _ram = null!;

    [SetUp]
    public void SetUp()
    {
        _bus = new PhysicalBus();
        _ram = _bus.AddRam("ram", 0, 0x10000);
    }

    [Test]
    public void Eight_byte_write_is_stored_little_endian()
    {
        _bus.Write(0x100, 8, 0x0807060504030201, Cpu0);

        var bytes = new byte[8];
        _ram.HostRead(0x100, bytes);
        Assert.That(bytes, Is.EqualTo(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }));
    }

    [TestCase(1, 0xF1UL)]
    [TestCase(2, 0xF2F1UL)]
    [TestCase(4, 0xF4F3F2F1UL)]
    [TestCase(8, 0xF8F7F6F5F4F3F2F1UL)]
    public void Read_of_each_size_assembles_bytes_little_endian(int size, ulong expected)
    {
        _ram.HostWrite(0x2000, new byte[] { 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8 });

        BusStatus status = _bus.Read(0x2000, size, out ulong value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.Ok));
        Assert.That(value, Is.EqualTo(expected));
    }

    [Test]
    public void Narrow_write_changes_only_its_bytes()
    {
        _ram.HostWrite(0x40, new byte[] { 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA });

        _bus.Write(0x42, 2, 0xFFFF_1234, Cpu0);

        _bus.Read(0x40, 8, out ulong value, Cpu0);
        Assert.That(value, Is.EqualTo(0xAAAA_AAAA_1234_AAAAUL));
    }

    [Test]
    public void Repeated_reads_of_a_page_see_later_writes()
    {
        // The first read caches the page; the write and the second read must go through the same page.
        _bus.Write(0x3000, 8, 1, Cpu0);
        _bus.Read(0x3000, 8, out ulong first, Cpu0);
        _bus.Write(0x3000, 8, 2, Cpu0);
        _bus.Read(0x3000, 8, out ulong second, Cpu0);
        _ram.HostWrite(0x3008, new byte[] { 9 });
        _bus.Read(0x3008, 1, out ulong third, Cpu0);

        Assert.That((first, second, third), Is.EqualTo((1UL, 2UL, 9UL)));
    }

    [Test]
    public void Unaligned_read_crossing_a_page_boundary_assembles_both_pages()
    {
        _ram.HostWrite(0xFFC, new byte[] { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 });

        _bus.Read(0xFFC, 8, out ulong value, Cpu0);

        Assert.That(value, Is.EqualTo(0x0807060504030201UL));
    }

    [Test]
    public void Unaligned_write_crossing_a_page_boundary_lands_in_both_pages()
    {
        _bus.Write(0x1FFE, 4, 0xDDCCBBAA, Cpu0);

        var low = new byte[2];
        var high = new byte[2];
        _ram.HostRead(0x1FFE, low);
        _ram.HostRead(0x2000, high);
        Assert.That(low, Is.EqualTo(new byte[] { 0xAA, 0xBB }));
        Assert.That(high, Is.EqualTo(new byte[] { 0xCC, 0xDD }));
        Assert.That(_ram.TouchedPages, Is.EqualTo(2));
    }

    [Test]
    public void Read_spanning_two_adjacent_ram_regions_takes_bytes_from_each()
    {
        RamRegion second = _bus.AddRam("ram2", 0x10000, 0x1000);
        _ram.HostWrite(0xFFFE, new byte[] { 0x11, 0x22 });
        second.HostWrite(0, new byte[] { 0x33, 0x44 });

        _bus.Read(0xFFFE, 4, out ulong value, Cpu0);

        Assert.That(value, Is.EqualTo(0x44332211UL));
    }

    [Test]
    public void Write_spanning_ram_and_unmapped_stores_the_mapped_bytes_and_counts_the_rest()
    {
        _bus.Write(0xFFFC, 8, 0x8877665544332211, Cpu0);

        var bytes = new byte[4];
        _ram.HostRead(0xFFFC, bytes);
        Assert.That(bytes, Is.EqualTo(new byte[] { 0x11, 0x22, 0x33, 0x44 }));
        Assert.That(_bus.Counters.UnmappedWrites, Is.EqualTo(1));
    }

    [Test]
    public void Read_spanning_ram_and_unmapped_fills_the_unmapped_bytes_with_ones()
    {
        _ram.HostWrite(0xFFFE, new byte[] { 0x11, 0x22 });

        BusStatus status = _bus.Read(0xFFFE, 4, out ulong value, Cpu0);

        Assert.That(status, Is.EqualTo(BusStatus.Ok));
        Assert.That(value, Is.EqualTo(0xFFFF2211UL));
    }

    [Test]
    public void ReadBytes_and_WriteBytes_cross_pages_and_regions()
    {
        RamRegion second = _bus.AddRam("ram2", 0x10000, 0x2000);
        byte[] data = Enumerable.Range(0, 0x2080).Select(i => (byte)(i * 7 + 3)).ToArray();

        BusStatus written = _bus.WriteBytes(0xFF80, data, Cpu0);
        var back = new byte[data.Length];
        BusStatus read = _bus.ReadBytes(0xFF80, back, Cpu0);

        Assert.That((written, read), Is.EqualTo((BusStatus.Ok, BusStatus.Ok)));
        Assert.That(back, Is.EqualTo(data));
        var tail = new byte[0x10];
        second.HostRead(0x1FF0, tail);
        Assert.That(tail, Is.EqualTo(data[0x2070..0x2080]));
    }

    [Test]
    public void Untouched_ram_reads_as_zero()
    {
        _bus.Read(0x8000, 8, out ulong value, Cpu0);
        var bytes = new byte[0x3000];
        bytes.AsSpan().Fill(0xEE);
        _bus.ReadBytes(0x1000, bytes, Cpu0);

        Assert.That(value, Is.Zero);
        Assert.That(bytes, Is.All.EqualTo((byte)0));
    }

    [Test]
    public void Writing_zero_to_an_untouched_page_allocates_nothing()
    {
        _bus.Write(0x5000, 8, 0, Cpu0);
        _bus.WriteBytes(0x6000, new byte[0x2000], Cpu0);

        Assert.That(_ram.TouchedPages, Is.Zero);
    }

    [Test]
    public void Counters_count_each_transaction_once_per_requester_kind()
    {
        _bus.Read(0, 8, out _, Cpu0);
        _bus.Read(0xFFC, 8, out _, Cpu0);                       // split across pages: still one read
        _bus.Write(0, 4, 1, BusAttributes.Dma(3));
        _bus.ReadBytes(0, new byte[100], BusAttributes.Debugger);
        _bus.WriteBytes(0, new byte[] { 1 }, BusAttributes.Host);

        BusCounters c = _bus.Counters;
        Assert.That(c.Reads, Is.EqualTo(3));
        Assert.That(c.Writes, Is.EqualTo(2));
        Assert.That(c.ReadsBy(RequesterKind.Cpu), Is.EqualTo(2));
        Assert.That(c.ReadsBy(RequesterKind.Debugger), Is.EqualTo(1));
        Assert.That(c.WritesBy(RequesterKind.Dma), Is.EqualTo(1));
        Assert.That(c.WritesBy(RequesterKind.Host), Is.EqualTo(1));
        Assert.That(c.TransactionsBy(RequesterKind.Cpu), Is.EqualTo(2));

        _bus.ResetCounters();
        Assert.That(_bus.Counters.Reads + _bus.Counters.Writes, Is.Zero);
    }

    [Test]
    public void LoadImage_writes_ram_without_counting_a_transaction()
    {
        _bus.LoadImage(0x7FFE, new byte[] { 0xEF, 0xBE, 0xAD, 0xDE });

        _bus.Read(0x7FFE, 4, out ulong value, Cpu0);
        Assert.That(value, Is.EqualTo(0xDEADBEEFUL));
        Assert.That(_bus.Counters.Writes, Is.Zero);
    }
}
