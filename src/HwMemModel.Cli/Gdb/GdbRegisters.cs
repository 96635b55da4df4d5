using System.Buffers.Binary;
using System.Text;
using HwMemModel.Cpu;

namespace HwMemModel.Cli.Gdb;

/// <summary>
/// The register file GDB sees, in the order of the target description: GDB's <c>org.gnu.gdb.i386.core</c> feature
/// for x86-64 (rax..r15, rip, eflags, the six selectors, then the x87 registers, which the model does not have and
/// reports as unavailable), <c>org.gnu.gdb.i386.segments</c> (fs_base, gs_base), and the control registers and EFER
/// in a feature of the model's own (GDB shows registers of features it does not know as they are).
/// </summary>
internal static class GdbRegisters
{
    /// <summary>GDB's register number of RIP.</summary>
    public const int Rip = 16;
    /// <summary>GDB's register number of EFLAGS.</summary>
    public const int Eflags = 17;
    /// <summary>GDB's register number of CS.</summary>
    public const int Cs = 18;
    /// <summary>GDB's register number of fs_base.</summary>
    public const int FsBase = 40;
    /// <summary>GDB's register number of CR0.</summary>
    public const int Cr0 = 42;

    private static readonly string[] Names =
    [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
        "st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7",
        "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop",
        "fs_base", "gs_base",
        "cr0", "cr2", "cr3", "cr4", "cr8", "efer",
    ];

