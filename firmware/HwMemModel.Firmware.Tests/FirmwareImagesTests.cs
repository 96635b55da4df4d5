using System.Buffers.Binary;

namespace HwMemModel.Firmware.Tests;

public sealed class FirmwareImagesTests
{
    private static IEnumerable<FirmwareImage> BiosImages => FirmwareImages.All.Where(i => i.Kind == ImageKind.Bios);

    private static IEnumerable<FirmwareImage> MultibootImages => FirmwareImages.All.Where(i => i.Kind == ImageKind.Multiboot);

    [Test]
    public void Names_are_unique_and_Get_finds_each_image()
    {
        Assert.That(FirmwareImages.All.Select(i => i.Name), Is.Unique);
        foreach (var image in FirmwareImages.All)
        {
            Assert.That(FirmwareImages.Get(image.Name), Is.SameAs(image));
        }

        Assert.That(() => FirmwareImages.Get("no-such-image"), Throws.TypeOf<KeyNotFoundException>());
    }

    [Test]
    public void Building_twice_gives_the_same_bytes()
    {
        Assert.That(FirmwareImages.Paging().Bytes, Is.EqualTo(FirmwareImages.Get("paging").Bytes));
        Assert.That(FirmwareImages.MultibootElf().Bytes, Is.EqualTo(FirmwareImages.Get("multiboot-elf").Bytes));
    }

    [TestCaseSource(nameof(BiosImages))]
    public void Bios_image_is_64_KiB_with_a_far_jump_to_F000_F000_at_the_reset_vector(FirmwareImage image)
    {
        Assert.That(image.Bytes, Has.Length.EqualTo(0x10000));
        Assert.That(image.Bytes.AsSpan(0xFFF0, 5).ToArray(), Is.EqualTo(new byte[] { 0xEA, 0x00, 0xF0, 0x00, 0xF0 }));
        Assert.That(image.FileName, Is.EqualTo(image.Name + ".bin"));
        Assert.That(image.QemuOption, Is.EqualTo("-bios"));
    }

    [TestCaseSource(nameof(MultibootImages))]
    public void Multiboot_header_is_in_the_first_8_KiB_with_a_zero_checksum_and_requests_memory_information(FirmwareImage image)
    {
        var offset = FindMultibootHeader(image.Bytes);
        Assert.That(offset, Is.GreaterThanOrEqualTo(0), "no header");
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(image.Bytes.AsSpan(offset));
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(image.Bytes.AsSpan(offset + 4));
        var checksum = BinaryPrimitives.ReadUInt32LittleEndian(image.Bytes.AsSpan(offset + 8));
        Assert.That(unchecked(magic + flags + checksum), Is.Zero);
        Assert.That(flags & 2, Is.EqualTo(2));
        Assert.That(image.QemuOption, Is.EqualTo("-kernel"));
    }

