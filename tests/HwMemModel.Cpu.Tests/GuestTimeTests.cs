using HwMemModel.Bus;
using HwMemModel.Mmu;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

/// <summary>Guest time is 1 ns per retired instruction, exact at every device access and at RDTSC.</summary>
public class GuestTimeTests
{
    private sealed class ClockDevice(GuestClock clock) : IMmioDevice
    {
        public string Name => "clock";
        public AccessConstraints Valid => AccessConstraints.Any;
        public AccessConstraints Impl => AccessConstraints.Any;
        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            value = (ulong)clock.Nanoseconds;
            return BusStatus.Ok;
        }
        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes) => BusStatus.Ok;
    }

    [Test]
    public void DeviceReadInTheMiddleOfABlockSeesTheInstructionsRetiredBeforeIt()
    {
        var h = new CpuHarness();
        const ulong Mmio = 0x4000_0000;
        h.Bus.AddMmio("clock", Mmio, 0x1000, new ClockDevice(h.Cpu.Clock));
        h.Start64(a =>
        {
            a.mov(rbx, Mmio);      // instruction 0
            a.nop(); a.nop(); a.nop(); a.nop(); a.nop(); // 1-5
            a.mov(rax, __qword_ptr[rbx]); // 6: sees 6 retired instructions
            a.nop();               // 7
            a.mov(rcx, __qword_ptr[rbx]); // 8: sees 8
            a.rdtsc();             // 9: sees 9
            a.hlt();
        });
        h.Tables!.Map(Mmio, Mmio, PageSize.Size4K, PteFlags.Writable | PteFlags.CacheDisable);
        var r = h.Run(100);
        Assert.That(r.Kind, Is.EqualTo(StopKind.Halted), r.Report);
        Assert.That(h.Cpu.GetRegister(0) & 0xFFFF_FFFF, Is.EqualTo(9UL), "RDTSC counts guest nanoseconds");
        Assert.That(h.Cpu.GetRegister(1), Is.EqualTo(8UL));
        Assert.That(h.Cpu.Clock.Nanoseconds, Is.EqualTo(11), "after HLT retired (11 instructions)");
    }
}

/// <summary>Every block start is one instruction fetch through the ITLB, counted as such.</summary>
public class FetchAccountingTests
{
    [Test]
    public void EachBlockStartIsOneItlbLookup()
    {
        var h = new CpuHarness();
        h.Start64(a =>
        {
            var loop = a.CreateLabel();
            a.mov(ecx, 1000);
            a.Label(ref loop);
            a.add(eax, ecx);
            a.dec(ecx);
            a.jnz(loop);
            a.hlt();
        });
        var r = h.Run();
        Assert.That(r.Kind, Is.EqualTo(StopKind.Halted), r.Report);
        var itlb = h.Context.Mmu.InstructionTlb;
        long blockStarts = h.Cpu.Counters.BlockHits + h.Cpu.Counters.BlocksDecoded;
        Assert.That(blockStarts, Is.GreaterThanOrEqualTo(1001));
        Assert.That(itlb.Lookups, Is.EqualTo(blockStarts), "one ITLB lookup per block start");
        Assert.That(itlb.TotalHits + itlb.TotalMisses, Is.EqualTo(itlb.Lookups));
    }
}
