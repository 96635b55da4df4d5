namespace HwMemModel.Devices.Common.Registers;

/// <summary>
/// One device register of 1, 2, 4 or 8 bytes at a fixed offset of a <see cref="RegisterMap{TOffset}"/>, described
/// by its fields. Definition is fluent: <c>map.Define(Reg.Control, 4, "CONTROL").WithFlag(0, FieldMode.ReadWrite,
/// "ENABLE", out _enable).WithFlag(1, FieldMode.WriteOnly, "RESET")</c>.
/// </summary>
/// <remarks>
/// <para>Guest read: with a register value provider (<see cref="WithValueProvider"/>) its result is the value read
/// and the fields are not consulted. Otherwise every field value provider runs (its result becomes the field's
/// value), then the value read is the stored value in <see cref="FieldMode.ReadOnly"/>, <see cref="FieldMode.ReadWrite"/>,
/// <see cref="FieldMode.WriteOneToClear"/> and <see cref="FieldMode.ReadToClear"/> bits, 0 in
/// <see cref="FieldMode.WriteOnly"/> bits and the reset value in reserved bits (reserved fields and bits no field
/// covers); finally the read-to-clear bits the access covered are cleared.</para>
/// <para>Guest write: read-write and write-only bits take the bits written, write-one-to-clear bits written as 1
/// are cleared, everything else keeps its value; a write that tries to change a reserved bit is reported. Then each
/// field change callback whose field's value changed runs (in definition order, with old and new value), then the
/// register write callback (<see cref="WithWriteCallback"/>) with the value written.</para>
/// <para>An access narrower than the register (allowed by <see cref="WithAccessSizes"/>) touches only its bytes:
/// read-to-clear clears only the bits read, a write changes only the bits written.</para>
/// <para>Device code changes fields with <see cref="RegisterField.Value"/>, <see cref="SetField(RegisterField, ulong)"/>
/// or <see cref="Value"/> (hardware updates): modes are not applied and no callback runs.</para>
/// </remarks>
public sealed class Register
{
    private readonly string _device;
    private readonly DeviceLog _log;
    private readonly List<RegisterField> _fields = [];
    private readonly ulong _widthMask;
    private RegisterField[] _changeFields = [];
    private RegisterField[] _providerFields = [];
    private Func<ulong>? _valueProvider;
    private Action<ulong>? _afterWrite;
    private ulong _value;
    private ulong _readable;
    private ulong _writable;
    private ulong _w1c;
    private ulong _rc;
    private ulong _reserved;
    private int _accessSizes;

    internal Register(string device, DeviceLog log, string name, ulong offset, int width, ulong resetValue)
    {
        _device = device;
        _log = log;
        Name = name;
        Offset = offset;
        Width = width;
        _widthMask = width == 8 ? ulong.MaxValue : (1UL << (width * 8)) - 1;
        ResetValue = resetValue;
        _value = resetValue;
        _accessSizes = 1 << width;
        _reserved = _widthMask;
    }

    /// <summary>The register's name, as reports show it.</summary>
    public string Name { get; }

    /// <summary>Offset of the register's first byte in the device window.</summary>
    public ulong Offset { get; }

    /// <summary>Width in bytes: 1, 2, 4 or 8.</summary>
    public int Width { get; }

    /// <summary>The value after reset.</summary>
    public ulong ResetValue { get; }

    /// <summary>
    /// The stored value of every bit, as device code sees it (write-only bits hold what was written; what a guest read
    /// returns may differ, see the remarks of <see cref="Register"/>). Setting it is a hardware update: no mode, no
    /// callback; bits above <see cref="Width"/> are dropped.
    /// </summary>
    public ulong Value
    {
        get => _value;
        set => _value = value & _widthMask;
    }

    /// <summary>The fields in definition order.</summary>
    public IReadOnlyList<RegisterField> Fields => _fields;

    /// <summary>Bits no field covers or covered by reserved fields: they read as the reset value and ignore writes.</summary>
    public ulong ReservedMask => _reserved;

    internal int AccessSizeMask => _accessSizes;

    /// <summary>Whether the register accepts a guest access of <paramref name="size"/> bytes.</summary>
    public bool AcceptsSize(int size) => (uint)(size - 1) < 8 && (_accessSizes & (1 << size)) != 0;

