using Iced.Intel;
using HwMemModel.Mmu;

namespace HwMemModel.Cpu;

/// <summary>One decoded instruction with what the executor needs beside Iced's view of it.</summary>
internal struct DecodedInstruction
{
    public Instruction I;
    /// <summary>Address size in bytes (2, 4 or 8), from the mode and a 0x67 prefix.</summary>
    public byte AddrSize;
    /// <summary>True for the last instruction of its block.</summary>
    public bool EndsBlock;
    /// <summary>The pre-decoded fast form (64-bit mode), or kind None.</summary>
    public FastOp Fast;
}

/// <summary>
/// A run of instructions decoded from one physical page, starting at a given instruction pointer in a given code
/// size. Blocks end at control transfers, at instructions that change the mode or paging, at 64 instructions, and
/// before an instruction that crosses into the next page.
/// </summary>
internal sealed class DecodedBlock
{
    public ulong Pa;
    public ulong Rip;
    public ulong Linear;
    public int Bitness;
    public DecodedInstruction[] Insns = [];
    public bool Valid = true;
}

public sealed partial class X86Cpu
{
    private const int FrontCacheSize = 4096;
    private const int MaxBlockInstructions = 64;
    private readonly DecodedBlock?[] _front = new DecodedBlock?[FrontCacheSize];
    private readonly Dictionary<ulong, DecodedBlock> _blocks = [];
    private readonly Dictionary<ulong, List<DecodedBlock>> _blocksByPage = [];
    private readonly byte[] _fetchBuffer = new byte[4096 + 16];
    private bool _blockBroken;
    // The previous fast-path fetch translation (see GetBlock).
    private int _fetchEpoch = -1;
    private ulong _fetchPage, _fetchPa;
    private Privilege _fetchPriv;
    private bool _fetchLarge;

    private static int FrontIndex(ulong pa, ulong rip) => (int)((pa ^ (rip << 3) ^ (pa >> 12)) & (FrontCacheSize - 1));

    /// <summary>Drops every decoded block (after a mode change that the key does not capture, or on reset).</summary>
    internal void FlushDecodeCache()
    {
        foreach (var b in _blocks.Values) b.Valid = false;
        _blocks.Clear();
        _blocksByPage.Clear();
        Array.Clear(_front);
    }

    private void OnCodePageWritten(ulong pageBase)
    {
        if (_blocksByPage.Remove(pageBase, out var list))
        {
            foreach (var b in list)
            {
                if (!b.Valid) continue;
                b.Valid = false;
                Counters.BlocksInvalidated++;
                if (_blocks.TryGetValue(b.Pa, out var cur) && cur == b) _blocks.Remove(b.Pa);
                int fi = FrontIndex(b.Pa, b.Rip);
                if (_front[fi] == b) _front[fi] = null;
            }
            _blockBroken = true;
        }
    }

    /// <summary>Finds or decodes the block at the current CS:RIP. Raises the fetch fault (#PF, #GP) when the fetch fails.</summary>
    private DecodedBlock GetBlock()
    {
        ulong rip = _rip;
        ulong linear = _bitness == 64 ? rip : (Seg[(int)SegmentIndex.CS].Base + rip) & 0xFFFF_FFFF;
        var priv = Context.Cpl == 3 ? Privilege.User : Privilege.Supervisor;
        ulong pa;
        if (_fetchEpoch == _mmu.TlbEpoch && (linear >> 12) == _fetchPage && priv == _fetchPriv)
        {
            // Same page as the previous block start, no TLB or control change since: the ITLB would answer the same.
            pa = _fetchPa | (linear & 0xFFF);
            _mmu.CountRepeatedFetchHit(_fetchLarge);
        }
        else if (_mmu.TryFastTranslateFetch(linear, priv, out pa, out bool large))
        {
            _fetchEpoch = _mmu.TlbEpoch;
            _fetchPage = linear >> 12;
            _fetchPriv = priv;
            _fetchPa = pa & ~0xFFFUL;
            _fetchLarge = large;
        }
        else
        {
            _fetchEpoch = -1;
            var fault = _mmu.Translate(linear, AccessKind.Execute, priv, out var t);
            if (fault.IsFault) RaiseMmuFault(fault, linear, AccessKind.Execute);
            pa = t.PhysicalAddress;
        }
        int fi = FrontIndex(pa, rip);
        var b = _front[fi];
        if (b is not null && b.Pa == pa && b.Rip == rip && b.Bitness == _bitness && b.Linear == linear)
        {
            Counters.BlockHits++;
            return b;
        }
        if (_blocks.TryGetValue(pa, out b) && b.Rip == rip && b.Bitness == _bitness && b.Linear == linear)
        {
            Counters.BlockHits++;
            _front[fi] = b;
            return b;
        }
        b = Decode(pa, rip, linear, priv);
        if (b.Valid)
        {
            _blocks[pa] = b;
            _front[fi] = b;
        }
        return b;
    }

