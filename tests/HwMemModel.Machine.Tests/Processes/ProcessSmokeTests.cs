using HwMemModel.Kernel;
using HwMemModel.Machine.Processes;

namespace HwMemModel.Machine.Tests.Processes;

public sealed class ProcessSmokeTests
{
    [Test]
    public void Raw_program_writes_faults_in_bss_and_heap_and_exits_with_its_code()
    {
        string prog = TestPrograms.Raw("raw_hello");
        var m = new ProcessMachine(new ProcessMachineOptions { Root = TestPrograms.Root });
        var stdout = new MemoryStream();
        m.Kernel.Streams = new ProcessStreams { Stdout = stdout };
        var t = m.Start(prog, [prog]);
        var r = m.Run(t);
        Assert.That(r.Report, Is.Empty);
        Assert.That(System.Text.Encoding.ASCII.GetString(stdout.ToArray()), Is.EqualTo("hello from user space\n"));
        Assert.That(r.ExitStatus, Is.EqualTo(48));
    }

    [Test]
    public void Musl_hello_world_prints_and_exits_zero()
    {
        string prog = TestPrograms.Musl("hello");
        var m = new ProcessMachine(new ProcessMachineOptions { Root = TestPrograms.Root });
        var stdout = new MemoryStream();
        var trace = new StringWriter();
        m.Kernel.Streams = new ProcessStreams { Stdout = stdout };
        m.Kernel.SyscallTrace = trace;
        var t = m.Start(prog, [prog]);
        var r = m.Run(t);
        TestContext.Out.WriteLine(trace.ToString());
        TestContext.Out.WriteLine(m.Kernel.Log.ToString());
        TestContext.Out.WriteLine(string.Join("\n", m.Cpu.Reports));
        Assert.That(r.Report, Is.Empty);
        Assert.That(System.Text.Encoding.ASCII.GetString(stdout.ToArray()), Is.EqualTo($"hello, world\nargc=1 argv[0]={prog}\n"));
        Assert.That(r.ExitStatus, Is.Zero);
    }
}
