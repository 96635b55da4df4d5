using HwMemModel.Firmware.Building;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>demand-paging</c> BIOS image. A #PF handler serves not-present faults in PML4 slot 1: it walks the
/// tables from CR3, allocates any missing PDPT/PD/PT and the data page from a bump allocator (zeroed), installs
/// a 4 KiB PTE and returns with IRETQ so that the access is retried. The main code touches 64 pages with a
/// stride of 37 pages (crossing a 1 GiB boundary), reading then writing each, re-reads them into a checksum and
/// does one qword write that straddles two unmapped pages.
/// </summary>
internal static class DemandPagingImage
{
    public const string Description =
        "BIOS: long mode with a #PF handler that allocates zeroed pages (and missing tables) from a bump allocator and retries the access; touches 64 sparse pages and a page-straddling qword; prints fault and allocation counts and a checksum; exits 0";

    private const ulong RegionBase = 0x80_3FE0_0000;
    private const uint Stride = 37 * 0x1000;
    private const int Pages = 64;
    private const uint PoolStart = 0x100_0000;

    private const uint NextFree = 0x9_3040;
    private const uint FaultCount = 0x9_3048;
    private const uint TablesAllocated = 0x9_3050;
    private const uint PagesAllocated = 0x9_3058;

    private static ulong Q(uint address) => address;

    public static byte[] Build() => BiosRom.Build(null, Body);

    private static void Body(Asm asm)
    {
        var a = asm.A;
        var pf = asm.NewLabel("demand_pf");
        var alloc = asm.NewLabel("alloc_page");
        Kernel64.EmitIdt(asm, new Dictionary<int, Iced.Intel.Label> { [14] = pf });

        a.mov(__qword_ptr[Q(NextFree)], (int)PoolStart);
        a.mov(__qword_ptr[Q(FaultCount)], 0);
        a.mov(__qword_ptr[Q(TablesAllocated)], 0);
        a.mov(__qword_ptr[Q(PagesAllocated)], 0);

        asm.Print("demand-paging: 64 pages from ");
        a.mov(rdi, RegionBase);
        asm.PrintHex(rdi);
        asm.Print(" with a stride of 0x25000, each read then written\n");

        // Pass 1: read (faults, reads 0), then write a value derived from the index.
        a.mov(r14, RegionBase);
        a.xor(r12d, r12d);
        a.xor(r13d, r13d);
        var pass1 = asm.Here();
        EmitAddress(asm);
        a.add(r12, __qword_ptr[rbx + rcx]);
        a.lea(rax, __[r13 + 1]);
        a.mov(rdx, 0x9E37_79B9_7F4A_7C15);
        a.imul(rax, rdx);
        a.mov(__qword_ptr[rbx + rcx], rax);
        a.inc(r13d);
        a.cmp(r13d, Pages);
        a.jb(pass1);
        asm.Print("demand-paging: first pass: faults=");
        a.mov(rax, __qword_ptr[Q(FaultCount)]);
        asm.PrintDec(rax);
        asm.Print(", sum of the first reads=");
        asm.PrintHex(r12);
        asm.Print("\n");

        // Pass 2, backwards: checksum = rol(checksum, 7) ^ value.
        a.xor(r12d, r12d);
        a.mov(r13d, Pages - 1);
        var pass2 = asm.Here();
        EmitAddress(asm);
        a.rol(r12, 7);
        a.xor(r12, __qword_ptr[rbx + rcx]);
        a.dec(r13d);
        a.jns(pass2);
        asm.Print("demand-paging: second pass: faults=");
        a.mov(rax, __qword_ptr[Q(FaultCount)]);
        asm.PrintDec(rax);
        asm.Print(", checksum=");
        asm.PrintHex(r12);
        asm.Print("\n");

        // A qword write straddling two unmapped pages: two faults, then the retried write completes.
        a.mov(r12, __qword_ptr[Q(FaultCount)]);
        a.mov(rbx, RegionBase + (ulong)Pages * Stride + 0x1000 - 4);
        a.mov(rax, 0x0123_4567_89AB_CDEF);
        a.mov(__qword_ptr[rbx], rax);
        a.mov(rax, __qword_ptr[Q(FaultCount)]);
        a.sub(rax, r12);
        asm.Print("demand-paging: qword write across two unmapped pages: faults=");
        asm.PrintDec(rax);
        asm.Print(", read back ");
        a.mov(rax, __qword_ptr[rbx]);
        asm.PrintHex(rax);
        asm.Print(", low page dword ");
        a.mov(eax, __dword_ptr[rbx]);
        asm.PrintHex(eax);
        asm.Print("\n");

        asm.Print("demand-paging: faults=");
        a.mov(rax, __qword_ptr[Q(FaultCount)]);
        asm.PrintDec(rax);
        asm.Print(" page tables allocated=");
        a.mov(rax, __qword_ptr[Q(TablesAllocated)]);
        asm.PrintDec(rax);
        asm.Print(" data pages allocated=");
        a.mov(rax, __qword_ptr[Q(PagesAllocated)]);
        asm.PrintDec(rax);
        asm.Print("\ndemand-paging: done\n");
        asm.Exit(0);

        asm.Later(() =>
        {
            EmitHandler(asm, pf, alloc);
            EmitAlloc(asm, alloc);
        });
    }

