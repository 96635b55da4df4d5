using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>smp-bench</c> BIOS image: the <c>--smp</c> speed workload. The BSP maps a 64 KiB buffer per CPU (CPU n's at
/// 0x8000000000 + n × 64 KiB, 4 KiB pages to scattered frames, as in <c>bench</c>), brings every AP up to long mode on
/// the same page tables and then every CPU, the BSP included, fills its buffer and runs <see cref="Iterations"/>
/// iterations of the <c>bench</c> image's loop (the same instructions: a load and a store with a stride, ALU, IMUL, LEA,
/// ROL, a conditional jump, CALL/RET with PUSH, a memory-operand SHR and POP; about 19.5 instructions an iteration). The
/// BSP waits for every AP and prints its accumulator and how many CPUs ended with the same one (all of them: every CPU
/// does the same work on its own buffer).
/// </summary>
internal static class SmpBenchImage
{
    /// <summary>Loop iterations per CPU.</summary>
    public const int Iterations = 4_000_000;

    public const string Description =
        "BIOS: --smp speed workload: every CPU (APs in long mode on the BSP's page tables) runs 4 million iterations of the 'bench' loop over its own 64 KiB buffer in 4 KiB pages; prints the accumulator and how many CPUs share it; exits 0";

    private const ulong Va = 0x80_0000_0000;
    private const ulong Pdpt = 0x30_0000;
    private const ulong Pd = 0x30_1000;
    private const ulong Pt = 0x30_2000;    // two pages: 64 CPUs x 16 entries
    private const uint Frames = 0x40_0000;
    private const int BufferPages = 16;
    private const uint Work = 0xA800;      // the per-CPU work routine, called by the BSP and by each AP
    private const uint Done = 0x704;
    private const uint Results = 0xD000;

    public static byte[] Build() => BiosRom.Build(null, Body);

    /// <summary>
    /// The work routine (EBP = CPU index): fills the CPU's buffer, runs the bench loop, stores the accumulator at
    /// Results[EBP]. Clobbers RAX, RBX, RCX, RDX, R8-R11 (the BSP's CPU count in EBX too; R12D stays).
    /// </summary>
    private static byte[] WorkCode() => ApLongMode.Assemble(64, Work, a =>
    {
        var helper = a.CreateLabel();
        var fill = a.CreateLabel();
        var loop = a.CreateLabel();
        var skip = a.CreateLabel();
        a.mov(eax, ebp);
        a.shl(eax, 16);
        a.mov(rbx, Va);
        a.add(rbx, rax);
        a.xor(ecx, ecx);
        a.mov(rdx, 0x0123_4567_89AB_CDEF);
        a.Label(ref fill);
        a.mov(rax, rcx);
        a.imul(rax, rdx);
        a.mov(__qword_ptr[rbx + rcx * 8], rax);
        a.inc(ecx);
        a.cmp(ecx, BufferPages * 512);
        a.jb(fill);

        // The bench image's loop (BenchImage), instruction for instruction.
        a.mov(r8, 0x9E37_79B9_7F4A_7C15);
        a.xor(r9d, r9d);
        a.xor(r11d, r11d);
        a.mov(ecx, Iterations);
        a.Label(ref loop);
        a.mov(eax, r9d);
        a.and(eax, 0xFFF8);
        a.mov(rdx, __qword_ptr[rbx + rax]);
        a.add(r8, rdx);
        a.xor(r8, rcx);
        a.rol(r8, 7);
        a.imul(r10, rdx, 31);
        a.lea(r9, __[r9 + r10 * 8 + 0x48]);
        a.mov(__qword_ptr[rbx + rax], r8);
        a.cmp(r10, r8);
        a.jb(skip);
        a.inc(r11);
        a.Label(ref skip);
        a.call(helper);
        a.dec(ecx);
        a.jnz(loop);
        a.mov(__qword_ptr[rbp * 8 + Results], r8);
        a.ret();

        a.Label(ref helper);
        a.push(r9);
        a.shr(__qword_ptr[rsp], 3);
        a.xor(r8, __qword_ptr[rsp]);
        a.pop(r9);
        a.ret();
    });

    private static byte[] ApCode() => ApLongMode.Assemble(64, ApLongMode.Entry64, a =>
    {
        var halt = a.CreateLabel();
        ApLongMode.EmitApPrologue(a);
        a.call(Work);
        a.@lock.inc(__dword_ptr[Done]);
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);
    });

    private static void Body(Asm asm)
    {
        var a = asm.A;
        ApLongMode.EmitCpuCount(asm);
        asm.Print("smp-bench: ");
        asm.PrintDec(ebx);
        asm.Print($" CPUs, each {Iterations} iterations of the bench loop over its own 64 KiB buffer\n");

        // Buffers: PML4[1] -> PDPT -> PD -> two PTs; entry j (CPU j / 16, page j % 16) -> frame of CPU j/16, (j*7) mod 16.
        a.cld();
        a.mov(edi, (uint)Pdpt);
        a.mov(ecx, 0x4000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        Set(a, BiosRom.Pml4 + 8, Pdpt | P | RW);
        Set(a, Pdpt, Pd | P | RW);
        Set(a, Pd, Pt | P | RW);
        Set(a, Pd + 8, (Pt + 0x1000) | P | RW);
        var map = asm.NewLabel();
        a.xor(ecx, ecx);
        asm.Bind(ref map);
        a.mov(eax, ecx);
        a.and(eax, BufferPages - 1);
        a.imul(eax, eax, 7);
        a.and(eax, BufferPages - 1);
        a.shl(eax, 12);
        a.mov(edx, ecx);
        a.shr(edx, 4);
        a.shl(edx, 16);
        a.add(eax, edx);
        a.add(eax, Frames | (uint)(P | RW));
        a.mov(__qword_ptr[rcx * 8 + (long)Pt], rax);
        a.inc(ecx);
        a.cmp(ecx, 64 * BufferPages);
        a.jb(map);
        Kernel64.EmitFlushTlb(asm);
        a.mov(__dword_ptr[Done], 0);
        ApLongMode.Store(a, Work, WorkCode());

        ApLongMode.EmitStartAps(asm, ApCode());
        a.xor(ebp, ebp);
        a.call(Work);
        ApLongMode.EmitWaitFor(asm, Done);

        asm.Print("smp-bench: application processors done: ");
        a.mov(eax, __dword_ptr[Done]);
        asm.PrintDec(eax);
        asm.Print(" of ");
        asm.PrintDec(r12d);
        asm.Print("\nsmp-bench: accumulator=");
        a.mov(r8, __qword_ptr[(ulong)Results]);
        asm.PrintHex(r8);
        // CPUs whose accumulator equals CPU 0's.
        var next = asm.NewLabel();
        var differs = asm.NewLabel();
        a.xor(r13d, r13d);
        a.xor(ecx, ecx);
        asm.Bind(ref next);
        a.cmp(r8, __qword_ptr[rcx * 8 + Results]);
        a.jne(differs);
        a.inc(r13d);
        asm.Bind(ref differs);
        a.inc(ecx);
        a.cmp(ecx, r12d);
        a.jbe(next);
        asm.Print(" on ");
        asm.PrintDec(r13d);
        asm.Print(" CPUs\nsmp-bench: done\n");
        asm.Exit(0);
    }

    private static void Set(Assembler a, ulong address, ulong value)
    {
        a.mov(rax, value);
        a.mov(__qword_ptr[address], rax);
    }
}
