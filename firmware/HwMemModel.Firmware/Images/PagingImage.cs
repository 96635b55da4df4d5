using HwMemModel.Firmware.Building;
using Iced.Intel;
using static HwMemModel.Firmware.Building.LongMode;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Images;

/// <summary>
/// The <c>paging</c> BIOS image: a long-mode page-table permission suite. Every test prints one line,
/// <c>title: ok</c> (maybe with a value) or the exception the reporter printed
/// (<c>#PF err=0x.. cr2=0x.. rip=probe+0x..</c>), sometimes followed by entry bits read afterwards.
/// Test mappings live in PML4 slot 1 (from 0x8000000000); the first GiB stays identity-mapped for supervisor use.
/// </summary>
internal sealed class PagingImage
{
    public const string Description =
        "BIOS: long-mode paging permission suite: 4 KiB/2 MiB/1 GiB leaves, U/S (ring 3 via IRETQ + TSS), R/W with CR0.WP, NX, SMEP, SMAP, PKU, reserved bits, A/D bits, non-canonical #GP, INVLPG, #DE/#UD/#BP; one line per test; exits 0";

    // Test paging structures and frames (physical = identity-mapped virtual in the first GiB).
    private const ulong PdptT = 0x10_4000;
    private const ulong PdT = 0x10_5000;
    private const ulong PtT = 0x10_6000;
    private const ulong Frames = 0x20_0000;
    private const ulong UserStubLoad = 0xF_E000;

    private const ulong TBase = 0x80_0000_0000;
    private const ulong Pml4 = BiosRom.Pml4;

    // 4 KiB test pages (PT index).
    private const int PSupData = 0;
    private const int PUserData = 1;
    private const int PUserRo = 2;
    private const int PSupRo = 3;
    private const int PUserCode = 4;
    private const int PUserStack = 5;
    private const int PSupXd = 6;
    private const int PUserPkey = 7;
    private const int PAd = 8;
    private const int PAFault = 9;
    private const int PRsvd = 10;
    private const int PInvlpg = 11;
    private const int PUserExec = 12;
    private const int InvlpgSecondFrame = 13;

    // 2 MiB leaves (PD index) and 1 GiB leaves (PDPT index).
    private const int D2Read = 1;
    private const int D2Ad = 2;
    private const int D2Rsvd = 3;
    private const int D2AFault = 4;
    private const int G1Read = 1;
    private const int G1Ad = 2;
    private const int G1AFault = 3;

    private const ulong Magic4K = 0x1111_2222_3333_4444;
    private const ulong Magic2M = 0x5555_6666_7777_8888;
    private const ulong Magic2MPa = 0x4A_BCD8;
    private const ulong Bit40 = 1UL << 40;
    private const ulong PkeyShift = 59;

    // Feature bits kept in R15 during the suite.
    private const int FNx = 0;
    private const int F1G = 1;
    private const int FSmep = 2;
    private const int FSmap = 3;
    private const int FPku = 4;

    private readonly Asm _asm;
    private readonly Assembler _a;

    private PagingImage(Asm asm)
    {
        _asm = asm;
        _a = asm.A;
    }

    private enum UserOp
    {
        Read,
        Write,
        Fetch,
    }

    public static byte[] Build() => BiosRom.Build(
        null,
        asm => new PagingImage(asm).Body(),
        new SectionSpec("user-stubs", 64, Va4K(PUserCode), EmitUserStubs, UserStubLoad));

    private static ulong Va4K(int page) => TBase + (ulong)page * 0x1000;

    private static ulong Va2M(int index) => TBase + (ulong)index * 0x20_0000;

    private static ulong Va1G(int index) => TBase + (ulong)index * 0x4000_0000;

    private static ulong Frame(int page) => Frames + (ulong)page * 0x1000;

    private static ulong Pte(int page) => PtT + (ulong)page * 8;

    /// <summary>Ring-3 code, copied to the user code page: each stub does one access at RDI and returns with INT 0x80.</summary>
    private static void EmitUserStubs(Asm asm)
    {
        var a = asm.A;
        asm.Global("user_read");
        a.mov(al, __byte_ptr[rdi]);
        a.@int(0x80);
        asm.Global("user_write");
        a.mov(__byte_ptr[rdi], al);
        a.@int(0x80);
        asm.Global("user_fetch");
        a.call(rdi);
        a.@int(0x80);
    }

