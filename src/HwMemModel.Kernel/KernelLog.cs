namespace HwMemModel.Kernel;

/// <summary>The kernel ring buffer (dmesg): every report the model makes, in Linux's wording, in order.</summary>
public sealed class KernelLog
{
    private readonly List<string> _lines = [];
    private readonly HashSet<string> _once = [];

    /// <summary>All lines so far.</summary>
    public IReadOnlyList<string> Lines => _lines;

    /// <summary>Raised for each line.</summary>
    public event Action<string>? LineLogged;

    /// <summary>Appends a line (printk).</summary>
    public void Print(string line)
    {
        _lines.Add(line);
        LineLogged?.Invoke(line);
    }

    /// <summary>A WARNING in Linux's shape: the message, then "WARNING: ... at {where}".</summary>
    public void Warn(string message, string where)
    {
        Print(message);
        Print($"WARNING: CPU: 0 PID: 1 at {where}");
    }

    /// <summary>Like <see cref="Warn"/>, once per <paramref name="key"/>.</summary>
    public void WarnOnce(string key, string message, string where)
    {
        if (_once.Add(key)) Warn(message, where);
    }

    /// <summary>The whole log as text.</summary>
    public override string ToString() => string.Join('\n', _lines) + (_lines.Count > 0 ? "\n" : "");
}

/// <summary>
/// A kernel bug the model cannot continue from (an oops, a panic, an out-of-memory stop with __GFP_NOFAIL): the machine
/// stops and the report says why, in Linux's wording. Thrown to the host caller; never caught inside the model.
/// </summary>
public sealed class KernelStopException(string report) : Exception(report)
{
    /// <summary>The report, as it would appear on the console.</summary>
    public string Report { get; } = report;
}
