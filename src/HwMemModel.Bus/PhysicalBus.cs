using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HwMemModel.Bus;

/// <summary>
/// The physical memory bus: RAM, ROM, MMIO windows and aliases mapped by priority onto a flattened view that is
/// rebuilt only when the layout changes. Every transaction carries <see cref="BusAttributes"/>; CPUs, DMA masters,
/// debuggers and host code all use the same entry points. Guest-controlled input never throws: faults are
/// returned as <see cref="BusStatus"/>; exceptions mean host misuse. Not thread-safe.
/// </summary>
/// <remarks>
/// Hot path: a 256-entry direct-mapped page cache (tag = page base) remembers RAM and ROM pages that a flat range
/// covers whole, so an aligned access within such a page is a tag compare and one load or store. Misses go through
/// a last-hit check and a binary search of the flat view. Addresses above MAXPHYADDR decode to nothing.
/// </remarks>
public sealed partial class PhysicalBus
{
    private const int PageCacheEntries = 256;
    private const ulong PageCacheMask = PageCacheEntries - 1;

    /// <summary>A tag no address matches: bit 3 is never part of the compare mask.</summary>
    private const ulong InvalidTag = 8;

    private readonly List<MemoryRegion> _regions = [];
    private readonly PageCacheEntry[] _pageCache = new PageCacheEntry[PageCacheEntries];
    private readonly ulong _maxPhysAddress;
    private FlatView _view = FlatView.Empty;
    private int _lastHit;
    private long _sequence;
    private UnmappedPolicy _unmappedPolicy;
    private CounterBlock _counters;

    /// <summary>Creates an empty bus.</summary>
    /// <param name="maxPhysAddrBits">MAXPHYADDR, 12 to 52: regions must end at or below 2^bits - 1.</param>
    /// <param name="unmappedPolicy">What accesses that no region decodes do.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxPhysAddrBits"/> is outside 12..52 or the policy is undefined.</exception>
    public PhysicalBus(int maxPhysAddrBits = 40, UnmappedPolicy unmappedPolicy = UnmappedPolicy.AllOnes)
    {
        if (maxPhysAddrBits is < 12 or > 52)
        {
            ThrowHelper.ThrowOutOfRange(nameof(maxPhysAddrBits),
                $"MAXPHYADDR {maxPhysAddrBits} bits is not supported: x86-64 allows 12 to 52 physical address bits.");
        }

        MaxPhysAddrBits = maxPhysAddrBits;
        _maxPhysAddress = (1UL << maxPhysAddrBits) - 1;
        UnmappedPolicy = unmappedPolicy;
        InvalidatePageCache();
    }

    /// <summary>MAXPHYADDR: the number of physical address bits.</summary>
    public int MaxPhysAddrBits { get; }

    /// <summary>The highest physical address, 2^<see cref="MaxPhysAddrBits"/> - 1.</summary>
    public ulong MaxPhysAddress => _maxPhysAddress;

    /// <summary>What accesses that no region decodes do; may be changed at any time.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined <see cref="Bus.UnmappedPolicy"/>.</exception>
    public UnmappedPolicy UnmappedPolicy
    {
        get => _unmappedPolicy;
        set
        {
            if (!Enum.IsDefined(value))
            {
                ThrowHelper.ThrowOutOfRange(nameof(value),
                    $"Unmapped policy {(int)value} is not defined: use AllOnes, Zero or BusError.");
            }

            _unmappedPolicy = value;
        }
    }

    /// <summary>The mapped regions in the order they were added.</summary>
    public IReadOnlyList<MemoryRegion> Regions => _regions;

    /// <summary>A snapshot of the transaction counters.</summary>
    public BusCounters Counters => _counters.Snapshot();

    /// <summary>Sets every counter to zero.</summary>
    public void ResetCounters() => _counters = default;

    // ---------------------------------------------------------------- layout

