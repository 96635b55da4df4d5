using Iced.Intel;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>Model-specific registers the processor model implements (IA32_EFER and IA32_PAT live in the paging context).</summary>
public sealed class MsrState
{
    /// <summary>IA32_STAR (0xC0000081).</summary>
    public ulong Star;
    /// <summary>IA32_LSTAR (0xC0000082).</summary>
    public ulong Lstar;
    /// <summary>IA32_CSTAR (0xC0000083).</summary>
    public ulong Cstar;
    /// <summary>IA32_FMASK (0xC0000084).</summary>
    public ulong Fmask;
    /// <summary>IA32_KERNEL_GS_BASE (0xC0000102).</summary>
    public ulong KernelGsBase;
    /// <summary>IA32_TSC_AUX (0xC0000103).</summary>
    public ulong TscAux;
    /// <summary>IA32_APIC_BASE (0x1B): base 0xFEE00000, enabled, BSP.</summary>
    public ulong ApicBase;
    /// <summary>IA32_SYSENTER_CS/ESP/EIP (0x174-0x176).</summary>
    public ulong SysenterCs, SysenterEsp, SysenterEip;
    /// <summary>IA32_MISC_ENABLE (0x1A0).</summary>
    public ulong MiscEnable;
    /// <summary>IA32_MTRR_DEF_TYPE (0x2FF).</summary>
    public ulong MtrrDefType;
    /// <summary>Offset added to guest time for IA32_TIME_STAMP_COUNTER writes.</summary>
    public long TscOffset;
    /// <summary>Variable and fixed MTRRs (stored, not yet used for the memory type).</summary>
    public Dictionary<uint, ulong> Mtrrs { get; } = [];

    /// <summary>Values at reset.</summary>
    public void Reset(bool bsp = true)
    {
        Star = Lstar = Cstar = Fmask = KernelGsBase = TscAux = 0;
        SysenterCs = SysenterEsp = SysenterEip = 0;
        ApicBase = 0xFEE0_0000UL | (1UL << 11) | (bsp ? 1UL << 8 : 0);
        MiscEnable = 1; // fast strings, as QEMU reports
        MtrrDefType = 0;
        TscOffset = 0;
        Mtrrs.Clear();
    }
}

public sealed partial class X86Cpu
{
    private readonly ulong[] _dr = [0, 0, 0, 0, 0xFFFF_0FF0, 0x400, 0xFFFF_0FF0, 0x400];

    /// <summary>The model-specific registers.</summary>
    public MsrState Msr { get; } = new();

    /// <summary>Raised after WRMSR to IA32_APIC_BASE (the local APIC follows its global-enable bit 11).</summary>
    public event Action<ulong>? ApicBaseWritten;

    private ulong ReadCr(Register r)
    {
        RequireCpl0("MOV from a control register");
        ulong v = r switch
        {
            Register.CR0 => Context.Cr0Value,
            Register.CR2 => _cr2,
            Register.CR3 => Context.Cr3Value,
            Register.CR4 => Context.Cr4Value,
            Register.CR8 => _cr8,
            _ => throw Fault(Vectors.UD, $"MOV from {r}"),
        };
        return _bitness == 64 ? v : (uint)v;
    }

