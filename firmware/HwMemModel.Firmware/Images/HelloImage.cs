using HwMemModel.Firmware.Building;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>The <c>hello</c> BIOS image: the mode switches and a few CPU identification values.</summary>
internal static class HelloImage
{
    public const string Description =
        "BIOS: real mode -> 32-bit protected mode -> long mode (1 GiB identity map, 2 MiB pages); prints CR0, reset EDX vs CPUID.01H:EAX, CPUID vendor, CPUID 0x80000008 EAX, CR0/CR4/EFER in long mode; exits 0";

    private const uint VendorBuffer = 0x600;

    public static byte[] Build() => BiosRom.Build(Body32, Body64);

    private static void Body32(Asm asm)
    {
        var a = asm.A;
        asm.Print("hello: 32-bit protected mode, CR0=");
        a.mov(eax, cr0);
        asm.PrintHex(eax);
        asm.Print("\n");

        a.mov(eax, 1);
        a.cpuid();
        var mismatch = asm.NewLabel();
        var done = asm.NewLabel();
        asm.Print("hello: EDX at reset equals CPUID.01H:EAX: ");
        a.cmp(eax, __dword_ptr[(ulong)BiosRom.ResetEdx]);
        a.jne(mismatch);
        asm.Print("yes\n");
        a.jmp(done);
        asm.Bind(ref mismatch);
        asm.Print("no\n");
        asm.Bind(ref done);
    }

    private static void Body64(Asm asm)
    {
        var a = asm.A;
        asm.Print("hello from long mode\n");

        a.xor(eax, eax);
        a.cpuid();
        a.mov(__dword_ptr[(ulong)VendorBuffer], ebx);
        a.mov(__dword_ptr[(ulong)VendorBuffer + 4], edx);
        a.mov(__dword_ptr[(ulong)VendorBuffer + 8], ecx);
        a.mov(__byte_ptr[(ulong)VendorBuffer + 12], 0);
        asm.Print("hello: CPUID vendor: ");
        a.mov(esi, VendorBuffer);
        a.call(asm.Rt!.Puts);
        asm.Print("\n");

        var noLeaf = asm.NewLabel();
        var leafDone = asm.NewLabel();
        a.mov(eax, 0x8000_0000);
        a.cpuid();
        a.cmp(eax, 0x8000_0008);
        a.jb(noLeaf);
        a.mov(eax, 0x8000_0008);
        a.cpuid();
        asm.Print("hello: CPUID 0x80000008 EAX=");
        asm.PrintHex(eax);
        asm.Print(": ");
        a.movzx(ecx, al);
        asm.PrintDec(ecx);
        asm.Print(" physical address bits, ");
        a.movzx(ecx, ah);
        asm.PrintDec(ecx);
        asm.Print(" linear address bits\n");
        a.jmp(leafDone);
        asm.Bind(ref noLeaf);
        asm.Print("hello: CPUID 0x80000008 not reported\n");
        asm.Bind(ref leafDone);

        asm.Print("hello: CR0=");
        a.mov(rax, cr0);
        asm.PrintHex(rax);
        asm.Print(" CR4=");
        a.mov(rax, cr4);
        asm.PrintHex(rax);
        asm.Print(" EFER=");
        a.mov(ecx, Platform.MsrEfer);
        a.rdmsr();
        asm.PrintHex(eax);
        asm.Print("\nhello: done\n");
        asm.Exit(0);
    }
}
