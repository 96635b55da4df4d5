using System.Buffers.Binary;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;
using HwMemModel.Devices.Virtio;
using R = HwMemModel.Devices.Virtio.VirtioMmioRegister;

namespace HwMemModel.Devices.Tests.Virtio;

/// <summary>One descriptor as the test driver lays it out; <see cref="Next"/> overrides the automatic chaining.</summary>
internal readonly record struct Desc(ulong Addr, uint Len, ushort Flags = 0, ushort? Next = null);

/// <summary>
/// A minimal virtio-mmio driver written from the specification, acting on the bus the way a guest would: 1 MiB of RAM
/// at 0, the device window at <see cref="DeviceBase"/>, the split virtqueue at fixed addresses.
/// </summary>
internal sealed class VirtioTestDriver
{
    public const ulong DeviceBase = 0xFEB0_0000;
    public const ulong RamSize = 0x10_0000;
    public const ulong DescTable = 0x1000;
    public const ulong AvailRing = 0x2000;
    public const ulong UsedRing = 0x3000;
    public const ulong Headers = 0x1_0000;   // 0x20 bytes per request slot
    public const ulong Statuses = 0x1_8000;  // 1 byte per request slot
    public const ulong Data = 0x2_0000;      // 0x2000 bytes per request slot

    public const ulong Version1 = 1UL << VirtioFeature.Version1;

    private ushort _availIdx;
    private ushort _nextDesc;

    public VirtioTestDriver(IBlockBackend disk, string serial = VirtioMmioBlock.DefaultSerial)
    {
        Bus = new PhysicalBus(maxPhysAddrBits: 40, UnmappedPolicy.Zero);
        Bus.AddRam("ram", 0, RamSize);
        Log = new DeviceLog();
        Device = new VirtioMmioBlock(Bus, disk, Log, serial: serial);
        Bus.AddMmio(Device.Name, DeviceBase, VirtioMmio.WindowSize, Device);
        Device.IrqLineChanged += level => IrqEvents.Add(level);
    }

    public PhysicalBus Bus { get; }

    public VirtioMmioBlock Device { get; }

    public DeviceLog Log { get; }

    public List<bool> IrqEvents { get; } = [];

    public int QueueSize { get; private set; }

    public uint Reg(ulong offset) => (uint)Bus.Load(DeviceBase + offset, 4);

    public void SetReg(ulong offset, uint value) => Bus.Store(DeviceBase + offset, value, 4);

    public ulong DeviceFeatures()
    {
        SetReg(R.DeviceFeaturesSel, 0);
        ulong low = Reg(R.DeviceFeatures);
        SetReg(R.DeviceFeaturesSel, 1);
        return low | ((ulong)Reg(R.DeviceFeatures) << 32);
    }

    public void WriteDriverFeatures(ulong features)
    {
        SetReg(R.DriverFeaturesSel, 0);
        SetReg(R.DriverFeatures, (uint)features);
        SetReg(R.DriverFeaturesSel, 1);
        SetReg(R.DriverFeatures, (uint)(features >> 32));
    }

    /// <summary>Reset, ACKNOWLEDGE, DRIVER, features (the device's VERSION_1 plus <paramref name="extra"/> if offered), FEATURES_OK.</summary>
    public bool Negotiate(ulong extra = 0)
    {
        SetReg(R.Status, 0);
        SetReg(R.Status, (uint)VirtioStatus.Acknowledge);
        SetReg(R.Status, (uint)(VirtioStatus.Acknowledge | VirtioStatus.Driver));
        ulong offered = DeviceFeatures();
        WriteDriverFeatures(Version1 | (extra & offered));
        SetReg(R.Status, (uint)(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk));
        return (Reg(R.Status) & (uint)VirtioStatus.FeaturesOk) != 0;
    }

    /// <summary>Clears the ring memory and programs queue 0 with <paramref name="size"/> entries, then QueueReady 1.</summary>
    public void SetUpQueue(int size, ulong desc = DescTable, ulong avail = AvailRing, ulong used = UsedRing)
    {
        QueueSize = size;
        _availIdx = 0;
        _nextDesc = 0;
        if (desc < RamSize)
        {
            Fill(desc, 16 * size, 0);
        }

        if (avail < RamSize)
        {
            Fill(avail, 6 + 2 * size, 0);
        }

        if (used < RamSize)
        {
            Fill(used, 6 + 8 * size, 0);
        }

        SetReg(R.QueueSel, 0);
        Assert.That(Reg(R.QueueNumMax), Is.Not.Zero, "queue 0 exists");
        Assert.That(Reg(R.QueueReady), Is.Zero, "queue 0 not in use yet");
        SetReg(R.QueueNum, (uint)size);
        SetReg(R.QueueDescLow, (uint)desc);
        SetReg(R.QueueDescHigh, (uint)(desc >> 32));
        SetReg(R.QueueDriverLow, (uint)avail);
        SetReg(R.QueueDriverHigh, (uint)(avail >> 32));
        SetReg(R.QueueDeviceLow, (uint)used);
        SetReg(R.QueueDeviceHigh, (uint)(used >> 32));
        SetReg(R.QueueReady, 1);
    }

