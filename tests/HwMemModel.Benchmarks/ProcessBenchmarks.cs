using BenchmarkDotNet.Attributes;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Process;
using HwMemModel.Machine.Processes;
using HwMemModel.Mmu;

namespace HwMemModel.Benchmarks;

/// <summary>
/// Issue 8's figures: demand-zero page faults served per second (a user program writes one byte to each page of a
/// fresh anonymous mapping: #PF at CPL 3, IDT delivery, the kernel model's fault handler with a zeroed page from the
/// buddy allocator and a PTE written in RAM, IRETQ, the write retried), and fork+exit of a process with 10 MiB of
/// written anonymous memory (fork copies the page tables and shares every page copy-on-write; the child exits at once
/// and its address space is torn down; the parent's wait4 reaps it). Process start and the 10 MiB first touch are
/// inside the invocation and spread over its operations.
/// </summary>
[MemoryDiagnoser]
public class ProcessBenchmarks
{
    /// <summary>Pages touched per invocation (32 MiB).</summary>
    public const int Pages = 8192;
    /// <summary>Forks per invocation.</summary>
    public const int Forks = 200;
    private ProcessMachine _machine = null!;
    private string _root = "";

    [GlobalSetup]
    public void Setup()
    {
        _root = Path.Combine(Path.GetTempPath(), "hwmem-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(_root);
        File.WriteAllBytes(Path.Combine(_root, "touch"), StaticElf.TouchPages(Pages));
        File.WriteAllBytes(Path.Combine(_root, "forkexit"), StaticElf.ForkExit(10, Forks));
        _machine = new ProcessMachine(new ProcessMachineOptions { Root = _root, RamSize = 512UL << 20 });
        _task = _machine.Start("/touch", ["/touch"]); // an address space for the kernel-level figure; never run
    }

    private TaskStruct _task = null!;

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_root, recursive: true);

    /// <summary>
    /// One demand-zero fault served by the kernel model (handle_mm_fault for a write to an untouched page of an
    /// anonymous VMA: VMA lookup, page-table walk in RAM, a zeroed page from the buddy allocator, the PTE written);
    /// the mapping is made before and unmapped after the timed faults of each invocation.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public int DemandZeroFaultServed()
    {
        var k = _machine.Kernel;
        long addr = k.DoMmap(_task, 0, Pages * 4096UL, 3, 0x22, null, 0);
        int handled = 0;
        for (ulong i = 0; i < Pages; i++)
            if (k.HandleUserFault(_task, (ulong)addr + i * 4096, PageFaultErrorCode.Write | PageFaultErrorCode.User) == UserFaultResult.Handled) handled++;
        k.DoMunmap(_task, (ulong)addr, Pages * 4096UL);
        return handled;
    }

    /// <summary>
    /// One demand-zero fault end to end (per page): the user program's store at CPL 3 faults, the CPU model
    /// delivers #PF through the IDT, the kernel model serves it, IRETQ returns and the store is retried.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    public int DemandZeroFaultEndToEnd() => _machine.Run(_machine.Start("/touch", ["/touch"])).ExitStatus;

    /// <summary>One fork+exit+wait of a 10 MiB process.</summary>
    [Benchmark(OperationsPerInvoke = Forks)]
    public int ForkExit10MiB() => _machine.Run(_machine.Start("/forkexit", ["/forkexit"])).ExitStatus;
}
