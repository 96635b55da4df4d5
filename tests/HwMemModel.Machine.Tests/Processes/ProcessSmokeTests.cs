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
}
