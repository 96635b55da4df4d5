using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using HwMemModel.Bus;
using HwMemModel.Mmu;

namespace HwMemModel.Machine;

/// <summary>
/// A snapshot of what decides translations: the RAM pages that hold data (page tables included) and CPU 0's
/// paging state (CR0, CR3, CR4, EFER, IA32_PAT, PKRU, CPL, EFLAGS.AC). <c>hwmem run --save-snapshot FILE</c> writes
/// one at the end of a run; <c>hwmem walk VA --snapshot FILE</c> explains a walk in it. TLB contents are not kept (a
/// walk in a snapshot is a walk on a cold TLB).
/// </summary>
/// <remarks>
/// Format: the 8 bytes "HWMSNAP1", a little-endian 32-bit length and that many bytes of UTF-8 JSON (the header:
/// control registers and the RAM regions with their page counts), then for each region in header order its touched
/// pages as a little-endian 64-bit offset followed by 4096 bytes.
/// </remarks>
public sealed class MachineSnapshot
{
    private static ReadOnlySpan<byte> Magic => "HWMSNAP1"u8;

    private sealed record Header(ulong Cr0, ulong Cr3, ulong Cr4, ulong Efer, ulong Pat, uint Pkru, int Cpl, bool Ac, int MaxPhysAddrBits, List<RegionHeader> Regions);

    private sealed record RegionHeader(string Name, ulong Start, ulong Size, long Pages);

    private MachineSnapshot(PhysicalBus bus, CpuContext cpu)
    {
        Bus = bus;
        Cpu = cpu;
    }

    /// <summary>The restored RAM (regions at their addresses; nothing else is mapped).</summary>
    public PhysicalBus Bus { get; }

    /// <summary>A CPU context in the saved paging state, on <see cref="Bus"/>.</summary>
    public CpuContext Cpu { get; }

    /// <summary>Writes the RAM of <paramref name="bus"/> and the paging state of <paramref name="cpu"/> to <paramref name="path"/>.</summary>
    public static void Save(PhysicalBus bus, CpuContext cpu, string path)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(cpu);
        var regions = bus.Regions.OfType<RamRegion>().ToList();
        var header = new Header(cpu.Cr0Value, cpu.Cr3Value, cpu.Cr4Value, cpu.EferValue, cpu.PatValue, cpu.Pkru, cpu.Cpl, cpu.AlignmentCheck,
            bus.MaxPhysAddrBits, regions.Select(r => new RegionHeader(r.Name, r.Base, r.Size, r.TouchedPages)).ToList());
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var f = File.Create(path);
        f.Write(Magic);
        Span<byte> n = stackalloc byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(n, json.Length);
        f.Write(n[..4]);
        f.Write(json);
        foreach (var r in regions)
        {
            foreach (var (offset, data) in r.TouchedPageData())
            {
                BinaryPrimitives.WriteUInt64LittleEndian(n, offset);
                f.Write(n);
                f.Write(data.Span);
            }
        }
    }

    /// <summary>Reads a snapshot.</summary>
    /// <exception cref="InvalidDataException">The file is not a snapshot or is cut short; the message says which.</exception>
    public static MachineSnapshot Load(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 12 || !bytes.AsSpan(0, 8).SequenceEqual(Magic))
            throw new InvalidDataException($"'{path}' is not a HwMemModel snapshot (it does not start with HWMSNAP1); write one with hwmem run --save-snapshot.");
        int len = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        if (len <= 0 || 12 + len > bytes.Length) throw new InvalidDataException($"'{path}' is cut short: its header says {len} bytes.");
        Header header;
        try
        {
            header = JsonSerializer.Deserialize<Header>(bytes.AsSpan(12, len)) ?? throw new InvalidDataException($"'{path}' has an empty header.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' has a damaged header: {e.Message}");
        }
        if (header.Regions is null || header.MaxPhysAddrBits is < 36 or > 52)
            throw new InvalidDataException($"'{path}' has a damaged header: no region list, or MAXPHYADDR {header.MaxPhysAddrBits} outside 36-52.");
        var bus = new PhysicalBus(header.MaxPhysAddrBits, UnmappedPolicy.Zero);
        int at = 12 + len;
        foreach (var r in header.Regions)
        {
            try
            {
                bus.AddRam(r.Name ?? "ram", r.Start, r.Size);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"'{path}' describes a RAM region the bus cannot hold: {e.Message}");
            }
            for (long i = 0; i < r.Pages; i++)
            {
                if (at + 8 + 4096 > bytes.Length) throw new InvalidDataException($"'{path}' is cut short in region '{r.Name}'.");
                ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
                if (offset >= r.Size || r.Size - offset < 4096 || (offset & 0xFFF) != 0)
                    throw new InvalidDataException($"'{path}' has a page at offset 0x{offset:x} that is not a whole page of region '{r.Name}'.");
                bus.WriteBytes(r.Start + offset, bytes.AsSpan(at + 8, 4096), BusAttributes.Host);
                at += 8 + 4096;
            }
        }
        var cpu = new CpuContext(bus, 0);
        try
        {
            if ((header.Cr0 & Cr0.PG) != 0 && (header.Efer & Efer.LMA) != 0)
            {
                cpu.EnterLongMode(header.Cr3, (header.Cr4 & Cr4.LA57) != 0, header.Cr4 & ~(Cr4.PAE | Cr4.LA57), (header.Efer & Efer.NXE) != 0, (header.Cr0 & Cr0.WP) != 0);
            }
            cpu.SetPat(header.Pat);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"'{path}' holds a paging state the model cannot load: {e.Message}");
        }
        cpu.Pkru = header.Pkru;
        cpu.Cpl = header.Cpl is >= 0 and <= 3 ? header.Cpl : 0;
        cpu.AlignmentCheck = header.Ac;
        return new MachineSnapshot(bus, cpu);
    }
}
