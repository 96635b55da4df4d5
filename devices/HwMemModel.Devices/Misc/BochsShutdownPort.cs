using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Misc;

/// <summary>
/// The Bochs power-off port 0x8900: the bytes of "Shutdown" written one after another power the machine off, which
/// ends the run with exit status 0 (QEMU's shutdown request; also what QEMU does on power-off with -no-reboot).
/// Semantics of Bochs and of QEMU before 1.4 (<c>bochs_bios_write</c> in hw/pc.c): each byte written is compared
/// with the next expected character; a match advances, the eighth match ("n") powers off and starts over, any other
/// byte starts over without being compared with "S" again (so "SShutdown" does not power off). QEMU registered a
/// 1-byte write handler only: a wider OUT reaches the port as its low byte (the rest goes to the following ports),
/// and reads return 0xFF as an unassigned port does.
/// </summary>
/// <remarks>
/// QEMU 7.2 no longer has this port: on <c>-machine pc</c> a write of "Shutdown" to 0x8900 is ignored and a read
/// returns 0xFF (observed with a probe firmware). The model offers it as an option for teaching kernels that still
/// use it (Pintos, ucore); the default machine does not have it, so that default runs match QEMU 7.2.
/// </remarks>
public sealed class BochsShutdownPort : IMmioDevice
{
    /// <summary>The port Bochs and old QEMU use.</summary>
    public const ushort DefaultPort = 0x8900;

    /// <summary>The characters to write, in order.</summary>
    public const string Sequence = "Shutdown";

    private readonly StopRequest _stop;
    private int _index;

    /// <summary>Creates the port.</summary>
    /// <param name="stop">Receives the power-off (exit status 0).</param>
    /// <param name="port">The port it is mapped at, used only in the stop reason.</param>
    /// <exception cref="ArgumentNullException"><paramref name="stop"/> is null.</exception>
    public BochsShutdownPort(StopRequest stop, ushort port = DefaultPort)
    {
        _stop = DeviceThrow.NotNull(stop, nameof(stop), "The Bochs shutdown port");
        Port = port;
    }

    /// <inheritdoc />
    public string Name => "bochs-shutdown";

    /// <summary>1-byte accesses (the bus splits wider ones across the following ports).</summary>
    public AccessConstraints Valid => new(1, 1);

    /// <inheritdoc />
    public AccessConstraints Impl => new(1, 1);

    /// <summary>The port, as given to the constructor.</summary>
    public ushort Port { get; }

    /// <summary>How many characters of "Shutdown" have been matched so far (0-7).</summary>
    public int Matched => _index;

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = 0xFF;
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        if ((byte)value != (byte)Sequence[_index])
        {
            _index = 0;
            return BusStatus.Ok;
        }

        if (++_index == Sequence.Length)
        {
            _index = 0;
            _stop.Request(0, $"bochs-shutdown: guest wrote \"{Sequence}\" to port 0x{Port:x} (power off, exit status 0)");
        }

        return BusStatus.Ok;
    }
}
