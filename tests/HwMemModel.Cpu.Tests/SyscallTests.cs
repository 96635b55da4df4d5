using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

/// <summary>SYSCALL/SYSRET and x87/SSE gating, with expectations from the SDM (Vol. 2B SYSCALL/SYSRET, Vol. 3A §2.5 CR0.EM/TS).</summary>
public class SyscallTests
{
    private const ulong User = CpuHarness.CodeBase + 0x100;
    private const ulong Handler = CpuHarness.CodeBase + 0x200;

    [Test]
    public void SysretEntersRing3AndSyscallReturnsWithRcxR11AndStarSelectors()
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            a.mov(rcx, User);
            a.mov(r11, 0x202);
            a.sysretq();
        }, userPages: true);
        h.Bus.LoadImage(User, CpuHarness.Assemble(64, User, a =>
        {
            a.mov(rbx, 0x1234);
            a.syscall(); // 2 bytes, at User + 10
        }));
        h.Bus.LoadImage(Handler, CpuHarness.Assemble(64, Handler, a =>
        {
            a.mov(rax, rcx); a.@out(0xE0, eax);
            a.mov(rax, r11); a.@out(0xE0, eax);
            a.pushfq(); a.pop(rax); a.@out(0xE0, eax);
            a.mov(eax, 0); a.mov(ax, AssemblerRegisters.cs); a.@out(0xE0, eax);
            a.mov(ax, AssemblerRegisters.ss); a.@out(0xE0, eax);
            CpuHarness.EmitExit(a, 0);
        }));
        h.Context.SetEfer(h.Context.EferValue | Efer.SCE);
        h.Cpu.Msr.Star = (0x10UL << 48) | (0x08UL << 32);
        h.Cpu.Msr.Lstar = Handler;
        h.Cpu.Msr.Fmask = 0x200; // clear IF on entry
        var r = h.Run(3);
        Assert.That(r.Kind, Is.EqualTo(StopKind.InstructionLimit));
        var csReg = h.Cpu.GetSegment(SegmentIndex.CS);
        var ssReg = h.Cpu.GetSegment(SegmentIndex.SS);
        bool sawRing3 = h.Cpu.Cpl == 3;
        Assert.Multiple(() =>
        {
            Assert.That(sawRing3, "SYSRET goes to CPL 3");
            Assert.That(csReg.Selector, Is.EqualTo(0x10 + 16 | 3), "CS = STAR[63:48] + 16, RPL 3");
            Assert.That(ssReg.Selector, Is.EqualTo(0x10 + 8 | 3), "SS = STAR[63:48] + 8, RPL 3");
            Assert.That(h.Cpu.Bitness, Is.EqualTo(64));
            Assert.That(h.Cpu.Rip, Is.EqualTo(User));
        });
        r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h.Console.Values, Is.EqualTo(new ulong[] { (uint)(User + 12), 0x202, 0x002, 0x08, 0x10 }),
            "RCX = the instruction after SYSCALL, R11 = RFLAGS, RFLAGS &= ~FMASK, CS = STAR[47:32], SS = +8");
        Assert.That(h.Cpu.Cpl, Is.Zero);
    }

    [Test]
    public void SyscallWithoutEferSceIsInvalidOpcode()
    {
        var h = new CpuHarness();
        h.Start64(a => a.syscall());
        var r = h.Run(10);
        Assert.That(h.Cpu.Counters.Vectors[Vectors.UD], Is.EqualTo(1));
        Assert.That(r.Kind, Is.EqualTo(StopKind.TripleFault).Or.EqualTo(StopKind.InstructionLimit));
    }

    [Test]
    public void X87WithCr0TsRaisesDeviceNotAvailable()
    {
        var h = new CpuHarness();
        h.Start64(a => a.fld1());
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.TS);
        h.Run(10);
        Assert.That(h.Cpu.Counters.Vectors[Vectors.NM], Is.EqualTo(1), "#NM, not #UD");
        Assert.That(h.Cpu.Reports, Is.Empty, "not reported as unimplemented");
    }

    [Test]
    public void SseWithCr0EmRaisesInvalidOpcodeWithoutAReport()
    {
        var h = new CpuHarness();
        h.Start64(a => a.xorps(xmm0, xmm0));
        h.Context.SetCr0(h.Context.Cr0Value | Cr0.EM);
        h.Run(10);
        Assert.That(h.Cpu.Counters.Vectors[Vectors.UD], Is.GreaterThanOrEqualTo(1));
        Assert.That(h.Cpu.Reports, Is.Empty);
    }

    [Test]
    public void DebugRegistersAboveDr7AreInvalidOpcodes()
    {
        var h = new CpuHarness();
        h.Start64(a => { });
        h.Bus.LoadImage(CpuHarness.CodeBase, [0x44, 0x0F, 0x21, 0xC0]); // mov rax, dr8 (REX.R)
        var r = h.Run(10);
        Assert.That(h.Cpu.Counters.Vectors[Vectors.UD], Is.EqualTo(1), r.Report);
        Assert.That(r.Kind, Is.Not.EqualTo(StopKind.MachineCheck), r.Report);
    }
}
