using System.Diagnostics;
using HwMemModel.Firmware;

// hwmem-firmware write DIR            writes every image to DIR
// hwmem-firmware record DIR [NAME..]  runs each image on QEMU and writes DIR/NAME.txt and DIR/NAME.exit
// hwmem-firmware run NAME             runs one image on QEMU, serial output to stdout, QEMU's exit status as ours
return args switch
{
    ["write", var directory] => Write(directory),
    ["record", var directory, .. var names] => Record(directory, names),
    ["run", var name] => Run(name),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: write DIR | record DIR [NAME...] | run NAME");
    return 2;
}

static int Write(string directory)
{
    FirmwareImages.WriteAll(directory);
    foreach (var image in FirmwareImages.All)
    {
        Console.WriteLine($"{Path.Combine(directory, image.FileName)}  {image.Bytes.Length} bytes  {image.Kind}");
    }

    return 0;
}

static int Record(string directory, string[] names)
{
    Directory.CreateDirectory(directory);
    var images = names.Length == 0 ? FirmwareImages.All : names.Select(FirmwareImages.Get).ToList();
    foreach (var image in images)
    {
        var (output, status) = RunQemu(image);
        File.WriteAllText(Path.Combine(directory, image.Name + ".txt"), output);
        File.WriteAllText(Path.Combine(directory, image.Name + ".exit"), status + "\n");
        Console.WriteLine($"{image.Name}: exit status {status}, {output.Split('\n').Length - 1} lines");
    }

    return 0;
}

static int Run(string name)
{
    var (output, status) = RunQemu(FirmwareImages.Get(name));
    Console.Write(output);
    return status;
}

static (string Output, int Status) RunQemu(FirmwareImage image)
{
    var directory = Directory.CreateTempSubdirectory("hwmem-firmware-");
    try
    {
        var path = Path.Combine(directory.FullName, image.FileName);
        File.WriteAllBytes(path, image.Bytes);
        var start = new ProcessStartInfo("timeout", $"20 {image.QemuCommandLine(path)}")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start QEMU");
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (stderr.Result.Length > 0)
        {
            Console.Error.Write($"{image.Name}: QEMU stderr: {stderr.Result}");
        }

        return (output, process.ExitCode);
    }
    finally
    {
        directory.Delete(recursive: true);
    }
}
