using System.Diagnostics;
using System.Text.RegularExpressions;
using ELFSharp.ELF;
using ELFSharp.ELF.Sections;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Mmu;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>
/// Real static programs built with musl-gcc (musl's own malloc and stdio) run unchanged as user processes. Where a
/// program's output is deterministic it is compared with the same binary run natively on the host's Linux kernel.
/// </summary>
public sealed class MuslProgramTests
{
    private static string Native(string guestProgram, params string[] args)
    {
        var psi = new ProcessStartInfo(Path.Combine(TestPrograms.Root, guestProgram.TrimStart('/'))) { RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    [Test]
    public void Hello_world_prints_its_arguments_and_exits_zero()
    {
        string prog = TestPrograms.Musl("hello");
        var h = new ProcessHarness();
        var (r, _) = h.Run(prog);
        Assert.That(h.Out, Is.EqualTo($"hello, world\nargc=1 argv[0]={prog}\n"));
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Trace.ToString(), Does.Contain("ioctl(1, TIOCGWINSZ,").And.Contain("= -1 ENOTTY"), "musl asks whether stdout is a terminal");
    }

    [TestCase("malloc_sizes")]
    [TestCase("floats")]
    [TestCase("mmap_rules")]
    public void Output_matches_the_same_binary_on_the_host_kernel(string name)
    {
        string prog = TestPrograms.Musl(name);
        var h = new ProcessHarness();
        var (r, _) = h.Run(prog);
        Assert.That(r.ExitStatus, Is.Zero, h.Out);
        Assert.That(h.Out, Is.EqualTo(Native(prog)));
    }

    [Test]
    public void Touching_a_thousand_more_pages_takes_exactly_a_thousand_more_faults()
    {
        string prog = TestPrograms.Musl("touch_pages");
        long Faults(int pages)
        {
            var h = new ProcessHarness();
            var (r, t) = h.Run(prog, pages.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.That(r.ExitStatus, Is.Zero);
            Assert.That(h.Out, Does.StartWith($"{pages} pages at 0x"));
            return t.MinorFaults;
        }
        long one = Faults(1), more = Faults(1001);
        Assert.That(more - one, Is.EqualTo(1000), "one demand-zero fault per page written, nothing else differs");
    }

    [Test]
    public void Fork_copies_on_write_and_leaves_the_parent_data_unchanged()
    {
        string prog = TestPrograms.Musl("fork_cow");
        var h = new ProcessHarness();
        var before = h.Baseline();
        var exited = new List<TaskStruct>();
        h.Kernel.TaskExited += exited.Add;
        var (r, t) = h.Run(prog);
        Assert.That(r.ExitStatus, Is.Zero);
        int child = t.Pid + 1;
        Assert.That(h.Out, Is.EqualTo($"child: child data, child heap, pid {child} ppid {t.Pid}\nparent: parent data, parent heap; child {child} exited with 7\n"));
        var c = exited.Single(x => x.Pid == child);
        Assert.That(c.CowFaults, Is.GreaterThanOrEqualTo(2), "the child's writes to the data page and the heap page copy them");
        var after = h.Baseline();
        Assert.That(after.FreePages, Is.EqualTo(before.FreePages), "every page of both processes returned");
        Assert.That(after.SlabInfo, Is.EqualTo(before.SlabInfo), "every vm_area_struct and mm_struct freed");
    }

    [Test]
    public void Child_execs_another_program_and_the_parent_collects_its_status()
    {
        string spawn = TestPrograms.Musl("spawn"), hello = TestPrograms.Musl("hello");
        var h = new ProcessHarness();
        var before = h.Baseline();
        var (r, t) = h.Run(spawn, hello);
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Out, Is.EqualTo($"hello, world\nargc=2 argv[0]={hello}\nchild {t.Pid + 1} exited with 0\n"));
        Assert.That(h.Trace.ToString(), Does.Contain($"[pid {t.Pid + 1}] execve(\"{hello}\", [\"{hello}\", \"from-child\"]) = 0"));
        Assert.That(h.Baseline(), Is.EqualTo(before), "the child's first image, its exec'd image and the parent all freed");
    }

    [Test]
    public void Null_dereference_kills_with_SIGSEGV_and_the_kernel_line()
    {
        string prog = TestPrograms.Musl("null_deref");
        var h = new ProcessHarness();
        var (r, t) = h.Run(prog);
        Assert.That(r.ExitStatus, Is.EqualTo(128 + 11));
        Assert.That(r.Signal, Is.EqualTo(Signals.SIGSEGV));
        Assert.That(h.Out, Is.EqualTo("about to dereference NULL\n"));
        string line = h.Kernel.Log.Lines.Single(l => l.Contains("segfault", StringComparison.Ordinal));
        var m = Regex.Match(line, @"^null_deref\[(\d+)\]: segfault at 0 ip ([0-9a-f]{16}) sp ([0-9a-f]{16}) error 4 in null_deref\[([0-9a-f]+),([0-9a-f]+)\+([0-9a-f]+)\] likely on CPU 0 \(core 0, socket 0\)$");
        Assert.That(m.Success, Is.True, line);
        Assert.That(int.Parse(m.Groups[1].Value), Is.EqualTo(t.Pid));
        // The faulting instruction lies in main, as the program's symbol table says.
        ulong ip = Convert.ToUInt64(m.Groups[2].Value, 16);
        using var elf = ELFReader.Load<ulong>(Path.Combine(TestPrograms.Root, prog.TrimStart('/')));
        var main = ((ISymbolTable)elf.GetSection(".symtab")).Entries.Cast<SymbolEntry<ulong>>().Single(s => s.Name == "main");
        Assert.That(ip, Is.InRange(main.Value, main.Value + main.Size - 1));
        Assert.That(h.Kernel.Log.Lines, Has.Some.Match(@"^Code:( [0-9a-f]{2}){42} <[0-9a-f]{2}>( [0-9a-f]{2}){21}$"));
    }

    [Test]
    public void Reads_a_sandbox_file_with_stdio_and_mmap_and_cannot_write_it()
    {
        string prog = TestPrograms.Musl("read_file");
        var h = new ProcessHarness();
        var (r, _) = h.Run(prog);
        Assert.That(r.ExitStatus, Is.Zero);
        Assert.That(h.Out, Is.EqualTo("read: The quick brown fox jumps over the lazy dog.\nmapped: The quick\nopen for writing: -1 EROFS\nmissing: -1 ENOENT\n"));
    }

    [Test]
    public void Malloc_buffer_is_virtually_contiguous_and_physically_scattered_unlike_kmalloc()
    {
        string prog = TestPrograms.Musl("faq_contrast");
        var h = new ProcessHarness();
        string slabBefore = h.Kernel.FormatSlabInfo();
        var t = h.Machine.Start(prog, [prog]);
        var r = h.Machine.Run(t, maxInstructions: 5_000_000);
        Assert.That(r.Report, Does.StartWith("instruction budget"), "the program spins after printing, until the budget ends the run");
        ulong buf = Convert.ToUInt64(h.Out.Trim()[2..], 16);
        var mmu = h.Kernel.CurrentCpu.Mmu;
        var user = Enumerable.Range(0, 16).Select(i => Phys(mmu, buf + (ulong)i * 4096, Privilege.User)).ToArray();
        Assert.That(user.Zip(user.Skip(1)).Any(p => p.Second != p.First + 4096), Is.True,
            $"the 16 pages of the malloc'd buffer are physically scattered: {string.Join(", ", user.Select(p => $"0x{p:x}"))}");
        // No kmalloc cache grew for the program's data: only the mm's own structures are slab objects.
        static IEnumerable<string> Kmalloc(string slab) => slab.Split('\n').Where(l => l.StartsWith("kmalloc-", StringComparison.Ordinal));
        Assert.That(Kmalloc(h.Kernel.FormatSlabInfo()), Is.EqualTo(Kmalloc(slabBefore)));
        ulong k = h.Kernel.Kmalloc(64 * 1024, Gfp.Kernel);
        var kern = Enumerable.Range(0, 16).Select(i => Phys(mmu, k + (ulong)i * 4096, Privilege.Supervisor)).ToArray();
        Assert.That(kern.Zip(kern.Skip(1)).All(p => p.Second == p.First + 4096), Is.True, "kmalloc's 64 KiB is physically contiguous");
        Assert.That(user.Intersect(kern), Is.Empty);
    }

    private static ulong Phys(HwMemModel.Mmu.Mmu mmu, ulong va, Privilege p)
    {
        var f = mmu.Translate(va, AccessKind.Read, p, out var tr);
        Assert.That(f.IsFault, Is.False, $"0x{va:x} is mapped");
        return tr.PhysicalAddress;
    }
}