    private void Body()
    {
        var a = _a;
        var asm = _asm;
        var int80 = asm.NewLabel("int80");
        Kernel64.EmitGdtAndTss(asm);
        Kernel64.EmitIdt(asm, null, (0x80, int80, Kernel64.GateDpl3));
        asm.Later(() =>
        {
            asm.Bind(ref int80);
            Kernel64.EmitResume(asm, Kernel64.UserOkRip);
        });

        DetectFeatures();
        BuildTables();
        asm.Print("paging: tables built, CR0=");
        a.mov(rax, cr0);
        asm.PrintHex(rax);
        asm.Print(" CR4=");
        a.mov(rax, cr4);
        asm.PrintHex(rax);
        asm.Print(" EFER=");
        a.mov(ecx, Platform.MsrEfer);
        a.rdmsr();
        asm.PrintHex(eax);
        asm.Print("\n");

        LeafTests();
        UserSupervisorTests();
        ReadWriteTests();
        NxTests();
        SmepTests();
        SmapTests();
        PkuTests();
        ReservedBitTests();
        AccessedDirtyTests();
        NonCanonicalTests();
        InvlpgTests();
        ExceptionTests();

        asm.Print("paging: done\n");
        asm.Exit(0);
    }

    private void DetectFeatures()
    {
        var a = _a;
        a.xor(r15d, r15d);
        a.mov(eax, 0x8000_0001);
        a.cpuid();
        a.bt(edx, 20);
        a.adc(r15d, 0); // NX -> bit 0
        a.bt(edx, 26);
        SetFeatureFromCarry(F1G);
        a.mov(eax, 7);
        a.xor(ecx, ecx);
        a.cpuid();
        a.bt(ebx, 7);
        SetFeatureFromCarry(FSmep);
        a.bt(ebx, 20);
        SetFeatureFromCarry(FSmap);
        a.bt(ecx, 3);
        SetFeatureFromCarry(FPku);

        _asm.Print("paging: CPUID nx=");
        PrintFeature(FNx);
        _asm.Print(" page1gb=");
        PrintFeature(F1G);
        _asm.Print(" smep=");
        PrintFeature(FSmep);
        _asm.Print(" smap=");
        PrintFeature(FSmap);
        _asm.Print(" pku=");
        PrintFeature(FPku);
        _asm.Print("\n");

        // EFER.NXE when NX is reported: instruction fetches then report I/D in #PF error codes.
        var noNx = _asm.NewLabel();
        a.bt(r15d, FNx);
        a.jnc(noNx);
        a.mov(ecx, Platform.MsrEfer);
        a.rdmsr();
        a.or(eax, EferNxe);
        a.wrmsr();
        _asm.Bind(ref noNx);
    }

    private void SetFeatureFromCarry(int bit)
    {
        _a.setc(al);
        _a.movzx(eax, al);
        _a.shl(eax, (byte)bit);
        _a.or(r15d, eax);
    }

    private void PrintFeature(int bit)
    {
        _a.mov(eax, r15d);
        _a.shr(eax, (byte)bit);
        _a.and(eax, 1);
        _asm.PrintDec(eax);
    }

    /// <summary>Emits body only when the feature bit is set in R15, else prints "skipped: NAME not reported".</summary>
    private void IfFeature(int bit, string title, string feature, Action body)
    {
        var skip = _asm.NewLabel();
        var done = _asm.NewLabel();
        _a.bt(r15d, (byte)bit);
        _a.jnc(skip);
        body();
        _a.jmp(done);
        _asm.Bind(ref skip);
        _asm.Print($"{title}: skipped: {feature} not reported\n");
        _asm.Bind(ref done);
    }

    private void Store(ulong address, ulong value)
    {
        _a.mov(rax, value);
        _a.mov(__qword_ptr[address], rax);
    }

