namespace HwMemModel.Cpu;

/// <summary>
/// The MSR side of a processor's local APIC (Intel SDM Vol. 3A §10.4.4, §10.12): IA32_APIC_BASE (0x1B) and, in x2APIC
/// mode, the registers at MSRs 0x800-0x8FF. The machine connects each <see cref="X86Cpu"/> to its own APIC through
/// <see cref="X86Cpu.LocalApic"/>; the CPU project knows no device classes.
/// </summary>
public interface ILocalApicMsrs
{
    /// <summary>IA32_APIC_BASE as RDMSR reads it: base address, BSP (bit 8), EXTD (bit 10), EN (bit 11).</summary>
    ulong ApicBase { get; }

    /// <summary>
    /// WRMSR of IA32_APIC_BASE after the processor's own reserved-bit check (bits 0-7, 9 and MAXPHYADDR-63): false, with
    /// nothing changed, for a transition the SDM refuses with #GP (§10.12.5: EXTD without x2APIC support or without
    /// EN, disabled → x2APIC, x2APIC → xAPIC).
    /// </summary>
    bool TrySetApicBase(ulong value);

    /// <summary>RDMSR of <paramref name="msr"/> in 0x800-0x8FF: false where the SDM raises #GP (not in x2APIC mode, a reserved or write-only MSR).</summary>
    bool TryReadX2ApicMsr(uint msr, out ulong value);

    /// <summary>WRMSR of <paramref name="msr"/> in 0x800-0x8FF: false where the SDM raises #GP (not in x2APIC mode, a reserved or read-only MSR, reserved bits).</summary>
    bool TryWriteX2ApicMsr(uint msr, ulong value);
}

public sealed partial class X86Cpu
{
    /// <summary>The first and last MSR of the x2APIC range (SDM Vol. 3A §10.12.1.2).</summary>
    public const uint X2ApicMsrFirst = 0x800, X2ApicMsrLast = 0x8FF;

    /// <summary>
    /// This processor's local APIC: IA32_APIC_BASE reads and writes go to it (invalid mode transitions #GP), and so do
    /// RDMSR/WRMSR of 0x800-0x8FF (#GP outside x2APIC mode or where the APIC refuses). Null without an APIC: then
    /// IA32_APIC_BASE is a plain register (<see cref="MsrState.ApicBase"/>) and 0x800-0x8FF raise #GP.
    /// </summary>
    public ILocalApicMsrs? LocalApic { get; set; }

    private static bool IsX2ApicMsr(uint index) => index is >= X2ApicMsrFirst and <= X2ApicMsrLast;

    private bool TryReadX2ApicMsr(uint index, out ulong value)
    {
        value = 0;
        return LocalApic is { } apic && apic.TryReadX2ApicMsr(index, out value);
    }

    private string X2ApicRefusal(uint index, string access)
    {
        ulong apicBase = LocalApic?.ApicBase ?? 0;
        return LocalApic is null ? $"{access} of x2APIC MSR 0x{index:x} on a processor without a local APIC"
            : (apicBase & (1UL << 10)) == 0 ? $"{access} of x2APIC MSR 0x{index:x} while the local APIC is not in x2APIC mode (IA32_APIC_BASE 0x{apicBase:x})"
            : $"{access} of x2APIC MSR 0x{index:x} refused (reserved, {(access == "RDMSR" ? "write-only" : "read-only")} or reserved bits set; SDM §10.12.1.2)";
    }
}
