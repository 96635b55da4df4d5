namespace HwMemModel.Mmu;

/// <summary>Paging features of a modelled processor (what CPUID would report).</summary>
public sealed class CpuFeatures
{
    /// <summary>MAXPHYADDR: physical-address width in bits, 36 to 52. Default 40, what QEMU's pc machine reports.</summary>
    public int MaxPhysAddrBits { get; init; } = 40;
    /// <summary>5-level paging (CR4.LA57) supported.</summary>
    public bool La57 { get; init; } = true;
    /// <summary>1 GiB pages supported (CPUID.80000001H:EDX.Page1GB).</summary>
    public bool Pages1G { get; init; } = true;
    /// <summary>Execute-disable (EFER.NXE) supported.</summary>
    public bool Nx { get; init; } = true;
    /// <summary>Global pages (CR4.PGE) supported.</summary>
    public bool Pge { get; init; } = true;
    /// <summary>PCIDs (CR4.PCIDE) and INVPCID supported.</summary>
    public bool Pcid { get; init; } = true;
    /// <summary>SMEP supported.</summary>
    public bool Smep { get; init; } = true;
    /// <summary>SMAP supported.</summary>
    public bool Smap { get; init; } = true;
    /// <summary>Protection keys for user pages (CR4.PKE) supported.</summary>
    public bool Pku { get; init; } = true;

    /// <summary>The default feature set: everything on, MAXPHYADDR 40.</summary>
    public static CpuFeatures Default { get; } = new();

    internal void Validate()
    {
        if (MaxPhysAddrBits is < 36 or > 52)
            throw new ArgumentOutOfRangeException(nameof(MaxPhysAddrBits), MaxPhysAddrBits, "MAXPHYADDR must be between 36 and 52 bits (x86-64 allows at most 52).");
    }

    /// <summary>The CR4 bits this processor accepts (others raise #GP on MOV to CR4).</summary>
    public ulong Cr4Allowed
    {
        get
        {
            ulong bits = Cr4.Known;
            if (!La57) bits &= ~Cr4.LA57;
            if (!Pge) bits &= ~Cr4.PGE;
            if (!Pcid) bits &= ~Cr4.PCIDE;
            if (!Smep) bits &= ~Cr4.SMEP;
            if (!Smap) bits &= ~Cr4.SMAP;
            if (!Pku) bits &= ~Cr4.PKE;
            return bits;
        }
    }
}