    private void MovToCr(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        RequireCpl0("MOV to a control register");
        ulong v = ReadReg(i.Op1Register);
        Fault f;
        switch (i.Op0Register)
        {
            case Register.CR0:
            {
                if (_bitness != 64) v = (uint)v;
                v |= Cr0.ET;
                ulong old = Context.Cr0Value;
                // Clearing CR0.PG in 64-bit mode is #GP; enabling IA-32e paging needs PAE (checked by the context).
                if (Is64 && (v & Cr0.PG) == 0) throw GP(0, "clearing CR0.PG in 64-bit mode");
                if ((v & Cr0.PG) != 0 && (old & Cr0.PG) == 0 && (Context.EferValue & Efer.LME) != 0 && Seg[(int)SegmentIndex.CS].Long)
                    throw GP(0, "enabling IA-32e paging while CS.L=1");
                if ((v & Cr0.PG) != 0 && (Context.EferValue & Efer.LME) == 0)
                    throw new MachineStopException(StopKind.MachineCheck,
                        $"MOV CR0 at {Where()} enables paging without EFER.LME: 32-bit and PAE paging are not modelled (only IA-32e 4/5-level paging)");
                f = Context.WriteCr0(v);
                if (f.IsFault) throw GP(0, $"invalid CR0 value 0x{v:x}");
                if (((old ^ v) & Cr0.PE) != 0) FlushDecodeCache();
                UpdateMode();
                return;
            }
            case Register.CR2:
                _cr2 = _bitness == 64 ? v : (uint)v;
                return;
            case Register.CR3:
                if (_bitness != 64) v = (uint)v;
                f = Context.WriteCr3(v);
                if (f.IsFault) throw GP(0, $"invalid CR3 value 0x{v:x}");
                return;
            case Register.CR4:
            {
                if (_bitness != 64) v = (uint)v;
                f = Context.WriteCr4(v);
                if (f.IsFault) throw GP(0, $"invalid CR4 value 0x{v:x} (supported bits 0x{Context.Features.Cr4Allowed:x})");
                return;
            }
            case Register.CR8:
                if ((v >> 4) != 0) throw GP(0, "CR8 bits 63:4 are reserved");
                _cr8 = v;
                return;
            default:
                throw Fault(Vectors.UD, $"MOV to {i.Op0Register}");
        }
    }

    private void MovToDr(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        RequireCpl0("MOV to a debug register");
        int n = i.Op0Register - Register.DR0;
        if (n > 7) throw Fault(Vectors.UD, $"MOV to {i.Op0Register} (only DR0-DR7 exist)");
        if (n is 4 or 5 && (Context.Cr4Value & Cr4.DE) != 0) throw Fault(Vectors.UD, "DR4/DR5 with CR4.DE=1");
        ulong v = ReadReg(i.Op1Register);
        if (n is 6 or 7 && (v >> 32) != 0) throw GP(0, $"DR{n} bits 63:32 must be 0");
        _dr[n] = n == 6 ? v | 0xFFFF_0FF0 : n == 7 ? (v | 0x400) & ~0x0000_D000UL : v;
        if (n == 7 && (v & 0xFF) != 0) ReportOnce("dr7", $"hardware breakpoints (DR7=0x{v:x}) are stored but not modelled");
    }

