using System.Buffers.Binary;
using HwMemModel.Bus;
using HwMemModel.Devices.Common;

namespace HwMemModel.Devices.Misc;

/// <summary>
/// QEMU's <c>pc-testdev</c> (hw/misc/pc-testdev.c), the ISA test device kvm-unit-tests expects beside isa-debug-exit.
/// It has fixed addresses and three windows, each an <see cref="IMmioDevice"/>:
/// <list type="bullet">
/// <item><see cref="Ports"/>, ports 0xE0-0xEB: a 32-bit latch read back as written. 0xE0-0xE3 ("pc-testdev-ioport")
/// and 0xE8-0xEB ("pc-testdev-ioport-byte", which QEMU serves one byte at a time) both reach the same latch: an access
/// of n bytes at port p reads or replaces bytes (p &amp; 3) to (p &amp; 3) + n - 1 of it. 0xE4-0xE7
/// ("pc-testdev-flush-page") takes only 4-byte accesses: a write names a guest page QEMU unmaps and maps again on the
/// host (nothing a guest can see; the model counts it in <see cref="FlushCount"/>), a read returns 0.</item>
/// <item><see cref="IrqPorts"/>, ports 0x2000-0x2017 ("pc-testdev-irq-line"): a 1-byte write of v to 0x2000 + n
/// sets ISA interrupt line n to (v != 0), driving GSI n of the PIC pair and the I/O APIC; 1-byte reads return 0.
/// QEMU 7.2 has ISA lines 0-15 only: a write to 0x2010-0x2017 fails an assertion in isa_get_irq and aborts the
/// emulator, so the model stops the machine with exit status 134 (128 + SIGABRT, what a shell sees) and says why.</item>
/// <item><see cref="IoMem"/>, 64 KiB of memory at 0xFF000000 ("pc-testdev-iomem"), zero at start: reads and writes
/// of 1 to 8 bytes at any offset copy bytes as memory does (QEMU's TCG splits unaligned MMIO accesses into aligned
/// loads and byte stores, which gives the same bytes).</item>
/// </list>
/// Accesses QEMU rejects (observed on QEMU 7.2 with a probe firmware): on the latch ports an access not aligned to
/// its size (a 2-byte read at 0xE1, a 4-byte read at 0xE2) reads 0 and a write is ignored; on 0xE4 anything but an
/// aligned 4-byte access; on the IRQ ports anything but a 1-byte access. Rejected accesses are reported to the
/// <see cref="DeviceLog"/>. The device never throws for guest input and keeps no time.
/// </summary>
public sealed class PcTestdev
{
    /// <summary>First port of the latch and flush ports.</summary>
    public const ushort PortBase = 0xE0;

    /// <summary>Ports 0xE0-0xEB: latch (4), flush page (4), byte-wise latch (4).</summary>
    public const int PortCount = 12;

    /// <summary>First port of the IRQ lines.</summary>
    public const ushort IrqPortBase = 0x2000;

    /// <summary>Ports of the IRQ window (QEMU registers 24).</summary>
    public const int IrqPortCount = 24;

    /// <summary>ISA interrupt lines QEMU 7.2 has (ISA_NUM_IRQS).</summary>
    public const int IsaIrqCount = 16;

    /// <summary>Physical base of the memory window.</summary>
    public const ulong IoMemBase = 0xFF00_0000;

    /// <summary>Size of the memory window (IOMEM_LEN, 64 KiB).</summary>
    public const int IoMemSize = 0x1_0000;

    /// <summary>The exit status QEMU's abort gives a shell: 128 + SIGABRT (6).</summary>
    public const int AbortExitStatus = 134;

    private readonly byte[] _iomem = new byte[IoMemSize];
    private readonly Action<int, bool>? _setIrq;
    private readonly StopRequest? _stop;
    private readonly DeviceLog _log;
    private uint _latch;

    /// <summary>Creates the device.</summary>
    /// <param name="setIsaIrq">Sets ISA line n (0-15) to a level; lines are not driven when null.</param>
    /// <param name="stop">Receives the stop QEMU's abort corresponds to (a write to lines 16-23); only reported when null.</param>
    /// <param name="log">Where rejected accesses are reported; a private log when null.</param>
    public PcTestdev(Action<int, bool>? setIsaIrq = null, StopRequest? stop = null, DeviceLog? log = null)
    {
        _setIrq = setIsaIrq;
        _stop = stop;
        _log = log ?? DeviceLog.Discard;
        Ports = new PortWindow(this);
        IrqPorts = new IrqWindow(this);
        IoMem = new MemoryWindow(this);
    }

    /// <summary>The device's name (QEMU's type name).</summary>
    public string Name => "pc-testdev";

    /// <summary>Ports 0xE0-0xEB (map <see cref="PortCount"/> ports at <see cref="PortBase"/>).</summary>
    public IMmioDevice Ports { get; }

    /// <summary>Ports 0x2000-0x2017 (map <see cref="IrqPortCount"/> ports at <see cref="IrqPortBase"/>).</summary>
    public IMmioDevice IrqPorts { get; }

    /// <summary>The memory window (map <see cref="IoMemSize"/> bytes at <see cref="IoMemBase"/>).</summary>
    public IMmioDevice IoMem { get; }

    /// <summary>The latch behind ports 0xE0-0xE3 and 0xE8-0xEB.</summary>
    public uint Latch => _latch;

    /// <summary>The memory window's bytes.</summary>
    public ReadOnlySpan<byte> Memory => _iomem;

