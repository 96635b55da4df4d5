using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>smp</c> BIOS image: reads the CPU count from QEMU's fw_cfg (key 0x05), maps the local APIC (UC), enables
/// it, copies a real-mode trampoline to 0x8000 and sends INIT, then two start-up IPIs with vector 0x08 to all other
/// processors (shorthand "all excluding self"), as the MP start-up sequence does (SDM Vol. 3A §9.4.4). Each
/// application processor starts at 0800:0000 in real mode, counts itself in with a locked increment, enters 32-bit
/// protected mode (flat GDT at 0x8200), enables its local APIC (SVR), loads an IDT whose vector 0x40 handler counts
/// the interrupt and writes EOI, counts itself ready and waits in STI; HLT. The BSP waits for every AP to start and be
/// ready, sends a fixed IPI with vector 0x40 to all of them, waits for every handler to run, and prints the counts;
/// nothing the APs do depends on their order, so the output is the same on any interleaving.
/// </summary>
internal static class SmpImage
{
    public const string Description =
        "BIOS: reads the CPU count from fw_cfg, sends INIT and two start-up IPIs (vector 0x08) to all other CPUs through the local APIC's ICR; each AP counts itself in from real mode, enters protected mode, enables its APIC and waits in HLT; a fixed IPI 0x40 to all of them is handled (with EOI) by each, then an NMI IPI, and each AP's one-shot APIC timer fires once; prints the counts; exits 0";

    private const ulong Apic = 0xFEE0_0000;
    private const uint PdHigh = 0x5000;
    private const uint PtApic = 0x6000;
    private const uint Counter = 0x600;
    private const uint Ready = 0x604;
    private const uint Handled = 0x608;
    private const uint NmiHandled = 0x60C;
    private const uint NmiHandler = 0x81C0;
    private const uint TimerHandled = 0x610;
    private const uint TimerHandler = 0x81E0;
    private const int TimerVector = 0x41;
    private const uint Trampoline = 0x8000;
    private const uint Code32 = 0x8100;
    private const uint Handler = 0x8180;
    private const uint GdtBase = 0x8200;
    private const uint GdtPtr = 0x8280;
    private const uint IdtPtr = 0x8290;
    private const uint IdtBase = 0x9000;
    private const int IpiVector = 0x40;

    public static byte[] Build() => BiosRom.Build(null, asm => Body(asm, 0));

    /// <summary>Iterations of the 4-instruction ALU loop every CPU runs in the <c>smp-spin</c> speed workload.</summary>
    public const int SpinIterations = 2_000_000;

    /// <summary>The <c>smp-spin</c> workload: as <c>smp</c>, and every CPU first runs <see cref="SpinIterations"/> iterations of an ALU loop.</summary>
    public static byte[] BuildSpin() => BiosRom.Build(null, asm => Body(asm, SpinIterations));

    private static void EmitSpin(Assembler a, int iterations)
    {
        var l = a.CreateLabel();
        a.mov(ecx, (uint)iterations);
        a.Label(ref l);
        a.add(eax, ecx);
        a.xor(edx, eax);
        a.dec(ecx);
        a.jnz(l);
    }

    private static byte[] Assemble(int bitness, ulong origin, Action<Assembler> emit) => ApLongMode.Assemble(bitness, origin, emit);

    /// <summary>The AP's real-mode code at 0800:0000: count itself in, then enter 32-bit protected mode at <see cref="Code32"/>.</summary>
    private static byte[] Trampoline16() => Assemble(16, Trampoline, a =>
    {
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.@lock.inc(__word_ptr[Counter]);
        a.lgdt(__[GdtPtr]);
        a.mov(eax, cr0);
        a.or(eax, 1);
        a.mov(cr0, eax);
        a.jmp(Gdt.Code32, Code32);
    });

    /// <summary>The AP's 32-bit code: flat segments, a stack per APIC ID, APIC on, IDT, ready, wait for interrupts.</summary>
    private static byte[] ProtectedMode32(int spin) => Assemble(32, Code32, a =>
    {
        var wait = a.CreateLabel();
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(eax, __dword_ptr[(uint)Apic + 0x20]);   // APIC ID register, ID in bits 31:24
        a.shr(eax, 24);
        a.shl(eax, 12);
        a.lea(esp, __dword_ptr[eax + 0x40000]);
        a.mov(__dword_ptr[(uint)Apic + 0xF0], 0x1FF);  // SVR: software-enabled
        a.lidt(__[IdtPtr]);
        a.mov(__dword_ptr[(uint)Apic + 0x3E0], 0xB);   // timer divide by 1
        a.mov(__dword_ptr[(uint)Apic + 0x320], TimerVector); // LVT timer: one-shot, unmasked
        a.mov(__dword_ptr[(uint)Apic + 0x380], 10_000); // initial count: the timer starts
        if (spin > 0) EmitSpin(a, spin);
        a.@lock.inc(__word_ptr[Ready]);
        a.sti();
        a.Label(ref wait);
        a.hlt();
        a.jmp(wait);
    });

    /// <summary>The vector 0x40 handler: count the interrupt, EOI, return.</summary>
    private static byte[] Handler32() => Assemble(32, Handler, a =>
    {
        a.@lock.inc(__word_ptr[Handled]);
        a.mov(__dword_ptr[(uint)Apic + 0xB0], 0);      // EOI
        a.iretd();
    });

