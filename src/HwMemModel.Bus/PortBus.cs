using System.Buffers.Binary;
using System.Text;

namespace HwMemModel.Bus;

/// <summary>A device's range of I/O ports on a <see cref="PortBus"/>.</summary>
public sealed class PortRange
{
    internal PortRange(string name, ushort port, int count, IMmioDevice device)
    {
        Name = name;
        Port = port;
        Count = count;
        Device = device;
    }

    /// <summary>The range's name, used in messages and listings.</summary>
    public string Name { get; }

    /// <summary>The first port.</summary>
    public ushort Port { get; }

    /// <summary>The number of ports (1 to 65,536).</summary>
    public int Count { get; }

    /// <summary>The last port.</summary>
    public ushort Last => (ushort)(Port + Count - 1);

    /// <summary>The device answering; the offsets it sees are relative to <see cref="Port"/>.</summary>
    public IMmioDevice Device { get; }

    internal PortBus? Owner { get; set; }

    /// <summary>A description such as <c>ports 'serial' [0x3f8-0x3ff]</c>.</summary>
    public override string ToString() => $"ports '{Name}' {Hex.Range(Port, Last)}";
}

/// <summary>
/// The x86 I/O port space: 65,536 byte-addressed ports reached by IN/OUT with 1-, 2- or 4-byte accesses. Devices
/// declare Valid and Impl constraints as on the memory bus and the bus splits and widens accesses the same way.
/// Unmapped ports read as all ones per byte (QEMU's behaviour) and writes to them are dropped; both are counted.
/// Not thread-safe.
/// </summary>
public sealed class PortBus
{
    /// <summary>The number of ports.</summary>
    public const int PortCount = 0x10000;

    private readonly PortRange?[] _map = new PortRange?[PortCount];
    private readonly List<PortRange> _ranges = [];
    private UnmappedPolicy _unmappedPolicy;
    private CounterBlock _counters;

    /// <summary>What accesses to unmapped ports do: all ones by default; <see cref="UnmappedPolicy.BusError"/> reports DecodeError.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not a defined <see cref="Bus.UnmappedPolicy"/>.</exception>
    public UnmappedPolicy UnmappedPolicy
    {
        get => _unmappedPolicy;
        set
        {
            if (!Enum.IsDefined(value))
            {
                ThrowHelper.ThrowOutOfRange(nameof(value),
                    $"Unmapped policy {(int)value} is not defined: use AllOnes, Zero or BusError.");
            }

            _unmappedPolicy = value;
        }
    }

    /// <summary>The mapped port ranges in the order they were added.</summary>
    public IReadOnlyList<PortRange> Ranges => _ranges;

    /// <summary>A snapshot of the transaction counters (ROM counters stay zero).</summary>
    public BusCounters Counters => _counters.Snapshot();

    /// <summary>Sets every counter to zero.</summary>
    public void ResetCounters() => _counters = default;

    /// <summary>Maps <paramref name="device"/> on <paramref name="count"/> ports from <paramref name="port"/> on.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="device"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1 or the range extends beyond port 0xffff.</exception>
    /// <exception cref="ArgumentException">Empty name, an overlap with a mapped range, or invalid device constraints.</exception>
    public PortRange Add(string name, ushort port, int count, IMmioDevice device)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(device);
        if (string.IsNullOrWhiteSpace(name))
        {
            ThrowHelper.ThrowArgument("A port range needs a non-empty name.", nameof(name));
        }

        if (count < 1)
        {
            ThrowHelper.ThrowOutOfRange(nameof(count),
                $"Port range '{name}' at {Hex.Format(port)} has count {count}; a port range must cover at least one port.");
        }

        if ((long)port + count > PortCount)
        {
            ThrowHelper.ThrowOutOfRange(nameof(count),
                $"Port range '{name}' {Hex.Range(port, (ulong)port + (ulong)count - 1)} extends beyond the last I/O port 0xffff; " +
                "ports are 16-bit numbers.");
        }

        for (int p = port; p < port + count; p++)
        {
            if (_map[p] is { } other)
            {
                ThrowHelper.ThrowArgument(
                    $"Port range '{name}' {Hex.Range(port, (ulong)port + (ulong)count - 1)} overlaps {other}; port ranges may not overlap.",
                    nameof(port));
            }
        }

