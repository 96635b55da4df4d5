using System.Buffers.Binary;
using System.Text;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Platform;

/// <summary>One file of the fw_cfg directory, as the guest sees it.</summary>
/// <param name="Name">The file name (at most 55 bytes of ASCII).</param>
/// <param name="Select">The selector key of the file's contents (0x20 and up, in name order).</param>
/// <param name="Size">The file's size in bytes.</param>
public readonly record struct FwCfgFile(string Name, ushort Select, uint Size);

/// <summary>
/// QEMU's firmware configuration device in its I/O-port form (<c>fw_cfg_io</c>, hw/nvram/fw_cfg.c): a 16-bit selector
/// and an 8-bit data register sharing the two ports 0x510-0x511, and, when the device has a <see cref="DmaPort"/>,
/// the DMA address register at 0x514-0x51B (<see cref="DmaWindow"/>).
/// </summary>
/// <remarks>
/// <para>Port window (QEMU's <c>fw_cfg_comb_mem_ops</c>): a 2-byte write at offset 0 selects the key (little-endian)
/// and resets the data offset to 0; a 1-byte read at either port returns the next byte of the selected item and
/// advances the offset, or 0 once the offset is past the item's end, for a key without an item, and for a key whose
/// entry index (<c>key &amp; 0x3FFF</c>) is beyond the last file slot (the entry is then invalid). Bit 14 of the key
/// (the write channel) is ignored by the lookup, so 0x4000 reads the signature; bit 15 selects the x86 entries.
/// Other accesses are invalid as in QEMU: 2- and 4-byte reads return 0 without advancing, a 2-byte write at 0x511 and
/// wider writes are ignored, and 1-byte writes (the data register) are ignored because QEMU removed write support in
/// 2.4. Invalid accesses and data writes are reported to the <see cref="DeviceLog"/>. Observed on QEMU 7.2.</para>
/// <para>Items hold their bytes exactly as QEMU stores them: numbers added with <see cref="AddUInt16"/>,
/// <see cref="AddUInt32"/> and <see cref="AddUInt64"/> are little-endian; the file directory (key 0x19) is
/// big-endian: a 32-bit count, then per file a 32-bit size, a 16-bit select, 16 reserved bits and a 56-byte
/// NUL-padded name, sized for all 32 slots (2,052 bytes). Files are kept sorted by name (strcmp order, as QEMU does
/// for machine types without legacy ordering) and numbered from key 0x20.</para>
/// <para>DMA (FW_CFG_VERSION_DMA): the register reads "QEMU CFG" in memory order (any aligned 1-, 2- or 4-byte read;
/// unaligned reads return 0). A 4-byte write at offset 0 sets the high half of the descriptor address, at offset 4
/// the low half, which starts the transfer at once (the guest writes both big-endian, as Linux's
/// <c>iowrite32be</c>). The 16-byte descriptor (big-endian <c>control</c>, <c>length</c>, <c>address</c>) is read
/// through the <see cref="DmaPort"/>; SELECT selects <c>control &gt;&gt; 16</c>, then READ copies item bytes to
/// memory (zeros past the item's end), SKIP advances the offset, WRITE fails (no item here is writable), and the
/// result (0, or ERROR) is written back big-endian to the descriptor's control word. Unlike QEMU, which also copies
/// to MMIO, a transfer to memory that is not RAM sets ERROR (the model's DMA reaches RAM only).</para>
/// <para>The port bus splits an access that runs past port 0x511 at the window's end, so <c>IN/OUT</c> of 4 bytes
/// at 0x510 reach this device as a 2-byte access at offset 0 followed by unassigned ports; QEMU hands the whole
/// access to the device, which rejects it (an <c>outl</c> to 0x510 selects here but is ignored by QEMU).</para>
/// </remarks>
public sealed class FwCfg : IMmioDevice
{
    /// <summary>QEMU's FW_CFG_IO_BASE on the pc machine.</summary>
    public const ushort IoBase = 0x510;

