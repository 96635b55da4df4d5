using System.Buffers.Binary;
using HwMemModel.Cli;
using HwMemModel.Firmware;

namespace HwMemModel.Cli.Tests;

/// <summary><c>hwmem run</c>: firmware output and exit statuses as QEMU gives them, and every bad input named in the issue.</summary>
public sealed class RunCommandTests
{
    private static string _dir = "";

    [OneTimeSetUp]
    public void WriteImages()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hwmem-run-tests-" + Environment.ProcessId);
        Directory.CreateDirectory(_dir);
        FirmwareImages.WriteAll(_dir);
    }

    [OneTimeTearDown]
    public void RemoveImages()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = HwmemCommand.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static string Write(string name, byte[] bytes)
    {
        string p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    [Test]
    public void BiosImagePrintsItsSerialOutputAndExitsAsQemu()
    {
        var image = FirmwareImages.Get("hello");
        var (code, output, err) = Run("run", "--bios", Path.Combine(_dir, image.FileName));
        Assert.That(output, Is.EqualTo(image.SdmSerialOutput), err);
        Assert.That(code, Is.EqualTo(image.QemuExitStatus));
        Assert.That(err, Is.Empty);
    }

    [Test]
    public void MultibootKernelRunsWithAppendedArguments()
    {
        var image = FirmwareImages.Get("multiboot-aout");
        var (code, output, err) = Run("run", "--kernel", Path.Combine(_dir, image.FileName), "--append", "console=ttyS0");
        Assert.That(output, Is.EqualTo(image.SdmSerialOutput), err);
        Assert.That(code, Is.EqualTo(1));
    }

    [Test]
    public void InstructionLimitStopsWithAReportAndAnEvenStatus()
    {
        var (code, _, err) = Run("run", "--bios", Path.Combine(_dir, "paging.bin"), "--max-instructions", "1000");
        Assert.That(code, Is.EqualTo(RunCommand.ExitInstructionLimit));
        Assert.That(err, Does.Contain("instruction limit reached after 1000 instructions").And.Contain("next instruction at"));
    }

    [Test]
    public void TraceShowsInstructionsAccessesWithBothAddressesAndIsDeterministic()
    {
        string path = Path.Combine(_dir, "hello.bin");
        var first = Run("run", "--bios", path, "--trace", "--max-instructions", "200");
        var second = Run("run", "--bios", path, "--trace", "--max-instructions", "200");
        Assert.That(first.Err, Does.Contain("cpu0          0 f000:0000fff0  jmp far"));
        Assert.That(first.Err, Does.Match(@"write 4 bytes va=0x[0-9a-f]+ pa=0x[0-9a-f]+ value="));
        Assert.That(second.Err, Is.EqualTo(first.Err));
        Assert.That(second.Out, Is.EqualTo(first.Out));
    }

    [Test]
    public void GarbageExecutedBecomesGuestExceptionsNotAStackTrace()
    {
        var rnd = new Random(7);
        var bytes = new byte[65536];
        rnd.NextBytes(bytes);
        var (code, _, err) = Run("run", "--bios", Write("garbage.bin", bytes), "--max-instructions", "200000");
        Assert.That(code, Is.AnyOf(0, RunCommand.ExitInstructionLimit, RunCommand.ExitHalted, RunCommand.ExitNotModelled));
        Assert.That(err, Does.Not.Contain("   at ").And.Not.Contain("Exception"));
    }

    [Test]
    public void RunawayLoopStopsAtTheBudget()
    {
        var bytes = new byte[65536];
        bytes[0xFFF0] = 0xEB; // jmp $
        bytes[0xFFF1] = 0xFE;
        var (code, _, err) = Run("run", "--bios", Write("loop.bin", bytes), "--max-instructions", "5000");
        Assert.That(code, Is.EqualTo(RunCommand.ExitInstructionLimit));
        Assert.That(err, Does.Contain("f000:fff0"));
    }

    private static void AssertBadInput((int Code, string Out, string Err) r, string path, string phrase)
    {
        Assert.That(r.Code, Is.EqualTo(HwmemCommand.ExitUsage), r.Err);
        Assert.That(r.Err.TrimEnd('\n'), Does.Not.Contain("\n"), "one line");
        Assert.That(r.Err, Does.Contain(path).And.Contain(phrase));
        Assert.That(r.Out, Is.Empty);
    }

    [Test]
    public void RomNotAMultipleOf64KiBIsRefused()
    {
        string p = Write("short.bin", new byte[1000]);
        AssertBadInput(Run("run", "--bios", p), p, "multiple of 64 KiB");
    }

    [Test]
    public void EmptyRomIsRefused()
    {
        string p = Write("empty.bin", []);
        AssertBadInput(Run("run", "--bios", p), p, "empty");
    }

    [Test]
    public void OversizedRomIsRefused()
    {
        string p = Write("huge.bin", new byte[17 << 20]);
        AssertBadInput(Run("run", "--bios", p), p, "16 MiB");
    }

    [Test]
    public void KernelWithoutMultibootHeaderIsRefused()
    {
        string p = Write("nohdr.bin", new byte[8192]);
        AssertBadInput(Run("run", "--kernel", p), p, "no multiboot header");
    }

    /// <summary>A flat multiboot image with the a.out kludge (flags bit 16) and the given addresses.</summary>
    private static byte[] Aout(uint headerAddr, uint loadAddr, uint loadEnd, uint bssEnd, uint entry, int size = 4096)
    {
        var b = new byte[size];
        uint flags = 0x0001_0000;
        uint[] h = [0x1BADB002, flags, unchecked(0u - 0x1BADB002 - flags), headerAddr, loadAddr, loadEnd, bssEnd, entry];
        for (int i = 0; i < h.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(i * 4), h[i]);
        return b;
    }

    private static byte[] Elf64WithMultibootHeader()
    {
        var b = new byte[8192];
        b[0] = 0x7F; b[1] = (byte)'E'; b[2] = (byte)'L'; b[3] = (byte)'F';
        b[4] = 2; b[5] = 1; b[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(16), 2);    // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), 62);   // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(52), 64);   // e_ehsize
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(54), 56);   // e_phentsize
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(58), 64);   // e_shentsize
        uint flags = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(256), 0x1BADB002);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(260), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(264), unchecked(0u - 0x1BADB002 - flags));
        return b;
    }

    [Test]
    public void Elf64KernelIsRefused()
    {
        string p = Write("k64.elf", Elf64WithMultibootHeader());
        AssertBadInput(Run("run", "--kernel", p), p, "64");
    }

    [Test]
    public void SegmentOutsideRamIsRefused()
    {
        string p = Write("far.bin", Aout(0x4000_0000, 0x4000_0000, 0, 0, 0x4000_0020));
        AssertBadInput(Run("run", "--kernel", p, "-m", "128M"), p, "RAM");
    }

    [Test]
    public void EntryOutsideTheImageIsRefused()
    {
        string p = Write("entry.bin", Aout(0x10_0000, 0x10_0000, 0, 0, 0x20_0000));
        AssertBadInput(Run("run", "--kernel", p), p, "entry");
    }

    [Test]
    public void TruncatedKernelIsRefused()
    {
        string p = Write("trunc.bin", Aout(0x10_0000, 0x10_0000, 0x10_4000, 0, 0x10_0020));
        AssertBadInput(Run("run", "--kernel", p), p, "truncated");
    }

    [Test]
    public void BadArgumentsAreOneLineErrors()
    {
        var both = Run("run", "--bios", "a", "--kernel", "b");
        Assert.That(both.Code, Is.EqualTo(2));
        Assert.That(both.Err, Does.Contain("exactly one of --bios IMAGE or --kernel IMAGE"));
        var mem = Run("run", "--bios", "a", "--memory", "100K");
        Assert.That(mem.Err, Does.Contain("multiple of 1 MiB from 2M to 3G"));
        var missing = Run("run", "--bios", Path.Combine(_dir, "does-not-exist.bin"));
        Assert.That(missing.Code, Is.EqualTo(2));
        Assert.That(missing.Err, Does.Contain("cannot read"));
        var append = Run("run", "--bios", "a", "--append", "x");
        Assert.That(append.Err, Does.Contain("--append applies only to --kernel"));
    }

    [Test]
    public void BenchRefusesABadRepeatCount()
    {
        var (code, _, err) = Run("bench", "--repeat", "0");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.Contain("--repeat 0 is out of range; give 1 to 100"));
    }
    [Test]
    public void Check_coherence_reports_the_missing_shootdown_on_standard_error_and_nothing_for_the_fixed_image()
    {
        var (code, output, err) = Run("run", "--bios", Path.Combine(_dir, "shootdown-missing.bin"), "--smp", "4", "--check-coherence");
        Assert.That(code, Is.EqualTo(1), err);
        Assert.That(output, Does.Contain("shootdown: stale reads: 12 of 12"), "the checker does not change what the guest sees");
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Count(l => l.StartsWith("hwmem: coherence checker: CPU ", StringComparison.Ordinal)), Is.EqualTo(12), err);
        Assert.That(err, Does.Contain("hwmem: coherence checker: CPU 2 used a stale TLB entry for 0x40003000: CPU 0 changed the PTE at PA 0xc018 from 0x203023 to 0x213003 with 'mov [0C018h],rax' at 0x"));
        Assert.That(err, Does.Contain("; CPU 2 then executed 'mov rdx,[rax+40000000h]' at 0x"));
        Assert.That(err, Does.Contain("hwmem: coherence checker: 12 stale translation(s) used"));

        (code, output, err) = Run("run", "--bios", Path.Combine(_dir, "shootdown.bin"), "--smp", "4", "--check-coherence");
        Assert.That(code, Is.EqualTo(1), err);
        Assert.That(output, Does.Contain("shootdown: stale reads: 0 of 12"));
        Assert.That(err, Is.EqualTo("hwmem: coherence checker: 0 stale translation(s) used" + Environment.NewLine));

        (_, _, err) = Run("run", "--bios", Path.Combine(_dir, "shootdown-missing.bin"), "--smp", "4");
        Assert.That(err, Is.Empty, "no checker output without the option");
    }
}
