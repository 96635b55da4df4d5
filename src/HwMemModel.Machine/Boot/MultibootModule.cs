namespace HwMemModel.Machine.Boot;

/// <summary>
/// A module to load with a multiboot kernel (QEMU: one comma-separated item of <c>-initrd</c>).
/// </summary>
/// <param name="CommandLine">
/// The module's string: its path as given, optionally followed by a space and arguments, exactly as QEMU passes the
/// <c>-initrd</c> item (the path is the text before the first space).
/// </param>
/// <param name="Image">The module file's contents.</param>
public sealed record MultibootModule(string CommandLine, byte[] Image);

/// <summary>Where a module was placed.</summary>
/// <param name="Start">mod_start: first physical address (page aligned).</param>
/// <param name="End">mod_end: the address just past the last byte, as QEMU reports it.</param>
/// <param name="CommandLineAddress">Physical address of the module's NUL-terminated string.</param>
public readonly record struct LoadedModule(uint Start, uint End, uint CommandLineAddress);

/// <summary>What kind of kernel image was loaded.</summary>
public enum MultibootImageKind
{
    /// <summary>A flat image placed by the header's address fields (the a.out kludge, flags bit 16).</summary>
    AoutKludge,

    /// <summary>An ELF32 executable placed by its PT_LOAD program headers at their physical addresses.</summary>
    Elf32,
}

/// <summary>The outcome of <see cref="MultibootLoader.Load"/>.</summary>
public sealed record MultibootLoadResult
{
    /// <summary>The CPU state to start the kernel with (see <see cref="BootState.Multiboot"/>).</summary>
    public required BootState BootState { get; init; }

    /// <summary>How the kernel was laid out.</summary>
    public required MultibootImageKind Kind { get; init; }

    /// <summary>The header the loader used.</summary>
    public required MultibootHeader Header { get; init; }

    /// <summary>Lowest physical address of the kernel image (load_addr, or the lowest PT_LOAD p_paddr).</summary>
    public required uint KernelStart { get; init; }

    /// <summary>The address just past the kernel image, bss included.</summary>
    public required ulong KernelEnd { get; init; }

    /// <summary>
    /// The address just past everything QEMU places after the kernel (module descriptors, strings and modules, each
    /// part page aligned); the loaded range is [<see cref="KernelStart"/>, <see cref="BufferEnd"/>).
    /// </summary>
    public required ulong BufferEnd { get; init; }

    /// <summary>The physical entry address (EIP).</summary>
    public required uint Entry { get; init; }

    /// <summary>Physical address of the kernel command line ("IMAGE-PATH ARGS").</summary>
    public required uint CommandLineAddress { get; init; }

    /// <summary>The modules, in the order given.</summary>
    public required IReadOnlyList<LoadedModule> Modules { get; init; }

    /// <summary>Things QEMU accepts with a message on stderr (for example a video-mode request), one line each.</summary>
    public required IReadOnlyList<string> Warnings { get; init; }
}
