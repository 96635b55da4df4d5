using System.Diagnostics.CodeAnalysis;

namespace HwMemModel.Bus;

/// <summary>Throw helpers kept out of hot paths so that callers stay small and inlinable.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void ThrowAccessSize(int size, string paramName = "size") =>
        throw new ArgumentOutOfRangeException(paramName, size,
            $"Access size {size} is not supported: only 1, 2, 4 or 8 bytes are allowed.");

    [DoesNotReturn]
    public static void ThrowPortAccessSize(int size) =>
        throw new ArgumentOutOfRangeException("size", size,
            $"Port access size {size} is not supported: only 1, 2 or 4 bytes are allowed.");

    [DoesNotReturn]
    public static void ThrowWrap(ulong pa, long length, string paramName) =>
        throw new ArgumentOutOfRangeException(paramName,
            $"An access of {length} bytes at {Hex.Format(pa)} wraps past 2^64; split the access at the top of the address space.");

    [DoesNotReturn]
    public static void ThrowArgument(string message, string? paramName = null) =>
        throw new ArgumentException(message, paramName);

    [DoesNotReturn]
    public static void ThrowOutOfRange(string paramName, string message) =>
        throw new ArgumentOutOfRangeException(paramName, message);
}

/// <summary>Hexadecimal formatting used in messages and listings.</summary>
internal static class Hex
{
    public static string Format(ulong value) => "0x" + value.ToString("x");

    public static string Range(ulong first, ulong last) => $"[{Format(first)}-{Format(last)}]";
}
