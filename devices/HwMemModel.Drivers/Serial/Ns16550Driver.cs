using System.Globalization;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using Microsoft.Extensions.Logging;

namespace HwMemModel.Drivers.Serial;

/// <summary>
/// A driver for 16550A UARTs ("ns16550a", "ns16550"), in the manner of Linux's 8250 driver: the registers are reached
/// through an iomap cookie — ioremap of the memory window (with the "reg-shift" spacing) or ioport_map of the ports —
/// and the ioread8/iowrite8 accessors, never the device model. Probe checks the scratch register, programs 115200 8N1
/// with FIFOs, and with an interrupt line takes received bytes in its handler (receive-data and timeout
/// interrupts); without one, reads poll LSR.DR. Writes poll LSR.THRE.
/// </summary>
public sealed class Ns16550Driver : IPlatformDriver
{
    // Register numbers (before the shift) and bits, from the 16550A data sheet.
    internal const int Rbr = 0, Thr = 0, Ier = 1, Iir = 2, Fcr = 2, Lcr = 3, Mcr = 4, Lsr = 5, Scr = 7, Dll = 0, Dlm = 1;
    internal const byte LsrDr = 0x01, LsrThre = 0x20, IirNoInt = 0x01, IerRda = 0x01, LcrDlab = 0x80, Lcr8N1 = 0x03;
    internal const byte FcrEnableClear = 0x07, McrDtrRtsOut2 = 0x0B;
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly IDevresApi _devres;
    private readonly ILogger<Ns16550Driver> _log;

    /// <summary>Creates the driver with the kernel-model services it uses.</summary>
    public Ns16550Driver(IIoMemApi io, IIrqApi irq, IDevresApi devres, ILogger<Ns16550Driver> log)
    {
        _io = io ?? throw new ArgumentNullException(nameof(io));
        _irq = irq ?? throw new ArgumentNullException(nameof(irq));
        _devres = devres ?? throw new ArgumentNullException(nameof(devres));
        _log = log ?? throw new ArgumentNullException(nameof(log));
    }

    /// <inheritdoc />
    public string Name => "serial8250";

    /// <inheritdoc />
    public IReadOnlyList<string> Compatible { get; } = ["ns16550a", "ns16550"];

    /// <summary>The bound ports by device name.</summary>
    public IReadOnlyDictionary<string, UartPort> Ports => _ports;
    private readonly Dictionary<string, UartPort> _ports = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public int Probe(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        int shift = int.TryParse(device.GetProperty("reg-shift", "0"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : 0;
        ulong cookie;
        string where;
        if (device.GetResource(ResourceKind.Memory) is { } mem)
        {
            cookie = _devres.DevmIoRemap(device, mem.Start, mem.Size);
            where = $"MMIO 0x{mem.Start:x}";
        }
        else if (device.GetResource(ResourceKind.Io) is { } io)
        {
            cookie = _io.IoPortMap(io.Start, (uint)io.Size);
            where = $"I/O 0x{io.Start:x}";
        }
        else
        {
            return -Errno.ENODEV;
        }
        if (cookie == 0) return -Errno.ENOMEM;
        var port = new UartPort(device.Name, _io, _irq, cookie, shift);
        // autoconfig: the scratch register must hold what is written (an 8250 without it is not a 16550A).
        port.Out(Scr, 0xA5);
        if (port.In(Scr) != 0xA5)
        {
            _log.LogWarning("{Device}: no UART answers at {Where}", device.Name, where);
            return -Errno.ENODEV;
        }
        port.Out(Ier, 0);
        port.Out(Lcr, LcrDlab);
        port.Out(Dll, 1); // 115200 baud from the 1.8432 MHz clock
        port.Out(Dlm, 0);
        port.Out(Lcr, Lcr8N1);
        port.Out(Fcr, FcrEnableClear);
        port.Out(Mcr, McrDtrRtsOut2);
        int irq = device.GetIrq();
        if (irq >= 0)
        {
            int rc = _devres.DevmRequestIrq(device, irq, port.Interrupt, device.Name, port);
            if (rc != 0) return rc;
            port.Irq = irq;
            port.Out(Ier, IerRda);
        }
        device.DriverData = port;
        _ports[device.Name] = port;
        _log.LogInformation("{Device} at {Where} (irq = {Irq}, base_baud = 115200) is a 16550A", device.Name, where, irq >= 0 ? irq : 0);
        return 0;
    }

    /// <inheritdoc />
    public void Remove(PlatformDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.DriverData is UartPort port)
        {
            port.Out(Ier, 0);
            port.Out(Mcr, 0);
        }
        _ports.Remove(device.Name);
    }
}

/// <summary>One bound 16550A: write and read bytes.</summary>
public sealed class UartPort
{
    private readonly IIoMemApi _io;
    private readonly IIrqApi _irq;
    private readonly ulong _cookie;
    private readonly int _shift;
    private readonly Queue<byte> _rx = new();
    private readonly Completion _rxReady = new();