    /// <summary>System instructions. Returns false for instructions the model does not implement.</summary>
    private bool ExecuteSystem(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        switch (i.Mnemonic)
        {
            case Mnemonic.Lgdt:
            case Mnemonic.Lidt:
            {
                RequireCpl0(i.Mnemonic.ToString().ToUpperInvariant());
                if (i.Op0Kind != OpKind.Memory) throw Fault(Vectors.UD, "LGDT/LIDT with a register operand");
                int seg = SegOf(in i);
                ulong ea = EffectiveAddress(ref d);
                ushort limit = (ushort)ReadSeg(seg, ea, 2);
                ulong b = _bitness == 64 ? ReadSeg(seg, ea + 2, 8) : ReadSeg(seg, ea + 2, 4);
                if (_bitness != 64 && i.Code == Code.Lgdt_m1632_16 || i.Code == Code.Lidt_m1632_16) b &= 0xFF_FFFF;
                if (_bitness == 64 && !IsCanonical(b)) throw GP(0, "LGDT/LIDT with a non-canonical base");
                var t = new DescriptorTableRegister { Base = b, Limit = limit };
                if (i.Mnemonic == Mnemonic.Lgdt) _gdtr = t; else _idtr = t;
                return true;
            }
            case Mnemonic.Sgdt:
            case Mnemonic.Sidt:
            {
                if (i.Op0Kind != OpKind.Memory) throw Fault(Vectors.UD, "SGDT/SIDT with a register operand");
                var t = i.Mnemonic == Mnemonic.Sgdt ? _gdtr : _idtr;
                int seg = SegOf(in i);
                ulong ea = EffectiveAddress(ref d);
                WriteSeg(seg, ea, 2, t.Limit);
                if (_bitness == 64) WriteSeg(seg, ea + 2, 8, t.Base);
                else WriteSeg(seg, ea + 2, 4, t.Base & 0xFFFF_FFFF);
                return true;
            }
            case Mnemonic.Ltr:
                RequireProtected("LTR");
                RequireCpl0("LTR");
                LoadSystemSegment((ushort)ReadOp(ref d, 0, 2), tr: true);
                return true;
            case Mnemonic.Lldt:
                RequireProtected("LLDT");
                RequireCpl0("LLDT");
                LoadSystemSegment((ushort)ReadOp(ref d, 0, 2), tr: false);
                return true;
            case Mnemonic.Str:
                RequireProtected("STR");
                WriteOp(ref d, 0, i.Op0Kind == OpKind.Register ? RegSize(i.Op0Register) : 2, _tr.Selector);
                return true;
            case Mnemonic.Sldt:
                RequireProtected("SLDT");
                WriteOp(ref d, 0, i.Op0Kind == OpKind.Register ? RegSize(i.Op0Register) : 2, _ldtr.Selector);
                return true;
            case Mnemonic.Smsw:
                WriteOp(ref d, 0, i.Op0Kind == OpKind.Register ? RegSize(i.Op0Register) : 2, Context.Cr0Value & (i.Op0Kind == OpKind.Register ? 0xFFFF_FFFFUL : 0xFFFF));
                return true;
            case Mnemonic.Lmsw:
            {
                RequireCpl0("LMSW");
                ulong v = ReadOp(ref d, 0, 2) & 0xF;
                ulong cr0 = Context.Cr0Value;
                v |= cr0 & Cr0.PE; // LMSW cannot clear PE
                var f = Context.WriteCr0((cr0 & ~0xFUL) | v);
                if (f.IsFault) throw GP(0, "invalid CR0 value from LMSW");
                if (((cr0 ^ v) & Cr0.PE) != 0) FlushDecodeCache();
                UpdateMode();
                return true;
            }
            case Mnemonic.Clts:
                RequireCpl0("CLTS");
                Context.WriteCr0(Context.Cr0Value & ~Cr0.TS);
                return true;
            case Mnemonic.Rdmsr:
            {
                RequireCpl0("RDMSR");
                uint index = (uint)R[1];
                if (!TryReadMsr(index, out ulong v)) throw GP(0, IsX2ApicMsr(index) ? X2ApicRefusal(index, "RDMSR") : $"RDMSR of unimplemented MSR 0x{index:x}");
                R[0] = (uint)v; R[2] = v >> 32;
                return true;
            }
            case Mnemonic.Wrmsr:
            {
                RequireCpl0("WRMSR");
                uint index = (uint)R[1];
                ulong v = ((ulong)(uint)R[2] << 32) | (uint)R[0];
                WriteMsr(index, v);
                return true;
            }
            case Mnemonic.Cpuid:
            {
                var (a, b, c, dx) = Cpuid.Query((uint)R[0], (uint)R[1], Context.Cr4Value, Context.Id);
                // SDM Vol. 3A §10.4.3: with IA32_APIC_BASE.EN clear, CPUID.1:EDX.APIC (bit 9) reads 0 (QEMU too).
                if ((uint)R[0] == 1 && LocalApic is { } apic && (apic.ApicBase & (1UL << 11)) == 0) dx &= ~(1u << 9);
                R[0] = a; R[3] = b; R[1] = c; R[2] = dx;
                return true;
            }
            case Mnemonic.Invlpg:
            {
                RequireCpl0("INVLPG");
                ulong lin = Linear(SegOf(in i), EffectiveAddress(ref d), 1, false);
                if (_bitness != 64) lin &= 0xFFFF_FFFF;
                _mmu.Invlpg(lin);
                return true;
            }
            case Mnemonic.Invpcid:
            {
                if (!Context.Features.Pcid) throw Fault(Vectors.UD, "INVPCID not reported by CPUID");
                RequireCpl0("INVPCID");
                ulong type = ReadReg(i.Op0Register);
                int seg = SegOf(in i);
                ulong ea = EffectiveAddress(ref d);
                ulong pcid = ReadSeg(seg, ea, 8);
                ulong la = ReadSeg(seg, ea + 8, 8);
                if (type > 3) throw GP(0, $"INVPCID type {type} is not 0-3");
                if ((pcid >> 12) != 0) throw GP(0, "INVPCID descriptor bits 63:12 of the PCID field must be 0");
                var f = _mmu.Invpcid((int)type, pcid, la);
                if (f.IsFault) throw GP(0, $"INVPCID type {type}: {FaultRules.Describe(f.Rule)}");
                return true;
            }
            case Mnemonic.Rdtsc:
            case Mnemonic.Rdtscp:
            {
                if ((Context.Cr4Value & Cr4.TSD) != 0 && _protected && Context.Cpl != 0) throw GP(0, "RDTSC at CPL > 0 with CR4.TSD=1");
                ulong tsc = Tsc();
                R[0] = (uint)tsc; R[2] = tsc >> 32;
                if (i.Mnemonic == Mnemonic.Rdtscp) R[1] = (uint)Msr.TscAux;
                return true;
            }
            case Mnemonic.Wbinvd:
            case Mnemonic.Invd:
                RequireCpl0(i.Mnemonic.ToString().ToUpperInvariant());
                return true;
            case Mnemonic.Stac:
            case Mnemonic.Clac:
                if (!Context.Features.Smap) throw Fault(Vectors.UD, "STAC/CLAC without SMAP");
                RequireCpl0(i.Mnemonic.ToString().ToUpperInvariant());
                LoadFlags(i.Mnemonic == Mnemonic.Stac ? Rflags | RFlags.AC : Rflags & ~RFlags.AC);
                return true;
            case Mnemonic.Rdpkru:
                if ((Context.Cr4Value & Cr4.PKE) == 0) throw Fault(Vectors.UD, "RDPKRU with CR4.PKE=0");
                if ((uint)R[1] != 0) throw GP(0, "RDPKRU with ECX != 0");
                R[0] = Context.Pkru; R[2] = 0;
                return true;
            case Mnemonic.Wrpkru:
                if ((Context.Cr4Value & Cr4.PKE) == 0) throw Fault(Vectors.UD, "WRPKRU with CR4.PKE=0");
                if ((uint)R[1] != 0 || (uint)R[2] != 0) throw GP(0, "WRPKRU with ECX or EDX != 0");
                Context.Pkru = (uint)R[0];
                return true;
            case Mnemonic.Swapgs:
            {
                if (_bitness != 64) throw Fault(Vectors.UD, "SWAPGS outside 64-bit mode");
                RequireCpl0("SWAPGS");
                (Seg[(int)SegmentIndex.GS].Base, Msr.KernelGsBase) = (Msr.KernelGsBase, Seg[(int)SegmentIndex.GS].Base);
                return true;
            }
            case Mnemonic.Lds:
            case Mnemonic.Les:
            case Mnemonic.Lss:
            case Mnemonic.Lfs:
            case Mnemonic.Lgs:
            {
                int size = RegSize(i.Op0Register);
                int seg = SegOf(in i);
                ulong ea = EffectiveAddress(ref d);
                ulong off = ReadSeg(seg, ea, size);
                ushort sel = (ushort)ReadSeg(seg, ea + (ulong)size, 2);
                var target = i.Mnemonic switch
                {
                    Mnemonic.Lds => SegmentIndex.DS, Mnemonic.Les => SegmentIndex.ES, Mnemonic.Lss => SegmentIndex.SS,
                    Mnemonic.Lfs => SegmentIndex.FS, _ => SegmentIndex.GS,
                };
                LoadDataSegment(target, sel);
                WriteReg(i.Op0Register, off);
                return true;
            }
            case Mnemonic.Rdrand:
            case Mnemonic.Rdseed:
                return false;
        }
        return false;
    }

