using System.Diagnostics.CodeAnalysis;
using HwMemModel.Bus;

namespace HwMemModel.Mmu;

/// <summary>
/// The paging-related state of one logical processor: CR0, CR3, CR4, EFER, EFLAGS.AC, CPL, PKRU and IA32_PAT,
/// and the <see cref="Mmu"/> (TLBs and paging-structure caches) that translates its accesses.
/// Architectural writes (<c>WriteCr0</c>, ...) return a #GP(0) fault value for values the processor rejects and apply
/// the TLB invalidations the SDM specifies; host setters (<c>SetCr0</c>, ...) throw <see cref="ArgumentException"/>
/// with the reason instead.
/// </summary>
public sealed class CpuContext
{
    private ulong _cr0 = 0x6000_0010; // reset value: CD | NW | ET
    private ulong _cr3;
    private ulong _cr4;
    private ulong _efer;
    private ulong _pat = Pat.PowerOnValue;
    private uint _pkru;
    private int _cpl;
    private bool _ac;

    /// <summary>Creates a processor context over <paramref name="bus"/>.</summary>
    /// <param name="bus">The physical bus page walks and accesses use.</param>
    /// <param name="id">The CPU index, used as the requester id of its bus transactions.</param>
    /// <param name="features">Paging features; <see cref="CpuFeatures.Default"/> when null.</param>
    /// <param name="tlb">TLB geometry; <see cref="TlbGeometry.Default"/> when null.</param>
    public CpuContext(PhysicalBus bus, int id = 0, CpuFeatures? features = null, TlbGeometry? tlb = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        if (id < 0) throw new ArgumentOutOfRangeException(nameof(id), id, "The CPU index must be 0 or more.");
        Features = features ?? CpuFeatures.Default;
        Features.Validate();
        if (bus.MaxPhysAddrBits > Features.MaxPhysAddrBits)
            throw new ArgumentException($"The bus decodes {bus.MaxPhysAddrBits} physical-address bits but the CPU's MAXPHYADDR is {Features.MaxPhysAddrBits}; the bus may not be wider than the CPU.", nameof(features));
        Id = id;
        Bus = bus;
        Mmu = new Mmu(this, bus, tlb ?? TlbGeometry.Default);
    }

    /// <summary>The CPU index.</summary>
    public int Id { get; }
    /// <summary>The physical bus.</summary>
    public PhysicalBus Bus { get; }
    /// <summary>Paging features.</summary>
    public CpuFeatures Features { get; }
    /// <summary>The MMU of this context.</summary>
    public Mmu Mmu { get; }

    /// <summary>CR0.</summary>
    public ulong Cr0Value => _cr0;
    /// <summary>CR3 as stored (bit 63 of a no-flush load is not stored).</summary>
    public ulong Cr3Value => _cr3;
    /// <summary>CR4.</summary>
    public ulong Cr4Value => _cr4;
    /// <summary>IA32_EFER.</summary>
    public ulong EferValue => _efer;
    /// <summary>IA32_PAT.</summary>
    public ulong PatValue => _pat;

    /// <summary>PKRU: two bits per protection key (AD at 2k, WD at 2k+1).</summary>
    public uint Pkru { get => _pkru; set => _pkru = value; }

    /// <summary>EFLAGS.AC: when 1, CR4.SMAP allows explicit supervisor data accesses to user-mode pages.</summary>
    public bool AlignmentCheck
    {
        get => _ac;
        set { _ac = value; Mmu.OnAlignmentCheckChanged(value); }
    }

    /// <summary>Current privilege level, 0 to 3.</summary>
    public int Cpl
    {
        get => _cpl;
        set
        {
            if (value is < 0 or > 3) throw new ArgumentOutOfRangeException(nameof(value), value, "CPL must be 0, 1, 2 or 3.");
            _cpl = value;
        }
    }

    /// <summary>The privilege of an explicit access at the current CPL.</summary>
    public Privilege CurrentPrivilege => _cpl == 3 ? Privilege.User : Privilege.Supervisor;

    /// <summary>True when paging is on (CR0.PG=1).</summary>
    public bool PagingEnabled => (_cr0 & Cr0.PG) != 0;
    /// <summary>True when IA-32e mode is active (EFER.LMA=1).</summary>
    public bool LongModeActive => (_efer & Efer.LMA) != 0;
    /// <summary>True when 5-level paging is in use (CR4.LA57=1 in IA-32e mode).</summary>
    public bool FiveLevel => (_cr4 & Cr4.LA57) != 0;
    /// <summary>The current PCID: CR3[11:0] when CR4.PCIDE=1, else 0.</summary>
    public ushort CurrentPcid => (_cr4 & Cr4.PCIDE) != 0 ? (ushort)(_cr3 & Cr3.PcidMask) : (ushort)0;
    /// <summary>Physical address of the top-level paging structure (PML4 or PML5).</summary>
    public ulong TopLevelTable => _cr3 & AddressMask;
    /// <summary>Mask of physical-address bits MAXPHYADDR-1:12.</summary>
    public ulong AddressMask => ((1UL << Features.MaxPhysAddrBits) - 1) & ~0xFFFUL;

