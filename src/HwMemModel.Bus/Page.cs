namespace HwMemModel.Bus;

/// <summary>Geometry of the 4 KiB pages that sparse RAM, the page cache and region alignment use.</summary>
public static class BusPage
{
    /// <summary>log2 of the page size.</summary>
    public const int Shift = 12;

    /// <summary>Page size in bytes (4 KiB).</summary>
    public const int Size = 1 << Shift;

    /// <summary>Mask of the offset-within-page bits.</summary>
    public const ulong OffsetMask = Size - 1;

    /// <summary>Pages per second-level table of sparse RAM (one table covers 2 MiB).</summary>
    internal const int TableEntries = 512;

    /// <summary>log2 of the bytes one second-level table covers (2 MiB).</summary>
    internal const int TableShift = Shift + 9;

    /// <summary>log2 of the bytes one directory covers (1 GiB).</summary>
    internal const int DirectoryShift = TableShift + 9;
}
