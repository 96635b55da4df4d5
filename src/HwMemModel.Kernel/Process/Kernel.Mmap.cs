using HwMemModel.Kernel.Process;

namespace HwMemModel.Kernel;

/// <summary>mmap's flag and protection values (include/uapi/asm-generic/mman*.h).</summary>
public static class Mman
{
    /// <summary>PROT_READ.</summary>
    public const int ProtRead = 1;
    /// <summary>PROT_WRITE.</summary>
    public const int ProtWrite = 2;
    /// <summary>PROT_EXEC.</summary>
    public const int ProtExec = 4;
    /// <summary>MAP_SHARED.</summary>
    public const int MapShared = 0x01;
    /// <summary>MAP_PRIVATE.</summary>
    public const int MapPrivate = 0x02;
    /// <summary>MAP_SHARED_VALIDATE.</summary>
    public const int MapSharedValidate = 0x03;
    /// <summary>MAP_FIXED.</summary>
    public const int MapFixed = 0x10;
    /// <summary>MAP_ANONYMOUS.</summary>
    public const int MapAnonymous = 0x20;
    /// <summary>MAP_GROWSDOWN.</summary>
    public const int MapGrowsDown = 0x100;
    /// <summary>MAP_DENYWRITE (ignored).</summary>
    public const int MapDenyWrite = 0x800;
    /// <summary>MAP_EXECUTABLE (ignored).</summary>
    public const int MapExecutable = 0x1000;
    /// <summary>MAP_LOCKED.</summary>
    public const int MapLocked = 0x2000;
    /// <summary>MAP_NORESERVE.</summary>
    public const int MapNoReserve = 0x4000;
    /// <summary>MAP_POPULATE.</summary>
    public const int MapPopulate = 0x8000;
    /// <summary>MAP_NONBLOCK.</summary>
    public const int MapNonBlock = 0x10000;
    /// <summary>MAP_STACK.</summary>
    public const int MapStack = 0x20000;
    /// <summary>MAP_HUGETLB.</summary>
    public const int MapHugeTlb = 0x40000;
    /// <summary>MAP_FIXED_NOREPLACE.</summary>
    public const int MapFixedNoReplace = 0x100000;
    /// <summary>MADV_NORMAL.</summary>
    public const int MadvNormal = 0;
    /// <summary>MADV_RANDOM.</summary>
    public const int MadvRandom = 1;
    /// <summary>MADV_SEQUENTIAL.</summary>
    public const int MadvSequential = 2;
    /// <summary>MADV_WILLNEED.</summary>
    public const int MadvWillNeed = 3;
    /// <summary>MADV_DONTNEED.</summary>
    public const int MadvDontNeed = 4;
    /// <summary>MADV_FREE.</summary>
    public const int MadvFree = 8;
}

public sealed partial class Kernel
{
    /// <summary>Pages of RAM the overcommit heuristic allows one mapping to reserve (totalram_pages; no swap).</summary>
    private long TotalRamPages => Pages.ManagedPageCount;