    private void RequireProtected(string what)
    {
        if (!_protected || (_flagsRest & RFlags.VM) != 0) throw Fault(Vectors.UD, $"{what} in real or virtual-8086 mode");
    }

    private void LoadSystemSegment(ushort selector, bool tr)
    {
        uint err = (uint)(selector & 0xFFFC);
        if ((selector & 0xFFFC) == 0)
        {
            if (tr) throw GP(0, "LTR with the null selector");
            _ldtr = new SegmentRegister { Selector = selector, Limit = 0, Attributes = 0 };
            return;
        }
        if ((selector & 4) != 0) throw GP(err, $"{(tr ? "LTR" : "LLDT")} selector 0x{selector:x} points into the LDT");
        ulong desc = ReadDescriptor(selector, out ulong addr);
        var s = SegmentRegister.FromDescriptor(selector, desc);
        int type = s.Attributes & 0x1F;
        if (tr ? type is not (0x09 or 0x01) || (Context.LongModeActive && type != 0x09) : type != 0x02)
            throw GP(err, $"selector 0x{selector:x} is not an available {(tr ? "TSS" : "LDT")} descriptor (type {type & 0xF})");
        if (!s.Present) throw Fault(Vectors.NP, err, $"{(tr ? "TSS" : "LDT")} descriptor 0x{selector:x} not present");
        if (Context.LongModeActive)
        {
            ulong hi = ReadLinear(addr + 8, 8, Privilege.ImplicitSupervisor);
            s.Base |= (hi & 0xFFFF_FFFF) << 32;
        }
        if (tr)
        {
            WriteLinear(addr + 5, 1, ((desc >> 40) & 0xFF) | 2, Privilege.ImplicitSupervisor); // mark busy
            s.Attributes |= 2;
            _tr = s;
        }
        else _ldtr = s;
    }