    // GDB's order of the general registers -> the encoding order the CPU uses (RAX=0, RCX=1, RDX=2, RBX=3, RSP=4, ...).
    private static readonly int[] GprIndex = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];
    private static readonly SegmentIndex[] Selectors = [SegmentIndex.CS, SegmentIndex.SS, SegmentIndex.DS, SegmentIndex.ES, SegmentIndex.FS, SegmentIndex.GS];
    private static readonly int[] CrNumbers = [0, 2, 3, 4, 8];

    /// <summary>Registers in the description.</summary>
    public static int Count => Names.Length;

    /// <summary>The name of register <paramref name="n"/>.</summary>
    public static string Name(int n) => Names[n];

    /// <summary>The size of register <paramref name="n"/> in bytes.</summary>
    public static int Size(int n) => n switch
    {
        < 16 or Rip => 8,
        >= 17 and < 24 => 4,
        >= 24 and < 32 => 10,
        >= 32 and < 40 => 4,
        _ => 8,
    };

    /// <summary>Whether the model has register <paramref name="n"/> (the x87 registers it does not).</summary>
    public static bool Available(int n) => n is < 24 or >= FsBase;

    /// <summary>Register <paramref name="n"/> as the target byte order (little-endian) gives it.</summary>
    public static ulong Read(X86Cpu cpu, int n) => n switch
    {
        < 16 => cpu.GetRegister(GprIndex[n]),
        Rip => cpu.Rip,
        Eflags => (uint)cpu.Rflags,
        >= Cs and < 24 => cpu.GetSegment(Selectors[n - Cs]).Selector,
        FsBase => cpu.GetSegment(SegmentIndex.FS).Base,
        FsBase + 1 => cpu.GetSegment(SegmentIndex.GS).Base,
        Cr0 => cpu.Context.Cr0Value,
        Cr0 + 1 => cpu.Cr2,
        Cr0 + 2 => cpu.Context.Cr3Value,
        Cr0 + 3 => cpu.Context.Cr4Value,
        Cr0 + 4 => cpu.Cr8,
        Cr0 + 5 => cpu.Context.EferValue,
        _ => 0,
    };

    /// <summary>Appends register <paramref name="n"/> in hex (target byte order), or "xx" per byte when unavailable.</summary>
    public static void AppendHex(StringBuilder sb, X86Cpu cpu, int n)
    {
        int size = Size(n);
        if (!Available(n)) { sb.Append('x', 2 * size); return; }
        ulong v = Read(cpu, n);
        for (int i = 0; i < size; i++) sb.Append(((byte)(v >> (8 * i))).ToString("x2"));
    }

    /// <summary>
    /// Writes register <paramref name="n"/> from <paramref name="bytes"/> (target byte order, exactly its size). A value
    /// equal to the current one changes nothing; the x87 registers accept and drop writes. False for a value the
    /// processor refuses (a selector without a usable descriptor, a control-register value MOV CRn would #GP on).
    /// </summary>
    public static bool Write(X86Cpu cpu, int n, ReadOnlySpan<byte> bytes)
    {
        if ((uint)n >= (uint)Count || bytes.Length != Size(n)) return false;
        if (!Available(n)) return true;
        ulong v = bytes.Length == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        if (v == Read(cpu, n)) return true;
        switch (n)
        {
            case < 16:
                cpu.SetRegister(GprIndex[n], v);
                return true;
            case Rip:
                cpu.Rip = v;
                return true;
            case Eflags:
                cpu.Rflags = (cpu.Rflags & ~0xFFFF_FFFFUL) | v;
                return true;
            case >= Cs and < 24:
                return v <= 0xFFFF && cpu.DebugLoadSegment(Selectors[n - Cs], (ushort)v);
            case FsBase:
            case FsBase + 1:
            {
                var s = n == FsBase ? SegmentIndex.FS : SegmentIndex.GS;
                var seg = cpu.GetSegment(s);
                seg.Base = v;
                cpu.SetSegment(s, seg);
                return true;
            }
            case >= Cr0 and < Cr0 + 5:
                return cpu.DebugWriteControlRegister(CrNumbers[n - Cr0], v);
            case Cr0 + 5:
                return cpu.DebugWriteEfer(v);
            default:
                return false;
        }
    }

    /// <summary>The target description GDB reads with <c>qXfer:features:read:target.xml</c>.</summary>
    public static string TargetXml { get; } = BuildTargetXml();

    private static string BuildTargetXml()
    {
        var sb = new StringBuilder();
        sb.Append("<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n");
        sb.Append("  <architecture>i386:x86-64</architecture>\n");
        sb.Append("  <feature name=\"org.gnu.gdb.i386.core\">\n");
        sb.Append("    <flags id=\"i386_eflags\" size=\"4\">\n");
        foreach (var (name, bit) in new[] { ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9), ("DF", 10),
                     ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21) })
            sb.Append($"      <field name=\"{name}\" start=\"{bit}\" end=\"{bit}\"/>\n");
        sb.Append("    </flags>\n");
        for (int n = 0; n < FsBase; n++)
        {
            string type = n switch
            {
                6 or 7 => "data_ptr",
                < 16 => "int64",
                Rip => "code_ptr",
                Eflags => "i386_eflags",
                < 24 => "int32",
                < 32 => "i387_ext",
                _ => "int",
            };
            string group = n is >= 32 and < 40 ? " group=\"float\"" : "";
            sb.Append($"    <reg name=\"{Names[n]}\" bitsize=\"{Size(n) * 8}\" type=\"{type}\" regnum=\"{n}\"{group}/>\n");
        }
        sb.Append("  </feature>\n");
        sb.Append("  <feature name=\"org.gnu.gdb.i386.segments\">\n");
        sb.Append($"    <reg name=\"fs_base\" bitsize=\"64\" type=\"int\" regnum=\"{FsBase}\"/>\n");
        sb.Append($"    <reg name=\"gs_base\" bitsize=\"64\" type=\"int\" regnum=\"{FsBase + 1}\"/>\n");
        sb.Append("  </feature>\n");
        sb.Append("  <feature name=\"org.hwmemmodel.x86.control\">\n");
        for (int n = Cr0; n < Count; n++)
            sb.Append($"    <reg name=\"{Names[n]}\" bitsize=\"64\" type=\"int\" regnum=\"{n}\" group=\"system\"/>\n");
        sb.Append("  </feature>\n");
        sb.Append("</target>\n");
        return sb.ToString();
    }
}
