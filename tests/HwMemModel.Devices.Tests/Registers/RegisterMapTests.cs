using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Common.Registers;

namespace HwMemModel.Devices.Tests.Registers;

public sealed class RegisterMapTests
{
    private enum R : ulong
    {
        Control = 0x00,
        Status = 0x04,
        Data = 0x08,
        Wide = 0x10,
        Byte = 0x18,
        Far = 0x2_0000,
    }

    private DeviceLog _log = null!;
    private RegisterMap<R> _map = null!;

    [SetUp]
    public void SetUp()
    {
        _log = new DeviceLog();
        _map = new RegisterMap<R>("dev0", _log);
    }

    private ulong Rd(ulong offset, int size = 4)
    {
        Assert.That(_map.Read(offset, size, out ulong v), Is.EqualTo(BusStatus.Ok));
        return v;
    }

    private void Wr(ulong offset, ulong value, int size = 4) =>
        Assert.That(_map.Write(offset, size, value), Is.EqualTo(BusStatus.Ok));

    // ------------------------------------------------------------ access modes

    [Test]
    public void Read_only_field_shows_the_hardware_value_and_ignores_guest_writes()
    {
        _map.Define(R.Status, 4).WithField(0, 8, FieldMode.ReadOnly, "COUNT", out RegisterField count);
        count.Value = 0x5A;
        Wr(0x04, 0xFF);
        Assert.That(Rd(0x04), Is.EqualTo(0x5AUL));
        Assert.That(count.Value, Is.EqualTo(0x5AUL));
        Assert.That(_log.Entries, Is.Empty, "writes to read-only fields are not reported");
    }

    [Test]
    public void Read_write_field_keeps_the_bits_written_and_nothing_outside_it()
    {
        _map.Define(R.Control, 4).WithField(4, 4, FieldMode.ReadWrite, "MODE", out RegisterField mode);
        Wr(0x00, 0xA0);
        Assert.That(mode.Value, Is.EqualTo(0xAUL));
        Assert.That(Rd(0x00), Is.EqualTo(0xA0UL));
    }

    [Test]
    public void Write_one_to_clear_clears_only_the_bits_written_as_one()
    {
        _map.Define(R.Status, 4).WithField(0, 4, FieldMode.WriteOneToClear, "PENDING", out RegisterField pending);
        pending.Value = 0b1011;
        Wr(0x04, 0b0010);
        Assert.That(Rd(0x04), Is.EqualTo(0b1001UL));
        Wr(0x04, 0);
        Assert.That(Rd(0x04), Is.EqualTo(0b1001UL), "writing 0 changes nothing");
        Wr(0x04, 0xF);
        Assert.That(Rd(0x04), Is.EqualTo(0UL));
    }

    [Test]
    public void Read_to_clear_returns_the_value_once_then_zero_and_ignores_writes()
    {
        _map.Define(R.Status, 4).WithField(0, 8, FieldMode.ReadToClear, "EVENTS", out RegisterField events);
        events.Value = 0x81;
        Wr(0x04, 0x7F);
        Assert.That(events.Value, Is.EqualTo(0x81UL), "writes do not change a read-to-clear field");
        Assert.That(Rd(0x04), Is.EqualTo(0x81UL));
        Assert.That(Rd(0x04), Is.EqualTo(0UL));
    }

    [Test]
    public void Read_to_clear_clears_only_the_bytes_a_narrow_read_covered()
    {
        _map.Define(R.Status, 4).WithField(0, 16, FieldMode.ReadToClear, "EVENTS", out RegisterField events).WithAccessSizes(1, 4);
        events.Value = 0x1234;
        Assert.That(Rd(0x05, 1), Is.EqualTo(0x12UL));
        Assert.That(events.Value, Is.EqualTo(0x0034UL));
    }

