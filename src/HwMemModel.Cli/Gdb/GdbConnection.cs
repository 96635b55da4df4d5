using System.Net.Sockets;
using System.Text;

namespace HwMemModel.Cli.Gdb;

/// <summary>What <see cref="GdbConnection.Receive"/> got.</summary>
internal enum GdbInputKind
{
    /// <summary>A packet with a valid checksum (or any packet in no-ack mode).</summary>
    Packet,
    /// <summary>The interrupt byte 0x03 (Ctrl-C in GDB).</summary>
    Interrupt,
    /// <summary>A packet that could not be used (bad checksum in no-ack mode, oversized): the caller replies with an error.</summary>
    Malformed,
    /// <summary>The connection closed.</summary>
    Closed,
}

/// <summary>
/// The framing layer of the GDB remote serial protocol over a TCP socket: <c>$payload#cs</c> packets with a modulo-256
/// checksum, <c>+</c>/<c>-</c> acknowledgements until <c>QStartNoAckMode</c>, and the out-of-band interrupt byte 0x03.
/// Payloads are Latin-1 strings (one char per byte), so binary data (the X packet) passes through unchanged.
/// </summary>
internal sealed class GdbConnection : IDisposable
{
    /// <summary>The largest packet accepted (bytes of payload); the stub advertises a smaller PacketSize.</summary>
    public const int MaxPacket = 1 << 20;

    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[1 << 16];
    private int _pos, _len;
    private bool _closed;

    public GdbConnection(Socket socket)
    {
        _socket = socket;
        _socket.NoDelay = true;
    }

    /// <summary>Whether acknowledgements are off (after QStartNoAckMode).</summary>
    public bool NoAck { get; set; }

    /// <summary>An interrupt byte arrived while a reply was waiting for its acknowledgement.</summary>
    public bool PendingInterrupt { get; set; }

    /// <summary>Raw bytes exchanged, for debugging the stub ("&lt;-" received, "-&gt;" sent); null when off.</summary>
    public TextWriter? Log { get; set; }

    /// <summary>Blocks until a packet, an interrupt byte or the end of the connection arrives.</summary>
    public GdbInputKind Receive(out string payload)
    {
        payload = "";
        while (true)
        {
            int b = ReadByte();
            if (b < 0) return GdbInputKind.Closed;
            if (b == 0x03) return GdbInputKind.Interrupt;
            if (b != '$') continue; // acks outside a send, noise
            var data = new StringBuilder();
            bool oversized = false;
            while (true)
            {
                b = ReadByte();
                if (b < 0) return GdbInputKind.Closed;
                if (b == '#') break;
                if (data.Length < MaxPacket) data.Append((char)b);
                else oversized = true;
            }
            int h = ReadByte(), l = ReadByte();
            if (h < 0 || l < 0) return GdbInputKind.Closed;
            payload = data.ToString();
            Log?.WriteLine($"<- ${(payload.Length > 200 ? payload[..200] + "..." : payload)}");
            bool checksumOk = TryHex(h, out int hv) && TryHex(l, out int lv) && ((hv << 4) | lv) == Checksum(payload);
            if (!NoAck)
            {
                if (!checksumOk) { SendRaw("-"); continue; } // GDB sends the packet again
                SendRaw("+");
            }
            if (oversized || !checksumOk) return GdbInputKind.Malformed;
            return GdbInputKind.Packet;
        }
    }

    /// <summary>Sends one packet and, in ack mode, waits for its <c>+</c> (resending on <c>-</c>, at most 10 times).</summary>
    /// <returns>False when the connection closed.</returns>
    public bool Send(string payload)
    {
        string framed = "$" + payload + "#" + Checksum(payload).ToString("x2");
        Log?.WriteLine($"-> {(framed.Length > 200 ? framed[..200] + "..." : framed)}");
        for (int attempt = 0; attempt < 10; attempt++)
        {
            if (!SendRaw(framed)) return false;
            if (NoAck) return true;
            while (true)
            {
                int b = ReadByte();
                if (b < 0) return false;
                if (b == '+') return true;
                if (b == '-') break;
                if (b == 0x03) PendingInterrupt = true;
                else if (b == '$')
                {
                    // GDB sent a packet instead of an ack (it gave up on this reply): put it back and move on.
                    _pos--;
                    return true;
                }
            }
        }
        return true;
    }

    /// <summary>
    /// Without blocking: true when the interrupt byte arrived (other bytes are kept for <see cref="Receive"/>).
    /// Sets <paramref name="closed"/> when the peer closed the connection.
    /// </summary>
    public bool PollInterrupt(out bool closed)
    {
        closed = false;
        if (PendingInterrupt) { PendingInterrupt = false; return true; }
        try
        {
            if (!_closed && (_pos > 0 || _len < _buffer.Length) && _socket.Poll(0, SelectMode.SelectRead))
            {
                if (_socket.Available == 0) { closed = true; _closed = true; return false; }
                Fill();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            closed = true;
            _closed = true;
            return false;
        }
        if (_closed && _pos == _len) { closed = true; return false; }
        for (int i = _pos; i < _len; i++)
        {
            if (_buffer[i] != 0x03) continue;
            // Drop the interrupt byte, keep the rest in order.
            Array.Copy(_buffer, i + 1, _buffer, i, _len - i - 1);
            _len--;
            return true;
        }
        return false;
    }

    /// <summary>The modulo-256 sum of the payload bytes.</summary>
    public static int Checksum(string payload)
    {
        int sum = 0;
        foreach (char c in payload) sum += (byte)c;
        return sum & 0xFF;
    }

    private static bool TryHex(int c, out int v)
    {
        v = c switch { >= '0' and <= '9' => c - '0', >= 'a' and <= 'f' => c - 'a' + 10, >= 'A' and <= 'F' => c - 'A' + 10, _ => -1 };
        return v >= 0;
    }

    private int ReadByte()
    {
        if (_pos == _len && !Fill()) return -1;
        return _buffer[_pos++];
    }

    private bool Fill()
    {
        if (_closed) return false;
        if (_pos == _len) _pos = _len = 0;
        if (_len == _buffer.Length)
        {
            Array.Copy(_buffer, _pos, _buffer, 0, _len - _pos);
            _len -= _pos;
            _pos = 0;
        }
        int n;
        try
        {
            n = _socket.Receive(_buffer, _len, _buffer.Length - _len, SocketFlags.None);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            n = 0;
        }
        if (n <= 0) { _closed = true; return false; }
        _len += n;
        return true;
    }

    private bool SendRaw(string s)
    {
        try
        {
            var bytes = Encoding.Latin1.GetBytes(s);
            int sent = 0;
            while (sent < bytes.Length) sent += _socket.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _closed = true;
            return false;
        }
    }

    public void Dispose()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        _socket.Dispose();
    }
}
