using System.Buffers.Binary;
using System.Numerics;

namespace HwMemModel.Bus;

/// <summary>
/// Applies a device's <see cref="IMmioDevice.Valid"/> and <see cref="IMmioDevice.Impl"/> constraints, after QEMU's
/// memory_region_access_valid and access_with_adjusted_size. Shared by the memory bus and the port bus.
/// </summary>
internal static class MmioDispatch
{
    public static ulong Ones(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    /// <summary>Whether <paramref name="constraints"/> accept an access of <paramref name="size"/> bytes at <paramref name="offset"/>.</summary>
    public static bool Accepts(in AccessConstraints constraints, ulong offset, int size) =>
        size >= constraints.MinSize && size <= constraints.MaxSize
        && (constraints.Unaligned || (offset & (ulong)(size - 1)) == 0);

    /// <summary>One access of 1, 2, 4 or 8 bytes: rejected by Valid with DeviceError (all ones), else adjusted to Impl.</summary>
    public static BusStatus Read(IMmioDevice device, ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        if (!Accepts(device.Valid, offset, size))
        {
            value = Ones(size);
            return BusStatus.DeviceError;
        }

        AccessConstraints impl = device.Impl;
        int unit = Math.Clamp(size, impl.MinSize, impl.MaxSize);
        bool aligned = (offset & (ulong)(unit - 1)) == 0;
        if (unit == size && (aligned || impl.Unaligned))
        {
            BusStatus status = device.Read(offset, size, out value, attributes);
            value = status == BusStatus.Ok ? value & Ones(size) : Ones(size);
            return status;
        }

        BusStatus result = BusStatus.Ok;
        ulong end = offset + (ulong)size;
        value = 0;
        if (impl.Unaligned)
        {
            // QEMU: units of `unit` bytes starting at the access's own offset, ascending.
            for (int i = 0; i < size; i += unit)
            {
                BusStatus status = device.Read(offset + (ulong)i, unit, out ulong piece, attributes);
                piece = status == BusStatus.Ok ? piece & Ones(unit) : Ones(unit);
                result = Worst(result, status);
                value |= piece << (i * 8);
            }
        }
        else
        {
            // Aligned units covering the access, ascending; each contributes the bytes it shares with the access.
            for (ulong unitBase = offset & ~(ulong)(unit - 1); unitBase < end; unitBase += (ulong)unit)
            {
                BusStatus status = device.Read(unitBase, unit, out ulong piece, attributes);
                piece = status == BusStatus.Ok ? piece & Ones(unit) : Ones(unit);
                result = Worst(result, status);
                ulong first = Math.Max(unitBase, offset);
                ulong last = Math.Min(unitBase + (ulong)unit, end);
                ulong bytes = (piece >> (int)((first - unitBase) * 8)) & Ones((int)(last - first));
                value |= bytes << (int)((first - offset) * 8);
            }
        }

        value &= Ones(size);
        return result;
    }

    /// <summary>
    /// One write of 1, 2, 4 or 8 bytes: rejected by Valid with DeviceError (dropped), else adjusted to Impl.
    /// Widened writes follow QEMU: the wider unit is written with the value shifted into place and zeros in the
    /// other bytes; no read-modify-write.
    /// </summary>
    public static BusStatus Write(IMmioDevice device, ulong offset, int size, ulong value, BusAttributes attributes)
    {
        if (!Accepts(device.Valid, offset, size))
        {
            return BusStatus.DeviceError;
        }

        value &= Ones(size);
        AccessConstraints impl = device.Impl;
        int unit = Math.Clamp(size, impl.MinSize, impl.MaxSize);
        bool aligned = (offset & (ulong)(unit - 1)) == 0;
        if (unit == size && (aligned || impl.Unaligned))
        {
            return device.Write(offset, size, value, attributes);
        }

        BusStatus result = BusStatus.Ok;
        ulong end = offset + (ulong)size;
        if (impl.Unaligned)
        {
            for (int i = 0; i < size; i += unit)
            {
                ulong piece = (value >> (i * 8)) & Ones(unit);
                result = Worst(result, device.Write(offset + (ulong)i, unit, piece, attributes));
            }
        }
        else
        {
            for (ulong unitBase = offset & ~(ulong)(unit - 1); unitBase < end; unitBase += (ulong)unit)
            {
                ulong first = Math.Max(unitBase, offset);
                ulong last = Math.Min(unitBase + (ulong)unit, end);
                ulong bytes = (value >> (int)((first - offset) * 8)) & Ones((int)(last - first));
                ulong piece = bytes << (int)((first - unitBase) * 8);
                result = Worst(result, device.Write(unitBase, unit, piece, attributes));
            }
        }

        return result;
    }

    /// <summary>
    /// A byte range inside one device window, cut as QEMU's memory_access_size does: pieces no larger than
    /// Valid.MaxSize, naturally aligned when the device refuses unaligned accesses, largest power of two first.
    /// </summary>
    public static BusStatus ReadBytes(IMmioDevice device, ulong offset, Span<byte> destination, BusAttributes attributes)
    {
        BusStatus result = BusStatus.Ok;
        Span<byte> buffer = stackalloc byte[8];
        int done = 0;
        while (done < destination.Length)
        {
            ulong at = offset + (ulong)done;
            int size = PieceSize(device.Valid, at, destination.Length - done);
            result = Worst(result, Read(device, at, size, out ulong value, attributes));
            BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
            buffer[..size].CopyTo(destination[done..]);
            done += size;
        }

        return result;
    }

    /// <summary>The write counterpart of <see cref="ReadBytes"/>.</summary>
    public static BusStatus WriteBytes(IMmioDevice device, ulong offset, ReadOnlySpan<byte> source, BusAttributes attributes)
    {
        BusStatus result = BusStatus.Ok;
        Span<byte> buffer = stackalloc byte[8];
        int done = 0;
        while (done < source.Length)
        {
            ulong at = offset + (ulong)done;
            int size = PieceSize(device.Valid, at, source.Length - done);
            buffer.Clear();
            source.Slice(done, size).CopyTo(buffer);
            result = Worst(result, Write(device, at, size, BinaryPrimitives.ReadUInt64LittleEndian(buffer), attributes));
            done += size;
        }

        return result;
    }

    private static int PieceSize(in AccessConstraints valid, ulong offset, int remaining)
    {
        int max = valid.MaxSize;
        if (!valid.Unaligned && offset != 0)
        {
            ulong alignment = offset & (~offset + 1);
            if (alignment < (ulong)max)
            {
                max = (int)alignment;
            }
        }

        int size = Math.Min(remaining, max);
        return 1 << BitOperations.Log2((uint)size);
    }

    public static BusStatus Worst(BusStatus a, BusStatus b) => a >= b ? a : b;

    /// <summary>Throws when constraints are not sizes 1, 2, 4 or 8 with MinSize ≤ MaxSize.</summary>
    public static void Validate(in AccessConstraints constraints, string owner, string which, string paramName)
    {
        if (!IsAccessSize(constraints.MinSize))
        {
            ThrowHelper.ThrowArgument(
                $"{owner}: {which}.MinSize {constraints.MinSize} is not a power of two in 1..8; allowed sizes are 1, 2, 4 and 8.",
                paramName);
        }

        if (!IsAccessSize(constraints.MaxSize))
        {
            ThrowHelper.ThrowArgument(
                $"{owner}: {which}.MaxSize {constraints.MaxSize} is not a power of two in 1..8; allowed sizes are 1, 2, 4 and 8.",
                paramName);
        }

        if (constraints.MinSize > constraints.MaxSize)
        {
            ThrowHelper.ThrowArgument(
                $"{owner}: {which}.MinSize {constraints.MinSize} is greater than {which}.MaxSize {constraints.MaxSize}; MinSize must not exceed MaxSize.",
                paramName);
        }
    }

    public static bool IsAccessSize(int size) => size is 1 or 2 or 4 or 8;
}
