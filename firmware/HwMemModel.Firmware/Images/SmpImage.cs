using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>smp</c> BIOS image: reads the CPU count from QEMU's fw_cfg (key 0x05), maps the local APIC (UC), enables
/// it, copies a real-mode trampoline to 0x8000 and sends INIT, then two start-up IPIs with vector 0x08 to all other
/// processors (shorthand "all excluding self"), as the MP start-up sequence does (SDM Vol. 3A §9.4.4). Each
/// application processor starts at 0800:0000 in real mode, increments a counter with a locked instruction and halts
/// with interrupts off. The BSP waits for the counter to reach the CPU count minus one (with a bound) and prints the
/// counts; nothing the APs do depends on their order, so the output is the same on any interleaving.
/// </summary>
internal static class SmpImage
{
    public const string Description =
        "BIOS: reads the CPU count from fw_cfg, sends INIT and two start-up IPIs (vector 0x08) to all other CPUs through the local APIC's ICR; each AP increments a counter in real mode and halts; prints how many started; exits 0";

    private const ulong Apic = 0xFEE0_0000;
    private const uint PdHigh = 0x5000;
    private const uint PtApic = 0x6000;
    private const uint Counter = 0x600;
    private const uint Trampoline = 0x8000;

    public static byte[] Build() => BiosRom.Build(null, Body);

    /// <summary>The AP's real-mode code at 0800:0000: count itself in, then stop.</summary>
    private static byte[] TrampolineBytes()
    {
        var a = new Assembler(16);
        var halt = a.CreateLabel();
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.@lock.inc(__word_ptr[Counter]);
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), Trampoline);
        return stream.ToArray();
    }

    private static void Body(Asm asm)
    {
        var a = asm.A;
        // fw_cfg: select FW_CFG_NB_CPUS (0x05), read 16 bits little-endian from the data port.
        a.mov(dx, 0x510);
        a.mov(ax, 0x05);
        a.@out(dx, ax);
        a.mov(dx, 0x511);
        a.@in(al, dx);
        a.movzx(ebx, al);
        a.@in(al, dx);
        a.movzx(eax, al);
        a.shl(eax, 8);
        a.or(ebx, eax);
        asm.Print("smp: fw_cfg reports ");
        asm.PrintDec(ebx);
        asm.Print(" CPUs\n");

        // Map the local APIC page uncached (PCD=1, PWT=1) above the 1 GiB identity map.
        EmitMapHighPage(asm, Apic, PdHigh, PtApic, P | RW | PWT | PCD);

        // The trampoline and the counter.
        byte[] code = TrampolineBytes();
        for (int i = 0; i < code.Length; i++) a.mov(__byte_ptr[(ulong)Trampoline + (ulong)i], code[i]);
        a.mov(__word_ptr[(ulong)Counter], 0);

        a.mov(rsi, Apic);
        a.mov(__dword_ptr[rsi + 0xF0], 0x1FF);          // SVR: APIC software-enabled, spurious vector 0xFF
        a.mov(__dword_ptr[rsi + 0x310], 0);             // ICR high: destination unused with a shorthand
        a.mov(__dword_ptr[rsi + 0x300], 0x000C_4500);   // INIT, level assert, all excluding self
        Delay(asm);
        for (int sipi = 0; sipi < 2; sipi++)
        {
            a.mov(__dword_ptr[rsi + 0x300], 0x000C_4608); // start-up, vector 0x08 (0x8000), all excluding self
            Delay(asm);
        }

        // Wait for CPU count - 1 processors (bounded), then report.
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.lea(r12d, __dword_ptr[rbx - 1]);
        a.mov(ecx, 50_000_000);
        a.Label(ref wait);
        a.movzx(eax, __word_ptr[(ulong)Counter]);
        a.cmp(eax, r12d);
        a.jae(done);
        a.pause();
        a.dec(ecx);
        a.jnz(wait);
        a.Label(ref done);
        asm.Print("smp: application processors started: ");
        a.movzx(eax, __word_ptr[(ulong)Counter]);
        asm.PrintDec(eax);
        asm.Print(" of ");
        asm.PrintDec(r12d);
        asm.Print("\n");
        a.mov(eax, __dword_ptr[rsi + 0x300]);
        a.and(eax, 1 << 12);
        asm.Print("smp: ICR delivery status after the IPIs: ");
        asm.PrintDec(eax);
        asm.Print("\nsmp: done\n");
        asm.Exit(0);
    }

    // A short busy wait between IPIs (real hardware wants 10 ms and 200 us; emulators need none).
    private static void Delay(Asm asm)
    {
        var a = asm.A;
        var l = a.CreateLabel();
        a.mov(ecx, 10_000);
        a.Label(ref l);
        a.pause();
        a.dec(ecx);
        a.jnz(l);
    }
}
