using HwMemModel.Kernel;

namespace HwMemModel.Kernel.Tests.PageAlloc;

/// <summary>An allocator over given ranges with its log and a record of the zeroing callback's calls.</summary>
internal sealed class PageAllocHarness
{
    public const ulong KiB = 1UL << 10, MiB = 1UL << 20, GiB = 1UL << 30, Page = PageAllocator.PageSize;

    public PageAllocHarness(int nodes, params PhysRange[] ranges)
    {
        Allocator = new PageAllocator(ranges, nodes, Log, (pa, bytes) => Zeroed.Add((pa, bytes)));
    }

    public KernelLog Log { get; } = new();
    public List<(ulong Pa, ulong Bytes)> Zeroed { get; } = [];
    public PageAllocator Allocator { get; }

    /// <summary>One node with the given [start, end) ranges.</summary>
    public static PageAllocHarness OneNode(params (ulong Start, ulong End)[] ranges)
        => new(1, ranges.Select(r => new PhysRange(r.Start, r.End, 0)).ToArray());

    /// <summary>Free blocks per order 0..10 of a zone.</summary>
    public long[] FreeBlocks(int zoneIndex) => Enumerable.Range(0, PageAllocator.MaxOrder + 1).Select(o => Allocator.Zones[zoneIndex].FreeBlocksOfOrder(o)).ToArray();

    /// <summary>An array of 11 counts with the given orders set to the given counts.</summary>
    public static long[] Counts(params (int Order, long Count)[] set)
    {
        var a = new long[PageAllocator.MaxOrder + 1];
        foreach (var (o, c) in set) a[o] = c;
        return a;
    }

    public void AssertConsistent() => Assert.That(Allocator.CheckConsistency(), Is.Null);
}