    public void DriverOk() =>
        SetReg(R.Status, (uint)(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk));

    /// <summary>The whole initialisation of virtio 1.2 section 3.1.1 with queue 0 of <paramref name="queueSize"/> entries.</summary>
    public void Initialise(int queueSize = 8, ulong extraFeatures = 0)
    {
        Assert.That(Negotiate(extraFeatures), Is.True, "FEATURES_OK accepted");
        SetUpQueue(queueSize);
        DriverOk();
    }

    /// <summary>Places a chain in the descriptor table (NEXT links added unless given) and its head in the available ring.</summary>
    public ushort Submit(params Desc[] chain)
    {
        ushort head = _nextDesc;
        for (int i = 0; i < chain.Length; i++)
        {
            ushort index = (ushort)((head + i) % QueueSize);
            Desc d = chain[i];
            ushort flags = d.Flags;
            ushort next = d.Next ?? (ushort)((index + 1) % QueueSize);
            if (d.Next is null && i + 1 < chain.Length)
            {
                flags |= Virtq.DescFlagNext;
            }

            WriteDescriptor(DescTable, index, d.Addr, d.Len, flags, next);
        }

        _nextDesc = (ushort)((head + chain.Length) % QueueSize);
        PublishHead(head);
        return head;
    }

    public void PublishHead(ushort head)
    {
        Store16(AvailRing + 4 + 2 * (ulong)(_availIdx % QueueSize), head);
        _availIdx++;
        Store16(AvailRing + 2, _availIdx);
    }

    public void WriteDescriptor(ulong table, int index, ulong addr, uint len, ushort flags, ushort next)
    {
        Span<byte> d = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(d, addr);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], len);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], next);
        Write(table + 16 * (ulong)index, d);
    }

    public void Notify() => SetReg(R.QueueNotify, 0);

    /// <summary>Writes a request header into slot <paramref name="slot"/> and submits header, data, status as three descriptors.</summary>
    public ushort SubmitRequest(int slot, uint type, ulong sector, uint dataLength, ulong? dataAddr = null)
    {
        ulong header = Headers + 0x20 * (ulong)slot;
        WriteHeader(header, type, sector);
        ulong status = Statuses + (ulong)slot;
        Write(status, [0xFF]);
        ulong data = dataAddr ?? Data + 0x2000 * (ulong)slot;
        bool deviceWrites = type != VirtioBlk.TypeOut;
        if (dataLength == 0)
        {
            return Submit(new Desc(header, 16), new Desc(status, 1, Virtq.DescFlagWrite));
        }

        return Submit(
            new Desc(header, 16),
            new Desc(data, dataLength, deviceWrites ? Virtq.DescFlagWrite : (ushort)0),
            new Desc(status, 1, Virtq.DescFlagWrite));
    }

    /// <summary>Submits, notifies, and returns the status byte of slot <paramref name="slot"/>.</summary>
    public byte Do(int slot, uint type, ulong sector, uint dataLength, ulong? dataAddr = null)
    {
        SubmitRequest(slot, type, sector, dataLength, dataAddr);
        Notify();
        return StatusOf(slot);
    }

    public byte StatusOf(int slot) => (byte)Bus.Load(Statuses + (ulong)slot, 1);

    public ulong DataOf(int slot) => Data + 0x2000 * (ulong)slot;

    public void WriteHeader(ulong at, uint type, ulong sector)
    {
        Span<byte> h = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(h, type);
        BinaryPrimitives.WriteUInt64LittleEndian(h[8..], sector);
        Write(at, h);
    }

    public ushort UsedIdx => (ushort)Bus.Load(UsedRing + 2, 2);

    public (uint Id, uint Len) Used(int n)
    {
        ulong at = UsedRing + 4 + 8 * (ulong)(n % QueueSize);
        return ((uint)Bus.Load(at, 4), (uint)Bus.Load(at + 4, 4));
    }

    public ushort AvailIdx => _availIdx;

    public void Store16(ulong pa, ushort value) => Bus.Store(pa, value, 2);

    public void Write(ulong pa, ReadOnlySpan<byte> bytes) =>
        Assert.That(Bus.WriteBytes(pa, bytes, BusExtensions.Cpu0), Is.EqualTo(BusStatus.Ok));

    public byte[] Read(ulong pa, int length)
    {
        var bytes = new byte[length];
        Assert.That(Bus.ReadBytes(pa, bytes, BusExtensions.Cpu0), Is.EqualTo(BusStatus.Ok));
        return bytes;
    }

    public void Fill(ulong pa, int length, byte value)
    {
        var bytes = new byte[length];
        Array.Fill(bytes, value);
        Write(pa, bytes);
    }

    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        for (int i = 0; i < length; i++)
        {
            bytes[i] = (byte)((i * 31) + seed);
        }

        return bytes;
    }
}
