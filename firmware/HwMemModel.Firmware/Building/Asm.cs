using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Building;

/// <summary>
/// One section being assembled: Iced's <see cref="Assembler"/> plus what Iced lacks for firmware, namely
/// absolute addresses of labels in 16- and 32-bit code, symbols shared between sections of different
/// bitness, a string pool and the serial/exit runtime. The <see cref="Linker"/> runs a section's build
/// delegate repeatedly; addresses come from the previous pass until nothing moves any more.
/// </summary>
internal sealed class Asm
{
    private readonly IReadOnlyDictionary<string, ulong> _symbols;
    private readonly IReadOnlyList<ulong>? _previousLabelAddresses;
    private readonly List<Label> _labels = [];
    private readonly Dictionary<ulong, int> _labelIndexById = [];
    private readonly Dictionary<string, int> _exports = [];
    private readonly List<(int LabelIndex, byte[] Bytes)> _pool = [];
    private readonly Dictionary<string, int> _poolByText = [];
    private readonly List<Action> _later = [];
    private int _boundAtCount = -1;

    internal Asm(int bitness, ulong origin, IReadOnlyDictionary<string, ulong> symbols, IReadOnlyList<ulong>? previousLabelAddresses)
    {
        A = new Assembler(bitness);
        Origin = origin;
        _symbols = symbols;
        _previousLabelAddresses = previousLabelAddresses;
    }

    /// <summary>The Iced assembler of this section.</summary>
    public Assembler A { get; }

    /// <summary>Run address of the section's first byte.</summary>
    public ulong Origin { get; }

    /// <summary>16, 32 or 64.</summary>
    public int Bitness => A.Bitness;

    /// <summary>False when a symbol or label address was not known yet in this pass.</summary>
    public bool Complete { get; private set; } = true;

    /// <summary>The serial and exit routines, once <see cref="Runtime.Emit"/> ran for this section.</summary>
    public Runtime? Rt { get; internal set; }

    internal IReadOnlyList<Label> Labels => _labels;

    internal IReadOnlyDictionary<string, int> Exports => _exports;

    /// <summary>Creates a label whose address can also be asked for with <see cref="AddressOf"/>.</summary>
    public Label NewLabel(string? name = null)
    {
        var label = A.CreateLabel(name);
        _labelIndexById[label.Id] = _labels.Count;
        _labels.Add(label);
        return label;
    }

    /// <summary>Binds <paramref name="label"/> to the next instruction or data item.</summary>
    public void Bind(ref Label label)
    {
        // Iced allows one label per instruction: a second label at the same place gets a NOP to sit on.
        if (_boundAtCount == A.Instructions.Count)
        {
            A.nop();
        }

        A.Label(ref label);
        _boundAtCount = A.Instructions.Count;
        _labels[_labelIndexById[label.Id]] = label;
    }

    /// <summary>Creates a label, binds it here and returns it.</summary>
    public Label Here(string? name = null)
    {
        var label = NewLabel(name);
        Bind(ref label);
        return label;
    }

    /// <summary>Makes <paramref name="label"/> visible to other sections as <paramref name="name"/>.</summary>
    public void Export(string name, Label label) => _exports.Add(name, _labelIndexById[label.Id]);

    /// <summary>Binds a new label here and exports it.</summary>
    public Label Global(string name)
    {
        var label = Here(name);
        Export(name, label);
        return label;
    }

    /// <summary>The address of an exported symbol of any section (a placeholder until it is known).</summary>
    public ulong Sym(string name)
    {
        if (_symbols.TryGetValue(name, out var value))
        {
            return value;
        }

        Complete = false;
        return Origin;
    }

    /// <summary>The absolute address of a label of this section (a placeholder until it is known).</summary>
    public ulong AddressOf(Label label)
    {
        var index = _labelIndexById[label.Id];
        if (_previousLabelAddresses is { } previous && index < previous.Count)
        {
            return previous[index];
        }

        Complete = false;
        return Origin;
    }

    /// <summary>A pooled, zero-terminated ASCII string, emitted by <see cref="EmitPool"/>.</summary>
    public Label Str(string text)
    {
        if (_poolByText.TryGetValue(text, out var existing))
        {
            return _labels[existing];
        }

        var label = NewLabel();
        var index = _labelIndexById[label.Id];
        var bytes = new byte[text.Length + 1];
        for (var i = 0; i < text.Length; i++)
        {
            bytes[i] = text[i] < 0x80 ? (byte)text[i] : throw new ArgumentException("ASCII only", nameof(text));
        }

        _pool.Add((index, bytes));
        _poolByText.Add(text, index);
        return label;
    }

    /// <summary>Loads the address of <paramref name="label"/> into a register of the section's width.</summary>
    public void LoadAddress(AssemblerRegister64 reg64, Label label)
    {
        if (Bitness == 64)
        {
            A.lea(reg64, __[label]);
        }
        else
        {
            A.mov(Narrow(reg64), checked((uint)AddressOf(label)));
        }
    }

