using HwMemModel.Bus;
using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

public class SmokeTests
{
    [Test]
    public void ResetStateIsRealModeAtTheResetVector()
    {
        var h = new CpuHarness();
        var cs = h.Cpu.GetSegment(SegmentIndex.CS);
        Assert.Multiple(() =>
        {
            Assert.That(h.Cpu.Rip, Is.EqualTo(0xFFF0));
            Assert.That(cs.Selector, Is.EqualTo(0xF000));
            Assert.That(cs.Base, Is.EqualTo(0xFFFF_0000UL));
            Assert.That(h.Cpu.Bitness, Is.EqualTo(16));
            Assert.That(h.Cpu.Rflags, Is.EqualTo(0x2UL));
            Assert.That(h.Context.Cr0Value, Is.EqualTo(0x6000_0010UL));
        });
    }

    [Test]
    public void LongModeLoopComputesASum()
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            var loop = a.CreateLabel();
            a.xor(eax, eax);
            a.mov(ecx, 100);
            a.Label(ref loop);
            a.add(eax, ecx);
            a.dec(ecx);
            a.jnz(loop);
            a.@out(0xE0, eax);
            CpuHarness.EmitExit(a, 0);
        });
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        Assert.That(h.Console.Values, Is.EqualTo(new ulong[] { 5050 }));
        Assert.That(h.Stop.ExitStatus, Is.EqualTo(1));
    }

    [Test]
    public void HltWithInterruptsDisabledStopsWithAReport()
    {
        var h = new CpuHarness();
        h.Start64(a => { a.cli(); a.hlt(); });
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.Halted));
        Assert.That(r.Report, Does.Contain("interrupts disabled"));
        Assert.That(r.Instructions, Is.EqualTo(2));
    }
}