    /// <summary>Ports of the selector/data window (FW_CFG_CTL_SIZE).</summary>
    public const int IoPorts = 2;

    /// <summary>First port of the DMA register on the pc machine (FW_CFG_IO_BASE + 4).</summary>
    public const ushort DmaIoBase = 0x514;

    /// <summary>Ports of the DMA register (a 64-bit address).</summary>
    public const int DmaIoPorts = 8;

    private const int EntryCount = FwCfgKeys.FileFirst + FwCfgKeys.FileSlots;
    private const int DirectoryEntrySize = 64;
    private static readonly byte[] DmaSignatureBytes = "QEMU CFG"u8.ToArray();

    private readonly byte[]?[][] _entries = [new byte[]?[EntryCount], new byte[]?[EntryCount]];
    private readonly List<(string Name, byte[] Data)> _files = [];
    private readonly DmaPort? _dma;
    private readonly DeviceLog _log;
    private ushort _current;
    private uint _offset;
    private ulong _dmaAddress;

    /// <summary>
    /// Creates the device with the items every QEMU fw_cfg has (fw_cfg_common_realize and the first machine reset):
    /// the signature "QEMU", ID (1, or 3 with DMA), a zero UUID, NOGRAPHIC 0, BOOT_MENU 0, and the files
    /// "bios-geometry" (empty), "bootorder" (empty: no boot devices) and "etc/boot-fail-wait" (-1 as 32-bit
    /// little-endian). The machine adds its own items (<see cref="PcFwCfg.Create"/> for the pc machine).
    /// </summary>
    /// <param name="dma">The bus-master port for the DMA interface, or null for none (ID then reports 1 and there is no <see cref="DmaWindow"/>).</param>
    /// <param name="log">Where invalid guest accesses are reported; a private log when null.</param>
    public FwCfg(DmaPort? dma = null, DeviceLog? log = null)
    {
        _dma = dma;
        _log = log ?? DeviceLog.Discard;
        if (dma is not null) DmaWindow = new DmaRegister(this);
        AddBytes(FwCfgKeys.Signature, "QEMU"u8);
        AddBytes(FwCfgKeys.Uuid, new byte[16]);
        AddUInt16(FwCfgKeys.NoGraphic, 0);
        AddUInt16(FwCfgKeys.BootMenu, 0);
        AddFile("etc/boot-fail-wait", [0xFF, 0xFF, 0xFF, 0xFF]);
        AddUInt32(FwCfgKeys.Id, FwCfgKeys.VersionTraditional | (dma is null ? 0 : FwCfgKeys.VersionDma));
        AddFile("bootorder", []);
        AddFile("bios-geometry", []);
    }

    /// <inheritdoc />
    public string Name => "fwcfg";

    /// <summary>Any 1- to 4-byte access reaches the device, which applies QEMU's rules itself (see the remarks).</summary>
    public AccessConstraints Valid => new(1, 4, Unaligned: true);

    /// <inheritdoc />
    public AccessConstraints Impl => new(1, 4, Unaligned: true);

    /// <summary>Whether the DMA interface exists (FW_CFG_ID bit 1).</summary>
    public bool DmaEnabled => _dma is not null;

    /// <summary>The DMA address register (8 ports, map it at <see cref="DmaIoBase"/>), or null without DMA.</summary>
    public IMmioDevice? DmaWindow { get; }

    /// <summary>The selected key as the guest wrote it (<see cref="FwCfgKeys.Invalid"/> after selecting a key beyond the last slot).</summary>
    public ushort SelectedKey => _current;

    /// <summary>The offset of the next byte the data register returns.</summary>
    public uint Offset => _offset;

    /// <summary>DMA transfers started (descriptors processed, failed ones included).</summary>
    public long DmaTransfers { get; private set; }

    /// <summary>The files of the directory in key order.</summary>
    public IReadOnlyList<FwCfgFile> Files
        => _files.Select((f, i) => new FwCfgFile(f.Name, (ushort)(FwCfgKeys.FileFirst + i), (uint)f.Data.Length)).ToArray();