    /// <summary>
    /// do_mmap: maps [addr, addr+len) (address chosen top-down below mmap_base unless MAP_FIXED or a usable hint),
    /// anonymous or from <paramref name="file"/>, private or shared. Returns the address or a negative errno, with
    /// Linux's rules: EINVAL for a zero length, an unaligned offset or fixed address, or neither/both of
    /// MAP_SHARED/MAP_PRIVATE; ENOMEM when the range leaves user space, no gap is large enough, or a private writable
    /// (or shared anonymous) mapping asks for more than RAM (the overcommit heuristic); EACCES for a writable shared mapping of a read-only
    /// file; EEXIST for MAP_FIXED_NOREPLACE over a mapping.
    /// </summary>
    public long DoMmap(TaskStruct task, ulong addr, ulong len, int prot, int flags, OpenFile? file, ulong offset)
    {
        var mm = task.Mm!;
        if (len == 0) return -Errno.EINVAL;
        if ((offset & PageMask) != 0) return -Errno.EINVAL;
        ulong size = (len + PageMask) & ~PageMask;
        if (size == 0 || size > TaskSize) return -Errno.ENOMEM;
        int type = flags & Mman.MapSharedValidate;
        if (type == 0) return -Errno.EINVAL;
        bool shared = type != Mman.MapPrivate;
        bool anon = (flags & Mman.MapAnonymous) != 0;
        if ((flags & Mman.MapHugeTlb) != 0) return -Errno.EINVAL;
        if ((prot & ~(Mman.ProtRead | Mman.ProtWrite | Mman.ProtExec)) != 0) return -Errno.EINVAL;
        if (!anon)
        {
            if (file is null) return -Errno.EBADF;
            if (file.File is null) return -Errno.ENODEV; // the host streams cannot be mapped
            if (file.File.IsDirectory) return -Errno.ENODEV;
            if (shared && (prot & Mman.ProtWrite) != 0) return -Errno.EACCES; // the sandbox is read-only
        }
        if (offset / 4096 + size / 4096 < offset / 4096) return -Errno.EOVERFLOW;
        bool fixedNoReplace = (flags & Mman.MapFixedNoReplace) != 0;
        bool fixedAddr = (flags & Mman.MapFixed) != 0 || fixedNoReplace;
        if (fixedAddr)
        {
            if ((addr & PageMask) != 0) return -Errno.EINVAL;
            if (addr > TaskSize - size) return -Errno.ENOMEM;
            if (addr < MmapMinAddr) return -Errno.EPERM;
            if (fixedNoReplace && mm.Vmas.Any(v => v.Start < addr + size && v.End > addr)) return -Errno.EEXIST;
        }
        else
        {
            long found = GetUnmappedArea(mm, addr, size);
            if (found < 0) return found;
            addr = (ulong)found;
        }
        var vmFlags = ProtToVmFlags(prot) | VmaFlags.MayRead | VmaFlags.MayWrite | VmaFlags.MayExec;
        if (shared) vmFlags |= VmaFlags.Shared | VmaFlags.MayShare;
        if ((flags & Mman.MapGrowsDown) != 0) vmFlags |= VmaFlags.GrowsDown;
        if ((flags & Mman.MapNoReserve) != 0) vmFlags |= VmaFlags.NoReserve;
        bool account = !shared && (prot & Mman.ProtWrite) != 0 && (flags & Mman.MapNoReserve) == 0;
        if (account)
        {
            // __vm_enough_memory with overcommit_memory=0: a single request larger than RAM fails.
            if ((long)(size >> 12) > TotalRamPages) return -Errno.ENOMEM;
            vmFlags |= VmaFlags.Account;
        }
        // shmem_acct_size: a shared anonymous mapping is charged to its shmem object, with the same heuristic.
        if (anon && shared && (flags & Mman.MapNoReserve) == 0 && (long)(size >> 12) > TotalRamPages) return -Errno.ENOMEM;
        if (fixedAddr) UnmapRange(mm, addr, addr + size);
        VmArea v;
        try
        {
            v = NewVma(mm, addr, addr + size, vmFlags, anon ? null : file!.File, anon ? 0 : offset >> 12);
        }
        catch (OutOfMemoryInKernel) { return -Errno.ENOMEM; }
        if (account) mm.Committed += (long)(size >> 12);
        if (anon && shared) v.Shmem = new SharedAnon { Users = 1 };
        else if (anon) v = MergeVma(mm, v);
        if ((flags & Mman.MapPopulate) != 0) Populate(task, addr, addr + size, (prot & Mman.ProtWrite) != 0);
        return (long)addr;
    }

    private void Populate(TaskStruct task, ulong start, ulong end, bool write)
    {
        for (ulong va = start; va < end; va += 4096)
            if (HandleUserFault(task, va, write ? Mmu.PageFaultErrorCode.Write : 0) != UserFaultResult.Handled) break;
    }

    internal static VmaFlags ProtToVmFlags(int prot) =>
        ((prot & Mman.ProtRead) != 0 ? VmaFlags.Read : 0) | ((prot & Mman.ProtWrite) != 0 ? VmaFlags.Write : 0)
        | ((prot & Mman.ProtExec) != 0 ? VmaFlags.Exec : 0);