    [Test]
    public void Write_only_field_reads_as_zero_but_keeps_the_value_for_the_device()
    {
        _map.Define(R.Data, 4).WithField(0, 32, FieldMode.WriteOnly, "KEY", out RegisterField key);
        Wr(0x08, 0xCAFE_F00D);
        Assert.That(Rd(0x08), Is.EqualTo(0UL));
        Assert.That(key.Value, Is.EqualTo(0xCAFE_F00DUL));
    }

    [Test]
    public void Reserved_field_reads_its_reset_value_and_a_changing_write_is_reported_and_ignored()
    {
        _map.Define(R.Control, 4, "CTRL", resetValue: 0x0000_0100)
            .WithFlag(0, FieldMode.ReadWrite, "EN")
            .WithReservedBits(8, 8);
        Assert.That(Rd(0x00), Is.EqualTo(0x100UL));

        Wr(0x00, 0x0000_0101); // reserved bits written with their reset value: fine
        Assert.That(_log.Entries, Is.Empty);
        Assert.That(Rd(0x00), Is.EqualTo(0x101UL));

        Wr(0x00, 0x0000_0201);
        Assert.That(Rd(0x00), Is.EqualTo(0x101UL), "the reserved byte keeps 0x01, EN stays 1");
        Assert.That(_log.Entries, Has.Count.EqualTo(1));
        Assert.That(_log.Entries[0], Does.StartWith("dev0: write of 0x201 (4 bytes) to CTRL (offset 0x0)"));
        Assert.That(_log.Entries[0], Does.Contain("reserved bits 0x300"), "bits 8 and 9 differ from their reset value");
    }

    [Test]
    public void Bits_no_field_covers_behave_as_reserved()
    {
        _map.Define(R.Control, 4, "CTRL", resetValue: 0x8000_0000).WithFlag(0, FieldMode.ReadWrite, "EN");
        Wr(0x00, 0x0000_0003);
        Assert.That(Rd(0x00), Is.EqualTo(0x8000_0001UL));
        Assert.That(_log.Entries, Has.Count.EqualTo(1));
        Assert.That(_log.Entries[0], Does.Contain("reserved bits 0x80000002"));
    }

    [Test]
    public void A_register_without_fields_reads_its_reset_value()
    {
        _map.Define(R.Data, 4, "ID", resetValue: 0x414D_4448);
        Assert.That(Rd(0x08), Is.EqualTo(0x414D_4448UL));
    }

    // ------------------------------------------------------------ callbacks

    [Test]
    public void Field_change_callback_gets_old_and_new_value_only_when_the_value_changes()
    {
        var calls = new List<(ulong Old, ulong New)>();
        _map.Define(R.Control, 4).WithField(0, 4, FieldMode.ReadWrite, "MODE", (o, n) => calls.Add((o, n)));
        Wr(0x00, 3);
        Wr(0x00, 3);
        Wr(0x00, 5);
        Assert.That(calls, Is.EqualTo(new[] { (0UL, 3UL), (3UL, 5UL) }));
    }

    [Test]
    public void Flag_change_callback_sees_a_write_one_to_clear()
    {
        var calls = new List<(bool Old, bool New)>();
        _map.Define(R.Status, 4).WithFlag(1, FieldMode.WriteOneToClear, "ERR", out RegisterField err, (o, n) => calls.Add((o, n)));
        err.Set();
        Assert.That(calls, Is.Empty, "hardware updates call no callback");
        Wr(0x04, 0x2);
        Assert.That(calls, Is.EqualTo(new[] { (true, false) }));
    }

    [Test]
    public void Register_write_callback_runs_on_every_write_after_the_field_callbacks()
    {
        var order = new List<string>();
        _map.Define(R.Data, 4)
            .WithField(0, 16, FieldMode.ReadWrite, "TAIL", (_, n) => order.Add($"field {n}"))
            .WithWriteCallback(v => order.Add($"register 0x{v:x}"));
        Wr(0x08, 7);
        Wr(0x08, 7);
        Assert.That(order, Is.EqualTo(new[] { "field 7", "register 0x7", "register 0x7" }));
    }

