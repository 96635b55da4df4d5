using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Building;

/// <summary>
/// Brings application processors up to 64-bit long mode on the BSP's page tables (shared CR3 = <see cref="BiosRom.Pml4"/>):
/// the BSP reads the CPU count from fw_cfg, maps the local APIC, copies a real-mode trampoline (0x8000), a 32-bit stage,
/// a GDT, a 64-bit IDT and the APs' 64-bit code to low RAM and sends INIT and two start-up IPIs (vector 0x08) to all other
/// processors. Each AP goes real mode → protected mode → PAE, CR3, EFER.LME, CR0.PG → 64-bit code at <see cref="Entry64"/>,
/// whose prologue (<see cref="EmitApPrologue"/>) loads segments, puts its APIC ID in EBP, takes a 4 KiB stack per APIC
/// ID, software-enables its APIC, loads the IDT and counts itself in at <see cref="Started"/>.
/// </summary>
internal static class ApLongMode
{
    public const ulong Apic = 0xFEE0_0000;
    public const uint ApicPd = 0x5000;
    public const uint ApicPt = 0x6000;
    public const uint Started = 0x700;
    public const uint Trampoline = 0x8000;
    public const uint Code32 = 0x8100;
    public const uint GdtBase = 0x8200;
    public const uint GdtPtr = 0x8280;
    public const uint IdtPtr = 0x8290;
    public const uint IdtBase = 0x9000;
    /// <summary>Where the APs' 64-bit code starts (up to 2 KiB).</summary>
    public const uint Entry64 = 0xA000;
    /// <summary>Where interrupt handlers for the APs may be placed (up to 0xAFFF).</summary>
    public const uint Handlers = 0xA800;

