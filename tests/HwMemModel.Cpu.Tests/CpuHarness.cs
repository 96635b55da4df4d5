using System.Text;
using HwMemModel.Bus;
using HwMemModel.Mmu;
using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Cpu.Tests;

/// <summary>A port device that collects bytes written to it (a debug console at 0xE9) and stops on writes to 0xF4.</summary>
internal sealed class ConsolePort(StopRequest stop) : IMmioDevice
{
    public StringBuilder Text { get; } = new();
    public List<ulong> Values { get; } = [];
    public string Name => "test console";
    public AccessConstraints Valid => AccessConstraints.Any;
    public AccessConstraints Impl => new(1, 4);

    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        value = 0x5A;
        return BusStatus.Ok;
    }

    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        if (offset == 9) Text.Append((char)(byte)value);
        else if (offset == 0) Values.Add(value);
        else if (offset == 0xB) stop.Request((int)(((uint)value << 1) | 1), "test exit");
        return BusStatus.Ok;
    }
}

/// <summary>
/// A small machine for CPU tests: 32 MiB of RAM, a console at ports 0xE9 (characters), 0xE0 (values, 32-bit) and
/// 0xEB (exit), and helpers that assemble code with Iced and start it in 64-bit, 32-bit or real mode.
/// Long mode uses identity-mapped 2 MiB pages over the first 32 MiB (page tables at 0x10000).
/// </summary>
internal sealed class CpuHarness
{
    public const ulong CodeBase = 0x20_0000;
    public const ulong StackTop = 0x1F_0000;
    public const ulong DataBase = 0x40_0000;

    public PhysicalBus Bus { get; }
    public PortBus Ports { get; }
    public CpuContext Context { get; }
    public X86Cpu Cpu { get; }
    public ConsolePort Console { get; }
    public StopRequest Stop { get; } = new();
    public PageTableBuilder? Tables { get; private set; }

    public CpuHarness(CpuFeatures? features = null, TlbGeometry? tlb = null)
    {
        Bus = new PhysicalBus(40, UnmappedPolicy.Zero);
        Bus.AddRam("ram", 0, 32UL << 20);
        Ports = new PortBus();
        Console = new ConsolePort(Stop);
        Ports.Add("console", 0xE0, 16, Console);
        Context = new CpuContext(Bus, 0, features, tlb);
        Cpu = new X86Cpu(Context, Ports, stop: Stop);
    }

    public static byte[] Assemble(int bitness, ulong ip, Action<Assembler> build)
    {
        var a = new Assembler(bitness);
        build(a);
        var w = new MemoryStream();
        a.Assemble(new StreamCodeWriter(w), ip);
        return w.ToArray();
    }

    /// <summary>Loads 64-bit code at <see cref="CodeBase"/> and puts the CPU in 64-bit mode at CPL 0 there.</summary>
    public void Start64(Action<Assembler> build, bool userPages = false)
    {
        Bus.LoadImage(CodeBase, Assemble(64, CodeBase, build));
        Tables = new PageTableBuilder(Bus, 0x1_0000, 0x1_0000);
        var flags = PteFlags.Present | PteFlags.Writable | (userPages ? PteFlags.User : 0);
        Tables.MapRange(0, 0, 32UL << 20, PageSize.Size2M, flags);
        Context.EnterLongMode(Tables.Root);
        Cpu.SetSegment(SegmentIndex.CS, new SegmentRegister { Selector = 0x08, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xA09B });
        Cpu.SetSegment(SegmentIndex.SS, new SegmentRegister { Selector = 0x10, Base = 0, Limit = 0xFFFF_FFFF, Attributes = 0xC093 });
        Cpu.Rip = CodeBase;
        Cpu.SetRegister(4, StackTop);
    }

    /// <summary>Loads 32-bit code at <see cref="CodeBase"/> and enters flat protected mode there.</summary>
    public void Start32(Action<Assembler> build)
    {
        Bus.LoadImage(CodeBase, Assemble(32, CodeBase, build));
        Cpu.EnterFlatProtectedMode((uint)CodeBase);
        Cpu.SetRegister(4, StackTop);
    }

    /// <summary>Loads 16-bit code at 0x7C00 and runs it in real mode with CS=0.</summary>
    public void Start16(Action<Assembler> build)
    {
        Bus.LoadImage(0x7C00, Assemble(16, 0x7C00, build));
        Cpu.SetSegment(SegmentIndex.CS, new SegmentRegister { Selector = 0, Base = 0, Limit = 0xFFFF, Attributes = 0x9B });
        Cpu.Rip = 0x7C00;
        Cpu.SetRegister(4, 0x7000);
    }

    public RunResult Run(long max = 1_000_000) => Cpu.Run(max);

    /// <summary>Code that writes a register to the value port (0xE0).</summary>
    public static void EmitValue(Assembler a, AssemblerRegister32 r)
    {
        if (r != eax) a.mov(eax, r);
        a.@out(0xE0, eax);
    }

    /// <summary>Code that exits with status (v&lt;&lt;1)|1.</summary>
    public static void EmitExit(Assembler a, byte v)
    {
        a.mov(al, v);
        a.@out(0xEB, al);
    }
}
