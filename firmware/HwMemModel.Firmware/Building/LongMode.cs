using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Building;

/// <summary>Paging-structure bits and the 32-bit code that switches to long mode.</summary>
internal static class LongMode
{
    public const ulong P = 1UL << 0;
    public const ulong RW = 1UL << 1;
    public const ulong US = 1UL << 2;
    public const ulong PWT = 1UL << 3;
    public const ulong PCD = 1UL << 4;
    public const ulong A = 1UL << 5;
    public const ulong D = 1UL << 6;
    public const ulong PS = 1UL << 7;
    public const ulong XD = 1UL << 63;

    public const uint Cr0Pe = 1u << 0;
    public const uint Cr0Wp = 1u << 16;
    public const uint Cr0Nw = 1u << 29;
    public const uint Cr0Cd = 1u << 30;
    public const uint Cr0Pg = 1u << 31;
    public const uint Cr4Pae = 1u << 5;
    public const uint Cr4Smep = 1u << 20;
    public const uint Cr4Smap = 1u << 21;
    public const uint Cr4Pke = 1u << 22;
    public const uint EferSce = 1u << 0;
    public const uint EferLme = 1u << 8;
    public const uint EferLma = 1u << 10;
    public const uint EferNxe = 1u << 11;

    /// <summary>
    /// 64-bit code: maps the 4 KiB page at <paramref name="address"/> (above the 1 GiB identity map, in its 4th GiB)
    /// with <paramref name="leafFlags"/>, using two zeroed pages at <paramref name="pd"/> and <paramref name="pt"/> as its
    /// page directory and page table under the BIOS's PDPT, then flushes the TLB. Clobbers RAX, RCX, RDI.
    /// </summary>
    public static void EmitMapHighPage(Asm asm, ulong address, uint pd, uint pt, ulong leafFlags)
    {
        var a = asm.A;
        ulong pdpt = BiosRom.Pml4 + 0x1000;
        a.cld();
        a.mov(edi, pd);
        a.mov(ecx, 2 * 0x1000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        a.mov(rax, pd | P | RW);
        a.mov(__qword_ptr[pdpt + (address >> 30) * 8], rax);
        a.mov(rax, pt | P | RW);
        a.mov(__qword_ptr[(ulong)pd + (address >> 21 & 511) * 8], rax);
        a.mov(rax, address | leafFlags);
        a.mov(__qword_ptr[(ulong)pt + (address >> 12 & 511) * 8], rax);
        Kernel64.EmitFlushTlb(asm);
    }

    /// <summary>
    /// 32-bit code: zeroes three pages at <paramref name="pml4"/> (PML4, PDPT, PD in that order), identity-maps
    /// the first GiB with 2 MiB supervisor read/write pages, sets CR4.PAE, CR3, EFER.LME, clears CR0.CD/NW,
    /// sets CR0.PG and jumps to <paramref name="entry64"/> with the 64-bit code selector.
    /// </summary>
    public static void EmitEnter(Asm asm, uint pml4, ulong entry64)
    {
        var a = asm.A;
        var pdpt = pml4 + 0x1000;
        var pd = pml4 + 0x2000;
        a.cld();
        a.mov(edi, pml4);
        a.mov(ecx, 3 * 0x1000 / 4);
        a.xor(eax, eax);
        a.rep.stosd();
        a.mov(__dword_ptr[pml4], (uint)(pdpt | P | RW));
        a.mov(__dword_ptr[pdpt], (uint)(pd | P | RW));
        a.mov(edi, pd);
        a.mov(eax, (uint)(P | RW | PS));
        a.mov(ecx, 512);
        var fill = asm.Here();
        a.mov(__dword_ptr[edi], eax);
        a.add(eax, 0x20_0000);
        a.add(edi, 8);
        a.dec(ecx);
        a.jnz(fill);

        EmitSwitch(a, pml4, entry64);
    }

    /// <summary>
    /// 32-bit code: with page tables at <paramref name="pml4"/> already built, sets CR4.PAE, CR3, EFER.LME, clears
    /// CR0.CD/NW, sets CR0.PG and jumps to <paramref name="entry64"/> with the 64-bit code selector.
    /// </summary>
    public static void EmitSwitch(Iced.Intel.Assembler a, uint pml4, ulong entry64)
    {
        a.mov(eax, cr4);
        a.or(eax, Cr4Pae);
        a.mov(cr4, eax);
        a.mov(eax, pml4);
        a.mov(cr3, eax);
        a.mov(ecx, Platform.MsrEfer);
        a.rdmsr();
        a.or(eax, EferLme);
        a.wrmsr();
        a.mov(eax, cr0);
        a.and(eax, ~(Cr0Cd | Cr0Nw));
        a.or(eax, Cr0Pg);
        a.mov(cr0, eax);
        a.jmp(Gdt.Code64, checked((uint)entry64));
    }

    /// <summary>64-bit code: loads the flat data selector into DS, ES, SS, zeroes FS and GS, sets RSP.</summary>
    public static void EmitSegments64(Asm asm, uint stackTop)
    {
        var a = asm.A;
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.xor(eax, eax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(esp, stackTop);
    }
}
