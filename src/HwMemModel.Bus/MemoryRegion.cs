namespace HwMemModel.Bus;

/// <summary>The kinds of region a <see cref="PhysicalBus"/> maps.</summary>
public enum MemoryRegionKind : byte
{
    /// <summary>Read-write memory backed by sparse host pages (<see cref="RamRegion"/>).</summary>
    Ram = 0,
    /// <summary>Read-only memory holding an image; guest writes are dropped (<see cref="RomRegion"/>).</summary>
    Rom = 1,
    /// <summary>A window onto a device's registers (<see cref="MmioRegion"/>).</summary>
    Mmio = 2,
    /// <summary>A second view of part of another region (<see cref="AliasRegion"/>).</summary>
    Alias = 3,
}

/// <summary>
/// A range of physical address space mapped on a <see cref="PhysicalBus"/>, after QEMU's MemoryRegion.
/// Regions are created by the bus's <c>Add…</c> methods; where regions overlap the one with the higher
/// <see cref="Priority"/> is visible and the lower one stays visible around it.
/// </summary>
public abstract class MemoryRegion
{
    private protected MemoryRegion(string name, ulong pa, ulong size, int priority)
    {
        Name = name;
        Base = pa;
        Size = size;
        Priority = priority;
    }

    /// <summary>The region's name, used in messages and listings.</summary>
    public string Name { get; }

    /// <summary>The first physical address of the region.</summary>
    public ulong Base { get; }

    /// <summary>The size of the region in bytes (at least 1).</summary>
    public ulong Size { get; }

    /// <summary>The last physical address of the region (<see cref="Base"/> + <see cref="Size"/> - 1).</summary>
    public ulong Last => Base + (Size - 1);

    /// <summary>Overlap priority: where regions overlap, the higher priority is visible.</summary>
    public int Priority { get; }

    /// <summary>The kind of region.</summary>
    public abstract MemoryRegionKind Kind { get; }

    /// <summary>The bus the region is mapped on, or null once removed.</summary>
    internal PhysicalBus? Owner { get; set; }

    /// <summary>Order of insertion, used to keep listings stable.</summary>
    internal long Sequence { get; set; }

    /// <summary>The name used in /proc/iomem listings.</summary>
    internal virtual string IoMemName => Name;

    /// <summary>A description such as <c>RAM 'ram' [0x0-0x9ffff]</c> used in messages.</summary>
    public override string ToString() => Describe(Kind, Name, Base, Size);

    internal static string KindName(MemoryRegionKind kind) => kind switch
    {
        MemoryRegionKind.Ram => "RAM",
        MemoryRegionKind.Rom => "ROM",
        MemoryRegionKind.Mmio => "MMIO",
        _ => "alias",
    };

    internal static string Describe(MemoryRegionKind kind, string name, ulong pa, ulong size) =>
        $"{KindName(kind)} '{name}' {Hex.Range(pa, pa + (size - 1))}";
}

/// <summary>
/// Sparse RAM: host memory exists only for 4 KiB pages that have been written. Untouched pages read as zero
/// and reading them allocates nothing. Layout: a directory entry per 1 GiB, a table per 2 MiB holding 512
/// page arrays of 4 KiB; directories and tables are allocated on the first write beneath them.
/// </summary>
public sealed class RamRegion : MemoryRegion
{
    private readonly byte[]?[]?[]?[] _directories;
    private long _touchedPages;
    private long _tables;
    private long _directoryCount;

    internal RamRegion(string name, ulong pa, ulong size, int priority)
        : base(name, pa, size, priority)
    {
        _directories = new byte[]?[]?[]?[(size + (1UL << BusPage.DirectoryShift) - 1) >> BusPage.DirectoryShift];
    }

    /// <inheritdoc/>
    public override MemoryRegionKind Kind => MemoryRegionKind.Ram;

    /// <summary>Number of 4 KiB pages that have host memory (pages written at least once).</summary>
    public long TouchedPages => _touchedPages;

