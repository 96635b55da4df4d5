namespace HwMemModel.Devices.Common.Registers;

/// <summary>
/// How the guest sees one field of a <see cref="Register"/>. Device code can always set any field through
/// <see cref="RegisterField.Value"/> (a "hardware-set" field such as a status bit); the mode only governs guest reads
/// and writes.
/// </summary>
public enum FieldMode : byte
{
    /// <summary>Reads return the field's value; guest writes are ignored (silently).</summary>
    ReadOnly = 0,

    /// <summary>Reads return the field's value; guest writes store the bits written.</summary>
    ReadWrite = 1,

    /// <summary>Reads return the field's value; a guest write of 1 to a bit clears it, a 0 leaves it (status bits).</summary>
    WriteOneToClear = 2,

    /// <summary>Reads return the field's value and then clear the bits read; guest writes are ignored.</summary>
    ReadToClear = 3,

    /// <summary>Reads return 0; guest writes store the bits written (visible to device code and callbacks).</summary>
    WriteOnly = 4,

    /// <summary>
    /// Reads return the register's reset value in these bits; guest writes are ignored, and a write that tries to
    /// change a reserved bit (write a value other than its reset value) is reported to the <see cref="DeviceLog"/>.
    /// Bits of a register that no field covers behave the same way.
    /// </summary>
    Reserved = 5,
}