    private void BuildTables()
    {
        var a = _a;
        a.cld();
        a.mov(edi, (uint)PdptT);
        a.mov(ecx, 3 * 0x1000 / 8);
        a.xor(eax, eax);
        a.rep.stosq();
        a.mov(edi, (uint)Frames);
        a.mov(ecx, 16 * 0x1000 / 8);
        a.rep.stosq();

        Store(Pml4 + 1 * 8, PdptT | P | RW | US);
        Store(Pml4 + 2 * 8, PdptT | P | RW | US | PS); // PS=1 in a PML4E is reserved
        Store(PdptT, PdT | P | RW | US);
        Store(PdT, PtT | P | RW | US);

        Store(Pte(PSupData), Frame(PSupData) | P | RW);
        Store(Pte(PUserData), Frame(PUserData) | P | RW | US); // XD set by the NX test when NX is reported
        Store(Pte(PUserRo), Frame(PUserRo) | P | US);
        Store(Pte(PSupRo), Frame(PSupRo) | P);
        Store(Pte(PUserCode), Frame(PUserCode) | P | US);
        Store(Pte(PUserStack), Frame(PUserStack) | P | RW | US);
        Store(Pte(PSupXd), Frame(PSupXd) | P | RW); // XD set by the NX test when NX is reported
        Store(Pte(PUserPkey), Frame(PUserPkey) | P | RW | US | (1UL << (int)PkeyShift));
        Store(Pte(PAd), Frame(PAd) | P | RW);
        Store(Pte(PAFault), Frame(PAFault) | P);
        Store(Pte(PRsvd), Frame(PRsvd) | P | RW | Bit40);
        Store(Pte(PInvlpg), Frame(PInvlpg) | P | RW);
        Store(Pte(PUserExec), Frame(PUserExec) | P | US);

        Store(PdT + D2Read * 8, 0x40_0000 | P | RW | PS);
        Store(PdT + D2Ad * 8, 0x60_0000 | P | RW | PS);
        Store(PdT + D2Rsvd * 8, PtT | P | RW | US | Bit40);
        Store(PdT + D2AFault * 8, 0x80_0000 | P | PS);

        var no1G = _asm.NewLabel();
        a.bt(r15d, F1G);
        a.jnc(no1G);
        Store(PdptT + G1Read * 8, 0 | P | RW | PS);
        Store(PdptT + G1Ad * 8, 0 | P | RW | PS);
        Store(PdptT + G1AFault * 8, 0 | P | PS);
        _asm.Bind(ref no1G);

        // Frame contents.
        Store(Frame(PSupData), Magic4K);
        Store(Magic2MPa, Magic2M);
        Store(Frame(PInvlpg), 0x1111);
        Store(Frame(InvlpgSecondFrame), 0x2222);
        a.mov(__byte_ptr[Frame(PSupXd)], 0xC3);
        a.mov(__byte_ptr[Frame(PUserPkey)], 0xC3);
        a.mov(__byte_ptr[Frame(PUserExec)], 0xC3);
        a.mov(esi, (uint)UserStubLoad);
        a.mov(edi, (uint)Frame(PUserCode));
        a.mov(ecx, 0x100);
        a.rep.movsb();
        Kernel64.EmitFlushTlb(_asm);
    }

    /// <summary>
    /// A supervisor-mode probe: prints the title, records a recovery point and FaultRef (the probe
    /// instruction, or <paramref name="reference"/> for fetches), runs <paramref name="access"/>.
    /// </summary>
    private void Probe(string title, Action access, Action? success = null, Action? after = null, ulong? reference = null)
    {
        var a = _a;
        var asm = _asm;
        var probe = asm.NewLabel();
        var recover = asm.NewLabel();
        var done = asm.NewLabel();
        asm.Print(title + ": ");
        Kernel64.EmitSetRecovery(asm, recover);
        if (reference is { } target)
        {
            a.mov(rax, target);
        }
        else
        {
            a.lea(rax, __[probe]);
        }

        a.mov(__qword_ptr[Kernel64.FaultRef], rax);
        asm.Bind(ref probe);
        access();
        Kernel64.EmitClearRecovery(asm);
        asm.Print("ok");
        success?.Invoke();
        a.jmp(done);
        asm.Bind(ref recover);
        Kernel64.EmitClearRecovery(asm);
        asm.Bind(ref done);
        after?.Invoke();
        asm.Print("\n");
    }

