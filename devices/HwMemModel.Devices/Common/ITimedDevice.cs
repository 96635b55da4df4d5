namespace HwMemModel.Devices.Common;

/// <summary>
/// A device whose state changes with guest time (timer expiry, a receive timeout). Devices bring themselves up to
/// date on every register access, so <see cref="Poll"/> is needed only to deliver interrupts on time: the machine
/// calls it once <see cref="HwMemModel.Bus.GuestClock.Nanoseconds"/> reaches <see cref="NextDeadline"/>.
/// </summary>
public interface ITimedDevice
{
    /// <summary>Guest time in nanoseconds of the next internal event, or <see cref="long.MaxValue"/> when none is pending.</summary>
    long NextDeadline { get; }

    /// <summary>Processes every event due at the clock's current time, raising the interrupt events they cause.</summary>
    void Poll();
}