    /// <summary>Adds a field of <paramref name="width"/> bits at bit <paramref name="position"/>.</summary>
    /// <param name="position">Lowest bit, from 0.</param>
    /// <param name="width">Number of bits, 1 or more; the field must end inside the register.</param>
    /// <param name="mode">How guest accesses treat the field.</param>
    /// <param name="name">The field's name, unique in the register.</param>
    /// <param name="changed">Called with (old, new) after a guest write changed the field's value.</param>
    /// <param name="valueProvider">Called on each guest read (without a register value provider); its result, cut to the field's width, becomes the field's value.</param>
    /// <returns>This register, for chaining.</returns>
    /// <exception cref="ArgumentException">Empty or duplicate name, a field outside the register, overlapping another field, or callbacks on a reserved field.</exception>
    public Register WithField(int position, int width, FieldMode mode, string name,
        Action<ulong, ulong>? changed = null, Func<ulong>? valueProvider = null)
    {
        AddField(position, width, mode, name, changed, valueProvider);
        return this;
    }

    /// <summary>Adds a field and returns a handle on it in <paramref name="field"/>.</summary>
    /// <inheritdoc cref="WithField(int, int, FieldMode, string, Action{ulong, ulong}?, Func{ulong}?)"/>
    public Register WithField(int position, int width, FieldMode mode, string name, out RegisterField field,
        Action<ulong, ulong>? changed = null, Func<ulong>? valueProvider = null)
    {
        field = AddField(position, width, mode, name, changed, valueProvider);
        return this;
    }

    /// <summary>Adds a one-bit field at bit <paramref name="position"/>.</summary>
    /// <param name="position">The bit, from 0.</param>
    /// <param name="mode">How guest accesses treat the flag.</param>
    /// <param name="name">The flag's name, unique in the register.</param>
    /// <param name="changed">Called with (old, new) after a guest write changed the flag.</param>
    /// <param name="valueProvider">Called on each guest read; its result becomes the flag's value.</param>
    /// <returns>This register, for chaining.</returns>
    /// <exception cref="ArgumentException">As for <see cref="WithField(int, int, FieldMode, string, Action{ulong, ulong}?, Func{ulong}?)"/>.</exception>
    public Register WithFlag(int position, FieldMode mode, string name,
        Action<bool, bool>? changed = null, Func<bool>? valueProvider = null)
    {
        AddField(position, 1, mode, name, WrapChanged(changed), WrapProvider(valueProvider));
        return this;
    }

    /// <summary>Adds a one-bit field and returns a handle on it in <paramref name="flag"/>.</summary>
    /// <inheritdoc cref="WithFlag(int, FieldMode, string, Action{bool, bool}?, Func{bool}?)"/>
    public Register WithFlag(int position, FieldMode mode, string name, out RegisterField flag,
        Action<bool, bool>? changed = null, Func<bool>? valueProvider = null)
    {
        flag = AddField(position, 1, mode, name, WrapChanged(changed), WrapProvider(valueProvider));
        return this;
    }

    /// <summary>
    /// Declares <paramref name="width"/> bits from <paramref name="position"/> reserved. Bits no field covers are
    /// reserved anyway; naming them documents the layout and puts them in <see cref="Fields"/>.
    /// </summary>
    /// <returns>This register, for chaining.</returns>
    /// <exception cref="ArgumentException">As for <see cref="WithField(int, int, FieldMode, string, Action{ulong, ulong}?, Func{ulong}?)"/>.</exception>
    public Register WithReservedBits(int position, int width, string name = "RESERVED")
    {
        AddField(position, width, FieldMode.Reserved, UniqueReservedName(name), null, null);
        return this;
    }

    /// <summary>
    /// Makes every guest read return <paramref name="provider"/>'s result (cut to the register's width) instead of
    /// the fields' values; read-to-clear and field value providers then do not apply. Writes still go to the fields.
    /// </summary>
    /// <returns>This register, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="provider"/> is null.</exception>
    /// <exception cref="ArgumentException">The register already has a value provider.</exception>
    public Register WithValueProvider(Func<ulong> provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        if (_valueProvider is not null)
        {
            DeviceThrow.Argument(nameof(provider), $"Register {Describe()} already has a value provider; a register has at most one.");
        }

        _valueProvider = provider;
        return this;
    }

    /// <summary>
    /// Calls <paramref name="afterWrite"/> after every guest write (whether or not anything changed, so doorbells
    /// work), after the field change callbacks, with the value written. For an access narrower than the register the
    /// other bytes are taken from the stored value before the write.
    /// </summary>
    /// <returns>This register, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="afterWrite"/> is null.</exception>
    /// <exception cref="ArgumentException">The register already has a write callback.</exception>
    public Register WithWriteCallback(Action<ulong> afterWrite)
    {
        ArgumentNullException.ThrowIfNull(afterWrite);
        if (_afterWrite is not null)
        {
            DeviceThrow.Argument(nameof(afterWrite), $"Register {Describe()} already has a write callback; a register has at most one.");
        }

        _afterWrite = afterWrite;
        return this;
    }

