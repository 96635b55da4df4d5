using HwMemModel.Cli;

namespace HwMemModel.Cli.Tests;

public sealed class HwmemCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = HwmemCommand.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    [Test]
    public void Demo_runs_and_shows_walks_the_caught_missing_flush_and_counters()
    {
        var (code, output, _) = Run("demo");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("System RAM"));
        Assert.That(output, Does.Contain("the PDE has U/S=0"));
        Assert.That(output, Does.Contain("CR4.SMEP=1"));
        Assert.That(output, Does.Contain("a TLB flush is missing"));
        Assert.That(output, Does.Contain("After INVLPG the read returns 0xfeedfacecafebeef"));
        Assert.That(output, Does.Contain("walks "));
        Assert.That(output, Does.Contain("x86/PAT: Configuration [0-7]: WB  WC  UC- UC  WB  WP  UC- WT  "));
        Assert.That(output, Does.Contain("kmalloc(100, GFP_KERNEL)  = 0xffff888"));
        Assert.That(output, Does.Contain("slabinfo - version: 2.1"));
        Assert.That(output, Does.Contain("(UC-, readw: 0xf4fa = cli; hlt at the reset vector)"));
        Assert.That(output, Does.Contain("VmallocTotal:   34359738367 kB"));
        Assert.That(output, Does.Contain("x86/mm: Checked W+X mappings: passed, no W+X pages found."));
        Assert.That(output, Does.Contain("hello from long mode"));
        Assert.That(output, Does.Contain("demand-paging: faults=66 page tables allocated=8 data pages allocated=66"));
    }

    [Test]
    public void Demo_output_is_deterministic()
    {
        string first = Run("demo").Out;
        string second = Run("demo").Out;
        Assert.That(second, Is.EqualTo(first));
    }

    [Test]
    public void Walk_of_an_allowed_access_exits_zero_with_the_physical_address()
    {
        var (code, output, _) = Run("walk", "0xffff_8880_0200_1000");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.Contain("physical address 0x2001000 in a 2M page"));
    }

    [Test]
    public void Walk_of_a_faulting_access_exits_3_and_names_level_and_bit()
    {
        var (code, output, _) = Run("walk", "0xffffffff81000000", "--access", "write");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitFault));
        Assert.That(output, Does.Contain("the PTE has R/W=0 and CR0.WP=1"));
        Assert.That(output, Does.Contain("error code 0x3"));
    }

    [TestCase("0xzz")]
    [TestCase("-5")]
    [TestCase("0x1_0000_0000_0000_0000")]
    public void Walk_with_a_bad_address_exits_2_and_says_what_is_accepted(string address)
    {
        var (code, _, err) = Run("walk", address);
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.Contain($"'{address}' is not an address; give a hex (0x...) or decimal number"));
    }

    [Test]
    public void Walk_with_an_unknown_access_kind_exits_2()
    {
        var (code, _, err) = Run("walk", "0x1000", "--access", "jump");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.Contain("jump"));
    }

    [Test]
    public void User_and_implicit_together_are_refused()
    {
        var (code, _, err) = Run("walk", "0x1000", "--user", "--implicit");
        Assert.That(code, Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(err, Does.Contain("--user and --implicit exclude each other"));
    }

    [Test]
    public void Iomem_prints_linux_format()
    {
        var (code, output, _) = Run("iomem");
        Assert.That(code, Is.Zero);
        Assert.That(output, Does.StartWith("00000000-0009ffff : System RAM"));
    }
}
