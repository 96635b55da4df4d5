using System.Diagnostics;
using HwMemModel.Firmware;
using Iced.Intel;

namespace HwMemModel.Cli.Tests;

/// <summary>
/// The stub against the real thing: Debian's <c>gdb</c> in batch mode connects to <c>hwmem run --gdb</c> on the
/// <c>hello</c> image, reads RIP and memory, stops at a breakpoint on the first long-mode instruction, single-steps
/// and kills the guest. Ignored when gdb is not installed.
/// </summary>
[NonParallelizable]
public sealed class GdbBatchTests
{
    private const ulong Entry64 = 0xF_0000;

    private static string? FindGdb()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir, "gdb");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    [Test]
    public void Gdb_reads_registers_and_memory_stops_at_a_breakpoint_and_single_steps()
    {
        string? gdb = FindGdb();
        if (gdb is null) Assert.Ignore("gdb not found; install gdb (apt-get install -y gdb) to run the GDB stub test against a real GDB.");

        string dir = Path.Combine(Path.GetTempPath(), "hwmem-gdb-batch-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            var image = FirmwareImages.Hello().Bytes;
            string path = Path.Combine(dir, "hello.bin");
            File.WriteAllBytes(path, image);
            // The first long-mode instruction sits at the start of the image (the ROM alias at 0xF0000, identity-mapped).
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(image, 0, 15), Entry64);
            decoder.Decode(out var first);

            using var host = StubHost.Start(path);
            string[] commands =
            [
                "set architecture i386:x86-64",
                $"target remote 127.0.0.1:{host.Port}",
                "info registers rip",
                $"x/4xb 0x{Entry64:x}",
                $"break *0x{Entry64:x}",
                "continue",
                "stepi",
                "info registers rip",
                "kill",
            ];
            var psi = new ProcessStartInfo(gdb)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { "-batch", "-nx" }) psi.ArgumentList.Add(a);
            foreach (var cmd in commands) { psi.ArgumentList.Add("-ex"); psi.ArgumentList.Add(cmd); }
            using var proc = Process.Start(psi)!;
            var stdout = proc.StandardOutput.ReadToEndAsync();
            var stderr = proc.StandardError.ReadToEndAsync();
            if (!proc.WaitForExit(TimeSpan.FromSeconds(120)))
            {
                proc.Kill(entireProcessTree: true);
                Assert.Fail("gdb did not finish in 120 s; hwmem said: " + host.Err);
            }
            string output = stdout.Result + stderr.Result;
            TestContext.Out.WriteLine(output);

            Assert.That(output, Does.Match(@"rip\s+0xfff0\s+0xfff0"), "RIP at reset");
            string bytes = string.Join(@"\s+", image.Take(4).Select(b => $"0x{b:x2}"));
            Assert.That(output, Does.Match($@"0xf0000:\s+{bytes}"), "memory read through the stub");
            Assert.That(output, Does.Contain($"Breakpoint 1, 0x{Entry64:x16} in ?? ()"), "breakpoint hit");
            ulong next = Entry64 + (ulong)first.Length;
            Assert.That(output, Does.Contain($"0x{next:x16} in ?? ()"), $"stepi over '{first}'");
            Assert.That(output, Does.Match($@"rip\s+0x{next:x}\s+0x{next:x}"), "RIP after stepi");
            Assert.That(output, Does.Contain("killed"));
            Assert.That(output, Does.Not.Contain("rejected target-supplied description"));
            Assert.That(host.WaitForExit(), Is.EqualTo(0), host.Err.ToString());
            Assert.That(host.Err.ToString(), Does.Contain("killed by GDB"));
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
