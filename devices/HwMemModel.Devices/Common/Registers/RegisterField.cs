namespace HwMemModel.Devices.Common.Registers;

/// <summary>
/// A handle on one field of a <see cref="Register"/>: <see cref="Width"/> bits from bit <see cref="Position"/>.
/// Device code keeps handles (from the <c>out</c> overloads of <see cref="Register.WithField(int, int, FieldMode, string, out RegisterField, Action{ulong, ulong}?, Func{ulong}?)"/>)
/// to read a field a guest programmed or to set a field the hardware owns, such as a status bit.
/// </summary>
/// <remarks>Setting <see cref="Value"/> is a hardware update: it ignores <see cref="Mode"/> and calls no callback.</remarks>
public sealed class RegisterField
{
    internal RegisterField(Register register, string name, int position, int width, FieldMode mode,
        Action<ulong, ulong>? changed, Func<ulong>? valueProvider)
    {
        Register = register;
        Name = name;
        Position = position;
        Width = width;
        Mode = mode;
        MaxValue = width >= 64 ? ulong.MaxValue : (1UL << width) - 1;
        Mask = MaxValue << position;
        Changed = changed;
        ValueProvider = valueProvider;
    }

    /// <summary>The register holding the field.</summary>
    public Register Register { get; }

    /// <summary>The field's name, as reports show it.</summary>
    public string Name { get; }

    /// <summary>Lowest bit of the field within the register.</summary>
    public int Position { get; }

    /// <summary>Number of bits, 1 to 64.</summary>
    public int Width { get; }

    /// <summary>How guest reads and writes treat the field.</summary>
    public FieldMode Mode { get; }

    /// <summary>The field's bits in register position.</summary>
    public ulong Mask { get; }

    /// <summary>Largest value the field holds (all of its bits set).</summary>
    public ulong MaxValue { get; }

    /// <summary>The field's value after reset, taken from the register's reset value.</summary>
    public ulong ResetValue => (Register.ResetValue & Mask) >> Position;

    /// <summary>
    /// The value stored in the field (for <see cref="FieldMode.WriteOnly"/> fields the last value written, for
    /// <see cref="FieldMode.Reserved"/> ones what reads return is still the reset value). Setting it is a hardware
    /// update: bits above <see cref="Width"/> are dropped, no callback runs.
    /// </summary>
    public ulong Value
    {
        get => (Register.Value & Mask) >> Position;
        set => Register.Value = (Register.Value & ~Mask) | ((value << Position) & Mask);
    }

    /// <summary>Whether any bit of the field is set.</summary>
    public bool IsSet => (Register.Value & Mask) != 0;

    /// <summary>Sets every bit of the field (a flag becomes 1); a hardware update.</summary>
    public void Set() => Register.Value |= Mask;

    /// <summary>Clears every bit of the field; a hardware update.</summary>
    public void Clear() => Register.Value &= ~Mask;

    /// <summary>Sets the field to 1 (<paramref name="on"/>) or 0; a hardware update.</summary>
    public void Set(bool on)
    {
        if (on) Set();
        else Clear();
    }

    internal Action<ulong, ulong>? Changed { get; }

    internal Func<ulong>? ValueProvider { get; }

    /// <summary>"REGISTER.FIELD [hi:lo] mode".</summary>
    public override string ToString() =>
        Width == 1 ? $"{Register.Name}.{Name} [{Position}] {Mode}" : $"{Register.Name}.{Name} [{Position + Width - 1}:{Position}] {Mode}";
}
