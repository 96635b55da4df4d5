namespace HwMemModel.Bus;

/// <summary>Outcome of one bus transaction, as QEMU's MemTxResult distinguishes them.</summary>
public enum BusStatus : byte
{
    /// <summary>The transaction completed.</summary>
    Ok = 0,
    /// <summary>A device was addressed but signalled an error (for example an access size it rejects).</summary>
    DeviceError = 1,
    /// <summary>No region decodes the address and the unmapped policy reports bus errors.</summary>
    DecodeError = 2,
}

/// <summary>Who issued a transaction.</summary>
public enum RequesterKind : byte
{
    /// <summary>A CPU context (instruction fetch, data access or page walk).</summary>
    Cpu = 0,
    /// <summary>A bus master such as a DMA engine.</summary>
    Dma = 1,
    /// <summary>A debugger or inspection tool.</summary>
    Debugger = 2,
    /// <summary>Host code (tests, loaders, the kernel model's set-up).</summary>
    Host = 3,
}

/// <summary>Attributes carried by every transaction: requester kind and identity.</summary>
/// <param name="Kind">The kind of requester.</param>
/// <param name="RequesterId">CPU index, DMA channel or other identity of the requester.</param>
public readonly record struct BusAttributes(RequesterKind Kind, int RequesterId)
{
    /// <summary>Host code acting on the bus directly.</summary>
    public static BusAttributes Host => new(RequesterKind.Host, 0);

    /// <summary>The CPU with the given index.</summary>
    public static BusAttributes Cpu(int index) => new(RequesterKind.Cpu, index);

    /// <summary>A DMA bus master with the given identity.</summary>
    public static BusAttributes Dma(int id) => new(RequesterKind.Dma, id);

    /// <summary>A debugger or inspection tool.</summary>
    public static BusAttributes Debugger => new(RequesterKind.Debugger, 0);
}

/// <summary>What to do with accesses that no region decodes.</summary>
public enum UnmappedPolicy : byte
{
    /// <summary>Reads return all ones, writes are dropped; both counted. The bus default.</summary>
    AllOnes = 0,
    /// <summary>Reads return zero, writes are dropped; both counted (QEMU's pc machine for memory space).</summary>
    Zero = 1,
    /// <summary>The access completes with <see cref="BusStatus.DecodeError"/>.</summary>
    BusError = 2,
}

/// <summary>
/// Access sizes (1, 2, 4 or 8 bytes) and alignment a device accepts (<c>valid</c>) or implements (<c>impl</c>),
/// after QEMU's MemoryRegionOps.
/// </summary>
/// <param name="MinSize">Smallest access size in bytes (1, 2, 4 or 8).</param>
/// <param name="MaxSize">Largest access size in bytes (1, 2, 4 or 8), at least <paramref name="MinSize"/>.</param>
/// <param name="Unaligned">Whether accesses not aligned to their size are allowed.</param>
public readonly record struct AccessConstraints(int MinSize, int MaxSize, bool Unaligned = false)
{
    /// <summary>Any size from 1 to 8 bytes, unaligned allowed.</summary>
    public static AccessConstraints Any => new(1, 8, true);

    /// <summary>Exactly the given size, aligned.</summary>
    public static AccessConstraints Exactly(int size) => new(size, size);
}

/// <summary>
/// A device answering on the memory bus (MMIO) or the port bus. Offsets are relative to the window's base.
/// Implementations never throw for guest-controlled input: an access they cannot serve returns
/// <see cref="BusStatus.DeviceError"/> or is ignored.
/// </summary>
public interface IMmioDevice
{
    /// <summary>A short name used in /proc/iomem listings and reports.</summary>
    string Name { get; }

    /// <summary>Sizes and alignment the device accepts; other accesses are rejected with <see cref="BusStatus.DeviceError"/>.</summary>
    AccessConstraints Valid { get; }

    /// <summary>Sizes the device implements; the bus splits larger and widens smaller accepted accesses.</summary>
    AccessConstraints Impl { get; }

    /// <summary>Reads <paramref name="size"/> bytes at <paramref name="offset"/>; size and alignment obey <see cref="Impl"/>.</summary>
    BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes);

    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="offset"/>.</summary>
    BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes);
}
