using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>shootdown</c> and <c>shootdown-missing</c> BIOS images: a TLB shootdown across CPUs in long mode. The BSP maps
/// <see cref="Pages"/> 4 KiB test pages at <see cref="TestVa"/> to "old" frames (the first qword of page i is 0x1000 + i)
/// and brings every AP up to long mode on the same page tables (<see cref="ApLongMode"/>). Each AP reads the test pages
/// (its TLB now caches them), counts itself ready and waits with interrupts on. The BSP then points the PTEs at "new"
/// frames (0x2000 + i) and runs INVLPG for each page on itself. In <c>shootdown</c> it then sends a fixed IPI (vector
/// 0x40, all excluding self) whose handler runs INVLPG for each page on the AP and acknowledges; the BSP waits for every
/// acknowledgement. In <c>shootdown-missing</c> no IPI is sent. Then the APs read the pages again and the BSP prints what
/// each read: the new values after a shootdown, the old ones where the AP's TLB still held the translation (the SDM
/// lets a processor use a cached translation until it is invalidated on that processor, Vol. 3A §4.10.4.1; QEMU's
/// softmmu TLB behaves the same). It also prints the shootdown's counts: IPIs delivered and INVLPG instructions executed.
/// </summary>
internal static class ShootdownImage
{
    /// <summary>Test pages remapped by the shootdown.</summary>
    public const int Pages = 4;
    /// <summary>CPUs of the reference runs (QEMU's <c>-smp 4</c>).</summary>
    public const int ReferenceCpus = 4;
    /// <summary>Virtual address of the first test page (PDPT index 1).</summary>
    public const ulong TestVa = 0x4000_0000;
    private const uint Pd = 0xB000;
    private const uint Pt = 0xC000;
    private const uint Results = 0xD000;
    private const ulong OldFrames = 0x20_0000;
    private const ulong NewFrames = 0x21_0000;
    private const uint Ready = 0x704;
    private const uint Go = 0x708;
    private const uint Acks = 0x70C;
    private const uint Invlpgs = 0x710;
    private const uint Done = 0x714;
    private const int Vector = 0x40;

    public const string Description =
        "BIOS (run with -smp 4): APs brought up to long mode on the BSP's page tables read 4 test pages; the BSP remaps them to new frames, INVLPGs on itself, sends a fixed IPI whose handler INVLPGs each page on every AP and waits for the acknowledgements; each AP then reads the new frames; prints what each AP read and the IPI and INVLPG counts; exits 0";

    public const string MissingDescription =
        "BIOS (run with -smp 4): as 'shootdown' without the IPI: the BSP remaps the test pages and INVLPGs only on itself, so each AP reads the old frames through its stale TLB entries (a missing TLB shootdown; hwmem run --check-coherence names both CPUs and instructions); exits 0";

    public static byte[] Build(bool withIpi) => BiosRom.Build(null, asm => Body(asm, withIpi));

    private static byte[] ApCode() => ApLongMode.Assemble(64, ApLongMode.Entry64, a =>
    {
        var prime = a.CreateLabel();
        var wait = a.CreateLabel();
        var go = a.CreateLabel();
        var read = a.CreateLabel();
        var halt = a.CreateLabel();
        ApLongMode.EmitApPrologue(a);
        // Read every test page: the TLB caches the translations to the old frames.
        a.xor(ecx, ecx);
        a.Label(ref prime);
        a.mov(eax, ecx);
        a.shl(eax, 12);
        a.mov(rdx, __qword_ptr[rax + (long)TestVa]);
        a.inc(ecx);
        a.cmp(ecx, Pages);
        a.jb(prime);
        a.@lock.inc(__dword_ptr[Ready]);
        a.sti();
        a.Label(ref wait);
        a.cmp(__dword_ptr[Go], 0);
        a.jne(go);
        a.pause();
        a.jmp(wait);
        a.Label(ref go);
        a.cli();
        // Read the pages again into Results[APIC ID].
        a.mov(edi, ebp);
        a.shl(edi, 5);
        a.add(edi, Results);
        a.xor(ecx, ecx);
        a.Label(ref read);
        a.mov(eax, ecx);
        a.shl(eax, 12);
        a.mov(rdx, __qword_ptr[rax + (long)TestVa]);
        a.mov(__qword_ptr[rdi + rcx * 8], rdx);
        a.inc(ecx);
        a.cmp(ecx, Pages);
        a.jb(read);
        a.@lock.inc(__dword_ptr[Done]);
        a.Label(ref halt);
        a.hlt();
        a.jmp(halt);
    });

    /// <summary>The shootdown IPI handler: INVLPG each test page on this CPU, count, acknowledge, EOI.</summary>
    private static byte[] Handler() => ApLongMode.Assemble(64, ApLongMode.Handlers, a =>
    {
        var next = a.CreateLabel();
        a.push(rax);
        a.push(rcx);
        a.push(rsi);
        a.xor(ecx, ecx);
        a.Label(ref next);
        a.mov(eax, ecx);
        a.shl(eax, 12);
        a.add(eax, (int)TestVa);
        a.invlpg(__[rax]);
        a.@lock.inc(__dword_ptr[Invlpgs]);
        a.inc(ecx);
        a.cmp(ecx, Pages);
        a.jb(next);
        a.@lock.inc(__dword_ptr[Acks]);
        a.mov(esi, unchecked((uint)ApLongMode.Apic));
        a.mov(__dword_ptr[rsi + 0xB0], 0); // EOI
        a.pop(rsi);
        a.pop(rcx);
        a.pop(rax);
        a.iretq();
    });

