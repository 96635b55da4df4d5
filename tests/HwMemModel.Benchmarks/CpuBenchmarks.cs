using BenchmarkDotNet.Attributes;
using HwMemModel.Cpu;
using HwMemModel.Machine;
using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Guest instructions per second of the CPU model in 64-bit mode with paging on (4 KiB pages, TLBs modelled), on the
/// default machine: a loop mixing ALU work (add, xor, shifts, imul, lea, cmp and branches) with loads and stores to
/// a 64 KiB buffer, a push/pop and a call/ret (16 instructions per iteration). Each invocation retires exactly
/// <see cref="Instructions"/> instructions, so the reported time per operation is the time per guest instruction.
/// Target (issue 4): at least 100 million instructions per second on one core.
/// </summary>
[MemoryDiagnoser]
public class CpuBenchmarks
{
    private const int Instructions = 10_000_000;
    private const ulong Code = 0x20_0000, Data = 0x40_0000, Stack = 0x30_0000, Tables = 0x10_0000;
    private PcMachine _m = null!;

    /// <summary>The loop body, also used by <c>hwmem bench</c>'s description.</summary>
    public static void EmitLoop(Assembler a)
    {
        var loop = a.CreateLabel();
        var sub = a.CreateLabel();
        a.mov(rsi, Data);
        a.xor(ecx, ecx);
        a.mov(rax, 0x9E37_79B9_7F4A_7C15);
        a.jmp(loop);
        a.Label(ref sub);
        a.add(rbx, rax);
        a.ret();
        a.Label(ref loop);
        a.add(rax, rcx);                               // ALU
        a.mov(rdx, rax);
        a.shr(rdx, 13);
        a.xor(rax, rdx);
        a.lea(rdi, __[rcx * 8 + 0x40]);
        a.and(edi, 0xFFF8);                            // offset in the 64 KiB buffer
        a.mov(__qword_ptr[rsi + rdi], rax);            // store
        a.imul(rdx, rax, 31);
        a.add(rbx, __qword_ptr[rsi + rdi]);            // load
        a.push(rdx);
        a.pop(r8);
        a.call(sub);                                   // call + ret (2 instructions)
        a.inc(ecx);
        a.cmp(ecx, 0x7FFF_FFFF);
        a.jne(loop);
        a.hlt();
    }

    [GlobalSetup]
    public void Setup()
    {
        _m = PcMachine.Create();
        var asm = new Assembler(64);
        EmitLoop(asm);
        var ms = new MemoryStream();
        asm.Assemble(new StreamCodeWriter(ms), Code);
        _m.Bus.LoadImage(Code, ms.ToArray());
        var pt = new PageTableBuilder(_m.Bus, Tables, 0x10_0000);
        pt.MapRange(0, 0, 8UL << 20, PageSize.Size4K, PteFlags.Writable);
        _m.Context.EnterLongMode(pt.Root);
        _m.Cpu.SetSegment(SegmentIndex.CS, new SegmentRegister { Selector = 8, Limit = 0xFFFF_FFFF, Attributes = 0xA09B });
        _m.Cpu.Rip = Code;
        _m.Cpu.SetRegister(4, Stack);
        _m.Run(1_000_000); // warm the TLBs and the decode cache
    }

    /// <summary>Runs <see cref="Instructions"/> guest instructions.</summary>
    [Benchmark(OperationsPerInvoke = Instructions)]
    public long GuestInstruction() => _m.Run(Instructions).Instructions;
}

/// <summary>
/// The same measure on the built-in <c>bench</c> firmware image (what <c>hwmem bench --qemu</c> also runs on QEMU):
/// BIOS boot to long mode, then a ~20-instruction loop over a 64 KiB buffer in 4 KiB pages with a 2 MiB-page
/// stack, IMUL, ROL, a memory-operand SHR, CALL/RET and PUSH/POP.
/// </summary>
public class CpuBenchImageBenchmarks
{
    private const int Instructions = 10_000_000;
    private PcMachine _m = null!;

    private void Boot()
    {
        var image = HwMemModel.Firmware.FirmwareImages.Get("bench");
        _m = PcMachine.FromBios(image.Bytes, "bench.bin", new PcMachineOptions { SerialOutput = Stream.Null });
        _m.Run(2_000_000); // boot, page tables, buffer fill: into the loop
    }

    [GlobalSetup]
    public void Setup() => Boot();

    /// <summary>Runs <see cref="Instructions"/> guest instructions of the image's loop.</summary>
    [Benchmark(OperationsPerInvoke = Instructions)]
    public long GuestInstruction()
    {
        var r = _m.Run(Instructions);
        if (r.Instructions != Instructions) Boot(); // the image finished (after ~975 M instructions): start again
        return r.Instructions;
    }
}
