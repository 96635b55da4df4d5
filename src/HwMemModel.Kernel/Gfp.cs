namespace HwMemModel.Kernel;

/// <summary>GFP flags with Linux's bit values (include/linux/gfp_types.h, 5.x-6.x layout), so reports print Linux's masks.</summary>
[Flags]
public enum Gfp : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>__GFP_DMA: ZONE_DMA (below 16 MiB).</summary>
    Dma = 0x01,
    /// <summary>__GFP_HIGHMEM (no highmem on x86-64; ignored).</summary>
    HighMem = 0x02,
    /// <summary>__GFP_DMA32: ZONE_DMA32 (below 4 GiB).</summary>
    Dma32 = 0x04,
    /// <summary>__GFP_MOVABLE.</summary>
    Movable = 0x08,
    /// <summary>__GFP_RECLAIMABLE.</summary>
    Reclaimable = 0x10,
    /// <summary>__GFP_HIGH: may use emergency reserves.</summary>
    High = 0x20,
    /// <summary>__GFP_IO.</summary>
    Io = 0x40,
    /// <summary>__GFP_FS.</summary>
    Fs = 0x80,
    /// <summary>__GFP_ZERO: return zeroed memory.</summary>
    Zero = 0x100,
    /// <summary>__GFP_ATOMIC.</summary>
    Atomic = 0x200,
    /// <summary>__GFP_DIRECT_RECLAIM: the caller may sleep and reclaim.</summary>
    DirectReclaim = 0x400,
    /// <summary>__GFP_KSWAPD_RECLAIM.</summary>
    KswapdReclaim = 0x800,
    /// <summary>__GFP_WRITE.</summary>
    Write = 0x1000,
    /// <summary>__GFP_NOWARN: no "page allocation failure" report.</summary>
    NoWarn = 0x2000,
    /// <summary>__GFP_RETRY_MAYFAIL.</summary>
    RetryMayFail = 0x4000,
    /// <summary>__GFP_NOFAIL: never returns null; the model stops with an out-of-memory report when memory is truly gone.</summary>
    NoFail = 0x8000,
    /// <summary>__GFP_NORETRY: give up early.</summary>
    NoRetry = 0x10000,
    /// <summary>__GFP_MEMALLOC.</summary>
    MemAlloc = 0x20000,
    /// <summary>__GFP_COMP.</summary>
    Comp = 0x40000,
    /// <summary>__GFP_NOMEMALLOC.</summary>
    NoMemAlloc = 0x80000,
    /// <summary>__GFP_HARDWALL.</summary>
    HardWall = 0x100000,
    /// <summary>__GFP_THISNODE: no fallback to other nodes.</summary>
    ThisNode = 0x200000,
    /// <summary>__GFP_ACCOUNT.</summary>
    Account = 0x400000,

    /// <summary>__GFP_RECLAIM = DIRECT_RECLAIM | KSWAPD_RECLAIM.</summary>
    Reclaim = DirectReclaim | KswapdReclaim,
    /// <summary>GFP_KERNEL (0xcc0).</summary>
    Kernel = Reclaim | Io | Fs,
    /// <summary>GFP_ATOMIC (0xa20).</summary>
    AtomicAlloc = High | Atomic | KswapdReclaim,
    /// <summary>GFP_NOWAIT (0x800).</summary>
    NoWait = KswapdReclaim,
    /// <summary>GFP_DMA = __GFP_DMA.</summary>
    DmaZone = Dma,
    /// <summary>GFP_DMA32 = __GFP_DMA32.</summary>
    Dma32Zone = Dma32,
}

/// <summary>Linux's names for GFP masks, as %pGg prints them.</summary>
public static class GfpNames
{
    private static readonly (Gfp Flag, string Name)[] Composite =
    [
        (Gfp.AtomicAlloc, "GFP_ATOMIC"),
        (Gfp.Kernel, "GFP_KERNEL"),
        (Gfp.NoWait, "GFP_NOWAIT"),
    ];

    private static readonly (Gfp Flag, string Name)[] Single =
    [
        (Gfp.Dma, "GFP_DMA"), (Gfp.HighMem, "__GFP_HIGHMEM"), (Gfp.Dma32, "GFP_DMA32"), (Gfp.Movable, "__GFP_MOVABLE"),
        (Gfp.Reclaimable, "__GFP_RECLAIMABLE"), (Gfp.High, "__GFP_HIGH"), (Gfp.Io, "__GFP_IO"), (Gfp.Fs, "__GFP_FS"),
        (Gfp.Zero, "__GFP_ZERO"), (Gfp.Atomic, "__GFP_ATOMIC"), (Gfp.DirectReclaim, "__GFP_DIRECT_RECLAIM"),
        (Gfp.KswapdReclaim, "__GFP_KSWAPD_RECLAIM"), (Gfp.Write, "__GFP_WRITE"), (Gfp.NoWarn, "__GFP_NOWARN"),
        (Gfp.RetryMayFail, "__GFP_RETRY_MAYFAIL"), (Gfp.NoFail, "__GFP_NOFAIL"), (Gfp.NoRetry, "__GFP_NORETRY"),
        (Gfp.MemAlloc, "__GFP_MEMALLOC"), (Gfp.Comp, "__GFP_COMP"), (Gfp.NoMemAlloc, "__GFP_NOMEMALLOC"),
        (Gfp.HardWall, "__GFP_HARDWALL"), (Gfp.ThisNode, "__GFP_THISNODE"), (Gfp.Account, "__GFP_ACCOUNT"),
    ];

    /// <summary>The mask as Linux prints it with %pGg, e.g. "GFP_KERNEL|__GFP_ZERO" or "GFP_NOWAIT|__GFP_NOWARN".</summary>
    public static string Format(Gfp gfp)
    {
        if (gfp == Gfp.None) return "0";
        var parts = new List<string>();
        var rest = gfp;
        foreach (var (flag, name) in Composite)
            if ((rest & flag) == flag) { parts.Add(name); rest &= ~flag; }
        foreach (var (flag, name) in Single)
            if ((rest & flag) != 0) { parts.Add(name); rest &= ~flag; }
        if (rest != 0) parts.Add($"0x{(uint)rest:x}");
        return string.Join('|', parts);
    }
}
