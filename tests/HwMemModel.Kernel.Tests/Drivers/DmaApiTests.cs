using HwMemModel.Bus;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine;

namespace HwMemModel.Kernel.Tests.Drivers;

/// <summary>The DMA API and its debugging checks; expected wording from Linux's kernel/dma/debug.c.</summary>
public sealed class DmaApiTests
{
    private Kernel _k = null!;
    private PlatformDevice _dev = null!;

    [SetUp]
    public void SetUp()
    {
        _k = Kernel.Boot(DefaultMachine.CreateBus(64UL << 20));
        _k.EnableDmaChecking();
        _dev = new PlatformDevice("dev0", ["test,dma"]);
    }

    [Test]
    public void Coherent_memory_is_zeroed_direct_mapped_and_freed_back_to_the_buddy_allocator()
    {
        long free = _k.Pages.FreePageCount;
        ulong va = _k.DmaAllocCoherent(_dev, 3 * 4096, out ulong handle);
        Assert.That(va, Is.Not.Zero);
        Assert.That(va, Is.EqualTo(_k.PhysToVirt(handle)), "x86 without an IOMMU: bus address = physical address, CPU address in the direct map");
        Assert.That(_k.Pages.FreePageCount, Is.EqualTo(free - 4), "3 pages round up to an order-2 block");
        var bytes = new byte[3 * 4096];
        _k.Memory.ReadBytes(va, bytes);
        Assert.That(bytes, Is.All.EqualTo((byte)0));
        Assert.That(_k.DmaMappings.Single().Coherent, Is.True);
        _k.DmaFreeCoherent(_dev, 3 * 4096, va, handle);
        Assert.That(_k.Pages.FreePageCount, Is.EqualTo(free));
        Assert.That(_k.DmaMappings, Is.Empty);
    }

    [Test]
    public void A_24_bit_coherent_mask_gets_memory_below_16_MiB()
    {
        Assert.That(_k.DmaSetMaskAndCoherent(_dev, 0xFF_FFFF), Is.Zero);
        ulong va = _k.DmaAllocCoherent(_dev, 4096, out ulong handle);
        Assert.That(va, Is.Not.Zero);
        Assert.That(handle, Is.Not.Zero);
        Assert.That(handle + 4095, Is.LessThanOrEqualTo(0xFF_FFFFUL));
        Assert.That(_k.Pages.ZoneOf(handle).Type, Is.EqualTo(ZoneType.Dma));
        Assert.That(_k.DmaSetMaskAndCoherent(_dev, 0xFFFF), Is.EqualTo(-Errno.EIO));
    }

    [Test]
    public void Freeing_with_a_different_size_is_reported_and_frees_nothing()
    {
        ulong va = _k.DmaAllocCoherent(_dev, 4096, out ulong handle);
        long free = _k.Pages.FreePageCount;
        _k.DmaFreeCoherent(_dev, 8192, va, handle);
        Assert.That(_k.Log.ToString(), Does.Contain($"DMA-API: platform dev0: device driver frees DMA memory with different size [device address=0x{handle:x16}] [map size=4096 bytes] [unmap size=8192 bytes]"));
        Assert.That(_k.Pages.FreePageCount, Is.EqualTo(free));
        Assert.That(_k.DmaMappings, Has.Count.EqualTo(1));
    }

    [Test]
    public void Unmapping_what_was_never_mapped_is_reported()
    {
        _k.DmaUnmapSingle(_dev, 0x123000, 64, DmaDataDirection.ToDevice);
        Assert.That(_k.Log.ToString(), Does.Contain("device driver tries to free DMA memory it has not allocated [device address=0x0000000000123000] [size=64 bytes]"));
    }

