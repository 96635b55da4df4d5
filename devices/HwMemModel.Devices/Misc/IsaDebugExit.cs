using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Misc;

/// <summary>
/// QEMU's <c>isa-debug-exit</c> (hw/misc/debugexit.c): a write of value v of any size to any of its ports ends the
/// emulator with exit status <c>(v &lt;&lt; 1) | 1</c>, so a guest can never report status 0. Reads return 0 (QEMU
/// 7.2 gives 0 for IN of every size at port 0xF4). The default machine maps it at port 0xF4 with 4 ports.
/// </summary>
/// <remarks>
/// QEMU calls <c>exit()</c> with the value as a C <c>int</c>; the process status the host shell sees is its low
/// 8 bits. <see cref="StopRequest.ExitStatus"/> receives the full value so that the run loop can return it from
/// Main, where the operating system truncates it the same way.
/// </remarks>
public sealed class IsaDebugExit : IMmioDevice
{
    private readonly StopRequest _stop;

    /// <summary>Creates the device.</summary>
    /// <param name="stop">Receives the stop request.</param>
    /// <param name="ioBase">The first port, used only in the stop reason (QEMU's <c>iobase</c>).</param>
    /// <exception cref="ArgumentNullException"><paramref name="stop"/> is null.</exception>
    public IsaDebugExit(StopRequest stop, ushort ioBase = 0xF4)
    {
        _stop = DeviceThrow.NotNull(stop, nameof(stop), "isa-debug-exit");
        IoBase = ioBase;
    }

    /// <inheritdoc />
    public string Name => "isa-debug-exit";

    /// <summary>QEMU accepts 1- to 4-byte accesses and passes the value written as it is.</summary>
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <inheritdoc />
    public AccessConstraints Impl => new(1, 4, Unaligned: true);

    /// <summary>The first port, as given to the constructor.</summary>
    public ushort IoBase { get; }

    /// <summary>The last value written, or null before the first write.</summary>
    public uint? LastValue { get; private set; }

    /// <summary>The exit status the given value produces: <c>(value &lt;&lt; 1) | 1</c> as a 32-bit C int.</summary>
    public static int ExitStatusFor(uint value) => unchecked((int)((value << 1) | 1));

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = 0;
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        uint v = (uint)value;
        LastValue = v;
        int status = ExitStatusFor(v);
        ulong port = IoBase + offset;
        _stop.Request(status,
            $"isa-debug-exit: guest wrote 0x{v:x} ({size} byte{(size == 1 ? "" : "s")}) to port 0x{port:x} (exit status {status})");
        return BusStatus.Ok;
    }
}