    private DecodedBlock Decode(ulong pa, ulong rip, ulong linear, Privilege priv)
    {
        int inPage = (int)(0x1000 - (pa & 0xFFF));
        var bytes = _fetchBuffer.AsSpan(0, inPage);
        _bus.ReadBytes(pa, bytes, _attrs);
        var list = new List<DecodedInstruction>(16);
        var reader = new ByteArrayCodeReader(_fetchBuffer, 0, inPage);
        var decoder = Decoder.Create(_bitness, reader, rip, DecoderOptions.NoInvalidCheck);
        int offset = 0;
        bool crossing = false;
        while (list.Count < MaxBlockInstructions)
        {
            decoder.Decode(out var insn);
            if (decoder.LastError == DecoderError.NoMoreBytes)
            {
                crossing = true;
                break;
            }
            var d = new DecodedInstruction { I = insn, AddrSize = AddressSize(_fetchBuffer.AsSpan(offset, insn.Length)) };
            offset += insn.Length;
            bool end = EndsBlock(in insn) || offset >= inPage;
            d.EndsBlock = end;
            if (_bitness == 64) Precompile(ref d);
            list.Add(d);
            if (end) break;
        }

        if (list.Count == 0 && crossing)
            return DecodeCrossing(rip, linear, priv);
        if (crossing) list[^1] = list[^1] with { EndsBlock = true };

        var block = new DecodedBlock { Pa = pa, Rip = rip, Linear = linear, Bitness = _bitness, Insns = list.ToArray() };
        Counters.BlocksDecoded++;
        Counters.InstructionsDecoded += list.Count;
        ulong page = pa & ~0xFFFUL;
        if (!_blocksByPage.TryGetValue(page, out var onPage)) _blocksByPage[page] = onPage = [];
        onPage.Add(block);
        _bus.WatchPageWrites(page);
        return block;
    }

    /// <summary>An instruction that starts on one page and ends on the next: fetched through the MMU each time, not cached.</summary>
    private DecodedBlock DecodeCrossing(ulong rip, ulong linear, Privilege priv)
    {
        _fetchEpoch = -1; // these fetches look up the ITLB again
        var buf = new byte[15];
        int first = (int)(0x1000 - (linear & 0xFFF));
        // First the bytes on this page (already translated), then the next page: its translation decides the fault.
        var r = _mmu.ReadBytes(linear, buf.AsSpan(0, first), priv, AccessKind.Execute);
        if (r.Fault.IsFault) RaiseMmuFault(r.Fault, linear, AccessKind.Execute);
        ulong next = _bitness == 64 ? linear + (ulong)first : (linear + (ulong)first) & 0xFFFF_FFFF;
        r = _mmu.ReadBytes(next, buf.AsSpan(first, 15 - first), priv, AccessKind.Execute);
        if (r.Fault.IsFault) RaiseMmuFault(r.Fault, next, AccessKind.Execute);
        var decoder = Decoder.Create(_bitness, new ByteArrayCodeReader(buf), rip, DecoderOptions.NoInvalidCheck);
        decoder.Decode(out var insn);
        Counters.InstructionsDecoded++;
        var d = new DecodedInstruction { I = insn, AddrSize = AddressSize(buf.AsSpan(0, Math.Max(insn.Length, 1))), EndsBlock = true };
        return new DecodedBlock { Pa = ulong.MaxValue, Rip = rip, Linear = linear, Bitness = _bitness, Insns = [d], Valid = false };
    }

    private byte AddressSize(ReadOnlySpan<byte> bytes)
    {
        bool has67 = false;
        foreach (byte b in bytes)
        {
            if (b == 0x67) { has67 = true; continue; }
            if (b is 0x66 or 0xF0 or 0xF2 or 0xF3 or 0x2E or 0x36 or 0x3E or 0x26 or 0x64 or 0x65) continue;
            if (_bitness == 64 && (b & 0xF0) == 0x40) continue;
            break;
        }
        return _bitness switch
        {
            64 => (byte)(has67 ? 4 : 8),
            32 => (byte)(has67 ? 2 : 4),
            _ => (byte)(has67 ? 4 : 2),
        };
    }

    private static bool EndsBlock(in Instruction i)
    {
        if (i.FlowControl != FlowControl.Next) return true;
        switch (i.Mnemonic)
        {
            case Mnemonic.Mov when i.Op0Kind == OpKind.Register && (i.Op0Register.IsCR() || i.Op0Register == Register.SS || i.Op0Register == Register.CS):
            case Mnemonic.Pop when i.Op0Kind == OpKind.Register && i.Op0Register == Register.SS:
            case Mnemonic.Hlt:
            case Mnemonic.Wrmsr:
            case Mnemonic.Invlpg:
            case Mnemonic.Invpcid:
            case Mnemonic.Popf:
            case Mnemonic.Popfd:
            case Mnemonic.Popfq:
            case Mnemonic.Sti:
            case Mnemonic.Lmsw:
            case Mnemonic.Clts:
            case Mnemonic.In:
            case Mnemonic.Out:
            case Mnemonic.Insb:
            case Mnemonic.Insw:
            case Mnemonic.Insd:
            case Mnemonic.Outsb:
            case Mnemonic.Outsw:
            case Mnemonic.Outsd:
            case Mnemonic.Lidt:
            case Mnemonic.Lgdt:
            case Mnemonic.Ltr:
            case Mnemonic.Lldt:
            case Mnemonic.Wrpkru:
            case Mnemonic.Stac:
            case Mnemonic.Clac:
                return true;
        }
        return false;
    }
}
