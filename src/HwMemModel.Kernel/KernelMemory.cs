using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>
/// Kernel-mode memory access for the model's own code (slab metadata in objects, memset, copying): every access is a
/// supervisor access by a CPU context through its MMU and TLB. A fault is a kernel oops: the model stops with
/// Linux's "BUG: unable to handle page fault" report.
/// </summary>
public sealed class KernelMemory
{
    private readonly Func<CpuContext> _cpu;

    internal KernelMemory(Func<CpuContext> cpu) => _cpu = cpu;

    /// <summary>The CPU context accesses run on (the current CPU).</summary>
    public CpuContext Cpu => _cpu();

    /// <summary>Reads 1, 2, 4 or 8 bytes.</summary>
    public ulong Read(ulong va, int size)
    {
        var r = Cpu.Mmu.Read(va, size, Privilege.Supervisor, out ulong v);
        Check(r, va, AccessKind.Read);
        return v;
    }

    /// <summary>Writes 1, 2, 4 or 8 bytes.</summary>
    public void Write(ulong va, int size, ulong value) => Check(Cpu.Mmu.Write(va, size, value, Privilege.Supervisor), va, AccessKind.Write);

    /// <summary>Copies from kernel virtual memory.</summary>
    public void ReadBytes(ulong va, Span<byte> destination) => Check(Cpu.Mmu.ReadBytes(va, destination, Privilege.Supervisor), va, AccessKind.Read);

    /// <summary>Copies to kernel virtual memory.</summary>
    public void WriteBytes(ulong va, ReadOnlySpan<byte> source) => Check(Cpu.Mmu.WriteBytes(va, source, Privilege.Supervisor), va, AccessKind.Write);

    /// <summary>memset.</summary>
    public void Fill(ulong va, byte value, ulong length)
    {
        // Zeroing (clear_page, __GFP_ZERO) is the common case: a shared zero buffer, no per-call fill.
        ReadOnlySpan<byte> chunk = value == 0 ? Zeros : Filled(value);
        for (ulong done = 0; done < length;)
        {
            int n = (int)Math.Min(4096UL, length - done);
            WriteBytes(va + done, chunk[..n]);
            done += (ulong)n;
        }
    }

    private static readonly byte[] Zeros = new byte[4096];

    private static byte[] Filled(byte value)
    {
        var b = new byte[4096];
        b.AsSpan().Fill(value);
        return b;
    }

    private void Check(AccessResult r, ulong va, AccessKind kind)
    {
        if (r.Fault.IsFault)
        {
            var f = r.Fault;
            string what = f.Kind == FaultKind.PageFault
                ? $"BUG: unable to handle page fault for address: {f.Address:x16}\n#PF: supervisor {(kind == AccessKind.Write ? "write" : "read")} access in kernel mode\n"
                  + $"#PF: error_code(0x{(uint)f.ErrorCode:x4}) - {((f.ErrorCode & PageFaultErrorCode.Present) != 0 ? "permissions violation" : "not-present page")}"
                : $"general protection fault, probably for non-canonical address 0x{va:x16}";
            throw new KernelStopException(what + "\n" + Cpu.Mmu.Explain(va, kind, Privilege.Supervisor));
        }
        if (r.BusStatus != BusStatus.Ok)
            throw new KernelStopException($"bus error ({r.BusStatus}) at kernel address 0x{va:x16}");
    }
}