    /// <summary>
    /// Sets the access sizes the register accepts (by default only its own width). A narrower access must be
    /// aligned to its size within the register: a 64-bit register accepting 4 bytes answers at +0 and +4.
    /// </summary>
    /// <param name="sizes">Each 1, 2, 4 or 8 and at most <see cref="Width"/>; at least one.</param>
    /// <returns>This register, for chaining.</returns>
    /// <exception cref="ArgumentException">No size, or a size that is not 1, 2, 4 or 8 or wider than the register.</exception>
    public Register WithAccessSizes(params ReadOnlySpan<int> sizes)
    {
        if (sizes.IsEmpty)
        {
            DeviceThrow.Argument(nameof(sizes), $"Register {Describe()} needs at least one access size; allowed are 1, 2, 4 or 8 bytes up to its width {Width}.");
        }

        int mask = 0;
        foreach (int size in sizes)
        {
            if (size is not (1 or 2 or 4 or 8) || size > Width)
            {
                DeviceThrow.Argument(nameof(sizes),
                    $"Register {Describe()} cannot accept {size}-byte accesses; allowed are 1, 2, 4 or 8 bytes up to its width {Width}.");
            }

            mask |= 1 << size;
        }

        _accessSizes = mask;
        return this;
    }

    /// <summary>The field called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">The register has no such field.</exception>
    public RegisterField Field(string name)
    {
        foreach (RegisterField f in _fields)
        {
            if (f.Name == name) return f;
        }

        DeviceThrow.Argument(nameof(name),
            $"Register {Describe()} has no field '{name}'; its fields are {(_fields.Count == 0 ? "none" : string.Join(", ", _fields.Select(f => f.Name)))}.");
        return null!;
    }

    /// <summary>Sets <paramref name="field"/> to <paramref name="value"/> (a hardware update; bits above its width are dropped).</summary>
    /// <exception cref="ArgumentException"><paramref name="field"/> belongs to another register.</exception>
    public void SetField(RegisterField field, ulong value)
    {
        ArgumentNullException.ThrowIfNull(field);
        if (field.Register != this)
        {
            DeviceThrow.Argument(nameof(field), $"Field {field} belongs to register {field.Register.Name}, not to {Name}.");
        }

        field.Value = value;
    }

    /// <summary>Sets the field called <paramref name="name"/> (a hardware update).</summary>
    /// <exception cref="ArgumentException">The register has no such field.</exception>
    public void SetField(string name, ulong value) => Field(name).Value = value;

    /// <summary>The stored value of the field called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">The register has no such field.</exception>
    public ulong GetField(string name) => Field(name).Value;

    /// <summary>Returns the register to its reset value; no callback runs.</summary>
    public void Reset() => _value = ResetValue;

    /// <summary>"NAME at 0xOFFSET (N bytes)".</summary>
    public override string ToString() => Describe();

    internal string Describe() => $"{Name} at 0x{Offset:x} ({RegisterMapText.Bytes(Width)})";

    /// <summary>A guest read of <paramref name="size"/> bytes, <paramref name="shift"/> bits into the register.</summary>
    internal ulong Read(int shift, int size)
    {
        ulong full;
        if (_valueProvider is not null)
        {
            full = _valueProvider() & _widthMask;
        }
        else
        {
            RegisterField[] providers = _providerFields;
            for (int i = 0; i < providers.Length; i++)
            {
                RegisterField f = providers[i];
                _value = (_value & ~f.Mask) | ((f.ValueProvider!() << f.Position) & f.Mask);
            }

            full = (_value & _readable) | (ResetValue & _reserved);
            if (_rc != 0)
            {
                _value &= ~(_rc & (RegisterMapText.Ones(size) << shift));
            }
        }

        return (full >> shift) & RegisterMapText.Ones(size);
    }

    /// <summary>A guest write of <paramref name="size"/> bytes, <paramref name="shift"/> bits into the register.</summary>
    internal void Write(int shift, int size, ulong value, ulong accessOffset)
    {
        ulong lanes = RegisterMapText.Ones(size) << shift;
        ulong v = (value & RegisterMapText.Ones(size)) << shift;
        ulong old = _value;
        ulong written = (old & ~(_writable & lanes)) | (v & _writable);
        written &= ~(v & _w1c);
        _value = written;

        ulong badReserved = (v ^ ResetValue) & _reserved & lanes;
        if (badReserved != 0)
        {
            ReportReserved(accessOffset, size, value, badReserved);
        }

        RegisterField[] watchers = _changeFields;
        for (int i = 0; i < watchers.Length; i++)
        {
            RegisterField f = watchers[i];
            ulong before = (old & f.Mask) >> f.Position;
            ulong after = (written & f.Mask) >> f.Position;
            if (before != after)
            {
                f.Changed!(before, after);
            }
        }

        _afterWrite?.Invoke((old & ~lanes) | v);
    }

