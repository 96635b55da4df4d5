using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using HwMemModel.Bus;

namespace HwMemModel.Devices.Common.Registers;

/// <summary>
/// A device's register block: registers defined at offsets named by the enum <typeparamref name="TOffset"/> (the
/// device's nested <c>Reg</c> enum), and the guest access path an <see cref="IMmioDevice"/> forwards to.
/// </summary>
/// <typeparam name="TOffset">An enum whose values are register offsets in the device window.</typeparam>
/// <remarks>
/// <para>Guest accesses (<see cref="Read"/>, <see cref="Write"/>) never throw and always complete with
/// <see cref="BusStatus.Ok"/>. An access to an offset no register covers, or with a size or alignment the register
/// does not accept, is reported to the <see cref="DeviceLog"/> with the device name, offset, size and value; such a
/// read returns 0 and such a write is ignored. An accepted access must be aligned to its size within the register
/// (see <see cref="Register.WithAccessSizes"/>).</para>
/// <para>Host misuse while defining (bad width, an offset not a multiple of the width, overlapping registers, bad
/// fields) throws <see cref="ArgumentException"/> saying what was wrong and what is allowed.</para>
/// <para>Lookups use an array indexed by offset for the first 64 KiB of the window and a dictionary beyond; the
/// access path allocates nothing.</para>
/// </remarks>
public sealed class RegisterMap<TOffset>
    where TOffset : unmanaged, Enum
{
    /// <summary>Offsets below this use the dense lookup array.</summary>
    private const ulong DenseLimit = 0x10000;

    private readonly List<Register> _registers = [];
    private Register?[] _dense = [];
    private Dictionary<ulong, Register>? _sparse;

    /// <summary>Creates an empty map for the device <paramref name="deviceName"/>.</summary>
    /// <param name="deviceName">The device's name, the first word of every report.</param>
    /// <param name="log">Where reports go; null keeps them in a private log (<see cref="Log"/>).</param>
    /// <exception cref="ArgumentException"><paramref name="deviceName"/> is null or empty.</exception>
    public RegisterMap(string deviceName, DeviceLog? log = null)
    {
        if (string.IsNullOrWhiteSpace(deviceName))
        {
            DeviceThrow.Argument(nameof(deviceName), "A register map needs the non-empty name of its device, used in reports.");
        }

        DeviceName = deviceName;
        Log = log ?? DeviceLog.Discard;
    }

    /// <summary>The device's name, as reports show it.</summary>
    public string DeviceName { get; }

    /// <summary>Where undefined accesses and reserved-bit writes are reported.</summary>
    public DeviceLog Log { get; }

    /// <summary>The registers in definition order.</summary>
    public IReadOnlyList<Register> Registers => _registers;

    /// <summary>The register defined at <paramref name="offset"/>.</summary>
    /// <exception cref="ArgumentException">No register starts at that offset.</exception>
    public Register this[TOffset offset]
    {
        get
        {
            ulong at = OffsetOf(offset);
            if (Find(at) is { } r && r.Offset == at) return r;
            DeviceThrow.Argument(nameof(offset), $"{DeviceName} has no register at offset 0x{at:x} ({offset}); define it first with Define.");
            return null!;
        }
    }

    /// <summary>The numeric offset of <paramref name="offset"/>.</summary>
    public static ulong OffsetOf(TOffset offset) => Unsafe.SizeOf<TOffset>() switch
    {
        1 => Unsafe.As<TOffset, byte>(ref offset),
        2 => Unsafe.As<TOffset, ushort>(ref offset),
        4 => Unsafe.As<TOffset, uint>(ref offset),
        _ => Unsafe.As<TOffset, ulong>(ref offset),
    };

    /// <summary>Defines a register of <paramref name="width"/> bytes at <paramref name="offset"/>; add its fields on the result.</summary>
    /// <param name="offset">The register's offset, a multiple of <paramref name="width"/>.</param>
    /// <param name="width">1, 2, 4 or 8 bytes.</param>
    /// <param name="name">The name reports use; null for the enum member's name.</param>
    /// <param name="resetValue">The value after reset; must fit in <paramref name="width"/> bytes.</param>
    /// <returns>The new register, for chaining field definitions.</returns>
    /// <exception cref="ArgumentException">A bad width, an unaligned offset, a reset value too wide, or an overlap with a register already defined.</exception>
    public Register Define(TOffset offset, int width, string? name = null, ulong resetValue = 0)
    {
        ulong at = OffsetOf(offset);
        name ??= offset.ToString();
        if (string.IsNullOrWhiteSpace(name))
        {
            DeviceThrow.Argument(nameof(name), $"The register of {DeviceName} at offset 0x{at:x} needs a non-empty name.");
        }

        if (width is not (1 or 2 or 4 or 8))
        {
            DeviceThrow.Argument(nameof(width), $"Register {name} of {DeviceName} has width {width}; a register is 1, 2, 4 or 8 bytes wide.");
        }

        if ((at & (ulong)(width - 1)) != 0 || at + (ulong)width < at)
        {
            DeviceThrow.Argument(nameof(offset),
                $"Register {name} of {DeviceName} at offset 0x{at:x} is not aligned to its width of {width} bytes; its offset must be a multiple of {width}.");
        }

        if (width < 8 && resetValue >> (width * 8) != 0)
        {
            DeviceThrow.Argument(nameof(resetValue),
                $"Register {name} of {DeviceName} has reset value 0x{resetValue:x}, which does not fit in its {width * 8} bits.");
        }

        for (ulong b = at; b < at + (ulong)width; b++)
        {
            if (Find(b) is { } other)
            {
                DeviceThrow.Argument(nameof(offset),
                    $"Register {name} of {DeviceName} at offset 0x{at:x} ({width} bytes) overlaps register {other.Describe()}; registers may not share bytes.");
            }
        }

        var register = new Register(DeviceName, Log, name, at, width, resetValue);
        _registers.Add(register);
        for (ulong b = at; b < at + (ulong)width; b++)
        {
            if (b < DenseLimit)
            {
                if (b >= (ulong)_dense.Length)
                {
                    Array.Resize(ref _dense, (int)Math.Min(DenseLimit, Math.Max(b + 1, (ulong)_dense.Length * 2)));
                }

                _dense[b] = register;
            }
            else
            {
                (_sparse ??= [])[b] = register;
            }
        }

        return register;
    }

    /// <summary>The register covering byte <paramref name="offset"/>, if any.</summary>
    public bool TryGetRegister(ulong offset, [NotNullWhen(true)] out Register? register)
    {
        register = Find(offset);
        return register is not null;
    }

    /// <summary>
    /// A guest read of <paramref name="size"/> bytes at <paramref name="offset"/>. Always <see cref="BusStatus.Ok"/>;
    /// an undefined offset or a size the register does not accept is reported and reads 0.
    /// </summary>
    public BusStatus Read(ulong offset, int size, out ulong value)
    {
        Register? r = Find(offset);
        if (r is null)
        {
            value = 0;
            Log.Report(DeviceName, $"read of {RegisterMapText.Bytes(size)} from undefined offset 0x{offset:x} returned 0");
            return BusStatus.Ok;
        }

        ulong rel = offset - r.Offset;
        if (!r.AcceptsSize(size) || (rel & (ulong)(size - 1)) != 0)
        {
            value = 0;
            Log.Report(DeviceName, $"read of {RegisterMapText.Bytes(size)} from offset 0x{offset:x} returned 0: {Rejection(r)}");
            return BusStatus.Ok;
        }

        value = r.Read((int)rel * 8, size);
        return BusStatus.Ok;
    }

    /// <summary>
    /// A guest write of the low <paramref name="size"/> bytes of <paramref name="value"/> at <paramref name="offset"/>.
    /// Always <see cref="BusStatus.Ok"/>; an undefined offset or a size the register does not accept is reported and ignored.
    /// </summary>
    public BusStatus Write(ulong offset, int size, ulong value)
    {
        Register? r = Find(offset);
        if (r is null)
        {
            Log.Report(DeviceName, $"write of 0x{value & RegisterMapText.Ones(size):x} ({RegisterMapText.Bytes(size)}) to undefined offset 0x{offset:x} ignored");
            return BusStatus.Ok;
        }

        ulong rel = offset - r.Offset;
        if (!r.AcceptsSize(size) || (rel & (ulong)(size - 1)) != 0)
        {
            Log.Report(DeviceName,
                $"write of 0x{value & RegisterMapText.Ones(size):x} ({RegisterMapText.Bytes(size)}) to offset 0x{offset:x} ignored: {Rejection(r)}");
            return BusStatus.Ok;
        }

        r.Write((int)rel * 8, size, value, offset);
        return BusStatus.Ok;
    }

    /// <summary>Returns every register to its reset value; no callback runs.</summary>
    public void Reset()
    {
        foreach (Register r in _registers)
        {
            r.Reset();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Register? Find(ulong offset)
    {
        Register?[] dense = _dense;
        if (offset < (ulong)dense.Length) return dense[offset];
        return _sparse is not null && _sparse.TryGetValue(offset, out Register? r) ? r : null;
    }

    private static string Rejection(Register r) =>
        r.AccessSizeMask == 1 << r.Width
            ? $"{r.Describe()} accepts only {r.Width}-byte accesses at its offset"
            : $"{r.Describe()} accepts {RegisterMapText.Sizes(r.AccessSizeMask)} accesses aligned to their size";
}
