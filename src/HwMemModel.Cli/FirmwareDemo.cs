using System.Text;
using HwMemModel.Cpu;
using HwMemModel.Firmware;
using HwMemModel.Machine;

namespace HwMemModel.Cli;

/// <summary>The firmware part of the demo: a BIOS image and the demand-paging image run on the CPU model.</summary>
public static class FirmwareDemo
{
    /// <summary>Runs the built-in <c>hello</c> and <c>demand-paging</c> images and prints their serial output and counters.</summary>
    public static void Run(TextWriter o)
    {
        foreach (var name in new[] { "hello", "demand-paging" })
        {
            var image = FirmwareImages.Get(name);
            var serial = new MemoryStream();
            var machine = PcMachine.FromBios(image.Bytes, name + ".bin", new PcMachineOptions { SerialOutput = serial });
            var r = machine.Run(50_000_000);
            o.WriteLine($"== Firmware '{name}' on the CPU model (hwmem run --bios {name}.bin) ==");
            o.Write(Encoding.Latin1.GetString(serial.ToArray()));
            int? status = PcMachine.QemuExitStatus(r, machine.Stop);
            var c = machine.Cpu.Counters;
            var mmu = machine.Context.Mmu.Counters;
            o.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"exit status {(status is int s ? s.ToString(System.Globalization.CultureInfo.InvariantCulture) : r.Kind.ToString())} after {r.Instructions:N0} instructions; " +
                $"{c.Vectors[Vectors.PF]} page faults, {mmu.Walks:N0} page walks, {c.BlocksDecoded:N0} blocks decoded"));
            o.WriteLine();
        }
    }
}
