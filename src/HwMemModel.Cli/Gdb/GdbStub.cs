using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using HwMemModel.Cpu;

namespace HwMemModel.Cli.Gdb;

/// <summary>
/// A GDB remote stub for the CPU model (<c>hwmem run --gdb PORT</c>): listens on 127.0.0.1, waits for one GDB
/// connection and speaks the remote serial protocol for i386:x86-64 — registers, memory by virtual address through
/// the MMU as a debugger (no TLB fill, no A/D update), software and hardware breakpoints checked before each
/// instruction without patching guest memory, single step, continue with Ctrl-C, and <c>monitor</c> commands that
/// show the MMU's view (walk, ptdump, tlb). When no breakpoint is set, continue runs the unchanged run loop in
/// slices of <see cref="PollInterval"/> instructions and looks for Ctrl-C between slices.
/// </summary>
public static class GdbStub
{
    /// <summary>Exit status when GDB closed the connection without killing or detaching.</summary>
    public const int ExitConnectionLost = 10;
    /// <summary>Instructions run between two checks of the socket for Ctrl-C (and for a closed connection).</summary>
    public const int PollInterval = 1 << 20;
    /// <summary>The largest packet the stub accepts, as advertised in qSupported (PacketSize, hex 0x4000).</summary>
    public const int PacketSize = 0x4000;
    /// <summary>The number of hardware breakpoints (DR0-DR3).</summary>
    public const int HardwareBreakpoints = 4;

    /// <summary>
    /// Listens on 127.0.0.1:<paramref name="port"/> (0 picks a free port), prints
    /// "hwmem: GDB stub listening on 127.0.0.1:PORT" on <paramref name="stderr"/>, serves one GDB session and returns the
    /// exit status: the guest's (through <paramref name="exitStatus"/>, also sent to GDB as <c>W xx</c>) when it ends by
    /// itself or after a detach, 0 after a kill, <see cref="ExitConnectionLost"/> when GDB went away, and
    /// <see cref="HwmemCommand.ExitUsage"/> when the port cannot be opened.
    /// </summary>
    /// <param name="cpu">The processor to debug (its machine is set up and reset).</param>
    /// <param name="port">The TCP port, 0 to 65535.</param>
    /// <param name="maxInstructions">The instruction budget of the whole session (as --max-instructions).</param>
    /// <param name="stderr">Where the stub's messages go.</param>
    /// <param name="exitStatus">Maps the run's end to the process exit status (and prints its report).</param>
    /// <param name="flush">Flushes guest output (called whenever the guest stops).</param>
    public static int Serve(X86Cpu cpu, int port, long maxInstructions, TextWriter stderr, Func<RunResult, int> exitStatus, Action? flush = null)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        ArgumentNullException.ThrowIfNull(stderr);
        ArgumentNullException.ThrowIfNull(exitStatus);
        TcpListener listener;
        try
        {
            listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start(1);
        }
        catch (Exception e) when (e is SocketException or ArgumentOutOfRangeException)
        {
            stderr.WriteLine($"hwmem run: cannot listen on 127.0.0.1:{port} for GDB: {e.Message}");
            return HwmemCommand.ExitUsage;
        }
        Socket socket;
        try
        {
            int actual = ((IPEndPoint)listener.LocalEndpoint).Port;
            stderr.WriteLine($"hwmem: GDB stub listening on 127.0.0.1:{actual}");
            stderr.Flush();
            socket = listener.AcceptSocket();
        }
        catch (SocketException e)
        {
            stderr.WriteLine($"hwmem run: waiting for GDB failed: {e.Message}");
            return ExitConnectionLost;
        }
        finally
        {
            listener.Stop();
        }
        stderr.WriteLine($"hwmem: GDB connected from {socket.RemoteEndPoint}");
        stderr.Flush();
        using var connection = new GdbConnection(socket);
        return new GdbSession(cpu, connection, maxInstructions, stderr, exitStatus, flush).Serve();
    }
}