    /// <summary>Selects the signature as QEMU's reset does (fw_cfg_reset); the DMA address register is cleared.</summary>
    public void Reset()
    {
        Select(FwCfgKeys.Signature);
        _dmaAddress = 0;
    }

    /// <summary>A copy of the bytes of the item <paramref name="key"/> would select, or null when it has none.</summary>
    public byte[]? GetItem(ushort key) => Entry(key)?.ToArray();

    /// <summary>Adds an item of raw bytes (QEMU's fw_cfg_add_bytes).</summary>
    /// <exception cref="ArgumentException">The key already has an item, is the directory or a file key, or is beyond the last slot.</exception>
    public void AddBytes(ushort key, ReadOnlySpan<byte> data)
    {
        int index = key & FwCfgKeys.EntryMask;
        if (index >= EntryCount)
            DeviceThrow.Argument(nameof(key), $"fw_cfg key 0x{key:x4} is beyond the last entry (0x{EntryCount - 1:x}); keys index entries 0 to 0x{EntryCount - 1:x} (plus 0x8000 for x86 entries).");
        if ((key & FwCfgKeys.ArchLocal) == 0 && index >= FwCfgKeys.FileDir)
            DeviceThrow.Argument(nameof(key), $"fw_cfg key 0x{key:x4} belongs to the file directory; add files with AddFile.");
        int arch = (key & FwCfgKeys.ArchLocal) != 0 ? 1 : 0;
        if (_entries[arch][index] is not null)
            DeviceThrow.Argument(nameof(key), $"fw_cfg key 0x{key:x4} already has an item ({_entries[arch][index]!.Length} bytes); each key holds one item.");
        _entries[arch][index] = data.ToArray();
    }

    /// <summary>Adds a 16-bit little-endian item (fw_cfg_add_i16).</summary>
    /// <exception cref="ArgumentException">As for <see cref="AddBytes"/>.</exception>
    public void AddUInt16(ushort key, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        AddBytes(key, b);
    }

    /// <summary>Adds a 32-bit little-endian item (fw_cfg_add_i32).</summary>
    /// <exception cref="ArgumentException">As for <see cref="AddBytes"/>.</exception>
    public void AddUInt32(ushort key, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        AddBytes(key, b);
    }

    /// <summary>Adds a 64-bit little-endian item (fw_cfg_add_i64).</summary>
    /// <exception cref="ArgumentException">As for <see cref="AddBytes"/>.</exception>
    public void AddUInt64(ushort key, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        AddBytes(key, b);
    }