    /// <summary>A ring-3 probe: IRETQ to the user stub for <paramref name="op"/> with RDI = <paramref name="va"/>.</summary>
    private void UserProbe(string title, UserOp op, ulong va)
    {
        var a = _a;
        var asm = _asm;
        var recover = asm.NewLabel();
        var ok = asm.NewLabel();
        var done = asm.NewLabel();
        var stub = asm.Sym(op switch
        {
            UserOp.Read => "user_read",
            UserOp.Write => "user_write",
            _ => "user_fetch",
        });
        asm.Print(title + ": ");
        Kernel64.EmitSetRecovery(asm, recover);
        a.lea(rax, __[ok]);
        a.mov(__qword_ptr[Kernel64.UserOkRip], rax);
        a.mov(rax, op == UserOp.Fetch ? va : stub);
        a.mov(__qword_ptr[Kernel64.FaultRef], rax);
        a.mov(rdi, va);
        a.push(Gdt.UserData | 3);
        a.mov(rax, Va4K(PUserStack) + 0x1000);
        a.push(rax);
        a.push(2);
        a.push(Gdt.UserCode64 | 3);
        a.mov(rax, stub);
        a.push(rax);
        a.iretq();
        asm.Bind(ref ok);
        Kernel64.EmitClearRecovery(asm);
        asm.Print("ok");
        a.jmp(done);
        asm.Bind(ref recover);
        Kernel64.EmitClearRecovery(asm);
        asm.Bind(ref done);
        asm.Print("\n");
    }

    private void ReadAt() => _a.mov(rax, __qword_ptr[rbx]);

    private void PrintRax()
    {
        _asm.Print(" value=");
        _asm.PrintHex(rax);
    }

    private void SetCr0Wp(bool on)
    {
        _a.mov(rax, cr0);
        if (on)
        {
            _a.or(eax, Cr0Wp);
        }
        else
        {
            _a.and(eax, ~Cr0Wp);
        }

        _a.mov(cr0, rax);
    }

    private void SetCr4(uint bit, bool on)
    {
        _a.mov(rax, cr4);
        if (on)
        {
            _a.or(eax, bit);
        }
        else
        {
            _a.and(eax, ~bit);
        }

        _a.mov(cr4, rax);
    }

    private void WritePkru(uint value)
    {
        _a.xor(ecx, ecx);
        _a.xor(edx, edx);
        _a.mov(eax, value);
        _a.wrpkru();
    }

    /// <summary>A supervisor probe of a load from <paramref name="va"/> (RBX is loaded before the probe).</summary>
    private void ReadProbe(string title, ulong va, bool printValue = false, Action? after = null)
    {
        _a.mov(rbx, va);
        Probe(title, ReadAt, printValue ? PrintRax : null, after);
    }

    private void WriteProbe(string title, ulong va, Action? after = null)
    {
        _a.mov(rbx, va);
        Probe(title, () => _a.mov(__byte_ptr[rbx], 0x5A), null, after);
    }

    private void FetchProbe(string title, ulong va)
    {
        _a.mov(rbx, va);
        Probe(title, () => _a.call(rbx), null, null, va);
    }

    private void LeafTests()
    {
        ReadProbe("4 KiB leaf: supervisor read", Va4K(PSupData), printValue: true);
        ReadProbe("2 MiB leaf: supervisor read", Va2M(D2Read) + (Magic2MPa - 0x40_0000), printValue: true);
        IfFeature(F1G, "1 GiB leaf: supervisor read", "1 GiB pages", () =>
            ReadProbe("1 GiB leaf: supervisor read", Va1G(G1Read) + Magic2MPa, printValue: true));
    }

    private void UserSupervisorTests()
    {
        UserProbe("U/S: user read of a user page", UserOp.Read, Va4K(PUserData));
        UserProbe("U/S: user write of a user page", UserOp.Write, Va4K(PUserData));
        UserProbe("U/S: user fetch from a user page", UserOp.Fetch, Va4K(PUserExec));
        UserProbe("U/S: user read of a supervisor page", UserOp.Read, Va4K(PSupData));
        UserProbe("U/S: user write of a supervisor page", UserOp.Write, Va4K(PSupData));
        UserProbe("U/S: user fetch from a supervisor page", UserOp.Fetch, Va4K(PSupXd));
    }

    private void ReadWriteTests()
    {
        UserProbe("R/W: user read of a read-only user page", UserOp.Read, Va4K(PUserRo));
        UserProbe("R/W: user write of a read-only user page", UserOp.Write, Va4K(PUserRo));
        SetCr0Wp(false);
        WriteProbe("R/W: supervisor write of a read-only supervisor page, CR0.WP=0", Va4K(PSupRo));
        WriteProbe("R/W: supervisor write of a read-only user page, CR0.WP=0", Va4K(PUserRo));
        SetCr0Wp(true);
        WriteProbe("R/W: supervisor write of a read-only supervisor page, CR0.WP=1", Va4K(PSupRo));
        WriteProbe("R/W: supervisor write of a read-only user page, CR0.WP=1", Va4K(PUserRo));
    }

