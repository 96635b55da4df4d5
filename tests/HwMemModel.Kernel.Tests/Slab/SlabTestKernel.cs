using HwMemModel.Machine;

namespace HwMemModel.Kernel.Tests.Slab;

/// <summary>Booted kernels for the slab tests.</summary>
internal static class SlabTestKernel
{
    internal const ulong MiB = 1UL << 20;

    /// <summary>A kernel on the default machine with 256 MiB of RAM.</summary>
    internal static Kernel Boot(KernelOptions? options = null, ulong ram = 256 * MiB)
        => Kernel.Boot(DefaultMachine.CreateBus(ram), options);

    /// <summary>The log lines added since <paramref name="from"/>.</summary>
    internal static string[] LogSince(this Kernel k, int from) => k.Log.Lines.Skip(from).ToArray();

    /// <summary>Reads <paramref name="length"/> bytes through the current CPU's MMU.</summary>
    internal static byte[] ReadKernel(this Kernel k, ulong va, int length)
    {
        var buf = new byte[length];
        k.Memory.ReadBytes(va, buf);
        return buf;
    }
}
