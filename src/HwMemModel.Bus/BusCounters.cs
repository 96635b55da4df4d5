using System.Runtime.CompilerServices;

namespace HwMemModel.Bus;

/// <summary>Per-requester-kind counts, indexed by <see cref="RequesterKind"/>.</summary>
[InlineArray(4)]
internal struct KindCounts
{
    private long _element0;
}

/// <summary>
/// A snapshot of a bus's transaction counters. Each bus-level transaction (one <c>Read</c>, <c>Write</c>,
/// <c>ReadBytes</c> or <c>WriteBytes</c> call) counts once in each counter that applies to it, however many
/// pieces it was split into.
/// </summary>
public readonly struct BusCounters
{
    private readonly KindCounts _readsByKind;
    private readonly KindCounts _writesByKind;

    internal BusCounters(in KindCounts readsByKind, in KindCounts writesByKind, long unmappedReads, long unmappedWrites,
        long romWritesDropped, long deviceErrors, long decodeErrors)
    {
        _readsByKind = readsByKind;
        _writesByKind = writesByKind;
        UnmappedReads = unmappedReads;
        UnmappedWrites = unmappedWrites;
        RomWritesDropped = romWritesDropped;
        DeviceErrors = deviceErrors;
        DecodeErrors = decodeErrors;
    }

    /// <summary>Read transactions of every requester kind.</summary>
    public long Reads => _readsByKind[0] + _readsByKind[1] + _readsByKind[2] + _readsByKind[3];

    /// <summary>Write transactions of every requester kind.</summary>
    public long Writes => _writesByKind[0] + _writesByKind[1] + _writesByKind[2] + _writesByKind[3];

    /// <summary>Read transactions that touched at least one byte no region decodes.</summary>
    public long UnmappedReads { get; }

    /// <summary>Write transactions that touched at least one byte no region decodes (those bytes were dropped).</summary>
    public long UnmappedWrites { get; }

    /// <summary>Write transactions that touched ROM (the ROM bytes were dropped).</summary>
    public long RomWritesDropped { get; }

    /// <summary>Transactions that completed with <see cref="BusStatus.DeviceError"/> or worse from a device.</summary>
    public long DeviceErrors { get; }

    /// <summary>Transactions that completed with <see cref="BusStatus.DecodeError"/> (unmapped under <see cref="UnmappedPolicy.BusError"/>).</summary>
    public long DecodeErrors { get; }

    /// <summary>Read transactions issued by requesters of <paramref name="kind"/>.</summary>
    public long ReadsBy(RequesterKind kind) => _readsByKind[(int)kind & 3];

    /// <summary>Write transactions issued by requesters of <paramref name="kind"/>.</summary>
    public long WritesBy(RequesterKind kind) => _writesByKind[(int)kind & 3];

    /// <summary>All transactions (reads and writes) issued by requesters of <paramref name="kind"/>.</summary>
    public long TransactionsBy(RequesterKind kind) => ReadsBy(kind) + WritesBy(kind);

    /// <inheritdoc/>
    public override string ToString() =>
        $"reads {Reads}, writes {Writes}, unmapped reads {UnmappedReads}, unmapped writes {UnmappedWrites}, " +
        $"ROM writes dropped {RomWritesDropped}, device errors {DeviceErrors}, decode errors {DecodeErrors}";
}

/// <summary>The mutable counters a bus updates.</summary>
internal struct CounterBlock
{
    public KindCounts ReadsByKind;
    public KindCounts WritesByKind;
    public long UnmappedReads;
    public long UnmappedWrites;
    public long RomWritesDropped;
    public long DeviceErrors;
    public long DecodeErrors;

    public readonly BusCounters Snapshot() =>
        new(ReadsByKind, WritesByKind, UnmappedReads, UnmappedWrites, RomWritesDropped, DeviceErrors, DecodeErrors);
}