    /// <summary>Maps sparse RAM of <paramref name="size"/> bytes at <paramref name="pa"/>; base and size must be 4 KiB aligned.</summary>
    /// <exception cref="ArgumentException">Empty name, zero or unaligned size or base, a range beyond MAXPHYADDR or wrapping past 2^64, or an overlap with a region of equal priority.</exception>
    public RamRegion AddRam(string name, ulong pa, ulong size, int priority = 0)
    {
        CheckPlacement(MemoryRegionKind.Ram, name, pa, size, priority, pageAligned: true);
        return Map(new RamRegion(name, pa, size, priority));
    }

    /// <summary>
    /// Maps a ROM holding a copy of <paramref name="image"/> at <paramref name="pa"/>; the image length is the
    /// region size and, like the base, must be a multiple of 4 KiB. Guest writes are dropped and counted.
    /// </summary>
    /// <exception cref="ArgumentException">As for <see cref="AddRam"/>.</exception>
    public RomRegion AddRom(string name, ulong pa, ReadOnlySpan<byte> image, int priority = 0)
    {
        CheckPlacement(MemoryRegionKind.Rom, name, pa, (ulong)image.Length, priority, pageAligned: true);
        return Map(new RomRegion(name, pa, image.ToArray(), priority));
    }

    /// <summary>
    /// Maps a device window of <paramref name="size"/> bytes at <paramref name="pa"/>. MMIO windows may have any
    /// size of at least one byte and any alignment (the HPET's window is 0x400 bytes).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="device"/> is null.</exception>
    /// <exception cref="ArgumentException">As for <see cref="AddRam"/> (without the alignment rule), or the device's constraints are invalid.</exception>
    public MmioRegion AddMmio(string name, ulong pa, ulong size, IMmioDevice device, int priority = 0)
    {
        ArgumentNullException.ThrowIfNull(device);
        CheckPlacement(MemoryRegionKind.Mmio, name, pa, size, priority, pageAligned: false);
        string owner = $"MMIO '{name}' device '{device.Name}'";
        MmioDispatch.Validate(device.Valid, owner, "Valid", nameof(device));
        MmioDispatch.Validate(device.Impl, owner, "Impl", nameof(device));
        return Map(new MmioRegion(name, pa, size, device, priority));
    }

    /// <summary>
    /// Maps an alias: <paramref name="size"/> bytes at <paramref name="pa"/> show <paramref name="target"/> from
    /// <paramref name="targetOffset"/> on. Aliases may have any size and alignment. The target need not be visible
    /// on the bus; removing the target later leaves the alias showing its contents.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="target"/> is null.</exception>
    /// <exception cref="ArgumentException">As for <see cref="AddMmio"/>, or the aliased range does not lie inside the target.</exception>
    public AliasRegion AddAlias(string name, ulong pa, ulong size, MemoryRegion target, ulong targetOffset, int priority = 0)
    {
        ArgumentNullException.ThrowIfNull(target);
        CheckPlacement(MemoryRegionKind.Alias, name, pa, size, priority, pageAligned: false);
        if (targetOffset > target.Size || size > target.Size - targetOffset)
        {
            ThrowHelper.ThrowArgument(
                $"Alias '{name}' shows {Hex.Format(size)} bytes from offset {Hex.Format(targetOffset)} of {target}, " +
                $"which is only {Hex.Format(target.Size)} bytes long; the aliased range must lie inside the target.",
                nameof(targetOffset));
        }

        return Map(new AliasRegion(name, pa, size, target, targetOffset, priority));
    }

    /// <summary>Unmaps <paramref name="region"/>; lower-priority regions it covered become visible again.</summary>
    /// <exception cref="ArgumentException">The region is not mapped on this bus.</exception>
    public void Remove(MemoryRegion region)
    {
        ArgumentNullException.ThrowIfNull(region);
        if (region.Owner != this)
        {
            ThrowHelper.ThrowArgument($"{region} is not mapped on this bus; only mapped regions can be removed.", nameof(region));
        }

        _regions.Remove(region);
        region.Owner = null;
        LayoutChanged();
    }

    private T Map<T>(T region)
        where T : MemoryRegion
    {
        region.Owner = this;
        region.Sequence = _sequence++;
        _regions.Add(region);
        LayoutChanged();
        return region;
    }

