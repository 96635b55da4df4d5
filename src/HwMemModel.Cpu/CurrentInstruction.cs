using Iced.Intel;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <content>The instruction being executed, for reports such as the cross-CPU coherence checker's.</content>
public sealed partial class X86Cpu
{
    /// <summary>
    /// The instruction pointer (RIP, or the CS-relative IP outside 64-bit mode) of the instruction being executed, or of
    /// the last one executed between runs.
    /// </summary>
    public ulong CurrentInstructionPointer => _curIp;

    /// <summary>
    /// The instruction at <see cref="CurrentInstructionPointer"/> and its text in Intel syntax, read as a debugger reads
    /// (a page walk of the current tables: no TLB, no side effects), for <see cref="PagingWriteLog.DescribeCpu"/>.
    /// </summary>
    public CpuPosition CurrentPosition()
    {
        ulong linear = _bitness == 64 ? _curIp : Seg[(int)SegmentIndex.CS].Base + _curIp;
        var buf = new byte[15];
        int n = DebugReadLinear(linear, buf);
        if (n == 0) return new CpuPosition(_curIp, "(not readable)");
        var decoder = Decoder.Create(_bitness, new ByteArrayCodeReader(buf, 0, n), _curIp);
        decoder.Decode(out var insn);
        _formatter ??= new IntelFormatter();
        var output = new StringOutput();
        _formatter.Format(in insn, output);
        return new CpuPosition(_curIp, output.ToStringAndReset());
    }
}
