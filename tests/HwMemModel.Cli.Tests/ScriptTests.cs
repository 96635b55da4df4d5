using HwMemModel.Cli;

namespace HwMemModel.Cli.Tests;

public sealed class ScriptTests
{
    private static (int Code, string Out, string Err) RunScript(string text)
    {
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-script-{Guid.NewGuid():N}.hwm");
        File.WriteAllText(path, text);
        try
        {
            var o = new StringWriter();
            var e = new StringWriter();
            int code = HwmemCommand.Run(["script", path], o, e);
            return (code, o.ToString(), e.ToString().Replace(path, "FILE", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestCase("machine bare\nfrobnicate 1\n", "FILE:2: unknown command 'frobnicate'; the commands are:")]
    [TestCase("read 0x1000\n", "FILE:1: no machine yet; start with 'machine bare' or 'machine kernel'.")]
    [TestCase("machine bare\npoke 0x1000 0xZZ\n", "FILE:2: '0xZZ' is not a number; use hex (0x...) or decimal.")]
    [TestCase("machine bare\nmap 0x1000 0x2000 3K\n", "FILE:2: page size '3K'; use 4K, 2M or 1G.")]
    [TestCase("machine bare\nmap 0x1000 0x2001 4K\n", "FILE:2: A 4K mapping needs va and pa aligned")]
    [TestCase("machine bare\ncache c 64\n", "FILE:2: this needs the kernel model; start with 'machine kernel'.")]
    [TestCase("machine kernel\nfree c x\n", "FILE:2: no cache 'c'; create it with 'cache c SIZE'.")]
    public void A_bad_line_stops_the_script_with_its_number_and_what_is_accepted(string script, string message)
    {
        var (code, _, err) = RunScript(script);
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.StartWith("hwmem script: " + message));
    }

    [Test]
    public void A_user_write_through_a_supervisor_pde_faults_with_error_code_7()
    {
        // SDM Vol. 3A §4.6: U/S must be 1 at every level for a user access; P=1, W/R=1, U/S=1 -> 0x7.
        var (code, output, _) = RunScript("""
            machine bare
            poke 0x1000 0x2007
            poke 0x2000 0x3007
            poke 0x3000 0x4003
            poke 0x4000 0x5007
            paging 0x1000 wp
            write 0x0 1 user
            """);
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("user write of 0x0: #PF(0x7)"));
    }

    [Test]
    public void A_missing_file_is_a_usage_error()
    {
        var o = new StringWriter();
        var e = new StringWriter();
        Assert.That(HwmemCommand.Run(["script", "/nonexistent.hwm"], o, e), Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(e.ToString(), Does.Contain("'/nonexistent.hwm' does not exist"));
    }
}

public sealed class ScriptHostApiErrorTests
{
    [Test]
    public void A_value_the_model_refuses_is_a_script_error_not_an_internal_error()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-script-size-{Environment.ProcessId}.hwm");
        File.WriteAllText(path, "machine kernel\ncache c 64\nalloc c a\nstore a 1 3\n");
        try
        {
            var e = new StringWriter();
            int code = HwmemCommand.Run(["script", path], new StringWriter(), e);
            Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage), e.ToString());
            Assert.That(e.ToString(), Does.StartWith($"hwmem script: {path}:4: "));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void A_snapshot_with_a_region_the_bus_cannot_hold_is_refused_as_damaged()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hwmem-bad-snap-{Environment.ProcessId}");
        byte[] json = System.Text.Encoding.UTF8.GetBytes("""{"Cr0":0,"Cr3":0,"Cr4":0,"Efer":0,"Pat":0,"Pkru":0,"Cpl":0,"Ac":false,"MaxPhysAddrBits":40,"Regions":[{"Name":"x","Start":1,"Size":0,"Pages":0}]}""");
        File.WriteAllBytes(path, [.. "HWMSNAP1"u8.ToArray(), .. BitConverter.GetBytes(json.Length), .. json]);
        try
        {
            var e = new StringWriter();
            Assert.That(HwmemCommand.Run(["walk", "0x1000", "--snapshot", path], new StringWriter(), e), Is.EqualTo(HwmemCommand.ExitUsage));
            Assert.That(e.ToString(), Does.Contain("describes a RAM region the bus cannot hold"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
