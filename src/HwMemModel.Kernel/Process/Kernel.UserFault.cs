using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <summary>The outcome of a user page fault.</summary>
public enum UserFaultResult
{
    /// <summary>The fault was resolved; the access is retried.</summary>
    Handled,
    /// <summary>No VMA covers the address (SIGSEGV, SEGV_MAPERR).</summary>
    MapError,
    /// <summary>The VMA forbids the access (SIGSEGV, SEGV_ACCERR).</summary>
    AccessError,
    /// <summary>No memory for the page or its tables (the OOM killer's SIGKILL).</summary>
    OutOfMemory,
}

public sealed partial class Kernel
{
    /// <summary>
    /// do_user_addr_fault and handle_mm_fault for <paramref name="task"/>: finds the VMA (growing the stack below a
    /// VM_GROWSDOWN VMA within RLIMIT_STACK), checks the access against its flags, then resolves the fault: the shared
    /// zero page for a read of untouched anonymous memory, a zeroed page from the buddy allocator for a write, a page
    /// read from the file for a file mapping, and copy-on-write (or reuse of an exclusive page) for a write to a
    /// read-only PTE of a writable private VMA. Every entry it writes is a real PTE in the process's page tables.
    /// </summary>
    public UserFaultResult HandleUserFault(TaskStruct task, ulong addr, PageFaultErrorCode error)
    {
        var mm = task.Mm ?? throw new InvalidOperationException($"{task} has no address space.");
        if ((error & PageFaultErrorCode.ReservedBit) != 0 || addr >= TaskSize) return UserFaultResult.MapError;
        var vma = FindVma(mm, addr);
        if (vma is null) return UserFaultResult.MapError;
        if (vma.Start > addr)
        {
            if ((vma.Flags & VmaFlags.GrowsDown) == 0 || !ExpandStack(mm, vma, addr)) return UserFaultResult.MapError;
        }
        bool write = (error & PageFaultErrorCode.Write) != 0;
        bool fetch = (error & PageFaultErrorCode.InstructionFetch) != 0;
        if ((error & PageFaultErrorCode.ProtectionKey) != 0) return UserFaultResult.AccessError;
        if (write ? (vma.Flags & VmaFlags.Write) == 0
            : fetch ? (vma.Flags & VmaFlags.Exec) == 0
            : (vma.Flags & VmaFlags.AccessMask) == 0)
            return UserFaultResult.AccessError;
        try
        {
            return HandleMmFault(task, mm, vma, addr & ~PageMask, write);
        }
        catch (OutOfMemoryInKernel)
        {
            return UserFaultResult.OutOfMemory;
        }
    }

    private bool ExpandStack(MmStruct mm, VmArea vma, ulong addr)
    {
        ulong newStart = addr & ~PageMask;
        if (vma.End - newStart > StackRlimit) return false;
        int i = mm.Vmas.IndexOf(vma);
        if (i > 0 && mm.Vmas[i - 1].End + StackGuardGap > newStart) return false;
        if ((vma.Flags & VmaFlags.Account) != 0) mm.Committed += (long)((vma.Start - newStart) >> 12);
        vma.Start = newStart;
        WriteVmaFields(vma);
        return true;
    }

    private UserFaultResult HandleMmFault(TaskStruct task, MmStruct mm, VmArea vma, ulong va, bool write)
    {
        ulong ptePa = UserPte(mm, va, allocate: true);
        if (ptePa == 0) return UserFaultResult.OutOfMemory;
        ulong pte = ReadPhys(ptePa);
        if ((pte & PtePresent) == 0)
        {
            if ((pte & PteProtNone) != 0)
            {
                // A PROT_NONE entry under a VMA that now allows the access cannot happen (mprotect rewrites entries);
                // treat it as the page it holds.
                WritePhys(ptePa, (pte & PteAddr) | PteProtection(vma.Flags, write && (vma.Flags & VmaFlags.Write) != 0) | (write ? PteDirty : 0));
                task.MinorFaults++;
                return UserFaultResult.Handled;
            }
            return FaultNotPresent(task, mm, vma, va, ptePa, write);
        }
        if (write && (pte & PteRw) == 0)
        {
            DoWpPage(task, mm, vma, va, ptePa, pte);
            return UserFaultResult.Handled;
        }
        // Spurious: the entry already allows the access (another path fixed it, or a stale TLB entry): flush and retry.
        FlushTlbMmRange(mm, va, va + 4096);
        task.MinorFaults++;
        return UserFaultResult.Handled;
    }

