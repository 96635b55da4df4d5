using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>smc</c> BIOS image: self-modifying and cross-modifying code in long mode. A code section assembled to
/// run at <see cref="RamCode"/> is copied there from the ROM. Tests: patching the immediate of a function that
/// already ran (once, and 100 times in a loop), patching the next instruction of the same basic block (also in a
/// loop), an instruction that increments its own immediate, code written by REP MOVSB and then run, an
/// instruction whose immediate straddles a 4 KiB page boundary patched in the second page, and writes through a
/// second virtual alias (PML4 slot 1, 4 KiB pages) of the code's physical page, executing through either mapping.
/// </summary>
internal sealed class SmcImage
{
    public const string Description =
        "BIOS: self-modifying code in long mode: patch an immediate of code that already ran, patch the next instruction in the same block, an instruction that rewrites its own immediate, REP MOVSB over code, an instruction straddling a page boundary patched in its second page, writes and execution through a second virtual alias of the code page; exits 0";

    private const ulong RamCode = 0x20_0000;
    private const ulong RomCopy = BiosRom.ExtraStart;
    private const ulong Pdpt = 0x30_0000;
    private const ulong Pd = 0x30_1000;
    private const ulong Pt = 0x30_2000;
    private const ulong Alias = 0x80_0000_0000;
    private const ulong Straddle = RamCode + 0x1FFE;
    private const ulong Scratch = RamCode + 0x3000;

    private readonly Asm _asm;
    private readonly Assembler _a;

    private SmcImage(Asm asm)
    {
        _asm = asm;
        _a = asm.A;
    }

    public static byte[] Build() => BiosRom.Build(
        null,
        asm => new SmcImage(asm).Body(),
        new SectionSpec("smc-ram", 64, RamCode, EmitRamCode, RomCopy));

    /// <summary>Code that runs in RAM (copied from the ROM at start).</summary>
    private static void EmitRamCode(Asm asm)
    {
        var a = asm.A;

        // f1: mov eax, imm32; ret. The immediate is at f1 + 1.
        asm.Global("smc_f1");
        a.AddInstruction(Instruction.Create(Code.Mov_r32_imm32, Register.EAX, 0x1111_1111));
        a.ret();

        // next_insn: patches the immediate's low byte of the following instruction with CL, then runs it.
        asm.Global("smc_next");
        var target = asm.NewLabel();
        a.mov(__byte_ptr[asm.AddressOf(target) + 1], cl);
        asm.Bind(ref target);
        a.AddInstruction(Instruction.Create(Code.Mov_r32_imm32, Register.EAX, 0x2222_2200));
        a.ret();

        // next_loop: ECX = count; each iteration patches the immediate of the next instruction with CL and sums EAX into EDX.
        asm.Global("smc_next_loop");
        a.xor(edx, edx);
        var loop = asm.Here();
        var loopTarget = asm.NewLabel();
        a.mov(__byte_ptr[asm.AddressOf(loopTarget) + 1], cl);
        asm.Bind(ref loopTarget);
        a.AddInstruction(Instruction.Create(Code.Mov_r32_imm32, Register.EAX, 0x100));
        a.add(edx, eax);
        a.dec(ecx);
        a.jnz(loop);
        a.ret();

        // self_inc: ECX times "add byte [self + 7], imm8" where imm8 is the instruction's own last byte.
        asm.Global("smc_self_inc");
        var self = asm.NewLabel();
        var selfLoop = asm.Here();
        asm.Bind(ref self);
        a.AddInstruction(Instruction.Create(Code.Add_rm8_imm8, new MemoryOperand(Register.None, (long)asm.AddressOf(self) + 7, 8), 1));
        a.dec(ecx);
        a.jnz(selfLoop);
        a.movzx(eax, __byte_ptr[asm.AddressOf(self) + 7]);
        a.ret();

        // slot: 32 bytes of code space that the test overwrites with REP MOVSB (initially: mov eax, 0x5107; ret).
        asm.Global("smc_slot");
        a.mov(eax, 0x5107);
        a.ret();
        a.db(new byte[26]);

        // replacement: the bytes copied over the slot (never run here).
        asm.Global("smc_replacement");
        a.mov(eax, 0x0E_FACE);
        a.add(eax, 0x1000);
        a.ret();
        asm.Global("smc_replacement_end");
        asm.Global("smc_ram_end");
        a.nop();
    }