    [Test]
    public void Streaming_mappings_translate_direct_map_addresses_and_check_size_and_direction()
    {
        ulong buf = _k.Kmalloc(512, Gfp.Kernel);
        ulong bus = _k.DmaMapSingle(_dev, buf, 512, DmaDataDirection.FromDevice);
        Assert.That(Kernel.DmaMappingError(bus), Is.False);
        Assert.That(bus, Is.EqualTo(_k.VirtToPhys(buf)));
        _k.DmaUnmapSingle(_dev, bus, 512, DmaDataDirection.ToDevice);
        Assert.That(_k.Log.ToString(), Does.Contain("device driver frees DMA memory with different direction").And.Contain("[mapped as DMA_FROM_DEVICE] [unmapped as DMA_TO_DEVICE]"));
        _k.DmaUnmapSingle(_dev, bus, 512, DmaDataDirection.FromDevice);
        Assert.That(_k.DmaMappings, Is.Empty);
    }

    [Test]
    public void Vmalloc_memory_cannot_be_mapped_for_DMA()
    {
        ulong v = _k.Vmalloc(8192);
        ulong bus = _k.DmaMapSingle(_dev, v, 8192, DmaDataDirection.ToDevice);
        Assert.That(Kernel.DmaMappingError(bus), Is.True);
        Assert.That(_k.Log.ToString(), Does.Contain($"device driver maps memory from vmalloc area [addr=0x{v:x16}] [len=8192]"));
        Assert.That(Kernel.DmaMappingError(_k.DmaMapSingle(_dev, _k.Kmalloc(64, Gfp.Kernel), 64, DmaDataDirection.None)), Is.True);
    }

    [Test]
    public void A_device_writing_memory_no_live_mapping_covers_is_reported_with_its_name_and_address()
    {
        var port = new DmaPort(_k.Bus, "dev0");
        ulong buf = _k.Kmalloc(256, Gfp.Kernel);
        ulong bus = _k.DmaMapSingle(_dev, buf, 256, DmaDataDirection.FromDevice);
        Assert.That(port.Write(bus, new byte[256]), Is.EqualTo(DmaResult.Ok));
        Assert.That(_k.DmaViolations, Is.Empty, "inside a FROM_DEVICE mapping");
        port.Write(bus + 200, new byte[100]);
        Assert.That(_k.DmaViolations.Single(), Does.Contain($"DMA-API: dev0: device wrote [bus address=0x{bus + 200:x16}] [size=100 bytes] not covered by a live DMA mapping (first byte outside: 0x{bus + 256:x16})"));
        port.Read(bus, new byte[16]);
        Assert.That(_k.DmaViolations[1], Does.Contain("device read").And.Contain("against the direction of its mapping"));
        _k.DmaUnmapSingle(_dev, bus, 256, DmaDataDirection.FromDevice);
        port.Write(bus, new byte[4]);
        Assert.That(_k.DmaViolations, Has.Count.EqualTo(3), "after unmap the device may not touch the buffer");
    }

    [Test]
    public void Adjacent_mappings_together_cover_a_transfer()
    {
        var port = new DmaPort(_k.Bus, "dev0");
        ulong va = _k.DmaAllocCoherent(_dev, 4096, out ulong bus);
        ulong second = _k.DmaMapSingle(_dev, va + 4096 < _k.PhysToVirt(_k.RamEnd) ? _k.PhysToVirt(bus + 4096) : va, 4096, DmaDataDirection.Bidirectional);
        Assume.That(second, Is.EqualTo(bus + 4096));
        port.Write(bus + 4000, new byte[200]);
        Assert.That(_k.DmaViolations, Is.Empty);
    }

    [Test]
    public void Another_device_may_not_use_a_mapping_made_for_this_one()
    {
        ulong va = _k.DmaAllocCoherent(_dev, 4096, out ulong bus);
        new DmaPort(_k.Bus, "intruder").Write(bus, new byte[8]);
        Assert.That(_k.DmaViolations.Single(), Does.StartWith("DMA-API: intruder: device wrote"));
        Assert.That(va, Is.Not.Zero);
    }
}
