using HwMemModel.Kernel;
using HwMemModel.Machine.Processes;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>What a program controls can end the program, never the host.</summary>
public sealed class HostSafetyTests
{
    [Test]
    public void A_non_canonical_entry_point_kills_the_program_with_SIGSEGV()
    {
        var image = StaticElf.Build(a => a.nop());
        BitConverter.TryWriteBytes(image.AsSpan(24), 0x8000_0000_0000_0000UL); // e_entry
        string dir = Path.Combine(TestPrograms.Root, "asm");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "badentry"), image);
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, _) = h.Run("/asm/badentry");
        Assert.That(r.ExitStatus, Is.EqualTo(128 + Signals.SIGSEGV));
        Assert.That(h.Kernel.Log.Lines, Has.Some.Contains("badentry[2]: bad return to user mode: exception 13"));
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }

    [Test]
    public void A_terabyte_shared_anonymous_mapping_without_reserve_costs_only_the_pages_touched()
    {
        string prog = TestPrograms.Raw("raw_hello");
        var h = new ProcessHarness();
        var t = h.Machine.Start(prog, [prog]);
        var before = h.Baseline();
        long area = h.Kernel.DoMmap(t, 0, 1UL << 40, Mman.ProtRead | Mman.ProtWrite, Mman.MapShared | Mman.MapAnonymous | Mman.MapNoReserve, null, 0);
        Assert.That(area, Is.GreaterThan(0));
        Assert.That(h.Kernel.HandleUserFault(t, (ulong)area + (1UL << 39), PageFaultErrorCode.Write | PageFaultErrorCode.User), Is.EqualTo(UserFaultResult.Handled));
        Assert.That(t.Mm!.RssShmem, Is.EqualTo(1));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.That(h.Kernel.DoFork(t), Is.GreaterThan(t.Pid), "fork walks only the page tables that exist");
        Assert.That(h.Kernel.FormatSmaps(t), Does.Contain("Rss:                   4 kB"));
        TestContext.Out.WriteLine($"fork and smaps of the 1 TiB mapping: {sw.ElapsedMilliseconds} ms (not asserted)");
        h.Kernel.DoExit(h.Kernel.Tasks[t.Pid + 1], 0);
        Assert.That(h.Kernel.DoMunmap(t, (ulong)area, 1UL << 40), Is.Zero);
        Assert.That(h.Baseline(), Is.EqualTo(before));
    }

    [Test]
    public void A_sandbox_file_removed_on_the_host_after_open_reads_as_end_of_file()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hwmem-vanish-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "f"), "hello");
        var (file, error) = new HwMemModel.Kernel.Process.Sandbox(dir).Lookup("/f");
        Assert.That(error, Is.Zero);
        Directory.Delete(dir, recursive: true);
        var buffer = new byte[16];
        Assert.That(file!.Read(0, buffer), Is.Zero, "no host exception: nothing more to read");
    }
}