    /// <summary>
    /// Host memory held for this region's contents and page tables, in bytes (page data, page tables and
    /// directories, counting 8 bytes per reference; .NET object headers are not included).
    /// </summary>
    public long HostBytes =>
        _touchedPages * BusPage.Size
        + _tables * BusPage.TableEntries * sizeof(long)
        + _directoryCount * BusPage.DirectoryEntries * sizeof(long)
        + (long)_directories.Length * sizeof(long);

    internal override string IoMemName => "System RAM";

    /// <summary>The pages that have host memory, in ascending offset order, with their bytes (for snapshots).</summary>
    public IEnumerable<(ulong Offset, ReadOnlyMemory<byte> Data)> TouchedPageData()
    {
        for (int d = 0; d < _directories.Length; d++)
        {
            if (_directories[d] is not { } directory) continue;
            for (int t = 0; t < directory.Length; t++)
            {
                if (directory[t] is not { } table) continue;
                for (int p = 0; p < table.Length; p++)
                {
                    if (table[p] is { } page)
                        yield return (((ulong)d << BusPage.DirectoryShift) | ((ulong)t << BusPage.TableShift) | ((ulong)p << BusPage.Shift), page);
                }
            }
        }
    }

    /// <summary>Returns the page holding <paramref name="offset"/>, or null when the page is untouched.</summary>
    internal byte[]? TryGetPage(ulong offset)
    {
        byte[]?[]?[]? directory = _directories[offset >> BusPage.DirectoryShift];
        byte[]?[]? table = directory?[(int)(offset >> BusPage.TableShift) & (BusPage.DirectoryEntries - 1)];
        return table?[(int)(offset >> BusPage.Shift) & (BusPage.TableEntries - 1)];
    }

    /// <summary>Returns the page holding <paramref name="offset"/>, allocating it (zeroed) if untouched.</summary>
    internal byte[] GetOrAllocatePage(ulong offset)
    {
        ref byte[]?[]?[]? directory = ref _directories[offset >> BusPage.DirectoryShift];
        if (directory is null)
        {
            directory = new byte[]?[]?[BusPage.DirectoryEntries];
            _directoryCount++;
        }

        ref byte[]?[]? table = ref directory[(int)(offset >> BusPage.TableShift) & (BusPage.DirectoryEntries - 1)];
        if (table is null)
        {
            table = new byte[]?[BusPage.TableEntries];
            _tables++;
        }

        ref byte[]? page = ref table[(int)(offset >> BusPage.Shift) & (BusPage.TableEntries - 1)];
        if (page is null)
        {
            page = new byte[BusPage.Size];
            _touchedPages++;
        }

        return page;
    }

    /// <summary>Copies region bytes starting at <paramref name="offset"/>; untouched pages read as zero.</summary>
    internal void ReadUnchecked(ulong offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int inPage = (int)(offset & BusPage.OffsetMask);
            int n = Math.Min(destination.Length, BusPage.Size - inPage);
            byte[]? page = TryGetPage(offset);
            if (page is null)
            {
                destination[..n].Clear();
            }
            else
            {
                page.AsSpan(inPage, n).CopyTo(destination);
            }

            destination = destination[n..];
            offset += (ulong)n;
        }
    }

    /// <summary>Stores bytes at <paramref name="offset"/>; zero bytes written to untouched pages allocate nothing.</summary>
    internal void WriteUnchecked(ulong offset, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            int inPage = (int)(offset & BusPage.OffsetMask);
            int n = Math.Min(source.Length, BusPage.Size - inPage);
            ReadOnlySpan<byte> piece = source[..n];
            byte[]? page = TryGetPage(offset);
            if (page is null && piece.ContainsAnyExcept((byte)0))
            {
                page = GetOrAllocatePage(offset);
            }

            // An untouched page stays unallocated when only zeros are written to it.
            if (page is not null) piece.CopyTo(page.AsSpan(inPage, n));
            source = source[n..];
            offset += (ulong)n;
        }
    }

    /// <summary>Host access: copies the region's bytes at <paramref name="offset"/> (relative to <see cref="MemoryRegion.Base"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    public void HostRead(ulong offset, Span<byte> destination)
    {
        RegionBounds.Check(this, offset, destination.Length);
        ReadUnchecked(offset, destination);
    }

    /// <summary>Host access: stores bytes at <paramref name="offset"/> (relative to <see cref="MemoryRegion.Base"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    public void HostWrite(ulong offset, ReadOnlySpan<byte> source)
    {
        RegionBounds.Check(this, offset, source.Length);
        WriteUnchecked(offset, source);
    }
}