    /// <summary>MOV to CR0. Returns #GP(0) for a rejected value; applies EFER.LMA and TLB invalidation rules.</summary>
    public Fault WriteCr0(ulong value) => Apply(CheckCr0(value), () => ApplyCr0(value));
    /// <summary>MOV to CR3 (bit 63 with CR4.PCIDE=1 suppresses invalidation). Returns #GP(0) for reserved bits.</summary>
    public Fault WriteCr3(ulong value) => Apply(CheckCr3(value), () => ApplyCr3(value));
    /// <summary>MOV to CR4. Returns #GP(0) for reserved or disallowed changes; applies TLB invalidation rules.</summary>
    public Fault WriteCr4(ulong value) => Apply(CheckCr4(value), () => ApplyCr4(value));
    /// <summary>WRMSR to IA32_EFER. LMA is read-only and kept. Returns #GP(0) for reserved bits or a LME change with paging on.</summary>
    public Fault WriteEfer(ulong value) => Apply(CheckEfer(value), () => ApplyEfer(value));
    /// <summary>WRMSR to IA32_PAT. Returns #GP(0) for an invalid memory-type encoding.</summary>
    public Fault WritePat(ulong value) => Apply(Pat.Validate(value), () => _pat = value);

    /// <summary>Host API: sets CR0 or throws <see cref="ArgumentException"/> saying why the value is rejected.</summary>
    public void SetCr0(ulong value) => Host(CheckCr0(value), () => ApplyCr0(value));
    /// <summary>Host API: sets CR3 or throws <see cref="ArgumentException"/> saying why the value is rejected.</summary>
    public void SetCr3(ulong value) => Host(CheckCr3(value), () => ApplyCr3(value));
    /// <summary>Host API: sets CR4 or throws <see cref="ArgumentException"/> saying why the value is rejected.</summary>
    public void SetCr4(ulong value) => Host(CheckCr4(value), () => ApplyCr4(value));
    /// <summary>Host API: sets IA32_EFER or throws <see cref="ArgumentException"/> saying why the value is rejected.</summary>
    public void SetEfer(ulong value) => Host(CheckEfer(value), () => ApplyEfer(value));
    /// <summary>Host API: sets IA32_PAT or throws <see cref="ArgumentException"/> saying why the value is rejected.</summary>
    public void SetPat(ulong value) => Host(Pat.Validate(value), () => _pat = value);

    /// <summary>
    /// Host convenience: enters IA-32e mode with paging through the architectural sequence
    /// (CR4.PAE [+LA57, extra CR4 bits], EFER.LME [+NXE], CR3, CR0.PE|PG [+WP]).
    /// </summary>
    /// <param name="cr3">CR3 value: the top-level table address (PML4, or PML5 with <paramref name="fiveLevel"/>).</param>
    /// <param name="fiveLevel">Use 5-level paging.</param>
    /// <param name="extraCr4">Further CR4 bits (PGE, SMEP, SMAP, PKE, PCIDE...). PCIDE is set after CR3 is loaded.</param>
    /// <param name="nxe">Set EFER.NXE.</param>
    /// <param name="writeProtect">Set CR0.WP.</param>
    public void EnterLongMode(ulong cr3, bool fiveLevel = false, ulong extraCr4 = Cr4.PGE, bool nxe = true, bool writeProtect = true)
    {
        SetCr0(_cr0 & ~Cr0.PG & ~(Cr0.CD | Cr0.NW) | Cr0.PE | Cr0.ET | Cr0.NE);
        SetCr4((Cr4.PAE | (fiveLevel ? Cr4.LA57 : 0) | extraCr4) & ~Cr4.PCIDE);
        SetEfer(Efer.LME | (nxe ? Efer.NXE : 0) | (_efer & Efer.SCE));
        SetCr3(cr3 & ~Cr3.PcidMask);
        SetCr0(Cr0.PE | Cr0.ET | Cr0.NE | Cr0.PG | (writeProtect ? Cr0.WP : 0));
        if ((extraCr4 & Cr4.PCIDE) != 0)
        {
            SetCr4(_cr4 | Cr4.PCIDE);
            if ((cr3 & Cr3.PcidMask) != 0) SetCr3(cr3);
        }
    }

    private Fault Apply(string? error, Action apply)
    {
        if (error is not null) return new Fault(FaultKind.GeneralProtection, 0, 0, 0, FaultRule.InvalidControlValue);
        apply();
        return Fault.None;
    }

    private static void Host(string? error, Action apply)
    {
        if (error is not null) ThrowInvalid(error);
        apply();
    }

    [DoesNotReturn]
    private static void ThrowInvalid(string message) => throw new ArgumentException(message);

