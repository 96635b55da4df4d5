using HwMemModel.Firmware.Images;

namespace HwMemModel.Firmware;

/// <summary>All firmware images, built on first use.</summary>
public static class FirmwareImages
{
    private static readonly Lazy<IReadOnlyList<FirmwareImage>> _all = new(() =>
    [
        Hello(),
        Paging(),
        DemandPaging(),
        Hpet(),
        MultibootAout(),
        MultibootElf(),
        AluFlags(),
        StringsModes(),
        SyscallIst(),
        Smc(),
        Smp(),
        SmpSpin(),
        FwCfg(),
        Shootdown(),
        ShootdownMissing(),
        SmpBench(),
        Bench(),
    ]);

    /// <summary>
    /// The QEMU arguments of the reference runs, without the image option (<c>-bios IMAGE</c> or
    /// <c>-kernel IMAGE</c>).
    /// </summary>
    public const string QemuArguments =
        "-machine pc,accel=tcg -cpu max -m 128M -nodefaults -display none -no-reboot -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04";

    /// <summary>QEMU's exit status when an image writes 0 (success) to isa-debug-exit.</summary>
    public const int QemuSuccessExitStatus = 1;

    /// <summary>Every image, in a fixed order.</summary>
    public static IReadOnlyList<FirmwareImage> All => _all.Value;

    /// <summary>The image called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No image has that name.</exception>
    public static FirmwareImage Get(string name) =>
        All.FirstOrDefault(i => i.Name == name)
        ?? throw new KeyNotFoundException($"no firmware image '{name}'; known: {string.Join(", ", All.Select(i => i.Name))}");

