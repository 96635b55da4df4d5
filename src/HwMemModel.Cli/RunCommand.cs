using System.CommandLine;
using System.Globalization;
using System.Text;
using HwMemModel.Cli.Gdb;
using HwMemModel.Cpu;
using HwMemModel.Machine;
using HwMemModel.Machine.Boot;

namespace HwMemModel.Cli;

/// <summary>
/// <c>hwmem run --bios IMAGE | --kernel IMAGE</c>: runs firmware on the default machine. COM1 goes to standard
/// output; the exit status mirrors QEMU's (isa-debug-exit's (v &lt;&lt; 1) | 1, 0 after a triple fault). Ends QEMU has
/// no equivalent for get even statuses, distinct from every guest status (which is odd or 0).
/// </summary>
public static class RunCommand
{
    /// <summary>Exit status when the instruction budget ran out.</summary>
    public const int ExitInstructionLimit = 4;
    /// <summary>Exit status when the processor halted with nothing that could wake it.</summary>
    public const int ExitHalted = 6;
    /// <summary>Exit status when the model met a state it does not model (the report says which).</summary>
    public const int ExitNotModelled = 8;

    /// <summary>Adds the command to <paramref name="root"/>.</summary>
    public static void Add(RootCommand root, TextWriter stdout, TextWriter stderr, Stream? rawStdout)
    {
        var bios = new Option<string?>("--bios") { Description = "A flat BIOS ROM image (a multiple of 64 KiB), mapped to end at 4 GiB; the CPU starts at F000:FFF0." };
        var kernel = new Option<string?>("--kernel") { Description = "A multiboot v1 kernel (a.out kludge or ELF32), entered in 32-bit protected mode as QEMU's -kernel does." };
        var append = new Option<string?>("--append") { Description = "Kernel command line (with --kernel): the kernel sees \"IMAGE-PATH ARGS\"." };
        var memory = new Option<string>("--memory", "-m") { Description = "RAM size: bytes or a number with K, M or G (1 MiB granularity, 2M to 3G).", DefaultValueFactory = _ => "128M" };
        var max = new Option<long?>("--max-instructions") { Description = "Stop after this many instructions (exit status 4) with a report of where the CPU was." };
        var trace = new Option<bool>("--trace") { Description = "Print every instruction (Iced's formatter), its memory accesses with virtual and physical addresses, and each fault with its walk explanation, on standard error." };
        var machineFile = new Option<string?>("--machine") { Description = "A machine description (JSON, docs/drivers.md) instead of the built-in QEMU pc subset: its RAM size, TLB geometry and devices (UARTs with output \"host\" write to standard output); --memory is then taken from the description." };
        var gdb = new Option<int?>("--gdb") { Description = "Wait for GDB on 127.0.0.1:PORT (0 picks a free port, printed on standard error) and run under its control: registers, memory by virtual address, breakpoints, single step, monitor walk/ptdump/tlb." };
        var cmd = new Command("run", "Run a firmware image or a multiboot kernel on the default machine (a QEMU pc subset). COM1 goes to standard output; the exit status mirrors QEMU's isa-debug-exit ((v<<1)|1), 0 after a triple fault, 2 for bad input, 4 when --max-instructions ran out, 6 for a halt nothing can wake, 8 for a state the model does not model, 10 when GDB (--gdb) closed the connection.");
        cmd.Options.Add(bios);
        cmd.Options.Add(kernel);
        cmd.Options.Add(append);
        cmd.Options.Add(memory);
        cmd.Options.Add(machineFile);
        var initrd = new Option<string?>("--initrd") { Description = "Multiboot modules (with --kernel), as QEMU's -initrd: \"FILE [ARGS][,FILE [ARGS]...]\"; each becomes a module whose string is its whole \"FILE ARGS\" text, module 0 first." };
        cmd.Options.Add(initrd);
        var smp = new Option<int>("--smp") { Description = "CPUs, 1 to 64 (QEMU's -smp N): CPU 0 starts at the reset vector, the others wait for INIT and a start-up IPI; they run in turn, deterministically.", DefaultValueFactory = _ => 1 };
        cmd.Options.Add(smp);
        var x2apic = new Option<bool>("--x2apic") { Description = "The CPUs report x2APIC (CPUID.1:ECX bit 21) and their local APICs accept IA32_APIC_BASE.EXTD (registers as MSRs 0x800-0x8FF). Off by default, as on QEMU 7.2's TCG." };
        cmd.Options.Add(x2apic);
        var checkCoherence = new Option<bool>("--check-coherence") { Description = "Cross-CPU coherence checker: compare every TLB hit with the page tables in RAM and report, on standard error, each stale translation used, naming the CPU that changed the entry (its instruction, the entry before and after) and the CPU that used the old translation (its instruction). Slower." };
        cmd.Options.Add(checkCoherence);
        var device = new Option<string[]>("--device") { Description = "Add a device QEMU adds on request: pc-testdev (ports 0xE0-0xEB, IRQ ports at 0x2000, 64 KiB at 0xFF000000) or shutdown-port (\"Shutdown\" written to port 0x8900 powers off). Repeatable.", AllowMultipleArgumentsPerToken = false };
        cmd.Options.Add(device);
        var saveSnapshot = new Option<string?>("--save-snapshot") { Description = "At the end of the run, write RAM and CPU 0's paging state to this file, for hwmem walk VA --snapshot FILE." };
        cmd.Options.Add(saveSnapshot);
        cmd.Options.Add(max);
        cmd.Options.Add(trace);
        cmd.Options.Add(gdb);
        cmd.SetAction(r => Execute(r.GetValue(bios), r.GetValue(kernel), r.GetValue(append), r.GetValue(memory)!, r.GetValue(max), r.GetValue(trace), r.GetValue(gdb), r.GetValue(machineFile), r.GetValue(saveSnapshot), r.GetValue(initrd), r.GetValue(device), r.GetValue(smp), r.GetValue(x2apic), r.GetValue(checkCoherence), stdout, stderr, rawStdout));
        root.Subcommands.Add(cmd);
    }