    internal UartPort(string name, IIoMemApi io, IIrqApi irq, ulong cookie, int shift)
    {
        Name = name;
        _io = io;
        _irq = irq;
        _cookie = cookie;
        _shift = shift;
    }

    /// <summary>The device's name.</summary>
    public string Name { get; }
    /// <summary>The interrupt line, or -1 when polled.</summary>
    public int Irq { get; internal set; } = -1;
    /// <summary>Interrupts this port's handler claimed.</summary>
    public long Interrupts { get; private set; }
    /// <summary>Bytes received so far.</summary>
    public long BytesReceived { get; private set; }

    /// <summary>Transmits <paramref name="data"/>, waiting for THR empty before each byte; returns the count or -ETIMEDOUT.</summary>
    public int Write(ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            if ((In(Ns16550Driver.Lsr) & Ns16550Driver.LsrThre) == 0
                && _irq.PollTimeout(() => (In(Ns16550Driver.Lsr) & Ns16550Driver.LsrThre) != 0, 1_000, 10_000_000) != 0)
                return -Errno.ETIMEDOUT;
            Out(Ns16550Driver.Thr, data[i]);
        }
        return data.Length;
    }

    /// <summary>
    /// Reads up to <paramref name="buffer"/>.Length bytes, waiting up to <paramref name="timeoutNs"/> of guest time for
    /// the first; returns the count (0 on timeout).
    /// </summary>
    public int Read(Span<byte> buffer, long timeoutNs)
    {
        if (Irq < 0) Drain();
        else _irq.HandleInterrupts();
        if (_rx.Count == 0 && buffer.Length > 0)
        {
            if (Irq >= 0)
            {
                _rxReady.Reinit();
                _irq.WaitForCompletionTimeout(_rxReady, timeoutNs);
            }
            else
            {
                _irq.PollTimeout(() => (In(Ns16550Driver.Lsr) & Ns16550Driver.LsrDr) != 0, 10_000, timeoutNs);
                Drain();
            }
        }
        int n = 0;
        while (n < buffer.Length && _rx.Count > 0) buffer[n++] = _rx.Dequeue();
        return n;
    }

    internal IrqReturn Interrupt(int irq, object? devId)
    {
        if ((In(Ns16550Driver.Iir) & Ns16550Driver.IirNoInt) != 0) return IrqReturn.None;
        Drain();
        Interrupts++;
        _rxReady.Complete();
        return IrqReturn.Handled;
    }

    private void Drain()
    {
        for (int guard = 0; guard < 4096 && (In(Ns16550Driver.Lsr) & Ns16550Driver.LsrDr) != 0; guard++)
        {
            _rx.Enqueue(In(Ns16550Driver.Rbr));
            BytesReceived++;
        }
    }

    internal byte In(int reg) => _io.IoRead8(_cookie + ((ulong)reg << _shift));

    internal void Out(int reg, byte value) => _io.IoWrite8(value, _cookie + ((ulong)reg << _shift));
}
