using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Interrupts;

/// <summary>
/// The local APICs of a multi-CPU machine and the bus between them: one <see cref="LocalApic"/> per CPU (APIC IDs
/// 0..N-1), the 0xFEE00000 window serving each CPU its own APIC, and delivery of IPIs, I/O APIC messages and MSIs as
/// QEMU's hw/intc/apic.c (apic_deliver, apic_get_delivery_bitmask, apic_bus_deliver) and the Intel SDM Vol. 3A §10.6.
/// </summary>
/// <remarks>
/// <para>MMIO: an access whose requester is <see cref="RequesterKind.Cpu"/> reaches that CPU's APIC (QEMU's
/// cpu_get_current_apic); a CPU index without an APIC reads 0 and is ignored. Host and debugger accesses reach CPU 0's
/// APIC (inspection, and the single-CPU behaviour of a bare <see cref="LocalApic"/>). Other requesters (DMA) have no
/// APIC: reads return 0 and writes are ignored (QEMU: no current CPU), except 32-bit writes to offset 0x000-0x00F,
/// which are MSIs from any requester (QEMU apic_mem_write → apic_send_msi) and are delivered by
/// <see cref="DeliverMsi"/>. QEMU's window is 1 MiB (APIC_SPACE_SIZE) so that MSIs can address every destination; if the
/// platform maps more than 4 KiB, writes beyond offset 0xFFF are MSIs too, as in QEMU, and reads there return 0.</para>
/// <para>Delivery: fixed (and ExtINT, as QEMU's apic_bus_deliver) messages set the vector in every target's IRR through
/// <see cref="LocalApic.AcceptMessage"/> (a vector 0-15 is refused with ESR bit 6, SDM §10.5.3); lowest priority goes
/// to the first target in CPU order only — QEMU's apic_bus_deliver ("XXX: search for focus processor, arbitration")
/// rather than the SDM's lowest processor priority (§10.6.2.4); INIT, start-up, NMI and SMI raise per-CPU events for
/// the CPU model (<see cref="InitRequested"/>, <see cref="StartupRequested"/>, <see cref="NmiRequested"/>,
/// <see cref="SmiRequested"/>); an INIT level de-assert delivers nothing (QEMU, SDM §10.6.1); reserved delivery mode 3
/// delivers nothing. Messages whose destination matches no APIC go nowhere, as on hardware (QEMU ignores them).
/// Delivery ignores whether the target APIC is software- or globally disabled, as QEMU's apic_set_irq does.</para>
/// </remarks>
public sealed class ApicBus : IMmioDevice, ITimedDevice
{
    /// <summary>Most CPUs (xAPIC IDs 0-254; 0xFF is the broadcast ID).</summary>
    public const int MaxCpus = 255;

    private readonly LocalApic[] _apics;
    private readonly DeviceLog _log;
    private readonly Dictionary<ulong, MmioRegion> _windows = [];
    private PhysicalBus? _memory;
    private ulong _windowSize;
    private ulong _homeBase;

    /// <summary>Creates <paramref name="cpuCount"/> local APICs, APIC ID = CPU index, and wires their messages.</summary>
    /// <param name="clock">Guest time (the APIC timers' clock).</param>
    /// <param name="cpuCount">Number of CPUs, 1-255.</param>
    /// <param name="x2ApicSupported">Whether the CPUs report x2APIC (see <see cref="LocalApic.X2ApicSupported"/>).</param>
    /// <param name="baseAddress">Every APIC's base after reset (see <see cref="LocalApic.ResetBaseAddress"/>).</param>
    /// <param name="log">Where messages that reach no APIC and unusual start-up vectors are reported; none when null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="clock"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="cpuCount"/> is outside 1-255, or <paramref name="baseAddress"/> is not a valid APIC base.
    /// </exception>
    public ApicBus(GuestClock clock, int cpuCount, bool x2ApicSupported = true, ulong baseAddress = LocalApic.DefaultBaseAddress,
        DeviceLog? log = null)
    {
        _log = log ?? DeviceLog.Discard;
        DeviceThrow.NotNull(clock, nameof(clock), "The APIC bus");
        if (cpuCount is < 1 or > MaxCpus)
        {
            DeviceThrow.OutOfRange(nameof(cpuCount), cpuCount,
                $"The APIC bus holds 1 to {MaxCpus} CPUs (xAPIC IDs 0-254); {cpuCount} is not allowed.");
        }

        _apics = new LocalApic[cpuCount];
        for (int i = 0; i < cpuCount; i++)
        {
            var apic = new LocalApic(clock, i, baseAddress) { X2ApicSupported = x2ApicSupported };
            apic.IpiSent += Deliver;
            apic.EoiBroadcast += vector => EoiBroadcast?.Invoke(vector);
            apic.MsiWritten += (address, data) => DeliverMsi(address, data);
            _apics[i] = apic;
        }
    }