    private void CheckPlacement(MemoryRegionKind kind, string name, ulong pa, ulong size, int priority, bool pageAligned)
    {
        ArgumentNullException.ThrowIfNull(name);
        string kindName = MemoryRegion.KindName(kind);
        if (string.IsNullOrWhiteSpace(name))
        {
            ThrowHelper.ThrowArgument($"A {kindName} region needs a non-empty name.", nameof(name));
        }

        string what = $"{kindName} '{name}'";
        if (size == 0)
        {
            ThrowHelper.ThrowArgument(pageAligned
                ? $"{what} at {Hex.Format(pa)} has size 0; {kindName} must cover at least one 4 KiB page."
                : $"{what} at {Hex.Format(pa)} has size 0; a region must cover at least one byte.", nameof(size));
        }

        ulong last = pa + (size - 1);
        if (last < pa)
        {
            ThrowHelper.ThrowArgument(
                $"{what} at {Hex.Format(pa)} with size {Hex.Format(size)} wraps past 2^64; a region must end at or below " +
                $"{Hex.Format(_maxPhysAddress)}.", nameof(size));
        }

        if (pageAligned && ((pa | size) & BusPage.OffsetMask) != 0)
        {
            string field = (pa & BusPage.OffsetMask) != 0 ? $"base {Hex.Format(pa)}" : $"size {Hex.Format(size)}";
            ThrowHelper.ThrowArgument(
                $"{what} {field} is not 4 KiB aligned; RAM and ROM must start and end on 4 KiB page boundaries " +
                "(MMIO windows and aliases may have any alignment).", (pa & BusPage.OffsetMask) != 0 ? "pa" : nameof(size));
        }

        if (last > _maxPhysAddress)
        {
            ThrowHelper.ThrowArgument(
                $"{what} ends at {Hex.Format(last)} beyond MAXPHYADDR {MaxPhysAddrBits} bits " +
                $"(highest physical address {Hex.Format(_maxPhysAddress)}).", nameof(pa));
        }

        foreach (MemoryRegion other in _regions)
        {
            if (other.Priority == priority && pa <= other.Last && other.Base <= last)
            {
                ThrowHelper.ThrowArgument(
                    $"{MemoryRegion.Describe(kind, name, pa, size)} overlaps {other} at equal priority {priority}; " +
                    "overlapping regions need distinct priorities (the higher one is visible).", nameof(priority));
            }
        }
    }

    private void LayoutChanged()
    {
        _layoutGeneration++;
        _writeGeneration++;
        _view = FlatView.Build(_regions);
        _lastHit = 0;
        InvalidatePageCache();
    }

    private void InvalidatePageCache()
    {
        for (int i = 0; i < _pageCache.Length; i++)
        {
            _pageCache[i] = new PageCacheEntry { ReadTag = InvalidTag, WriteTag = InvalidTag, Array = [], ArrayOffset = 0 };
        }
    }

    // ---------------------------------------------------------------- hot path

    /// <summary>
    /// Reads <paramref name="size"/> bytes (1, 2, 4 or 8) at <paramref name="pa"/>, little-endian. Accesses crossing
    /// region or page boundaries are split; unmapped bytes follow <see cref="UnmappedPolicy"/>.
    /// </summary>
    /// <returns><see cref="BusStatus.Ok"/>, or the worst error of any piece.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is not 1, 2, 4 or 8, or the access wraps past 2^64.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public BusStatus Read(ulong pa, int size, out ulong value, BusAttributes attributes)
    {
        ref PageCacheEntry entry = ref Unsafe.Add(
            ref MemoryMarshal.GetArrayDataReference(_pageCache), (nint)((pa >> BusPage.Shift) & PageCacheMask));
        if ((pa & (~BusPage.OffsetMask | (ulong)((size - 1) & 7))) == entry.ReadTag)
        {
            ref byte p = ref Unsafe.Add(
                ref MemoryMarshal.GetArrayDataReference(entry.Array), entry.ArrayOffset + (int)(pa & BusPage.OffsetMask));
            switch (size)
            {
                case 8:
                    value = Le(Unsafe.ReadUnaligned<ulong>(ref p));
                    break;
                case 4:
                    value = Le(Unsafe.ReadUnaligned<uint>(ref p));
                    break;
                case 2:
                    value = Le(Unsafe.ReadUnaligned<ushort>(ref p));
                    break;
                case 1:
                    value = p;
                    break;
                default:
                    return ReadSlow(pa, size, out value, attributes);
            }

            _counters.ReadsByKind[(int)attributes.Kind & 3]++;
            return BusStatus.Ok;
        }

        return ReadSlow(pa, size, out value, attributes);
    }

