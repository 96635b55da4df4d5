using HwMemModel.Bus;
using HwMemModel.Cpu;
using HwMemModel.Devices.Interrupts;
using HwMemModel.Machine.Boot;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Machine.Tests;

/// <summary>
/// IA32_APIC_BASE and the x2APIC MSRs on the machine (Intel SDM Vol. 3A §10.4.4-§10.4.5, §10.12): CPUID.1:ECX bit 21,
/// the mode transitions, MSR access in x2APIC mode, #GP where the SDM raises it, and the xAPIC window following
/// the base. CPU 0 runs 32-bit code at 0x100000 with a flat GDT at 0x800 and an IDT at 0x1000 whose only gate is #GP:
/// its handler stores 13 and the error code at 0x600/0x604 and stops through isa-debug-exit with 0x7F.
/// </summary>
public sealed class ApicMsrTests
{
    private const uint Code = 0x10_0000;
    private const uint Result = 0x500;
    private const uint FaultVector = 0x600;
    private const uint GpExit = 0x7F;
    private const uint En = 1u << 11, Extd = 1u << 10;

    private static PcMachine Machine(Action<Assembler> body, bool x2Apic = false, int cpus = 1)
    {
        var m = PcMachine.Create(new PcMachineOptions { X2Apic = x2Apic, Cpus = cpus });
        var gdt = new byte[24];
        BitConverter.GetBytes(0x00CF_9A00_0000_FFFFUL).CopyTo(gdt, 8);
        BitConverter.GetBytes(0x00CF_9200_0000_FFFFUL).CopyTo(gdt, 16);
        m.Bus.LoadImage(0x800, gdt);
        const uint handler = 0x2000;
        ulong gate = (handler & 0xFFFF) | (0x08UL << 16) | (0x8EUL << 40) | ((ulong)(handler >> 16) << 48);
        m.Bus.LoadImage(0x1000 + 13 * 8, BitConverter.GetBytes(gate));
        m.Bus.LoadImage(handler, Assemble(handler, a =>
        {
            a.mov(__dword_ptr[FaultVector], 13);
            a.pop(eax);
            a.mov(__dword_ptr[FaultVector + 4], eax);
            Exit(a, GpExit);
        }));
        m.Bus.LoadImage(Code, Assemble(Code, a =>
        {
            a.lgdt(__[0x900]);
            a.lidt(__[0x910]);
            body(a);
            Exit(a, 0);
        }));
        m.Bus.LoadImage(0x900, [23, 0, 0x00, 0x08, 0, 0]);
        m.Bus.LoadImage(0x910, [0xFF, 0x07, 0x00, 0x10, 0, 0]);
        m.Apply(BootState.Multiboot(Code, 0) with { Gdtr = null, Idtr = null, Esp = 0x7000 });
        return m;
    }

    private static void Exit(Assembler a, uint value)
    {
        a.mov(dx, 0xF4);
        a.mov(al, (byte)value);
        a.@out(dx, al);
        a.hlt();
    }

    private static byte[] Assemble(ulong ip, Action<Assembler> build)
    {
        var a = new Assembler(32);
        build(a);
        var w = new MemoryStream();
        a.Assemble(new StreamCodeWriter(w), ip);
        return w.ToArray();
    }

    private static (PcMachine M, uint ExitValue) Run(Action<Assembler> body, bool x2Apic = false, int cpus = 1)
    {
        var m = Machine(body, x2Apic, cpus);
        var r = m.Run(100_000);
        Assert.That(r.Kind, Is.EqualTo(StopKind.StopRequested), r.Report);
        return (m, (uint)m.Stop.ExitStatus! >> 1);
    }

    private static uint Dword(PcMachine m, ulong pa)
    {
        m.Bus.Read(pa, 4, out ulong v, BusAttributes.Host);
        return (uint)v;
    }

