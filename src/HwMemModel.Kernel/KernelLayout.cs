namespace HwMemModel.Kernel;

/// <summary>
/// The kernel's virtual memory map (Documentation/arch/x86/x86_64/mm.rst) for 4- or 5-level paging, with optional
/// KASLR of the direct map, vmalloc and vmemmap bases (arch/x86/mm/kaslr.c: order kept, 1 GiB alignment,
/// entropy shared out region by region).
/// </summary>
public sealed class KernelLayout
{
    private const ulong TB = 1UL << 40;
    private const ulong PudSize = 1UL << 30;

    /// <summary>__START_KERNEL_map: kernel text mapping base.</summary>
    public const ulong StartKernelMap = 0xffff_ffff_8000_0000UL;
    /// <summary>CONFIG_PHYSICAL_START: physical load address of the kernel image (16 MiB).</summary>
    public const ulong PhysicalStart = 0x100_0000UL;
    /// <summary>MODULES_VADDR.</summary>
    public const ulong ModulesStart = 0xffff_ffff_a000_0000UL;

    internal KernelLayout(bool fiveLevel, ulong ramEnd, ulong? kaslrSeed)
    {
        FiveLevel = fiveLevel;
        PageOffset = fiveLevel ? 0xff11_0000_0000_0000UL : 0xffff_8880_0000_0000UL;
        VmallocStart = fiveLevel ? 0xffa0_0000_0000_0000UL : 0xffff_c900_0000_0000UL;
        VmemmapStart = fiveLevel ? 0xffd4_0000_0000_0000UL : 0xffff_ea00_0000_0000UL;
        ulong vmallocSize = fiveLevel ? 12800 * TB : 32 * TB;
        if (kaslrSeed is { } seed)
        {
            // kernel_randomize_memory: regions in order, each shifted by a PUD-aligned share of the remaining entropy.
            ulong vaddrStart = PageOffset;
            ulong vaddrEnd = fiveLevel ? 0xfffe_0000_0000_0000UL : 0xffff_fe00_0000_0000UL; // CPU_ENTRY_AREA_BASE
            ulong directTb = ((ramEnd + TB - 1) / TB) + 10; // + CONFIG_RANDOMIZE_MEMORY_PHYSICAL_PADDING (10 TB)
            ulong[] sizes = [directTb * TB, vmallocSize, 1 * TB];
            ulong remain = vaddrEnd - vaddrStart - sizes.Aggregate(0UL, (a, b) => a + b);
            ulong state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
            ulong vaddr = vaddrStart;
            var bases = new ulong[3];
            for (int i = 0; i < 3; i++)
            {
                ulong entropy = remain / (ulong)(3 - i);
                state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
                ulong rand = state * 0x2545F4914F6CDD1DUL;
                entropy = (rand % (entropy + 1)) & ~(PudSize - 1);
                vaddr += entropy;
                bases[i] = vaddr;
                vaddr += sizes[i];
                vaddr = (vaddr + 1 + PudSize - 1) & ~(PudSize - 1);
                remain -= entropy;
            }
            PageOffset = bases[0];
            VmallocStart = bases[1];
            VmemmapStart = bases[2];
            Randomized = true;
        }
        VmallocEnd = VmallocStart + vmallocSize - 1;
    }

    /// <summary>5-level layout.</summary>
    public bool FiveLevel { get; }
    /// <summary>Whether KASLR moved the bases.</summary>
    public bool Randomized { get; }
    /// <summary>page_offset_base: the direct map of all RAM.</summary>
    public ulong PageOffset { get; }
    /// <summary>VMALLOC_START.</summary>
    public ulong VmallocStart { get; }
    /// <summary>VMALLOC_END (inclusive, as Linux defines it).</summary>
    public ulong VmallocEnd { get; }
    /// <summary>vmemmap_base.</summary>
    public ulong VmemmapStart { get; }
}