    /// <summary>4-byte writes to port 0xE4 so far.</summary>
    public long FlushCount { get; private set; }

    /// <summary>The page address (value &amp; ~0xFFF) of the last write to port 0xE4, or null before the first.</summary>
    public ulong? LastFlushedPage { get; private set; }

    /// <summary>The level each ISA line was last set to through the IRQ ports (bit n for line n).</summary>
    public uint IrqLevels { get; private set; }

    /// <summary>Maps the three windows at QEMU's addresses.</summary>
    /// <exception cref="ArgumentException">A window overlaps something already mapped.</exception>
    public void Map(PortBus ports, PhysicalBus memory)
    {
        DeviceThrow.NotNull(ports, nameof(ports), Name);
        DeviceThrow.NotNull(memory, nameof(memory), Name);
        ports.Add(Name, PortBase, PortCount, Ports);
        ports.Add("pc-testdev-irq-line", IrqPortBase, IrqPortCount, IrqPorts);
        memory.AddMmio("pc-testdev-iomem", IoMemBase, IoMemSize, IoMem);
    }

    private static uint Mask(int size, int startBit) => (uint.MaxValue >> (32 - size * 8)) << startBit;

    private sealed class PortWindow(PcTestdev owner) : IMmioDevice
    {
        public string Name => "pc-testdev";

        public AccessConstraints Valid => new(1, 4, Unaligned: true);

        public AccessConstraints Impl => new(1, 4, Unaligned: true);

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            value = 0;
            if (!Accepted(offset, size, isWrite: false, 0)) return BusStatus.Ok;
            if (offset is >= 4 and < 8) return BusStatus.Ok; // flush page: reads 0
            int start = (int)(offset & 3) * 8;
            value = (owner._latch & Mask(size, start)) >> start;
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            if (!Accepted(offset, size, isWrite: true, value)) return BusStatus.Ok;
            if (offset is >= 4 and < 8)
            {
                owner.FlushCount++;
                owner.LastFlushedPage = value & ~0xFFFUL & 0xFFFF_FFFFUL;
                return BusStatus.Ok;
            }

            int start = (int)(offset & 3) * 8;
            uint mask = Mask(size, start);
            owner._latch = (owner._latch & ~mask) | ((uint)(value << start) & mask);
            return BusStatus.Ok;
        }

        private bool Accepted(ulong offset, int size, bool isWrite, ulong value)
        {
            bool flush = offset is >= 4 and < 8;
            bool ok = (offset & (ulong)(size - 1)) == 0 && (!flush || size == 4);
            if (!ok)
            {
                owner._log.Report(Name, $"{size}-byte {(isWrite ? $"write of 0x{value:x} to" : "read of")} port 0x{PortBase + offset:x} ignored " +
                    (flush ? "(port 0xe4 takes aligned 4-byte accesses only)" : "(accesses must be aligned to their size)"));
            }

            return ok;
        }
    }

    private sealed class IrqWindow(PcTestdev owner) : IMmioDevice
    {
        public string Name => "pc-testdev-irq-line";

        public AccessConstraints Valid => new(1, 4, Unaligned: true);

        public AccessConstraints Impl => new(1, 4, Unaligned: true);

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            value = 0;
            if (size != 1) owner._log.Report(Name, $"{size}-byte read of port 0x{IrqPortBase + offset:x} ignored (1-byte accesses only)");
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            ulong port = IrqPortBase + offset;
            if (size != 1)
            {
                owner._log.Report(Name, $"{size}-byte write of 0x{value:x} to port 0x{port:x} ignored (1-byte accesses only)");
                return BusStatus.Ok;
            }

            int line = (int)offset;
            bool level = (value & 0xFF) != 0;
            if (line >= IsaIrqCount)
            {
                string reason = $"pc-testdev: write of 0x{value & 0xFF:x} to port 0x{port:x} (ISA IRQ {line}): QEMU 7.2 aborts here " +
                    $"(isa_get_irq: Assertion `isairq < ISA_NUM_IRQS' failed; ISA has lines 0-15), exit status {AbortExitStatus}";
                owner._log.Report(Name, reason["pc-testdev: ".Length..]);
                owner._stop?.Request(AbortExitStatus, reason);
                return BusStatus.Ok;
            }

            owner.IrqLevels = level ? owner.IrqLevels | (1u << line) : owner.IrqLevels & ~(1u << line);
            owner._setIrq?.Invoke(line, level);
            return BusStatus.Ok;
        }
    }

    private sealed class MemoryWindow(PcTestdev owner) : IMmioDevice
    {
        public string Name => "pc-testdev-iomem";

        public AccessConstraints Valid => AccessConstraints.Any;

        public AccessConstraints Impl => AccessConstraints.Any;

        public BusStatus Read(ulong offset, int size, out ulong value, BusAttributes attributes)
        {
            Span<byte> bytes = stackalloc byte[8];
            bytes.Clear();
            if (offset < IoMemSize)
            {
                int n = (int)Math.Min((ulong)size, IoMemSize - offset);
                owner._iomem.AsSpan((int)offset, n).CopyTo(bytes);
            }

            value = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            return BusStatus.Ok;
        }

        public BusStatus Write(ulong offset, int size, ulong value, BusAttributes attributes)
        {
            if (offset >= IoMemSize) return BusStatus.Ok;
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
            int n = (int)Math.Min((ulong)size, IoMemSize - offset);
            bytes[..n].CopyTo(owner._iomem.AsSpan((int)offset));
            return BusStatus.Ok;
        }
    }
}
