namespace HwMemModel.Devices.Interrupts;

/// <summary>The ICR's destination shorthand (bits 18-19), Intel SDM Vol. 3A §10.6.1 (Figure 10-12).</summary>
public enum ApicDestinationShorthand
{
    /// <summary>The destination field selects the targets.</summary>
    None = 0,
    /// <summary>The sending APIC only.</summary>
    Self = 1,
    /// <summary>Every APIC, the sender included.</summary>
    AllIncludingSelf = 2,
    /// <summary>Every APIC except the sender.</summary>
    AllExcludingSelf = 3,
}

/// <summary>
/// An interrupt message on the APIC bus: an IPI decoded from the ICR (Intel SDM Vol. 3A §10.6.1, §10.12.9), a SELF IPI
/// (§10.12.11), or a message from an I/O APIC or an MSI (source -1).
/// </summary>
/// <param name="SourceCpu">The CPU whose APIC sent the message, or -1 for an I/O APIC or an MSI.</param>
/// <param name="Vector">ICR bits 0-7 (the start-up vector for SIPI; ignored for INIT, NMI and SMI).</param>
/// <param name="DeliveryMode">ICR bits 8-10 (3 is reserved and delivers nothing, as QEMU's apic_bus_deliver).</param>
/// <param name="LogicalDestination">ICR bit 11: the destination is a logical ID (flat or cluster model, or x2APIC cluster).</param>
/// <param name="Destination">ICR bits 56-63 in xAPIC mode (0xFF broadcast), bits 32-63 in x2APIC mode (0xFFFFFFFF broadcast).</param>
/// <param name="Shorthand">ICR bits 18-19.</param>
/// <param name="Assert">ICR bit 14 (level): 0 de-assert, only meaningful for INIT.</param>
/// <param name="LevelTriggered">ICR bit 15 (trigger mode).</param>
public readonly record struct ApicMessage(int SourceCpu, byte Vector, ApicDeliveryMode DeliveryMode, bool LogicalDestination,
    uint Destination, ApicDestinationShorthand Shorthand, bool Assert, bool LevelTriggered)
{
    /// <summary>
    /// INIT with trigger = level and level = de-assert: on the Pentium 4 and later a no-op (SDM §10.6.1, "INIT Level
    /// De-assert" not supported); QEMU's apic_deliver only resynchronises arbitration IDs, so nothing is delivered.
    /// </summary>
    public bool IsInitLevelDeassert => DeliveryMode == ApicDeliveryMode.Init && LevelTriggered && !Assert;

    /// <summary>Decodes an ICR value sent by the APIC of <paramref name="sourceCpu"/>.</summary>
    /// <param name="sourceCpu">The sending CPU.</param>
    /// <param name="icr">The ICR (high half in bits 32-63).</param>
    /// <param name="x2Apic">Whether the sender is in x2APIC mode (32-bit destination) or xAPIC mode (bits 56-63).</param>
    public static ApicMessage FromIcr(int sourceCpu, ulong icr, bool x2Apic)
    {
        uint low = (uint)icr;
        uint destination = x2Apic ? (uint)(icr >> 32) : (uint)(icr >> 56);
        return new ApicMessage(sourceCpu, (byte)low, (ApicDeliveryMode)((low >> 8) & 7), (low & (1u << 11)) != 0,
            destination, (ApicDestinationShorthand)((low >> 18) & 3), (low & (1u << 14)) != 0, (low & (1u << 15)) != 0);
    }
}
