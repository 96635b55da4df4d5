using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Interrupts;

/// <summary>APIC delivery modes (LVT and ICR bits 8-10, I/O APIC entry bits 8-10).</summary>
public enum ApicDeliveryMode
{
    /// <summary>Deliver the vector.</summary>
    Fixed = 0,
    /// <summary>Deliver the vector to the lowest-priority CPU of the destination.</summary>
    LowestPriority = 1,
    /// <summary>System management interrupt.</summary>
    Smi = 2,
    /// <summary>Non-maskable interrupt.</summary>
    Nmi = 4,
    /// <summary>INIT.</summary>
    Init = 5,
    /// <summary>Start-up IPI.</summary>
    StartUp = 6,
    /// <summary>External interrupt: the vector comes from the 8259 PIC.</summary>
    ExtInt = 7,
}

/// <summary>
/// A local APIC's xAPIC register block as QEMU 7.2 models it (hw/intc/apic.c, apic_common.c), normally at 0xFEE00000:
/// ID, version 0x00050014, TPR/APR/PPR, EOI, LDR, DFR, SVR, ISR/TMR/IRR, ESR, ICR, six LVT entries and the timer.
/// </summary>
/// <remarks>
/// <para>Access rules (observed on QEMU 7.2): registers are 32 bits at 16-byte strides (index = offset bits 4-11);
/// 1- and 2-byte reads return 0 and such writes are ignored; an unaligned 32-bit access is served as two aligned
/// 32-bit reads of which the bytes covered are combined (TCG's behaviour); reading or writing an undefined register
/// sets ESR bit 7 (illegal register address) and reads 0; writes to read-only registers (version, APR, PPR, ISR,
/// TMR, IRR, current count) and to ESR are ignored, so ESR bits stay set. A write to offset 0x000-0x00F is an MSI in
/// QEMU (the APIC window shares the MSI address range): <see cref="MsiWritten"/>.</para>
/// <para>Reset values (observed): ID = CPU index &lt;&lt; 24, TPR 0, LDR 0, DFR 0xFFFFFFFF, SVR 0xFF (APIC
/// software-disabled), every LVT 0x00010000 (masked, LINT0 included on cold boot), timer counts 0, divide
/// configuration 0, yet the timer counts undivided until the guest writes the divide configuration (QEMU resets
/// its shift to 0; measured against the HPET on QEMU 7.2; after a write of 0 it divides by 2). Written values:
/// TPR keeps 8 bits, LDR bits 24-31, DFR bits 28-31, SVR bits 0-8 (no directed-EOI bit), divide configuration bits
/// 0, 1 and 3; LVT and ICR keep every bit written. QEMU's apic_reset_common sets the BSP's LINT0 to 0x700 (ExtINT)
/// only when the APIC already knows it is the BSP, which is not the case at power-on; <see cref="Reset"/> models the
/// cold boot the firmware sees.</para>
/// <para>Timer: QEMU counts the APIC timer at 1 GHz (one tick per guest ns) divided by the configured divisor:
/// current count = initial - elapsed ticks (one-shot, stops at 0) or initial - elapsed mod (initial + 1)
/// (periodic, LVT bit 17). On expiry the LVT timer vector enters IRR unless masked.</para>
/// <para>Interrupt acceptance (<see cref="AcceptInterrupt"/>, <see cref="Acknowledge"/>, EOI with
/// <see cref="EoiBroadcast"/> for level-triggered vectors) follows QEMU.</para>
/// <para>IPIs (Intel SDM Vol. 3A §10.6.1; QEMU apic_deliver): writing ICR low (0x300) stores the word as written (QEMU
/// keeps bit 12, delivery status, as written: delivery is immediate, so it never reads "send pending" unless the guest
/// wrote it) and raises <see cref="IpiRequested"/> and <see cref="IpiSent"/> with the decoded <see cref="ApicMessage"/>
/// (destination from ICR high bits 24-31). The APIC does not deliver IPIs itself: <see cref="ApicBus"/> does. A fixed or
/// lowest-priority IPI with a vector 0-15 sets ESR bit 5 ("send illegal vector", SDM §10.5.3) and is still sent; the
/// receiver refuses it (<see cref="AcceptMessage"/>, ESR bit 6). QEMU sets neither bit.</para>
/// <para>x2APIC (SDM §10.12): <see cref="TrySetApicBase"/> follows the mode transitions of §10.12.5 (QEMU's
/// apic_set_base_check); in x2APIC mode the registers are MSRs 0x800 + index (<see cref="TryReadMsr"/>,
/// <see cref="TryWriteMsr"/>, false where the SDM raises #GP) and MMIO accesses read 0 and are ignored (SDM §10.12.2:
/// the MMIO interface behaves as a globally disabled xAPIC's), except MSI writes at offset 0x000-0x00F.</para>
/// </remarks>
public sealed class LocalApic : IMmioDevice, ITimedDevice
{
    /// <summary>The version register: version 0x14, highest LVT entry 5.</summary>
    public const uint VersionValue = 0x00050014;

