using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Iced.Intel;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>
/// SSE and SSE2 (legacy encodings, SDM Vol. 1 ch. 10-11): XMM0-15 and MXCSR; data movement, logical, integer
/// arithmetic, compare, shift and shuffle instructions. Floating-point semantics are in Sse.Float.cs, FXSAVE/FXRSTOR in
/// FxSave.cs. An instruction reaches this file only after the integer dispatch found nothing (see
/// <see cref="TryExecuteFloatingPoint"/>), so the integer hot path is unchanged.
/// <para>Checks, in the SDM's order: CR0.EM=1 or CR4.OSFXSR=0 → #UD, CR0.TS=1 → #NM, then a 16-byte memory operand that is
/// not 16-byte aligned → #GP(0) except for MOVUPS, MOVUPD, MOVDQU and LDDQU. A 16-byte access that crosses a page
/// boundary translates both pages before it writes anything. MMX-register forms, SSE3 beyond MOVDDUP/MOVSHDUP/MOVSLDUP/
/// LDDQU/FISTTP, SSSE3, SSE4 and VEX encodings are not implemented (#UD, reported once).</para>
/// </summary>
public sealed partial class X86Cpu
{
    private readonly Vector128<byte>[] _xmm = new Vector128<byte>[16];
    private uint _mxcsr = MxcsrReset;

    /// <summary>MXCSR after power-up or RESET.</summary>
    public const uint MxcsrReset = 0x1F80;

    /// <summary>
    /// MXCSR_MASK as FXSAVE reports it: 0xFFFF, every bit of 0-15 writable, DAZ (bit 6) included (what QEMU and processors
    /// since the Pentium 4 report). Bits 16-31 are reserved: LDMXCSR or FXRSTOR with one of them set raises #GP(0).
    /// </summary>
    public const uint MxcsrMask = 0xFFFF;

    private const int XmVector = 19;

    /// <summary>Reads XMM register <paramref name="index"/> (0-15).</summary>
    public UInt128 GetXmm(int index)
    {
        var v = _xmm[index & 15].AsUInt64();
        return ((UInt128)v.GetElement(1) << 64) | v.GetElement(0);
    }

    /// <summary>Writes XMM register <paramref name="index"/> (0-15).</summary>
    public void SetXmm(int index, UInt128 value)
        => _xmm[index & 15] = Vector128.Create((ulong)value, (ulong)(value >> 64)).AsByte();

    /// <summary>The SSE control and status register.</summary>
    public uint Mxcsr
    {
        get => _mxcsr;
        set
        {
            if ((value & ~MxcsrMask) != 0) throw new ArgumentOutOfRangeException(nameof(value), value, "MXCSR bits 16-31 are reserved.");
            _mxcsr = value;
        }
    }

    private void ResetSse()
    {
        Array.Clear(_xmm);
        _mxcsr = MxcsrReset;
    }

    // ------------------------------------------------------------------ dispatch and checks

    /// <summary>Which unit an instruction code belongs to: 0 none, 1 x87, 2 SSE/SSE2/SSE3 (legacy encoding), 3 FXSAVE/FXRSTOR.</summary>
    private static readonly byte[] s_fpUnit = BuildUnitTable();

    private static byte[] BuildUnitTable()
    {
        var t = new byte[Enum.GetValues<Code>().Length];
        for (int c = 0; c < t.Length; c++)
        {
            var code = (Code)c;
            if (code.Encoding() != EncodingKind.Legacy) continue;
            var m = code.Mnemonic();
            var f = code.CpuidFeatures();
            if (m is Mnemonic.Fxsave or Mnemonic.Fxsave64 or Mnemonic.Fxrstor or Mnemonic.Fxrstor64) t[c] = 3;
            else if (m == Mnemonic.Wait || m == Mnemonic.Fisttp || Array.IndexOf(f, CpuidFeature.FPU) >= 0 || Array.IndexOf(f, CpuidFeature.FPU287) >= 0
                || Array.IndexOf(f, CpuidFeature.FPU387) >= 0) t[c] = 1;
            else if (Array.Exists(f, x => x is CpuidFeature.SSE or CpuidFeature.SSE2 or CpuidFeature.SSE3)) t[c] = 2;
        }
        return t;
    }

