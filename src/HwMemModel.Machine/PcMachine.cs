using HwMemModel.Bus;
using HwMemModel.Cpu;
using HwMemModel.Devices.Platform;
using HwMemModel.Machine.Boot;
using HwMemModel.Mmu;

namespace HwMemModel.Machine;

/// <summary>Options of the default machine.</summary>
public sealed record PcMachineOptions
{
    /// <summary>RAM size in bytes (a multiple of 1 MiB, 2 MiB to 3 GiB). Default 128 MiB.</summary>
    public ulong RamSize { get; init; } = DefaultMachine.DefaultRamSize;
    /// <summary>The BIOS image (a multiple of 64 KiB); the built-in blank BIOS when null.</summary>
    public byte[]? Bios { get; init; }
    /// <summary>Where COM1's output goes; discarded when null.</summary>
    public Stream? SerialOutput { get; init; }
    /// <summary>Paging features; <see cref="CpuFeatures.Default"/> when null.</summary>
    public CpuFeatures? Features { get; init; }
    /// <summary>TLB geometry; <see cref="TlbGeometry.Default"/> when null.</summary>
    public TlbGeometry? Tlb { get; init; }
    /// <summary>
    /// A machine description (<c>hwmem run --machine FILE.json</c>): its RAM size, TLB geometry and devices around the
    /// pc chipset replace the built-in QEMU pc subset; UARTs with output "host" write to <see cref="SerialOutput"/>.
    /// Null for the built-in machine.
    /// </summary>
    public Description.MachineDescription? Description { get; init; }
    /// <summary>
    /// CPUs (QEMU's <c>-smp N</c>), 1 to 64. CPU 0 starts at the reset vector; the others wait for INIT and a
    /// start-up IPI, as on a PC. With more than one, the CPUs run in turn for <see cref="SmpQuantum"/> instructions each
    /// and guest time advances by one quantum per round, so every run is the same.
    /// </summary>
    public int Cpus { get; init; } = 1;
    /// <summary>
    /// Whether the CPUs report x2APIC (CPUID.1:ECX bit 21) and their local APICs accept IA32_APIC_BASE.EXTD, which puts
    /// the APIC's registers at MSRs 0x800-0x8FF (Intel SDM Vol. 3A §10.12). Off by default because QEMU 7.2's TCG, the
    /// reference for the conformance images, does not support x2APIC even with <c>-cpu max</c> ("TCG doesn't support
    /// requested feature: CPUID.01H:ECX.x2apic"); with it off, setting EXTD and RDMSR/WRMSR of 0x800-0x8FF raise #GP.
    /// </summary>
    public bool X2Apic { get; init; }
    /// <summary>Instructions each CPU runs per turn when <see cref="Cpus"/> is more than 1 (1 to 1,000,000).</summary>
    public long SmpQuantum { get; init; } = 1000;
    /// <summary>
    /// Adds QEMU's <c>pc-testdev</c> (<c>-device pc-testdev</c>): latch ports 0xE0-0xEB, ISA IRQ lines at
    /// 0x2000-0x2017 and 64 KiB of memory at 0xFF000000. Off by default, as on QEMU.
    /// </summary>
    public bool PcTestdev { get; init; }
    /// <summary>
    /// Adds the Bochs power-off port at 0x8900 ("Shutdown" written byte by byte stops with exit status 0). QEMU 7.2 has
    /// no such port (it ignores those writes), so it is off by default.
    /// </summary>
    public bool ShutdownPort { get; init; }
    /// <summary>
    /// Turns on the cross-CPU coherence checker (<c>hwmem run --check-coherence</c>): every CPU's TLB hits are compared
    /// with the page tables in RAM, and a stale translation is reported naming the CPU that changed the entry (with its
    /// instruction and the entry before and after) and the CPU that used the old translation (with its instruction).
    /// Slower: the TLB fast path is off while it runs. Off by default.
    /// </summary>
    public bool CoherenceChecking { get; init; }
}