    private static int Execute(string? bios, string? kernel, string? append, string memory, long? max, bool trace, int? gdb, string? machineFile, string? snapshotPath, string? initrd, string[]? devices, int smp, bool x2apic,
        bool checkCoherence, TextWriter stdout, TextWriter stderr, Stream? rawStdout)
    {
        if ((bios is null) == (kernel is null))
        {
            stderr.WriteLine("hwmem run: give exactly one of --bios IMAGE or --kernel IMAGE.");
            return HwmemCommand.ExitUsage;
        }
        if (append is not null && kernel is null)
        {
            stderr.WriteLine("hwmem run: --append applies only to --kernel (a multiboot command line).");
            return HwmemCommand.ExitUsage;
        }
        if (smp is < 1 or > 64)
        {
            stderr.WriteLine($"hwmem run: --smp {smp} is out of range; give 1 to 64 CPUs.");
            return HwmemCommand.ExitUsage;
        }
        if (initrd is not null && kernel is null)
        {
            stderr.WriteLine("hwmem run: --initrd applies only to --kernel (multiboot modules).");
            return HwmemCommand.ExitUsage;
        }
        IReadOnlyList<MultibootModule> modules = [];
        if (initrd is not null)
        {
            try
            {
                modules = MultibootLoader.ModulesFromInitrd(initrd, File.ReadAllBytes);
            }
            catch (ImageLoadException e)
            {
                stderr.WriteLine($"hwmem run: --initrd: {e.Message}");
                return HwmemCommand.ExitUsage;
            }
        }
        foreach (string d in devices ?? [])
        {
            if (d is not ("pc-testdev" or "shutdown-port"))
            {
                stderr.WriteLine($"hwmem run: --device '{d}' is not one the model adds on request; give pc-testdev (QEMU's -device pc-testdev) or shutdown-port (the Bochs/old-QEMU 0x8900 port).");
                return HwmemCommand.ExitUsage;
            }
        }
        if (!TryParseSize(memory, out ulong ram) || ram < (2UL << 20) || ram > (3UL << 30) || (ram & 0xFFFFF) != 0)
        {
            stderr.WriteLine($"hwmem run: --memory '{memory}' is not a RAM size the pc memory map allows; give a multiple of 1 MiB from 2M to 3G (for example 128M or 1G).");
            return HwmemCommand.ExitUsage;
        }
        if (max is < 0)
        {
            stderr.WriteLine($"hwmem run: --max-instructions {max} is negative; give 0 or more.");
            return HwmemCommand.ExitUsage;
        }
        if (gdb is < 0 or > 65535)
        {
            stderr.WriteLine($"hwmem run: --gdb {gdb} is not a TCP port; give 1 to 65535, or 0 to pick a free one.");
            return HwmemCommand.ExitUsage;
        }
        string path = (bios ?? kernel)!;
        byte[] image;
        try
        {
            image = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            stderr.WriteLine($"hwmem run: cannot read '{path}': {e.Message}");
            return HwmemCommand.ExitUsage;
        }

        var serial = rawStdout ?? new TextWriterStream(stdout);
        var options = new PcMachineOptions
        {
            RamSize = ram,
            SerialOutput = serial,
            Description = machineFile is null ? null : Machine.Description.MachineDescriptionReader.FromJsonFile(machineFile),
            PcTestdev = devices?.Contains("pc-testdev") == true,
            Cpus = smp,
            X2Apic = x2apic,
            ShutdownPort = devices?.Contains("shutdown-port") == true,
            CoherenceChecking = checkCoherence,
        };
        PcMachine machine;
        try
        {
            machine = bios is not null
                ? PcMachine.FromBios(image, path, options)
                : PcMachine.FromMultiboot(image, path, append ?? "", options, modules);
        }
        catch (ImageLoadException e)
        {
            stderr.WriteLine($"hwmem run: {e.Message}");
            return HwmemCommand.ExitUsage;
        }

        StreamWriter? traceWriter = null;
        if (trace)
        {
            traceWriter = new StreamWriter(new TextWriterStream(stderr), new UTF8Encoding(false), 1 << 16) { AutoFlush = false };
            machine.Cpu.Trace = traceWriter;
        }
        machine.Cpu.Reported += message => stderr.WriteLine($"hwmem: note: {message}");
        RunResult result;
        try
        {
            if (gdb is int port)
            {
                void Flush() { traceWriter?.Flush(); serial.Flush(); }
                return GdbStub.Serve(machine.Cpu, port, max ?? long.MaxValue, stderr, r => { Flush(); return ExitStatus(r, machine, stderr); }, Flush);
            }
            result = machine.Run(max ?? long.MaxValue);
        }
        finally
        {
            traceWriter?.Flush();
            serial.Flush();
        }
        if (snapshotPath is not null) MachineSnapshot.Save(machine.Bus, machine.Context, snapshotPath);
        if (checkCoherence)
        {
            foreach (var e in machine.StaleTranslations) stderr.WriteLine($"hwmem: coherence checker: {e.Description}");
            stderr.WriteLine($"hwmem: coherence checker: {machine.StaleTranslations.Count} stale translation(s) used");
        }
        return ExitStatus(result, machine, stderr);
    }

