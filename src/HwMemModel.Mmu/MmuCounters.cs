namespace HwMemModel.Mmu;

/// <summary>Kinds of TLB and paging-structure-cache invalidation.</summary>
public enum FlushKind
{
    /// <summary>INVLPG.</summary>
    Invlpg,
    /// <summary>INVPCID type 0 (individual address).</summary>
    InvpcidAddress,
    /// <summary>INVPCID type 1 (single context).</summary>
    InvpcidSingleContext,
    /// <summary>INVPCID type 2 (all contexts, including globals).</summary>
    InvpcidAllIncludingGlobal,
    /// <summary>INVPCID type 3 (all contexts, except globals).</summary>
    InvpcidAllExceptGlobal,
    /// <summary>MOV to CR3 that invalidated.</summary>
    Cr3Load,
    /// <summary>MOV to CR3 with bit 63 set (PCIDE=1): no invalidation.</summary>
    Cr3LoadNoFlush,
    /// <summary>MOV to CR4 changing PGE, PCIDE (1 to 0), PAE or SMEP (0 to 1).</summary>
    Cr4Change,
    /// <summary>MOV to CR0 changing PG.</summary>
    Cr0PagingChange,
    /// <summary>A page fault invalidating the entries for the faulting address.</summary>
    PageFault,
    /// <summary>A host call to flush everything.</summary>
    Host,
}

/// <summary>Counters of one MMU.</summary>
public sealed class MmuCounters
{
    internal readonly long[] FlushesByKind = new long[Enum.GetValues<FlushKind>().Length];

    internal long SlowTranslations;
    internal Func<long> FastTranslations = () => 0;

    /// <summary>Translations requested.</summary>
    public long Translations => SlowTranslations + FastTranslations();
    /// <summary>Page walks performed (TLB misses and dirty-bit re-walks).</summary>
    public long Walks { get; internal set; }
    /// <summary>Paging-structure entries read by walks.</summary>
    public long WalkReads { get; internal set; }
    /// <summary>Accessed/Dirty write-backs by walks.</summary>
    public long AccessedDirtyWrites { get; internal set; }
    /// <summary>Walks started from a paging-structure-cache entry.</summary>
    public long WalksFromPagingStructureCache { get; internal set; }
    /// <summary>Re-walks caused by a write through a TLB entry cached with D=0.</summary>
    public long DirtyRewalks { get; internal set; }
    /// <summary>Page faults raised.</summary>
    public long PageFaults { get; internal set; }
    /// <summary>#GP faults for non-canonical addresses.</summary>
    public long GeneralProtectionFaults { get; internal set; }
    /// <summary>Stale translations found by the coherence checker.</summary>
    public long StaleTranslations { get; internal set; }
    /// <summary>Mean paging-structure reads per walk.</summary>
    public double ReadsPerWalk => Walks == 0 ? 0 : (double)WalkReads / Walks;
    /// <summary>Flushes of one kind.</summary>
    public long Flushes(FlushKind kind) => FlushesByKind[(int)kind];
}

/// <summary>How a cached translation differs from the page tables in RAM.</summary>
public enum StaleKind
{
    /// <summary>The page tables no longer map the address (P=0 or a reserved bit at some level).</summary>
    NowUnmapped,
    /// <summary>The page tables map the address to another physical page or with another page size.</summary>
    DifferentFrame,
    /// <summary>The cached rights allow something the page tables now forbid (R/W, U/S, XD or protection key).</summary>
    MorePermissive,
    /// <summary>The cached rights are stricter than the page tables (a spurious fault may follow).</summary>
    LessPermissive,
    /// <summary>Only the memory type differs.</summary>
    DifferentMemoryType,
}

/// <summary>A TLB hit whose cached translation no longer matches the page tables in RAM: a missing flush.</summary>
/// <param name="CpuId">The CPU context whose TLB held the entry.</param>
/// <param name="VirtualAddress">The address accessed.</param>
/// <param name="Kind">How the translation is stale.</param>
/// <param name="Pcid">The PCID of the access.</param>
/// <param name="CachedPhysicalAddress">The physical address the TLB gave.</param>
/// <param name="CachedLeafEntry">The leaf entry value when the translation was cached.</param>
/// <param name="CurrentLeafEntry">The leaf entry value in RAM now (0 when the walk no longer reaches a leaf).</param>
/// <param name="CurrentPhysicalAddress">The physical address the page tables give now, or null when unmapped.</param>
/// <param name="Description">A sentence for reports.</param>
public sealed record StaleTranslationEvent(
    int CpuId, ulong VirtualAddress, StaleKind Kind, ushort Pcid, ulong CachedPhysicalAddress,
    ulong CachedLeafEntry, ulong CurrentLeafEntry, ulong? CurrentPhysicalAddress, string Description)
{
    /// <summary>
    /// The last change of an entry behind the translation (with <see cref="Mmu.WriteLog"/>): who changed it, from what
    /// to what, with which instruction. Null without a write log or when no logged change explains it.
    /// </summary>
    public PagingEntryWrite? Change { get; init; }
    /// <summary>The instruction pointer of the instruction that used the stale entry, when the write log knows it.</summary>
    public ulong? ReaderInstructionPointer { get; init; }
    /// <summary>The instruction that used the stale entry (Intel syntax), when the write log knows it.</summary>
    public string? ReaderInstruction { get; init; }
}