    /// <inheritdoc />
    public string Name => "Local APIC";

    /// <summary>As <see cref="LocalApic.Valid"/>.</summary>
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <summary>As <see cref="LocalApic.Impl"/>.</summary>
    public AccessConstraints Impl => new(1, 4);

    /// <summary>Number of CPUs (APICs).</summary>
    public int Count => _apics.Length;

    /// <summary>The APIC of CPU <paramref name="cpu"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="cpu"/> has no APIC.</exception>
    public LocalApic this[int cpu]
    {
        get
        {
            if ((uint)cpu >= (uint)_apics.Length)
            {
                DeviceThrow.OutOfRange(nameof(cpu), cpu, $"CPUs are numbered 0 to {_apics.Length - 1}; {cpu} is not one.");
            }

            return _apics[cpu];
        }
    }

    /// <summary>Every APIC, in CPU order.</summary>
    public IReadOnlyList<LocalApic> Apics => _apics;

    /// <summary>Raised with the CPU index for an INIT message (not for an INIT level de-assert).</summary>
    public event Action<int>? InitRequested;

    /// <summary>Raised with the CPU index and the vector of a start-up IPI (the AP starts at vector × 0x1000).</summary>
    public event Action<int, byte>? StartupRequested;

    /// <summary>Raised with the CPU index for an NMI message.</summary>
    public event Action<int>? NmiRequested;

    /// <summary>Raised with the CPU index for an SMI message.</summary>
    public event Action<int>? SmiRequested;

    /// <summary>Raised with the vector when any APIC's EOI retires a level-triggered interrupt (for the I/O APICs).</summary>
    public event Action<int>? EoiBroadcast;

    /// <inheritdoc />
    public long NextDeadline
    {
        get
        {
            long next = long.MaxValue;
            foreach (LocalApic apic in _apics)
            {
                next = Math.Min(next, apic.NextDeadline);
            }

            return next;
        }
    }

    /// <inheritdoc />
    public void Poll()
    {
        foreach (LocalApic apic in _apics)
        {
            apic.Poll();
        }
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        LocalApic? apic = offset < 0x1000 ? ApicFor(attributes) : null;
        if (apic is null)
        {
            value = 0;
            return BusStatus.Ok;
        }

        return apic.Read(offset, size, out value, attributes);
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        LocalApic? apic = offset < 0x1000 ? ApicFor(attributes) : null;
        if (apic is not null)
        {
            return apic.Write(offset, size, value, attributes);
        }

        if (size >= 4 && (offset < 0x10 || offset >= 0x1000))
        {
            DeliverMsi(LocalApic.DefaultBaseAddress + offset, (uint)value);
        }

        return BusStatus.Ok;
    }

    /// <summary>
    /// Maps the xAPIC window of <paramref name="size"/> bytes at the APICs' reset base on <paramref name="memory"/>
    /// (named "Local APIC") and keeps the windows following IA32_APIC_BASE: when a CPU moves its APIC (SDM Vol. 3A
    /// §10.4.5), a window is mapped at the new base (priority 1, above RAM) unless one is there, and a moved-to window
    /// no APIC uses any more is unmapped. Each window serves a CPU only while that CPU's APIC base is the window's: a
    /// CPU reads 0 (writes are dropped) where its APIC is not, also at 0xFEE00000 after it moved away. A window put
    /// over RAM or another region hides it from every CPU while mapped (reported to the device log); a base the bus
    /// cannot map (beyond its physical address width, or over a region of priority 1) is reported and leaves that
    /// APIC reachable through x2APIC MSRs only. QEMU 7.2 never moves its window (one region at 0xFEE00000 for all
    /// CPUs, whatever IA32_APIC_BASE holds).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="memory"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The windows are already mapped.</exception>
    /// <exception cref="ArgumentException">The bus refuses the window at the reset base (see <see cref="PhysicalBus.AddMmio"/>).</exception>
    public MmioRegion MapWindows(PhysicalBus memory, ulong size)
    {
        DeviceThrow.NotNull(memory, nameof(memory), "The APIC bus");
        if (_memory is not null)
        {
            throw new InvalidOperationException("The APIC bus's windows are already mapped; call MapWindows once per machine.");
        }

        _memory = memory;
        _windowSize = size;
        _homeBase = _apics[0].ResetBaseAddress;
        var region = memory.AddMmio("Local APIC", _homeBase, size, new Window(this, _homeBase));
        _windows[_homeBase] = region;
        foreach (LocalApic apic in _apics)
        {
            apic.BaseAddressChanged += OnBaseAddressChanged;
        }

        return region;
    }

