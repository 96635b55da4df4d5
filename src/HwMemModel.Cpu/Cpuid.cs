using System.Text;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>
/// The documented CPUID model. It reports exactly what the processor model implements: paging features from
/// <see cref="CpuFeatures"/> (PAE, PSE, PGE, PAT, NX, PCID/INVPCID, SMEP, SMAP, PKU, 1 GiB pages, LA57, MAXPHYADDR),
/// SYSCALL, long mode, CMPXCHG8B/16B, CMOV, MOVBE, POPCNT, LZCNT, TZCNT (BMI1), RDTSCP, CLFLUSH/CLFLUSHOPT/CLWB and
/// ERMS, the x87 FPU, FXSAVE/FXRSTOR, SSE and SSE2; no MMX, SSE3 or later, AVX or XSAVE. Leaves above the maximum return zeros (as Intel processors return the highest basic
/// leaf's values, the model keeps it simple and says so here).
/// </summary>
public sealed class CpuidModel
{
    private readonly CpuFeatures _f;

    /// <summary>Creates the model for the given paging features.</summary>
    public CpuidModel(CpuFeatures features)
    {
        _f = features ?? throw new ArgumentNullException(nameof(features));
    }

    /// <summary>The vendor string (12 characters), leaf 0 EBX:EDX:ECX.</summary>
    public string Vendor { get; init; } = "GenuineIntel";

    /// <summary>The brand string, leaves 0x80000002-0x80000004 (at most 47 characters).</summary>
    public string Brand { get; init; } = "HwMemModel x86-64 processor model";

    /// <summary>Leaf 1 EAX: family 6, model 0x8F, stepping 1 (a Sapphire-Rapids-like signature).</summary>
    public uint Signature { get; init; } = 0x000806F1;

    /// <summary>CPUID.1:ECX bit 21: the local APIC supports x2APIC mode. Off by default, as QEMU 7.2's TCG reports.</summary>
    public bool X2Apic { get; init; }

    /// <summary>Highest basic leaf.</summary>
    public const uint MaxBasicLeaf = 7;

    /// <summary>Highest extended leaf.</summary>
    public const uint MaxExtendedLeaf = 0x8000_0008;

    /// <summary>Answers CPUID for <paramref name="leaf"/>/<paramref name="subleaf"/>; <paramref name="cr4"/> gives OSPKE.</summary>
    public (uint Eax, uint Ebx, uint Ecx, uint Edx) Query(uint leaf, uint subleaf, ulong cr4, int apicId)
    {
        switch (leaf)
        {
            case 0:
            {
                var v = Encoding.ASCII.GetBytes(Vendor.PadRight(12)[..12]);
                return (MaxBasicLeaf, BitConverter.ToUInt32(v, 0), BitConverter.ToUInt32(v, 8), BitConverter.ToUInt32(v, 4));
            }
            case 1:
            {
                uint ebx = (uint)(apicId << 24) | (1u << 16) | (8u << 8);
                uint ecx = (1u << 13) | (1u << 22) | (1u << 23) | (_f.Pcid ? 1u << 17 : 0) | (X2Apic ? 1u << 21 : 0);
                // EDX: FPU (0), PSE, TSC, MSR, PAE, CX8, APIC, CMOV, PAT, CLFSH, FXSR (24), SSE (25), SSE2 (26).
                uint edx = (1u << 0) | (1u << 24) | (1u << 25) | (1u << 26) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 15) | (1u << 16) | (1u << 19)
                    | (_f.Pge ? 1u << 13 : 0);
                return (Signature, ebx, ecx, edx);
            }
            case 7 when subleaf == 0:
            {
                uint ebx = (1u << 3) | (1u << 9) | (1u << 23) | (1u << 24)
                    | (_f.Smep ? 1u << 7 : 0) | (_f.Pcid ? 1u << 10 : 0) | (_f.Smap ? 1u << 20 : 0);
                uint ecx = (_f.Pku ? 1u << 3 : 0) | (_f.Pku && (cr4 & Cr4.PKE) != 0 ? 1u << 4 : 0) | (_f.La57 ? 1u << 16 : 0);
                return (0, ebx, ecx, 0);
            }
            case 0x8000_0000:
                return (MaxExtendedLeaf, 0, 0, 0);
            case 0x8000_0001:
            {
                uint ecx = (1u << 0) | (1u << 5);
                uint edx = (1u << 11) | (1u << 27) | (1u << 29) | (_f.Nx ? 1u << 20 : 0) | (_f.Pages1G ? 1u << 26 : 0);
                return (0, 0, ecx, edx);
            }
            case 0x8000_0002:
            case 0x8000_0003:
            case 0x8000_0004:
            {
                var b = new byte[48];
                Encoding.ASCII.GetBytes(Brand.Length > 47 ? Brand[..47] : Brand).CopyTo(b, 0);
                int o = (int)(leaf - 0x8000_0002) * 16;
                return (BitConverter.ToUInt32(b, o), BitConverter.ToUInt32(b, o + 4), BitConverter.ToUInt32(b, o + 8), BitConverter.ToUInt32(b, o + 12));
            }
            case 0x8000_0008:
                return ((uint)_f.MaxPhysAddrBits | ((_f.La57 ? 57u : 48u) << 8), 0, 0, 0);
            default:
                return (0, 0, 0, 0);
        }
    }
}