    /// <summary>LVT indices (register index - 0x32).</summary>
    public const int LvtTimer = 0, LvtThermal = 1, LvtPerformance = 2, LvtLint0 = 3, LvtLint1 = 4, LvtError = 5;

    /// <summary>Number of LVT entries.</summary>
    public const int LvtCount = 6;

    private const uint LvtMasked = 1u << 16, LvtLevelTrigger = 1u << 15, LvtTimerPeriodic = 1u << 17;
    private const uint SvrEnable = 1u << 8;
    private const uint EsrIllegalAddress = 1u << 7;

    /// <summary>ESR bit 5: an IPI with a vector 0-15 was sent (SDM §10.5.3).</summary>
    public const uint EsrSendIllegalVector = 1u << 5;

    /// <summary>ESR bit 6: a message with a vector 0-15 was received and refused (SDM §10.5.3).</summary>
    public const uint EsrReceiveIllegalVector = 1u << 6;

    /// <summary>IA32_APIC_BASE bit 8: bootstrap processor.</summary>
    public const ulong ApicBaseBsp = 1UL << 8;

    /// <summary>IA32_APIC_BASE bit 10: x2APIC mode (EXTD).</summary>
    public const ulong ApicBaseExtd = 1UL << 10;

    /// <summary>IA32_APIC_BASE bit 11: APIC global enable (EN).</summary>
    public const ulong ApicBaseEnable = 1UL << 11;

    /// <summary>The first x2APIC MSR (register index 0).</summary>
    public const uint X2ApicMsrBase = 0x800;

    /// <summary>The default APIC base address (IA32_APIC_BASE bits 12 and up after reset).</summary>
    public const ulong DefaultBaseAddress = 0xFEE00000;

    private const ulong ApicBaseAddressMask = 0x000F_FFFF_FFFF_F000UL; // MAXPHYADDR ≤ 52
    private const ulong ApicBaseReserved = ~(ApicBaseAddressMask | ApicBaseBsp | ApicBaseExtd | ApicBaseEnable);
    private const uint IcrDeliveryStatus = 1u << 12;
    private const uint X2IcrReservedLow = 0xFFF3_2000; // bits 13, 16-17, 20-31 (SDM Figure 10-28)

    private readonly GuestClock _clock;
    private readonly uint[] _isr = new uint[8];
    private readonly uint[] _tmr = new uint[8];
    private readonly uint[] _irr = new uint[8];
    private readonly uint[] _lvt = new uint[LvtCount];
    private readonly uint[] _icr = new uint[2];
    private byte _id;
    private byte _tpr;
    private ushort _spurious;
    private byte _logicalDestination;
    private byte _destinationFormat;
    private uint _esr;
    private uint _initialCount;
    private long _initialCountLoadTime;
    private uint _divideConfiguration;
    private int _countShift;
    private long _nextTimer = long.MaxValue;
    private ulong _apicBase;
    private uint _x2LogicalDestination;

    /// <summary>Creates the local APIC of CPU <paramref name="cpuIndex"/> in its reset state.</summary>
    /// <param name="clock">Guest time (the APIC timer's clock).</param>
    /// <param name="cpuIndex">The CPU index, 0-254; it becomes the initial APIC ID.</param>
    /// <param name="baseAddress">
    /// The base IA32_APIC_BASE holds after reset: 0xFEE00000 on a PC; a machine description may place the window
    /// elsewhere. A multiple of 4 KiB below 2^52.
    /// </param>
    /// <exception cref="ArgumentNullException"><paramref name="clock"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="cpuIndex"/> is outside 0-254, or <paramref name="baseAddress"/> is not 4 KiB aligned or not below 2^52.
    /// </exception>
    public LocalApic(GuestClock clock, int cpuIndex = 0, ulong baseAddress = DefaultBaseAddress)
    {
        _clock = DeviceThrow.NotNull(clock, nameof(clock), "The local APIC");
        if (cpuIndex is < 0 or > 254)
        {
            DeviceThrow.OutOfRange(nameof(cpuIndex), cpuIndex,
                $"CPU index {cpuIndex} cannot be an xAPIC ID; use 0 to 254 (0xFF is the broadcast ID).");
        }

        if ((baseAddress & ~ApicBaseAddressMask) != 0)
        {
            DeviceThrow.OutOfRange(nameof(baseAddress), baseAddress,
                $"APIC base 0x{baseAddress:x} cannot be held by IA32_APIC_BASE; give a multiple of 4 KiB below 2^52 (0xFEE00000 on a PC).");
        }

        CpuIndex = cpuIndex;
        ResetBaseAddress = baseAddress;
        Reset();
    }