    [Test]
    public void Write_callback_of_a_narrow_write_sees_the_other_bytes_as_they_were()
    {
        ulong seen = 0;
        _map.Define(R.Wide, 8).WithField(0, 64, FieldMode.ReadWrite, "V").WithAccessSizes(4, 8).WithWriteCallback(v => seen = v);
        Wr(0x10, 0x1111_2222_3333_4444, 8);
        Wr(0x14, 0xAAAA_BBBB);
        Assert.That(seen, Is.EqualTo(0xAAAA_BBBB_3333_4444UL));
    }

    [Test]
    public void Field_value_provider_supplies_the_value_read()
    {
        ulong counter = 41;
        _map.Define(R.Status, 4)
            .WithField(0, 8, FieldMode.ReadOnly, "COUNT", valueProvider: () => ++counter)
            .WithFlag(8, FieldMode.ReadWrite, "EN");
        Wr(0x04, 0x100);
        Assert.That(Rd(0x04), Is.EqualTo(0x12AUL));
        Assert.That(Rd(0x04), Is.EqualTo(0x12BUL));
    }

    [Test]
    public void Register_value_provider_overrides_the_fields_and_skips_read_to_clear()
    {
        _map.Define(R.Status, 4)
            .WithField(0, 8, FieldMode.ReadToClear, "EV", out RegisterField ev)
            .WithValueProvider(() => 0xDEAD_BEEF);
        ev.Value = 3;
        Assert.That(Rd(0x04), Is.EqualTo(0xDEAD_BEEFUL));
        Assert.That(ev.Value, Is.EqualTo(3UL));
    }

    // ------------------------------------------------------------ hardware-set fields

    [Test]
    public void Device_code_sets_fields_through_the_map_by_name_or_handle_without_callbacks()
    {
        int calls = 0;
        _map.Define(R.Status, 4)
            .WithFlag(0, FieldMode.WriteOneToClear, "DONE", (_, _) => calls++)
            .WithField(8, 8, FieldMode.ReadOnly, "CODE", out RegisterField code);
        _map[R.Status].SetField("DONE", 1);
        _map[R.Status].SetField(code, 0x1FF); // bits above the width are dropped
        Assert.That(Rd(0x04), Is.EqualTo(0xFF01UL));
        Assert.That(_map[R.Status].GetField("CODE"), Is.EqualTo(0xFFUL));
        Assert.That(calls, Is.Zero);
    }

    [Test]
    public void Reset_restores_every_register_without_callbacks()
    {
        int calls = 0;
        _map.Define(R.Control, 4, resetValue: 0x10).WithField(0, 8, FieldMode.ReadWrite, "V", (_, _) => calls++);
        _map.Define(R.Status, 4).WithField(0, 8, FieldMode.ReadOnly, "S", out RegisterField s);
        Wr(0x00, 0x77);
        s.Value = 9;
        calls = 0;
        _map.Reset();
        Assert.That(Rd(0x00), Is.EqualTo(0x10UL));
        Assert.That(Rd(0x04), Is.EqualTo(0UL));
        Assert.That(calls, Is.Zero);
    }

    // ------------------------------------------------------------ access sizes and undefined offsets

    [Test]
    public void Write_to_an_undefined_offset_is_reported_with_device_offset_size_and_value()
    {
        _map.Define(R.Control, 4).WithField(0, 32, FieldMode.ReadWrite, "V");
        Wr(0x38, 0x1234);
        Assert.That(_log.Entries, Is.EqualTo(new[] { "dev0: write of 0x1234 (4 bytes) to undefined offset 0x38 ignored" }));
    }

    [Test]
    public void Read_of_an_undefined_offset_returns_zero_and_is_reported()
    {
        Assert.That(Rd(0x40, 8), Is.EqualTo(0UL));
        Assert.That(_log.Entries, Is.EqualTo(new[] { "dev0: read of 8 bytes from undefined offset 0x40 returned 0" }));
    }

