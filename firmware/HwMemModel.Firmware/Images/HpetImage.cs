using HwMemModel.Firmware.Building;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>hpet</c> BIOS image: identity-maps the HPET page (0xFED00000, above the 1 GiB identity map) with
/// a 4 KiB PTE that has PCD=1 and PWT=1 (PAT entry 3 at reset: UC), reads the general capabilities register
/// with one 64-bit and two 32-bit loads, decodes it, enables the counter and checks that it advances. It never
/// prints a counter value, which depends on timing.
/// </summary>
internal static class HpetImage
{
    public const string Description =
        "BIOS: maps the HPET with a 4 KiB UC page (PCD=1, PWT=1), prints the capabilities register (64-bit and two 32-bit loads) and its fields, the configuration before and after enabling, and whether the main counter is halted while disabled and advances once enabled; exits 0";

    private const uint PdHpet = 0x5000;
    private const uint PtHpet = 0x6000;


    public static byte[] Build() => BiosRom.Build(null, Body);

    private static void Body(Asm asm)
    {
        var a = asm.A;
        const ulong hpet = Platform.HpetBase;
        const ulong pte = hpet | P | RW | PWT | PCD;

        EmitMapHighPage(asm, hpet, PdHpet, PtHpet, pte & 0xFFF);
        asm.Print("hpet: mapped ");
        a.mov(rdi, hpet);
        asm.PrintHex(rdi);
        asm.Print(" with PTE ");
        a.mov(rdi, pte);
        asm.PrintHex(rdi);
        asm.Print(" (PCD=1 PWT=1: UC)\n");

        a.mov(rbx, hpet);
        a.mov(rax, __qword_ptr[rbx]);
        asm.Print("hpet: capabilities, one 64-bit load: ");
        asm.PrintHex(rax);
        asm.Print("\n");
        a.mov(eax, __dword_ptr[rbx]);
        a.mov(edx, __dword_ptr[rbx + 4]);
        a.mov(r8d, eax);
        a.mov(r9d, edx);
        a.shl(rdx, 32);
        a.or(rax, rdx);
        asm.Print("hpet: capabilities, two 32-bit loads: ");
        asm.PrintHex(rax);
        asm.Print("\n");

        asm.Print("hpet: revision ");
        a.movzx(eax, r8b);
        asm.PrintHex(eax);
        asm.Print(", timers ");
        a.mov(eax, r8d);
        a.shr(eax, 8);
        a.and(eax, 0x1F);
        a.inc(eax);
        asm.PrintDec(eax);
        asm.Print(", 64-bit counter ");
        a.mov(eax, r8d);
        a.shr(eax, 13);
        a.and(eax, 1);
        asm.PrintDec(eax);
        asm.Print(", legacy replacement ");
        a.mov(eax, r8d);
        a.shr(eax, 15);
        a.and(eax, 1);
        asm.PrintDec(eax);
        asm.Print(", vendor ");
        a.mov(eax, r8d);
        a.shr(eax, 16);
        asm.PrintHex(eax);
        asm.Print(", period ");
        asm.PrintDec(r9d);
        asm.Print(" fs\n");

        asm.Print("hpet: configuration before enabling: ");
        a.mov(rax, __qword_ptr[rbx + 0x10]);
        asm.PrintHex(rax);
        asm.Print("\n");

        var halted = asm.NewLabel();
        var haltedDone = asm.NewLabel();
        a.mov(rcx, __qword_ptr[rbx + 0xF0]);
        a.mov(edx, 100_000);
        var spin = asm.Here();
        a.pause();
        a.dec(edx);
        a.jnz(spin);
        asm.Print("hpet: counter halted while disabled: ");
        a.cmp(rcx, __qword_ptr[rbx + 0xF0]);
        a.je(halted);
        asm.Print("no\n");
        a.jmp(haltedDone);
        asm.Bind(ref halted);
        asm.Print("yes\n");
        asm.Bind(ref haltedDone);

        a.mov(rax, __qword_ptr[rbx + 0x10]);
        a.or(rax, 1);
        a.mov(__qword_ptr[rbx + 0x10], rax);
        asm.Print("hpet: configuration after enabling: ");
        a.mov(rax, __qword_ptr[rbx + 0x10]);
        asm.PrintHex(rax);
        asm.Print("\n");

        var advances = asm.NewLabel();
        a.mov(rcx, __qword_ptr[rbx + 0xF0]);
        a.mov(edx, 10_000_000);
        var poll = asm.Here();
        a.cmp(rcx, __qword_ptr[rbx + 0xF0]);
        a.jne(advances);
        a.dec(edx);
        a.jnz(poll);
        asm.Print("hpet: counter advances: no\n");
        asm.Exit(1);
        asm.Bind(ref advances);
        asm.Print("hpet: counter advances: yes\nhpet: done\n");
        asm.Exit(0);
    }
}