    private ulong Tsc()
    {
        SyncClock();
        return (ulong)(Clock.Nanoseconds + Msr.TscOffset);
    }

    /// <summary>Reads an MSR; false for one the model does not implement (RDMSR raises #GP(0)).</summary>
    public bool TryReadMsr(uint index, out ulong value)
    {
        switch (index)
        {
            case 0x10: value = Tsc(); return true;
            case 0x1B: value = LocalApic?.ApicBase ?? Msr.ApicBase; return true;
            case 0x3A: value = 1; return true; // IA32_FEATURE_CONTROL: locked, VMX off
            case 0xFE: value = 0x508; return true; // MTRRcap: 8 variable ranges, fixed ranges, WC
            case 0x174: value = Msr.SysenterCs; return true;
            case 0x175: value = Msr.SysenterEsp; return true;
            case 0x176: value = Msr.SysenterEip; return true;
            case 0x1A0: value = Msr.MiscEnable; return true;
            case 0x277: value = Context.PatValue; return true;
            case 0x2FF: value = Msr.MtrrDefType; return true;
            case 0xC000_0080: value = Context.EferValue; return true;
            case 0xC000_0081: value = Msr.Star; return true;
            case 0xC000_0082: value = Msr.Lstar; return true;
            case 0xC000_0083: value = Msr.Cstar; return true;
            case 0xC000_0084: value = Msr.Fmask; return true;
            case 0xC000_0100: value = Seg[(int)SegmentIndex.FS].Base; return true;
            case 0xC000_0101: value = Seg[(int)SegmentIndex.GS].Base; return true;
            case 0xC000_0102: value = Msr.KernelGsBase; return true;
            case 0xC000_0103: value = Msr.TscAux; return true;
        }
        if (IsMtrr(index))
        {
            value = Msr.Mtrrs.GetValueOrDefault(index);
            return true;
        }
        if (IsX2ApicMsr(index)) return TryReadX2ApicMsr(index, out value);
        value = 0;
        ReportOnce($"rdmsr:{index:x}", $"RDMSR of MSR 0x{index:x}, which the model does not implement, at {Where()}: #GP(0) as on QEMU");
        return false;
    }

