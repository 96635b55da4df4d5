using HwMemModel.Cpu;
using HwMemModel.Devices.Interrupts;

namespace HwMemModel.Machine;

/// <summary>Connects a CPU's IA32_APIC_BASE and x2APIC MSRs to its <see cref="LocalApic"/>.</summary>
internal sealed class LocalApicMsrs(LocalApic apic) : ILocalApicMsrs
{
    /// <inheritdoc />
    public ulong ApicBase => apic.ApicBase;

    /// <inheritdoc />
    public bool TrySetApicBase(ulong value) => apic.TrySetApicBase(value);

    /// <inheritdoc />
    public bool TryReadX2ApicMsr(uint msr, out ulong value) => apic.TryReadMsr(msr, out value);

    /// <inheritdoc />
    public bool TryWriteX2ApicMsr(uint msr, ulong value) => apic.TryWriteMsr(msr, value);
}
