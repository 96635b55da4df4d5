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

    /// <summary>Pages per leaf table of sparse RAM (one table covers 64 KiB), small so that scattered touches stay cheap.</summary>
    internal const int TableEntries = 16;

    /// <summary>log2 of the bytes one leaf table covers (64 KiB).</summary>
    internal const int TableShift = Shift + 4;

    /// <summary>Leaf tables per directory (one directory covers 1 GiB).</summary>
    internal const int DirectoryEntries = 1 << (DirectoryShift - TableShift);

    /// <summary>log2 of the bytes one directory covers (1 GiB).</summary>
    internal const int DirectoryShift = 30;
}
