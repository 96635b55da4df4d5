using System.Diagnostics.CodeAnalysis;

namespace HwMemModel.Devices.Common;

/// <summary>Throw helpers for host misuse (bad constructor or method arguments); never used for guest input.</summary>
internal static class DeviceThrow
{
    [DoesNotReturn]
    public static void Argument(string paramName, string message) => throw new ArgumentException(message, paramName);

    [DoesNotReturn]
    public static void OutOfRange(string paramName, object? actual, string message) =>
        throw new ArgumentOutOfRangeException(paramName, actual, message);

    /// <summary>Throws <see cref="ArgumentNullException"/> with a message naming the device and the argument.</summary>
    public static T NotNull<T>([NotNull] T? value, string paramName, string device)
        where T : class =>
        value ?? throw new ArgumentNullException(paramName, $"{device} needs a non-null {paramName}.");
}
