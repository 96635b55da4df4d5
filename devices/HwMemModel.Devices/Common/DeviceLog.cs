namespace HwMemModel.Devices.Common;

/// <summary>
/// Where device models report guest behaviour worth a look that is not an error of the model: an access to an
/// undefined register offset, a write to a reserved field, a descriptor pointing at MMIO. Reporting never throws
/// and never changes what the guest sees. Entries are kept in order (deterministic) and forwarded to
/// <see cref="Reported"/> (the machine connects it to the kernel log).
/// </summary>
public sealed class DeviceLog
{
    private readonly List<string> _entries = [];

    /// <summary>A log that keeps entries and forwards them to nobody.</summary>
    public DeviceLog() { }

    /// <summary>Most entries kept; older ones are dropped first (the count of all reports goes on).</summary>
    public int Capacity { get; init; } = 4096;

    /// <summary>The kept entries, oldest first, each "device: message".</summary>
    public IReadOnlyList<string> Entries => _entries;

    /// <summary>Reports made since creation, including dropped ones.</summary>
    public long Count { get; private set; }

    /// <summary>Raised with each new entry.</summary>
    public event Action<string>? Reported;

    /// <summary>Adds "<paramref name="device"/>: <paramref name="message"/>".</summary>
    public void Report(string device, string message)
    {
        string line = $"{device}: {message}";
        Count++;
        if (_entries.Count >= Capacity && _entries.Count > 0) _entries.RemoveAt(0);
        _entries.Add(line);
        Reported?.Invoke(line);
    }

    /// <summary>A new private log, for a device created without one (its reports are kept on the device's own log and nobody is told).</summary>
    public static DeviceLog Discard => new();
}