    /// <summary>Adds a NUL-terminated ASCII string (fw_cfg_add_string).</summary>
    /// <exception cref="ArgumentException">As for <see cref="AddBytes"/>, or the string is not ASCII.</exception>
    public void AddString(ushort key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!Ascii.IsValid(value)) DeviceThrow.Argument(nameof(value), "fw_cfg strings are ASCII.");
        var bytes = new byte[value.Length + 1];
        Encoding.ASCII.GetBytes(value, bytes);
        AddBytes(key, bytes);
    }

    /// <summary>
    /// Adds a file (fw_cfg_add_file): it is inserted in name order, files after it move to the next key, and the
    /// directory is rewritten.
    /// </summary>
    /// <returns>The file's key now (later insertions before it move it).</returns>
    /// <exception cref="ArgumentException">The name is empty, not ASCII, longer than 55 bytes or already used, or all 32 slots are taken.</exception>
    public ushort AddFile(string name, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name.Length >= FwCfgKeys.MaxFilePath || !Ascii.IsValid(name) || name.Contains('\0'))
            DeviceThrow.Argument(nameof(name), $"fw_cfg file name '{name}' is not allowed; 1 to {FwCfgKeys.MaxFilePath - 1} ASCII characters without NUL.");
        if (_files.Count >= FwCfgKeys.FileSlots)
            DeviceThrow.Argument(nameof(name), $"fw_cfg has {FwCfgKeys.FileSlots} file slots and all are taken; '{name}' cannot be added.");
        if (_files.Exists(f => f.Name == name))
            DeviceThrow.Argument(nameof(name), $"duplicate fw_cfg file name: {name}");
        int index = _files.Count;
        while (index > 0 && string.CompareOrdinal(name, _files[index - 1].Name) < 0) index--;
        _files.Insert(index, (name, data.ToArray()));
        RebuildDirectory();
        return (ushort)(FwCfgKeys.FileFirst + index);
    }

    /// <inheritdoc />
    public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
    {
        if (size != 1)
        {
            _log.Report(Name, $"{size}-byte read of port 0x{IoBase + offset:x} ignored (reads 0); the data register is read one byte at a time");
            value = 0;
            return BusStatus.Ok;
        }

        value = ReadDataByte();
        return BusStatus.Ok;
    }

    /// <inheritdoc />
    public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
    {
        if (size == 2 && offset == 0)
        {
            Select((ushort)value);
        }
        else if (size == 1)
        {
            _log.Report(Name, $"write of 0x{value:x2} to the data register (port 0x{IoBase + offset:x}) ignored; fw_cfg items are read-only (QEMU 2.4 removed data writes)");
        }
        else
        {
            _log.Report(Name, $"{size}-byte write of 0x{value:x} to port 0x{IoBase + offset:x} ignored; select a key with a 2-byte write to port 0x{IoBase:x}");
        }

        return BusStatus.Ok;
    }

    private void Select(ushort key)
    {
        _offset = 0;
        _current = (key & FwCfgKeys.EntryMask) >= EntryCount ? FwCfgKeys.Invalid : key;
    }

    private byte[]? Entry(ushort key)
    {
        if (key == FwCfgKeys.Invalid || (key & FwCfgKeys.EntryMask) >= EntryCount) return null;
        return _entries[(key & FwCfgKeys.ArchLocal) != 0 ? 1 : 0][key & FwCfgKeys.EntryMask];
    }

    private byte ReadDataByte()
    {
        byte[]? data = Entry(_current);
        if (data is null || _offset >= (uint)data.Length) return 0;
        return data[_offset++];
    }

    private void RebuildDirectory()
    {
        var dir = new byte[4 + DirectoryEntrySize * FwCfgKeys.FileSlots];
        BinaryPrimitives.WriteUInt32BigEndian(dir, (uint)_files.Count);
        for (int i = 0; i < _files.Count; i++)
        {
            Span<byte> e = dir.AsSpan(4 + i * DirectoryEntrySize, DirectoryEntrySize);
            BinaryPrimitives.WriteUInt32BigEndian(e, (uint)_files[i].Data.Length);
            BinaryPrimitives.WriteUInt16BigEndian(e[4..], (ushort)(FwCfgKeys.FileFirst + i));
            Encoding.ASCII.GetBytes(_files[i].Name, e[8..]);
            _entries[0][FwCfgKeys.FileFirst + i] = _files[i].Data;
        }

        _entries[0][FwCfgKeys.FileDir] = dir;
    }

    // ------------------------------------------------------------------ DMA

    private void DmaTransfer()
    {
        ulong descriptor = _dmaAddress;
        _dmaAddress = 0;
        DmaTransfers++;
        Span<byte> d = stackalloc byte[16];
        DmaResult fetch = _dma!.Read(descriptor, d);
        if (fetch != DmaResult.Ok)
        {
            _log.Report(Name, $"DMA descriptor at 0x{descriptor:x} cannot be read ({fetch}); ERROR written to its control word");
            WriteControl(descriptor, FwCfgKeys.DmaControlError);
            return;
        }

        uint control = BinaryPrimitives.ReadUInt32BigEndian(d);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(d[4..]);
        ulong address = BinaryPrimitives.ReadUInt64BigEndian(d[8..]);
        if ((control & FwCfgKeys.DmaControlSelect) != 0) Select((ushort)(control >> 16));

        bool read = false, write = false;
        if ((control & FwCfgKeys.DmaControlRead) != 0) read = true;
        else if ((control & FwCfgKeys.DmaControlWrite) != 0) write = true;
        else if ((control & FwCfgKeys.DmaControlSkip) == 0) length = 0;

        uint status = 0;
        byte[]? data = Entry(_current);
        while (length > 0 && (status & FwCfgKeys.DmaControlError) == 0)
        {
            uint len;
            if (data is null || _offset >= (uint)data.Length)
            {
                len = length;
                if (read && !ZeroFill(address, len)) status |= FwCfgKeys.DmaControlError;
            }
            else
            {
                len = Math.Min(length, (uint)data.Length - _offset);
                if (read)
                {
                    DmaResult r = _dma.Write(address, data.AsSpan((int)_offset, (int)len));
                    if (r != DmaResult.Ok)
                    {
                        _log.Report(Name, $"DMA read of {len} bytes of key 0x{_current:x4} to 0x{address:x} refused ({r}); ERROR set");
                        status |= FwCfgKeys.DmaControlError;
                    }
                }

                _offset += len;
            }

            if (write)
            {
                _log.Report(Name, $"DMA write to key 0x{_current:x4} refused; no fw_cfg item of this machine is writable; ERROR set");
                status |= FwCfgKeys.DmaControlError;
            }

            address += len;
            length -= len;
        }

        WriteControl(descriptor, status);
    }

    private bool ZeroFill(ulong address, uint length)
    {
        DmaResult check = _dma!.Check(address, length, write: true);
        if (check != DmaResult.Ok)
        {
            _log.Report(Name, $"DMA zero fill of {length} bytes at 0x{address:x} refused ({check}); ERROR set");
            return false;
        }

        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        for (ulong done = 0; done < length;)
        {
            int n = (int)Math.Min((ulong)zeros.Length, length - done);
            _dma.Write(address + done, zeros[..n]);
            done += (ulong)n;
        }

        return true;
    }

    private void WriteControl(ulong descriptor, uint status)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, status);
        _dma!.Write(descriptor, b);
    }

    /// <summary>The DMA address register at <see cref="DmaIoBase"/> (QEMU's <c>fw_cfg_dma_mem_ops</c>, big-endian).</summary>
    private sealed class DmaRegister(FwCfg owner) : IMmioDevice
    {
        public string Name => "fwcfg.dma";

        public AccessConstraints Valid => new(1, 8, Unaligned: true);

        public AccessConstraints Impl => new(1, 8, Unaligned: true);

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            value = 0;
            if ((offset & (ulong)(size - 1)) != 0 || offset + (ulong)size > 8)
            {
                owner._log.Report(Name, $"unaligned {size}-byte read at offset {offset} ignored (reads 0)");
                return BusStatus.Ok;
            }

            // The big-endian signature's bytes in memory order, read little-endian by the CPU: "QEMU" at +0 reads 0x554d4551.
            for (int i = size - 1; i >= 0; i--) value = (value << 8) | DmaSignatureBytes[(int)offset + i];
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            if (size == 4 && offset == 0)
            {
                owner._dmaAddress = (ulong)BinaryPrimitives.ReverseEndianness((uint)value) << 32;
            }
            else if (size == 4 && offset == 4)
            {
                owner._dmaAddress |= BinaryPrimitives.ReverseEndianness((uint)value);
                owner.DmaTransfer();
            }
            else if (size == 8 && offset == 0)
            {
                owner._dmaAddress = BinaryPrimitives.ReverseEndianness(value);
                owner.DmaTransfer();
            }
            else
            {
                owner._log.Report(Name, $"{size}-byte write at offset {offset} ignored; write the descriptor address as two big-endian 32-bit halves at offsets 0 and 4");
            }

            return BusStatus.Ok;
        }
    }
}
