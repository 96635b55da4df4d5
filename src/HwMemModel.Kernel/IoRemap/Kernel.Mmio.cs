using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Kernel;

/// <content>
/// MMIO accessors (arch/x86/include/asm/io.h, lib/iomap.c, arch/x86/lib/iomem.c): each is one supervisor access of its
/// width by the current CPU through its MMU and TLB, so a device sees exactly one access of that width (the bus
/// splits or widens only what the device's own constraints require). A translation fault is a kernel oops
/// (<see cref="KernelStopException"/>) with the report <see cref="KernelMemory"/> gives; a device or decode error is
/// not a fault: a read returns what the bus returned (all ones from a device that refuses) and a write is dropped, as
/// on a PC.
/// </content>
public sealed partial class Kernel
{
    private const ulong PioOffset = 0x10000, PioReserved = 0x40000, PioMask = 0xFFFF;
    private int _badIoReports = 10;
    private PortBus? _ports;

    /// <summary>readb: one 8-bit read.</summary>
    public byte ReadB(ulong address) => (byte)MmioRead(address, 1);
    /// <summary>readw: one 16-bit read.</summary>
    public ushort ReadW(ulong address) => (ushort)MmioRead(address, 2);
    /// <summary>readl: one 32-bit read.</summary>
    public uint ReadL(ulong address) => (uint)MmioRead(address, 4);
    /// <summary>readq: one 64-bit read.</summary>
    public ulong ReadQ(ulong address) => MmioRead(address, 8);

    /// <summary>writeb: one 8-bit write.</summary>
    public void WriteB(byte value, ulong address) => MmioWrite(address, 1, value);
    /// <summary>writew: one 16-bit write.</summary>
    public void WriteW(ushort value, ulong address) => MmioWrite(address, 2, value);
    /// <summary>writel: one 32-bit write.</summary>
    public void WriteL(uint value, ulong address) => MmioWrite(address, 4, value);
    /// <summary>writeq: one 64-bit write.</summary>
    public void WriteQ(ulong value, ulong address) => MmioWrite(address, 8, value);

    /// <summary>ioread8 on an MMIO cookie (an ioremap address): one 8-bit read. Port-I/O cookies are not modelled and are reported as bad IO access.</summary>
    public byte IoRead8(ulong address) => (byte)IoCookieRead(address, 1, "ioread8");
    /// <summary>ioread16: one 16-bit read.</summary>
    public ushort IoRead16(ulong address) => (ushort)IoCookieRead(address, 2, "ioread16");
    /// <summary>ioread32: one 32-bit read.</summary>
    public uint IoRead32(ulong address) => (uint)IoCookieRead(address, 4, "ioread32");
    /// <summary>ioread64: one 64-bit read.</summary>
    public ulong IoRead64(ulong address) => IoCookieRead(address, 8, "ioread64");

    /// <summary>iowrite8: one 8-bit write.</summary>
    public void IoWrite8(byte value, ulong address) => IoCookieWrite(address, 1, value, "iowrite8");
    /// <summary>iowrite16: one 16-bit write.</summary>
    public void IoWrite16(ushort value, ulong address) => IoCookieWrite(address, 2, value, "iowrite16");
    /// <summary>iowrite32: one 32-bit write.</summary>
    public void IoWrite32(uint value, ulong address) => IoCookieWrite(address, 4, value, "iowrite32");
    /// <summary>iowrite64: one 64-bit write.</summary>
    public void IoWrite64(ulong value, ulong address) => IoCookieWrite(address, 8, value, "iowrite64");