    /// <summary>Queues code (subroutines, handlers) to be emitted after the section's main code.</summary>
    public void Later(Action emit) => _later.Add(emit);

    /// <summary>Emits the queued code, then the pooled strings; the linker calls it after the build delegate.</summary>
    internal void EmitPool()
    {
        for (var i = 0; i < _later.Count; i++)
        {
            _later[i]();
        }

        _later.Clear();
        foreach (var (labelIndex, bytes) in _pool)
        {
            var label = _labels[labelIndex];
            Bind(ref label);
            A.db(bytes);
        }

        _pool.Clear();
    }

    /// <summary>Prints <paramref name="text"/> on COM1; preserves every register.</summary>
    public void Print(string text)
    {
        var rt = Rt ?? throw new InvalidOperationException("Runtime.Emit first");
        var label = Str(text);
        if (Bitness == 64)
        {
            A.push(rsi);
            A.lea(rsi, __[label]);
            A.call(rt.Puts);
            A.pop(rsi);
        }
        else
        {
            A.push(esi);
            A.mov(esi, checked((uint)AddressOf(label)));
            A.call(rt.Puts);
            A.pop(esi);
        }
    }

    /// <summary>Prints a register as "0x" and minimal hex digits; preserves every register.</summary>
    public void PrintHex(AssemblerRegister64 value)
    {
        var rt = Rt ?? throw new InvalidOperationException("Runtime.Emit first");
        A.push(rdi);
        if (value != rdi)
        {
            A.mov(rdi, value);
        }

        A.call(rt.PutHex);
        A.pop(rdi);
    }

    /// <summary>Prints a 32-bit register as "0x" and minimal hex digits (32-bit sections); preserves every register.</summary>
    public void PrintHex(AssemblerRegister32 value)
    {
        var rt = Rt ?? throw new InvalidOperationException("Runtime.Emit first");
        if (Bitness == 64)
        {
            A.push(rdi);
            A.mov(edi, value);
            A.call(rt.PutHex);
            A.pop(rdi);
            return;
        }

        // 32-bit runtime: value in EDX:EAX.
        A.push(eax);
        A.push(edx);
        A.push(value);
        A.xor(edx, edx);
        A.pop(eax);
        A.call(rt.PutHex);
        A.pop(edx);
        A.pop(eax);
    }

    /// <summary>Prints a register in decimal; preserves every register.</summary>
    public void PrintDec(AssemblerRegister64 value)
    {
        var rt = Rt ?? throw new InvalidOperationException("Runtime.Emit first");
        A.push(rdi);
        if (value != rdi)
        {
            A.mov(rdi, value);
        }

        A.call(rt.PutDec);
        A.pop(rdi);
    }

    /// <summary>Prints a 32-bit register in decimal; preserves every register.</summary>
    public void PrintDec(AssemblerRegister32 value)
    {
        var rt = Rt ?? throw new InvalidOperationException("Runtime.Emit first");
        if (Bitness == 64)
        {
            A.push(rdi);
            A.mov(edi, value);
            A.call(rt.PutDec);
            A.pop(rdi);
            return;
        }

        A.push(eax);
        A.mov(eax, value);
        A.call(rt.PutDec);
        A.pop(eax);
    }

    /// <summary>Prints a 32-bit memory operand in decimal (32-bit sections); preserves every register.</summary>
    public void PrintDec(AssemblerMemoryOperand value)
    {
        var rt = Rt ?? throw new InvalidOperationException("Runtime.Emit first");
        if (Bitness != 32)
        {
            throw new InvalidOperationException("32-bit sections only");
        }

        A.push(eax);
        A.mov(eax, value);
        A.call(rt.PutDec);
        A.pop(eax);
    }

    /// <summary>Writes <paramref name="code"/> to isa-debug-exit (QEMU exits with (code &lt;&lt; 1) | 1) and halts.</summary>
    public void Exit(byte code)
    {
        A.mov(dx, (ushort)Platform.DebugExitPort);
        A.mov(al, code);
        A.@out(dx, al);
        var halt = Here();
        A.cli();
        A.hlt();
        A.jmp(halt);
    }

    private static AssemblerRegister32 Narrow(AssemblerRegister64 reg) => new(reg.Value switch
    {
        Register.RAX => Register.EAX,
        Register.RBX => Register.EBX,
        Register.RCX => Register.ECX,
        Register.RDX => Register.EDX,
        Register.RSI => Register.ESI,
        Register.RDI => Register.EDI,
        Register.RBP => Register.EBP,
        Register.RSP => Register.ESP,
        _ => throw new ArgumentOutOfRangeException(nameof(reg)),
    });
}