    private UserFaultResult FaultNotPresent(TaskStruct task, MmStruct mm, VmArea vma, ulong va, ulong ptePa, bool write)
    {
        bool vmaWrite = (vma.Flags & VmaFlags.Write) != 0;
        ulong index = ((va - vma.Start) >> 12) + vma.PageOffset;
        if (vma.Shmem is { } shm)
        {
            if (!shm.Pages.TryGetValue(index, out ulong pa))
            {
                pa = AllocUserPage(PageKind.Shmem, zero: true, "shmem_alloc_page") ?? throw new OutOfMemoryInKernel();
                shm.Pages[index] = pa; // the object's own reference
            }
            GetUserPage(pa);
            SetUserPte(mm, ptePa, pa, PteProtection(vma.Flags, vmaWrite) | (write ? PteDirty : 0));
            task.MinorFaults++;
            return UserFaultResult.Handled;
        }
        if (vma.File is { } file)
        {
            // A file page: read from the sandbox (a major fault). A write to a private mapping copies it into an
            // anonymous page (do_cow_fault); otherwise the page is mapped read-only.
            bool cow = write && !vma.IsShared;
            ulong pa = AllocUserPage(cow ? PageKind.Anon : PageKind.File, zero: false, cow ? "do_cow_fault" : "filemap_fault") ?? throw new OutOfMemoryInKernel();
            Span<byte> page = stackalloc byte[4096];
            page.Clear();
            file.Read((long)(index << 12), page);
            Memory.WriteBytes(PhysToVirt(pa), page);
            SetUserPte(mm, ptePa, pa, PteProtection(vma.Flags, cow) | (cow ? PteDirty : 0));
            task.MajorFaults++;
            return UserFaultResult.Handled;
        }
        // Anonymous private memory: a read maps the shared zero page read-only; a write gets a zeroed page.
        if (!write)
        {
            SetUserPte(mm, ptePa, User.ZeroPage, PteProtection(vma.Flags, writable: false));
        }
        else
        {
            ulong pa = AllocUserPage(PageKind.Anon, zero: true, "do_anonymous_page") ?? throw new OutOfMemoryInKernel();
            SetUserPte(mm, ptePa, pa, PteProtection(vma.Flags, vmaWrite) | PteDirty);
        }
        task.MinorFaults++;
        return UserFaultResult.Handled;
    }

    /// <summary>do_wp_page: a write to a present read-only entry of a writable VMA.</summary>
    private void DoWpPage(TaskStruct task, MmStruct mm, VmArea vma, ulong va, ulong ptePa, ulong pte)
    {
        ulong old = pte & PteAddr;
        var kind = KindOf(old);
        task.MinorFaults++;
        if (vma.IsShared || (old != User.ZeroPage && kind == PageKind.Anon && User.MapCount[old >> 12] == 1))
        {
            // wp_page_reuse: the only mapping of an anonymous page (or a shared mapping) becomes writable in place.
            WritePhys(ptePa, pte | PteRw | PteDirty);
        }
        else
        {
            // wp_page_copy: a new anonymous page with the old contents (zeroed for the zero page).
            ulong pa = AllocUserPage(PageKind.Anon, zero: old == User.ZeroPage, "wp_page_copy") ?? throw new OutOfMemoryInKernel();
            if (old != User.ZeroPage)
            {
                Span<byte> page = stackalloc byte[4096];
                Memory.ReadBytes(PhysToVirt(old), page);
                Memory.WriteBytes(PhysToVirt(pa), page);
            }
            ClearUserPte(mm, ptePa, pte);
            SetUserPte(mm, ptePa, pa, PteProtection(vma.Flags, writable: true) | PteDirty);
            task.CowFaults++;
        }
        FlushTlbMmRange(mm, va, va + 4096);
    }
}
