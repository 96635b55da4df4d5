using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

/// <summary>
/// Exception delivery in 64-bit mode, checked against the SDM (Vol. 3A §6.14): the handler sees the frame
/// [error code], RIP, CS, RFLAGS, RSP, SS; CR2 holds the faulting linear address; faults push the faulting RIP.
/// </summary>
public class ExceptionTests
{
    private const ulong Idt = 0x30_0000;
    private const ulong Gdt = 0x30_1000;

    /// <summary>Builds a GDT (null, 64-bit code 0x08, data 0x10) and an IDT whose every vector enters <paramref name="handler"/>.</summary>
    private static void SetUpTables(CpuHarness h, ulong handler)
    {
        h.Bus.Write(Gdt + 8, 8, 0x00AF_9B00_0000_FFFFUL, Bus.BusAttributes.Host);
        h.Bus.Write(Gdt + 16, 8, 0x00CF_9300_0000_FFFFUL, Bus.BusAttributes.Host);
        h.Cpu.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 23 };
        for (int v = 0; v < 32; v++)
        {
            ulong lo = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((handler >> 16 & 0xFFFF) << 48);
            h.Bus.Write(Idt + (ulong)v * 16, 8, lo, Bus.BusAttributes.Host);
            h.Bus.Write(Idt + (ulong)v * 16 + 8, 8, handler >> 32, Bus.BusAttributes.Host);
        }
        h.Cpu.Idtr = new DescriptorTableRegister { Base = Idt, Limit = 32 * 16 - 1 };
    }

    [Test]
    public void PageFaultPushesErrorCodeAndSetsCr2()
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            a.mov(rax, 0x4000_0000UL); // beyond the 32 MiB mapped: not present at the PDPTE
            a.mov(rbx, __qword_ptr[rax]);
            CpuHarness.EmitExit(a, 9);
            // Frame: [rsp]=error, +8 RIP, +16 CS, +24 RFLAGS, +32 RSP, +40 SS
            a.mov(rax, __qword_ptr[rsp]); a.@out(0xE0, eax);
            a.mov(rax, __qword_ptr[rsp + 8]); a.@out(0xE0, eax);
            a.mov(rax, __qword_ptr[rsp + 16]); a.@out(0xE0, eax);
            a.mov(rax, __qword_ptr[rsp + 32]); a.@out(0xE0, eax);
            a.mov(rax, cr2); a.@out(0xE0, eax);
            CpuHarness.EmitExit(a, 0);
        });
        SetUpTables(h, HandlerAddress);
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h.Stop.ExitStatus, Is.EqualTo(1), "the handler ran, not the code after the faulting load");
        // Error code 0: not present, read, supervisor. RIP = the faulting MOV (after the 10-byte MOV RAX, imm64).
        Assert.That(h.Console.Values, Is.EqualTo(new ulong[] { 0, (uint)(CpuHarness.CodeBase + 10), 0x08, (uint)CpuHarness.StackTop, 0x4000_0000 }));
        Assert.That(h.Cpu.Counters.Vectors[14], Is.EqualTo(1));
    }

    /// <summary>
    /// A faulting store (both the general MOV path and the fast register-store path deliver #PF without a host
    /// exception) behaves as a faulting load does: the same frame with error code 2 (write), CR2, the store not retired
    /// and the rest of its block not run.
    /// </summary>
    [TestCase("byte")]
    [TestCase("qword")]
    public void Faulting_store_delivers_the_same_frame_as_a_faulting_load(string width)
    {
        (ulong[] Values, long Retired, int Exit) RunWith(Action<Assembler> access)
        {
            var h = new CpuHarness();
            h.Start64(a =>
            {
                a.mov(rax, 0x4000_0000UL);
                access(a); // 3 bytes
                CpuHarness.EmitExit(a, 9);
                a.mov(rax, __qword_ptr[rsp]); a.@out(0xE0, eax);
                a.mov(rax, __qword_ptr[rsp + 8]); a.@out(0xE0, eax);
                a.mov(rax, __qword_ptr[rsp + 16]); a.@out(0xE0, eax);
                a.mov(rax, __qword_ptr[rsp + 32]); a.@out(0xE0, eax);
                a.mov(rax, cr2); a.@out(0xE0, eax);
                CpuHarness.EmitExit(a, 0);
            });
            SetUpTables(h, HandlerAddress);
            var r = h.Run();
            Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
            Assert.That(h.Cpu.Cr2, Is.EqualTo(0x4000_0000UL));
            return (h.Console.Values.ToArray(), h.Cpu.InstructionsRetired, h.Stop.ExitStatus);
        }
        var load = RunWith(a => a.mov(rbx, __qword_ptr[rax]));
        var store = RunWith(a => { if (width == "byte") a.mov(__byte_ptr[rax], 1); else a.mov(__qword_ptr[rax], rbx); });
        Assert.That(store.Exit, Is.EqualTo(load.Exit));
        Assert.That(store.Retired, Is.EqualTo(load.Retired), "the faulting store does not retire, the code after it does not run");
        Assert.That(store.Values[0], Is.EqualTo(2), "error code: not present, write, supervisor");
        Assert.That(store.Values[1..], Is.EqualTo(load.Values[1..]));
    }

    [TestCase(8)]
    [TestCase(4)]
    public void Faulting_load_leaves_its_destination_register_unchanged(int size)
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            a.mov(rbx, 0x1122_3344_5566_7788UL);
            a.mov(rax, 0x4000_0000UL);
            if (size == 8) a.mov(rbx, __qword_ptr[rax]); else a.mov(ebx, __dword_ptr[rax]);
            CpuHarness.EmitExit(a, 9);
        });
        ulong handler = CpuHarness.CodeBase + 10 + 10 + (size == 8 ? 3u : 2u) + 4;
        h.Bus.LoadImage(handler, CpuHarness.Assemble(64, handler, a =>
        {
            a.mov(rax, rbx); a.@out(0xE0, eax);
            a.shr(rax, 32); a.@out(0xE0, eax);
            CpuHarness.EmitExit(a, 0);
        }));
        SetUpTables(h, handler);
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h.Stop.ExitStatus, Is.EqualTo(1), "the handler ran");
        Assert.That(h.Console.Values, Is.EqualTo(new ulong[] { 0x5566_7788, 0x1122_3344 }), "a faulting load writes nothing, not even the zero-extension of a 32-bit load");
    }

    // The handler starts right after "mov rax, imm64; mov rbx, [rax]; mov al, 9; out 0xEB, al" = 10 + 3 + 2 + 2 bytes.
    private const ulong HandlerAddress = CpuHarness.CodeBase + 17;

    [Test]
    public void DivideByZeroIsVectorZeroWithTheFaultingRip()
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            a.xor(ecx, ecx);      // 2 bytes
            a.div(ecx);           // 2 bytes: faults
            a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); // pad to 17
            // handler at +17
            a.mov(rax, __qword_ptr[rsp]); a.@out(0xE0, eax);
            CpuHarness.EmitExit(a, 0);
        });
        SetUpTables(h, CpuHarness.CodeBase + 17);
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h.Console.Values, Is.EqualTo(new ulong[] { (uint)CpuHarness.CodeBase + 2 }), "#DE is a fault: RIP points at the DIV");
        Assert.That(h.Cpu.Counters.Vectors[0], Is.EqualTo(1));
    }

    [Test]
    public void FaultWithoutAnIdtEscalatesToTripleFault()
    {
        var h = new CpuHarness();
        h.Start64(a => { a.ud2(); });
        h.Cpu.Idtr = new DescriptorTableRegister { Base = 0, Limit = 0 };
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.TripleFault), r.Report);
        Assert.That(r.Report, Does.Contain("triple fault"));
    }

    [Test]
    public void UnimplementedInstructionRaisesUdAndIsReportedOnceWithItsDisassembly()
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            a.pshufb(xmm0, xmm1); // SSSE3: not modelled (CPUID does not advertise it)
        });
        SetUpTables(h, CpuHarness.CodeBase + 0x100);
        h.Bus.LoadImage(CpuHarness.CodeBase + 0x100, CpuHarness.Assemble(64, CpuHarness.CodeBase + 0x100, a => CpuHarness.EmitExit(a, 3)));
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h.Stop.ExitStatus, Is.EqualTo(7));
        Assert.That(h.Cpu.Counters.Vectors[6], Is.EqualTo(1));
        Assert.That(h.Cpu.Reports, Has.Count.EqualTo(1));
        Assert.That(h.Cpu.Reports[0], Does.Contain("pshufb xmm0,xmm1").And.Contain("#UD"));
    }

    [Test]
    public void SelfModifyingCodeSeesTheNewInstruction()
    {
        // Runs "mov eax, 1" once, patches its immediate to 2 and runs it again: the decode cache must drop the block.
        var h2 = new CpuHarness();
        h2.Start64(a =>
        {
            var loop = a.CreateLabel();
            var done = a.CreateLabel();
            a.xor(ebx, ebx);                                        // +0, 2 bytes
            a.Label(ref loop);
            a.mov(eax, 1);                                          // +2, 5 bytes: immediate at +3
            a.@out(0xE0, eax);
            a.inc(ebx);
            a.cmp(ebx, 2);
            a.je(done);
            a.mov(__dword_ptr[CpuHarness.CodeBase + 3], 2);         // patch the immediate
            a.jmp(loop);
            a.Label(ref done);
            CpuHarness.EmitExit(a, 0);
        });
        var r = h2.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h2.Console.Values, Is.EqualTo(new ulong[] { 1, 2 }));
        Assert.That(h2.Cpu.Counters.BlocksInvalidated, Is.GreaterThan(0));
    }
}