    /// <summary>The bases where an xAPIC window is mapped now, in ascending order.</summary>
    public IReadOnlyList<ulong> WindowBases => [.. _windows.Keys.Order()];

    private void OnBaseAddressChanged(LocalApic moved)
    {
        if (_memory is null)
        {
            return;
        }

        ulong target = moved.BaseAddress;
        if (!_windows.ContainsKey(target))
        {
            var (kind, _) = _memory.Describe(target);
            try
            {
                _windows[target] = _memory.AddMmio($"Local APIC at 0x{target:x}", target, _windowSize, new Window(this, target), priority: 1);
                if (kind is { } k)
                {
                    _log.Report("apic", $"CPU {moved.CpuIndex} moved its local APIC to 0x{target:x}, over {k}: every CPU loses that {k} " +
                        "while the window is there (a CPU whose APIC is elsewhere reads 0)");
                }
            }
            catch (ArgumentException e)
            {
                _log.Report("apic", $"CPU {moved.CpuIndex} moved its local APIC to 0x{target:x}, where no window can be mapped ({e.Message}); " +
                    "its xAPIC registers are unreachable there");
            }
        }

        foreach (ulong windowBase in _windows.Keys.ToList())
        {
            if (windowBase != _homeBase && !_apics.Any(a => a.BaseAddress == windowBase))
            {
                _memory.Remove(_windows[windowBase]);
                _windows.Remove(windowBase);
            }
        }
    }

    private int CpuOf(BusAttributes attributes) => attributes.Kind switch
    {
        RequesterKind.Cpu => (uint)attributes.RequesterId < (uint)_apics.Length ? attributes.RequesterId : -2,
        RequesterKind.Host or RequesterKind.Debugger => 0,
        _ => -1,
    };

    /// <summary>One mapped xAPIC window: serves a CPU whose APIC base is this window's base.</summary>
    private sealed class Window(ApicBus owner, ulong windowBase) : IMmioDevice
    {
        public string Name => "Local APIC";

        public AccessConstraints Valid => owner.Valid;

        public AccessConstraints Impl => owner.Impl;

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            if (Serves(attributes))
            {
                return owner.Read(offset, size, out value, attributes);
            }

            value = 0;
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes) =>
            Serves(attributes) ? owner.Write(offset, size, value, attributes) : BusStatus.Ok;

