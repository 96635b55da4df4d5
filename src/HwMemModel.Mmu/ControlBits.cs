namespace HwMemModel.Mmu;

/// <summary>CR0 bits used by paging.</summary>
public static class Cr0
{
    /// <summary>Protection enable.</summary>
    public const ulong PE = 1UL << 0;
    /// <summary>Extension type (fixed 1 on modern processors).</summary>
    public const ulong ET = 1UL << 4;
    /// <summary>Monitor coprocessor.</summary>
    public const ulong MP = 1UL << 1;
    /// <summary>x87 emulation.</summary>
    public const ulong EM = 1UL << 2;
    /// <summary>Task switched.</summary>
    public const ulong TS = 1UL << 3;
    /// <summary>Numeric error.</summary>
    public const ulong NE = 1UL << 5;
    /// <summary>Write protect: supervisor writes honour R/W.</summary>
    public const ulong WP = 1UL << 16;
    /// <summary>Alignment mask.</summary>
    public const ulong AM = 1UL << 18;
    /// <summary>Not write-through.</summary>
    public const ulong NW = 1UL << 29;
    /// <summary>Cache disable.</summary>
    public const ulong CD = 1UL << 30;
    /// <summary>Paging.</summary>
    public const ulong PG = 1UL << 31;
}

/// <summary>CR4 bits.</summary>
public static class Cr4
{
    /// <summary>Page-size extensions (ignored in IA-32e paging).</summary>
    public const ulong PSE = 1UL << 4;
    /// <summary>Virtual-8086 mode extensions.</summary>
    public const ulong VME = 1UL << 0;
    /// <summary>Protected-mode virtual interrupts.</summary>
    public const ulong PVI = 1UL << 1;
    /// <summary>Time-stamp disable (RDTSC at CPL 0 only).</summary>
    public const ulong TSD = 1UL << 2;
    /// <summary>Debugging extensions.</summary>
    public const ulong DE = 1UL << 3;
    /// <summary>Physical-address extension (required for IA-32e paging).</summary>
    public const ulong PAE = 1UL << 5;
    /// <summary>Machine-check enable.</summary>
    public const ulong MCE = 1UL << 6;
    /// <summary>Global pages.</summary>
    public const ulong PGE = 1UL << 7;
    /// <summary>OS FXSAVE support.</summary>
    public const ulong OSFXSR = 1UL << 9;
    /// <summary>OS unmasked SIMD exceptions.</summary>
    public const ulong OSXMMEXCPT = 1UL << 10;
    /// <summary>57-bit linear addresses (5-level paging).</summary>
    public const ulong LA57 = 1UL << 12;
    /// <summary>RDFSBASE and friends.</summary>
    public const ulong FSGSBASE = 1UL << 16;
    /// <summary>Process-context identifiers.</summary>
    public const ulong PCIDE = 1UL << 17;
    /// <summary>Supervisor-mode execution prevention.</summary>
    public const ulong SMEP = 1UL << 20;
    /// <summary>Supervisor-mode access prevention.</summary>
    public const ulong SMAP = 1UL << 21;
    /// <summary>Protection keys for user-mode pages.</summary>
    public const ulong PKE = 1UL << 22;
    /// <summary>Bits 0-11, 13-14, 16-18 and 20-22 that may be written (subject to CPU features).</summary>
    public const ulong Known = 0x7FFFUL & ~(1UL << 13) & ~(1UL << 14) | FSGSBASE | PCIDE | (1UL << 18) | SMEP | SMAP | PKE;
}

/// <summary>IA32_EFER bits.</summary>
public static class Efer
{
    /// <summary>MSR number of IA32_EFER.</summary>
    public const uint Msr = 0xC000_0080;
    /// <summary>SYSCALL enable.</summary>
    public const ulong SCE = 1UL << 0;
    /// <summary>Long-mode enable.</summary>
    public const ulong LME = 1UL << 8;
    /// <summary>Long mode active (set by the processor when CR0.PG=1 with LME=1).</summary>
    public const ulong LMA = 1UL << 10;
    /// <summary>Execute-disable enable.</summary>
    public const ulong NXE = 1UL << 11;
}

/// <summary>CR3 fields.</summary>
public static class Cr3
{
    /// <summary>Page-level write-through for the top-level table (PCIDE=0).</summary>
    public const ulong PWT = 1UL << 3;
    /// <summary>Page-level cache disable for the top-level table (PCIDE=0).</summary>
    public const ulong PCD = 1UL << 4;
    /// <summary>The PCID field (PCIDE=1).</summary>
    public const ulong PcidMask = 0xFFF;
    /// <summary>Bit 63 of a MOV to CR3 source with PCIDE=1: do not invalidate (not stored in CR3).</summary>
    public const ulong NoFlush = 1UL << 63;
}