/// <summary>One GDB session: the packet dispatcher and the run control.</summary>
internal sealed class GdbSession(X86Cpu cpu, GdbConnection conn, long maxInstructions, TextWriter stderr, Func<RunResult, int> exitStatus, Action? flush)
{
    private const string ThreadId = "1";
    private readonly HashSet<ulong> _software = [];
    private readonly HashSet<ulong> _hardware = [];
    private readonly long _start = cpu.InstructionsRetired;
    private string _lastStop = $"T05thread:{ThreadId};";

    /// <summary>The value of <see cref="X86Cpu.InstructionsRetired"/> at which the budget runs out.</summary>
    private long Budget => maxInstructions > long.MaxValue - _start ? long.MaxValue : _start + maxInstructions;
    private long Retired => cpu.InstructionsRetired - _start;

    private string Where()
        => cpu.Bitness == 64 ? $"RIP 0x{cpu.Rip:x}" : $"{cpu.GetSegment(SegmentIndex.CS).Selector:x4}:{cpu.Rip:x}";

    /// <summary>Serves packets until the guest ends, GDB kills or detaches, or the connection closes.</summary>
    public int Serve()
    {
        while (true)
        {
            var kind = conn.Receive(out string packet);
            switch (kind)
            {
                case GdbInputKind.Closed:
                    flush?.Invoke();
                    stderr.WriteLine($"hwmem run: GDB closed the connection; the guest stopped at {Where()} after {Retired} instructions");
                    return GdbStub.ExitConnectionLost;
                case GdbInputKind.Interrupt:
                    continue; // already stopped
                case GdbInputKind.Malformed:
                    if (!conn.Send("E01")) goto case GdbInputKind.Closed;
                    continue;
            }
            int? end;
            string? reply;
            try
            {
                reply = Dispatch(packet, out end);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A defect of the stub must not take the host down: GDB gets an error, the user a note.
                stderr.WriteLine($"hwmem: GDB stub: error handling packet '{Shorten(packet)}': {e.GetType().Name}: {e.Message}");
                reply = "E01";
                end = null;
            }
            if (reply is not null && !conn.Send(reply) && end is null)
            {
                flush?.Invoke();
                stderr.WriteLine($"hwmem run: GDB closed the connection; the guest stopped at {Where()} after {Retired} instructions");
                return GdbStub.ExitConnectionLost;
            }
            if (end is int status) return status;
        }
    }

    private static string Shorten(string s) => s.Length > 60 ? s[..60] + "..." : s;

    /// <summary>Handles one packet; returns the reply (null for none) and sets <paramref name="end"/> when the session is over.</summary>
    private string? Dispatch(string p, out int? end)
    {
        end = null;
        if (p.Length == 0) return "";
        switch (p[0])
        {
            case '?': return _lastStop;
            case 'g': return ReadAllRegisters();
            case 'G': return WriteAllRegisters(p[1..]);
            case 'p': return ReadRegister(p[1..]);
            case 'P': return WriteRegister(p[1..]);
            case 'm': return ReadMemory(p[1..]);
            case 'M': return WriteMemory(p[1..]);
            case 'X': return WriteMemoryBinary(p[1..]);
            case 'Z': return Breakpoint(p[1..], insert: true);
            case 'z': return Breakpoint(p[1..], insert: false);
            case 'H': return p.Length >= 2 && p[1] is 'g' or 'c' && IsOurThread(p[2..]) ? "OK" : "E22";
            case 'T': return IsOurThread(p[1..]) ? "OK" : "E22";
            case 'c':
            case 's':
            {
                if (p.Length > 1)
                {
                    if (!TryHex(p[1..], out ulong addr)) return "E01";
                    cpu.Rip = addr;
                }
                return ResumeAndReply(step: p[0] == 's', out end);
            }
            case 'C':
            case 'S':
            {
                // Cxx[;addr]: the signal is meaningless for a bare machine and is ignored.
                int semi = p.IndexOf(';');
                if (semi > 0)
                {
                    if (!TryHex(p[(semi + 1)..], out ulong addr)) return "E01";
                    cpu.Rip = addr;
                }
                return ResumeAndReply(step: p[0] == 'S', out end);
            }
            case 'k':
                end = Kill();
                return null;
            case 'D':
                conn.Send("OK");
                end = Detach();
                return null;
            case 'q': return Query(p);
            case 'Q':
                if (p == "QStartNoAckMode")
                {
                    conn.Send("OK");
                    conn.NoAck = true;
                    return null;
                }
                return "";
            case 'v': return VPacket(p, out end);
            default: return "";
        }
    }

