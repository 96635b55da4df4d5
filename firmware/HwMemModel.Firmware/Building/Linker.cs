using Iced.Intel;

namespace HwMemModel.Firmware.Building;

/// <summary>A piece of code or data: its bitness, the address it runs at and the code that builds it.</summary>
/// <param name="Name">Name used in error messages.</param>
/// <param name="Bitness">16, 32 or 64.</param>
/// <param name="Origin">Address the section runs at.</param>
/// <param name="Build">Emits the section; called once per linker pass, so it must be deterministic.</param>
/// <param name="LoadAddress">Where the bytes are stored in the image, when not at <paramref name="Origin"/>
/// (code copied at run time).</param>
internal sealed record SectionSpec(string Name, int Bitness, ulong Origin, Action<Asm> Build, ulong? LoadAddress = null)
{
    /// <summary>Where the section's bytes go in the image.</summary>
    public ulong Load => LoadAddress ?? Origin;
}

/// <summary>An assembled section.</summary>
/// <param name="Spec">What was assembled.</param>
/// <param name="Bytes">The machine code and data.</param>
internal sealed record LinkedSection(SectionSpec Spec, byte[] Bytes);

/// <summary>The sections of one image and the symbols they export.</summary>
/// <param name="Sections">Assembled sections in the order given.</param>
/// <param name="Symbols">Exported symbol addresses.</param>
internal sealed record LinkResult(IReadOnlyList<LinkedSection> Sections, IReadOnlyDictionary<string, ulong> Symbols)
{
    /// <summary>Copies every section into <paramref name="image"/>, whose first byte is at <paramref name="imageBase"/>.</summary>
    public void CopyTo(byte[] image, ulong imageBase)
    {
        foreach (var section in Sections)
        {
            var offset = checked((long)(section.Spec.Load - imageBase));
            if (offset < 0 || offset + section.Bytes.Length > image.Length)
            {
                throw new InvalidOperationException($"section {section.Spec.Name} (0x{section.Spec.Load:X}, {section.Bytes.Length} bytes) is outside the image");
            }

            section.Bytes.CopyTo(image, offset);
        }
    }
}

/// <summary>
/// Assembles sections of mixed bitness that refer to each other by address. Each pass rebuilds every
/// section with the addresses found by the previous pass; the result is final once a pass changes
/// nothing (instruction sizes can depend on addresses, so one pass is not always enough).
/// </summary>
internal static class Linker
{
    private const int MaxPasses = 16;

    public static LinkResult Link(params SectionSpec[] specs)
    {
        var symbols = new Dictionary<string, ulong>();
        var labelAddresses = new List<ulong>?[specs.Length];
        for (var pass = 0; pass < MaxPasses; pass++)
        {
            var complete = true;
            var changed = false;
            var newSymbols = new Dictionary<string, ulong>();
            var sections = new List<LinkedSection>();
            for (var i = 0; i < specs.Length; i++)
            {
                var spec = specs[i];
                var asm = new Asm(spec.Bitness, spec.Origin, symbols, labelAddresses[i]);
                spec.Build(asm);
                asm.EmitPool();
                var writer = new ByteWriter();
                var result = asm.A.Assemble(writer, spec.Origin, BlockEncoderOptions.ReturnNewInstructionOffsets);
                var addresses = asm.Labels.Select(l => result.GetLabelRIP(l)).ToList();
                if (labelAddresses[i] is not { } previous || !previous.SequenceEqual(addresses))
                {
                    changed = true;
                }

                labelAddresses[i] = addresses;
                complete &= asm.Complete;
                foreach (var (name, index) in asm.Exports)
                {
                    if (!newSymbols.TryAdd(name, addresses[index]))
                    {
                        throw new InvalidOperationException($"symbol {name} exported twice");
                    }
                }

                sections.Add(new LinkedSection(spec, writer.ToArray()));
            }

            if (!newSymbols.OrderBy(p => p.Key).SequenceEqual(symbols.OrderBy(p => p.Key)))
            {
                changed = true;
            }

            symbols = newSymbols;
            if (complete && !changed)
            {
                CheckOverlaps(sections);
                return new LinkResult(sections, symbols);
            }
        }

        throw new InvalidOperationException("section addresses did not settle");
    }

    private static void CheckOverlaps(List<LinkedSection> sections)
    {
        var ordered = sections.OrderBy(s => s.Spec.Load).ToList();
        for (var i = 1; i < ordered.Count; i++)
        {
            var previous = ordered[i - 1];
            if (previous.Spec.Load + (ulong)previous.Bytes.Length > ordered[i].Spec.Load)
            {
                throw new InvalidOperationException($"section {previous.Spec.Name} ({previous.Bytes.Length} bytes at 0x{previous.Spec.Load:X}) runs into {ordered[i].Spec.Name} at 0x{ordered[i].Spec.Load:X}");
            }
        }
    }

    private sealed class ByteWriter : CodeWriter
    {
        private readonly List<byte> _bytes = [];

        public override void WriteByte(byte value) => _bytes.Add(value);

        public byte[] ToArray() => [.. _bytes];
    }
}
