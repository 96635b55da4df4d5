namespace HwMemModel.Bus;

/// <summary>
/// A request to end the run of a machine, raised by a device (isa-debug-exit, a shutdown port) or by the CPU (triple
/// fault). The first request wins; later ones are ignored. The run loop checks <see cref="IsRequested"/> after every
/// instruction that can reach a device.
/// </summary>
public sealed class StopRequest
{
    /// <summary>Whether a stop has been requested.</summary>
    public bool IsRequested { get; private set; }

    /// <summary>The exit status the emulator process should end with (as QEMU's would).</summary>
    public int ExitStatus { get; private set; }

    /// <summary>Who asked and why, in words.</summary>
    public string Reason { get; private set; } = "";

    /// <summary>Requests a stop with <paramref name="exitStatus"/>; ignored when a stop is already pending.</summary>
    public void Request(int exitStatus, string reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        if (IsRequested) return;
        IsRequested = true;
        ExitStatus = exitStatus;
        Reason = reason;
    }

    /// <summary>Clears a pending request (for a machine that is reset and run again).</summary>
    public void Clear()
    {
        IsRequested = false;
        ExitStatus = 0;
        Reason = "";
    }
}

/// <summary>
/// The machine's deterministic time base. Nothing reads the host clock: the run loop advances guest time by a fixed
/// amount per retired instruction (<see cref="NanosecondsPerInstruction"/>, 1 ns like QEMU's <c>-icount shift=0</c>),
/// so timers (HPET, PIT, RTC, the TSC) give the same values on every run of the same image.
/// </summary>
public sealed class GuestClock
{
    /// <summary>Guest nanoseconds per retired instruction.</summary>
    public const long NanosecondsPerInstruction = 1;

    /// <summary>Guest time since power-on, in nanoseconds.</summary>
    public long Nanoseconds { get; private set; }

    /// <summary>Advances guest time by <paramref name="nanoseconds"/> (0 or more).</summary>
    public void Advance(long nanoseconds)
    {
        if (nanoseconds < 0) throw new ArgumentOutOfRangeException(nameof(nanoseconds), nanoseconds, "Guest time only moves forward; the amount must be 0 or more.");
        Nanoseconds += nanoseconds;
    }
}