    [Test]
    public void Aout_kludge_fields_describe_a_load_at_1_MiB()
    {
        var bytes = FirmwareImages.Get("multiboot-aout").Bytes;
        var fields = Enumerable.Range(0, 8).Select(i => BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i * 4))).ToArray();
        Assert.That(fields[1] & 0x10000, Is.EqualTo(0x10000), "flags bit 16");
        Assert.That(fields[3], Is.EqualTo(0x100000), "header_addr");
        Assert.That(fields[4], Is.EqualTo(0x100000), "load_addr");
        Assert.That(fields[5], Is.EqualTo(0x100000 + (uint)bytes.Length), "load_end_addr");
        Assert.That(fields[6], Is.GreaterThan(fields[5]), "bss_end_addr");
        Assert.That(fields[7], Is.InRange(0x100020u, fields[5] - 1), "entry_addr");
    }

    [Test]
    public void Elf_image_is_an_ELF32_i386_executable_with_PT_LOAD_segments_covering_its_entry()
    {
        var image = FirmwareImages.Get("multiboot-elf");
        var s = image.Bytes.AsSpan();
        Assert.That(image.FileName, Is.EqualTo("multiboot-elf.elf"));
        Assert.That(s[..4].ToArray(), Is.EqualTo("\u007fELF"u8.ToArray()));
        Assert.That(s[4], Is.EqualTo(1), "ELFCLASS32");
        Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(s[18..]), Is.EqualTo(3), "EM_386");
        var entry = BinaryPrimitives.ReadUInt32LittleEndian(s[24..]);
        var phoff = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[28..]);
        var phnum = BinaryPrimitives.ReadUInt16LittleEndian(s[44..]);
        var entryCovered = false;
        for (var i = 0; i < phnum; i++)
        {
            var ph = s[(phoff + i * 32)..];
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(ph), Is.EqualTo(1), "PT_LOAD");
            var offset = BinaryPrimitives.ReadUInt32LittleEndian(ph[4..]);
            var paddr = BinaryPrimitives.ReadUInt32LittleEndian(ph[12..]);
            var filesz = BinaryPrimitives.ReadUInt32LittleEndian(ph[16..]);
            var memsz = BinaryPrimitives.ReadUInt32LittleEndian(ph[20..]);
            var flags = BinaryPrimitives.ReadUInt32LittleEndian(ph[24..]);
            Assert.That(offset + filesz, Is.LessThanOrEqualTo((uint)s.Length));
            Assert.That(memsz, Is.GreaterThanOrEqualTo(filesz));
            entryCovered |= (flags & 1) != 0 && entry >= paddr && entry < paddr + filesz;
        }

        Assert.That(entryCovered, Is.True, "entry inside an executable segment");
    }

    [TestCaseSource(typeof(FirmwareImages), nameof(FirmwareImages.All))]
    public void Every_image_has_a_recorded_QEMU_result_ending_in_success(FirmwareImage image)
    {
        Assert.That(image.QemuSerialOutput, Is.Not.Null.And.EndsWith("done\n"));
        Assert.That(image.QemuExitStatus, Is.EqualTo(FirmwareImages.QemuSuccessExitStatus));
        Assert.That(image.ExpectedExitValue, Is.Zero);
    }

    [TestCaseSource(typeof(FirmwareImages), nameof(FirmwareImages.All))]
    public void Divergences_replace_recorded_lines(FirmwareImage image)
    {
        var qemuLines = image.QemuSerialOutput!.Split('\n');
        var sdmLines = image.SdmSerialOutput!.Split('\n');
        Assert.That(sdmLines, Has.Length.EqualTo(qemuLines.Length));
        foreach (var divergence in image.KnownDivergences)
        {
            Assert.That(qemuLines, Has.Member(divergence.QemuLine));
            Assert.That(sdmLines, Has.Member(divergence.SdmLine).And.No.Member(divergence.QemuLine));
        }

        Assert.That(qemuLines.Zip(sdmLines).Count(p => p.First != p.Second), Is.EqualTo(image.KnownDivergences.Count));
    }

    [Test]
    public void Paging_divergences_are_the_reserved_bit_error_codes_and_the_1_GiB_accessed_bit()
    {
        var divergences = FirmwareImages.Get("paging").KnownDivergences;
        Assert.That(divergences.Count(d => d.QemuLine.Contains("err=0x8 ", StringComparison.Ordinal) && d.SdmLine.Contains("err=0x9 ", StringComparison.Ordinal)), Is.EqualTo(3));
        Assert.That(divergences.Count(d => d.QemuLine.Contains("err=0xa ", StringComparison.Ordinal) && d.SdmLine.Contains("err=0xb ", StringComparison.Ordinal)), Is.EqualTo(1));
        Assert.That(divergences.Count(d => d.QemuLine.EndsWith("A=1 D=0", StringComparison.Ordinal) && d.SdmLine.EndsWith("A=0 D=0", StringComparison.Ordinal)), Is.EqualTo(1));
    }

    [Test]
    public void WriteAll_writes_one_file_per_image()
    {
        var directory = Path.Combine(Path.GetTempPath(), "hwmem-firmware-" + Guid.NewGuid().ToString("N"));
        try
        {
            FirmwareImages.WriteAll(directory);
            foreach (var image in FirmwareImages.All)
            {
                Assert.That(File.ReadAllBytes(Path.Combine(directory, image.FileName)), Is.EqualTo(image.Bytes));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static int FindMultibootHeader(byte[] bytes)
    {
        for (var offset = 0; offset + 12 <= Math.Min(bytes.Length, 8192); offset += 4)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset)) == 0x1BADB002)
            {
                return offset;
            }
        }

        return -1;
    }
}
