using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Building;

/// <summary>
/// Long-mode kernel pieces shared by the BIOS images: a GDT with a TSS in RAM, an IDT, exception stubs
/// for vectors 0-31 and a reporter that prints the exception and resumes at a recovery point.
/// <para>
/// Recovery protocol: before an access that may fault, code stores a resume address in
/// <see cref="RecoverRip"/>, its RSP in <see cref="RecoverRsp"/> and a reference address in
/// <see cref="FaultRef"/>. The reporter prints <c>#PF err=0x.. cr2=0x.. rip=probe+0x..</c> (RIP relative to
/// <see cref="FaultRef"/>), reloads RSP, RFLAGS (0x2), DS/ES/SS and jumps to the resume address at CPL 0,
/// whatever the privilege level of the faulting code. Without a recovery point it prints the exception and
/// exits with status value 2.
/// </para>
/// </summary>
internal static class Kernel64
{
    public const uint GdtRam = 0x9_0000;
    public const uint GdtrRam = 0x9_0100;
    public const uint IdtrRam = 0x9_0110;
    public const uint IdtRam = 0x9_1000;
    public const uint TssRam = 0x9_2000;
    public const uint Rsp0Top = 0x7_0000;

    public const uint RecoverRip = 0x9_3000;
    public const uint RecoverRsp = 0x9_3008;
    public const uint FaultRef = 0x9_3010;
    public const uint UserOkRip = 0x9_3018;
    public const uint LastVector = 0x9_3020;
    public const uint LastError = 0x9_3028;
    public const uint LastCr2 = 0x9_3030;
    public const uint ExceptionCount = 0x9_3038;

    /// <summary>Interrupt gate, DPL 0 (attribute word: P, type 0xE).</summary>
    public const ushort GateDpl0 = 0x8E00;

    /// <summary>Interrupt gate, DPL 3: INT n allowed from ring 3.</summary>
    public const ushort GateDpl3 = 0xEE00;

    /// <summary>Vectors that push an error code: 8, 10-14, 17, 21, 29, 30.</summary>
    public const uint ErrorCodeVectors = 0x6022_7D00;

    private static readonly string[] VectorNames =
    [
        "DE", "DB", "NMI", "BP", "OF", "BR", "UD", "NM", "DF", "CSO", "TS", "NP", "SS", "GP", "PF", "15",
        "MF", "AC", "MC", "XM", "VE", "CP", "22", "23", "24", "25", "26", "27", "HV", "VC", "SX", "31",
    ];

    private static ulong Q(uint address) => address;

    /// <summary>Copies the flat GDT to RAM, adds a TSS (RSP0 = <see cref="Rsp0Top"/>), loads GDTR, the data selectors and TR.</summary>
    public static void EmitGdtAndTss(Asm asm)
    {
        var a = asm.A;
        for (var i = 0; i < Gdt.Entries.Length; i++)
        {
            a.mov(rax, Gdt.Entries[i]);
            a.mov(__qword_ptr[Q(GdtRam) + (ulong)(i * 8)], rax);
        }

        var (low, high) = Gdt.TssDescriptor(TssRam, 0x67);
        a.mov(rax, low);
        a.mov(__qword_ptr[Q(GdtRam) + Gdt.Tss], rax);
        a.mov(rax, high);
        a.mov(__qword_ptr[Q(GdtRam) + Gdt.Tss + 8], rax);
        a.mov(__word_ptr[Q(GdtrRam)], (ushort)(Gdt.Tss + 16 - 1));
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
        a.mov(__qword_ptr[Q(TssRam) + 4], (int)Rsp0Top);
        a.mov(__word_ptr[Q(TssRam) + 0x66], (ushort)0x68); // I/O map base beyond the limit: no I/O bitmap
        a.mov(ax, Gdt.Tss);
        a.ltr(ax);
    }

    /// <summary>
    /// Installs an IDT: every vector goes to an "unexpected interrupt" handler (exit value 3), vectors 0-31 to
    /// the exception reporter unless <paramref name="overrides"/> names another handler, plus the extra gates.
    /// Clears the recovery point.
    /// </summary>
    public static void EmitIdt(Asm asm, IReadOnlyDictionary<int, Label>? overrides = null, params (int Vector, Label Handler, ushort Attributes)[] extra)
    {
        var a = asm.A;
        var setGate = asm.NewLabel("set_gate");
        var unexpected = asm.NewLabel("unexpected_interrupt");
        var stubs = Enumerable.Range(0, 32).Select(v => asm.NewLabel($"exception_{v}")).ToArray();
        var table = asm.NewLabel("exception_table");

        a.mov(__qword_ptr[Q(RecoverRip)], 0);
        a.mov(__qword_ptr[Q(FaultRef)], 0);
        a.mov(__qword_ptr[Q(ExceptionCount)], 0);
        a.xor(edi, edi);
        a.mov(edx, GateDpl0);
        a.lea(rax, __[unexpected]);
        var fill = asm.Here();
        a.call(setGate);
        a.inc(edi);
        a.cmp(edi, 256);
        a.jb(fill);

        a.xor(edi, edi);
        a.lea(rsi, __[table]);
        var fillExceptions = asm.Here();
        a.mov(rax, __qword_ptr[rsi + rdi * 8]);
        a.call(setGate);
        a.inc(edi);
        a.cmp(edi, 32);
        a.jb(fillExceptions);

        foreach (var (vector, handler, attributes) in extra)
        {
            a.mov(edi, vector);
            a.mov(edx, attributes);
            a.lea(rax, __[handler]);
            a.call(setGate);
        }

        a.mov(__word_ptr[Q(IdtrRam)], (ushort)0xFFF);
        a.mov(__qword_ptr[Q(IdtrRam) + 2], (int)IdtRam);
        a.lidt(__[Q(IdtrRam)]);

        asm.Later(() =>
        {
            // set_gate: EDI = vector, RAX = handler, DX = attribute word; preserves registers.
            asm.Bind(ref setGate);
            a.push(rax);
            a.push(rdi);
            a.shl(edi, 4);
            a.add(edi, IdtRam);
            a.mov(__word_ptr[rdi], ax);
            a.mov(__word_ptr[rdi + 2], Gdt.Code64);
            a.mov(__word_ptr[rdi + 4], dx);
            a.shr(rax, 16);
            a.mov(__word_ptr[rdi + 6], ax);
            a.shr(rax, 16);
            a.mov(__dword_ptr[rdi + 8], eax);
            a.mov(__dword_ptr[rdi + 12], 0);
            a.pop(rdi);
            a.pop(rax);
            a.ret();

            asm.Bind(ref unexpected);
            asm.Print("\nunexpected interrupt\n");
            asm.Exit(3);

            var common = asm.NewLabel("exception_common");
            for (var v = 0; v < 32; v++)
            {
                var stub = stubs[v];
                asm.Bind(ref stub);
                stubs[v] = stub;
                if ((ErrorCodeVectors >> v & 1) == 0)
                {
                    a.push(0);
                }

                a.push(v);
                a.jmp(common);
            }

            asm.Bind(ref common);
            EmitReporter(asm);

            asm.Bind(ref table);
            for (var v = 0; v < 32; v++)
            {
                a.dq(overrides is not null && overrides.TryGetValue(v, out var custom) ? asm.AddressOf(custom) : asm.AddressOf(stubs[v]));
            }
        });
    }