    /// <summary>
    /// Executes an x87, SSE/SSE2 or FXSAVE/FXRSTOR instruction after the device-availability checks; false when the
    /// instruction is none of these or is not implemented (the caller then raises #UD).
    /// </summary>
    private bool TryExecuteFloatingPoint(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        int unit = s_fpUnit[(int)i.Code];
        if (unit == 0) return false;
        ulong cr0 = Context.Cr0Value;
        switch (unit)
        {
            case 1:
                if (i.Mnemonic == Mnemonic.Wait)
                {
                    if ((cr0 & (Cr0.TS | Cr0.MP)) == (Cr0.TS | Cr0.MP)) throw Fault(Vectors.NM, "WAIT with CR0.TS=1 and CR0.MP=1");
                }
                else if ((cr0 & (Cr0.EM | Cr0.TS)) != 0) throw Fault(Vectors.NM, "x87 instruction with CR0.EM or CR0.TS set");
                return ExecuteX87(ref d);
            case 2:
                if (i.Mnemonic == Mnemonic.Movnti) return ExecuteSse(ref d); // a general-register store: no CR0/CR4 checks
                for (int n = 0; n < i.OpCount; n++)
                    if (i.GetOpKind(n) == OpKind.Register && i.GetOpRegister(n).IsMM()) return false;
                if ((cr0 & Cr0.EM) != 0) throw Fault(Vectors.UD, "SSE instruction with CR0.EM=1");
                if ((Context.Cr4Value & Cr4.OSFXSR) == 0) throw Fault(Vectors.UD, "SSE instruction with CR4.OSFXSR=0");
                if ((cr0 & Cr0.TS) != 0) throw Fault(Vectors.NM, "SSE instruction with CR0.TS=1");
                return ExecuteSse(ref d);
            default:
                if ((cr0 & (Cr0.EM | Cr0.TS)) != 0) throw Fault(Vectors.NM, "FXSAVE/FXRSTOR with CR0.EM or CR0.TS set");
                if (i.Mnemonic is Mnemonic.Fxsave or Mnemonic.Fxsave64) FxSave(ref d, i.Mnemonic == Mnemonic.Fxsave64);
                else FxRstor(ref d, i.Mnemonic == Mnemonic.Fxrstor64);
                return true;
        }
    }

    // ------------------------------------------------------------------ memory helpers

    /// <summary>Reads a byte range at <paramref name="lin"/>; every page is translated before anything is read.</summary>
    internal void ReadLinearBytes(ulong lin, Span<byte> dst)
    {
        if (_bitness != 64) lin &= 0xFFFF_FFFF;
        var r = _mmu.ReadBytes(lin, dst, DataPrivilege);
        if (!r.Ok)
        {
            if (r.Fault.IsFault) RaiseMmuFault(r.Fault, lin, AccessKind.Read);
            AccessFailed(r, lin, 8, AccessKind.Read, false);
        }
    }

    /// <summary>Writes a byte range at <paramref name="lin"/>; every page is translated for writing before anything is written.</summary>
    internal void WriteLinearBytes(ulong lin, ReadOnlySpan<byte> src)
    {
        if (_bitness != 64) lin &= 0xFFFF_FFFF;
        var r = _mmu.WriteBytes(lin, src, DataPrivilege);
        if (!r.Ok)
        {
            if (r.Fault.IsFault) RaiseMmuFault(r.Fault, lin, AccessKind.Write);
            AccessFailed(r, lin, 8, AccessKind.Write, false);
        }
    }

    internal void ReadSegBytes(int seg, ulong ea, Span<byte> dst) => ReadLinearBytes(Linear(seg, ea, dst.Length, false), dst);

    internal void WriteSegBytes(int seg, ulong ea, ReadOnlySpan<byte> src) => WriteLinearBytes(Linear(seg, ea, src.Length, true), src);

    private Vector128<byte> Read128(ulong lin)
    {
        ulong lo = ReadLinear(lin, 8, DataPrivilege);
        ulong hi = ReadLinear(lin + 8, 8, DataPrivilege);
        return Vector128.Create(lo, hi).AsByte();
    }