        // Requesters without an APIC (DMA: MSIs) and CPUs without one use the home window only; a CPU uses the window
        // where its own APIC is.
        private bool Serves(BusAttributes attributes)
        {
            int cpu = owner.CpuOf(attributes);
            return cpu < 0 ? windowBase == owner._homeBase : owner._apics[cpu].BaseAddress == windowBase;
        }
    }

    /// <summary>
    /// Delivers <paramref name="message"/> to the APICs it selects (QEMU apic_deliver then apic_bus_deliver): the
    /// shorthand (self = the sender, all including / excluding self), else the destination matched by
    /// <see cref="LocalApic.AcceptsDestination"/>. A source of -1 (I/O APIC, MSI) has no "self".
    /// </summary>
    public void Deliver(ApicMessage message)
    {
        if (message.IsInitLevelDeassert)
        {
            return;
        }

        switch (message.DeliveryMode)
        {
            case ApicDeliveryMode.LowestPriority:
                for (int cpu = 0; cpu < _apics.Length; cpu++)
                {
                    if (Targets(message, cpu))
                    {
                        _apics[cpu].AcceptMessage(message.Vector, message.LevelTriggered);
                        return;
                    }
                }

                ReportUndelivered(message);
                return;
            case ApicDeliveryMode.Fixed:
            case ApicDeliveryMode.ExtInt:
            case ApicDeliveryMode.Smi:
            case ApicDeliveryMode.Nmi:
            case ApicDeliveryMode.Init:
            case ApicDeliveryMode.StartUp:
                break;
            default:
                return;
        }

        bool delivered = false;
        for (int cpu = 0; cpu < _apics.Length; cpu++)
        {
            if (!Targets(message, cpu))
            {
                continue;
            }

            delivered = true;
            switch (message.DeliveryMode)
            {
                case ApicDeliveryMode.Smi:
                    SmiRequested?.Invoke(cpu);
                    break;
                case ApicDeliveryMode.Nmi:
                    NmiRequested?.Invoke(cpu);
                    break;
                case ApicDeliveryMode.Init:
                    InitRequested?.Invoke(cpu);
                    break;
                case ApicDeliveryMode.StartUp:
                    ReportStartupVector(cpu, message.Vector);
                    StartupRequested?.Invoke(cpu, message.Vector);
                    break;
                default:
                    _apics[cpu].AcceptMessage(message.Vector, message.LevelTriggered);
                    break;
            }
        }

        if (!delivered)
        {
            ReportUndelivered(message);
        }
    }

    /// <summary>
    /// Delivers an I/O APIC redirection (QEMU ioapic_service → apic_deliver_irq): the 8-bit destination, physical or
    /// logical, with the entry's delivery mode and trigger mode. For ExtINT the caller passes the PIC's vector.
    /// </summary>
    public void DeliverIoApicInterrupt(IoApicInterrupt interrupt) =>
        Deliver(new ApicMessage(-1, interrupt.Vector, (ApicDeliveryMode)(interrupt.DeliveryMode & 7),
            interrupt.LogicalDestination, interrupt.Destination, ApicDestinationShorthand.None, true,
            interrupt.LevelTriggered));

    /// <summary>
    /// Delivers an MSI (QEMU apic_send_msi; SDM §10.11): destination = address bits 12-19, destination mode = address
    /// bit 2, vector = data bits 0-7, delivery mode = data bits 8-10, trigger = data bit 15; the redirection hint is
    /// ignored as in QEMU.
    /// </summary>
    public void DeliverMsi(ulong address, uint data) =>
        Deliver(new ApicMessage(-1, (byte)data, (ApicDeliveryMode)((data >> 8) & 7), (address & 4) != 0,
            (uint)((address >> 12) & 0xFF), ApicDestinationShorthand.None, true, (data & (1u << 15)) != 0));

    /// <summary>
    /// A message that matched no APIC is dropped, as on hardware (a Pentium 4 or later xAPIC sets no ESR bit; the P6's
    /// "send accept error" needed the 3-wire APIC bus) and in QEMU (apic_deliver with an empty delivery bitmask).
    /// </summary>
    private void ReportUndelivered(in ApicMessage message)
    {
        if (message.Shorthand != ApicDestinationShorthand.None)
        {
            return; // "all excluding self" on a one-CPU machine: nobody to reach, nothing wrong
        }

        string what = message.SourceCpu >= 0 ? $"IPI from CPU {message.SourceCpu}" : "interrupt message (I/O APIC or MSI)";
        _log.Report("apic", message.LogicalDestination
            ? $"{what} ({message.DeliveryMode}, vector 0x{message.Vector:x2}) to logical destination 0x{message.Destination:x} matches no APIC; dropped"
            : $"{what} ({message.DeliveryMode}, vector 0x{message.Vector:x2}) to absent APIC ID 0x{message.Destination:x} dropped");
    }

    /// <summary>
    /// A start-up IPI's vector VV starts the AP at physical 0xVV000, always below 1 MiB. The SDM reserves vectors
    /// 0xA0-0xBF (the VGA window 0xA0000-0xBFFFF; SDM Vol. 3A §8.4.4.1, §10.6.1); QEMU (apic_sipi) starts the AP there
    /// anyway, and so does the model, with a report. Vectors 0xC0-0xFF (option ROMs and the BIOS) are legal.
    /// </summary>
    private void ReportStartupVector(int cpu, byte vector)
    {
        if (vector is >= 0xA0 and <= 0xBF)
        {
            _log.Report("apic", $"start-up IPI vector 0x{vector:x2} starts CPU {cpu} at 0x{vector << 12:x5}, in the VGA window 0xA0000-0xBFFFF " +
                "(the SDM reserves vectors 0xA0-0xBF); started there anyway, as QEMU does");
        }
    }

    private bool Targets(in ApicMessage message, int cpu) => message.Shorthand switch
    {
        ApicDestinationShorthand.Self => cpu == message.SourceCpu,
        ApicDestinationShorthand.AllIncludingSelf => true,
        ApicDestinationShorthand.AllExcludingSelf => cpu != message.SourceCpu,
        _ => _apics[cpu].AcceptsDestination(message.Destination, message.LogicalDestination),
    };

    private LocalApic? ApicFor(BusAttributes attributes) => attributes.Kind switch
    {
        RequesterKind.Cpu => (uint)attributes.RequesterId < (uint)_apics.Length ? _apics[attributes.RequesterId] : null,
        RequesterKind.Host or RequesterKind.Debugger => _apics[0],
        _ => null,
    };
}
