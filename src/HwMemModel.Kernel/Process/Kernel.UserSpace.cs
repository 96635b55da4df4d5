using HwMemModel.Bus;
using HwMemModel.Kernel.Process;

namespace HwMemModel.Kernel;

/// <summary>
/// Where the CPU enters and leaves the kernel for user processes: the GDT, IDT and TSS Linux sets up, and the entry
/// text. The tables are bytes in the kernel image's data pages; the entry points are addresses in its text. A CPU
/// model that runs user code stops at <see cref="SyscallEntry"/> (LSTAR) and at the exception entries (IDT gates),
/// lets the kernel model do the work, and returns through <see cref="SysretStub"/> or <see cref="IretStub"/>.
/// </summary>
public sealed class UserEntryLayout
{
    /// <summary>__KERNEL_CS.</summary>
    public const ushort KernelCs = 0x10;
    /// <summary>__KERNEL_DS.</summary>
    public const ushort KernelDs = 0x18;
    /// <summary>__USER32_CS (SYSRET's base selector in IA32_STAR[63:48]).</summary>
    public const ushort User32Cs = 0x23;
    /// <summary>__USER_DS.</summary>
    public const ushort UserDs = 0x2B;
    /// <summary>__USER_CS.</summary>
    public const ushort UserCs = 0x33;
    /// <summary>GDT_ENTRY_TSS * 8.</summary>
    public const ushort TssSelector = 0x40;
    /// <summary>Vectors 0-31 have exception entries.</summary>
    public const int ExceptionVectors = 32;

    internal UserEntryLayout(ulong gdt, ulong idt, ulong tss, ulong text, ulong stacks)
    {
        GdtBase = gdt; IdtBase = idt; TssBase = tss; _text = text; _stacks = stacks;
    }

    private readonly ulong _text, _stacks;

    /// <summary>Linear address of the GDT.</summary>
    public ulong GdtBase { get; }
    /// <summary>GDT limit.</summary>
    public ushort GdtLimit => 16 * 8 - 1;
    /// <summary>Linear address of the IDT.</summary>
    public ulong IdtBase { get; }
    /// <summary>IDT limit (256 gates).</summary>
    public ushort IdtLimit => 256 * 16 - 1;
    /// <summary>Linear address of CPU <c>n</c>'s TSS is TssBase + n * 0x80.</summary>
    public ulong TssBase { get; }
    /// <summary>entry_SYSCALL_64 (IA32_LSTAR).</summary>
    public ulong SyscallEntry => _text;
    /// <summary>A SYSRETQ instruction: the fast return to user mode.</summary>
    public ulong SysretStub => _text + 0x10;
    /// <summary>An IRETQ instruction: the return to user mode through a frame on the entry stack.</summary>
    public ulong IretStub => _text + 0x20;
    /// <summary>The entry of exception <paramref name="vector"/> (0-31).</summary>
    public ulong ExceptionEntry(int vector) => _text + 0x40 + (ulong)vector * 16;
    /// <summary>The vector whose entry is at <paramref name="rip"/>, or -1.</summary>
    public int VectorAt(ulong rip)
    {
        if (rip < _text + 0x40 || rip >= _text + 0x40 + ExceptionVectors * 16 || (rip - _text - 0x40) % 16 != 0) return -1;
        return (int)((rip - _text - 0x40) / 16);
    }
    /// <summary>Every entry address, sorted (the places a CPU runner stops at).</summary>
    public ulong[] EntryPoints => [SyscallEntry, .. Enumerable.Range(0, ExceptionVectors).Select(ExceptionEntry)];
    /// <summary>The top of CPU <paramref name="cpu"/>'s entry stack (TSS.RSP0).</summary>
    public ulong EntryStackTop(int cpu) => _stacks + (ulong)(cpu + 1) * 0x1000;
    /// <summary>The TSS of CPU <paramref name="cpu"/>.</summary>
    public ulong Tss(int cpu) => TssBase + (ulong)cpu * 0x80;
    /// <summary>IA32_STAR as Linux writes it: SYSRET base __USER32_CS, SYSCALL CS __KERNEL_CS.</summary>
    public ulong Star => ((ulong)User32Cs << 48) | ((ulong)KernelCs << 32);
    /// <summary>IA32_FMASK as Linux writes it: TF, DF, IF, IOPL, AC, NT (and RF, VM, ID... cleared anyway).</summary>
    public ulong Fmask => 0x0004_7700;
}

