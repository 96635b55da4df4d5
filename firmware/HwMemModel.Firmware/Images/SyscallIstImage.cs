using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>syscall-ist</c> BIOS image: privilege transitions in long mode. A GDT with a TSS (RSP0 = 0x70008 and
/// IST1 = 0x60008, both deliberately not 16-byte aligned) and extra kernel code/data descriptors at 0x40/0x48 for
/// SYSCALL (STAR = 0x0018_0040 &lt;&lt; 32, FMASK = 0x541). The identity map is made user-accessible except one 2 MiB
/// page, so ring-3 code runs straight from the ROM alias. Covered: SYSCALL with EFER.SCE=0 (#UD), SYSCALL/SYSRETQ
/// (RCX, R11, RFLAGS, CS, SS and RSP on both sides, SWAPGS with KERNEL_GS_BASE, SYSRETQ loading IOPL from R11,
/// POPFQ at CPL 3 keeping IOPL), INT 0x80 through a DPL-3 gate (frame, RSP0 alignment, IRETQ with modified
/// RFLAGS), INT 0x81 through a DPL-0 gate from ring 3 (#GP), #BP and #UD on IST1 from ring 3 and #BP on IST1 from
/// ring 0, an unaligned ring-0 INT frame, #PF at ring 3 delivered on RSP0, #DF on IST1 from a not-present #NP gate,
/// FS/GS base MSRs (null selector loads, non-canonical WRMSR) and SYSRETQ to a non-canonical RCX.
/// </summary>
internal sealed class SyscallIstImage
{
    public const string Description =
        "BIOS: long-mode privilege transitions: SYSCALL/SYSRETQ (STAR/LSTAR/FMASK, RCX/R11, SWAPGS, IOPL from R11), INT 0x80 via a DPL-3 gate and IRETQ with modified RFLAGS, #GP for a DPL-0 gate, #PF at ring 3 on RSP0, #BP/#UD/#DF on IST1 (unaligned RSP0/IST1), FS/GS base MSRs, SYSRETQ to a non-canonical RCX; exits 0";

    private const uint GdtRam = Kernel64.GdtRam;
    private const uint GdtrRam = Kernel64.GdtrRam;
    private const uint TssRam = Kernel64.TssRam;
    private const ushort SelKernelCode = 0x40;
    private const ushort SelKernelData = 0x48;
    private const uint Rsp0 = 0x7_0008;
    private const uint Ist1 = 0x6_0008;
    private const uint UserStackTop = 0x6_8000;
    private const uint SyscallStackTop = 0x6_6000;
    private const uint UserGsBase = 0x5_0000;
    private const uint KernelGsBase = 0x5_1000;
    private const uint FsArea = 0x5_2000;
    private const uint UserVars = 0x6_4000;
    private const uint KVars = 0x6_5000;
    private const uint EntryRsp = KVars;
    private const ulong SupervisorOnly = 0x280_0000; // PD index 20: the one 2 MiB page left supervisor-only
    private const uint Fmask = 0x541;
    private const ulong Star = (0x18UL << 48) | ((ulong)SelKernelCode << 32);

    private const uint MsrStar = 0xC000_0081;
    private const uint MsrLstar = 0xC000_0082;
    private const uint MsrFmask = 0xC000_0084;
    private const uint MsrFsBase = 0xC000_0100;
    private const uint MsrGsBase = 0xC000_0101;
    private const uint MsrKernelGsBase = 0xC000_0102;

    private readonly Asm _asm;
    private readonly Assembler _a;

    private SyscallIstImage(Asm asm)
    {
        _asm = asm;
        _a = asm.A;
    }

    public static byte[] Build() => BiosRom.Build(null, asm => new SyscallIstImage(asm).Body());

    private static ulong Q(uint address) => address;

    private void Body()
    {
        var a = _a;
        var asm = _asm;
        var int80 = asm.NewLabel("int80");
        var int82 = asm.NewLabel("int82");
        var bp = asm.NewLabel("bp_ist");
        var ud = asm.NewLabel("ud_ist");
        var df = asm.NewLabel("df_ist");
        var gp = asm.NewLabel("gp");
        var pf = asm.NewLabel("pf");
        var syscallEntry = asm.NewLabel("syscall_entry");
        var unused90 = asm.NewLabel("vector90");

        SetUpGdtAndTss();
        Kernel64.EmitIdt(
            asm,
            new Dictionary<int, Label> { [13] = gp, [14] = pf },
            (0x80, int80, Kernel64.GateDpl3),
            (0x81, int80, Kernel64.GateDpl0),
            (0x82, int82, Kernel64.GateDpl0),
            (0x90, unused90, (ushort)(Kernel64.GateDpl0 & 0x7FFF)),
            (3, bp, (ushort)(Kernel64.GateDpl3 | 1)),
            (6, ud, (ushort)(Kernel64.GateDpl0 | 1)),
            (8, df, (ushort)(Kernel64.GateDpl0 | 1)));
        MakeIdentityMapUserAccessible();

        asm.Print("syscall-ist: TSS RSP0=0x70008 IST1=0x60008, STAR=0x0018004000000000 FMASK=0x541, user pages except 0x2800000-0x29fffff\n");

        // SYSCALL with EFER.SCE = 0.
        KernelProbe("syscall with EFER.SCE=0", () => a.syscall());

        // Enable SYSCALL.
        WriteMsr(MsrStar, Star);
        a.lea(rax, __[syscallEntry]);
        a.mov(rdx, rax);
        a.shr(rdx, 32);
        a.mov(ecx, MsrLstar);
        a.wrmsr();
        WriteMsr(MsrFmask, Fmask);
        WriteMsr(MsrGsBase, UserGsBase);
        WriteMsr(MsrKernelGsBase, KernelGsBase);
        a.mov(__qword_ptr[Q(KernelGsBase)], (int)SyscallStackTop);
        a.mov(ecx, Platform.MsrEfer);
        a.rdmsr();
        a.or(eax, EferSce);
        a.wrmsr();

        // FS/GS base MSRs.
        FsGsTests();

        // Ring 3: SYSCALL / SYSRET.
        var userSyscall = asm.NewLabel("user_syscall");
        var afterSyscall1 = asm.NewLabel("after_syscall1");
        var afterSyscall2 = asm.NewLabel("after_syscall2");
        RunUser("syscall/sysret from ring 3", userSyscall);
        asm.Print("ring 3 after sysretq: rflags=");
        PrintVar(UserVars);
        asm.Print(" cs=");
        PrintVar(UserVars + 8);
        asm.Print(" ss=");
        PrintVar(UserVars + 16);
        asm.Print(" rsp=");
        PrintVar(UserVars + 24);
        asm.Print("\nring 3 after sysretq with r11|=0x3801: rflags=");
        PrintVar(UserVars + 32);
        asm.Print(", after popfq 0x2 at CPL 3: rflags=");
        PrintVar(UserVars + 40);
        asm.Print("\n");

        // Ring 3: INT 0x80, IST exceptions, #PF, #GP for a DPL-0 gate.
        var userInts = asm.NewLabel("user_ints");
        RunUser("interrupts from ring 3", userInts);
        asm.Print("ring 3 after iretq with rflags|=0x8d5: rflags=");
        PrintVar(UserVars + 48);
        asm.Print(", after #PF resume: rax=");
        PrintVar(UserVars + 56);
        asm.Print("\n");

        // Ring 0: INT3 on IST1 and an INT with RSP = 8 mod 16.
        asm.Print("ring 0: int3 (IST1 gate):");
        a.int3();
        asm.Print("\n");
        asm.Print("ring 0: int 0x82 with rsp=8 mod 16:");
        a.push(rax);
        a.mov(__qword_ptr[Q(KVars + 8)], rsp);
        a.@int(0x82);
        a.pop(rax);
        asm.Print("\n");

        // #DF: INT 0x90 hits a not-present gate, and the #NP gate is not present either.
        a.and(__byte_ptr[Q(Kernel64.IdtRam + 11 * 16 + 5)], 0x7F);
        KernelProbe("int 0x90 (not present) with the #NP gate not present", () => a.@int(0x90));
        a.or(__byte_ptr[Q(Kernel64.IdtRam + 11 * 16 + 5)], 0x80);
        KernelProbe("int 0x90 (not present), #NP gate present", () => a.@int(0x90));

        // SYSRETQ to a non-canonical RCX.
        var userSysretBad = asm.NewLabel("user_sysret_bad");
        RunUser("sysretq with rcx=0x800000000000 (non-canonical)", userSysretBad);

        asm.Print("syscall-ist: done\n");
        asm.Exit(0);

        asm.Later(() =>
        {
            EmitUserCode(userSyscall, afterSyscall1, afterSyscall2, userInts, userSysretBad);
            EmitSyscallEntry(syscallEntry, afterSyscall1);
            EmitInt80(int80);
            EmitInt82(int82);
            EmitIstHandler(bp, "#BP", skip: 0);
            EmitIstHandler(ud, "#UD", skip: 2);
            EmitDf(df);
            EmitGp(gp);
            EmitPf(pf);
            asm.Bind(ref unused90);
            a.iretq();
        });
    }

    private void SetUpGdtAndTss()
    {
        var a = _a;
        var entries = new List<ulong>(Gdt.Entries);
        var (low, high) = Gdt.TssDescriptor(TssRam, 0x67);
        entries.Add(low);
        entries.Add(high);
        entries.Add(0x00AF_9B00_0000_FFFF); // 0x40 kernel code, L=1 (SYSCALL CS)
        entries.Add(0x00CF_9300_0000_FFFF); // 0x48 kernel data (SYSCALL SS)
        for (var i = 0; i < entries.Count; i++)
        {
            a.mov(rax, entries[i]);
            a.mov(__qword_ptr[Q(GdtRam) + (ulong)(i * 8)], rax);
        }

        a.mov(__word_ptr[Q(GdtrRam)], (ushort)(entries.Count * 8 - 1));
        a.mov(__qword_ptr[Q(GdtrRam) + 2], (int)GdtRam);
        a.lgdt(__[Q(GdtrRam)]);
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);

        a.cld();
        a.mov(edi, TssRam);
        a.mov(ecx, 0x68);
        a.xor(eax, eax);
        a.rep.stosb();
        a.mov(__qword_ptr[Q(TssRam) + 4], (int)Rsp0);
        a.mov(__qword_ptr[Q(TssRam) + 0x24], (int)Ist1);
        a.mov(__word_ptr[Q(TssRam) + 0x66], (ushort)0x68);
        a.mov(ax, Gdt.Tss);
        a.ltr(ax);
    }

    private void MakeIdentityMapUserAccessible()
    {
        var a = _a;
        var asm = _asm;
        a.or(__qword_ptr[Q(BiosRom.Pml4)], (int)US);
        a.or(__qword_ptr[Q(BiosRom.Pml4 + 0x1000)], (int)US);
        a.xor(ecx, ecx);
        var l = asm.Here();
        a.or(__qword_ptr[rcx * 8 + (int)(BiosRom.Pml4 + 0x2000)], (int)US);
        a.inc(ecx);
        a.cmp(ecx, 512);
        a.jb(l);
        a.and(__qword_ptr[Q(BiosRom.Pml4 + 0x2000 + (uint)(SupervisorOnly >> 21) * 8)], ~(int)US);
        a.mov(__qword_ptr[SupervisorOnly], 0x5A);
        Kernel64.EmitFlushTlb(asm);
    }

    private void WriteMsr(uint msr, ulong value)
    {
        _a.mov(ecx, msr);
        _a.mov(eax, (uint)value);
        _a.mov(edx, (uint)(value >> 32));
        _a.wrmsr();
    }

    private void PrintMsr(string prefix, uint msr)
    {
        _asm.Print(prefix);
        _a.mov(ecx, msr);
        _a.rdmsr();
        _a.shl(rdx, 32);
        _a.or(rax, rdx);
        _asm.PrintHex(rax);
    }

    private void PrintVar(uint address)
    {
        _a.mov(rax, __qword_ptr[Q(address)]);
        _asm.PrintHex(rax);
    }

    /// <summary>A ring-0 probe with the Kernel64 recovery protocol; the #GP handler of this image or the reporter prints faults.</summary>
    private void KernelProbe(string title, Action access, Action? success = null)
    {
        var a = _a;
        var asm = _asm;
        var probe = asm.NewLabel();
        var recover = asm.NewLabel();
        var done = asm.NewLabel();
        asm.Print(title + ": ");
        Kernel64.EmitSetRecovery(asm, recover);
        a.lea(rax, __[probe]);
        a.mov(__qword_ptr[Q(Kernel64.FaultRef)], rax);
        asm.Bind(ref probe);
        access();
        Kernel64.EmitClearRecovery(asm);
        asm.Print("ok");
        success?.Invoke();
        a.jmp(done);
        asm.Bind(ref recover);
        Kernel64.EmitClearRecovery(asm);
        asm.Bind(ref done);
        a.mov(__qword_ptr[Q(KVars + 16)], 0);
        asm.Print("\n");
    }

    /// <summary>IRETQ to <paramref name="stub"/> at CPL 3 (RFLAGS 0x2, RSP = user stack top); the stub comes back via the
    /// recovery point (SYSCALL with RAX = 0, INT 0x80 with RAX = 0, or a fault handler).</summary>
    private void RunUser(string title, Label stub)
    {
        var a = _a;
        var asm = _asm;
        var back = asm.NewLabel();
        asm.Print(title + ":\n");
        Kernel64.EmitSetRecovery(asm, back);
        a.lea(rax, __[back]);
        a.mov(__qword_ptr[Q(Kernel64.UserOkRip)], rax);
        a.lea(rax, __[stub]);
        a.mov(__qword_ptr[Q(Kernel64.FaultRef)], rax);
        a.push(Gdt.UserData | 3);
        a.push((int)UserStackTop);
        a.push(2);
        a.push(Gdt.UserCode64 | 3);
        a.lea(rax, __[stub]);
        a.push(rax);
        a.iretq();
        asm.Bind(ref back);
        Kernel64.EmitClearRecovery(asm);
        var noNewline = asm.NewLabel();
        a.cmp(__qword_ptr[Q(KVars + 16)], 0);
        a.je(noNewline);
        asm.Print("\n");
        asm.Bind(ref noNewline);
        a.mov(__qword_ptr[Q(KVars + 16)], 0);
    }

    private void EmitUserCode(Label userSyscall, Label afterSyscall1, Label afterSyscall2, Label userInts, Label userSysretBad)
    {
        var a = _a;
        var asm = _asm;

        asm.Bind(ref userSyscall);
        a.push(0x0CD7);
        a.popfq();
        a.mov(eax, 1);
        a.syscall();
        asm.Bind(ref afterSyscall1);
        a.pushfq();
        a.pop(__qword_ptr[Q(UserVars)]);
        a.mov(__qword_ptr[Q(UserVars + 8)], 0);
        a.mov(__word_ptr[Q(UserVars + 8)], cs);
        a.mov(__qword_ptr[Q(UserVars + 16)], 0);
        a.mov(__word_ptr[Q(UserVars + 16)], ss);
        a.mov(__qword_ptr[Q(UserVars + 24)], rsp);
        a.mov(eax, 2);
        a.syscall();
        asm.Bind(ref afterSyscall2);
        a.pushfq();
        a.pop(__qword_ptr[Q(UserVars + 32)]);
        a.push(2);
        a.popfq();
        a.pushfq();
        a.pop(__qword_ptr[Q(UserVars + 40)]);
        a.xor(eax, eax);
        a.syscall();

        asm.Bind(ref userInts);
        a.mov(eax, 1);
        a.@int(0x80);
        a.pushfq();
        a.pop(__qword_ptr[Q(UserVars + 48)]);
        a.push(2);
        a.popfq();
        a.int3();
        a.ud2();
        a.mov(rax, 0x1111);
        a.mov(ebx, (uint)SupervisorOnly);
        a.mov(rax, __qword_ptr[rbx]);
        a.mov(__qword_ptr[Q(UserVars + 56)], rax);
        a.@int(0x81);
        a.xor(eax, eax);
        a.@int(0x80);

        asm.Bind(ref userSysretBad);
        a.mov(eax, 3);
        a.syscall();
        a.xor(eax, eax);
        a.syscall();
    }

    /// <summary>
    /// SYSCALL entry: SWAPGS, save the user RSP in gs:[8], switch to gs:[0]. RAX = 0: back to the kernel; 1: print
    /// the state and SYSRETQ; 2: SYSRETQ with R11 |= 0x3801 (IOPL 3, OF, CF); 3: SYSRETQ with RCX non-canonical.
    /// </summary>
    private void EmitSyscallEntry(Label entry, Label afterSyscall1)
    {
        var a = _a;
        var asm = _asm;
        var notZero = asm.NewLabel();
        var notOne = asm.NewLabel();
        var notTwo = asm.NewLabel();
        var sysret = asm.NewLabel();
        asm.Bind(ref entry);
        a.swapgs();
        a.mov(__qword_ptr.gs[8], rsp);
        a.mov(rsp, __qword_ptr.gs[0]);
        a.push(rcx);
        a.push(r11);
        a.test(eax, eax);
        a.jnz(notZero);
        a.swapgs();
        Kernel64.EmitResume(asm, Kernel64.UserOkRip);

        asm.Bind(ref notZero);
        a.cmp(eax, 1);
        a.jne(notOne);
        a.pushfq();
        a.pop(rbx);
        asm.Print("  kernel side: rcx=after_syscall");
        a.lea(rax, __[afterSyscall1]);
        a.mov(rdi, rcx);
        a.sub(rdi, rax);
        asm.Print("+");
        asm.PrintHex(rdi);
        asm.Print(" r11=");
        asm.PrintHex(r11);
        asm.Print(" rflags=");
        asm.PrintHex(rbx);
        asm.Print(" cs=");
        a.xor(eax, eax);
        a.mov(ax, cs);
        asm.PrintHex(rax);
        asm.Print(" ss=");
        a.mov(ax, ss);
        asm.PrintHex(rax);
        asm.Print(" user rsp=");
        a.mov(rax, __qword_ptr.gs[8]);
        asm.PrintHex(rax);
        asm.Print(" rsp=");
        asm.PrintHex(rsp);
        asm.Print("\n  kernel side after swapgs:");
        PrintMsr(" GS_BASE=", MsrGsBase);
        PrintMsr(" KERNEL_GS_BASE=", MsrKernelGsBase);
        asm.Print(" gs:[0]=");
        a.mov(rax, __qword_ptr.gs[0]);
        asm.PrintHex(rax);
        asm.Print("\n");
        a.jmp(sysret);

        asm.Bind(ref notOne);
        a.cmp(eax, 2);
        a.jne(notTwo);
        a.or(__qword_ptr[rsp], 0x3801);
        a.jmp(sysret);

        asm.Bind(ref notTwo);
        a.mov(rcx, 0x8000_0000_0000);
        a.mov(__qword_ptr[rsp + 8], rcx);
        a.lea(rax, __[sysret]);
        a.mov(__qword_ptr[Q(Kernel64.FaultRef)], rax);

        asm.Bind(ref sysret);
        a.pop(r11);
        a.pop(rcx);
        a.mov(rsp, __qword_ptr.gs[8]);
        a.swapgs();
        a.sysretq();
    }

    /// <summary>INT 0x80 (DPL 3): RAX = 0 returns to the kernel; otherwise prints RSP and the frame and IRETQs with
    /// RFLAGS |= 0x8D5. Also the target of INT 0x81 (DPL 0), which ring 3 cannot reach.</summary>
    private void EmitInt80(Label int80)
    {
        var a = _a;
        var asm = _asm;
        var report = asm.NewLabel();
        asm.Bind(ref int80);
        a.mov(__qword_ptr[Q(EntryRsp)], rsp);
        a.test(eax, eax);
        a.jnz(report);
        Kernel64.EmitResume(asm, Kernel64.UserOkRip);
        asm.Bind(ref report);
        asm.Print("  int 0x80:");
        PrintFrame(hasError: false);
        asm.Print("\n");
        a.or(__qword_ptr[rsp + 16], 0x8D5);
        a.iretq();
    }

    /// <summary>Prints " rsp=.. rip=stub+.. cs=.. rflags=.. ss:rsp=..:.." from the frame at [RSP] (after an error code if any).</summary>
    private void PrintFrame(bool hasError)
    {
        var a = _a;
        var asm = _asm;
        var e = hasError ? 8 : 0;
        asm.Print(" rsp=");
        PrintVar(EntryRsp);
        if (hasError)
        {
            asm.Print(" err=");
            a.mov(rax, __qword_ptr[rsp]);
            asm.PrintHex(rax);
        }

        asm.Print(" rip=stub+");
        a.mov(rax, __qword_ptr[rsp + e]);
        a.sub(rax, __qword_ptr[Q(Kernel64.FaultRef)]);
        asm.PrintHex(rax);
        asm.Print(" cs=");
        a.mov(rax, __qword_ptr[rsp + e + 8]);
        asm.PrintHex(rax);
        asm.Print(" rflags=");
        a.mov(rax, __qword_ptr[rsp + e + 16]);
        asm.PrintHex(rax);
        asm.Print(" ss:rsp=");
        a.mov(rax, __qword_ptr[rsp + e + 32]);
        asm.PrintHex(rax);
        asm.Print(":");
        a.mov(rax, __qword_ptr[rsp + e + 24]);
        asm.PrintHex(rax);
    }

    private void EmitInt82(Label int82)
    {
        var a = _a;
        var asm = _asm;
        asm.Bind(ref int82);
        a.mov(__qword_ptr[Q(EntryRsp)], rsp);
        asm.Print(" frame at rsp_before-");
        a.mov(rax, __qword_ptr[Q(KVars + 8)]);
        a.sub(rax, rsp);
        asm.PrintHex(rax);
        asm.Print(", saved rsp-rsp_before=");
        a.mov(rax, __qword_ptr[rsp + 24]);
        a.sub(rax, __qword_ptr[Q(KVars + 8)]);
        asm.PrintHex(rax);
        a.iretq();
    }

    /// <summary>An IST1 handler: prints RSP and the frame; skips <paramref name="skip"/> bytes of the faulting instruction.</summary>
    private void EmitIstHandler(Label handler, string name, int skip)
    {
        var a = _a;
        var asm = _asm;
        var kernel = asm.NewLabel();
        var done = asm.NewLabel();
        asm.Bind(ref handler);
        a.mov(__qword_ptr[Q(EntryRsp)], rsp);
        a.push(rax);
        a.mov(rax, __qword_ptr[rsp + 16]);
        a.test(al, 3);
        a.pop(rax);
        a.jz(kernel);
        asm.Print($"  {name} on IST1:");
        PrintFrame(hasError: false);
        asm.Print("\n");
        a.jmp(done);
        asm.Bind(ref kernel);
        asm.Print($" {name} on IST1 at CPL 0: rsp=");
        PrintVar(EntryRsp);
        asm.Print(" cs=");
        a.mov(rax, __qword_ptr[rsp + 8]);
        asm.PrintHex(rax);
        asm.Print(" saved rsp=");
        a.mov(rax, __qword_ptr[rsp + 24]);
        asm.PrintHex(rax);
        asm.Print(" ");
        asm.Bind(ref done);
        if (skip != 0)
        {
            a.add(__qword_ptr[rsp], skip);
        }

        a.iretq();
    }

    private void EmitDf(Label df)
    {
        var a = _a;
        var asm = _asm;
        asm.Bind(ref df);
        a.mov(__qword_ptr[Q(EntryRsp)], rsp);
        asm.Print("#DF on IST1: rsp=");
        PrintVar(EntryRsp);
        asm.Print(" err=");
        a.mov(rax, __qword_ptr[rsp]);
        asm.PrintHex(rax);
        asm.Print(" rip=probe+");
        a.mov(rax, __qword_ptr[rsp + 8]);
        a.sub(rax, __qword_ptr[Q(Kernel64.FaultRef)]);
        asm.PrintHex(rax);
        asm.Print(" cs=");
        a.mov(rax, __qword_ptr[rsp + 16]);
        asm.PrintHex(rax);
        Kernel64.EmitResume(asm, Kernel64.RecoverRip);
    }

    /// <summary>#GP: prints the error code, the frame's CS and RIP (relative to FaultRef) and RSP at entry, then resumes at the recovery point.</summary>
    private void EmitGp(Label gp)
    {
        var a = _a;
        var asm = _asm;
        asm.Bind(ref gp);
        a.mov(__qword_ptr[Q(EntryRsp)], rsp);
        asm.Print("#GP err=");
        a.mov(rax, __qword_ptr[rsp]);
        asm.PrintHex(rax);
        asm.Print(" cs=");
        a.mov(rax, __qword_ptr[rsp + 16]);
        asm.PrintHex(rax);
        asm.Print(" rip=ref+");
        a.mov(rax, __qword_ptr[rsp + 8]);
        a.sub(rax, __qword_ptr[Q(Kernel64.FaultRef)]);
        asm.PrintHex(rax);
        asm.Print(" rsp=");
        PrintVar(EntryRsp);
        asm.Print(" saved ss:rsp=");
        a.mov(rax, __qword_ptr[rsp + 40]);
        asm.PrintHex(rax);
        asm.Print(":");
        a.mov(rax, __qword_ptr[rsp + 32]);
        asm.PrintHex(rax);
        a.mov(__qword_ptr[Q(KVars + 16)], 1);
        Kernel64.EmitResume(asm, Kernel64.RecoverRip);
    }

    /// <summary>#PF: prints the frame (error code, CR2), skips the 3-byte load (mov rax,[rbx]) and returns with RAX unchanged.</summary>
    private void EmitPf(Label pf)
    {
        var a = _a;
        var asm = _asm;
        asm.Bind(ref pf);
        a.mov(__qword_ptr[Q(EntryRsp)], rsp);
        a.mov(__qword_ptr[Q(KVars + 24)], rax);
        asm.Print("  #PF:");
        PrintFrame(hasError: true);
        asm.Print(" cr2=");
        a.mov(rax, cr2);
        asm.PrintHex(rax);
        asm.Print("\n");
        a.mov(rax, __qword_ptr[Q(KVars + 24)]);
        a.add(rsp, 8);
        a.add(__qword_ptr[rsp], 3);
        a.iretq();
    }

    private void FsGsTests()
    {
        var a = _a;
        var asm = _asm;
        a.mov(rax, 0x0F5F_5F5F_5F5F_5F5F);
        a.mov(__qword_ptr[Q(FsArea + 0x10)], rax);
        WriteMsr(MsrFsBase, FsArea);
        asm.Print("fs: wrmsr FS_BASE=0x52000:");
        PrintMsr(" rdmsr=", MsrFsBase);
        asm.Print(" fs:[0x10]=");
        a.mov(rax, __qword_ptr.fs[0x10]);
        asm.PrintHex(rax);
        asm.Print("\n");

        asm.Print("fs: mov fs,0 (null selector):");
        a.xor(eax, eax);
        a.mov(fs, ax);
        PrintMsr(" FS_BASE=", MsrFsBase);
        asm.Print("\n");

        WriteMsr(MsrFsBase, FsArea);
        asm.Print("fs: FS_BASE=0x52000 then mov fs,0x10:");
        a.mov(ax, Gdt.Data);
        a.mov(fs, ax);
        PrintMsr(" FS_BASE=", MsrFsBase);
        asm.Print("\n");

        asm.Print("gs: mov gs,0 keeps KERNEL_GS_BASE:");
        a.xor(eax, eax);
        a.mov(gs, ax);
        PrintMsr(" GS_BASE=", MsrGsBase);
        PrintMsr(" KERNEL_GS_BASE=", MsrKernelGsBase);
        asm.Print("\n");
        WriteMsr(MsrGsBase, UserGsBase);

        KernelProbe("wrmsr FS_BASE=0x0000800000000000 (non-canonical)", () => WriteMsr(MsrFsBase, 0x8000_0000_0000));
        KernelProbe("wrmsr KERNEL_GS_BASE=0xffff800000000000 (canonical)", () => WriteMsr(MsrKernelGsBase, 0xFFFF_8000_0000_0000), () => PrintMsr(" read back ", MsrKernelGsBase));
        WriteMsr(MsrKernelGsBase, KernelGsBase);
        asm.Print("swapgs in ring 0:");
        a.swapgs();
        PrintMsr(" GS_BASE=", MsrGsBase);
        PrintMsr(" KERNEL_GS_BASE=", MsrKernelGsBase);
        a.swapgs();
        asm.Print("\n");
    }
}