    /// <summary>Assembles <paramref name="emit"/> for <paramref name="bitness"/> at <paramref name="origin"/>.</summary>
    public static byte[] Assemble(int bitness, ulong origin, Action<Assembler> emit)
    {
        var a = new Assembler(bitness);
        emit(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), origin);
        return stream.ToArray();
    }

    private static byte[] Trampoline16() => Assemble(16, Trampoline, a =>
    {
        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.lgdt(__[GdtPtr]);
        a.mov(eax, cr0);
        a.or(eax, Cr0Pe);
        a.mov(cr0, eax);
        a.jmp(Gdt.Code32, Code32);
    });

    private static byte[] ProtectedMode32() => Assemble(32, Code32, a =>
    {
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        LongMode.EmitSwitch(a, BiosRom.Pml4, Entry64);
    });

    /// <summary>
    /// AP 64-bit code: data segments, EBP = APIC ID, RSP = 0x20000 + (APIC ID + 1) * 4 KiB, RSI = the APIC's address,
    /// APIC software-enabled (SVR 0x1FF), IDT loaded, then a locked increment of <see cref="Started"/>.
    /// </summary>
    public static void EmitApPrologue(Assembler a)
    {
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(esi, unchecked((uint)Apic));
        a.mov(ebp, __dword_ptr[rsi + 0x20]);   // APIC ID register, ID in bits 31:24
        a.shr(ebp, 24);
        a.lea(eax, __[rbp + 1]);
        a.shl(eax, 12);
        a.lea(rsp, __[rax + 0x20000]);
        a.mov(__dword_ptr[rsi + 0xF0], 0x1FF);
        a.lidt(__[IdtPtr]);
        a.@lock.inc(__dword_ptr[Started]);
    }

    /// <summary>BSP 64-bit code: EBX = the CPU count fw_cfg reports (key 0x05), R12D = EBX - 1. Clobbers EAX, EDX.</summary>
    public static void EmitCpuCount(Asm asm)
    {
        var a = asm.A;
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
        a.lea(r12d, __dword_ptr[rbx - 1]);
    }

    /// <summary>
    /// BSP 64-bit code: maps the APIC (UC), stores the trampoline, the 32-bit stage, the GDT, <paramref name="ap64"/> at
    /// <see cref="Entry64"/>, each handler at its address with a 64-bit interrupt gate in the IDT, zeroes
    /// <see cref="Started"/>, enables the BSP's APIC, sends INIT-SIPI-SIPI to all others and waits (bounded) until R12D
    /// APs counted themselves in. Leaves RSI = the APIC's address. Clobbers RAX, RCX, RDX, RDI.
    /// </summary>
    public static void EmitStartAps(Asm asm, byte[] ap64, params (int Vector, uint Address, byte[] Code)[] handlers)
    {
        if (ap64.Length > Handlers - Entry64) throw new ArgumentException("AP code too long", nameof(ap64));
        var a = asm.A;
        EmitMapHighPage(asm, Apic, ApicPd, ApicPt, P | RW | PWT | PCD);
        Store(a, Trampoline, Trampoline16());
        Store(a, Code32, ProtectedMode32());
        Store(a, GdtBase, Gdt.Bytes());
        Store(a, GdtPtr, [.. BitConverter.GetBytes(Gdt.Limit), .. BitConverter.GetBytes(GdtBase)]);
        Store(a, Entry64, ap64);
        a.mov(edi, IdtBase);
        a.mov(ecx, 256 * 16 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        foreach (var (vector, address, code) in handlers)
        {
            Store(a, address, code);
            // 64-bit interrupt gate: offset 15:0, selector, IST 0, type 0xE, present, DPL 0, offset 31:16, offset 63:32.
            ulong low = (address & 0xFFFF) | ((ulong)Gdt.Code64 << 16) | (0x8EUL << 40) | ((ulong)(address >> 16) << 48);
            a.mov(rax, low);
            a.mov(__qword_ptr[(ulong)IdtBase + (ulong)vector * 16], rax);
        }
        Store(a, IdtPtr, [0xFF, 0x0F, .. BitConverter.GetBytes((ulong)IdtBase)]);
        a.mov(__dword_ptr[(ulong)Started], 0);

        a.mov(rsi, Apic);
        a.mov(__dword_ptr[rsi + 0xF0], 0x1FF);          // SVR: APIC software-enabled
        a.mov(__dword_ptr[rsi + 0x310], 0);
        a.mov(__dword_ptr[rsi + 0x300], 0x000C_4500);   // INIT, level assert, all excluding self
        Delay(asm);
        for (int sipi = 0; sipi < 2; sipi++)
        {
            a.mov(__dword_ptr[rsi + 0x300], 0x000C_4608); // start-up, vector 0x08 (0x8000), all excluding self
            Delay(asm);
        }
        EmitWaitFor(asm, Started);
    }

    /// <summary>BSP 64-bit code: waits (bounded, with PAUSE) until the dword at <paramref name="counter"/> reaches R12D. Clobbers EAX, ECX.</summary>
    public static void EmitWaitFor(Asm asm, uint counter)
    {
        var a = asm.A;
        var wait = a.CreateLabel();
        var done = a.CreateLabel();
        a.mov(ecx, 100_000_000);
        a.Label(ref wait);
        a.mov(eax, __dword_ptr[(ulong)counter]);
        a.cmp(eax, r12d);
        a.jae(done);
        a.pause();
        a.dec(ecx);
        a.jnz(wait);
        a.Label(ref done);
    }

    /// <summary>Stores <paramref name="bytes"/> at <paramref name="address"/> with 64-bit moves (clobbers RAX).</summary>
    public static void Store(Assembler a, ulong address, byte[] bytes)
    {
        for (int i = 0; i < bytes.Length; i += 8)
        {
            var chunk = new byte[8];
            int n = Math.Min(8, bytes.Length - i);
            Array.Copy(bytes, i, chunk, 0, n);
            if (n == 8)
            {
                a.mov(rax, BitConverter.ToUInt64(chunk));
                a.mov(__qword_ptr[address + (ulong)i], rax);
            }
            else
            {
                for (int k = 0; k < n; k++) a.mov(__byte_ptr[address + (ulong)(i + k)], chunk[k]);
            }
        }
    }

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