    /// <summary>The base address IA32_APIC_BASE holds after reset (0xFEE00000 unless the machine chose another).</summary>
    public ulong ResetBaseAddress { get; }

    /// <summary>
    /// Whether the CPU reports x2APIC support (CPUID.1:ECX bit 21); when false, setting IA32_APIC_BASE.EXTD is refused
    /// (#GP). True by default.
    /// </summary>
    public bool X2ApicSupported { get; init; } = true;

    /// <summary>The x2APIC ID (the initial APIC ID, = <see cref="CpuIndex"/>): MSR 0x802 in x2APIC mode.</summary>
    public uint X2ApicId => (uint)CpuIndex;

    /// <summary>IA32_APIC_BASE as the CPU's MSR reads it: base address, BSP (CPU 0), EXTD and EN.</summary>
    public ulong ApicBase => _apicBase;

    /// <summary>The APIC's physical base address (IA32_APIC_BASE bits 12 and up).</summary>
    public ulong BaseAddress => _apicBase & ApicBaseAddressMask;

    /// <summary>Whether the APIC is in x2APIC mode (IA32_APIC_BASE EN and EXTD set).</summary>
    public bool IsX2ApicMode => (_apicBase & ApicBaseExtd) != 0;

    /// <summary>
    /// The logical destination: LDR bits 24-31 in xAPIC mode; in x2APIC mode the 32-bit logical x2APIC ID
    /// (cluster = x2APIC ID bits 4-19 in bits 16-31, 1 &lt;&lt; ID bits 0-3 in bits 0-15; SDM §10.12.10.2).
    /// </summary>
    public uint LogicalDestination => IsX2ApicMode ? _x2LogicalDestination : _logicalDestination;

    /// <summary>The destination format model (DFR bits 28-31): 0xF flat, 0x0 cluster.</summary>
    public byte DestinationFormat => _destinationFormat;

    /// <inheritdoc />
    public string Name => "Local APIC";

    /// <summary>Sizes 1-4, unaligned allowed (QEMU's valid sizes; the bus combines aligned reads for unaligned ones).</summary>
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <summary>Aligned accesses of 1-4 bytes; only 32-bit ones reach a register.</summary>
    public AccessConstraints Impl => new(1, 4);

    /// <summary>The CPU this APIC belongs to.</summary>
    public int CpuIndex { get; }

    /// <summary>The APIC ID (register 0x20 bits 24-31).</summary>
    public byte Id => _id;

    /// <summary>The task priority register.</summary>
    public byte Tpr => _tpr;

    /// <summary>The spurious-interrupt vector register (bits 0-8).</summary>
    public ushort SpuriousVector => _spurious;

    /// <summary>Whether the APIC is software-enabled (SVR bit 8).</summary>
    public bool SoftwareEnabled => (_spurious & SvrEnable) != 0;

    /// <summary>
    /// IA32_APIC_BASE bit 11 (global enable), owned by the CPU's MSR; true at reset. QEMU delivers PIC interrupts to
    /// the CPU only when this is clear or LINT0 is unmasked (<see cref="AcceptsPicInterrupts"/>).
    /// </summary>
    public bool GloballyEnabled
    {
        get => (_apicBase & ApicBaseEnable) != 0;
        set => _apicBase = value ? _apicBase | ApicBaseEnable : _apicBase & ~(ApicBaseEnable | ApicBaseExtd);
    }

    /// <summary>The error status register.</summary>
    public uint Esr => _esr;

    /// <summary>The interrupt command register (high half in bits 32-63).</summary>
    public ulong Icr => ((ulong)_icr[1] << 32) | _icr[0];

    /// <summary>The timer's initial count.</summary>
    public uint TimerInitialCount => _initialCount;

    /// <summary>The timer's current count now.</summary>
    public uint TimerCurrentCount => CurrentCount(_clock.Nanoseconds);

    /// <summary>Guest nanoseconds per timer tick (1 × the divisor).</summary>
    public long TimerTickNanoseconds => 1L << _countShift;

    /// <summary>
    /// QEMU's apic_accept_pic_intr: whether the PIC's INTR is offered to LINT0 (APIC globally disabled or LINT0
    /// unmasked). Offered is not delivered: a masked LINT0 drops it even when the APIC is globally disabled (observed
    /// on QEMU 7.2: no IRQ 0 with LINT0 masked, with or without IA32_APIC_BASE.EN).
    /// </summary>
    public bool AcceptsPicInterrupts => !GloballyEnabled || (_lvt[LvtLint0] & LvtMasked) == 0;

