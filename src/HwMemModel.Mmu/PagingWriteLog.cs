using System.Buffers.Binary;
using HwMemModel.Bus;

namespace HwMemModel.Mmu;

/// <summary>
/// One change of a paging-structure entry seen by a <see cref="PagingWriteLog"/>: who wrote it, where, the value
/// before and after, and (for a CPU that can say) the instruction that wrote it.
/// </summary>
/// <param name="Sequence">Order of the change among all changes the log saw (1, 2, ...).</param>
/// <param name="Writer">The requester of the write (a CPU with its index, DMA, the host).</param>
/// <param name="EntryAddress">Physical address of the 8-byte entry.</param>
/// <param name="OldValue">The entry before the write.</param>
/// <param name="NewValue">The entry after the write.</param>
/// <param name="InstructionPointer">The writing CPU's instruction pointer, when known.</param>
/// <param name="Instruction">The writing instruction in Intel syntax, when known.</param>
public sealed record PagingEntryWrite(long Sequence, BusAttributes Writer, ulong EntryAddress, ulong OldValue, ulong NewValue,
    ulong? InstructionPointer, string? Instruction)
{
    /// <summary>"CPU 0", "the host", "DMA 3" or "a debugger".</summary>
    public string WriterName => Writer.Kind switch
    {
        RequesterKind.Cpu => $"CPU {Writer.RequesterId}",
        RequesterKind.Dma => $"DMA master {Writer.RequesterId}",
        RequesterKind.Debugger => "a debugger",
        _ => "the host",
    };
}

/// <summary>What a CPU is executing, for coherence reports: its instruction pointer and the instruction's text.</summary>
/// <param name="InstructionPointer">RIP (or CS-relative IP outside 64-bit mode) of the current instruction.</param>
/// <param name="Instruction">The instruction in Intel syntax.</param>
public readonly record struct CpuPosition(ulong InstructionPointer, string Instruction);

/// <summary>
/// The write log of the cross-CPU coherence checker, one per machine (shared by every <see cref="Mmu"/> whose
/// <see cref="Mmu.WriteLog"/> it is). Each MMU with <see cref="Mmu.CoherenceChecking"/> on registers the pages its
/// page walks read entries from when it fills a TLB entry; the log keeps a copy of those pages and, on every write the
/// bus reports into them (<see cref="PhysicalBus.LoggedPageWritten"/>), records which entry changed, from what to what,
/// by which requester and instruction. When an MMU later finds a cached translation stale, it asks the log for the last
/// change of the entries behind it, so the report names both CPUs and both instructions. Changes of the Accessed and
/// Dirty bits alone (page walks set them) are not recorded. Costs nothing until the first page is registered.
/// </summary>
public sealed class PagingWriteLog
{
    private const ulong AccessedDirty = 0x60;
    private readonly PhysicalBus _bus;
    private readonly Dictionary<ulong, ulong[]> _pages = [];
    private readonly Dictionary<ulong, PagingEntryWrite> _last = [];
    private long _sequence;

    /// <summary>Creates a log over <paramref name="bus"/>; nothing is logged until an MMU registers a page.</summary>
    public PagingWriteLog(PhysicalBus bus)
    {
        ArgumentNullException.ThrowIfNull(bus);
        _bus = bus;
        _bus.LoggedPageWritten += OnWritten;
    }

    /// <summary>
    /// Says where a CPU is (its current instruction) given its index; set by the machine that owns the CPUs. Null, or
    /// a null answer, when unknown (the kernel model's CPU contexts execute no instructions).
    /// </summary>
    public Func<int, CpuPosition?>? DescribeCpu { get; set; }

    /// <summary>Pages registered as holding paging structures.</summary>
    public int PageCount => _pages.Count;

    /// <summary>Entry changes recorded so far (the last per entry is kept).</summary>
    public long Changes => _sequence;

    /// <summary>Registers the 4 KiB page holding <paramref name="pa"/> as a paging structure: later writes to it are logged.</summary>
    public void Track(ulong pa)
    {
        ulong page = pa & ~0xFFFUL;
        if (_pages.ContainsKey(page)) return;
        var copy = new ulong[512];
        Span<byte> bytes = stackalloc byte[8];
        for (int i = 0; i < 512; i++)
        {
            _bus.ReadBytes(page + (ulong)i * 8, bytes, BusAttributes.Debugger);
            copy[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        }
        _pages.Add(page, copy);
        _bus.LogPageWrites(page);
    }

    /// <summary>The last recorded change of the entry at <paramref name="entryAddress"/>, or null.</summary>
    public PagingEntryWrite? LastChange(ulong entryAddress) => _last.GetValueOrDefault(entryAddress & ~7UL);

    /// <summary>Where CPU <paramref name="cpu"/> is, through <see cref="DescribeCpu"/>.</summary>
    public CpuPosition? Position(int cpu) => DescribeCpu?.Invoke(cpu);

    /// <summary>Stops logging: the bus forgets the pages and the log its records.</summary>
    public void Clear()
    {
        _pages.Clear();
        _last.Clear();
        _bus.StopLoggingPageWrites();
    }

    private void OnWritten(ulong pa, int length, BusAttributes writer)
    {
        ulong first = pa & ~7UL, end = pa + (ulong)Math.Max(length, 1);
        Span<byte> bytes = stackalloc byte[8];
        CpuPosition? where = null;
        bool asked = false;
        for (ulong q = first; q < end; q += 8)
        {
            if (!_pages.TryGetValue(q & ~0xFFFUL, out var copy)) continue;
            int index = (int)((q & 0xFFF) >> 3);
            _bus.ReadBytes(q, bytes, BusAttributes.Debugger);
            ulong now = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            ulong before = copy[index];
            if (now == before) continue;
            copy[index] = now;
            if (((now ^ before) & ~AccessedDirty) == 0) continue;
            if (!asked && writer.Kind == RequesterKind.Cpu)
            {
                where = Position(writer.RequesterId);
                asked = true;
            }
            _last[q] = new PagingEntryWrite(++_sequence, writer, q, before, now, where?.InstructionPointer, where?.Instruction);
        }
    }
}