    /// <summary>Stack on entry: vector, error code, RIP, CS, RFLAGS, RSP, SS.</summary>
    private static void EmitReporter(Asm asm)
    {
        var a = asm.A;
        var names = asm.NewLabel("vector_names");
        var noError = asm.NewLabel();
        var notPf = asm.NewLabel();
        var positive = asm.NewLabel();
        var ripDone = asm.NewLabel();
        var resume = asm.NewLabel();

        a.inc(__qword_ptr[Q(ExceptionCount)]);
        a.mov(rax, __qword_ptr[rsp]);
        a.mov(__qword_ptr[Q(LastVector)], rax);
        a.mov(rdi, __qword_ptr[rsp + 8]);
        a.mov(__qword_ptr[Q(LastError)], rdi);
        a.mov(rdi, cr2);
        a.mov(__qword_ptr[Q(LastCr2)], rdi);

        asm.Print("#");
        a.lea(rsi, __[names]);
        a.lea(rsi, __[rsi + rax * 4]);
        a.call(asm.Rt!.Puts);

        a.mov(edx, ErrorCodeVectors);
        a.bt(edx, eax);
        a.jnc(noError);
        asm.Print(" err=");
        a.mov(rdi, __qword_ptr[rsp + 8]);
        asm.PrintHex(rdi);
        asm.Bind(ref noError);

        a.cmp(eax, 14);
        a.jne(notPf);
        asm.Print(" cr2=");
        a.mov(rdi, cr2);
        asm.PrintHex(rdi);
        asm.Bind(ref notPf);

        asm.Print(" rip=");
        a.mov(rdi, __qword_ptr[rsp + 16]);
        a.mov(rax, __qword_ptr[Q(FaultRef)]);
        a.test(rax, rax);
        a.jz(ripDone);
        a.sub(rdi, rax);
        a.jae(positive);
        a.neg(rdi);
        asm.Print("probe-");
        a.jmp(ripDone);
        asm.Bind(ref positive);
        asm.Print("probe+");
        a.jmp(ripDone);
        asm.Bind(ref ripDone);
        asm.PrintHex(rdi);

        a.cmp(__qword_ptr[Q(RecoverRip)], 0);
        a.jne(resume);
        asm.Print("\nunexpected exception without a recovery point\n");
        asm.Exit(2);

        asm.Bind(ref resume);
        EmitResume(asm, RecoverRip);

        asm.Bind(ref names);
        foreach (var name in VectorNames)
        {
            var bytes = new byte[4];
            for (var i = 0; i < name.Length; i++)
            {
                bytes[i] = (byte)name[i];
            }

            a.db(bytes);
        }
    }

    /// <summary>Back to CPL 0 code at [<paramref name="ripVariable"/>] with the recorded RSP, RFLAGS = 0x2 and flat data selectors.</summary>
    public static void EmitResume(Asm asm, uint ripVariable)
    {
        var a = asm.A;
        a.mov(rsp, __qword_ptr[Q(RecoverRsp)]);
        a.push(2);
        a.popfq();
        a.mov(ax, Gdt.Data);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.jmp(__qword_ptr[Q(ripVariable)]);
    }

    /// <summary>Records a recovery point: resume at <paramref name="resume"/> with the current RSP.</summary>
    public static void EmitSetRecovery(Asm asm, Label resume)
    {
        var a = asm.A;
        a.lea(rax, __[resume]);
        a.mov(__qword_ptr[Q(RecoverRip)], rax);
        a.mov(__qword_ptr[Q(RecoverRsp)], rsp);
    }

    /// <summary>Clears the recovery point (an exception then stops the image).</summary>
    public static void EmitClearRecovery(Asm asm) => asm.A.mov(__qword_ptr[Q(RecoverRip)], 0);

    /// <summary>Reloads CR3, flushing every non-global translation.</summary>
    public static void EmitFlushTlb(Asm asm)
    {
        asm.A.mov(rax, cr3);
        asm.A.mov(cr3, rax);
    }
}