    /// <summary>
    /// memcpy_fromio into a host buffer, as x86's string_memcpy_fromio: a byte read if the source is odd, a word read
    /// if it is then not 4-aligned, dword reads (rep movsl), then a trailing word and byte.
    /// </summary>
    public void MemcpyFromIo(Span<byte> destination, ulong from)
    {
        int n = destination.Length, i = 0;
        if (n == 0) return;
        if ((from & 1) != 0) { destination[i++] = (byte)MmioRead(from++, 1); n--; }
        if (n > 1 && (from & 2) != 0) { Put(destination, ref i, MmioRead(from, 2), 2); from += 2; n -= 2; }
        for (; n >= 4; n -= 4, from += 4) Put(destination, ref i, MmioRead(from, 4), 4);
        if ((n & 2) != 0) { Put(destination, ref i, MmioRead(from, 2), 2); from += 2; }
        if ((n & 1) != 0) destination[i] = (byte)MmioRead(from, 1);
    }

    /// <summary>memcpy_fromio into kernel memory at <paramref name="to"/> (written through the MMU).</summary>
    public void MemcpyFromIo(ulong to, ulong from, ulong count)
    {
        var buffer = new byte[checked((int)count)];
        MemcpyFromIo(buffer, from);
        Memory.WriteBytes(to, buffer);
    }

    /// <summary>
    /// memcpy_toio from a host buffer, as x86's string_memcpy_toio: a byte write if the destination is odd, a word
    /// write if it is then not 4-aligned, dword writes, then a trailing word and byte.
    /// </summary>
    public void MemcpyToIo(ulong to, ReadOnlySpan<byte> source)
    {
        int n = source.Length, i = 0;
        if (n == 0) return;
        if ((to & 1) != 0) { MmioWrite(to++, 1, source[i++]); n--; }
        if (n > 1 && (to & 2) != 0) { MmioWrite(to, 2, Get(source, ref i, 2)); to += 2; n -= 2; }
        for (; n >= 4; n -= 4, to += 4) MmioWrite(to, 4, Get(source, ref i, 4));
        if ((n & 2) != 0) { MmioWrite(to, 2, Get(source, ref i, 2)); to += 2; }
        if ((n & 1) != 0) MmioWrite(to, 1, source[i]);
    }

    /// <summary>memcpy_toio from kernel memory at <paramref name="from"/> (read through the MMU).</summary>
    public void MemcpyToIo(ulong to, ulong from, ulong count)
    {
        var buffer = new byte[checked((int)count)];
        Memory.ReadBytes(from, buffer);
        MemcpyToIo(to, buffer);
    }

    /// <summary>memset_io as lib/iomem_copy.c does it: byte writes up to 8-byte alignment, qword writes, trailing byte writes.</summary>
    public void MemsetIo(ulong address, byte value, ulong count)
    {
        ulong q = value * 0x0101_0101_0101_0101UL;
        while (count > 0 && (address & 7) != 0) { MmioWrite(address++, 1, value); count--; }
        for (; count >= 8; count -= 8, address += 8) MmioWrite(address, 8, q);
        for (; count > 0; count--) MmioWrite(address++, 1, value);
    }

    private static void Put(Span<byte> d, ref int i, ulong v, int size)
    {
        for (int b = 0; b < size; b++) d[i++] = (byte)(v >> (8 * b));
    }

    private static ulong Get(ReadOnlySpan<byte> s, ref int i, int size)
    {
        ulong v = 0;
        for (int b = 0; b < size; b++) v |= (ulong)s[i++] << (8 * b);
        return v;
    }

    private ulong IoCookieRead(ulong address, int size, string what)
    {
        if (address >= PioReserved) return MmioRead(address, size);
        // lib/iomap.c: cookies from PIO_OFFSET up to PIO_RESERVED are port numbers (ioport_map), 64-bit excluded.
        if (address >= PioOffset && size <= 4 && _ports is not null) return PortRead((ushort)(address & PioMask), size);
        BadIoAccess(address, what);
        return size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1;
    }

    private void IoCookieWrite(ulong address, int size, ulong value, string what)
    {
        if (address >= PioReserved) MmioWrite(address, size, value);
        else if (address >= PioOffset && size <= 4 && _ports is not null) PortWrite((ushort)(address & PioMask), size, (uint)value);
        else BadIoAccess(address, what);
    }

