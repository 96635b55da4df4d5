namespace HwMemModel.Kernel;

/// <summary>
/// Deterministic fault injection with the attributes of Linux's fault_attr (failslab, fail_page_alloc):
/// probability in percent, interval, times, space, and a seed for the pseudo-random choice.
/// Linux's order: times exhausted → no; space left → consume and no; interval: only every interval-th call may fail;
/// then the probability test; a failure decrements times.
/// </summary>
public sealed class FaultInjection
{
    private ulong _state;
    private ulong _calls;

    /// <summary>Creates a disabled injector (probability 0).</summary>
    public FaultInjection(string name) => Name = name;

    /// <summary>"failslab" or "fail_page_alloc".</summary>
    public string Name { get; }
    /// <summary>Percent chance (0-100) that an eligible call fails.</summary>
    public int Probability { get; private set; }
    /// <summary>Only every interval-th call is eligible (1 = every call).</summary>
    public ulong Interval { get; private set; } = 1;
    /// <summary>How many failures remain; -1 for no limit.</summary>
    public long Times { get; private set; } = 1;
    /// <summary>Bytes (or calls) to let through before failures start.</summary>
    public long Space { get; private set; }
    /// <summary>Failures injected so far.</summary>
    public long Injected { get; private set; }

    /// <summary>Arms the injector. Out-of-range values are rejected with a message naming the allowed range.</summary>
    public void Configure(int probability, ulong interval = 1, long times = -1, long space = 0, ulong seed = 1)
    {
        if (probability is < 0 or > 100) throw new ArgumentOutOfRangeException(nameof(probability), probability, $"{Name}: probability is a percentage, 0 to 100.");
        if (interval == 0) throw new ArgumentOutOfRangeException(nameof(interval), interval, $"{Name}: interval must be 1 or more.");
        if (times < -1) throw new ArgumentOutOfRangeException(nameof(times), times, $"{Name}: times must be -1 (no limit) or 0 or more.");
        if (space < 0) throw new ArgumentOutOfRangeException(nameof(space), space, $"{Name}: space must be 0 or more.");
        Probability = probability;
        Interval = interval;
        Times = times;
        Space = space;
        _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
        _calls = 0;
    }

    /// <summary>Disarms the injector.</summary>
    public void Disable() => Probability = 0;

    /// <summary>Decides whether this call fails; <paramref name="size"/> is consumed from <see cref="Space"/>.</summary>
    public bool ShouldFail(long size = 1)
    {
        if (Probability == 0 || Times == 0) return false;
        if (Space > size) { Space -= size; return false; }
        if (Interval > 1 && ++_calls % Interval != 0) return false;
        if (Probability < 100 && (int)(Next() % 100) >= Probability) return false;
        if (Times != -1) Times--;
        Injected++;
        return true;
    }

    private ulong Next()
    {
        // xorshift64*: deterministic for a seed.
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return _state * 0x2545F4914F6CDD1DUL;
    }
}