    private void Write128(ulong lin, Vector128<byte> v)
    {
        var q = v.AsUInt64();
        if ((lin & 0xFFF) <= 0xFF0)
        {
            WriteLinear(lin, 8, q.GetElement(0), DataPrivilege);
            WriteLinear(lin + 8, 8, q.GetElement(1), DataPrivilege);
            return;
        }
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(b, q.GetElement(0));
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], q.GetElement(1));
        WriteLinearBytes(lin, b);
    }

    /// <summary>The linear address of the memory operand, with the #GP(0) alignment check of legacy SSE 16-byte operands.</summary>
    private ulong SseAddress(ref DecodedInstruction d, int size, bool write, bool aligned)
    {
        ulong lin = Linear(SegOf(in d.I), EffectiveAddress(ref d), size, write);
        if (aligned && (lin & 15) != 0) throw GP(0, $"misaligned 16-byte SSE operand at 0x{lin:x}");
        return lin;
    }

    private static bool UnalignedOk(Mnemonic m) => m is Mnemonic.Movups or Mnemonic.Movupd or Mnemonic.Movdqu or Mnemonic.Lddqu;

    private static int Xi(Register r) => r - Register.XMM0;

    /// <summary>Operand <paramref name="n"/> as a vector: an XMM register, or memory of the instruction's memory size zero-extended.</summary>
    private Vector128<byte> XmmOrMem(ref DecodedInstruction d, int n)
    {
        ref var i = ref d.I;
        var k = i.GetOpKind(n);
        if (k == OpKind.Register)
        {
            var r = i.GetOpRegister(n);
            if (r.IsXMM()) return _xmm[Xi(r)];
            return Vector128.CreateScalar(ReadReg(r)).AsByte();
        }
        int size = i.MemorySize.GetSize();
        ulong lin = SseAddress(ref d, size, false, size == 16 && !UnalignedOk(i.Mnemonic));
        return size switch
        {
            16 => Read128(lin),
            8 => Vector128.CreateScalar(ReadLinear(lin, 8, DataPrivilege)).AsByte(),
            4 => Vector128.CreateScalar((uint)ReadLinear(lin, 4, DataPrivilege)).AsByte(),
            2 => Vector128.CreateScalar((ushort)ReadLinear(lin, 2, DataPrivilege)).AsByte(),
            _ => Vector128.CreateScalar((byte)ReadLinear(lin, 1, DataPrivilege)),
        };
    }

    /// <summary>Writes the low <paramref name="size"/> bytes of <paramref name="v"/> to the memory operand.</summary>
    private void StoreMem(ref DecodedInstruction d, Vector128<byte> v, int size, bool aligned)
    {
        ulong lin = SseAddress(ref d, size, true, aligned);
        if (size == 16) Write128(lin, v);
        else WriteLinear(lin, size, v.AsUInt64().GetElement(0), DataPrivilege);
    }

    private ref Vector128<byte> Dst(ref DecodedInstruction d) => ref _xmm[Xi(d.I.Op0Register)];

    // ------------------------------------------------------------------ SSE dispatch

    private bool ExecuteSse(ref DecodedInstruction d)
    {
        ref var i = ref d.I;
        var m = i.Mnemonic;
        switch (m)
        {
            // ---------------------------------------------------------- moves
            case Mnemonic.Movaps: case Mnemonic.Movapd: case Mnemonic.Movdqa:
            case Mnemonic.Movups: case Mnemonic.Movupd: case Mnemonic.Movdqu: case Mnemonic.Lddqu:
                if (i.Op0Kind == OpKind.Memory) StoreMem(ref d, _xmm[Xi(i.Op1Register)], 16, !UnalignedOk(m));
                else Dst(ref d) = XmmOrMem(ref d, 1);
                return true;
            case Mnemonic.Movntps: case Mnemonic.Movntpd: case Mnemonic.Movntdq:
                StoreMem(ref d, _xmm[Xi(i.Op1Register)], 16, true);
                return true;
            case Mnemonic.Movnti:
                WriteSeg(SegOf(in i), EffectiveAddress(ref d), RegSize(i.Op1Register), ReadReg(i.Op1Register));
                return true;
            case Mnemonic.Movss:
            case Mnemonic.Movsd:
            {
                int size = m == Mnemonic.Movss ? 4 : 8;
                if (i.Op0Kind == OpKind.Memory) { StoreMem(ref d, _xmm[Xi(i.Op1Register)], size, false); return true; }
                var src = XmmOrMem(ref d, 1);
                if (i.Op1Kind == OpKind.Memory) Dst(ref d) = src; // loads zero the rest of the register
                else Dst(ref d) = size == 4
                    ? Dst(ref d).AsUInt32().WithElement(0, src.AsUInt32().GetElement(0)).AsByte()
                    : Dst(ref d).AsUInt64().WithElement(0, src.AsUInt64().GetElement(0)).AsByte();
                return true;
            }
            case Mnemonic.Movd:
            case Mnemonic.Movq:
            {
                int size = m == Mnemonic.Movd ? 4 : 8;
                if (i.Op0Kind == OpKind.Register && i.Op0Register.IsXMM())
                {
                    var src = XmmOrMem(ref d, 1);
                    Dst(ref d) = size == 4 ? Vector128.CreateScalar(src.AsUInt32().GetElement(0)).AsByte() : Vector128.CreateScalar(src.AsUInt64().GetElement(0)).AsByte();
                }
                else
                {
                    ulong v = _xmm[Xi(i.Op1Register)].AsUInt64().GetElement(0);
                    if (i.Op0Kind == OpKind.Register) WriteReg(i.Op0Register, size == 4 ? (uint)v : v);
                    else StoreMem(ref d, Vector128.CreateScalar(v).AsByte(), size, false);
                }
                return true;
            }
            case Mnemonic.Movlps: case Mnemonic.Movlpd:
            case Mnemonic.Movhps: case Mnemonic.Movhpd:
            {
                int lane = m is Mnemonic.Movhps or Mnemonic.Movhpd ? 1 : 0;
                if (i.Op0Kind == OpKind.Memory)
                {
                    ulong v = _xmm[Xi(i.Op1Register)].AsUInt64().GetElement(lane);
                    StoreMem(ref d, Vector128.CreateScalar(v).AsByte(), 8, false);
                }
                else Dst(ref d) = Dst(ref d).AsUInt64().WithElement(lane, XmmOrMem(ref d, 1).AsUInt64().GetElement(0)).AsByte();
                return true;
            }
            case Mnemonic.Movhlps:
                Dst(ref d) = Dst(ref d).AsUInt64().WithElement(0, _xmm[Xi(i.Op1Register)].AsUInt64().GetElement(1)).AsByte();
                return true;
            case Mnemonic.Movlhps:
                Dst(ref d) = Dst(ref d).AsUInt64().WithElement(1, _xmm[Xi(i.Op1Register)].AsUInt64().GetElement(0)).AsByte();
                return true;
            case Mnemonic.Movddup:
            {
                ulong lo = XmmOrMem(ref d, 1).AsUInt64().GetElement(0);
                Dst(ref d) = Vector128.Create(lo, lo).AsByte();
                return true;
            }
            case Mnemonic.Movshdup:
            case Mnemonic.Movsldup:
            {
                var s = XmmOrMem(ref d, 1).AsUInt32();
                int o = m == Mnemonic.Movshdup ? 1 : 0;
                Dst(ref d) = Vector128.Create(s.GetElement(o), s.GetElement(o), s.GetElement(2 + o), s.GetElement(2 + o)).AsByte();
                return true;
            }
            case Mnemonic.Movmskps: WriteReg(i.Op0Register, Vector128.ExtractMostSignificantBits(_xmm[Xi(i.Op1Register)].AsUInt32())); return true;
            case Mnemonic.Movmskpd: WriteReg(i.Op0Register, Vector128.ExtractMostSignificantBits(_xmm[Xi(i.Op1Register)].AsUInt64())); return true;
            case Mnemonic.Pmovmskb: WriteReg(i.Op0Register, Vector128.ExtractMostSignificantBits(_xmm[Xi(i.Op1Register)])); return true;
            case Mnemonic.Maskmovdqu:
            {
                var v = _xmm[Xi(i.Op0Register)];
                var mask = _xmm[Xi(i.Op1Register)];
                ulong di = d.AddrSize == 8 ? R[7] : d.AddrSize == 4 ? (uint)R[7] : (ushort)R[7];
                int seg = i.SegmentPrefix == Register.None ? (int)SegmentIndex.DS : (int)i.SegmentPrefix - (int)Register.ES;
                for (int k = 0; k < 16; k++)
                    if ((mask.GetElement(k) & 0x80) != 0) WriteSeg(seg, (di + (ulong)k) & Mask(d.AddrSize), 1, v.GetElement(k));
                return true;
            }

            // ---------------------------------------------------------- logical
            case Mnemonic.Pand: case Mnemonic.Andps: case Mnemonic.Andpd: Dst(ref d) &= XmmOrMem(ref d, 1); return true;
            case Mnemonic.Por: case Mnemonic.Orps: case Mnemonic.Orpd: Dst(ref d) |= XmmOrMem(ref d, 1); return true;
            case Mnemonic.Pxor: case Mnemonic.Xorps: case Mnemonic.Xorpd: Dst(ref d) ^= XmmOrMem(ref d, 1); return true;
            case Mnemonic.Pandn: case Mnemonic.Andnps: case Mnemonic.Andnpd: Dst(ref d) = ~Dst(ref d) & XmmOrMem(ref d, 1); return true;

            // ---------------------------------------------------------- integer arithmetic and compare
            case Mnemonic.Paddb: Dst(ref d) = Dst(ref d) + XmmOrMem(ref d, 1); return true;
            case Mnemonic.Paddw: Dst(ref d) = (Dst(ref d).AsUInt16() + XmmOrMem(ref d, 1).AsUInt16()).AsByte(); return true;
            case Mnemonic.Paddd: Dst(ref d) = (Dst(ref d).AsUInt32() + XmmOrMem(ref d, 1).AsUInt32()).AsByte(); return true;
            case Mnemonic.Paddq: Dst(ref d) = (Dst(ref d).AsUInt64() + XmmOrMem(ref d, 1).AsUInt64()).AsByte(); return true;
            case Mnemonic.Psubb: Dst(ref d) = Dst(ref d) - XmmOrMem(ref d, 1); return true;
            case Mnemonic.Psubw: Dst(ref d) = (Dst(ref d).AsUInt16() - XmmOrMem(ref d, 1).AsUInt16()).AsByte(); return true;
            case Mnemonic.Psubd: Dst(ref d) = (Dst(ref d).AsUInt32() - XmmOrMem(ref d, 1).AsUInt32()).AsByte(); return true;
            case Mnemonic.Psubq: Dst(ref d) = (Dst(ref d).AsUInt64() - XmmOrMem(ref d, 1).AsUInt64()).AsByte(); return true;
            case Mnemonic.Pmullw: Dst(ref d) = (Dst(ref d).AsUInt16() * XmmOrMem(ref d, 1).AsUInt16()).AsByte(); return true;
            case Mnemonic.Pcmpeqb: Dst(ref d) = Vector128.Equals(Dst(ref d), XmmOrMem(ref d, 1)); return true;
            case Mnemonic.Pcmpeqw: Dst(ref d) = Vector128.Equals(Dst(ref d).AsUInt16(), XmmOrMem(ref d, 1).AsUInt16()).AsByte(); return true;
            case Mnemonic.Pcmpeqd: Dst(ref d) = Vector128.Equals(Dst(ref d).AsUInt32(), XmmOrMem(ref d, 1).AsUInt32()).AsByte(); return true;
            case Mnemonic.Pcmpgtb: Dst(ref d) = Vector128.GreaterThan(Dst(ref d).AsSByte(), XmmOrMem(ref d, 1).AsSByte()).AsByte(); return true;
            case Mnemonic.Pcmpgtw: Dst(ref d) = Vector128.GreaterThan(Dst(ref d).AsInt16(), XmmOrMem(ref d, 1).AsInt16()).AsByte(); return true;
            case Mnemonic.Pcmpgtd: Dst(ref d) = Vector128.GreaterThan(Dst(ref d).AsInt32(), XmmOrMem(ref d, 1).AsInt32()).AsByte(); return true;
            case Mnemonic.Pmaxub: Dst(ref d) = Vector128.Max(Dst(ref d), XmmOrMem(ref d, 1)); return true;
            case Mnemonic.Pminub: Dst(ref d) = Vector128.Min(Dst(ref d), XmmOrMem(ref d, 1)); return true;
            case Mnemonic.Pmaxsw: Dst(ref d) = Vector128.Max(Dst(ref d).AsInt16(), XmmOrMem(ref d, 1).AsInt16()).AsByte(); return true;
            case Mnemonic.Pminsw: Dst(ref d) = Vector128.Min(Dst(ref d).AsInt16(), XmmOrMem(ref d, 1).AsInt16()).AsByte(); return true;
            case Mnemonic.Paddsb: case Mnemonic.Paddusb: case Mnemonic.Psubsb: case Mnemonic.Psubusb:
            case Mnemonic.Paddsw: case Mnemonic.Paddusw: case Mnemonic.Psubsw: case Mnemonic.Psubusw:
            case Mnemonic.Pmulhw: case Mnemonic.Pmulhuw: case Mnemonic.Pavgb: case Mnemonic.Pavgw:
                Dst(ref d) = LaneOp(m, Dst(ref d), XmmOrMem(ref d, 1));
                return true;
            case Mnemonic.Pmuludq:
            {
                var a = Dst(ref d).AsUInt32();
                var b = XmmOrMem(ref d, 1).AsUInt32();
                Dst(ref d) = Vector128.Create((ulong)a.GetElement(0) * b.GetElement(0), (ulong)a.GetElement(2) * b.GetElement(2)).AsByte();
                return true;
            }
            case Mnemonic.Pmaddwd:
            {
                var a = Dst(ref d).AsInt16();
                var b = XmmOrMem(ref d, 1).AsInt16();
                Span<int> r = stackalloc int[4];
                for (int k = 0; k < 4; k++)
                    r[k] = unchecked(a.GetElement(2 * k) * b.GetElement(2 * k) + a.GetElement(2 * k + 1) * b.GetElement(2 * k + 1));
                Dst(ref d) = Vector128.Create<int>(r).AsByte();
                return true;
            }
            case Mnemonic.Psadbw:
            {
                var a = Dst(ref d);
                var b = XmmOrMem(ref d, 1);
                ulong s0 = 0, s1 = 0;
                for (int k = 0; k < 8; k++) s0 += (ulong)Math.Abs(a.GetElement(k) - b.GetElement(k));
                for (int k = 8; k < 16; k++) s1 += (ulong)Math.Abs(a.GetElement(k) - b.GetElement(k));
                Dst(ref d) = Vector128.Create(s0, s1).AsByte();
                return true;
            }

            // ---------------------------------------------------------- shifts
            case Mnemonic.Psllw: case Mnemonic.Pslld: case Mnemonic.Psllq:
            case Mnemonic.Psrlw: case Mnemonic.Psrld: case Mnemonic.Psrlq:
            case Mnemonic.Psraw: case Mnemonic.Psrad:
            {
                ulong count = i.Op1Kind == OpKind.Immediate8 ? i.Immediate8 : XmmOrMem(ref d, 1).AsUInt64().GetElement(0);
                Dst(ref d) = Shift(m, Dst(ref d), count);
                return true;
            }
            case Mnemonic.Pslldq:
            case Mnemonic.Psrldq:
            {
                int n = i.Immediate8;
                var v = Dst(ref d).AsUInt64();
                UInt128 x = ((UInt128)v.GetElement(1) << 64) | v.GetElement(0);
                x = n > 15 ? 0 : m == Mnemonic.Pslldq ? x << (8 * n) : x >> (8 * n);
                Dst(ref d) = Vector128.Create((ulong)x, (ulong)(x >> 64)).AsByte();
                return true;
            }

            // ---------------------------------------------------------- shuffles, unpacks, packs, inserts
            case Mnemonic.Pshufd:
            case Mnemonic.Pshuflw:
            case Mnemonic.Pshufhw:
            {
                var s = XmmOrMem(ref d, 1);
                int imm = i.Immediate8;
                if (m == Mnemonic.Pshufd)
                {
                    var w = s.AsUInt32();
                    Dst(ref d) = Vector128.Create(w.GetElement(imm & 3), w.GetElement((imm >> 2) & 3), w.GetElement((imm >> 4) & 3), w.GetElement((imm >> 6) & 3)).AsByte();
                }
                else
                {
                    var w = s.AsUInt16();
                    int o = m == Mnemonic.Pshufhw ? 4 : 0;
                    var r = w;
                    for (int k = 0; k < 4; k++) r = r.WithElement(o + k, w.GetElement(o + ((imm >> (2 * k)) & 3)));
                    Dst(ref d) = r.AsByte();
                }
                return true;
            }
            case Mnemonic.Shufps:
            {
                var a = Dst(ref d).AsUInt32();
                var b = XmmOrMem(ref d, 1).AsUInt32();
                int imm = i.Immediate8;
                Dst(ref d) = Vector128.Create(a.GetElement(imm & 3), a.GetElement((imm >> 2) & 3), b.GetElement((imm >> 4) & 3), b.GetElement((imm >> 6) & 3)).AsByte();
                return true;
            }
            case Mnemonic.Shufpd:
            {
                var a = Dst(ref d).AsUInt64();
                var b = XmmOrMem(ref d, 1).AsUInt64();
                int imm = i.Immediate8;
                Dst(ref d) = Vector128.Create(a.GetElement(imm & 1), b.GetElement((imm >> 1) & 1)).AsByte();
                return true;
            }
            case Mnemonic.Punpcklbw: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 1, false); return true;
            case Mnemonic.Punpcklwd: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 2, false); return true;
            case Mnemonic.Punpckldq: case Mnemonic.Unpcklps: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 4, false); return true;
            case Mnemonic.Punpcklqdq: case Mnemonic.Unpcklpd: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 8, false); return true;
            case Mnemonic.Punpckhbw: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 1, true); return true;
            case Mnemonic.Punpckhwd: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 2, true); return true;
            case Mnemonic.Punpckhdq: case Mnemonic.Unpckhps: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 4, true); return true;
            case Mnemonic.Punpckhqdq: case Mnemonic.Unpckhpd: Dst(ref d) = Interleave(Dst(ref d), XmmOrMem(ref d, 1), 8, true); return true;
            case Mnemonic.Packsswb: case Mnemonic.Packuswb: case Mnemonic.Packssdw:
                Dst(ref d) = Pack(m, Dst(ref d), XmmOrMem(ref d, 1));
                return true;
            case Mnemonic.Pextrw:
                WriteReg(i.Op0Register, _xmm[Xi(i.Op1Register)].AsUInt16().GetElement(i.Immediate8 & 7));
                return true;
            case Mnemonic.Pinsrw:
            {
                ushort w = i.Op1Kind == OpKind.Register ? (ushort)ReadReg(i.Op1Register) : (ushort)ReadSeg(SegOf(in i), EffectiveAddress(ref d), 2);
                Dst(ref d) = Dst(ref d).AsUInt16().WithElement(i.Immediate8 & 7, w).AsByte();
                return true;
            }

            // ---------------------------------------------------------- MXCSR
            case Mnemonic.Ldmxcsr:
            {
                uint v = (uint)ReadSeg(SegOf(in i), EffectiveAddress(ref d), 4);
                if ((v & ~MxcsrMask) != 0) throw GP(0, $"LDMXCSR with reserved bits set (0x{v:x8})");
                _mxcsr = v;
                return true;
            }
            case Mnemonic.Stmxcsr:
                WriteSeg(SegOf(in i), EffectiveAddress(ref d), 4, _mxcsr);
                return true;
            default:
                return ExecuteSseFloat(ref d);
        }
    }

    private static Vector128<byte> Interleave(Vector128<byte> a, Vector128<byte> b, int width, bool high)
    {
        Span<byte> r = stackalloc byte[16];
        int start = high ? 8 : 0;
        for (int k = 0; k < 8 / width; k++)
            for (int j = 0; j < width; j++)
            {
                r[2 * k * width + j] = a.GetElement(start + k * width + j);
                r[(2 * k + 1) * width + j] = b.GetElement(start + k * width + j);
            }
        return Vector128.Create<byte>(r);
    }

    private static Vector128<byte> Pack(Mnemonic m, Vector128<byte> a, Vector128<byte> b)
    {
        if (m == Mnemonic.Packssdw)
        {
            Span<short> r = stackalloc short[8];
            var x = a.AsInt32();
            var y = b.AsInt32();
            for (int k = 0; k < 4; k++)
            {
                r[k] = (short)Math.Clamp(x.GetElement(k), short.MinValue, short.MaxValue);
                r[k + 4] = (short)Math.Clamp(y.GetElement(k), short.MinValue, short.MaxValue);
            }
            return Vector128.Create<short>(r).AsByte();
        }
        Span<byte> o = stackalloc byte[16];
        var p = a.AsInt16();
        var q = b.AsInt16();
        for (int k = 0; k < 8; k++)
        {
            int u = p.GetElement(k), v = q.GetElement(k);
            o[k] = m == Mnemonic.Packuswb ? (byte)Math.Clamp(u, 0, 255) : (byte)(sbyte)Math.Clamp(u, -128, 127);
            o[k + 8] = m == Mnemonic.Packuswb ? (byte)Math.Clamp(v, 0, 255) : (byte)(sbyte)Math.Clamp(v, -128, 127);
        }
        return Vector128.Create<byte>(o);
    }

    private static Vector128<byte> LaneOp(Mnemonic m, Vector128<byte> a, Vector128<byte> b)
    {
        bool bytes = m is Mnemonic.Paddsb or Mnemonic.Paddusb or Mnemonic.Psubsb or Mnemonic.Psubusb or Mnemonic.Pavgb;
        if (bytes)
        {
            Span<byte> r = stackalloc byte[16];
            for (int k = 0; k < 16; k++)
            {
                int x = a.GetElement(k), y = b.GetElement(k);
                int sx = (sbyte)x, sy = (sbyte)y;
                r[k] = m switch
                {
                    Mnemonic.Paddsb => (byte)(sbyte)Math.Clamp(sx + sy, -128, 127),
                    Mnemonic.Psubsb => (byte)(sbyte)Math.Clamp(sx - sy, -128, 127),
                    Mnemonic.Paddusb => (byte)Math.Min(x + y, 255),
                    Mnemonic.Psubusb => (byte)Math.Max(x - y, 0),
                    _ => (byte)((x + y + 1) >> 1),
                };
            }
            return Vector128.Create<byte>(r);
        }
        Span<ushort> w = stackalloc ushort[8];
        var ua = a.AsUInt16();
        var ub = b.AsUInt16();
        for (int k = 0; k < 8; k++)
        {
            int x = ua.GetElement(k), y = ub.GetElement(k);
            int sx = (short)x, sy = (short)y;
            w[k] = m switch
            {
                Mnemonic.Paddsw => (ushort)(short)Math.Clamp(sx + sy, short.MinValue, short.MaxValue),
                Mnemonic.Psubsw => (ushort)(short)Math.Clamp(sx - sy, short.MinValue, short.MaxValue),
                Mnemonic.Paddusw => (ushort)Math.Min(x + y, 0xFFFF),
                Mnemonic.Psubusw => (ushort)Math.Max(x - y, 0),
                Mnemonic.Pmulhw => (ushort)((sx * sy) >> 16),
                Mnemonic.Pmulhuw => (ushort)((uint)(x * y) >> 16),
                _ => (ushort)((x + y + 1) >> 1),
            };
        }
        return Vector128.Create<ushort>(w).AsByte();
    }

    private static Vector128<byte> Shift(Mnemonic m, Vector128<byte> v, ulong count)
    {
        switch (m)
        {
            case Mnemonic.Psllw: return count > 15 ? default : Vector128.ShiftLeft(v.AsUInt16(), (int)count).AsByte();
            case Mnemonic.Pslld: return count > 31 ? default : Vector128.ShiftLeft(v.AsUInt32(), (int)count).AsByte();
            case Mnemonic.Psllq: return count > 63 ? default : Vector128.ShiftLeft(v.AsUInt64(), (int)count).AsByte();
            case Mnemonic.Psrlw: return count > 15 ? default : Vector128.ShiftRightLogical(v.AsUInt16(), (int)count).AsByte();
            case Mnemonic.Psrld: return count > 31 ? default : Vector128.ShiftRightLogical(v.AsUInt32(), (int)count).AsByte();
            case Mnemonic.Psrlq: return count > 63 ? default : Vector128.ShiftRightLogical(v.AsUInt64(), (int)count).AsByte();
            case Mnemonic.Psraw: return Vector128.ShiftRightArithmetic(v.AsInt16(), (int)Math.Min(count, 15)).AsByte();
            default: return Vector128.ShiftRightArithmetic(v.AsInt32(), (int)Math.Min(count, 31)).AsByte();
        }
    }
}
