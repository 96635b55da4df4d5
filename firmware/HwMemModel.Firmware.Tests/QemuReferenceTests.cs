using System.Diagnostics;

namespace HwMemModel.Firmware.Tests;

/// <summary>
/// Runs each image on QEMU with the reference command line and compares with the recorded result
/// (firmware/expected). Ignored when qemu-system-x86_64 is not installed.
/// </summary>
[Category("Qemu")]
public sealed class QemuReferenceTests
{
    [TestCaseSource(typeof(FirmwareImages), nameof(FirmwareImages.All))]
    public void QEMU_prints_the_recorded_output_and_exits_with_the_recorded_status(FirmwareImage image)
    {
        var qemu = FindQemu();
        if (qemu is null)
        {
            Assert.Ignore("qemu-system-x86_64 is not installed");
        }

        var directory = Directory.CreateTempSubdirectory("hwmem-firmware-");
        try
        {
            var path = Path.Combine(directory.FullName, image.FileName);
            File.WriteAllBytes(path, image.Bytes);
            var start = new ProcessStartInfo(qemu!)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
            };
            foreach (var argument in FirmwareImages.QemuArguments.Split(' '))
            {
                start.ArgumentList.Add(argument);
            }

            start.ArgumentList.Add(image.QemuOption);
            start.ArgumentList.Add(path);
            if (image.Cpus > 1)
            {
                start.ArgumentList.Add("-smp");
                start.ArgumentList.Add(image.Cpus.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            var stderr = process.StandardError.ReadToEndAsync();
            var stdout = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromSeconds(20)))
            {
                process.Kill();
                Assert.Fail("QEMU did not finish within 20 s");
            }

            Assert.That(stdout.Result, Is.EqualTo(image.QemuSerialOutput), stderr.Result);
            Assert.That(process.ExitCode, Is.EqualTo(image.QemuExitStatus));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static string? FindQemu() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "qemu-system-x86_64"))
            .FirstOrDefault(File.Exists);
}
