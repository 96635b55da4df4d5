using HwMemModel.Bus;
using HwMemModel.Kernel;
using static HwMemModel.Kernel.Tests.Vmalloc.VmallocTestSupport;

namespace HwMemModel.Kernel.Tests.IoRemap;

public sealed class MmioAccessorTests
{
    private const ulong Base = 0xFED0_0000;

    private static (Kernel K, RecordingDevice Dev, ulong Va) Setup(AccessConstraints? valid = null)
    {
        var dev = new RecordingDevice(0x1000, valid);
        var k = Boot(devices: bus => bus.AddMmio("recorder", Base, 0x1000, dev));
        ulong va = k.IoRemap(Base, 0x1000);
        Assert.That(va, Is.Not.Zero);
        dev.Accesses.Clear();
        return (k, dev, va);
    }

    [Test]
    public void Reads_reach_the_device_as_one_access_of_their_width()
    {
        var (k, dev, va) = Setup();
        for (int i = 0; i < 32; i++) dev.Bytes[i] = (byte)(0x10 + i);
        Assert.That(k.ReadB(va + 1), Is.EqualTo(0x11));
        Assert.That(k.ReadW(va + 2), Is.EqualTo(0x1312));
        Assert.That(k.ReadL(va + 4), Is.EqualTo(0x1716_1514u));
        Assert.That(k.ReadQ(va + 8), Is.EqualTo(0x1F1E_1D1C_1B1A_1918UL));
        Assert.That(dev.Accesses.Select(a => (a.Write, a.Offset, a.Size)), Is.EqualTo(new[]
        {
            (false, 1UL, 1), (false, 2UL, 2), (false, 4UL, 4), (false, 8UL, 8),
        }));
    }

    [Test]
    public void Writes_reach_the_device_as_one_access_of_their_width()
    {
        var (k, dev, va) = Setup();
        k.WriteB(0xAB, va + 0x10);
        k.WriteW(0xBEEF, va + 0x12);
        k.WriteL(0xDEAD_BEEF, va + 0x14);
        k.WriteQ(0x0123_4567_89AB_CDEF, va + 0x18);
        Assert.That(dev.Accesses, Is.EqualTo(new[]
        {
            (true, 0x10UL, 1, 0xABUL), (true, 0x12UL, 2, 0xBEEFUL), (true, 0x14UL, 4, 0xDEAD_BEEFUL), (true, 0x18UL, 8, 0x0123_4567_89AB_CDEFUL),
        }));
    }

    [Test]
    public void Ioread_and_iowrite_reach_the_device_as_one_access_of_their_width()
    {
        var (k, dev, va) = Setup();
        k.IoWrite8(1, va);
        k.IoWrite16(2, va + 2);
        k.IoWrite32(3, va + 4);
        k.IoWrite64(4, va + 8);
        Assert.That(k.IoRead8(va), Is.EqualTo(1));
        Assert.That(k.IoRead16(va + 2), Is.EqualTo(2));
        Assert.That(k.IoRead32(va + 4), Is.EqualTo(3u));
        Assert.That(k.IoRead64(va + 8), Is.EqualTo(4UL));
        Assert.That(dev.Accesses.Select(a => (a.Write, a.Offset, a.Size)), Is.EqualTo(new[]
        {
            (true, 0UL, 1), (true, 2UL, 2), (true, 4UL, 4), (true, 8UL, 8),
            (false, 0UL, 1), (false, 2UL, 2), (false, 4UL, 4), (false, 8UL, 8),
        }));
    }