    private static void Body(Asm asm, bool withIpi)
    {
        var a = asm.A;
        ApLongMode.EmitCpuCount(asm);
        asm.Print(withIpi ? "shootdown: " : "shootdown-missing: ");
        asm.PrintDec(ebx);
        asm.Print($" CPUs, {Pages} test pages at 0x{TestVa:x}\n");

        // Test mapping: PDPT[1] -> PD -> PT, page i -> old frame i; old frame i holds 0x1000 + i, new frame i 0x2000 + i.
        a.cld();
        a.mov(edi, Pd);
        a.mov(ecx, 2 * 0x1000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        Set(a, BiosRom.Pml4 + 0x1000 + (TestVa >> 30) * 8, Pd | P | RW);
        Set(a, Pd, Pt | P | RW);
        for (int i = 0; i < Pages; i++)
        {
            Set(a, Pt + (ulong)i * 8, (OldFrames + (ulong)i * 0x1000) | P | RW);
            Set(a, OldFrames + (ulong)i * 0x1000, 0x1000 + (ulong)i);
            Set(a, NewFrames + (ulong)i * 0x1000, 0x2000 + (ulong)i);
        }
        Kernel64.EmitFlushTlb(asm);
        foreach (var counter in new[] { Ready, Go, Acks, Invlpgs, Done }) a.mov(__dword_ptr[counter], 0);

        ApLongMode.EmitStartAps(asm, ApCode(), (Vector, ApLongMode.Handlers, Handler()));
        asm.Print("shootdown: application processors in long mode: ");
        a.mov(eax, __dword_ptr[ApLongMode.Started]);
        asm.PrintDec(eax);
        asm.Print(" of ");
        asm.PrintDec(r12d);
        asm.Print("\n");
        ApLongMode.EmitWaitFor(asm, Ready);
        asm.Print("shootdown: APs that cached the old translations: ");
        a.mov(eax, __dword_ptr[Ready]);
        asm.PrintDec(eax);
        asm.Print("\n");

        // Remap every test page to its new frame, then INVLPG each on this CPU.
        for (int i = 0; i < Pages; i++)
        {
            a.mov(rax, (NewFrames + (ulong)i * 0x1000) | P | RW);
            a.mov(__qword_ptr[Pt + (ulong)i * 8], rax);
        }
        for (int i = 0; i < Pages; i++)
        {
            a.invlpg(__[TestVa + (ulong)i * 0x1000]);
            a.@lock.inc(__dword_ptr[Invlpgs]);
        }
        if (withIpi)
        {
            a.mov(__dword_ptr[rsi + 0x300], 0x000C_0000 | Vector); // fixed, all excluding self
            ApLongMode.EmitWaitFor(asm, Acks);
        }
        asm.Print($"shootdown: CPU 0 remapped the {Pages} pages to new frames; IPIs delivered: ");
        a.mov(eax, __dword_ptr[Acks]);
        asm.PrintDec(eax);
        asm.Print(", INVLPG executed: ");
        a.mov(eax, __dword_ptr[Invlpgs]);
        asm.PrintDec(eax);
        asm.Print("\n");

        a.mov(__dword_ptr[Go], 1);
        ApLongMode.EmitWaitFor(asm, Done);

        // What each AP read: R13D = APIC ID, R14D = page, R15D = stale reads.
        var ids = asm.NewLabel();
        var pages = asm.NewLabel();
        var fresh = asm.NewLabel();
        var end = asm.NewLabel();
        a.xor(r15d, r15d);
        a.mov(r13d, 1);
        asm.Bind(ref ids);
        a.cmp(r13d, r12d);
        a.ja(end);
        asm.Print("shootdown: CPU ");
        asm.PrintDec(r13d);
        asm.Print(" read");
        a.xor(r14d, r14d);
        asm.Bind(ref pages);
        a.mov(eax, r13d);
        a.shl(eax, 5);
        a.mov(rdx, __qword_ptr[rax + r14 * 8 + Results]);
        asm.Print(" ");
        asm.PrintHex(rdx);
        a.lea(eax, __[r14 + 0x2000]);
        a.cmp(rdx, rax);
        a.je(fresh);
        a.inc(r15d);
        asm.Bind(ref fresh);
        a.inc(r14d);
        a.cmp(r14d, Pages);
        a.jb(pages);
        asm.Print("\n");
        a.inc(r13d);
        a.jmp(ids);
        asm.Bind(ref end);
        asm.Print("shootdown: stale reads: ");
        asm.PrintDec(r15d);
        asm.Print(" of ");
        a.imul(eax, r12d, Pages);
        asm.PrintDec(eax);
        asm.Print("\nshootdown: done\n");
        asm.Exit(0);
    }

    private static void Set(Assembler a, ulong address, ulong value)
    {
        a.mov(rax, value);
        a.mov(__qword_ptr[address], rax);
    }
}