    /// <summary>Writes every image to <paramref name="directory"/> as <see cref="FirmwareImage.FileName"/>, creating the directory.</summary>
    public static void WriteAll(string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var image in All)
        {
            File.WriteAllBytes(Path.Combine(directory, image.FileName), image.Bytes);
        }
    }

    /// <summary>
    /// <c>smp</c> (BIOS): fw_cfg's CPU count, INIT and two start-up IPIs to all other CPUs, each AP counts itself in, enters protected mode and takes a fixed IPI, an NMI and its own APIC timer interrupt,
    /// from a real-mode trampoline at 0x8000; prints how many started (run it with QEMU's <c>-smp N</c> or
    /// <c>PcMachineOptions.Cpus</c>).
    /// </summary>
    public static FirmwareImage Smp() => new("smp", ImageKind.Bios, SmpImage.Build(), SmpImage.Description);

    /// <summary>
    /// <c>fw-cfg</c> (BIOS): QEMU's fw_cfg through ports 0x510/0x511: signature, ID, RAM size, CPU count, maximum CPUs,
    /// the file directory (select keys, sizes of the files the model provides), the etc/e820 entries and keys without
    /// an item.
    /// </summary>
    public static FirmwareImage FwCfg() => new("fw-cfg", ImageKind.Bios, FwCfgImage.Build(), FwCfgImage.Description);

    /// <summary>
    /// <c>smp-spin</c> (BIOS): the <c>smp</c> image where every CPU first runs <see cref="Images.SmpImage.SpinIterations"/>
    /// iterations of a 4-instruction ALU loop: the workload of the <c>--smp</c> speed figures (BENCHMARKS.md).
    /// </summary>
    public static FirmwareImage SmpSpin() => new("smp-spin", ImageKind.Bios, SmpImage.BuildSpin(), SmpImage.Description + " (every CPU first spins in an ALU loop: a speed workload)");

    /// <summary>
    /// <c>shootdown</c> (BIOS, recorded with <c>-smp 4</c>): a cross-CPU TLB shootdown in long mode: the BSP remaps
    /// <see cref="Images.ShootdownImage.Pages"/> test pages the APs have cached, INVLPGs on itself and sends an IPI whose
    /// handler INVLPGs them on every AP; every AP then reads the new frames. Prints the IPI and INVLPG counts.
    /// </summary>
    public static FirmwareImage Shootdown() => new("shootdown", ImageKind.Bios, ShootdownImage.Build(withIpi: true), ShootdownImage.Description)
        { Cpus = ShootdownImage.ReferenceCpus };

    /// <summary>
    /// <c>shootdown-missing</c> (BIOS, recorded with <c>-smp 4</c>): <c>shootdown</c> without the IPI: the APs read the
    /// old frames through their stale TLB entries (a missing TLB shootdown, which the coherence checker reports).
    /// </summary>
    public static FirmwareImage ShootdownMissing() => new("shootdown-missing", ImageKind.Bios, ShootdownImage.Build(withIpi: false), ShootdownImage.MissingDescription)
        { Cpus = ShootdownImage.ReferenceCpus };

    /// <summary>
    /// <c>smp-bench</c> (BIOS): the <c>--smp</c> speed workload: every CPU, the APs in long mode on the BSP's page tables,
    /// runs <see cref="Images.SmpBenchImage.Iterations"/> iterations of the <c>bench</c> image's 64-bit loop over its own
    /// 64 KiB buffer; prints the accumulators (equal on every CPU).
    /// </summary>
    public static FirmwareImage SmpBench() => new("smp-bench", ImageKind.Bios, SmpBenchImage.Build(), SmpBenchImage.Description);

    /// <summary>
    /// <c>hello</c> (BIOS): real mode, 32-bit protected mode, long mode with a 1 GiB identity map; prints CR0,
    /// the reset EDX check, the CPUID vendor and CPUID 0x80000008 EAX, EFER; exits 0.
    /// </summary>
    public static FirmwareImage Hello() => new("hello", ImageKind.Bios, HelloImage.Build(), HelloImage.Description);

    /// <summary>
    /// <c>paging</c> (BIOS): page-table permission suite in long mode (leaf sizes, U/S, R/W with CR0.WP, NX, SMEP,
    /// SMAP, PKU, reserved bits, A/D bits, non-canonical addresses, INVLPG), one line per test.
    /// </summary>
    public static FirmwareImage Paging() => new("paging", ImageKind.Bios, PagingImage.Build(), PagingImage.Description);

    /// <summary>
    /// <c>demand-paging</c> (BIOS): a #PF handler maps zeroed pages from a bump allocator on demand; prints the
    /// number of faults and a checksum.
    /// </summary>
    public static FirmwareImage DemandPaging() => new("demand-paging", ImageKind.Bios, DemandPagingImage.Build(), DemandPagingImage.Description);

    /// <summary>
    /// <c>hpet</c> (BIOS): maps the HPET with an uncached 4 KiB page, prints its capabilities and checks that the
    /// main counter advances once enabled.
    /// </summary>
    public static FirmwareImage Hpet() => new("hpet", ImageKind.Bios, HpetImage.Build(), HpetImage.Description);

    /// <summary>
    /// <c>multiboot-aout</c> (multiboot v1, a.out kludge, loaded at 1 MiB): prints the boot magic check, mem_lower,
    /// mem_upper and the memory map, enters long mode with its own GDT; exits 0.
    /// </summary>
    public static FirmwareImage MultibootAout() => new("multiboot-aout", ImageKind.Multiboot, MultibootKernel.BuildAout(), MultibootKernel.AoutDescription);

    /// <summary>
    /// <c>multiboot-elf</c> (multiboot v1, ELF32 with two PT_LOAD segments, the second with bss): same output
    /// as <c>multiboot-aout</c> with its own name.
    /// </summary>
    public static FirmwareImage MultibootElf() => new("multiboot-elf", ImageKind.Multiboot, MultibootKernel.BuildElf(), MultibootKernel.ElfDescription);

    /// <summary>
    /// <c>alu-flags</c> (BIOS): integer instruction results and RFLAGS (undefined flags included) for a table of
    /// operations, operand sizes and values, each run with all status flags clear and set; BCD instructions in
    /// 32-bit protected mode.
    /// </summary>
    public static FirmwareImage AluFlags() => new("alu-flags", ImageKind.Bios, AluFlagsImage.Build(), AluFlagsImage.Description);

    /// <summary>
    /// <c>strings-modes</c> (BIOS): real-mode instructions through an IVT, 32-bit protected-mode segment bases,
    /// limits and faults, REP string instructions in 32-bit code (also with 16-bit addressing), and long-mode string
    /// instructions across reversed pages and #PF in the middle of REP.
    /// </summary>
    public static FirmwareImage StringsModes() => new("strings-modes", ImageKind.Bios, StringsModesImage.Build(), StringsModesImage.Description);

    /// <summary>
    /// <c>syscall-ist</c> (BIOS): SYSCALL/SYSRETQ, SWAPGS, INT n through DPL-3 and DPL-0 gates, #PF at ring 3 on RSP0,
    /// exceptions on IST1 (including #DF), FS/GS base MSRs and SYSRETQ to a non-canonical address.
    /// </summary>
    public static FirmwareImage SyscallIst() => new("syscall-ist", ImageKind.Bios, SyscallIstImage.Build(), SyscallIstImage.Description);

    /// <summary>
    /// <c>smc</c> (BIOS): self-modifying code: patched immediates, the next instruction of the same block, an
    /// instruction rewriting itself, REP MOVSB over code, a page-straddling instruction and a second virtual alias.
    /// </summary>
    public static FirmwareImage Smc() => new("smc", ImageKind.Bios, SmcImage.Build(), SmcImage.Description);

    /// <summary>
    /// <c>bench</c> (BIOS): the speed benchmark: <see cref="Images.BenchImage.Iterations"/> iterations of a
    /// ~20-instruction ALU/memory/branch/call loop over a 64 KiB buffer in 4 KiB pages; prints checksums.
    /// </summary>
    public static FirmwareImage Bench() => new("bench", ImageKind.Bios, BenchImage.Build(), BenchImage.Description);
}
