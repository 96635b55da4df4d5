using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>
/// FXSAVE/FXRSTOR (SDM Vol. 2A, Tables 3-53 and 3-56): the 512-byte area must be 16-byte aligned (#GP(0) otherwise).
/// Layout: FCW at 0, FSW at 2, abridged FTW at 4, FOP at 6 (saved as 0), then FIP/FDP as two 64-bit pointers with REX.W
/// (FXSAVE64) or as 32-bit offsets with the CS and DS selectors at 12 and 20; MXCSR at 24, MXCSR_MASK (0xFFFF) at 28,
/// ST0-ST7 at 32 (16 bytes each, 10 used) and XMM registers at 160 (XMM0-15 in 64-bit mode, XMM0-7 otherwise).
/// Reserved bytes inside the saved part are written as zeros; bytes 416-511 (288-511 outside 64-bit mode) are not
/// touched. As in QEMU, with CR4.OSFXSR=0 MXCSR and the XMM registers are neither saved nor restored. FXRSTOR with a
/// reserved MXCSR bit set raises #GP(0) and changes nothing. Every page of the area is translated before the first byte
/// is written, so a #PF leaves memory unchanged.
/// </summary>
public sealed partial class X86Cpu
{
    private ulong FxArea(ref DecodedInstruction d, int length, bool write)
    {
        ulong lin = Linear(SegOf(in d.I), EffectiveAddress(ref d), length, write);
        if ((lin & 15) != 0) throw GP(0, $"FXSAVE/FXRSTOR area at 0x{lin:x} is not 16-byte aligned");
        return lin;
    }

    private void FxSave(ref DecodedInstruction d, bool rex64)
    {
        bool sse = (Context.Cr4Value & Cr4.OSFXSR) != 0;
        int xmmCount = Is64 ? 16 : 8;
        int length = sse ? 160 + 16 * xmmCount : 160;
        ulong lin = FxArea(ref d, length, true);
        Span<byte> a = stackalloc byte[length];
        if (sse) a.Clear();
        else ReadLinearBytes(lin, a); // bytes 24-31 (MXCSR, MXCSR_MASK) are left as they are
        WriteFxImage(a, sse, xmmCount, rex64);
        WriteLinearBytes(lin, a);
    }