    private static bool IsOurThread(string id) => id is "" or "0" or "-1" or "1" or "01" or "p1.1" or "p1.-1" or "p1.0";

    // ------------------------------------------------------------------ queries

    private string Query(string p)
    {
        if (p.StartsWith("qSupported", StringComparison.Ordinal))
            return $"PacketSize={GdbStub.PacketSize:x};qXfer:features:read+;swbreak+;hwbreak+;vContSupported+;QStartNoAckMode+";
        if (p.StartsWith("qXfer:features:read:", StringComparison.Ordinal)) return FeaturesRead(p["qXfer:features:read:".Length..]);
        if (p.StartsWith("qRcmd,", StringComparison.Ordinal)) return Monitor(p["qRcmd,".Length..]);
        return p switch
        {
            "qC" => "QC" + ThreadId,
            "qfThreadInfo" => "m" + ThreadId,
            "qsThreadInfo" => "l",
            "qAttached" or "qAttached:1" => "1",
            "qSymbol::" => "OK",
            _ when p.StartsWith("qAttached:", StringComparison.Ordinal) => "1",
            _ => "",
        };
    }

    private static string FeaturesRead(string args)
    {
        // ANNEX:OFFSET,LENGTH
        int colon = args.LastIndexOf(':');
        if (colon < 0) return "E00";
        string annex = args[..colon];
        if (!TryParsePair(args[(colon + 1)..], ',', out ulong offset, out ulong length)) return "E00";
        if (annex != "target.xml") return "E00";
        string xml = GdbRegisters.TargetXml;
        if (offset >= (ulong)xml.Length) return "l";
        int len = (int)Math.Min(length, Math.Min((ulong)(xml.Length - (int)offset), GdbStub.PacketSize / 2));
        string chunk = xml.Substring((int)offset, len);
        return ((int)offset + len >= xml.Length ? "l" : "m") + Escape(chunk);
    }

    private string Monitor(string hex)
    {
        if (!TryDecodeHex(hex, out byte[] bytes)) return "E01";
        string command = Encoding.UTF8.GetString(bytes);
        string output = GdbMonitor.Execute(cpu, command);
        for (int i = 0; i < output.Length; i += 1024)
        {
            string part = output.Substring(i, Math.Min(1024, output.Length - i));
            if (!conn.Send("O" + ToHex(Encoding.UTF8.GetBytes(part)))) return "E01";
        }
        return "OK";
    }

    // ------------------------------------------------------------------ registers

    private string ReadAllRegisters()
    {
        var sb = new StringBuilder();
        for (int n = 0; n < GdbRegisters.Count; n++) GdbRegisters.AppendHex(sb, cpu, n);
        return sb.ToString();
    }

    private string WriteAllRegisters(string hex)
    {
        int pos = 0;
        bool ok = true;
        for (int n = 0; n < GdbRegisters.Count && pos < hex.Length; n++)
        {
            int chars = 2 * GdbRegisters.Size(n);
            if (pos + chars > hex.Length) return "E01";
            string part = hex.Substring(pos, chars);
            pos += chars;
            if (part.Contains('x')) continue; // unavailable: leave it alone
            if (!TryDecodeHex(part, out byte[] bytes)) return "E01";
            ok &= GdbRegisters.Write(cpu, n, bytes);
        }
        return ok ? "OK" : "E01";
    }

    private string ReadRegister(string args)
    {
        if (!TryHex(args, out ulong n) || n >= (ulong)GdbRegisters.Count) return "E45";
        var sb = new StringBuilder();
        GdbRegisters.AppendHex(sb, cpu, (int)n);
        return sb.ToString();
    }

    private string WriteRegister(string args)
    {
        int eq = args.IndexOf('=');
        if (eq < 0 || !TryHex(args[..eq], out ulong n) || n >= (ulong)GdbRegisters.Count) return "E45";
        if (!TryDecodeHex(args[(eq + 1)..], out byte[] bytes) || bytes.Length != GdbRegisters.Size((int)n)) return "E01";
        return GdbRegisters.Write(cpu, (int)n, bytes) ? "OK" : "E01";
    }

