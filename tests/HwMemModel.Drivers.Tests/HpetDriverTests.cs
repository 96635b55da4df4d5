using HwMemModel.Devices.Timers;
using HwMemModel.Drivers.Timers;
using HwMemModel.Kernel;
using HwMemModel.Machine;
using HwMemModel.Machine.Description;
using HwMemModel.Mmu;
using Microsoft.Extensions.DependencyInjection;

namespace HwMemModel.Drivers.Tests;

public sealed class HpetDriverTests
{
    // HPET 1.0a: the counter period is in femtoseconds; QEMU's is 10 ns (0x00989680 fs), so 100 ticks per microsecond.
    private const ulong QemuPeriodFs = 10_000_000;

    [Test]
    public void Probe_reads_the_capabilities_and_starts_the_counter_in_legacy_replacement_mode()
    {
        var (provider, machine) = TestMachine.Start(MachineDescription.Default, s => s.AddPlatformDriver<HpetDriver>());
        using var _ = provider;
        var timer = provider.GetRequiredService<HpetDriver>().Timer!;
        Assert.That(timer.PeriodFs, Is.EqualTo(QemuPeriodFs));
        Assert.That(timer.Timers, Is.EqualTo(3));
        var hpet = machine.Device<Hpet>("hpet");
        Assert.That(hpet.LegacyReplacement, Is.True);
        ulong c0 = timer.ReadCounter();
        machine.Kernel.Udelay(10);
        ulong c1 = timer.ReadCounter();
        // 10 µs of guest time at 100 MHz: 1000 ticks (and a little for the accesses themselves).
        Assert.That(c1 - c0, Is.InRange(1000UL, 1100UL));
    }

    [Test]
    public void One_shot_timer_interrupt_arrives_after_the_programmed_delay()
    {
        var (provider, machine) = TestMachine.Start(MachineDescription.Default, s => s.AddPlatformDriver<HpetDriver>());
        using var _ = provider;
        var timer = provider.GetRequiredService<HpetDriver>().Timer!;
        long t0 = machine.Clock.Nanoseconds;
        Assert.That(timer.Sleep(1_000_000, 5_000_000), Is.True);
        long elapsed = machine.Clock.Nanoseconds - t0;
        Assert.That(elapsed, Is.InRange(1_000_000L, 1_010_000L));
        Assert.That(timer.Interrupts, Is.EqualTo(1));
        Assert.That(machine.Kernel.Interrupts().Single(i => i.Irq == HpetDriver.LegacyTimerIrq).Count, Is.EqualTo(1));
        Assert.That(machine.Kernel.FormatInterrupts(), Does.Contain("hpet"));
    }

    [Test]
    public void The_register_mapping_is_uncached_minus_as_ioremap_asks()
    {
        var (provider, machine) = TestMachine.Start(MachineDescription.Default, s => s.AddPlatformDriver<HpetDriver>());
        using var _ = provider;
        var area = machine.Kernel.VmAreas().Single(a => a.PhysAddr == 0xFED00000);
        var fault = machine.Kernel.CurrentCpu.Mmu.Translate(area.Address, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(fault.IsFault, Is.False);
        // Linux's PAT layout: UC- is PCD without PWT and PAT (slot 2).
        Assert.That(t.MemoryType, Is.EqualTo(MemoryType.UncacheableMinus));
    }

    [Test]
    public void Remove_stops_the_counter_and_leaves_no_managed_resources()
    {
        var (provider, machine) = TestMachine.Start(MachineDescription.Default, s => s.AddPlatformDriver<HpetDriver>());
        using var _ = provider;
        var dev = machine.Drivers.Find("hpet")!;
        Assert.That(machine.Drivers.Unbind(dev), Is.True);
        Assert.That(machine.Device<Hpet>("hpet").LegacyReplacement, Is.False);
        Assert.That(dev.ManagedResources, Is.Empty);
        Assert.That(machine.Kernel.Interrupts().Where(i => i.Irq == HpetDriver.LegacyTimerIrq).SelectMany(i => i.Actions), Is.Empty);
    }
}