    /// <summary>RBX = page i (R13) of the region (base in R14), RCX = (i * 0x48) &amp; 0xFF8.</summary>
    private static void EmitAddress(Asm asm)
    {
        var a = asm.A;
        a.imul(rbx, r13, (int)Stride);
        a.add(rbx, r14);
        a.imul(ecx, r13d, 0x48);
        a.and(ecx, 0xFF8);
    }

    private static void EmitHandler(Asm asm, Iced.Intel.Label pf, Iced.Intel.Label alloc)
    {
        var a = asm.A;
        var bad = asm.NewLabel();
        asm.Bind(ref pf);
        a.push(rax);
        a.push(rbx);
        a.push(rcx);
        a.push(rdx);
        a.push(rdi);
        a.push(rsi);
        a.cld();
        a.test(__byte_ptr[rsp + 48], 1); // error code P: a protection fault is not ours
        a.jnz(bad);
        a.mov(rdx, cr2);
        a.mov(rax, rdx);
        a.shr(rax, 39);
        a.cmp(rax, 1);
        a.jne(bad);
        a.inc(__qword_ptr[Q(FaultCount)]);
        a.mov(rsi, 0x000F_FFFF_FFFF_F000);
        a.mov(rbx, cr3);
        a.and(rbx, rsi);
        foreach (var shift in new byte[] { 39, 30, 21 })
        {
            var present = asm.NewLabel();
            a.mov(rax, rdx);
            a.shr(rax, shift);
            a.and(eax, 511);
            a.lea(rbx, __[rbx + rax * 8]);
            a.mov(rax, __qword_ptr[rbx]);
            a.test(al, (byte)P);
            a.jnz(present);
            a.call(alloc);
            a.inc(__qword_ptr[Q(TablesAllocated)]);
            a.or(rax, (int)(P | RW));
            a.mov(__qword_ptr[rbx], rax);
            asm.Bind(ref present);
            a.and(rax, rsi);
            a.mov(rbx, rax);
        }

        a.mov(rax, rdx);
        a.shr(rax, 12);
        a.and(eax, 511);
        a.lea(rbx, __[rbx + rax * 8]);
        a.call(alloc);
        a.inc(__qword_ptr[Q(PagesAllocated)]);
        a.or(rax, (int)(P | RW));
        a.mov(__qword_ptr[rbx], rax);
        a.pop(rsi);
        a.pop(rdi);
        a.pop(rdx);
        a.pop(rcx);
        a.pop(rbx);
        a.pop(rax);
        a.add(rsp, 8);
        a.iretq();

        asm.Bind(ref bad);
        asm.Print("\nunexpected page fault: err=");
        a.mov(rax, __qword_ptr[rsp + 48]);
        asm.PrintHex(rax);
        asm.Print(" cr2=");
        a.mov(rax, cr2);
        asm.PrintHex(rax);
        asm.Print("\n");
        asm.Exit(2);
    }

    /// <summary>alloc_page: RAX = a zeroed 4 KiB page from the bump allocator; preserves other registers.</summary>
    private static void EmitAlloc(Asm asm, Iced.Intel.Label alloc)
    {
        var a = asm.A;
        asm.Bind(ref alloc);
        a.push(rcx);
        a.push(rdi);
        a.mov(rax, __qword_ptr[Q(NextFree)]);
        a.add(__qword_ptr[Q(NextFree)], 0x1000);
        a.mov(rdi, rax);
        a.push(rax);
        a.xor(eax, eax);
        a.mov(ecx, 512);
        a.rep.stosq();
        a.pop(rax);
        a.pop(rdi);
        a.pop(rcx);
        a.ret();
    }
}