    /// <summary>
    /// arch_get_unmapped_area_topdown: the hint when the range is free, else the highest gap below mmap_base (and above
    /// mmap_min_addr) that fits, keeping stack_guard_gap below a VM_GROWSDOWN VMA; ENOMEM when none.
    /// </summary>
    internal static long GetUnmappedArea(MmStruct mm, ulong hint, ulong size)
    {
        if (size > TaskSize - MmapMinAddr) return -Errno.ENOMEM;
        if (hint != 0)
        {
            hint = (hint + PageMask) & ~PageMask;
            if (hint <= TaskSize - size && hint >= MmapMinAddr && IsFree(mm, hint, size)) return (long)hint;
        }
        ulong top = mm.MmapBase;
        for (int i = mm.Vmas.Count - 1; i >= -1; i--)
        {
            ulong gapEnd = i + 1 < mm.Vmas.Count ? GapEndBelow(mm.Vmas[i + 1]) : TaskSize;
            ulong gapStart = i >= 0 ? mm.Vmas[i].End : MmapMinAddr;
            if (gapEnd > top) gapEnd = top;
            if (gapEnd > gapStart && gapEnd - gapStart >= size) return (long)(gapEnd - size);
        }
        return -Errno.ENOMEM;
    }

    private static ulong GapEndBelow(VmArea next) =>
        (next.Flags & VmaFlags.GrowsDown) != 0 ? (next.Start > StackGuardGap ? next.Start - StackGuardGap : 0) : next.Start;

    private static bool IsFree(MmStruct mm, ulong start, ulong size)
    {
        foreach (var v in mm.Vmas)
        {
            ulong lo = v.Start, hi = v.End;
            if ((v.Flags & VmaFlags.GrowsDown) != 0) lo = lo > StackGuardGap ? lo - StackGuardGap : 0;
            if (lo < start + size && hi > start) return false;
        }
        return true;
    }

    /// <summary>munmap: EINVAL for an unaligned address, a zero length or a range outside user space; 0 otherwise (also when nothing was mapped).</summary>
    public long DoMunmap(TaskStruct task, ulong addr, ulong len)
    {
        if ((addr & PageMask) != 0 || len == 0 || addr > TaskSize || len > TaskSize - addr) return -Errno.EINVAL;
        ulong end = addr + ((len + PageMask) & ~PageMask);
        UnmapRange(task.Mm!, addr, end);
        return 0;
    }

    /// <summary>
    /// mprotect: changes the protection of [addr, addr+len), splitting VMAs at the edges and rewriting the present
    /// entries (change_protection): write permission is given only to exclusively owned anonymous pages (others keep
    /// faulting into copy-on-write), NX follows PROT_EXEC, PROT_NONE entries keep the page with P=0. EINVAL for an
    /// unaligned address or unknown bits, ENOMEM when part of the range is not mapped, EACCES for write on a shared
    /// mapping of a read-only file.
    /// </summary>
    public long DoMprotect(TaskStruct task, ulong addr, ulong len, int prot)
    {
        var mm = task.Mm!;
        if ((addr & PageMask) != 0) return -Errno.EINVAL;
        if ((prot & ~(Mman.ProtRead | Mman.ProtWrite | Mman.ProtExec)) != 0) return -Errno.EINVAL;
        if (len == 0) return 0;
        ulong end = addr + ((len + PageMask) & ~PageMask);
        if (end <= addr || end > TaskSize) return -Errno.ENOMEM;
        // The range must be covered without holes.
        ulong at = addr;
        foreach (var v in mm.Vmas)
        {
            if (v.End <= at) continue;
            if (v.Start > at) break;
            if (v.IsShared && v.File is not null && (prot & Mman.ProtWrite) != 0) return -Errno.EACCES;
            at = v.End;
            if (at >= end) break;
        }
        if (at < end) return -Errno.ENOMEM;
        var newAccess = ProtToVmFlags(prot);
        foreach (var v0 in mm.Vmas.ToArray())
        {
            if (v0.End <= addr || v0.Start >= end) continue;
            var v = v0;
            if (v.Start < addr) v = SplitVma(mm, v, addr);
            if (v.End > end) SplitVma(mm, v, end);
            var old = v.Flags;
            v.Flags = (v.Flags & ~VmaFlags.AccessMask) | newAccess;
            bool becameWritable = (newAccess & VmaFlags.Write) != 0 && (old & VmaFlags.Write) == 0;
            if (becameWritable && !v.IsShared && (v.Flags & VmaFlags.Account) == 0)
            {
                v.Flags |= VmaFlags.Account;
                mm.Committed += (long)(v.Size >> 12);
            }
            WriteVmaFields(v);
            ChangeProtection(mm, v);
            MergeVma(mm, v);
        }
        FlushTlbMmRange(mm, addr, end);
        return 0;
    }