    /// <summary>The machine's x86 I/O ports, once attached (<see cref="AttachPortBus"/>).</summary>
    public PortBus? Ports => _ports;

    /// <summary>Connects the machine's port bus so that inb/outb and ioport_map cookies reach devices.</summary>
    /// <exception cref="InvalidOperationException">A port bus is already attached.</exception>
    public void AttachPortBus(PortBus ports)
    {
        ArgumentNullException.ThrowIfNull(ports);
        if (_ports is not null) throw new InvalidOperationException("A port bus is already attached to this kernel.");
        _ports = ports;
    }

    /// <summary>ioport_map: a cookie for ioread*/iowrite* on ports [<paramref name="port"/>, +<paramref name="count"/>), or 0 when the range passes 0xFFFF.</summary>
    public ulong IoPortMap(ulong port, uint count)
        => port > PioMask || port + count - 1 > PioMask || count == 0 ? 0 : PioOffset + port;

    /// <summary>inb: one 8-bit port read (all ones without a port bus or a device).</summary>
    public byte Inb(ushort port) => (byte)PortRead(port, 1);
    /// <summary>inw: one 16-bit port read.</summary>
    public ushort Inw(ushort port) => (ushort)PortRead(port, 2);
    /// <summary>inl: one 32-bit port read.</summary>
    public uint Inl(ushort port) => (uint)PortRead(port, 4);
    /// <summary>outb: one 8-bit port write.</summary>
    public void Outb(byte value, ushort port) => PortWrite(port, 1, value);
    /// <summary>outw: one 16-bit port write.</summary>
    public void Outw(ushort value, ushort port) => PortWrite(port, 2, value);
    /// <summary>outl: one 32-bit port write.</summary>
    public void Outl(uint value, ushort port) => PortWrite(port, 4, value);

    private ulong PortRead(ushort port, int size)
    {
        if (_ports is null) return size == 4 ? uint.MaxValue : (1UL << (size * 8)) - 1;
        _ports.Read(port, size, out uint v, BusAttributes.Cpu(CurrentCpuIndex));
        return v;
    }

    private void PortWrite(ushort port, int size, uint value)
        => _ports?.Write(port, size, value, BusAttributes.Cpu(CurrentCpuIndex));

    // lib/iomap.c bad_io_access: reported for the first ten bad cookies.
    private void BadIoAccess(ulong address, string what)
    {
        ulong port = address >= PioOffset ? address & PioMask : address;
        if (_badIoReports > 0)
        {
            _badIoReports--;
            Log.Print($"Bad IO access at port 0x{port:x} ({what})");
        }
    }

    private ulong MmioRead(ulong address, int size)
    {
        var r = CurrentCpu.Mmu.Read(address, size, Privilege.Supervisor, out ulong value);
        if (r.Fault.IsFault) MmioOops(r.Fault, address, AccessKind.Read);
        return value;
    }

    private void MmioWrite(ulong address, int size, ulong value)
    {
        var r = CurrentCpu.Mmu.Write(address, size, value, Privilege.Supervisor);
        if (r.Fault.IsFault) MmioOops(r.Fault, address, AccessKind.Write);
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void MmioOops(Fault f, ulong va, AccessKind kind)
    {
        string what = f.Kind == FaultKind.PageFault
            ? $"BUG: unable to handle page fault for address: {f.Address:x16}\n#PF: supervisor {(kind == AccessKind.Write ? "write" : "read")} access in kernel mode\n"
              + $"#PF: error_code(0x{(uint)f.ErrorCode:x4}) - {((f.ErrorCode & PageFaultErrorCode.Present) != 0 ? "permissions violation" : "not-present page")}"
            : $"general protection fault, probably for non-canonical address 0x{va:x16}";
        throw new KernelStopException(what + "\n" + CurrentCpu.Mmu.Explain(va, kind, Privilege.Supervisor));
    }
}