/// <summary>
/// The default machine with a CPU: PLATFORM.md's QEMU <c>pc</c> subset (RAM layout, BIOS ROM and its low alias, the
/// option-ROM area, COM1, isa-debug-exit, HPET, IOAPIC, local APIC, PIC, PIT, RTC, i8042, fw_cfg) and one <see cref="X86Cpu"/>
/// whose interrupts come from the local APIC and the PIC. Guest time advances 1 ns per retired instruction.
/// </summary>
public sealed partial class PcMachine : IInterruptSource
{
    /// <summary>Base of the option-ROM area (128 KiB, read-only; QEMU's multiboot option ROM keeps its GDT here).</summary>
    public const ulong OptionRomBase = 0xC_0000;

    private PcMachine(PcMachineOptions options)
    {
        var description = options.Description;
        if (description is not null) Description.MachineDescriptionValidator.Validate(description);
        if (options.Cpus is < 1 or > 64)
            throw new ArgumentOutOfRangeException(nameof(options), options.Cpus, $"Cpus is {options.Cpus}; the machine takes 1 to 64 CPUs (QEMU's -smp).");
        if (options.SmpQuantum is < 1 or > 1_000_000)
            throw new ArgumentOutOfRangeException(nameof(options), options.SmpQuantum, $"SmpQuantum is {options.SmpQuantum}; give 1 to 1,000,000 instructions.");
        _quantum = options.SmpQuantum;
        RamSize = description?.RamSize ?? options.RamSize;
        Bus = DefaultMachine.CreateBus(RamSize, options.Bios);
        Bus.AddRom("option rom", OptionRomBase, new byte[0x2_0000]);
        Ports = new PortBus { UnmappedPolicy = UnmappedPolicy.AllOnes };
        Clock = new GuestClock();
        Stop = new StopRequest();
        var serial = options.SerialOutput ?? Stream.Null;
        if (description is null)
        {
            Devices = PcPlatform.AddDefaultDevices(Bus, Ports, Clock, Stop, serial, RamSize, options.Cpus, options.X2Apic, DeviceLog);
            Chipset = Devices.Chipset;
        }
        else
        {
            Chipset = PcChipset.Add(Bus, Ports, Clock, Stop, RamSize, description.IoApicBase, description.LocalApicBase, options.Cpus, options.X2Apic, DeviceLog);
            var parts = new Description.MachineParts(Bus, Ports, Clock, Stop, Chipset, DeviceLog,
                d => d.Options.TryGetValue("output", out var o) && o == "host" ? serial : Stream.Null, _ => null, _owned)
                { Description = description };
            foreach (var d in description.Devices)
                _models[d.Name] = Description.DeviceCatalog.Create(d, Description.DeviceCatalog.Find(d.Compatible)!, parts);
        }
        FwCfg = Devices?.FwCfg ?? _models.Values.OfType<FwCfg>().FirstOrDefault();
        if (options.PcTestdev) PcTestdev = AddOption(() => PcPlatform.AddPcTestdev(Bus, Ports, Chipset, Stop, DeviceLog), "pc-testdev");
        if (options.ShutdownPort) ShutdownPort = AddOption(() => PcPlatform.AddShutdownPort(Ports, Stop), "the shutdown port 0x8900");
        Context = new CpuContext(Bus, 0, options.Features, description?.Tlb ?? options.Tlb);
        // QEMU's "-cpu max" under TCG identifies as an AMD processor with signature 0x00060FB1 (family 0xF,
        // model 0x6B, stepping 1; firmware/expected/hello.txt and QEMU's monitor).
        var cpuid = new CpuidModel(Context.Features) { Vendor = "AuthenticAMD", Signature = 0x0006_0FB1, X2Apic = options.X2Apic };
        Cpu = new X86Cpu(Context, Ports, Clock, Stop, cpuid) { Interrupts = this };
        Cpu.LocalApic = new LocalApicMsrs(Chipset.LocalApic);
        _cpus.Add(Cpu);
        for (int i = 1; i < options.Cpus; i++)
        {
            var ctx = new CpuContext(Bus, i, options.Features, description?.Tlb ?? options.Tlb);
            var ap = new X86Cpu(ctx, Ports, Clock, Stop, cpuid) { Interrupts = this };
            ap.LocalApic = new LocalApicMsrs(Chipset.ApicBus[i]);
            ap.Init();
            _cpus.Add(ap);
        }
        if (options.CoherenceChecking) EnableCoherenceChecking();
        if (_cpus.Count > 1) foreach (var c in _cpus) c.ExternalClock = true;
        var apics = Chipset.ApicBus;
        // INIT resets an AP and its APIC (ID and IA32_APIC_BASE kept, SDM §10.4.7.3; QEMU do_cpu_init).
        apics.InitRequested += cpu => { if (cpu > 0 && cpu < _cpus.Count) { _cpus[cpu].Init(); apics[cpu].InitReset(); } };
        apics.StartupRequested += (cpu, vector) => { if (cpu < _cpus.Count) _cpus[cpu].StartupIpi(vector); };
        apics.NmiRequested += cpu => { if (cpu < _cpus.Count) _cpus[cpu].RaiseNmi(); };
    }

