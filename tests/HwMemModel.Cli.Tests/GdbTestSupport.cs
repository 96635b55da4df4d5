using System.Net.Sockets;
using System.Text;
using HwMemModel.Cli;

namespace HwMemModel.Cli.Tests;

/// <summary>A text writer that several threads may write to and one may read while it fills (stderr of an in-process hwmem).</summary>
internal sealed class SharedWriter : TextWriter
{
    private readonly StringBuilder _sb = new();
    public override Encoding Encoding => Encoding.UTF8;
    public override void Write(char value) { lock (_sb) _sb.Append(value); }
    public override void Write(string? value) { lock (_sb) _sb.Append(value); }
    public override void WriteLine(string? value) { lock (_sb) _sb.Append(value).Append('\n'); }
    public override string ToString() { lock (_sb) return _sb.ToString(); }
}

/// <summary><c>hwmem run ... --gdb 0</c> running in-process on its own thread, with the port it printed.</summary>
internal sealed class StubHost : IDisposable
{
    private readonly Thread _thread;
    private int _exit = int.MinValue;

    public SharedWriter Out { get; } = new();
    public SharedWriter Err { get; } = new();
    public int Port { get; }

    private StubHost(string[] args)
    {
        _thread = new Thread(() => _exit = HwmemCommand.Run(args, Out, Err)) { IsBackground = true, Name = "hwmem --gdb" };
        _thread.Start();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        const string marker = "hwmem: GDB stub listening on 127.0.0.1:";
        while (true)
        {
            string err = Err.ToString();
            int i = err.IndexOf(marker, StringComparison.Ordinal);
            int nl = i < 0 ? -1 : err.IndexOf('\n', i);
            if (nl > 0)
            {
                Port = int.Parse(err[(i + marker.Length)..nl], System.Globalization.CultureInfo.InvariantCulture);
                return;
            }
            if (!_thread.IsAlive) throw new InvalidOperationException($"hwmem ended before listening (status {_exit}): {err}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException("hwmem did not print its GDB port: " + err);
            Thread.Sleep(10);
        }
    }

    /// <summary>Starts <c>hwmem run --bios IMAGE --gdb 0 EXTRA...</c>.</summary>
    public static StubHost Start(string image, params string[] extra) => new(["run", "--bios", image, "--gdb", "0", .. extra]);

    /// <summary>Waits for hwmem to return and gives its exit status.</summary>
    public int WaitForExit(int seconds = 60)
    {
        if (!_thread.Join(TimeSpan.FromSeconds(seconds))) throw new TimeoutException("hwmem did not end; stderr: " + Err);
        return _exit;
    }

    public void Dispose()
    {
        // A test that leaves the session open closes the socket through its client; the stub then ends by itself.
        _thread.Join(TimeSpan.FromSeconds(10));
    }
}

/// <summary>A minimal GDB remote-protocol client for tests: framing, checksums and acks, O-packet output.</summary>
internal sealed class RspClient : IDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;

    public RspClient(int port)
    {
        _client = new TcpClient();
        _client.Connect("127.0.0.1", port);
        _client.NoDelay = true;
        _client.ReceiveTimeout = 30_000;
        _stream = _client.GetStream();
    }

    public bool NoAck { get; set; }

    /// <summary>Console output received in O packets since the last request.</summary>
    public StringBuilder Output { get; } = new();

    public static string Frame(string payload)
    {
        int sum = 0;
        foreach (char c in payload) sum += (byte)c;
        return $"${payload}#{sum & 0xFF:x2}";
    }

    public void SendRaw(string text)
    {
        var bytes = Encoding.Latin1.GetBytes(text);
        _stream.Write(bytes);
    }

    public int ReadByte()
    {
        int b = _stream.ReadByte();
        if (b < 0) throw new EndOfStreamException("the stub closed the connection");
        return b;
    }

    /// <summary>Sends a packet and returns its reply, collecting O packets (console output) on the way.</summary>
    public string Request(string payload)
    {
        Output.Clear();
        SendRaw(Frame(payload));
        if (!NoAck)
        {
            int ack = ReadByte();
            if (ack != '+') throw new InvalidOperationException($"expected '+', got '{(char)ack}'");
        }
        return ReadReply();
    }

    /// <summary>Reads the next reply packet, skipping (and collecting) O packets.</summary>
    public string ReadReply()
    {
        while (true)
        {
            string p = ReadPacket();
            if (p.Length > 1 && p[0] == 'O' && p != "OK" && IsHex(p[1..]))
            {
                Output.Append(Encoding.UTF8.GetString(Convert.FromHexString(p[1..])));
                continue;
            }
            return p;
        }
    }

    /// <summary>Reads one packet (acking it unless no-ack mode is on) and checks its checksum.</summary>
    public string ReadPacket()
    {
        int b;
        while ((b = ReadByte()) != '$') { }
        var sb = new StringBuilder();
        while ((b = ReadByte()) != '#') sb.Append((char)b);
        string cs = $"{(char)ReadByte()}{(char)ReadByte()}";
        string payload = sb.ToString();
        if (!Frame(payload).EndsWith(cs, StringComparison.Ordinal)) throw new InvalidOperationException($"bad checksum on '{payload}'");
        if (!NoAck) SendRaw("+");
        return payload;
    }

    /// <summary>Runs a monitor command; returns its output (the final reply must be OK).</summary>
    public string Monitor(string command)
    {
        string reply = Request("qRcmd," + Convert.ToHexStringLower(Encoding.UTF8.GetBytes(command)));
        if (reply != "OK") throw new InvalidOperationException($"monitor '{command}' replied '{reply}'");
        return Output.ToString();
    }

    /// <summary>Reads register <paramref name="n"/> (little-endian hex) as a number.</summary>
    public ulong Register(int n)
    {
        string hex = Request($"p{n:x}");
        var bytes = Convert.FromHexString(hex);
        ulong v = 0;
        for (int i = bytes.Length - 1; i >= 0; i--) v = (v << 8) | bytes[i];
        return v;
    }

    private static bool IsHex(string s) => s.Length % 2 == 0 && s.All(Uri.IsHexDigit);

    public void Dispose() => _client.Dispose();
}