    /// <summary>Whether LINT0 is unmasked with delivery mode ExtINT, so that the PIC's INTR drives the CPU's interrupt input.</summary>
    public bool Lint0PassesExtInt =>
        (_lvt[LvtLint0] & LvtMasked) == 0 && ((_lvt[LvtLint0] >> 8) & 7) == (uint)ApicDeliveryMode.ExtInt;

    /// <summary>Whether a fixed interrupt above the processor priority is waiting (the CPU's INTR from this APIC).</summary>
    public bool InterruptPending
    {
        get
        {
            Poll();
            return PendingVector() > 0;
        }
    }

    /// <summary>Raised with the vector when an EOI retires a level-triggered interrupt (for the I/O APICs).</summary>
    public event Action<int>? EoiBroadcast;

    /// <summary>Raised with the ICR value (high half in bits 32-63) when the guest writes the ICR's low half.</summary>
    public event Action<ulong>? IpiRequested;

    /// <summary>
    /// Raised with the decoded message when the guest sends an IPI: a write of ICR low (xAPIC), of the ICR MSR 0x830 or
    /// of the SELF IPI MSR 0x83F (x2APIC). The APIC never delivers IPIs itself; <see cref="ApicBus"/> subscribes.
    /// </summary>
    public event Action<ApicMessage>? IpiSent;

    /// <summary>
    /// Raised after <see cref="TrySetApicBase"/> moved the xAPIC window (a new base in IA32_APIC_BASE bits 12 and up),
    /// so that the machine maps the window where this CPU now sees it (SDM Vol. 3A §10.4.5).
    /// </summary>
    public event Action<LocalApic>? BaseAddressChanged;

    /// <summary>Raised with (address, data) for a 32-bit write to offset 0x000-0x00F (an MSI in QEMU).</summary>
    public event Action<ulong, uint>? MsiWritten;

    /// <summary>Raised when an LVT entry with a non-fixed delivery mode (SMI, NMI, ExtINT, INIT) fires.</summary>
    public event Action<ApicDeliveryMode>? CpuSignalRequested;

    /// <inheritdoc />
    public long NextDeadline => _nextTimer;

    /// <summary>LVT entry <paramref name="index"/> (0 timer, 1 thermal, 2 performance, 3 LINT0, 4 LINT1, 5 error).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is outside 0-5.</exception>
    public uint GetLvt(int index)
    {
        if ((uint)index >= LvtCount)
        {
            DeviceThrow.OutOfRange(nameof(index), index, $"LVT entries are numbered 0 (timer) to 5 (error); {index} is not one.");
        }

        return _lvt[index];
    }

    /// <summary>Whether <paramref name="vector"/> is set in IRR.</summary>
    public bool IsRequested(int vector) => GetBit(_irr, vector);

    /// <summary>Whether <paramref name="vector"/> is set in ISR.</summary>
    public bool IsInService(int vector) => GetBit(_isr, vector);

    /// <summary>Returns to the power-on state (QEMU's apic_reset_common on a cold boot).</summary>
    public void Reset()
    {
        _id = (byte)CpuIndex;
        _tpr = 0;
        _spurious = 0xFF;
        _logicalDestination = 0;
        _destinationFormat = 0xF;
        Array.Clear(_isr);
        Array.Clear(_tmr);
        Array.Clear(_irr);
        Array.Fill(_lvt, LvtMasked);
        _esr = 0;
        Array.Clear(_icr);
        _divideConfiguration = 0;
        _countShift = 0; // QEMU: counts at 1 GHz until the divide configuration is written, although it reads 0 (divide by 2)
        _initialCount = 0;
        _initialCountLoadTime = _clock.Nanoseconds;
        _nextTimer = long.MaxValue;
        _apicBase = ResetBaseAddress | ApicBaseEnable | (CpuIndex == 0 ? ApicBaseBsp : 0);
        _x2LogicalDestination = 0;
    }

    /// <summary>
    /// The INIT reset a CPU performs on an INIT message: as <see cref="Reset"/> except that the APIC ID and
    /// IA32_APIC_BASE (x2APIC mode included) keep their values (Intel SDM Vol. 3A §10.4.7.3, §10.12.5.1).
    /// </summary>
    public void InitReset()
    {
        byte id = _id;
        ulong apicBase = _apicBase;
        uint x2Ldr = _x2LogicalDestination;
        Reset();
        _id = id;
        _apicBase = apicBase;
        _x2LogicalDestination = x2Ldr;
    }