    // ------------------------------------------------------------------ memory (virtual addresses, debugger accesses)

    private string ReadMemory(string args)
    {
        if (!TryParsePair(args, ',', out ulong addr, out ulong length)) return "E01";
        int len = (int)Math.Min(length, GdbStub.PacketSize / 2);
        var buf = new byte[len];
        int n = cpu.DebugReadLinear(addr, buf);
        if (n == 0 && len > 0) return "E14";
        return ToHex(buf.AsSpan(0, n));
    }

    private string WriteMemory(string args)
    {
        int colon = args.IndexOf(':');
        if (colon < 0 || !TryParsePair(args[..colon], ',', out ulong addr, out ulong length)) return "E01";
        if (!TryDecodeHex(args[(colon + 1)..], out byte[] bytes) || (ulong)bytes.Length != length) return "E01";
        return bytes.Length == 0 || cpu.DebugWriteLinear(addr, bytes) ? "OK" : "E14";
    }

    private string WriteMemoryBinary(string args)
    {
        int colon = args.IndexOf(':');
        if (colon < 0 || !TryParsePair(args[..colon], ',', out ulong addr, out ulong length)) return "E01";
        var bytes = Unescape(args.AsSpan(colon + 1));
        if ((ulong)bytes.Length != length) return "E01";
        return bytes.Length == 0 || cpu.DebugWriteLinear(addr, bytes) ? "OK" : "E14";
    }

    // ------------------------------------------------------------------ breakpoints and run control

    private string Breakpoint(string args, bool insert)
    {
        // TYPE,ADDR,KIND[;cond...]
        int semi = args.IndexOf(';');
        if (semi >= 0) args = args[..semi];
        var parts = args.Split(',');
        if (parts.Length < 2 || !TryHex(parts[1], out ulong addr)) return "E01";
        HashSet<ulong> table;
        switch (parts[0])
        {
            case "0": table = _software; break;
            case "1": table = _hardware; break;
            default: return ""; // watchpoints are not supported
        }
        if (!insert)
        {
            table.Remove(addr);
            return "OK";
        }
        if (table == _hardware && !_hardware.Contains(addr) && _hardware.Count >= GdbStub.HardwareBreakpoints) return "E28";
        table.Add(addr);
        return "OK";
    }

    private string? VPacket(string p, out int? end)
    {
        end = null;
        if (p == "vCont?") return "vCont;c;C;s;S";
        if (p.StartsWith("vCont;", StringComparison.Ordinal))
        {
            // Actions in order, each [action][:thread]; with one thread the first one applies.
            string action = p["vCont;".Length..].Split(';')[0];
            int colon = action.IndexOf(':');
            if (colon >= 0)
            {
                if (!IsOurThread(action[(colon + 1)..])) return "E22";
                action = action[..colon];
            }
            if (action.Length == 0) return "E01";
            return action[0] switch
            {
                'c' or 'C' => ResumeAndReply(step: false, out end),
                's' or 'S' => ResumeAndReply(step: true, out end),
                't' => "OK",
                _ => "E01",
            };
        }
        if (p.StartsWith("vKill", StringComparison.Ordinal))
        {
            conn.Send("OK");
            end = Kill();
            return null;
        }
        return ""; // vMustReplyEmpty and everything unsupported
    }

    /// <summary>Runs (one instruction, or until a breakpoint, Ctrl-C, the end or the budget) and returns the stop reply.</summary>
    private string? ResumeAndReply(bool step, out int? end)
    {
        end = null;
        bool closed = false;
        RunResult? r;
        if (Budget - cpu.InstructionsRetired <= 0) r = BudgetExhausted();
        else if (step) r = cpu.Run(1);
        else r = Continue(out closed);
        flush?.Invoke();
        if (r is null && closed)
        {
            stderr.WriteLine($"hwmem run: GDB closed the connection; the guest stopped at {Where()} after {Retired} instructions");
            end = GdbStub.ExitConnectionLost;
            return null;
        }
        if (r is null) return _lastStop = $"T02thread:{ThreadId};"; // Ctrl-C
        if (r.Kind == StopKind.Breakpoint)
        {
            string why = _software.Contains(cpu.Rip) ? "swbreak:;" : "hwbreak:;";
            return _lastStop = $"T05{why}thread:{ThreadId};";
        }
        if (step && r.Kind == StopKind.InstructionLimit && r.Instructions > 0 && !ReferenceEquals(r, _exhausted))
            return _lastStop = $"T05thread:{ThreadId};";
        end = Ended(r);
        return null;
    }