    private void NxTests()
    {
        IfFeature(FNx, "NX", "NX", () =>
        {
            Store(Pte(PSupXd), Frame(PSupXd) | P | RW | XD);
            Store(Pte(PUserData), Frame(PUserData) | P | RW | US | XD);
            Kernel64.EmitFlushTlb(_asm);
            ReadProbe("NX: supervisor read of an XD page, EFER.NXE=1", Va4K(PSupXd));
            FetchProbe("NX: supervisor fetch from an XD page, EFER.NXE=1", Va4K(PSupXd));
            UserProbe("NX: user fetch from an XD user page, EFER.NXE=1", UserOp.Fetch, Va4K(PUserData));
        });
    }

    private void SmepTests()
    {
        IfFeature(FSmep, "SMEP", "SMEP", () =>
        {
            FetchProbe("SMEP: supervisor fetch from a user page, CR4.SMEP=0", Va4K(PUserExec));
            SetCr4(Cr4Smep, true);
            FetchProbe("SMEP: supervisor fetch from a user page, CR4.SMEP=1", Va4K(PUserExec));
            ReadProbe("SMEP: supervisor read of a user page, CR4.SMEP=1", Va4K(PUserExec));
            SetCr4(Cr4Smep, false);
        });
    }

    private void SmapTests()
    {
        IfFeature(FSmap, "SMAP", "SMAP", () =>
        {
            SetCr4(Cr4Smap, true);
            ReadProbe("SMAP: supervisor read of a user page, CR4.SMAP=1 AC=0", Va4K(PUserData));
            WriteProbe("SMAP: supervisor write of a user page, CR4.SMAP=1 AC=0", Va4K(PUserData));
            _a.mov(rbx, Va4K(PUserData));
            Probe("SMAP: supervisor read of a user page, CR4.SMAP=1 AC=1 (STAC)", () =>
            {
                _a.stac();
                ReadAt();
                _a.clac();
            });
            FetchProbe("SMAP: supervisor fetch from a user page, CR4.SMAP=1 (SMAP does not apply)", Va4K(PUserExec));
            SetCr4(Cr4Smap, false);
        });
    }

    private void PkuTests()
    {
        IfFeature(FPku, "PKU", "PKU", () =>
        {
            var a = _a;
            SetCr4(Cr4Pke, true);
            a.mov(eax, 7);
            a.xor(ecx, ecx);
            a.cpuid();
            a.shr(ecx, 4);
            a.and(ecx, 1);
            _asm.Print("PKU: CPUID.07H:ECX.OSPKE with CR4.PKE=1: ");
            _asm.PrintDec(ecx);
            _asm.Print("\n");

            WritePkru(0x4); // key 1: access disable
            a.rdpkru();
            _asm.Print("PKU: RDPKRU after WRPKRU 0x4: ");
            _asm.PrintHex(eax);
            _asm.Print("\n");
            UserProbe("PKU: user read of a key-1 page, PKRU.AD1=1", UserOp.Read, Va4K(PUserPkey));
            UserProbe("PKU: user write of a key-1 page, PKRU.AD1=1", UserOp.Write, Va4K(PUserPkey));
            UserProbe("PKU: user fetch from a key-1 page, PKRU.AD1=1 (keys do not apply to fetches)", UserOp.Fetch, Va4K(PUserPkey));
            ReadProbe("PKU: supervisor read of a key-1 user page, PKRU.AD1=1", Va4K(PUserPkey));
            ReadProbe("PKU: supervisor read of a key-0 user page, PKRU.AD1=1", Va4K(PUserData));
            WritePkru(0x8); // key 1: write disable
            UserProbe("PKU: user read of a key-1 page, PKRU.WD1=1", UserOp.Read, Va4K(PUserPkey));
            UserProbe("PKU: user write of a key-1 page, PKRU.WD1=1", UserOp.Write, Va4K(PUserPkey));
            WriteProbe("PKU: supervisor write of a key-1 user page, PKRU.WD1=1 CR0.WP=1", Va4K(PUserPkey));
            SetCr0Wp(false);
            WriteProbe("PKU: supervisor write of a key-1 user page, PKRU.WD1=1 CR0.WP=0", Va4K(PUserPkey));
            SetCr0Wp(true);
            WritePkru(0);
            SetCr4(Cr4Pke, false);
        });
    }