    private void ChangeProtection(MmStruct mm, VmArea v)
    {
        for (ulong va = v.Start; va < v.End;)
        {
            ulong ptePa = UserPteOrNext(mm, va, out ulong next);
            if (ptePa == 0) { va = next; continue; }
            ulong pte = ReadPhys(ptePa);
            if ((pte & (PtePresent | PteProtNone)) != 0)
            {
                ulong pa = pte & PteAddr;
                bool exclusive = v.IsShared || (pa != User.ZeroPage && KindOf(pa) == PageKind.Anon && User.MapCount[pa >> 12] == 1);
                bool writable = (v.Flags & VmaFlags.Write) != 0 && exclusive && ((pte & PteDirty) != 0 || v.IsShared);
                WritePhys(ptePa, pa | PteProtection(v.Flags, writable) | (pte & PteDirty));
            }
            va += 4096;
        }
    }

    /// <summary>
    /// brk: moves the end of the heap. Below start_brk, or when the new end would run into the next mapping (with
    /// the stack guard gap) or past RAM for the overcommit check, the current break is returned unchanged; shrinking
    /// unmaps. The heap VMA is named [heap].
    /// </summary>
    public ulong DoBrk(TaskStruct task, ulong requested)
    {
        var mm = task.Mm!;
        if (requested < mm.StartBrk || requested > TaskSize) return mm.Brk;
        ulong newEnd = (requested + PageMask) & ~PageMask, oldEnd = (mm.Brk + PageMask) & ~PageMask;
        if (newEnd == oldEnd) { mm.Brk = requested; return requested; }
        if (newEnd < oldEnd)
        {
            UnmapRange(mm, newEnd, oldEnd);
            mm.Brk = requested;
            return requested;
        }
        var next = FindVma(mm, oldEnd);
        if (next is not null && next.Start < newEnd + ((next.Flags & VmaFlags.GrowsDown) != 0 ? StackGuardGap : 0)) return mm.Brk;
        if ((long)((newEnd - oldEnd) >> 12) > TotalRamPages) return mm.Brk;
        var heap = mm.Vmas.FirstOrDefault(v => v.Name == "[heap]" && v.End == oldEnd);
        try
        {
            if (heap is not null) { heap.End = newEnd; WriteVmaFields(heap); }
            else NewVma(mm, oldEnd, newEnd, VmaFlags.Read | VmaFlags.Write | VmaFlags.MayRead | VmaFlags.MayWrite | VmaFlags.MayExec | VmaFlags.Account, name: "[heap]");
        }
        catch (OutOfMemoryInKernel) { return mm.Brk; }
        mm.Committed += (long)((newEnd - oldEnd) >> 12);
        mm.Brk = requested;
        return requested;
    }

    /// <summary>
    /// madvise: MADV_DONTNEED drops the pages of the range (the next touch gets a zero page or re-reads the file);
    /// NORMAL, RANDOM, SEQUENTIAL, WILLNEED and FREE are accepted (FREE is lazy: pages stay until memory is short,
    /// which the model never is). EINVAL for an unaligned address or unknown advice, ENOMEM when part of the range is
    /// unmapped.
    /// </summary>
    public long DoMadvise(TaskStruct task, ulong addr, ulong len, int advice)
    {
        var mm = task.Mm!;
        if ((addr & PageMask) != 0) return -Errno.EINVAL;
        if (advice is not (Mman.MadvNormal or Mman.MadvRandom or Mman.MadvSequential or Mman.MadvWillNeed or Mman.MadvDontNeed or Mman.MadvFree))
            return -Errno.EINVAL;
        ulong end = addr + ((len + PageMask) & ~PageMask);
        if (end < addr) return -Errno.EINVAL;
        if (len == 0) return 0;
        bool hole = false;
        ulong at = addr;
        foreach (var v in mm.Vmas)
        {
            if (v.End <= at) continue;
            if (v.Start >= end) break;
            if (v.Start > at) hole = true;
            if (advice == Mman.MadvDontNeed) ZapRange(mm, Math.Max(v.Start, addr), Math.Min(v.End, end), flush: false);
            at = v.End;
        }
        if (at < end) hole = true;
        if (advice == Mman.MadvDontNeed) FlushTlbMmRange(mm, addr, end);
        return hole ? -Errno.ENOMEM : 0;
    }
}