    /// <summary>Runs in slices of <see cref="GdbStub.PollInterval"/>; null when Ctrl-C arrived or the connection closed between slices.</summary>
    private RunResult? Continue(out bool closed)
    {
        closed = false;
        bool first = true;
        while (true)
        {
            long remaining = Budget - cpu.InstructionsRetired;
            if (remaining <= 0) return BudgetExhausted();
            long slice = Math.Min(GdbStub.PollInterval, remaining);
            RunResult r;
            if (_software.Count == 0 && _hardware.Count == 0) r = cpu.Run(slice);
            else r = cpu.RunToBreakpoint(_software.Concat(_hardware), slice, ignoreBreakpointAtStart: first);
            first = false;
            if (r.Kind != StopKind.InstructionLimit) return r;
            if (conn.PollInterrupt(out closed) || closed) return null;
        }
    }

    private RunResult? _exhausted;

    private RunResult BudgetExhausted()
        => _exhausted = new(StopKind.InstructionLimit, Retired, $"instruction limit reached after {Retired} instructions; next instruction at {Where()}");

    /// <summary>The guest ended (or the budget ran out): the process status goes to GDB as W xx and ends the session.</summary>
    private int Ended(RunResult r)
    {
        var total = r.Kind == StopKind.InstructionLimit ? BudgetExhausted() : r with { Instructions = Retired };
        int status = exitStatus(total);
        if (r.Kind is not (StopKind.StopRequested or StopKind.TripleFault))
            conn.Send("O" + ToHex(Encoding.UTF8.GetBytes($"hwmem: {total.Report}\n")));
        conn.Send($"W{status & 0xFF:x2}");
        return status;
    }

    private int Kill()
    {
        flush?.Invoke();
        stderr.WriteLine($"hwmem run: killed by GDB at {Where()} after {Retired} instructions");
        return 0;
    }

    private int Detach()
    {
        stderr.WriteLine($"hwmem: GDB detached at {Where()} after {Retired} instructions; the guest runs on");
        conn.Dispose();
        long remaining = Budget - cpu.InstructionsRetired;
        var r = remaining <= 0 ? BudgetExhausted() : cpu.Run(remaining);
        flush?.Invoke();
        var total = r.Kind == StopKind.InstructionLimit ? BudgetExhausted() : r with { Instructions = Retired };
        return exitStatus(total);
    }

    // ------------------------------------------------------------------ encoding helpers

    private static bool TryHex(string s, out ulong value)
        => ulong.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value) && s.Length > 0;

    private static bool TryParsePair(string s, char separator, out ulong a, out ulong b)
    {
        b = 0;
        int i = s.IndexOf(separator);
        if (i < 0) { a = 0; return false; }
        return TryHex(s[..i], out a) & TryHex(s[(i + 1)..], out b);
    }

    private static bool TryDecodeHex(string hex, out byte[] bytes)
    {
        bytes = [];
        if ((hex.Length & 1) != 0) return false;
        try
        {
            bytes = Convert.FromHexString(hex);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static string ToHex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    private static string Escape(string data)
    {
        var sb = new StringBuilder(data.Length);
        foreach (char c in data)
        {
            if (c is '#' or '$' or '}' or '*') sb.Append('}').Append((char)(c ^ 0x20));
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static byte[] Unescape(ReadOnlySpan<char> data)
    {
        var bytes = new List<byte>(data.Length);
        for (int i = 0; i < data.Length; i++)
        {
            char c = data[i];
            if (c == '}' && i + 1 < data.Length) bytes.Add((byte)(data[++i] ^ 0x20));
            else bytes.Add((byte)c);
        }
        return bytes.ToArray();
    }
}