        string owner = $"Port range '{name}' device '{device.Name}'";
        MmioDispatch.Validate(device.Valid, owner, "Valid", nameof(device));
        MmioDispatch.Validate(device.Impl, owner, "Impl", nameof(device));
        var range = new PortRange(name, port, count, device) { Owner = this };
        _ranges.Add(range);
        _map.AsSpan(port, count).Fill(range);
        return range;
    }

    /// <summary>Unmaps <paramref name="range"/>.</summary>
    /// <exception cref="ArgumentException">The range is not mapped on this bus.</exception>
    public void Remove(PortRange range)
    {
        ArgumentNullException.ThrowIfNull(range);
        if (range.Owner != this)
        {
            ThrowHelper.ThrowArgument($"{range} is not mapped on this bus; only mapped ranges can be removed.", nameof(range));
        }

        _ranges.Remove(range);
        _map.AsSpan(range.Port, range.Count).Clear();
        range.Owner = null;
    }

    /// <summary>Reads <paramref name="size"/> bytes (1, 2 or 4) at <paramref name="port"/>, little-endian (IN).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is not 1, 2 or 4.</exception>
    public BusStatus Read(ushort port, int size, out uint value, BusAttributes attributes)
    {
        if (size is not (1 or 2 or 4))
        {
            ThrowHelper.ThrowPortAccessSize(size);
        }

        _counters.ReadsByKind[(int)attributes.Kind & 3]++;
        PortRange? range = _map[port];
        if (range is not null && port + size - 1 <= range.Last)
        {
            BusStatus status = MmioDispatch.Read(range.Device, (ulong)(port - range.Port), size, out ulong v, attributes);
            value = (uint)v;
            return Count(status, unmapped: false, isWrite: false);
        }

        Span<byte> buffer = stackalloc byte[4];
        BusStatus result = BusStatus.Ok;
        bool unmapped = false;
        int done = 0;
        while (done < size)
        {
            int at = port + done;
            int run = Run(at, size - done, out PortRange? owner);
            if (owner is null)
            {
                buffer.Slice(done, run).Fill(_unmappedPolicy == UnmappedPolicy.Zero ? (byte)0 : (byte)0xFF);
                unmapped = true;
            }
            else
            {
                result = MmioDispatch.Worst(result,
                    MmioDispatch.ReadBytes(owner.Device, (ulong)(at - owner.Port), buffer.Slice(done, run), attributes));
            }

            done += run;
        }

        value = BinaryPrimitives.ReadUInt32LittleEndian(buffer) & (uint)MmioDispatch.Ones(size);
        return Count(result, unmapped, isWrite: false);
    }

    /// <summary>Writes the low <paramref name="size"/> bytes (1, 2 or 4) of <paramref name="value"/> at <paramref name="port"/> (OUT).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is not 1, 2 or 4.</exception>
    public BusStatus Write(ushort port, int size, uint value, BusAttributes attributes)
    {
        if (size is not (1 or 2 or 4))
        {
            ThrowHelper.ThrowPortAccessSize(size);
        }

        _counters.WritesByKind[(int)attributes.Kind & 3]++;
        PortRange? range = _map[port];
        if (range is not null && port + size - 1 <= range.Last)
        {
            BusStatus status = MmioDispatch.Write(range.Device, (ulong)(port - range.Port), size, value, attributes);
            return Count(status, unmapped: false, isWrite: true);
        }

        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, value);
        BusStatus result = BusStatus.Ok;
        bool unmapped = false;
        int done = 0;
        while (done < size)
        {
            int at = port + done;
            int run = Run(at, size - done, out PortRange? owner);
            if (owner is null)
            {
                unmapped = true;
            }
            else
            {
                result = MmioDispatch.Worst(result,
                    MmioDispatch.WriteBytes(owner.Device, (ulong)(at - owner.Port), buffer.Slice(done, run), attributes));
            }

            done += run;
        }

        return Count(result, unmapped, isWrite: true);
    }

    /// <summary>The mapped ranges in Linux's /proc/ioports format: <c>03f8-03ff : serial</c>, one line each ending in '\n'.</summary>
    public string FormatIoPorts()
    {
        var text = new StringBuilder();
        foreach (PortRange range in _ranges.OrderBy(r => r.Port))
        {
            text.Append($"{range.Port:x4}-{range.Last:x4} : {range.Name}\n");
        }

        return text.ToString();
    }

    /// <summary>Length of the run of ports from <paramref name="at"/> served by one range (or unmapped); ports past 0xffff are unmapped.</summary>
    private int Run(int at, int remaining, out PortRange? owner)
    {
        owner = at < PortCount ? _map[at] : null;
        int n = 1;
        while (n < remaining && (at + n < PortCount ? _map[at + n] : null) == owner)
        {
            n++;
        }

        return n;
    }

    private BusStatus Count(BusStatus deviceStatus, bool unmapped, bool isWrite)
    {
        BusStatus status = BusStatus.Ok;
        if (unmapped)
        {
            if (isWrite)
            {
                _counters.UnmappedWrites++;
            }
            else
            {
                _counters.UnmappedReads++;
            }

            if (_unmappedPolicy == UnmappedPolicy.BusError)
            {
                status = BusStatus.DecodeError;
            }
        }

        if (deviceStatus != BusStatus.Ok)
        {
            _counters.DeviceErrors++;
            status = MmioDispatch.Worst(status, deviceStatus);
        }

        if (status == BusStatus.DecodeError)
        {
            _counters.DecodeErrors++;
        }

        return status;
    }
}