    private void ReservedBitTests()
    {
        ReadProbe("reserved: read through a PTE with bit 40 set (MAXPHYADDR 40)", Va4K(PRsvd));
        ReadProbe("reserved: read through a PDE with bit 40 set", Va2M(D2Rsvd));
        ReadProbe("reserved: read through a PML4E with PS=1", 2 * 0x80_0000_0000UL);
        _a.mov(rbx, Va4K(PRsvd));
        Probe("reserved: write through a PTE with bit 40 set", () => _a.mov(__qword_ptr[rbx], rax));
    }

    private void PrintAccessedDirty(ulong entry)
    {
        var a = _a;
        a.mov(rax, __qword_ptr[entry]);
        a.mov(rcx, rax);
        a.shr(rcx, 5);
        a.and(ecx, 1);
        _asm.Print(" A=");
        _asm.PrintDec(ecx);
        a.mov(rcx, rax);
        a.shr(rcx, 6);
        a.and(ecx, 1);
        _asm.Print(" D=");
        _asm.PrintDec(ecx);
    }

    private void AccessedDirty(string size, ulong entry, ulong va)
    {
        var a = _a;
        _asm.Print($"A/D: {size} leaf: before:");
        PrintAccessedDirty(entry);
        a.mov(rbx, va);
        ReadAt();
        _asm.Print(", after a read:");
        PrintAccessedDirty(entry);
        a.mov(__qword_ptr[rbx], rax);
        _asm.Print(", after a write:");
        PrintAccessedDirty(entry);
        _asm.Print("\n");
    }

    private void AccessedDirtyTests()
    {
        AccessedDirty("4 KiB", Pte(PAd), Va4K(PAd) + 0x10);
        AccessedDirty("2 MiB", PdT + D2Ad * 8, Va2M(D2Ad) + 0x1_2340);
        IfFeature(F1G, "A/D: 1 GiB leaf", "1 GiB pages", () => AccessedDirty("1 GiB", PdptT + G1Ad * 8, Va1G(G1Ad) + 0xA0_0000));

        // A faulting access leaves the leaf's accessed bit clear (CR0.WP=1 here).
        WriteProbe("A/D: supervisor write of a read-only 4 KiB leaf with A=0", Va4K(PAFault), () =>
        {
            _asm.Print(",");
            PrintAccessedDirty(Pte(PAFault));
        });
        WriteProbe("A/D: supervisor write of a read-only 2 MiB leaf with A=0", Va2M(D2AFault) + 0x800, () =>
        {
            _asm.Print(",");
            PrintAccessedDirty(PdT + D2AFault * 8);
        });
        IfFeature(F1G, "A/D: supervisor write of a read-only 1 GiB leaf with A=0", "1 GiB pages", () =>
            WriteProbe("A/D: supervisor write of a read-only 1 GiB leaf with A=0", Va1G(G1AFault) + 0xB0_0000, () =>
            {
                _asm.Print(",");
                PrintAccessedDirty(PdptT + G1AFault * 8);
            }));
    }

    private void NonCanonicalTests()
    {
        ReadProbe("non-canonical: read of 0x800000000000", 0x8000_0000_0000);
        WriteProbe("non-canonical: write to 0xffff000000000000", 0xFFFF_0000_0000_0000);
    }

    private void InvlpgTests()
    {
        var a = _a;
        a.mov(rbx, Va4K(PInvlpg));
        ReadAt();
        _asm.Print("INVLPG: read before the PTE change:");
        PrintRax();
        Store(Pte(PInvlpg), Frame(InvlpgSecondFrame) | P | RW);
        a.invlpg(__[rbx]);
        ReadAt();
        _asm.Print(", after the PTE change and INVLPG:");
        PrintRax();
        _asm.Print("\n");

        a.mov(rbx, 0x8000_0000_0000);
        Probe("INVLPG of a non-canonical address (no fault)", () => a.invlpg(__[rbx]));
        a.mov(rbx, 0x1234_5678_9000);
        Probe("INVLPG of an unmapped address (no fault)", () => a.invlpg(__[rbx]));
    }

    private void ExceptionTests()
    {
        var a = _a;
        a.xor(eax, eax);
        a.xor(edx, edx);
        a.xor(ecx, ecx);
        Probe("exceptions: DIV by zero", () => a.div(ecx));
        Probe("exceptions: UD2", () => a.ud2());
        Probe("exceptions: INT3 (a trap: RIP after the instruction)", () => a.int3());
    }
}