    /// <summary>
    /// Writes the low <paramref name="size"/> bytes (1, 2, 4 or 8) of <paramref name="value"/> at <paramref name="pa"/>,
    /// little-endian. ROM and unmapped bytes are dropped and counted.
    /// </summary>
    /// <returns><see cref="BusStatus.Ok"/>, or the worst error of any piece.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is not 1, 2, 4 or 8, or the access wraps past 2^64.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public BusStatus Write(ulong pa, int size, ulong value, BusAttributes attributes)
    {
        ref PageCacheEntry entry = ref Unsafe.Add(
            ref MemoryMarshal.GetArrayDataReference(_pageCache), (nint)((pa >> BusPage.Shift) & PageCacheMask));
        if ((pa & (~BusPage.OffsetMask | (ulong)((size - 1) & 7))) == entry.WriteTag)
        {
            ref byte p = ref Unsafe.Add(
                ref MemoryMarshal.GetArrayDataReference(entry.Array), entry.ArrayOffset + (int)(pa & BusPage.OffsetMask));
            switch (size)
            {
                case 8:
                    Unsafe.WriteUnaligned(ref p, Le(value));
                    break;
                case 4:
                    Unsafe.WriteUnaligned(ref p, Le((uint)value));
                    break;
                case 2:
                    Unsafe.WriteUnaligned(ref p, Le((ushort)value));
                    break;
                case 1:
                    p = (byte)value;
                    break;
                default:
                    return WriteSlow(pa, size, value, attributes);
            }

            _counters.WritesByKind[(int)attributes.Kind & 3]++;
            return BusStatus.Ok;
        }

        return WriteSlow(pa, size, value, attributes);
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes from <paramref name="pa"/> as one transaction.</summary>
    /// <remarks>MMIO parts are cut into the largest naturally aligned pieces the device's Valid constraints allow.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">The range wraps past 2^64.</exception>
    public BusStatus ReadBytes(ulong pa, Span<byte> destination, BusAttributes attributes)
    {
        if (destination.IsEmpty)
        {
            return BusStatus.Ok;
        }

        CheckWrap(pa, destination.Length, nameof(destination));
        _counters.ReadsByKind[(int)attributes.Kind & 3]++;
        Outcome outcome = default;
        ReadCore(pa, destination, attributes, ref outcome);
        return Finish(in outcome, isWrite: false);
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="pa"/> as one transaction.</summary>
    /// <remarks>MMIO parts are cut as for <see cref="ReadBytes"/>; ROM and unmapped bytes are dropped and counted.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">The range wraps past 2^64.</exception>
    public BusStatus WriteBytes(ulong pa, ReadOnlySpan<byte> source, BusAttributes attributes)
    {
        if (source.IsEmpty)
        {
            return BusStatus.Ok;
        }

        CheckWrap(pa, source.Length, nameof(source));
        _counters.WritesByKind[(int)attributes.Kind & 3]++;
        Outcome outcome = default;
        WriteCore(pa, source, attributes, ref outcome);
        return Finish(in outcome, isWrite: true);
    }

    /// <summary>
    /// Host loader access: copies <paramref name="image"/> to <paramref name="pa"/> into RAM and ROM (ignoring ROM
    /// write protection, following aliases). Not a bus transaction: nothing is counted.
    /// </summary>
    /// <exception cref="ArgumentException">Some byte of the range is unmapped or MMIO; nothing is written then.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range wraps past 2^64.</exception>
    public void LoadImage(ulong pa, ReadOnlySpan<byte> image)
    {
        if (image.IsEmpty)
        {
            return;
        }

        CheckWrap(pa, image.Length, nameof(image));
        for (int pass = 0; pass < 2; pass++)
        {
            int done = 0;
            while (done < image.Length)
            {
                ulong at = pa + (ulong)done;
                int index = _view.Find(at);
                if (index < 0)
                {
                    ThrowHelper.ThrowArgument(
                        $"LoadImage: {Hex.Format(at)} (in the image of {image.Length} bytes at {Hex.Format(pa)}) is unmapped; " +
                        "images may only be loaded into RAM and ROM.", nameof(pa));
                }

                ref readonly FlatRange r = ref _view.Ranges[index];
                int n = (int)Math.Min((ulong)(image.Length - done), r.End - at);
                ulong offset = r.TerminalOffset + (at - r.Start);
                switch (r.Terminal)
                {
                    case RamRegion ram:
                        if (pass == 1)
                        {
                            ram.WriteUnchecked(offset, image.Slice(done, n));
                            if (_writeHooks) NotifyWritten(at, n, BusAttributes.Host);
                        }

                        break;
                    case RomRegion rom:
                        if (pass == 1)
                        {
                            image.Slice(done, n).CopyTo(rom.Data.AsSpan((int)offset));
                            if (_writeHooks) NotifyWritten(at, n, BusAttributes.Host);
                        }

                        break;
                    default:
                        ThrowHelper.ThrowArgument(
                            $"LoadImage: {Hex.Format(at)} (in the image of {image.Length} bytes at {Hex.Format(pa)}) is " +
                            $"{r.Visible}; images may only be loaded into RAM and ROM.", nameof(pa));
                        break;
                }

                done += n;
            }
        }
    }

    // ---------------------------------------------------------------- slow paths

    [MethodImpl(MethodImplOptions.NoInlining)]
    private BusStatus ReadSlow(ulong pa, int size, out ulong value, BusAttributes attributes)
    {
        if (!MmioDispatch.IsAccessSize(size))
        {
            ThrowHelper.ThrowAccessSize(size);
        }

        CheckWrap(pa, size, nameof(pa));
        _counters.ReadsByKind[(int)attributes.Kind & 3]++;
        int index = FindRange(pa);
        if (index >= 0)
        {
            ref readonly FlatRange r = ref _view.Ranges[index];
            if (r.End - pa >= (ulong)size)
            {
                ulong offset = r.TerminalOffset + (pa - r.Start);
                switch (r.Terminal)
                {
                    case RamRegion ram when (offset & BusPage.OffsetMask) + (ulong)size <= BusPage.Size:
                    {
                        byte[]? page = ram.TryGetPage(offset);
                        if (page is null)
                        {
                            value = 0;
                            return BusStatus.Ok;
                        }

                        CacheRamPage(pa, in r, offset, page);
                        value = LoadLe(page, (int)(offset & BusPage.OffsetMask), size);
                        return BusStatus.Ok;
                    }

                    case RomRegion rom:
                        CacheRomPage(pa, in r, offset, rom);
                        value = LoadLe(rom.Data, (int)offset, size);
                        return BusStatus.Ok;
                    case MmioRegion mmio:
                    {
                        BeforeDeviceAccess?.Invoke(attributes);
                        BusStatus status = MmioDispatch.Read(mmio.Device, offset, size, out value, attributes);
                        if (status != BusStatus.Ok)
                        {
                            _counters.DeviceErrors++;
                        }

                        return status;
                    }
                }
            }
        }

        Span<byte> buffer = stackalloc byte[8];
        buffer.Clear();
        Outcome outcome = default;
        ReadCore(pa, buffer[..size], attributes, ref outcome);
        value = BinaryPrimitives.ReadUInt64LittleEndian(buffer);
        return Finish(in outcome, isWrite: false);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private BusStatus WriteSlow(ulong pa, int size, ulong value, BusAttributes attributes)
    {
        if (!MmioDispatch.IsAccessSize(size))
        {
            ThrowHelper.ThrowAccessSize(size);
        }

        CheckWrap(pa, size, nameof(pa));
        _counters.WritesByKind[(int)attributes.Kind & 3]++;
        int index = FindRange(pa);
        if (index >= 0)
        {
            ref readonly FlatRange r = ref _view.Ranges[index];
            if (r.End - pa >= (ulong)size)
            {
                ulong offset = r.TerminalOffset + (pa - r.Start);
                switch (r.Terminal)
                {
                    case RamRegion ram when (offset & BusPage.OffsetMask) + (ulong)size <= BusPage.Size:
                    {
                        value &= MmioDispatch.Ones(size);
                        byte[]? page = ram.TryGetPage(offset);
                        if (page is null)
                        {
                            if (value == 0)
                            {
                                return BusStatus.Ok; // an untouched page already reads as zero
                            }

                            page = ram.GetOrAllocatePage(offset);
                        }

                        CacheRamPage(pa, in r, offset, page);
                        StoreLe(page, (int)(offset & BusPage.OffsetMask), size, value);
                        if (_writeHooks) NotifyWritten(pa, size, attributes);
                        return BusStatus.Ok;
                    }

                    case RomRegion:
                        _counters.RomWritesDropped++;
                        return BusStatus.Ok;
                    case MmioRegion mmio:
                    {
                        BeforeDeviceAccess?.Invoke(attributes);
                        BusStatus status = MmioDispatch.Write(mmio.Device, offset, size, value, attributes);
                        if (status != BusStatus.Ok)
                        {
                            _counters.DeviceErrors++;
                        }

                        return status;
                    }
                }
            }
        }

        Span<byte> buffer = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
        Outcome outcome = default;
        WriteCore(pa, buffer[..size], attributes, ref outcome);
        return Finish(in outcome, isWrite: true);
    }

    private void ReadCore(ulong pa, Span<byte> destination, BusAttributes attributes, ref Outcome outcome)
    {
        int done = 0;
        while (done < destination.Length)
        {
            ulong at = pa + (ulong)done;
            int remaining = destination.Length - done;
            int index = FindRange(at);
            if (index < 0)
            {
                int n = UnmappedRun(index, at, remaining);
                destination.Slice(done, n).Fill(_unmappedPolicy == UnmappedPolicy.Zero ? (byte)0 : (byte)0xFF);
                outcome.Unmapped = true;
                done += n;
                continue;
            }

            ref readonly FlatRange r = ref _view.Ranges[index];
            int count = (int)Math.Min((ulong)remaining, r.End - at);
            ulong offset = r.TerminalOffset + (at - r.Start);
            Span<byte> piece = destination.Slice(done, count);
            switch (r.Terminal)
            {
                case RamRegion ram:
                    ram.ReadUnchecked(offset, piece);
                    break;
                case RomRegion rom:
                    rom.Data.AsSpan((int)offset, count).CopyTo(piece);
                    break;
                case MmioRegion mmio:
                    BeforeDeviceAccess?.Invoke(attributes);
                    outcome.Device = MmioDispatch.Worst(outcome.Device, MmioDispatch.ReadBytes(mmio.Device, offset, piece, attributes));
                    break;
            }

            done += count;
        }
    }

    private void WriteCore(ulong pa, ReadOnlySpan<byte> source, BusAttributes attributes, ref Outcome outcome)
    {
        int done = 0;
        while (done < source.Length)
        {
            ulong at = pa + (ulong)done;
            int remaining = source.Length - done;
            int index = FindRange(at);
            if (index < 0)
            {
                done += UnmappedRun(index, at, remaining);
                outcome.Unmapped = true;
                continue;
            }

            ref readonly FlatRange r = ref _view.Ranges[index];
            int count = (int)Math.Min((ulong)remaining, r.End - at);
            ulong offset = r.TerminalOffset + (at - r.Start);
            ReadOnlySpan<byte> piece = source.Slice(done, count);
            switch (r.Terminal)
            {
                case RamRegion ram:
                    ram.WriteUnchecked(offset, piece);
                    if (_writeHooks) NotifyWritten(at, count, attributes);
                    break;
                case RomRegion:
                    outcome.RomDropped = true;
                    break;
                case MmioRegion mmio:
                    BeforeDeviceAccess?.Invoke(attributes);
                    outcome.Device = MmioDispatch.Worst(outcome.Device, MmioDispatch.WriteBytes(mmio.Device, offset, piece, attributes));
                    break;
            }

            done += count;
        }
    }

    /// <summary>Bytes from <paramref name="at"/> up to the next mapped range (index is the complement from Find).</summary>
    private int UnmappedRun(int index, ulong at, int remaining)
    {
        int next = ~index;
        FlatRange[] ranges = _view.Ranges;
        return next < ranges.Length ? (int)Math.Min((ulong)remaining, ranges[next].Start - at) : remaining;
    }

    private BusStatus Finish(in Outcome outcome, bool isWrite)
    {
        BusStatus status = BusStatus.Ok;
        if (outcome.Unmapped)
        {
            if (isWrite)
            {
                _counters.UnmappedWrites++;
            }
            else
            {
                _counters.UnmappedReads++;
            }

            if (_unmappedPolicy == UnmappedPolicy.BusError)
            {
                status = BusStatus.DecodeError;
            }
        }

        if (outcome.RomDropped)
        {
            _counters.RomWritesDropped++;
        }

        if (outcome.Device != BusStatus.Ok)
        {
            _counters.DeviceErrors++;
            status = MmioDispatch.Worst(status, outcome.Device);
        }

        if (status == BusStatus.DecodeError)
        {
            _counters.DecodeErrors++;
        }

        return status;
    }

    private int FindRange(ulong pa)
    {
        FlatRange[] ranges = _view.Ranges;
        int last = _lastHit;
        if ((uint)last < (uint)ranges.Length)
        {
            ref readonly FlatRange r = ref ranges[last];
            if (pa - r.Start < r.End - r.Start)
            {
                return last;
            }
        }

        int index = _view.Find(pa);
        if (index >= 0)
        {
            _lastHit = index;
        }

        return index;
    }

    private void CacheRamPage(ulong pa, in FlatRange r, ulong offset, byte[] page)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        if (pageBase >= r.Start && r.End - pageBase >= BusPage.Size
            && (offset & BusPage.OffsetMask) == (pa & BusPage.OffsetMask))
        {
            ref PageCacheEntry entry = ref _pageCache[(int)((pa >> BusPage.Shift) & PageCacheMask)];
            entry.ReadTag = pageBase;
            entry.WriteTag = _writeHooks && IsHooked(pageBase) ? InvalidTag : pageBase;
            entry.Array = page;
            entry.ArrayOffset = 0;
        }
    }

    private void CacheRomPage(ulong pa, in FlatRange r, ulong offset, RomRegion rom)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        if (pageBase >= r.Start && r.End - pageBase >= BusPage.Size)
        {
            ref PageCacheEntry entry = ref _pageCache[(int)((pa >> BusPage.Shift) & PageCacheMask)];
            entry.ReadTag = pageBase;
            entry.WriteTag = InvalidTag;
            entry.Array = rom.Data;
            entry.ArrayOffset = (int)(offset - (pa - pageBase));
        }
    }

    private static void CheckWrap(ulong pa, int length, string paramName)
    {
        if (pa + (ulong)(length - 1) < pa)
        {
            ThrowHelper.ThrowWrap(pa, length, paramName);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Le(ulong v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Le(uint v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Le(ushort v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    private static ulong LoadLe(byte[] array, int index, int size) => size switch
    {
        8 => BinaryPrimitives.ReadUInt64LittleEndian(array.AsSpan(index)),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(array.AsSpan(index)),
        2 => BinaryPrimitives.ReadUInt16LittleEndian(array.AsSpan(index)),
        _ => array[index],
    };

    private static void StoreLe(byte[] array, int index, int size, ulong value)
    {
        switch (size)
        {
            case 8:
                BinaryPrimitives.WriteUInt64LittleEndian(array.AsSpan(index), value);
                break;
            case 4:
                BinaryPrimitives.WriteUInt32LittleEndian(array.AsSpan(index), (uint)value);
                break;
            case 2:
                BinaryPrimitives.WriteUInt16LittleEndian(array.AsSpan(index), (ushort)value);
                break;
            default:
                array[index] = (byte)value;
                break;
        }
    }

    private struct PageCacheEntry
    {
        public ulong ReadTag;
        public ulong WriteTag;
        public byte[] Array;
        public int ArrayOffset;
    }

    private struct Outcome
    {
        public bool Unmapped;
        public bool RomDropped;
        public BusStatus Device;
    }
}