public sealed partial class Kernel
{
    private UserSpaceState? _user;

    /// <summary>Whether <see cref="EnableUserSpace"/> has run.</summary>
    public bool UserSpaceEnabled => _user is not null;

    internal UserSpaceState User => _user ?? throw new InvalidOperationException("User space is not set up: call Kernel.EnableUserSpace() first.");

    /// <summary>The entry layout for CPU runners (after <see cref="EnableUserSpace"/>).</summary>
    public UserEntryLayout Entry => User.Entry;

    /// <summary>
    /// Sets up what user processes need, as Linux does at boot: the vm_area_struct and mm_struct caches
    /// (proc_caches_init), the zero page, and the GDT, IDT, TSS and entry text in the kernel image. Idempotent.
    /// </summary>
    /// <param name="sandboxRoot">Host directory the processes' open and execve see as "/" (read-only), or null for none.</param>
    public void EnableUserSpace(string? sandboxRoot = null)
    {
        if (_user is not null)
        {
            if (sandboxRoot is not null) _user.Sandbox = new Sandbox(sandboxRoot);
            return;
        }
        var vmCache = KmemCacheCreate("vm_area_struct", 184, 8, SlabFlags.Panic, null, "proc_caches_init")!;
        var mmCache = KmemCacheCreate("mm_struct", 1152, 64, SlabFlags.HwcacheAlign | SlabFlags.Panic, null, "proc_caches_init")!;
        // Physical pages inside the kernel image: entry text in the text half, tables and the zero page in the data half.
        ulong text = KernelLayout.PhysicalStart + 0x10_0000;
        ulong data = KernelLayout.PhysicalStart + KernelImageSize / 2 + 0x10_0000;
        ulong zero = data, gdt = data + 0x1000, idt = data + 0x2000, tss = data + 0x3000, stacks = data + 0x10000;
        ulong V(ulong pa) => KernelLayout.StartKernelMap + pa;
        var entry = new UserEntryLayout(V(gdt), V(idt), V(tss), V(text), V(stacks));
        WriteEntryArea(entry, text, gdt, idt, tss);
        _user = new UserSpaceState(vmCache, mmCache, zero, entry, sandboxRoot is null ? null : new Sandbox(sandboxRoot), (int)(RamEnd >> 12));
        Log.Print("mm: user space ready (vm_area_struct, mm_struct caches; zero page at 0x" + zero.ToString("x") + ")");
    }