    [Test]
    public void Memcpy_fromio_aligns_the_source_then_copies_dwords()
    {
        var (k, dev, va) = Setup();
        for (int i = 0; i < 64; i++) dev.Bytes[i] = (byte)i;
        var buffer = new byte[14];
        k.MemcpyFromIo(buffer, va + 1);
        Assert.That(buffer, Is.EqualTo(Enumerable.Range(1, 14).Select(i => (byte)i).ToArray()));
        // 1 byte at 1, a word at 2, dwords at 4 and 8, then a word at 12 and a byte at 14.
        Assert.That(dev.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (1UL, 1), (2UL, 2), (4UL, 4), (8UL, 4), (12UL, 2), (14UL, 1) }));
    }

    [Test]
    public void Memcpy_toio_aligns_the_destination_then_copies_dwords()
    {
        var (k, dev, va) = Setup();
        var data = Enumerable.Range(0, 9).Select(i => (byte)(0xA0 + i)).ToArray();
        k.MemcpyToIo(va + 3, data);
        Assert.That(dev.Bytes.Skip(3).Take(9), Is.EqualTo(data));
        Assert.That(dev.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[] { (3UL, 1), (4UL, 4), (8UL, 4) }));
    }

    [Test]
    public void Memcpy_between_io_and_kernel_memory_goes_through_the_mmu_on_both_sides()
    {
        var (k, dev, va) = Setup();
        ulong buf = k.Vmalloc(Page);
        k.Memory.WriteBytes(buf, "hello, device!"u8);
        k.MemcpyToIo(va + 0x100, buf, 14);
        Assert.That(dev.Bytes.Skip(0x100).Take(14), Is.EqualTo("hello, device!"u8.ToArray()));
        k.MemcpyFromIo(buf + 0x800, va + 0x100, 14);
        var back = new byte[14];
        k.Memory.ReadBytes(buf + 0x800, back);
        Assert.That(back, Is.EqualTo("hello, device!"u8.ToArray()));
    }

    [Test]
    public void Memset_io_uses_bytes_to_alignment_then_qwords()
    {
        var (k, dev, va) = Setup();
        k.MemsetIo(va + 3, 0x5C, 20);
        Assert.That(dev.Bytes.Skip(3).Take(20).All(b => b == 0x5C), Is.True);
        Assert.That(dev.Bytes[2], Is.Zero);
        Assert.That(dev.Bytes[23], Is.Zero);
        Assert.That(dev.Accesses.Select(a => (a.Offset, a.Size)), Is.EqualTo(new[]
        {
            (3UL, 1), (4UL, 1), (5UL, 1), (6UL, 1), (7UL, 1), (8UL, 8), (16UL, 1), (17UL, 1), (18UL, 1), (19UL, 1), (20UL, 1), (21UL, 1), (22UL, 1),
        }));
        Assert.That(dev.Accesses.Single(a => a.Size == 8).Value, Is.EqualTo(0x5C5C_5C5C_5C5C_5C5CUL));
    }

    [Test]
    public void An_access_that_does_not_translate_is_an_oops()
    {
        var (k, _, va) = Setup();
        var ex = Assert.Throws<KernelStopException>(() => k.WriteL(1, va + 0x1000));
        Assert.That(ex!.Report, Does.StartWith($"BUG: unable to handle page fault for address: {va + 0x1000:x16}\n#PF: supervisor write access in kernel mode"));
        Assert.Throws<KernelStopException>(() => k.ReadQ(0x0000_8000_0000_0000UL), "a non-canonical address is a #GP");
    }

    [Test]
    public void A_width_the_device_refuses_reads_all_ones_and_drops_writes()
    {
        var (k, dev, va) = Setup(AccessConstraints.Exactly(4));
        Assert.That(k.ReadB(va), Is.EqualTo(0xFF));
        k.WriteW(0x1234, va + 2);
        Assert.That(dev.Accesses, Is.Empty);
        Assert.That(k.ReadL(va), Is.Zero);
        Assert.That(dev.Accesses, Has.Count.EqualTo(1));
    }

    [Test]
    public void A_port_io_cookie_is_reported_as_a_bad_io_access()
    {
        var (k, _, _) = Setup();
        int mark = k.Log.Lines.Count;
        Assert.That(k.IoRead32(0x1234), Is.EqualTo(0xFFFF_FFFFu));
        k.IoWrite8(1, 0x1_0060);
        Assert.That(LogSince(k, mark), Is.EqualTo(new[] { "Bad IO access at port 0x1234 (ioread32)", "Bad IO access at port 0x60 (iowrite8)" }));
    }
}
