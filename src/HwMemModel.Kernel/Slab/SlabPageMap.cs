namespace HwMemModel.Kernel;

/// <summary>
/// virt_to_slab / folio_test_large_kmalloc for the model: which slab (or large kmalloc) owns a page frame, in a
/// two-level table indexed by pfn (chunks of 512 frames, allocated on first use), so a free finds its slab in O(1).
/// </summary>
internal sealed class SlabPageMap
{
    private const int ChunkShift = 9;
    private const int ChunkSize = 1 << ChunkShift;
    private readonly object?[]?[] _chunks;

    internal SlabPageMap(ulong pfnLimit) => _chunks = new object?[]?[(pfnLimit + ChunkSize - 1) >> ChunkShift];

    /// <summary>The owner of <paramref name="pfn"/>: a <see cref="Slab"/>, a <see cref="LargeKmalloc"/>, or null.</summary>
    internal object? Get(ulong pfn)
    {
        ulong c = pfn >> ChunkShift;
        if (c >= (ulong)_chunks.Length) return null;
        var chunk = _chunks[c];
        return chunk?[(int)(pfn & (ChunkSize - 1))];
    }

    /// <summary>Sets (or with null clears) the owner of <paramref name="count"/> frames from <paramref name="pfn"/>.</summary>
    internal void Set(ulong pfn, ulong count, object? owner)
    {
        for (ulong p = pfn; p < pfn + count; p++)
        {
            ulong c = p >> ChunkShift;
            if (c >= (ulong)_chunks.Length) return;
            var chunk = _chunks[c];
            if (chunk is null)
            {
                if (owner is null) continue;
                chunk = _chunks[c] = new object?[ChunkSize];
            }
            chunk[(int)(p & (ChunkSize - 1))] = owner;
        }
    }
}