    /// <summary>
    /// A WRMSR of IA32_APIC_BASE (MSR 0x1B). Returns false, changing nothing, where the SDM raises #GP: reserved bits
    /// (0-7, 9, 52-63; the CPU checks its own MAXPHYADDR), EXTD without x2APIC support, EXTD without EN, disabled →
    /// x2APIC directly, x2APIC → xAPIC without passing through disabled (SDM §10.12.5, Figure 10-27; QEMU
    /// apic_set_base_check). The BSP flag keeps its value (QEMU). Clearing EN clears EXTD and SVR bit 8 (QEMU
    /// apic_set_base); entering x2APIC mode derives the logical x2APIC ID from the x2APIC ID (SDM §10.12.10.2).
    /// </summary>
    public bool TrySetApicBase(ulong value)
    {
        bool enable = (value & ApicBaseEnable) != 0, extd = (value & ApicBaseExtd) != 0;
        bool wasEnabled = GloballyEnabled, wasX2 = IsX2ApicMode;
        if ((value & ApicBaseReserved) != 0
            || (extd && !X2ApicSupported)
            || (extd && !enable)
            || (!wasEnabled && enable && extd)
            || (wasX2 && enable && !extd))
        {
            return false;
        }

        ulong oldBase = BaseAddress;
        _apicBase = (value & ApicBaseAddressMask) | (_apicBase & ApicBaseBsp) | (enable ? ApicBaseEnable : 0)
            | (extd ? ApicBaseExtd : 0);
        if (!enable)
        {
            _spurious &= unchecked((ushort)~SvrEnable);
        }

        if (extd && !wasX2)
        {
            _x2LogicalDestination = ((X2ApicId >> 4) << 16) | (1u << (int)(X2ApicId & 0xF));
        }

        if (BaseAddress != oldBase)
        {
            BaseAddressChanged?.Invoke(this);
        }

        return true;
    }

    /// <summary>
    /// Receives a fixed, lowest-priority or ExtINT message from the APIC bus: a vector 0-15 is refused with ESR bit 6
    /// ("receive illegal vector", SDM §10.5.3: the APIC never sets IRR bits 0-15) and false; otherwise as
    /// <see cref="AcceptInterrupt"/>.
    /// </summary>
    public bool AcceptMessage(byte vector, bool levelTriggered)
    {
        if (vector < 16)
        {
            _esr |= EsrReceiveIllegalVector;
            return false;
        }

        AcceptInterrupt(vector, levelTriggered);
        return true;
    }

    /// <summary>
    /// Whether a message with destination field <paramref name="destination"/> (no shorthand) reaches this APIC, as
    /// QEMU's apic_get_delivery_bitmask: physical 0xFFFFFFFF reaches every APIC and logical 0xFFFFFFFF every x2APIC;
    /// physical: the x2APIC ID (x2APIC mode) or the 8-bit ID, 0xFF reaching every xAPIC-mode APIC; logical x2APIC:
    /// same cluster (bits 16-31) and a common bit in 0-15; logical xAPIC: the low byte by the flat (DFR 0xF) or
    /// cluster (DFR 0x0; cluster 0xF reaches every cluster, SDM §10.6.2.2) model.
    /// </summary>
    public bool AcceptsDestination(uint destination, bool logical)
    {
        bool x2 = IsX2ApicMode;
        if (destination == 0xFFFF_FFFF && (!logical || x2))
        {
            return true;
        }

        if (!logical)
        {
            return x2 ? destination == X2ApicId : destination == 0xFF || (byte)destination == _id;
        }

        if (x2)
        {
            return destination >> 16 == _x2LogicalDestination >> 16 && (destination & _x2LogicalDestination & 0xFFFF) != 0;
        }

        byte d = (byte)destination;
        if (_destinationFormat == 0xF)
        {
            return (d & _logicalDestination) != 0;
        }

        if (_destinationFormat == 0x0)
        {
            return ((d & 0xF0) == 0xF0 || (d & 0xF0) == (_logicalDestination & 0xF0)) && (d & _logicalDestination & 0x0F) != 0;
        }

        return false;
    }