/// <summary>Read-only memory holding an image. Guest writes are dropped and counted; host loaders may still write it.</summary>
public sealed class RomRegion : MemoryRegion
{
    internal RomRegion(string name, ulong pa, byte[] image, int priority)
        : base(name, pa, (ulong)image.Length, priority)
    {
        Data = image;
    }

    /// <inheritdoc/>
    public override MemoryRegionKind Kind => MemoryRegionKind.Rom;

    /// <summary>The ROM's contents.</summary>
    public ReadOnlySpan<byte> Image => Data;

    internal byte[] Data { get; }

    internal override string IoMemName => "Reserved";

    /// <summary>Host access: copies the ROM's bytes at <paramref name="offset"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    public void HostRead(ulong offset, Span<byte> destination)
    {
        RegionBounds.Check(this, offset, destination.Length);
        Data.AsSpan((int)offset, destination.Length).CopyTo(destination);
    }

    /// <summary>Host access (loaders): overwrites the ROM's bytes at <paramref name="offset"/> despite write protection.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range does not lie inside the region.</exception>
    public void HostWrite(ulong offset, ReadOnlySpan<byte> source)
    {
        RegionBounds.Check(this, offset, source.Length);
        source.CopyTo(Data.AsSpan((int)offset));
    }
}

/// <summary>A window onto a device's registers; offsets the device sees are relative to <see cref="MemoryRegion.Base"/>.</summary>
public sealed class MmioRegion : MemoryRegion
{
    internal MmioRegion(string name, ulong pa, ulong size, IMmioDevice device, int priority)
        : base(name, pa, size, priority)
    {
        Device = device;
    }

    /// <inheritdoc/>
    public override MemoryRegionKind Kind => MemoryRegionKind.Mmio;

    /// <summary>The device answering accesses to this window.</summary>
    public IMmioDevice Device { get; }
}

/// <summary>
/// A second view of part of another region: an access at <c>Base + x</c> reaches <see cref="Target"/> at
/// <c>TargetOffset + x</c> (for example the BIOS's top 64 KiB seen at 0xF0000).
/// </summary>
public sealed class AliasRegion : MemoryRegion
{
    internal AliasRegion(string name, ulong pa, ulong size, MemoryRegion target, ulong targetOffset, int priority)
        : base(name, pa, size, priority)
    {
        Target = target;
        TargetOffset = targetOffset;
        MemoryRegion terminal = target;
        ulong offset = targetOffset;
        while (terminal is AliasRegion alias)
        {
            offset += alias.TargetOffset;
            terminal = alias.Target;
        }

        Terminal = terminal;
        TerminalOffset = offset;
    }

    /// <inheritdoc/>
    public override MemoryRegionKind Kind => MemoryRegionKind.Alias;

    /// <summary>The region this alias shows.</summary>
    public MemoryRegion Target { get; }

    /// <summary>The offset inside <see cref="Target"/> that <see cref="MemoryRegion.Base"/> shows.</summary>
    public ulong TargetOffset { get; }

    /// <summary>The RAM, ROM or MMIO region reached after following chains of aliases.</summary>
    internal MemoryRegion Terminal { get; }

    /// <summary>The offset inside <see cref="Terminal"/> that <see cref="MemoryRegion.Base"/> shows.</summary>
    internal ulong TerminalOffset { get; }
}

internal static class RegionBounds
{
    public static void Check(MemoryRegion region, ulong offset, int length)
    {
        if (offset > region.Size || (ulong)length > region.Size - offset)
        {
            ThrowHelper.ThrowOutOfRange(nameof(offset),
                $"Host access of {length} bytes at offset {Hex.Format(offset)} does not fit in {region} " +
                $"(size {Hex.Format(region.Size)}): offsets must lie in 0..{Hex.Format(region.Size - 1)}.");
        }
    }
}