    [Test]
    public void An_access_size_the_register_does_not_accept_is_reported_and_ignored()
    {
        _map.Define(R.Control, 4, "CTRL").WithField(0, 32, FieldMode.ReadWrite, "V", out RegisterField v);
        Wr(0x00, 0xFFFF, 2);
        Assert.That(v.Value, Is.EqualTo(0UL));
        Assert.That(Rd(0x00, 8), Is.EqualTo(0UL));
        Assert.That(_log.Entries, Has.Count.EqualTo(2));
        Assert.That(_log.Entries[0], Does.StartWith("dev0: write of 0xffff (2 bytes) to offset 0x0 ignored"));
        Assert.That(_log.Entries[0], Does.Contain("CTRL"));
        Assert.That(_log.Entries[0], Does.Contain("4-byte"));
        Assert.That(_log.Entries[1], Does.StartWith("dev0: read of 8 bytes from offset 0x0 returned 0"));
    }

    [Test]
    public void A_64_bit_register_accepting_4_bytes_answers_at_both_halves_but_not_in_between()
    {
        _map.Define(R.Wide, 8, "BASE").WithField(0, 64, FieldMode.ReadWrite, "V").WithAccessSizes(4, 8);
        Wr(0x10, 0x1234_5678);
        Wr(0x14, 0x9ABC_DEF0);
        Assert.That(Rd(0x10, 8), Is.EqualTo(0x9ABC_DEF0_1234_5678UL));
        Assert.That(Rd(0x14), Is.EqualTo(0x9ABC_DEF0UL));
        Assert.That(Rd(0x12), Is.EqualTo(0UL), "a 4-byte access must be 4-byte aligned within the register");
        Assert.That(_log.Entries, Has.Count.EqualTo(1));
        Assert.That(_log.Entries[0], Does.Contain("4- or 8-byte"));
    }

    [Test]
    public void Registers_beyond_64_KiB_work_through_the_sparse_lookup()
    {
        _map.Define(R.Far, 4).WithField(0, 32, FieldMode.ReadWrite, "V");
        Wr(0x2_0000, 0x55);
        Assert.That(Rd(0x2_0000), Is.EqualTo(0x55UL));
        Assert.That(Rd(0x2_0004), Is.EqualTo(0UL));
        Assert.That(_log.Entries, Has.Count.EqualTo(1));
    }

    [Test]
    public void Guest_accesses_never_throw_whatever_the_offset_size_or_value()
    {
        _map.Define(R.Control, 4).WithField(0, 32, FieldMode.ReadWrite, "V");
        _map.Define(R.Wide, 8).WithField(0, 64, FieldMode.ReadWrite, "V").WithAccessSizes(1, 2, 4, 8);
        _map.Define(R.Byte, 1).WithField(0, 8, FieldMode.WriteOneToClear, "V");
        var random = new Random(1234);
        Assert.DoesNotThrow(() =>
        {
            foreach (int size in new[] { 0, 1, 2, 3, 4, 5, 8, 9, 16, -1 })
            {
                foreach (ulong offset in new ulong[] { 0, 1, 3, 0x10, 0x13, 0x17, 0x18, 0x19, 0xFFFF, 0x1_0000, ulong.MaxValue })
                {
                    _map.Read(offset, size, out _);
                    _map.Write(offset, size, (ulong)random.NextInt64());
                }
            }
        });
    }

    // ------------------------------------------------------------ host misuse while defining

    [Test]
    public void A_width_other_than_1_2_4_or_8_is_refused_with_the_allowed_widths()
    {
        var e = Assert.Throws<ArgumentException>(() => _map.Define(R.Control, 3, "CTRL"));
        Assert.That(e!.Message, Does.Contain("width 3").And.Contain("1, 2, 4 or 8"));
    }