    private static bool IsMtrr(uint index) => index is >= 0x200 and <= 0x20F or 0x250 or 0x258 or 0x259 or >= 0x268 and <= 0x26F;

    private void WriteMsr(uint index, ulong v)
    {
        switch (index)
        {
            case 0x10:
                SyncClock();
                Msr.TscOffset = (long)v - Clock.Nanoseconds;
                return;
            case 0x1B:
                if ((v & ~(0xFFFF_FFFFF000UL | (1UL << 11) | (1UL << 10) | (1UL << 8))) != 0 || (v >> Context.Features.MaxPhysAddrBits) != 0)
                    throw GP(0, $"IA32_APIC_BASE value 0x{v:x} sets reserved bits");
                if (LocalApic is { } apic && !apic.TrySetApicBase(v))
                    throw GP(0, $"IA32_APIC_BASE value 0x{v:x} is a mode change the SDM refuses from 0x{apic.ApicBase:x} (§10.12.5: x2APIC needs CPUID.1:ECX.x2APIC and EN, and is left through disabled only)");
                Msr.ApicBase = LocalApic?.ApicBase ?? v;
                ApicBaseWritten?.Invoke(v);
                return;
            case 0x174: Msr.SysenterCs = v & 0xFFFF; return;
            case 0x175: CheckCanonicalMsr(index, v); Msr.SysenterEsp = v; return;
            case 0x176: CheckCanonicalMsr(index, v); Msr.SysenterEip = v; return;
            case 0x1A0: Msr.MiscEnable = v; return;
            case 0x277:
                if (Context.WritePat(v).IsFault) throw GP(0, $"IA32_PAT value 0x{v:x} has an invalid memory type");
                return;
            case 0x2FF: Msr.MtrrDefType = v; return;
            case 0xC000_0080:
            {
                // LMA is read-only: writes keep the current value.
                ulong nv = (v & ~Efer.LMA) | (Context.EferValue & Efer.LMA);
                if (Context.WriteEfer(nv).IsFault) throw GP(0, $"IA32_EFER value 0x{v:x} sets reserved bits or changes LME while paging is on");
                UpdateMode();
                return;
            }
            case 0xC000_0081: Msr.Star = v; return;
            case 0xC000_0082: CheckCanonicalMsr(index, v); Msr.Lstar = v; return;
            case 0xC000_0083: CheckCanonicalMsr(index, v); Msr.Cstar = v; return;
            case 0xC000_0084: Msr.Fmask = v & 0xFFFF_FFFF; return;
            case 0xC000_0100: CheckCanonicalMsr(index, v); Seg[(int)SegmentIndex.FS].Base = v; return;
            case 0xC000_0101: CheckCanonicalMsr(index, v); Seg[(int)SegmentIndex.GS].Base = v; return;
            case 0xC000_0102: CheckCanonicalMsr(index, v); Msr.KernelGsBase = v; return;
            case 0xC000_0103: Msr.TscAux = v & 0xFFFF_FFFF; return;
        }
        if (IsMtrr(index))
        {
            Msr.Mtrrs[index] = v;
            return;
        }
        if (IsX2ApicMsr(index))
        {
            if (LocalApic?.TryWriteX2ApicMsr(index, v) == true) return;
            throw GP(0, X2ApicRefusal(index, "WRMSR"));
        }
        ReportOnce($"wrmsr:{index:x}", $"WRMSR of MSR 0x{index:x}, which the model does not implement, at {Where()}: #GP(0) as on QEMU");
        throw GP(0, $"WRMSR of unimplemented MSR 0x{index:x}");
    }

    private void CheckCanonicalMsr(uint index, ulong v)
    {
        if (!IsCanonical(v)) throw GP(0, $"MSR 0x{index:x} value 0x{v:x} is not canonical");
    }
}