    private static void WriteApicBase(Assembler a, uint low, uint high = 0)
    {
        a.mov(ecx, 0x1B);
        a.mov(eax, low);
        a.mov(edx, high);
        a.wrmsr();
    }

    private static void ReadMsrTo(Assembler a, uint msr, uint store)
    {
        a.mov(ecx, msr);
        a.rdmsr();
        a.mov(__dword_ptr[store], eax);
        a.mov(__dword_ptr[store + 4], edx);
    }

    private static void AssertGp(PcMachine m, uint exit)
    {
        Assert.That(exit, Is.EqualTo(GpExit), "the instruction raised #GP");
        Assert.That(Dword(m, FaultVector + 4), Is.Zero, "#GP(0)");
    }

    [TestCase(false, 0u)]
    [TestCase(true, 1u)]
    public void Cpuid_1_ecx_bit_21_follows_the_x2apic_option(bool x2Apic, uint expected)
    {
        var (m, exit) = Run(a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.shr(ecx, 21);
            a.and(ecx, 1);
            a.mov(__dword_ptr[Result], ecx);
        }, x2Apic);
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(expected));
    }

    [Test]
    public void Without_x2apic_support_setting_extd_raises_gp_and_changes_nothing()
    {
        var (m, exit) = Run(a => WriteApicBase(a, 0xFEE0_0000 | En | Extd));
        AssertGp(m, exit);
        Assert.That(m.Chipset.LocalApic.IsX2ApicMode, Is.False);
        Assert.That(m.Cpu.Msr.ApicBase & Extd, Is.Zero);
    }

    [TestCase(0x802u)]
    [TestCase(0x830u)]
    [TestCase(0x8FFu)]
    public void X2apic_msrs_raise_gp_in_xapic_mode(uint msr)
    {
        var (m, exit) = Run(a => ReadMsrTo(a, msr, Result), x2Apic: true);
        AssertGp(m, exit);
    }

    [Test]
    public void In_x2apic_mode_the_registers_are_msrs_and_mmio_no_longer_reaches_the_apic()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd | (1u << 8));
            ReadMsrTo(a, 0x1B, Result);
            ReadMsrTo(a, 0x802, Result + 8);           // x2APIC ID
            ReadMsrTo(a, 0x803, Result + 16);          // version
            a.mov(eax, __dword_ptr[0xFEE0_0030]);      // xAPIC version register through MMIO
            a.mov(__dword_ptr[Result + 24], eax);
        }, x2Apic: true);
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(0xFEE0_0000 | En | Extd | (1u << 8)), "IA32_APIC_BASE reads back EXTD (BSP kept)");
        Assert.That(Dword(m, Result + 8), Is.Zero, "x2APIC ID of CPU 0");
        Assert.That(Dword(m, Result + 16), Is.EqualTo(LocalApic.VersionValue));
        Assert.That(Dword(m, Result + 24), Is.Zero, "MMIO reads 0 in x2APIC mode");
    }

    [Test]
    public void X2apic_to_xapic_directly_raises_gp()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
            a.mov(__dword_ptr[Result], 1);
            WriteApicBase(a, 0xFEE0_0000 | En);
        }, x2Apic: true);
        AssertGp(m, exit);
        Assert.That(Dword(m, Result), Is.EqualTo(1));
        Assert.That(m.Chipset.LocalApic.IsX2ApicMode, Is.True);
    }

    [Test]
    public void X2apic_to_disabled_then_xapic_is_allowed()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
            WriteApicBase(a, 0xFEE0_0000);
            ReadMsrTo(a, 0x1B, Result);
            WriteApicBase(a, 0xFEE0_0000 | En);
            a.mov(eax, __dword_ptr[0xFEE0_0030]);
            a.mov(__dword_ptr[Result + 8], eax);
        }, x2Apic: true);
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(0xFEE0_0000 | (1u << 8)), "disabled: EN and EXTD clear");
        Assert.That(Dword(m, Result + 8), Is.EqualTo(LocalApic.VersionValue), "xAPIC MMIO again");
    }

    [Test]
    public void Disabled_to_x2apic_directly_raises_gp()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000);
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
        }, x2Apic: true);
        AssertGp(m, exit);
        Assert.That(m.Chipset.LocalApic.GloballyEnabled, Is.False);
    }

    [TestCase(0x80Bu, false)] // EOI is write-only
    [TestCase(0x83Fu, false)] // SELF IPI is write-only
    [TestCase(0x809u, false)] // APR does not exist in x2APIC mode
    [TestCase(0x80Eu, false)] // DFR does not exist in x2APIC mode
    [TestCase(0x831u, false)] // ICR high is part of MSR 0x830
    [TestCase(0x840u, false)] // beyond the register block
    [TestCase(0x80Fu, true)]  // SVR
    [TestCase(0x828u, true)]  // ESR
    public void Rdmsr_of_x2apic_msrs_follows_the_sdm_table(uint msr, bool readable)
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
            ReadMsrTo(a, msr, Result);
        }, x2Apic: true);
        if (readable) Assert.That(exit, Is.Zero);
        else AssertGp(m, exit);
    }

    [TestCase(0x80Bu, 1u, 0u)]  // EOI of a non-zero value
    [TestCase(0x802u, 0u, 0u)]  // the x2APIC ID is read-only
    [TestCase(0x803u, 0u, 0u)]  // version
    [TestCase(0x80Fu, 0x1FFu, 1u)] // bits 63:32 set
    [TestCase(0x83Fu, 0x150u, 0u)] // SELF IPI with bits 31:8 set
    [TestCase(0x830u, 0x2000u, 0u)] // ICR with reserved bit 13
    public void Wrmsr_of_x2apic_msrs_raises_gp_where_the_sdm_says(uint msr, uint low, uint high)
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
            a.mov(ecx, msr);
            a.mov(eax, low);
            a.mov(edx, high);
            a.wrmsr();
        }, x2Apic: true);
        AssertGp(m, exit);
    }

    [Test]
    public void Self_ipi_msr_sets_the_vector_in_irr()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
            a.mov(ecx, 0x80F);
            a.mov(eax, 0x1FF);
            a.xor(edx, edx);
            a.wrmsr();                                 // SVR: software-enabled (IF stays 0)
            a.mov(ecx, 0x83F);
            a.mov(eax, 0x50);
            a.wrmsr();
            ReadMsrTo(a, 0x822, Result);               // IRR bits 64-95
        }, x2Apic: true);
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(1u << (0x50 - 64)));
    }

    [Test]
    public void Icr_msr_sends_to_the_32_bit_x2apic_id()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000 | En | Extd);
            a.mov(ecx, 0x830);
            a.mov(eax, 0x0000_4051);                   // fixed, vector 0x51, level assert
            a.mov(edx, 1);                             // x2APIC ID 1
            a.wrmsr();
            ReadMsrTo(a, 0x830, Result);
        }, x2Apic: true, cpus: 2);
        Assert.That(exit, Is.Zero);
        Assert.That(m.Chipset.ApicBus[1].IsRequested(0x51), Is.True);
        Assert.That(m.Chipset.ApicBus[0].IsRequested(0x51), Is.False);
        Assert.That(Dword(m, Result + 4), Is.EqualTo(1u), "ICR reads the destination in bits 63:32");
    }

    [TestCase(1u << 9, 0u)]   // reserved bit 9
    [TestCase(1u << 0, 0u)]   // reserved bits 0-7
    [TestCase(0u, 1u << 8)]   // bit 40: beyond the machine's 40-bit MAXPHYADDR
    public void Reserved_bits_in_ia32_apic_base_raise_gp(uint lowExtra, uint high)
    {
        var (m, exit) = Run(a => WriteApicBase(a, 0xFEE0_0000 | En | lowExtra, high));
        AssertGp(m, exit);
        Assert.That(m.Chipset.LocalApic.ApicBase, Is.EqualTo(0xFEE0_0000UL | En | (1UL << 8)));
    }

    [Test]
    public void Clearing_en_disables_the_apic_and_reads_back()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEE0_0000);
            ReadMsrTo(a, 0x1B, Result);
        });
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(0xFEE0_0000 | (1u << 8)));
        Assert.That(m.Chipset.LocalApic.GloballyEnabled, Is.False);
    }

    [Test]
    public void Cpuid_apic_flag_reads_0_while_the_apic_is_globally_disabled()
    {
        var (m, exit) = Run(a =>
        {
            a.mov(eax, 1);
            a.cpuid();
            a.mov(__dword_ptr[Result], edx);
            WriteApicBase(a, 0xFEE0_0000);
            a.mov(eax, 1);
            a.cpuid();
            a.mov(__dword_ptr[Result + 4], edx);
        });
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result) & (1u << 9), Is.Not.Zero, "enabled: CPUID.1:EDX.APIC");
        Assert.That(Dword(m, Result + 4) & (1u << 9), Is.Zero, "globally disabled (SDM §10.4.3)");
    }

    [Test]
    public void A_new_base_moves_this_cpus_xapic_window()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEB0_0000 | En);
            a.mov(eax, __dword_ptr[0xFEB0_0030]);
            a.mov(__dword_ptr[Result], eax);
            a.mov(eax, __dword_ptr[0xFEE0_0030]);
            a.mov(__dword_ptr[Result + 4], eax);
            a.mov(__dword_ptr[0xFEB0_0080], 0x20);     // TPR through the new window
        }, cpus: 2);
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(LocalApic.VersionValue), "the version register at the new base");
        Assert.That(Dword(m, Result + 4), Is.Zero, "the old window no longer reaches this CPU's APIC");
        Assert.That(m.Chipset.LocalApic.Tpr, Is.EqualTo(0x20));
        Assert.That(m.Chipset.ApicBus.WindowBases, Is.EqualTo(new[] { 0xFEB0_0000UL, 0xFEE0_0000UL }));
        // CPU 1's APIC stayed at 0xFEE00000: it sees its own APIC there and nothing at CPU 0's new base.
        m.Bus.Read(0xFEE0_0020, 4, out ulong id, BusAttributes.Cpu(1));
        m.Bus.Read(0xFEB0_0030, 4, out ulong moved, BusAttributes.Cpu(1));
        Assert.That(id, Is.EqualTo(1UL << 24));
        Assert.That(moved, Is.Zero);
    }

    [Test]
    public void Moving_back_unmaps_the_relocated_window()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0xFEB0_0000 | En);
            WriteApicBase(a, 0xFEE0_0000 | En);
            a.mov(eax, __dword_ptr[0xFEE0_0030]);
            a.mov(__dword_ptr[Result], eax);
        });
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(LocalApic.VersionValue));
        Assert.That(m.Chipset.ApicBus.WindowBases, Is.EqualTo(new[] { 0xFEE0_0000UL }));
        Assert.That(m.Bus.Describe(0xFEB0_0000).Kind, Is.Null, "nothing mapped there any more");
    }

    [Test]
    public void A_window_moved_over_ram_is_reported()
    {
        var (m, exit) = Run(a =>
        {
            WriteApicBase(a, 0x0030_0000 | En);
            a.mov(eax, __dword_ptr[0x0030_0030]);
            a.mov(__dword_ptr[Result], eax);
        });
        Assert.That(exit, Is.Zero);
        Assert.That(Dword(m, Result), Is.EqualTo(LocalApic.VersionValue));
        Assert.That(m.DeviceLog.Entries, Has.Some.StartsWith("apic: CPU 0 moved its local APIC to 0x300000, over Ram"));
    }
}
