using System.Globalization;

namespace HwMemModel.Firmware;

/// <summary>A firmware image, what it is for and QEMU's recorded results for it.</summary>
/// <param name="Name">Short name, also the file name stem (<c>NAME.bin</c>, <c>expected/NAME.txt</c>).</param>
/// <param name="Kind">How the image is started.</param>
/// <param name="Bytes">The image file's contents.</param>
/// <param name="Description">One line saying what the image checks.</param>
public sealed record FirmwareImage(string Name, ImageKind Kind, byte[] Bytes, string Description)
{
    /// <summary>The file name <see cref="FirmwareImages.WriteAll"/> uses: <c>NAME.bin</c>, or <c>NAME.elf</c> for an ELF file.</summary>
    public string FileName => Name + (Bytes.AsSpan().StartsWith("\u007fELF"u8) ? ".elf" : ".bin");

    /// <summary>The QEMU option that starts the image: <c>-bios</c> or <c>-kernel</c>.</summary>
    public string QemuOption => Kind == ImageKind.Bios ? "-bios" : "-kernel";

    /// <summary>
    /// The serial output QEMU 7.2 produced with the reference command line (<c>firmware/expected/NAME.txt</c>,
    /// embedded at build time), or null when none was recorded.
    /// </summary>
    public string? QemuSerialOutput => ReadResource(".txt");

    /// <summary>
    /// QEMU's exit status for the reference run (<c>firmware/expected/NAME.exit</c>): (v &lt;&lt; 1) | 1 for the
    /// value v the image wrote to port 0xF4, so 1 for success; null when none was recorded.
    /// </summary>
    public int? QemuExitStatus =>
        ReadResource(".exit") is { } text ? int.Parse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture) : null;

    /// <summary>
    /// The value written to isa-debug-exit in the reference run (QEMU's exit status shifted right by one), or null
    /// when no status was recorded or QEMU did not end through isa-debug-exit (an even status).
    /// </summary>
    public int? ExpectedExitValue => QemuExitStatus is int status && (status & 1) == 1 ? status >> 1 : null;

    /// <summary>Lines of <see cref="QemuSerialOutput"/> where QEMU deviates from the SDM (<c>firmware/expected/NAME.divergences</c>).</summary>
    public IReadOnlyList<QemuDivergence> KnownDivergences =>
        ReadResource(".divergences") is { } text
            ? [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(ParseDivergence)]
            : [];

    /// <summary>
    /// The serial output of an SDM-conforming machine: <see cref="QemuSerialOutput"/> with every line listed in
    /// <see cref="KnownDivergences"/> replaced by its SDM line. This is what the model should print.
    /// </summary>
    public string? SdmSerialOutput
    {
        get
        {
            if (QemuSerialOutput is not { } output)
            {
                return null;
            }

            var replacements = KnownDivergences.ToDictionary(d => d.QemuLine, d => d.SdmLine);
            var lines = output.Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                if (replacements.TryGetValue(lines[i], out var sdm))
                {
                    lines[i] = sdm;
                }
            }

            return string.Join('\n', lines);
        }
    }

    /// <summary>
    /// The reference QEMU command line for this image (QEMU 7.2, TCG), with <paramref name="path"/> as the image file.
    /// </summary>
    public string QemuCommandLine(string path) =>
        $"qemu-system-x86_64 {FirmwareImages.QemuArguments} {QemuOption} {path}" + (Cpus > 1 ? $" -smp {Cpus}" : "");

    /// <summary>
    /// CPUs of the reference runs (QEMU's <c>-smp N</c>, the model's <c>--smp N</c>): the recording in
    /// <c>firmware/expected</c> was made with this many, and the conformance tests run the model with as many. 1 for most.
    /// </summary>
    public int Cpus { get; init; } = 1;

    private static QemuDivergence ParseDivergence(string line)
    {
        var tab = line.IndexOf('\t', StringComparison.Ordinal);
        return tab < 0
            ? throw new FormatException($"divergence line without a tab: {line}")
            : new QemuDivergence(line[..tab], line[(tab + 1)..]);
    }

    private string? ReadResource(string extension)
    {
        using var stream = typeof(FirmwareImage).Assembly.GetManifestResourceStream($"HwMemModel.Firmware.expected.{Name}{extension}");
        if (stream is null)
        {
            return null;
        }

        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
