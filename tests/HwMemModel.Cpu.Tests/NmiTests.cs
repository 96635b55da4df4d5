using HwMemModel.Cpu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

/// <summary>NMIs (SDM Vol. 3A §6.7.1): not masked by IF, blocked from delivery until the handler's IRET.</summary>
public sealed class NmiTests
{
    private const ulong Idt = 0x30_0000;
    private const ulong Gdt = 0x30_1000;
    private const ulong Handler = CpuHarness.CodeBase + 0x1000;

    private static CpuHarness Build()
    {
        var h = new CpuHarness();
        // Main: cli; then spin incrementing RBX (the NMI arrives while IF=0).
        h.Start64(a =>
        {
            var loop = a.CreateLabel();
            a.cli();
            a.Label(ref loop);
            a.inc(rbx);
            a.jmp(loop);
        });
        // NMI handler: count in R12, optionally IRETQ; without IRET it spins (NMIs stay blocked).
        h.Bus.LoadImage(Handler, CpuHarness.Assemble(64, Handler, a =>
        {
            var spin = a.CreateLabel();
            a.inc(r12);
            a.cmp(r13, 0);
            a.jne(spin);
            a.iretq();
            a.Label(ref spin);
            a.jmp(spin);
        }));
        ulong lo = (Handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((Handler >> 16 & 0xFFFF) << 48);
        h.Bus.Write(Idt + 2 * 16, 8, lo, Bus.BusAttributes.Host);
        h.Bus.Write(Idt + 2 * 16 + 8, 8, Handler >> 32, Bus.BusAttributes.Host);
        h.Cpu.Idtr = new DescriptorTableRegister { Base = Idt, Limit = 32 * 16 - 1 };
        h.Bus.Write(Gdt + 8, 8, 0x00AF_9B00_0000_FFFFUL, Bus.BusAttributes.Host);  // 64-bit code, 0x08
        h.Bus.Write(Gdt + 16, 8, 0x00CF_9300_0000_FFFFUL, Bus.BusAttributes.Host); // data, 0x10
        h.Cpu.Gdtr = new DescriptorTableRegister { Base = Gdt, Limit = 23 };
        return h;
    }

    [Test]
    public void An_NMI_is_taken_with_interrupts_disabled_and_returns_to_the_interrupted_code()
    {
        var h = Build();
        h.Run(100);
        h.Cpu.RaiseNmi();
        h.Run(100);
        Assert.That(h.Cpu.GetRegister(12), Is.EqualTo(1UL), "the handler ran once");
        Assert.That(h.Cpu.NmiPending, Is.False);
        ulong before = h.Cpu.GetRegister(3);
        h.Run(100);
        Assert.That(h.Cpu.GetRegister(3), Is.GreaterThan(before), "after IRETQ the main loop runs again");
    }

    [Test]
    public void A_second_NMI_waits_until_the_first_handler_returns()
    {
        var h = Build();
        h.Cpu.SetRegister(13, 1); // the handler does not return
        h.Run(10);
        h.Cpu.RaiseNmi();
        h.Run(100);
        h.Cpu.RaiseNmi();
        h.Run(1000);
        Assert.That(h.Cpu.GetRegister(12), Is.EqualTo(1UL), "blocked until IRET");
        Assert.That(h.Cpu.NmiPending, Is.True, "held pending");
    }
}
