using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Timers;

/// <summary>
/// System control port B at 0x61 as QEMU 7.2's <c>pcspk</c> device models it (hw/audio/pcspk.c): bit 0 is PIT
/// channel 2's gate, bit 1 the speaker data enable, bit 4 a refresh-clock bit that toggles on every read, bit 5
/// channel 2's output. Writes set the gate and the data enable. After reset the first read returns 0x30 and the
/// second 0x20 (observed on QEMU 7.2: gate low, channel 2 output high, refresh bit toggling).
/// </summary>
public sealed class PcSpeakerPort : IMmioDevice
{
    private readonly Pit8254 _pit;
    private bool _dataOn;
    private bool _refresh;

    /// <summary>Creates the port on top of <paramref name="pit"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="pit"/> is null.</exception>
    public PcSpeakerPort(Pit8254 pit) => _pit = DeviceThrow.NotNull(pit, nameof(pit), "Port 0x61 (pcspk)");

    /// <inheritdoc />
    public string Name => "pcspk";

    /// <inheritdoc />
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <inheritdoc />
    public AccessConstraints Impl => AccessConstraints.Exactly(1);

    /// <summary>Whether the speaker data bit (bit 1) is set.</summary>
    public bool SpeakerDataEnabled => _dataOn;

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        _pit.Poll();
        _refresh = !_refresh;
        value = (_pit.GetGate(2) ? 1u : 0u) | (_dataOn ? 2u : 0u) | (_refresh ? 0x10u : 0u) | (_pit.GetOutput(2) ? 0x20u : 0u);
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        _pit.Poll();
        _dataOn = (value & 2) != 0;
        _pit.SetGate(2, (value & 1) != 0);
        return BusStatus.Ok;
    }
}
