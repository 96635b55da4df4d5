using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>
/// Builds the C test programs of tests/programs with the host's compilers into a sandbox directory: musl-gcc -static
/// (Debian's musl-tools) for programs with a C library, gcc -nostdlib for the raw ones. A test whose compiler is
/// missing is ignored with a message saying what to install.
/// </summary>
internal static class TestPrograms
{
    private static readonly object Gate = new();

    /// <summary>The sandbox root holding the built programs (under /bin) and data files.</summary>
    public static string Root { get; } = CreateRoot();

    private static string CreateRoot()
    {
        string root = Path.Combine(Path.GetTempPath(), "hwmem-programs-" + Environment.ProcessId);
        Directory.CreateDirectory(Path.Combine(root, "bin"));
        Directory.CreateDirectory(Path.Combine(root, "data"));
        File.WriteAllText(Path.Combine(root, "data", "greeting.txt"), "The quick brown fox jumps over the lazy dog.\n");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(root, true); } catch (IOException) { } };
        return root;
    }

    /// <summary>Source of a test program.</summary>
    public static string SourcePath(string name) => Path.Combine(TestContext.CurrentContext.TestDirectory, "programs", name + ".c");

    /// <summary>Builds tests/programs/<paramref name="name"/>.c with musl-gcc -static -O2 and returns its guest path ("/bin/HASH/NAME").</summary>
    public static string Musl(string name, string flags = "") => Build(name, "musl-gcc", "-static -O2 " + flags, "apt-get install musl-tools");

    /// <summary>Builds a program without a C library (gcc -nostdlib -static, general-purpose registers only).</summary>
    public static string Raw(string name) => Build(name, "gcc", "-nostdlib -static -O1 -mgeneral-regs-only -fno-stack-protector -fno-pie -no-pie", "apt-get install gcc");

    /// <summary>The host path of a guest path inside <see cref="Root"/>.</summary>
    public static string HostPath(string guestPath) => Path.Combine(Root, guestPath.TrimStart('/'));

    /// <summary>Writes <paramref name="bytes"/> to the guest path <paramref name="guestPath"/> (mode 0755 when <paramref name="executable"/>).</summary>
    public static string Put(string guestPath, byte[] bytes, bool executable = true)
    {
        string host = HostPath(guestPath);
        Directory.CreateDirectory(Path.GetDirectoryName(host)!);
        File.WriteAllBytes(host, bytes);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(host, executable ? (UnixFileMode)0b111_101_101 : (UnixFileMode)0b110_100_100);
        return guestPath;
    }

    /// <summary>Runs the built program <paramref name="guestProgram"/> natively on the host: its exit code (128 + N for signal N) and standard output.</summary>
    public static (int ExitCode, string Stdout) RunNative(string guestProgram, params string[] args)
    {
        var psi = new ProcessStartInfo(HostPath(guestProgram)) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output);
    }

    /// <summary>Builds a program with the host's plain gcc (dynamically linked against glibc, with PT_INTERP).</summary>
    public static string Dynamic(string name) => Build(name, "gcc", "-O1", "apt-get install gcc");

    private static string Build(string name, string compiler, string flags, string install)
    {
        string src = SourcePath(name);
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(File.ReadAllText(src) + compiler + flags)))[..12];
        string outName = $"{hash}/{name}";
        Directory.CreateDirectory(Path.Combine(Root, "bin", hash));
        string output = Path.Combine(Root, "bin", hash, name);
        lock (Gate)
        {
            if (File.Exists(output)) return "/bin/" + outName;
            if (!OnPath(compiler)) Assert.Ignore($"{compiler} not found: the C test programs need it ({install}); .ci/run installs it.");
            var psi = new ProcessStartInfo(compiler) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in flags.Split(' ', StringSplitOptions.RemoveEmptyEntries)) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("-o"); psi.ArgumentList.Add(output); psi.ArgumentList.Add(src);
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.That(p.ExitCode, Is.Zero, $"{compiler} {flags} {src} failed:\n{err}");
        }
        return "/bin/" + outName;
    }

    private static bool OnPath(string exe) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, exe)));
}