    private readonly List<X86Cpu> _cpus = [];
    private readonly long _quantum;

    /// <summary>Every CPU, CPU 0 first.</summary>
    public IReadOnlyList<X86Cpu> AllCpus => _cpus;

    private readonly Dictionary<string, object> _models = new(StringComparer.Ordinal);
    private readonly List<IDisposable> _owned = [];

    private static T AddOption<T>(Func<T> add, string what)
    {
        try
        {
            return add();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Cannot add {what}: {e.Message}", e);
        }
    }

    /// <summary>Creates the machine with the built-in blank BIOS or <see cref="PcMachineOptions.Bios"/>, the CPU at its reset state.</summary>
    public static PcMachine Create(PcMachineOptions? options = null) => new(options ?? new PcMachineOptions());

    /// <summary>
    /// Creates the machine for <c>--bios IMAGE</c>: validates the image (one-line <see cref="ImageLoadException"/>
    /// naming the file), maps it ending at 4 GiB and resets the CPU to F000:FFF0.
    /// </summary>
    public static PcMachine FromBios(byte[] image, string path, PcMachineOptions? options = null)
    {
        BiosImage.Validate(image, path);
        return new PcMachine((options ?? new PcMachineOptions()) with { Bios = image });
    }

    /// <summary>
    /// Creates the machine for <c>--kernel IMAGE</c>: loads a multiboot v1 image (a.out kludge or ELF32) as QEMU
    /// does and puts the CPU in 32-bit protected mode at its entry with EAX=0x2BADB002 and EBX at the information
    /// structure.
    /// </summary>
    public static PcMachine FromMultiboot(byte[] image, string path, string? commandLine = null, PcMachineOptions? options = null,
        IReadOnlyList<MultibootModule>? modules = null)
    {
        var m = new PcMachine(options ?? new PcMachineOptions());
        var result = MultibootLoader.Load(m.Bus, image, path, commandLine, m.RamSize, modules);
        m.Multiboot = result;
        m.WriteOptionRomGdt();
        m.Apply(result.BootState);
        return m;
    }

