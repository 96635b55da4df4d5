using System.Runtime.CompilerServices;

namespace HwMemModel.Bus;

public sealed partial class PhysicalBus
{
    private int _layoutGeneration;

    /// <summary>Changes whenever the layout changes (a region added or removed); host pages obtained before are then stale.</summary>
    internal int LayoutGeneration => _layoutGeneration;

    /// <summary>
    /// For a page-granular fast path kept beside a translation (the MMU's TLB entries, like QEMU's TLB addend):
    /// when the whole 4 KiB page at <paramref name="pa"/> is RAM that already has host memory, or ROM, in the current
    /// layout, returns the host array and the index of the page's first byte in it. Reads served from it must be
    /// counted with <see cref="CountFastRead"/>. The answer holds until <see cref="LayoutGeneration"/> changes.
    /// </summary>
    internal bool TryGetReadablePage(ulong pa, out byte[] array, out int pageIndex)
    {
        ulong pageBase = pa & ~BusPage.OffsetMask;
        int index = pageBase <= _maxPhysAddress ? FindRange(pageBase) : -1;
        if (index >= 0)
        {
            ref readonly FlatRange r = ref _view.Ranges[index];
            if (r.End - pageBase >= BusPage.Size)
            {
                ulong offset = r.TerminalOffset + (pageBase - r.Start);
                switch (r.Terminal)
                {
                    case RamRegion ram when (offset & BusPage.OffsetMask) == 0 && ram.TryGetPage(offset) is { } page:
                        array = page;
                        pageIndex = 0;
                        return true;
                    case RomRegion rom:
                        array = rom.Data;
                        pageIndex = (int)offset;
                        return true;
                }
            }
        }

        array = [];
        pageIndex = 0;
        return false;
    }

    /// <summary>Counts one read served from a page obtained through <see cref="TryGetReadablePage"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CountFastRead(RequesterKind kind) => _counters.ReadsByKind[(int)kind & 3]++;
}