    private static int ExitStatus(RunResult result, PcMachine machine, TextWriter stderr)
    {
        int? status = PcMachine.QemuExitStatus(result, machine.Stop);
        if (status is int s) return s;
        stderr.WriteLine($"hwmem run: {result.Report} ({result.Instructions} instructions)");
        return result.Kind switch
        {
            StopKind.InstructionLimit => ExitInstructionLimit,
            StopKind.Halted => ExitHalted,
            _ => ExitNotModelled,
        };
    }

    /// <summary>Parses "128M", "1G", "65536K" or a byte count.</summary>
    public static bool TryParseSize(string text, out ulong bytes)
    {
        bytes = 0;
        string s = text.Trim();
        if (s.Length == 0) return false;
        ulong unit = char.ToUpperInvariant(s[^1]) switch { 'K' => 1UL << 10, 'M' => 1UL << 20, 'G' => 1UL << 30, _ => 1 };
        if (unit != 1) s = s[..^1];
        if (!ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n) || n > ulong.MaxValue / unit) return false;
        bytes = n * unit;
        return true;
    }
}

/// <summary>
/// A write-only stream that passes bytes to a <see cref="TextWriter"/>: one character per byte (Latin-1, for serial
/// output) unless another encoding is given (UTF-8 for a user program's output; sequences split across writes are kept).
/// </summary>
internal sealed class TextWriterStream(TextWriter writer, Encoding? encoding = null) : Stream
{
    private readonly Decoder _decoder = (encoding ?? Encoding.Latin1).GetDecoder();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => writer.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count)
    {
        var chars = new char[_decoder.GetCharCount(buffer, offset, count)];
        _decoder.GetChars(buffer, offset, count, chars, 0);
        writer.Write(chars);
    }
}