    /// <summary>RAM size in bytes.</summary>
    public ulong RamSize { get; }
    /// <summary>The physical bus.</summary>
    public PhysicalBus Bus { get; }
    /// <summary>The I/O port bus (unassigned ports read all ones, as on QEMU).</summary>
    public PortBus Ports { get; }
    /// <summary>Guest time.</summary>
    public GuestClock Clock { get; }
    /// <summary>Stop requests (isa-debug-exit, reset).</summary>
    public StopRequest Stop { get; }
    /// <summary>The platform devices of the built-in machine; null for a machine built from a description.</summary>
    public PcDevices? Devices { get; }
    /// <summary>The pc chipset (interrupt controllers, PIT, RTC, i8042) of either kind of machine.</summary>
    public PcChipset Chipset { get; }
    /// <summary>QEMU's fw_cfg: always on the built-in machine; on a described machine when it lists <c>qemu,fw-cfg-io</c>.</summary>
    public FwCfg? FwCfg { get; }
    /// <summary>The pc-testdev, when <see cref="PcMachineOptions.PcTestdev"/> asked for it.</summary>
    public Devices.Misc.PcTestdev? PcTestdev { get; }
    /// <summary>The Bochs shutdown port, when <see cref="PcMachineOptions.ShutdownPort"/> asked for it.</summary>
    public Devices.Misc.BochsShutdownPort? ShutdownPort { get; }
    /// <summary>Guest mistakes the devices reported (a machine built from a description).</summary>
    public Devices.Common.DeviceLog DeviceLog { get; } = new();

    /// <summary>A device of a machine built from a description, by name.</summary>
    /// <exception cref="KeyNotFoundException">No such device of that type.</exception>
    public T Device<T>(string name) where T : class
        => _models.TryGetValue(name, out var m) && m is T t ? t
            : throw new KeyNotFoundException($"The machine has no device '{name}' of type {typeof(T).Name}; devices: {string.Join(", ", _models.Keys)}.");
    /// <summary>CPU 0's paging context.</summary>
    public CpuContext Context { get; }
    /// <summary>CPU 0.</summary>
    public X86Cpu Cpu { get; }
    /// <summary>What the multiboot loader did, for a machine made by <see cref="FromMultiboot"/>.</summary>
    public MultibootLoadResult? Multiboot { get; private set; }

    /// <summary>Runs the CPU for at most <paramref name="maxInstructions"/> instructions (see <see cref="X86Cpu.Run"/>).</summary>
    public RunResult Run(long maxInstructions = long.MaxValue) => _cpus.Count == 1 ? Cpu.Run(maxInstructions) : RunSmp(maxInstructions);

    /// <summary>
    /// Round-robin over the CPUs: each runs up to one quantum; then guest time advances by the quantum (or, when every
    /// CPU is idle, to the next device deadline). A stop request, a triple fault or a state the model does not model on
    /// any CPU ends the run; halted and waiting CPUs are idle, not finished.
    /// </summary>
    private RunResult RunSmp(long maxInstructions)
    {
        long total = 0;
        while (true)
        {
            bool anyRan = false;
            for (int i = 0; i < _cpus.Count; i++)
            {
                long budget = Math.Min(_quantum, maxInstructions - total);
                if (budget <= 0)
                    return new RunResult(StopKind.InstructionLimit, total, $"instruction limit reached after {total} instructions on {_cpus.Count} CPUs");
                var r = _cpus[i].Run(budget);
                total += r.Instructions;
                anyRan |= r.Instructions > 0;
                switch (r.Kind)
                {
                    case StopKind.InstructionLimit or StopKind.Halted:
                        continue;
                    default:
                        return r with { Instructions = total, Report = _cpus.Count > 1 ? $"CPU {i}: {r.Report}" : r.Report };
                }
            }
            if (anyRan)
            {
                Clock.Advance(_quantum * GuestClock.NanosecondsPerInstruction);
                continue;
            }
            // Every CPU is idle: skip to the next device event, or stop when nothing can ever wake one (a CPU waiting
            // for a start-up IPI needs another CPU to send it; a CPU halted with IF=0 wakes for nothing modelled here).
            long next = Chipset.NextDeadline;
            if (next == long.MaxValue || !_cpus.Any(c => !c.WaitingForStartup && (c.Rflags & 0x200) != 0))
                return new RunResult(StopKind.Halted, total, $"every CPU is halted or waiting for a start-up IPI and no interrupt is scheduled");
            Clock.Advance(Math.Max(1, next - Clock.Nanoseconds));
        }
    }