    /// <summary>The NMI handler (vector 2): count it and return (no EOI for an NMI).</summary>
    private static byte[] NmiHandler32() => Assemble(32, NmiHandler, a =>
    {
        a.@lock.inc(__word_ptr[NmiHandled]);
        a.iretd();
    });

    /// <summary>The APIC timer handler (vector 0x41): count it, EOI, return.</summary>
    private static byte[] TimerHandler32() => Assemble(32, TimerHandler, a =>
    {
        a.@lock.inc(__word_ptr[TimerHandled]);
        a.mov(__dword_ptr[(uint)Apic + 0xB0], 0);
        a.iretd();
    });

    private static void Store(Asm asm, ulong address, byte[] bytes)
    {
        for (int i = 0; i < bytes.Length; i++) asm.A.mov(__byte_ptr[address + (ulong)i], bytes[i]);
    }

    private static void Body(Asm asm, int spin)
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

        // The trampoline, the APs' protected-mode code, GDT and IDT, and the counters.
        Store(asm, Trampoline, Trampoline16());
        Store(asm, Code32, ProtectedMode32(spin));
        Store(asm, Handler, Handler32());
        Store(asm, NmiHandler, NmiHandler32());
        Store(asm, TimerHandler, TimerHandler32());
        var gdt = new byte[24];
        BitConverter.GetBytes(Gdt.Entries[1]).CopyTo(gdt, 8);
        BitConverter.GetBytes(Gdt.Entries[2]).CopyTo(gdt, 16);
        Store(asm, GdtBase, gdt);
        Store(asm, GdtPtr, [23, 0, .. BitConverter.GetBytes(GdtBase)]);
        a.mov(edi, IdtBase);
        a.mov(ecx, 256 * 8 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        foreach (var (vector, handler) in new[] { (IpiVector, Handler), (2, NmiHandler), (TimerVector, TimerHandler) })
        {
            // A 32-bit interrupt gate (type 0xE, present, DPL 0) to the handler in the flat code segment.
            a.mov(rax, (handler & 0xFFFF) | ((ulong)Gdt.Code32 << 16) | (0x8EUL << 40) | ((ulong)(handler >> 16) << 48));
            a.mov(__qword_ptr[(ulong)IdtBase + (ulong)vector * 8], rax);
        }
        Store(asm, IdtPtr, [0xFF, 0x07, .. BitConverter.GetBytes(IdtBase)]);
        a.mov(__qword_ptr[(ulong)Counter], 0);
        a.mov(__qword_ptr[(ulong)Handled], 0);
        a.mov(__word_ptr[(ulong)NmiHandled], 0);
        a.mov(__word_ptr[(ulong)TimerHandled], 0);

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

        if (spin > 0) EmitSpin(a, spin);

        // Wait for CPU count - 1 processors to start and to be ready (bounded), send the fixed IPI, wait for it.
        a.lea(r12d, __dword_ptr[rbx - 1]);
        WaitFor(asm, Counter);
        asm.Print("smp: application processors started: ");
        a.movzx(eax, __word_ptr[(ulong)Counter]);
        asm.PrintDec(eax);
        asm.Print(" of ");
        asm.PrintDec(r12d);
        asm.Print("\n");
        WaitFor(asm, Ready);
        asm.Print("smp: ready in protected mode with the APIC on: ");
        a.movzx(eax, __word_ptr[(ulong)Ready]);
        asm.PrintDec(eax);
        asm.Print("\n");
        a.mov(__dword_ptr[rsi + 0x300], 0x000C_0000 | IpiVector); // fixed, vector 0x40, all excluding self
        WaitFor(asm, Handled);
        asm.Print("smp: fixed IPI 0x40 handled by: ");
        a.movzx(eax, __word_ptr[(ulong)Handled]);
        asm.PrintDec(eax);
        asm.Print("\n");
        a.mov(__dword_ptr[rsi + 0x300], 0x000C_0400);  // NMI, all excluding self
        WaitFor(asm, NmiHandled);
        asm.Print("smp: NMI IPI handled by: ");
        a.movzx(eax, __word_ptr[(ulong)NmiHandled]);
        asm.PrintDec(eax);
        asm.Print("\n");
        WaitFor(asm, TimerHandled);
        asm.Print("smp: one-shot APIC timer interrupts (one per AP): ");
        a.movzx(eax, __word_ptr[(ulong)TimerHandled]);
        asm.PrintDec(eax);
        asm.Print("\n");
        a.mov(eax, __dword_ptr[rsi + 0x300]);
        a.and(eax, 1 << 12);
        asm.Print("smp: ICR delivery status after the IPIs: ");
        asm.PrintDec(eax);
        asm.Print("\nsmp: done\n");
        asm.Exit(0);
    }

    // Waits (bounded) until the 16-bit counter at <paramref name="counter"/> reaches R12D.
    private static void WaitFor(Asm asm, uint counter)
    {
        var a = asm.A;
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(ecx, 50_000_000);
        a.Label(ref wait);
        a.movzx(eax, __word_ptr[(ulong)counter]);
        a.cmp(eax, r12d);
        a.jae(done);
        a.pause();
        a.dec(ecx);
        a.jnz(wait);
        a.Label(ref done);
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