    private void WriteFxImage(Span<byte> a, bool sse, int xmmCount, bool rex64)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(a, _fcw);
        BinaryPrimitives.WriteUInt16LittleEndian(a[2..], FpuStatusWord);
        a[4] = _fpValid; // bit i tags physical register R(i), as in the full tag word
        a[5] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(a[6..], 0);
        if (rex64)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(a[8..], _fip);
            BinaryPrimitives.WriteUInt64LittleEndian(a[16..], _fdp);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(a[8..], (uint)_fip);
            BinaryPrimitives.WriteUInt32LittleEndian(a[12..], Seg[(int)SegmentIndex.CS].Selector);
            BinaryPrimitives.WriteUInt32LittleEndian(a[16..], (uint)_fdp);
            BinaryPrimitives.WriteUInt32LittleEndian(a[20..], Seg[(int)SegmentIndex.DS].Selector);
        }
        if (sse)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(a[24..], _mxcsr);
            BinaryPrimitives.WriteUInt32LittleEndian(a[28..], MxcsrMask);
        }
        for (int k = 0; k < 8; k++)
        {
            var (mm, se) = GetSt(k);
            var slot = a.Slice(32 + 16 * k, 16);
            slot.Clear();
            BinaryPrimitives.WriteUInt64LittleEndian(slot, mm);
            BinaryPrimitives.WriteUInt16LittleEndian(slot[8..], se);
        }
        if (sse)
            for (int k = 0; k < xmmCount; k++)
            {
                var q = _xmm[k].AsUInt64();
                BinaryPrimitives.WriteUInt64LittleEndian(a[(160 + 16 * k)..], q.GetElement(0));
                BinaryPrimitives.WriteUInt64LittleEndian(a[(168 + 16 * k)..], q.GetElement(1));
            }
    }

    private void FxRstor(ref DecodedInstruction d, bool rex64)
    {
        bool sse = (Context.Cr4Value & Cr4.OSFXSR) != 0;
        int xmmCount = Is64 ? 16 : 8;
        int length = sse ? 160 + 16 * xmmCount : 160;
        ulong lin = FxArea(ref d, length, false);
        Span<byte> a = stackalloc byte[length];
        ReadLinearBytes(lin, a);
        uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(a[24..]);
        if (sse && (mxcsr & ~MxcsrMask) != 0) throw GP(0, $"FXRSTOR with reserved MXCSR bits set (0x{mxcsr:x8})");
        ReadFxImage(a, sse, xmmCount, rex64);
    }

    private void ReadFxImage(ReadOnlySpan<byte> a, bool sse, int xmmCount, bool rex64)
    {
        uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(a[24..]);
        _fcw = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(a) | 0x40);
        FpuStatusWord = BinaryPrimitives.ReadUInt16LittleEndian(a[2..]);
        _fpValid = a[4];
        if (rex64)
        {
            _fip = BinaryPrimitives.ReadUInt64LittleEndian(a[8..]);
            _fdp = BinaryPrimitives.ReadUInt64LittleEndian(a[16..]);
        }
        else
        {
            _fip = BinaryPrimitives.ReadUInt32LittleEndian(a[8..]);
            _fdp = BinaryPrimitives.ReadUInt32LittleEndian(a[16..]);
        }
        for (int k = 0; k < 8; k++)
        {
            int p = Phys(k);
            _fpMant[p] = BinaryPrimitives.ReadUInt64LittleEndian(a[(32 + 16 * k)..]);
            _fpExp[p] = BinaryPrimitives.ReadUInt16LittleEndian(a[(40 + 16 * k)..]);
        }
        if (!sse) return;
        _mxcsr = mxcsr;
        for (int k = 0; k < xmmCount; k++)
            _xmm[k] = Vector128.Create(BinaryPrimitives.ReadUInt64LittleEndian(a[(160 + 16 * k)..]), BinaryPrimitives.ReadUInt64LittleEndian(a[(168 + 16 * k)..])).AsByte();
    }

    /// <summary>
    /// Host API (a kernel's context switch): the x87 and SSE state as FXSAVE64 lays it out (512 bytes; FOP saved as 0,
    /// all sixteen XMM registers), whatever CR4.OSFXSR says.
    /// </summary>
    public byte[] SaveFpuState()
    {
        var a = new byte[512];
        WriteFxImage(a, sse: true, xmmCount: 16, rex64: true);
        return a;
    }

    /// <summary>Host API: loads an image written by <see cref="SaveFpuState"/> (FXRSTOR64's layout).</summary>
    public void RestoreFpuState(ReadOnlySpan<byte> image)
    {
        if (image.Length != 512) throw new ArgumentException($"An FXSAVE image is 512 bytes, not {image.Length}.", nameof(image));
        uint mxcsr = BinaryPrimitives.ReadUInt32LittleEndian(image[24..]);
        if ((mxcsr & ~MxcsrMask) != 0) throw new ArgumentException($"MXCSR 0x{mxcsr:x8} in the image sets reserved bits (allowed: 0x{MxcsrMask:x}).", nameof(image));
        ReadFxImage(image, sse: true, xmmCount: 16, rex64: true);
    }

    /// <summary>
    /// Host API: the state a new Linux process starts with (init_fpstate): FNINIT's x87 state (FCW 0x037F, all
    /// registers empty), MXCSR 0x1F80, and every XMM and x87 register zero.
    /// </summary>
    public void InitFpuState()
    {
        FnInit();
        Array.Clear(_fpMant);
        Array.Clear(_fpExp);
        Array.Clear(_xmm);
        _mxcsr = MxcsrReset;
        _fip = _fdp = 0;
    }

    /// <summary>The x87 and SSE state that INIT leaves unchanged.</summary>
    private sealed record FpuState(ulong[] Mant, ushort[] Exp, ushort Fcw, ushort Fsw, byte Valid, ulong Fip, ulong Fdp, Vector128<byte>[] Xmm, uint Mxcsr);

    private FpuState CaptureFpuState()
        => new((ulong[])_fpMant.Clone(), (ushort[])_fpExp.Clone(), _fcw, FpuStatusWord, _fpValid, _fip, _fdp, (Vector128<byte>[])_xmm.Clone(), _mxcsr);

    private void RestoreFpuState(FpuState s)
    {
        s.Mant.CopyTo(_fpMant, 0);
        s.Exp.CopyTo(_fpExp, 0);
        _fcw = s.Fcw;
        FpuStatusWord = s.Fsw;
        _fpValid = s.Valid;
        _fip = s.Fip;
        _fdp = s.Fdp;
        s.Xmm.CopyTo(_xmm, 0);
        _mxcsr = s.Mxcsr;
    }
}
