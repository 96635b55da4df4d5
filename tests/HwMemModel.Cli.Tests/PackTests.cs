using System.Diagnostics;
using System.IO.Compression;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

/// <summary>Issue 6 §2: the CLI packs as a .NET tool named hwmem, with the README, the license and XML docs.</summary>
public sealed class PackTests
{
    [Test]
    public void The_cli_packs_as_the_hwmem_tool_and_the_libraries_carry_readme_license_and_xml_docs()
    {
        string root = RepoRoot();
        string output = Path.Combine(Path.GetTempPath(), $"hwmem-pack-{Environment.ProcessId}");
        Directory.CreateDirectory(output);
        try
        {
            Pack(root, Path.Combine("src", "HwMemModel.Cli", "HwMemModel.Cli.csproj"), output, noBuild: false);
            // The tool's build built every library in Release; pack them from those outputs.
            foreach (string project in new[] { "src/HwMemModel.Bus", "src/HwMemModel.Mmu", "src/HwMemModel.Kernel", "src/HwMemModel.Machine", "devices/HwMemModel.Devices", "devices/HwMemModel.Drivers" })
                Pack(root, Path.Combine(project, Path.GetFileName(project) + ".csproj"), output, noBuild: true);

            using (var tool = ZipFile.OpenRead(Path.Combine(output, "hwmem.0.6.0.nupkg")))
            {
                var names = tool.Entries.Select(e => e.FullName).ToArray();
                Assert.That(names, Does.Contain("tools/net10.0/any/DotnetToolSettings.xml"));
                Assert.That(names, Does.Contain("tools/net10.0/any/hwmem.dll"));
                Assert.That(names, Does.Contain("README.md"));
                using var settings = new StreamReader(tool.GetEntry("tools/net10.0/any/DotnetToolSettings.xml")!.Open());
                Assert.That(settings.ReadToEnd(), Does.Contain("<Command Name=\"hwmem\""));
            }
            foreach (string lib in new[] { "Bus", "Mmu", "Kernel", "Machine", "Devices", "Drivers" })
            {
                string nupkg = Path.Combine(output, $"HwMemModel.{lib}.0.6.0.nupkg");
                Assert.That(File.Exists(nupkg), Is.True, nupkg);
                using var zip = ZipFile.OpenRead(nupkg);
                var names = zip.Entries.Select(e => e.FullName).ToArray();
                Assert.That(names, Does.Contain("README.md").And.Contain("LICENSE").And.Contain($"lib/net10.0/HwMemModel.{lib}.xml"), lib);
            }
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    private static void Pack(string root, string project, string output, bool noBuild)
    {
        var args = new List<string> { "pack", Path.Combine(root, project), "-c", "Release", "-o", output, "--nologo" };
        if (noBuild) args.Add("--no-build");
        var psi = new ProcessStartInfo("dotnet", args) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = root };
        using var p = Process.Start(psi)!;
        var stderrTask = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, $"dotnet {string.Join(' ', args)}\n{stdout}{stderrTask.Result}");
    }
}
