using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Interrupts;

/// <summary>
/// The pc machine's global system interrupt lines (QEMU's gsi_handler in hw/i386/x86.c): GSI n below 16 drives ISA
/// IRQ n of the PIC pair and every GSI drives I/O APIC input n (where input 0 lands on pin 2). A source setting a
/// line overrides the previous level; lines are not wire-ORed, as on QEMU.
/// </summary>
public sealed class GsiRouter
{
    /// <summary>Number of GSIs (the I/O APIC's pins).</summary>
    public const int GsiCount = IoApic.PinCount;

    private readonly Pic8259 _pic;
    private readonly IoApic _ioApic;
    private uint _levels;

    /// <summary>Creates the router in front of <paramref name="pic"/> and <paramref name="ioApic"/>.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public GsiRouter(Pic8259 pic, IoApic ioApic)
    {
        _pic = DeviceThrow.NotNull(pic, nameof(pic), "The GSI router");
        _ioApic = DeviceThrow.NotNull(ioApic, nameof(ioApic), "The GSI router");
    }

    /// <summary>Drives GSI <paramref name="gsi"/> (0-23) to <paramref name="level"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gsi"/> is outside 0-23.</exception>
    public void SetIrq(int gsi, bool level)
    {
        if ((uint)gsi >= GsiCount)
        {
            DeviceThrow.OutOfRange(nameof(gsi), gsi, $"The pc machine has GSIs 0 to 23; {gsi} is not one.");
        }

        _levels = level ? _levels | (1u << gsi) : _levels & ~(1u << gsi);
        if (gsi < 16)
        {
            _pic.SetIrq(gsi, level);
        }

        _ioApic.SetIrq(gsi, level);
    }

    /// <summary>The level GSI <paramref name="gsi"/> was last driven to.</summary>
    public bool GetLevel(int gsi) => (uint)gsi < GsiCount && (_levels & (1u << gsi)) != 0;
}
