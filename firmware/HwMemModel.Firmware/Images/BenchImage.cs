using HwMemModel.Firmware.Building;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>bench</c> BIOS image: a speed benchmark, not a conformance probe. Long mode with paging; a 64 KiB buffer
/// at virtual 0x8000000000 is mapped with 4 KiB pages (to scattered frames). The loop runs <see cref="Iterations"/>
/// times, about 19.5 instructions per iteration (14 in the loop, an INC skipped about half the time by a
/// data-dependent branch, 5 in the helper): a load and a store at a wandering, 8-byte-aligned offset in the buffer,
/// ADD/XOR/ROL/IMUL/LEA/AND, a CMP with a conditional jump, and a CALL/RET to a helper that does a PUSH, a
/// memory-operand SHR and XOR, and a POP. About 0.98 billion instructions in all. It prints the accumulator, the
/// final position, the branch count and a checksum of the buffer.
/// </summary>
internal static class BenchImage
{
    public const string Description =
        "BIOS: speed benchmark: long mode, 64 KiB buffer in 4 KiB pages, 50 million iterations of a ~20-instruction loop (loads/stores with a stride, ALU, IMUL, LEA, shifts, a conditional jump, CALL/RET with PUSH/POP); prints checksums; exits 0";

    /// <summary>Loop iterations.</summary>
    public const int Iterations = 50_000_000;

    private const ulong Va = 0x80_0000_0000;
    private const ulong Pdpt = 0x30_0000;
    private const ulong Pd = 0x30_1000;
    private const ulong Pt = 0x30_2000;
    private const ulong Frames = 0x40_0000;
    private const int BufferPages = 16;

    public static byte[] Build() => BiosRom.Build(null, Body);

    private static void Body(Asm asm)
    {
        var a = asm.A;
        var helper = asm.NewLabel("mix");

        // Page tables for the buffer: page i -> frame (i * 7) mod 16 (scattered, each used once).
        a.cld();
        a.mov(edi, (uint)Pdpt);
        a.mov(ecx, 0x3000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        Store(a, BiosRom.Pml4 + 8, Pdpt | P | RW);
        Store(a, Pdpt, Pd | P | RW);
        Store(a, Pd, Pt | P | RW);
        for (var i = 0; i < BufferPages; i++)
        {
            Store(a, Pt + (ulong)i * 8, (Frames + (ulong)(i * 7 % BufferPages) * 0x1000) | P | RW);
        }

        Kernel64.EmitFlushTlb(asm);

        // Buffer: qword i = i * 0x0123456789ABCDEF.
        a.mov(rbx, Va);
        a.xor(ecx, ecx);
        a.mov(rdx, 0x0123_4567_89AB_CDEF);
        var fill = asm.Here();
        a.mov(rax, rcx);
        a.imul(rax, rdx);
        a.mov(__qword_ptr[rbx + rcx * 8], rax);
        a.inc(ecx);
        a.cmp(ecx, BufferPages * 512);
        a.jb(fill);

        asm.Print("bench: ");
        a.mov(edi, Iterations);
        asm.PrintDec(rdi);
        asm.Print(" iterations over a 64 KiB buffer in 4 KiB pages\n");

        // RBX = buffer, R8 = accumulator, R9 = position, R11 = branch counter, ECX = iterations left.
        a.mov(r8, 0x9E37_79B9_7F4A_7C15);
        a.xor(r9d, r9d);
        a.xor(r11d, r11d);
        a.mov(ecx, Iterations);
        var loop = asm.Here();
        var skip = asm.NewLabel();
        a.mov(eax, r9d);                           // 1
        a.and(eax, 0xFFF8);                        // 2
        a.mov(rdx, __qword_ptr[rbx + rax]);        // 3  load
        a.add(r8, rdx);                            // 4
        a.xor(r8, rcx);                            // 5
        a.rol(r8, 7);                              // 6
        a.imul(r10, rdx, 31);                      // 7
        a.lea(r9, __[r9 + r10 * 8 + 0x48]);        // 8  stride
        a.mov(__qword_ptr[rbx + rax], r8);         // 9  store
        a.cmp(r10, r8);                            // 10
        a.jb(skip);                                // 11
        a.inc(r11);                                //    (taken about half the time)
        asm.Bind(ref skip);
        a.call(helper);                            // 12 (+ push, xor, pop, ret inside)
        a.dec(ecx);                                // 13
        a.jnz(loop);                               // 14

        asm.Print("bench: accumulator=");
        asm.PrintHex(r8);
        asm.Print(" position=");
        asm.PrintHex(r9);
        asm.Print(" branches=");
        asm.PrintDec(r11);
        asm.Print(" buffer checksum=");
        a.xor(eax, eax);
        a.xor(ecx, ecx);
        var sum = asm.Here();
        a.rol(rax, 5);
        a.xor(rax, __qword_ptr[rbx + rcx * 8]);
        a.inc(ecx);
        a.cmp(ecx, BufferPages * 512);
        a.jb(sum);
        asm.PrintHex(rax);
        asm.Print("\nbench: done\n");
        asm.Exit(0);

        asm.Later(() =>
        {
            // mix: R8 ^= R9 >> 3 through a pushed copy; preserves everything but R8 and flags.
            asm.Bind(ref helper);
            a.push(r9);
            a.shr(__qword_ptr[rsp], 3);
            a.xor(r8, __qword_ptr[rsp]);
            a.pop(r9);
            a.ret();
        });
    }

    private static void Store(Iced.Intel.Assembler a, ulong address, ulong value)
    {
        a.mov(rax, value);
        a.mov(__qword_ptr[address], rax);
    }
}