    private string? CheckCr0(ulong v)
    {
        if ((v >> 32) != 0) return $"CR0 value 0x{v:x} sets bits 63:32, which are reserved and must be 0.";
        if ((v & Cr0.PG) != 0 && (v & Cr0.PE) == 0) return $"CR0 value 0x{v:x} sets PG without PE; paging requires protected mode (CR0.PE=1).";
        if ((v & Cr0.NW) != 0 && (v & Cr0.CD) == 0) return $"CR0 value 0x{v:x} sets NW without CD; CR0.NW=1 requires CR0.CD=1.";
        if ((v & Cr0.PG) != 0 && (_cr0 & Cr0.PG) == 0 && (_efer & Efer.LME) != 0 && (_cr4 & Cr4.PAE) == 0)
            return "Enabling paging with EFER.LME=1 requires CR4.PAE=1 (IA-32e paging uses PAE-format entries).";
        return null;
    }

    private void ApplyCr0(ulong v)
    {
        ulong old = _cr0;
        _cr0 = v | Cr0.ET;
        bool pgOn = (v & Cr0.PG) != 0, wasOn = (old & Cr0.PG) != 0;
        if (pgOn && !wasOn && (_efer & Efer.LME) != 0) _efer |= Efer.LMA;
        if (!pgOn && wasOn) _efer &= ~Efer.LMA;
        if (pgOn != wasOn) Mmu.FlushAll(FlushKind.Cr0PagingChange);
        Mmu.OnControlStateChanged();
    }

    private string? CheckCr3(ulong v)
    {
        bool pcide = (_cr4 & Cr4.PCIDE) != 0;
        ulong stored = pcide ? v & ~Cr3.NoFlush : v;
        ulong reserved = ~((1UL << Features.MaxPhysAddrBits) - 1);
        if ((stored & reserved) != 0)
            return $"CR3 value 0x{v:x} sets bits at or above MAXPHYADDR ({Features.MaxPhysAddrBits}); bits 63:{Features.MaxPhysAddrBits} must be 0"
                + (pcide ? " (bit 63 is allowed only as the no-flush hint)." : " (bit 63 is the no-flush hint only with CR4.PCIDE=1).");
        return null;
    }

    private void ApplyCr3(ulong v)
    {
        bool pcide = (_cr4 & Cr4.PCIDE) != 0;
        bool noFlush = pcide && (v & Cr3.NoFlush) != 0;
        _cr3 = pcide ? v & ~Cr3.NoFlush : v;
        Mmu.OnCr3Load(noFlush);
    }

    private string? CheckCr4(ulong v)
    {
        ulong bad = v & ~Features.Cr4Allowed;
        if (bad != 0)
            return $"CR4 value 0x{v:x} sets bit(s) 0x{bad:x} that are reserved or not supported by this CPU (allowed: 0x{Features.Cr4Allowed:x}).";
        bool lma = LongModeActive;
        if (lma && (v & Cr4.PAE) == 0) return "CR4.PAE cannot be cleared while IA-32e mode is active (EFER.LMA=1).";
        if (lma && ((v ^ _cr4) & Cr4.LA57) != 0) return "CR4.LA57 cannot change while IA-32e mode is active (EFER.LMA=1); leave paging first.";
        if ((v & Cr4.PCIDE) != 0 && (_cr4 & Cr4.PCIDE) == 0)
        {
            if (!lma) return "CR4.PCIDE can be set only in IA-32e mode (EFER.LMA=1).";
            if ((_cr3 & Cr3.PcidMask) != 0) return $"Setting CR4.PCIDE requires CR3[11:0] = 0 (CR3 is 0x{_cr3:x}).";
        }
        return null;
    }

    private void ApplyCr4(ulong v)
    {
        ulong old = _cr4;
        _cr4 = v;
        ulong changed = old ^ v;
        if ((changed & Cr4.PGE) != 0 || ((old & Cr4.PCIDE) != 0 && (v & Cr4.PCIDE) == 0))
            Mmu.FlushAll(FlushKind.Cr4Change);
        else if ((changed & Cr4.PAE) != 0 || ((v & Cr4.SMEP) != 0 && (old & Cr4.SMEP) == 0))
            Mmu.FlushCurrentPcid(FlushKind.Cr4Change);
        Mmu.OnControlStateChanged();
    }

    private string? CheckEfer(ulong v)
    {
        ulong allowed = Efer.SCE | Efer.LME | Efer.LMA | (Features.Nx ? Efer.NXE : 0);
        if ((v & ~allowed) != 0)
            return $"IA32_EFER value 0x{v:x} sets reserved or unsupported bit(s) 0x{v & ~allowed:x} (allowed: SCE, LME, LMA{(Features.Nx ? ", NXE" : "")}).";
        if (PagingEnabled && ((v ^ _efer) & Efer.LME) != 0) return "EFER.LME cannot change while CR0.PG=1.";
        return null;
    }

    private void ApplyEfer(ulong v)
    {
        _efer = (v & ~Efer.LMA) | (_efer & Efer.LMA);
        Mmu.OnControlStateChanged();
    }
}