    /// <summary>
    /// RDMSR of x2APIC MSR <paramref name="msr"/> (0x800 + register index, SDM §10.12.1.2 Table 10-6). False (#GP)
    /// outside x2APIC mode, for MSRs the table does not list (APR 0x809, DFR 0x80E, ICR high 0x831, CMCI 0x82F as this
    /// APIC has six LVTs, 0x840-0xBFF, ...) and for the write-only EOI (0x80B) and SELF IPI (0x83F). No ESR bit is set
    /// (SDM §10.12.1.3: illegal register accesses fault instead). ICR 0x830 reads both halves, destination in 63:32.
    /// </summary>
    public bool TryReadMsr(uint msr, out ulong value)
    {
        value = 0;
        if (!IsX2ApicMode || msr - X2ApicMsrBase >= 0x40)
        {
            return false;
        }

        Poll();
        int index = (int)(msr - X2ApicMsrBase);
        switch (index)
        {
            case 0x02:
                value = X2ApicId;
                return true;
            case 0x0D:
                value = _x2LogicalDestination;
                return true;
            case 0x30:
                value = Icr;
                return true;
            case 0x03 or 0x08 or 0x0A or 0x0F or (>= 0x10 and <= 0x28) or (>= 0x32 and <= 0x39) or 0x3E:
                value = ReadRegister(index);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// WRMSR of x2APIC MSR <paramref name="msr"/>. False (#GP) outside x2APIC mode, for unlisted MSRs, for the read-only
    /// ones (ID, version, PPR, LDR, ISR, TMR, IRR, current count), for a non-zero value to EOI or ESR, for bits 63:32
    /// set (every MSR but the ICR), and for reserved bits set in TPR (31:8), SELF IPI (31:8) and the ICR (13, 16-17,
    /// 20-31; SDM §10.12.1.3). The ICR (0x830) takes the 32-bit destination in bits 63:32, ignores bit 12 and sends
    /// the IPI; SELF IPI (0x83F) sends a fixed, edge-triggered IPI to this APIC (SDM §10.12.11).
    /// </summary>
    public bool TryWriteMsr(uint msr, ulong value)
    {
        if (!IsX2ApicMode || msr - X2ApicMsrBase >= 0x40)
        {
            return false;
        }

        Poll();
        int index = (int)(msr - X2ApicMsrBase);
        if (index == 0x30)
        {
            uint low = (uint)value;
            if ((low & X2IcrReservedLow) != 0)
            {
                return false;
            }

            _icr[0] = low & ~IcrDeliveryStatus;
            _icr[1] = (uint)(value >> 32);
            SendIpi(Icr);
            return true;
        }

        if (value >> 32 != 0)
        {
            return false;
        }

        uint v = (uint)value;
        switch (index)
        {
            case 0x08 or 0x3F when v > 0xFF:
            case 0x0B or 0x28 when v != 0:
                return false;
            case 0x0B:
                EndOfInterrupt();
                return true;
            case 0x28:
                return true; // zero write: ignored as the MMIO write (QEMU)
            case 0x3F:
                SendMessage(new ApicMessage(CpuIndex, (byte)v, ApicDeliveryMode.Fixed, false, 0,
                    ApicDestinationShorthand.Self, true, false));
                return true;
            case 0x08 or 0x0F or (>= 0x32 and <= 0x38) or 0x3E:
                WriteRegister(index, v);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Accepts a fixed interrupt (from the I/O APIC, an IPI or an MSI): sets IRR, and TMR for level-triggered ones
    /// (QEMU's apic_set_irq).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vector"/> is outside 0-255.</exception>
    public void AcceptInterrupt(int vector, bool levelTriggered)
    {
        if ((uint)vector > 255)
        {
            DeviceThrow.OutOfRange(nameof(vector), vector, $"Interrupt vectors run from 0 to 255; {vector} is not one.");
        }

        SetBit(_irr, vector, true);
        SetBit(_tmr, vector, levelTriggered);
    }

    /// <summary>
    /// The CPU's interrupt acknowledge (QEMU's apic_get_interrupt): moves the highest pending vector above the
    /// processor priority from IRR to ISR and returns it; returns the spurious vector when requests exist but none is
    /// above the priority, and -1 when the APIC is software-disabled or nothing is pending.
    /// </summary>
    public int Acknowledge()
    {
        Poll();
        if (!SoftwareEnabled)
        {
            return -1;
        }

        int vector = PendingVector();
        if (vector == 0)
        {
            return -1;
        }

        if (vector < 0)
        {
            return _spurious & 0xFF;
        }

        SetBit(_irr, vector, false);
        SetBit(_isr, vector, true);
        return vector;
    }

    /// <summary>
    /// Whether an interrupt message for <paramref name="destination"/> reaches this APIC (QEMU's delivery bitmask):
    /// physical mode matches the ID or 0xFF; logical mode uses the flat (DFR 0xF) or cluster (DFR 0x0) model.
    /// </summary>
    public bool MatchesDestination(byte destination, bool logical)
    {
        if (!logical)
        {
            return destination == 0xFF || destination == _id;
        }

        if (_destinationFormat == 0xF)
        {
            return (destination & _logicalDestination) != 0;
        }

        return (destination & 0xF0) == (_logicalDestination & 0xF0) && (destination & _logicalDestination & 0x0F) != 0;
    }

    /// <summary>Drives the LINT0 input (the PIC's INTR when wired as on the PC), as QEMU's apic_deliver_pic_intr.</summary>
    public void SetLint0(bool level)
    {
        if (level)
        {
            LocalDeliver(LvtLint0);
            return;
        }

        uint lvt = _lvt[LvtLint0];
        if (((lvt >> 8) & 7) == (uint)ApicDeliveryMode.Fixed && (lvt & LvtLevelTrigger) != 0)
        {
            SetBit(_irr, (int)(lvt & 0xFF), false);
        }
    }

    /// <summary>Asserts the LINT1 input (NMI on the PC).</summary>
    public void PulseLint1() => LocalDeliver(LvtLint1);

    /// <inheritdoc />
    public void Poll()
    {
        long now = _clock.Nanoseconds;
        if (_nextTimer > now)
        {
            return;
        }

        // Several missed periods set the same IRR bit once: fire once and re-arm from the latest boundary.
        LocalDeliver(LvtTimer);
        long expiry = _nextTimer;
        if ((_lvt[LvtTimer] & LvtTimerPeriodic) != 0 && _initialCount != 0)
        {
            long periodNs = ((long)_initialCount + 1) << _countShift;
            long behind = now - expiry;
            expiry += behind / periodNs * periodNs;
        }

        UpdateTimer(expiry);
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        Poll();
        value = size < 4 || IsX2ApicMode ? 0 : ReadRegister((int)((offset >> 4) & 0xFF));
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        Poll();
        if (size < 4)
        {
            return BusStatus.Ok;
        }

        int index = (int)((offset >> 4) & 0xFF);
        if (index == 0)
        {
            MsiWritten?.Invoke(0xFEE00000UL + offset, (uint)value);
            return BusStatus.Ok;
        }

        if (!IsX2ApicMode)
        {
            WriteRegister(index, (uint)value);
        }

        return BusStatus.Ok;
    }

    private uint ReadRegister(int index)
    {
        switch (index)
        {
            case 0x02:
                return (uint)_id << 24;
            case 0x03:
                return VersionValue;
            case 0x08:
                return _tpr;
            case 0x09:
                return 0; // arbitration priority
            case 0x0A:
                return (uint)ProcessorPriority();
            case 0x0B:
                return 0; // EOI
            case 0x0D:
                return (uint)_logicalDestination << 24;
            case 0x0E:
                return ((uint)_destinationFormat << 28) | 0x0FFFFFFF;
            case 0x0F:
                return _spurious;
            case >= 0x10 and <= 0x17:
                return _isr[index & 7];
            case >= 0x18 and <= 0x1F:
                return _tmr[index & 7];
            case >= 0x20 and <= 0x27:
                return _irr[index & 7];
            case 0x28:
                return _esr;
            case 0x30:
            case 0x31:
                return _icr[index & 1];
            case >= 0x32 and <= 0x37:
                return _lvt[index - 0x32];
            case 0x38:
                return _initialCount;
            case 0x39:
                return CurrentCount(_clock.Nanoseconds);
            case 0x3E:
                return _divideConfiguration;
            default:
                _esr |= EsrIllegalAddress;
                return 0;
        }
    }

    private void WriteRegister(int index, uint value)
    {
        long now = _clock.Nanoseconds;
        switch (index)
        {
            case 0x02:
                _id = (byte)(value >> 24);
                break;
            case 0x03: // version
            case 0x09: // APR
            case 0x0A: // PPR
            case >= 0x10 and <= 0x27: // ISR, TMR, IRR
            case 0x28: // ESR: QEMU ignores the write, so latched errors stay
            case 0x39: // current count
                break;
            case 0x08:
                _tpr = (byte)value;
                break;
            case 0x0B:
                EndOfInterrupt();
                break;
            case 0x0D:
                _logicalDestination = (byte)(value >> 24);
                break;
            case 0x0E:
                _destinationFormat = (byte)(value >> 28);
                break;
            case 0x0F:
                _spurious = (ushort)(value & 0x1FF);
                break;
            case 0x30:
                _icr[0] = value;
                SendIpi(Icr);
                break;
            case 0x31:
                _icr[1] = value;
                break;
            case >= 0x32 and <= 0x37:
                _lvt[index - 0x32] = value;
                if (index - 0x32 == LvtTimer)
                {
                    UpdateTimer(now);
                }

                break;
            case 0x38:
                _initialCount = value;
                _initialCountLoadTime = now;
                UpdateTimer(now);
                break;
            case 0x3E:
                _divideConfiguration = value & 0xB;
                uint v = (_divideConfiguration & 3) | ((_divideConfiguration >> 1) & 4);
                _countShift = (int)((v + 1) & 7);
                break;
            default:
                _esr |= EsrIllegalAddress;
                break;
        }
    }

    /// <summary>Raises the ICR events for <paramref name="icr"/> (QEMU apic_deliver, SDM §10.6.1).</summary>
    private void SendIpi(ulong icr)
    {
        IpiRequested?.Invoke(icr);
        SendMessage(ApicMessage.FromIcr(CpuIndex, icr, IsX2ApicMode));
    }

    private void SendMessage(ApicMessage message)
    {
        if (message.Vector < 16 && message.DeliveryMode is ApicDeliveryMode.Fixed or ApicDeliveryMode.LowestPriority)
        {
            _esr |= EsrSendIllegalVector;
        }

        IpiSent?.Invoke(message);
    }

    private uint CurrentCount(long now)
    {
        long d = (now - _initialCountLoadTime) >> _countShift;
        if ((_lvt[LvtTimer] & LvtTimerPeriodic) != 0)
        {
            return (uint)(_initialCount - (ulong)d % ((ulong)_initialCount + 1));
        }

        return d >= _initialCount ? 0 : (uint)(_initialCount - d);
    }

    /// <summary>Computes the next expiry from <paramref name="now"/> (QEMU's apic_next_timer).</summary>
    private void UpdateTimer(long now)
    {
        _nextTimer = long.MaxValue;
        if ((_lvt[LvtTimer] & LvtMasked) != 0)
        {
            return;
        }

        long d = (now - _initialCountLoadTime) >> _countShift;
        long ticks;
        if ((_lvt[LvtTimer] & LvtTimerPeriodic) != 0)
        {
            if (_initialCount == 0)
            {
                return;
            }

            long period = (long)_initialCount + 1;
            ticks = (d / period + 1) * period;
        }
        else
        {
            if (d >= _initialCount)
            {
                return;
            }

            ticks = (long)_initialCount + 1;
        }

        _nextTimer = _initialCountLoadTime + (ticks << _countShift);
    }

    private void LocalDeliver(int lvtIndex)
    {
        uint lvt = _lvt[lvtIndex];
        if ((lvt & LvtMasked) != 0)
        {
            return;
        }

        var mode = (ApicDeliveryMode)((lvt >> 8) & 7);
        switch (mode)
        {
            case ApicDeliveryMode.Fixed:
                bool level = lvtIndex is LvtLint0 or LvtLint1 && (lvt & LvtLevelTrigger) != 0;
                AcceptInterrupt((int)(lvt & 0xFF), level);
                break;
            case ApicDeliveryMode.Smi:
            case ApicDeliveryMode.Nmi:
            case ApicDeliveryMode.ExtInt:
            case ApicDeliveryMode.Init:
                CpuSignalRequested?.Invoke(mode);
                break;
        }
    }

    private void EndOfInterrupt()
    {
        int vector = HighestBit(_isr);
        if (vector < 0)
        {
            return;
        }

        SetBit(_isr, vector, false);
        if (GetBit(_tmr, vector))
        {
            EoiBroadcast?.Invoke(vector);
        }
    }

    private int ProcessorPriority()
    {
        int isrv = Math.Max(HighestBit(_isr), 0);
        return (_tpr >> 4) >= (isrv >> 4) ? _tpr : isrv & 0xF0;
    }

    /// <summary>QEMU's apic_irq_pending: the vector to deliver, 0 for none, -1 when masked by the priority.</summary>
    internal int PendingVector()
    {
        if (!SoftwareEnabled)
        {
            return 0;
        }

        int irrv = HighestBit(_irr);
        if (irrv < 0)
        {
            return 0;
        }

        int ppr = ProcessorPriority();
        if (ppr != 0 && (irrv & 0xF0) <= (ppr & 0xF0))
        {
            return -1;
        }

        return irrv;
    }

    private static int HighestBit(uint[] bits)
    {
        for (int i = 7; i >= 0; i--)
        {
            if (bits[i] != 0)
            {
                return i * 32 + 31 - System.Numerics.BitOperations.LeadingZeroCount(bits[i]);
            }
        }

        return -1;
    }

    private static bool GetBit(uint[] bits, int vector) => (bits[(vector >> 5) & 7] & (1u << (vector & 31))) != 0;

    private static void SetBit(uint[] bits, int vector, bool value)
    {
        ref uint word = ref bits[(vector >> 5) & 7];
        word = value ? word | (1u << (vector & 31)) : word & ~(1u << (vector & 31));
    }
}