    [Test]
    public void A_duplicate_offset_is_refused()
    {
        _map.Define(R.Control, 4, "CTRL");
        var e = Assert.Throws<ArgumentException>(() => _map.Define(R.Control, 4, "AGAIN"));
        Assert.That(e!.Message, Does.Contain("AGAIN").And.Contain("overlaps").And.Contain("CTRL"));
    }

    [Test]
    public void A_register_overlapping_a_wider_one_is_refused()
    {
        _map.Define(R.Data, 8, "BIG");
        var e = Assert.Throws<ArgumentException>(() => _map.Define((R)0x0C, 4, "INSIDE"));
        Assert.That(e!.Message, Does.Contain("INSIDE").And.Contain("BIG").And.Contain("may not share bytes"));
    }

    [Test]
    public void An_offset_not_a_multiple_of_the_width_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => _map.Define((R)0x04, 8, "MIS"));
        Assert.That(e!.Message, Does.Contain("0x4").And.Contain("multiple of 8"));
    }

    [Test]
    public void A_reset_value_wider_than_the_register_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => _map.Define(R.Byte, 1, "B", resetValue: 0x100));
        Assert.That(e!.Message, Does.Contain("0x100").And.Contain("8 bits"));
    }

    [Test]
    public void A_field_past_the_register_width_is_refused_with_the_allowed_bits()
    {
        Register r = _map.Define(R.Control, 4, "CTRL");
        var e = Assert.Throws<ArgumentException>(() => r.WithField(30, 3, FieldMode.ReadWrite, "WIDE"));
        Assert.That(e!.Message, Does.Contain("WIDE").And.Contain("bits 0 to 31"));
        Assert.Throws<ArgumentException>(() => r.WithField(0, 0, FieldMode.ReadWrite, "EMPTY"));
        Assert.Throws<ArgumentException>(() => r.WithField(-1, 2, FieldMode.ReadWrite, "NEG"));
    }

    [Test]
    public void Overlapping_fields_are_refused_naming_both()
    {
        Register r = _map.Define(R.Control, 4, "CTRL").WithField(0, 5, FieldMode.ReadWrite, "LOW");
        var e = Assert.Throws<ArgumentException>(() => r.WithField(4, 4, FieldMode.ReadOnly, "HIGH"));
        Assert.That(e!.Message, Does.Contain("HIGH").And.Contain("LOW").And.Contain("at most one field"));
    }

    [Test]
    public void A_duplicate_field_name_and_an_unknown_field_name_are_refused()
    {
        Register r = _map.Define(R.Control, 4, "CTRL").WithFlag(0, FieldMode.ReadWrite, "EN");
        Assert.Throws<ArgumentException>(() => r.WithFlag(1, FieldMode.ReadWrite, "EN"));
        var e = Assert.Throws<ArgumentException>(() => r.SetField("NOPE", 1));
        Assert.That(e!.Message, Does.Contain("NOPE").And.Contain("EN"));
    }

    [Test]
    public void An_access_size_wider_than_the_register_is_refused()
    {
        Register r = _map.Define(R.Control, 4, "CTRL");
        var e = Assert.Throws<ArgumentException>(() => r.WithAccessSizes(4, 8));
        Assert.That(e!.Message, Does.Contain("8-byte").And.Contain("up to its width 4"));
    }

    [Test]
    public void Asking_the_map_for_an_undefined_register_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => _ = _map[R.Status]);
        Assert.That(e!.Message, Does.Contain("0x4"));
    }

    [Test]
    public void A_field_handle_of_another_register_is_refused()
    {
        _map.Define(R.Control, 4).WithFlag(0, FieldMode.ReadWrite, "A", out RegisterField a);
        Register other = _map.Define(R.Status, 4);
        Assert.Throws<ArgumentException>(() => other.SetField(a, 1));
    }

    [Test]
    public void Default_register_name_is_the_enum_member_name()
    {
        Assert.That(_map.Define(R.Status, 4).Name, Is.EqualTo("Status"));
    }
}