    private void Body()
    {
        var a = _a;
        var asm = _asm;
        var f1 = asm.Sym("smc_f1");
        var slot = asm.Sym("smc_slot");

        // Copy the RAM code from the ROM, then flush nothing: the copy is an ordinary store.
        a.cld();
        a.mov(esi, (uint)RomCopy);
        a.mov(edi, (uint)RamCode);
        a.mov(ecx, (uint)(asm.Sym("smc_ram_end") - RamCode + 1));
        a.rep.movsb();

        // Alias: PML4[1] -> PDPT -> PD -> PT; VA 0x8000000000 + k*4K -> RAM code page k (k = 0..3).
        a.mov(edi, (uint)Pdpt);
        a.mov(ecx, 0x3000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        Store(BiosRom.Pml4 + 8, Pdpt | P | RW);
        Store(Pdpt, Pd | P | RW);
        Store(Pd, Pt | P | RW);
        for (var k = 0; k < 4; k++)
        {
            Store(Pt + (ulong)k * 8, (RamCode + (ulong)k * 0x1000) | P | RW);
        }

        Kernel64.EmitFlushTlb(asm);

        asm.Print("smc: code copied to 0x200000; alias va 0x8000000000 maps the same 16 KiB\n");

        // 1. Patch an immediate of code that already ran.
        asm.Print("f1 before: ");
        CallAndPrint(f1);
        a.mov(__dword_ptr[f1 + 1], 0x3333_3333);
        asm.Print(", after patching its immediate: ");
        CallAndPrint(f1);
        asm.Print("\n");

        asm.Print("f1 patched 100 times (imm = i), sum of results: ");
        a.xor(r12d, r12d);
        a.xor(ebx, ebx);
        var loop = asm.Here();
        a.mov(__dword_ptr[f1 + 1], ebx);
        a.mov(rax, f1);
        a.call(rax);
        a.add(r12d, eax);
        a.inc(ebx);
        a.cmp(ebx, 100);
        a.jb(loop);
        asm.PrintHex(r12);
        asm.Print("\n");

        // 2. The next instruction in the same block.
        asm.Print("patch the next instruction (cl=0x42): ");
        a.mov(cl, 0x42);
        CallAndPrint(asm.Sym("smc_next"));
        asm.Print(", again with cl=0x43: ");
        a.mov(cl, 0x43);
        CallAndPrint(asm.Sym("smc_next"));
        asm.Print("\n");

        asm.Print("patch the next instruction in a loop (ecx=10..1), sum: ");
        a.mov(ecx, 10);
        a.mov(rax, asm.Sym("smc_next_loop"));
        a.call(rax);
        asm.PrintHex(edx);
        asm.Print("\n");

        asm.Print("instruction adding its own imm8 to itself, run 4 times: imm8=");
        a.mov(ecx, 4);
        CallAndPrint(asm.Sym("smc_self_inc"));
        asm.Print("\n");

        // 3. REP MOVSB over code that ran.
        asm.Print("slot before: ");
        CallAndPrint(slot);
        a.mov(rsi, asm.Sym("smc_replacement"));
        a.mov(rdi, slot);
        a.mov(ecx, (uint)(asm.Sym("smc_replacement_end") - asm.Sym("smc_replacement")));
        a.rep.movsb();
        asm.Print(", after rep movsb of new code: ");
        CallAndPrint(slot);
        asm.Print("\n");

        // 4. An instruction straddling the page boundary at 0x202000, written as bytes, run, patched in the second page.
        asm.Print("mov eax,imm32 at 0x201ffe (imm straddles 0x202000): ");
        a.mov(__byte_ptr[Straddle], 0xB8);
        a.mov(__dword_ptr[Straddle + 1], 0x4444_4444);
        a.mov(__byte_ptr[Straddle + 5], 0xC3);
        CallAndPrint(Straddle);
        a.mov(__word_ptr[Straddle + 2], 0x5555);
        asm.Print(", after patching bytes 0x202000-0x202001: ");
        CallAndPrint(Straddle);
        a.mov(__byte_ptr[Straddle + 1], 0x66);
        asm.Print(", after patching byte 0x201fff: ");
        CallAndPrint(Straddle);
        asm.Print("\n");

        // 5. Writes through the alias, execution through either mapping.
        var aliasF1 = Alias + (f1 - RamCode);
        asm.Print("write f1's imm via the alias, run at 0x200000: ");
        a.mov(rax, aliasF1 + 1);
        a.mov(__dword_ptr[rax], 0x7777_7777);
        CallAndPrint(f1);
        asm.Print("; run at the alias: ");
        CallAndPrint(aliasF1);
        a.mov(__dword_ptr[f1 + 1], 0x8888_8888);
        asm.Print("; write via 0x200000, run at the alias: ");
        CallAndPrint(aliasF1);
        a.mov(rax, aliasF1 + 1);
        a.mov(__byte_ptr[rax], 0x99);
        asm.Print("; write via the alias, run at the alias: ");
        CallAndPrint(aliasF1);
        asm.Print("\n");

        asm.Print("straddling instruction run at the alias: ");
        var aliasStraddle = Alias + (Straddle - RamCode);
        CallAndPrint(aliasStraddle);
        a.mov(rax, aliasStraddle + 3);
        a.mov(__word_ptr[rax], 0x1234);
        asm.Print(", after patching bytes 0x202001-0x202002 via the alias, at 0x201ffe: ");
        CallAndPrint(Straddle);
        asm.Print(", at the alias: ");
        CallAndPrint(aliasStraddle);
        asm.Print("\n");

        // 6. Code generated into a fresh page, run, regenerated with a different length, run again.
        asm.Print("generated code at 0x203000: ");
        EmitGenerate(0x31, 3);
        CallAndPrint(Scratch);
        EmitGenerate(0x07, 9);
        asm.Print(", regenerated: ");
        CallAndPrint(Scratch);
        asm.Print("\n");

        asm.Print("smc: done\n");
        asm.Exit(0);
    }

    /// <summary>Writes "mov eax, value; (inc eax) x n; ret" at <see cref="Scratch"/> byte by byte.</summary>
    private void EmitGenerate(uint value, int incs)
    {
        var a = _a;
        a.mov(__byte_ptr[Scratch], 0xB8);
        a.mov(__dword_ptr[Scratch + 1], value);
        for (var i = 0; i < incs; i++)
        {
            a.mov(__word_ptr[Scratch + 5 + (ulong)i * 2], 0xC0FF); // FF C0 = inc eax
        }

        a.mov(__byte_ptr[Scratch + 5 + (ulong)incs * 2], 0xC3);
    }

    private void CallAndPrint(ulong address)
    {
        _a.mov(rax, address);
        _a.call(rax);
        _asm.PrintHex(eax);
    }

    private void Store(ulong address, ulong value)
    {
        _a.mov(rax, value);
        _a.mov(__qword_ptr[address], rax);
    }
}