    /// <summary>
    /// The exit status QEMU would end with: isa-debug-exit's (v &lt;&lt; 1) | 1, 0 for a triple fault or a reset
    /// with -no-reboot. Other ends (instruction limit, a halt nothing can wake, a state the model does not model)
    /// have no QEMU equivalent and return null.
    /// </summary>
    public static int? QemuExitStatus(RunResult result, StopRequest stop) => result.Kind switch
    {
        StopKind.StopRequested => stop.ExitStatus,
        StopKind.TripleFault => 0,
        _ => null,
    };

    private void WriteOptionRomGdt()
    {
        // The GDT QEMU's multiboot option ROM leaves at 0xC02B8 (5 entries): null, flat 32-bit code (0x08, accessed
        // bit clear), flat data (0x10), and 16-bit code and data for its own real-mode return path.
        var gdt = new byte[40];
        BitConverter.GetBytes(0x00CF_9A00_0000_FFFFUL).CopyTo(gdt, 8);
        BitConverter.GetBytes(0x00CF_9300_0000_FFFFUL).CopyTo(gdt, 16);
        BitConverter.GetBytes(0x0000_9B00_0000_FFFFUL).CopyTo(gdt, 24);
        BitConverter.GetBytes(0x0000_9300_0000_FFFFUL).CopyTo(gdt, 32);
        Bus.LoadImage(0xC02B8, gdt);
    }

    /// <summary>Applies a loader's hand-off state to CPU 0.</summary>
    public void Apply(BootState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Mode == BootMode.RealModeReset)
        {
            Cpu.Reset();
            return;
        }
        Context.SetCr0(state.Cr0 | Cr0.ET);
        SetSeg(SegmentIndex.CS, state.Cs);
        SetSeg(SegmentIndex.DS, state.Ds);
        SetSeg(SegmentIndex.ES, state.Es);
        SetSeg(SegmentIndex.FS, state.Fs);
        SetSeg(SegmentIndex.GS, state.Gs);
        SetSeg(SegmentIndex.SS, state.Ss);
        if (state.Gdtr is { } g) Cpu.Gdtr = new DescriptorTableRegister { Base = g.Base, Limit = g.Limit };
        if (state.Idtr is { } i) Cpu.Idtr = new DescriptorTableRegister { Base = i.Base, Limit = i.Limit };
        uint[] regs = [state.Eax, state.Ecx, state.Edx, state.Ebx, state.Esp, state.Ebp, state.Esi, state.Edi];
        for (int r = 0; r < 8; r++) Cpu.SetRegister(r, regs[r]);
        Cpu.Rflags = state.Eflags | 2;
        Cpu.Rip = state.Eip;
    }

    private void SetSeg(SegmentIndex s, SegmentState? state)
    {
        if (state is { } v)
            Cpu.SetSegment(s, new SegmentRegister { Selector = v.Selector, Base = v.Base, Limit = v.Limit, Attributes = v.Attributes });
    }

    // ------------------------------------------------------------------ interrupt source for CPU 0

    bool IInterruptSource.HasPending(int cpu)
    {
        // Devices bring themselves up to date on register accesses; timers need a poll once their deadline passed.
        if (Clock.Nanoseconds >= Chipset.NextDeadline) Chipset.Poll();
        return Chipset.CpuInterruptPendingFor(cpu);
    }

    int IInterruptSource.Acknowledge(int cpu) => Chipset.AcknowledgeInterruptFor(cpu);

    long IInterruptSource.NextEventTime(int cpu)
    {
        long next = Chipset.NextDeadline;
        return next == long.MaxValue ? -1 : next;
    }
}
