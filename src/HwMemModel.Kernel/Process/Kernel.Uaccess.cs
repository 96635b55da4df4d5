using System.Text;
using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

public sealed partial class Kernel
{
    /// <summary>
    /// copy_from_user: reads user memory of <paramref name="task"/> (whose mm must be loaded on the current CPU) as
    /// the kernel does — supervisor accesses with RFLAGS.AC set (STAC) so that SMAP allows them — and resolves page
    /// faults with the task's fault handler. False (EFAULT) when part of the range is outside user space or not
    /// accessible.
    /// </summary>
    public bool CopyFromUser(TaskStruct task, ulong va, Span<byte> destination)
    {
        byte[] buffer = new byte[destination.Length];
        if (!UserAccess(task, va, buffer.Length, write: false, (mmu, at, off, n) => mmu.ReadBytes(at, buffer.AsSpan(off, n), Privilege.Supervisor))) return false;
        buffer.CopyTo(destination);
        return true;
    }

    /// <summary>copy_to_user: as <see cref="CopyFromUser"/>, for writes (copy-on-write faults are resolved).</summary>
    public bool CopyToUser(TaskStruct task, ulong va, ReadOnlySpan<byte> source)
    {
        byte[] copy = source.ToArray();
        return UserAccess(task, va, copy.Length, write: true, (mmu, at, off, n) => mmu.WriteBytes(at, copy.AsSpan(off, n), Privilege.Supervisor));
    }

    /// <summary>get_user of a 64-bit value; null on EFAULT.</summary>
    public ulong? GetUser64(TaskStruct task, ulong va)
    {
        Span<byte> b = stackalloc byte[8];
        return CopyFromUser(task, va, b) ? BitConverter.ToUInt64(b) : null;
    }

    /// <summary>put_user of a 64-bit value; false on EFAULT.</summary>
    public bool PutUser64(TaskStruct task, ulong va, ulong value) => CopyToUser(task, va, BitConverter.GetBytes(value));

    /// <summary>strncpy_from_user: a NUL-terminated string of at most <paramref name="max"/> bytes; null on EFAULT, "" + error ENAMETOOLONG when too long.</summary>
    public (string? Text, int Error) StrncpyFromUser(TaskStruct task, ulong va, int max = 4096)
    {
        var bytes = new List<byte>();
        Span<byte> chunk = stackalloc byte[64];
        while (bytes.Count < max)
        {
            // Read up to the end of the page so that a string ending just before an unmapped page is fine.
            int n = (int)Math.Min((ulong)chunk.Length, 4096 - ((va + (ulong)bytes.Count) & 0xFFF));
            if (!CopyFromUser(task, va + (ulong)bytes.Count, chunk[..n])) return (null, -Errno.EFAULT);
            int z = chunk[..n].IndexOf((byte)0);
            if (z >= 0)
            {
                bytes.AddRange(chunk[..z].ToArray());
                return bytes.Count > max ? (null, -Errno.ENAMETOOLONG) : (Encoding.UTF8.GetString(bytes.ToArray()), 0);
            }
            bytes.AddRange(chunk[..n].ToArray());
        }
        return (null, -Errno.ENAMETOOLONG);
    }

    private delegate AccessResult PageAccess(Mmu.Mmu mmu, ulong va, int offset, int length);

    private bool UserAccess(TaskStruct task, ulong va, int length, bool write, PageAccess access)
    {
        if (length == 0) return true;
        if (va >= TaskSize || (ulong)length > TaskSize - va) return false; // access_ok
        var cpu = CurrentCpu;
        bool ac = cpu.AlignmentCheck;
        cpu.AlignmentCheck = true; // stac
        try
        {
            for (int done = 0; done < length;)
            {
                ulong at = va + (ulong)done;
                int n = (int)Math.Min((ulong)(length - done), 4096 - (at & 0xFFF));
                for (int attempt = 0; ; attempt++)
                {
                    var r = access(cpu.Mmu, at, done, n);
                    if (!r.Fault.IsFault) break;
                    if (r.Fault.Kind != FaultKind.PageFault || attempt == 3) return false;
                    var code = r.Fault.ErrorCode | (write ? PageFaultErrorCode.Write : 0);
                    if (HandleUserFault(task, r.Fault.Address, code) != UserFaultResult.Handled) return false;
                }
                done += n;
            }
            return true;
        }
        finally
        {
            cpu.AlignmentCheck = ac; // clac
        }
    }
}