    private void ReportReserved(ulong accessOffset, int size, ulong value, ulong bits) =>
        _log.Report(_device,
            $"write of 0x{value & RegisterMapText.Ones(size):x} ({RegisterMapText.Bytes(size)}) to {Name} (offset 0x{accessOffset:x}) " +
            $"tries to change reserved bits 0x{bits:x} of the register; they keep their value");

    private RegisterField AddField(int position, int width, FieldMode mode, string name,
        Action<ulong, ulong>? changed, Func<ulong>? valueProvider)
    {
        ArgumentNullException.ThrowIfNull(name);
        int bits = Width * 8;
        if (string.IsNullOrWhiteSpace(name))
        {
            DeviceThrow.Argument(nameof(name), $"A field of register {Describe()} needs a non-empty name.");
        }

        if (!Enum.IsDefined(mode))
        {
            DeviceThrow.Argument(nameof(mode),
                $"Field '{name}' of register {Describe()} has mode {(int)mode}, which is not a FieldMode; allowed are {string.Join(", ", Enum.GetNames<FieldMode>())}.");
        }

        if (position < 0 || width < 1 || position >= bits || width > bits - position)
        {
            DeviceThrow.Argument(nameof(width),
                $"Field '{name}' of register {Describe()} at bit {position} with width {width} does not fit; " +
                $"a field needs a width of at least 1 and must lie within bits 0 to {bits - 1}.");
        }

        foreach (RegisterField other in _fields)
        {
            if (other.Name == name)
            {
                DeviceThrow.Argument(nameof(name), $"Register {Describe()} already has a field '{name}'; field names must be unique in a register.");
            }
        }

        var field = new RegisterField(this, name, position, width, mode, changed, valueProvider);
        foreach (RegisterField other in _fields)
        {
            if ((other.Mask & field.Mask) != 0)
            {
                DeviceThrow.Argument(nameof(position),
                    $"Field {field} overlaps field {other}; each bit of a register belongs to at most one field.");
            }
        }

        if (mode == FieldMode.Reserved && (changed is not null || valueProvider is not null))
        {
            DeviceThrow.Argument(nameof(mode), $"Reserved field {field} cannot have callbacks; reserved bits read their reset value and ignore writes.");
        }

        _fields.Add(field);
        Recompute();
        return field;
    }

    private void Recompute()
    {
        ulong readable = 0, writable = 0, w1c = 0, rc = 0, live = 0;
        var watchers = new List<RegisterField>();
        var providers = new List<RegisterField>();
        foreach (RegisterField f in _fields)
        {
            if (f.Changed is not null) watchers.Add(f);
            if (f.ValueProvider is not null) providers.Add(f);
            switch (f.Mode)
            {
                case FieldMode.ReadOnly: readable |= f.Mask; live |= f.Mask; break;
                case FieldMode.ReadWrite: readable |= f.Mask; writable |= f.Mask; live |= f.Mask; break;
                case FieldMode.WriteOneToClear: readable |= f.Mask; w1c |= f.Mask; live |= f.Mask; break;
                case FieldMode.ReadToClear: readable |= f.Mask; rc |= f.Mask; live |= f.Mask; break;
                case FieldMode.WriteOnly: writable |= f.Mask; live |= f.Mask; break;
            }
        }

        _readable = readable;
        _writable = writable;
        _w1c = w1c;
        _rc = rc;
        _reserved = _widthMask & ~live;
        _changeFields = [.. watchers];
        _providerFields = [.. providers];
    }

    private string UniqueReservedName(string name)
    {
        string candidate = name;
        for (int i = 1; _fields.Exists(f => f.Name == candidate); i++)
        {
            candidate = $"{name}{i}";
        }

        return candidate;
    }

    private static Action<ulong, ulong>? WrapChanged(Action<bool, bool>? changed) =>
        changed is null ? null : (o, n) => changed(o != 0, n != 0);

    private static Func<ulong>? WrapProvider(Func<bool>? provider) =>
        provider is null ? null : () => provider() ? 1UL : 0UL;
}

/// <summary>Small formatting and mask helpers shared by the register classes.</summary>
internal static class RegisterMapText
{
    public static ulong Ones(int size) => size >= 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;

    public static string Bytes(int n) => n == 1 ? "1 byte" : $"{n} bytes";

    /// <summary>"4-byte", "4- or 8-byte", "1-, 2- or 4-byte" from a mask with bit n set for n bytes.</summary>
    public static string Sizes(int mask)
    {
        var sizes = new List<string>(4);
        for (int s = 1; s <= 8; s <<= 1)
        {
            if ((mask & (1 << s)) != 0) sizes.Add(s.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return sizes.Count == 1 ? $"{sizes[0]}-byte" : $"{string.Join("-, ", sizes[..^1])}- or {sizes[^1]}-byte";
    }
}