    private void WriteEntryArea(UserEntryLayout e, ulong text, ulong gdt, ulong idt, ulong tss)
    {
        void W(ulong pa, ulong v) => Bus.Write(pa, 8, v, BusAttributes.Host);
        // GDT: Linux's layout (arch/x86/include/asm/segment.h).
        W(gdt + 0x08, 0x00CF_9B00_0000_FFFF); // KERNEL32_CS
        W(gdt + 0x10, 0x00AF_9B00_0000_FFFF); // KERNEL_CS
        W(gdt + 0x18, 0x00CF_9300_0000_FFFF); // KERNEL_DS
        W(gdt + 0x20, 0x00CF_FB00_0000_FFFF); // USER32_CS
        W(gdt + 0x28, 0x00CF_F300_0000_FFFF); // USER_DS
        W(gdt + 0x30, 0x00AF_FB00_0000_FFFF); // USER_CS
        // The TSS descriptor describes CPU 0's TSS; other CPUs' TR caches are loaded by the runner.
        ulong tssVa = e.Tss(0);
        W(gdt + 0x40, 0x67 | ((tssVa & 0xFF_FFFF) << 16) | (0x89UL << 40) | (((tssVa >> 24) & 0xFF) << 56));
        W(gdt + 0x48, tssVa >> 32);
        // Entry text: SYSCALL entry (the model's work happens when a CPU arrives here), SYSRETQ, IRETQ, exception entries.
        Bus.WriteBytes(text, [0x48, 0x0F, 0x07], BusAttributes.Host);          // entry_SYSCALL_64: sysretq
        Bus.WriteBytes(text + 0x10, [0x48, 0x0F, 0x07], BusAttributes.Host);   // sysretq
        Bus.WriteBytes(text + 0x20, [0x48, 0xCF], BusAttributes.Host);         // iretq
        for (int v = 0; v < UserEntryLayout.ExceptionVectors; v++)
        {
            ulong at = text + 0x40 + (ulong)v * 16;
            if (HasErrorCode(v)) Bus.WriteBytes(at, [0x48, 0x83, 0xC4, 0x08, 0x48, 0xCF], BusAttributes.Host); // add rsp,8; iretq
            else Bus.WriteBytes(at, [0x48, 0xCF], BusAttributes.Host);
            ulong handler = e.ExceptionEntry(v);
            int dpl = v is 3 or 4 ? 3 : 0; // int3 and into may be used from user mode
            ulong low = (handler & 0xFFFF) | ((ulong)UserEntryLayout.KernelCs << 16) | ((0x8EUL | ((ulong)dpl << 5)) << 40) | (((handler >> 16) & 0xFFFF) << 48);
            W(idt + (ulong)v * 16, low);
            W(idt + (ulong)v * 16 + 8, handler >> 32);
        }
        for (int cpu = 0; cpu < 32; cpu++)
        {
            ulong t = tss + (ulong)cpu * 0x80;
            W(t + 4, e.EntryStackTop(cpu)); // RSP0
            Bus.Write(t + 0x66, 2, 0x68, BusAttributes.Host); // no I/O bitmap
        }
    }

    /// <summary>Whether exception <paramref name="vector"/> pushes an error code.</summary>
    public static bool HasErrorCode(int vector) => vector is 8 or 10 or 11 or 12 or 13 or 14 or 17 or 21 or 29 or 30;
}

/// <summary>Everything user processes share.</summary>
internal sealed class UserSpaceState(KmemCache vmCache, KmemCache mmCache, ulong zeroPage, UserEntryLayout entry, Sandbox? sandbox, int pfns)
{
    public KmemCache VmCache { get; } = vmCache;
    public KmemCache MmCache { get; } = mmCache;
    public ulong ZeroPage { get; } = zeroPage;
    public UserEntryLayout Entry { get; } = entry;
    public Sandbox? Sandbox { get; set; } = sandbox;
    /// <summary>Mappings of each user page (page_mapcount), by frame number.</summary>
    public readonly int[] MapCount = new int[pfns];
    /// <summary>What each user page holds, by frame number.</summary>
    public readonly PageKind[] Kind = new PageKind[pfns];
    public readonly Dictionary<int, TaskStruct> Tasks = [];
    public readonly List<TaskStruct> RunQueue = [];
    public TaskStruct? Current;
    public int NextPid = 2;
    public ulong NextContextId = 1;
    public readonly HashSet<string> ReportedSyscalls = [];
    /// <summary>Per-CPU ASID slots (cpu_tlbstate.ctxs): the mm context id and tlb_gen each slot last held.</summary>
    public readonly (ulong CtxId, ulong TlbGen)[,] Asids = new (ulong, ulong)[64, Kernel.TlbNrDynAsids];
    public readonly int[] NextAsid = new int[64];
    public readonly MmStruct?[] LoadedMm = new MmStruct?[64];
    public readonly int[] LoadedAsid = new int[64];
}

/// <summary>What a user page holds (for RSS counters and smaps).</summary>
internal enum PageKind : byte
{
    None,
    Anon,
    File,
    Shmem,
}
