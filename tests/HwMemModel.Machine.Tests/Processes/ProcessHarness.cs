using System.Text;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Machine.Processes;

namespace HwMemModel.Machine.Tests.Processes;

/// <summary>A process machine on the test programs' sandbox with captured output and the leak views.</summary>
internal sealed class ProcessHarness
{
    public ProcessHarness(ulong ram = 256UL << 20)
    {
        Machine = new ProcessMachine(new ProcessMachineOptions { Root = TestPrograms.Root, RamSize = ram });
        Machine.Kernel.Streams = new ProcessStreams { Stdout = Stdout, Stderr = Stderr };
        Machine.Kernel.SyscallTrace = Trace;
    }

    public ProcessMachine Machine { get; }
    public HwMemModel.Kernel.Kernel Kernel => Machine.Kernel;
    public MemoryStream Stdout { get; } = new();
    public MemoryStream Stderr { get; } = new();
    public StringWriter Trace { get; } = new();
    public string Out => Encoding.UTF8.GetString(Stdout.ToArray());
    public string Err => Encoding.UTF8.GetString(Stderr.ToArray());

    /// <summary>Runs <paramref name="program"/> to the end; the run must end normally (no model stop).</summary>
    public (ProcessRunResult Result, TaskStruct Task) Run(string program, params string[] args)
    {
        var t = Machine.Start(program, [program, .. args]);
        var r = Machine.Run(t);
        TestContext.Out.WriteLine(Trace.ToString());
        TestContext.Out.WriteLine(Kernel.Log.ToString());
        Assert.That(r.Report, Is.Empty, "the run stopped instead of ending");
        return (r, t);
    }

    /// <summary>Free pages and /proc/slabinfo with empty slabs shrunk, as a leak check takes them.</summary>
    public (long FreePages, string SlabInfo) Baseline()
    {
        Kernel.ShrinkSlabCaches();
        return (Kernel.Pages.FreePageCount, Kernel.FormatSlabInfo());
    }
}
