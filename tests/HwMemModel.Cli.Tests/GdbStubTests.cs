using HwMemModel.Cli;
using HwMemModel.Cli.Gdb;
using HwMemModel.Firmware;
using Iced.Intel;

namespace HwMemModel.Cli.Tests;

/// <summary>
/// <c>hwmem run --gdb</c> at the protocol level: a small remote-protocol client over TCP against the stub serving the
/// <c>hello</c> image (reset in real mode, long mode entered at <see cref="Entry64"/> with the first GiB
/// identity-mapped by 2 MiB pages).
/// </summary>
[NonParallelizable]
public sealed class GdbStubTests
{
    /// <summary>GDB's register numbers for x86-64 (the order of 64bit-core.xml, then the stub's extra features).</summary>
    private static class Reg
    {
        public const int Rip = 16, Cs = 18, Cr0 = 42;
    }

    /// <summary>The first long-mode instruction of every BIOS image (BiosRom's entry64).</summary>
    private const ulong Entry64 = 0xF_0000;
    private static string _dir = "";
    private static string _hello = "";
    private static string _loop = "";

    [OneTimeSetUp]
    public void WriteImages()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hwmem-gdb-tests-" + Environment.ProcessId);
        Directory.CreateDirectory(_dir);
        _hello = Path.Combine(_dir, "hello.bin");
        File.WriteAllBytes(_hello, FirmwareImages.Hello().Bytes);
        var loop = new byte[65536];
        loop[0xFFF0] = 0xEB; // jmp $ at the reset vector
        loop[0xFFF1] = 0xFE;
        _loop = Path.Combine(_dir, "loop.bin");
        File.WriteAllBytes(_loop, loop);
    }

    [OneTimeTearDown]
    public void RemoveImages()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static (StubHost Host, RspClient Client) Connect(string image, params string[] extra)
    {
        var host = StubHost.Start(image, extra);
        var client = new RspClient(host.Port);
        return (host, client);
    }

    /// <summary>Runs from reset to the breakpoint at <see cref="Entry64"/> (long mode, paging on).</summary>
    private static void RunToLongMode(RspClient c)
    {
        Assert.That(c.Request($"Z0,{Entry64:x},1"), Is.EqualTo("OK"));
        Assert.That(c.Request("c"), Is.EqualTo("T05swbreak:;thread:1;"));
        Assert.That(c.Request($"z0,{Entry64:x},1"), Is.EqualTo("OK"));
    }

    private static int Kill(StubHost host, RspClient c)
    {
        c.SendRaw(RspClient.Frame("k"));
        c.ReadByte(); // '+'
        int status = host.WaitForExit();
        c.Dispose();
        host.Dispose();
        return status;
    }

    [Test]
    public void Handshake_advertises_features_and_a_target_description_for_x86_64()
    {
        var (host, c) = Connect(_hello);
        string supported = c.Request("qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386");
        Assert.That(supported, Does.Contain("PacketSize=4000").And.Contain("qXfer:features:read+").And.Contain("swbreak+")
            .And.Contain("hwbreak+").And.Contain("vContSupported+"));
        Assert.That(c.Request("vMustReplyEmpty"), Is.Empty);
        string xml = "";
        for (int offset = 0; ;)
        {
            string part = c.Request($"qXfer:features:read:target.xml:{offset:x},200");
            xml += part[1..];
            offset += part.Length - 1;
            if (part[0] == 'l') break;
            Assert.That(part[0], Is.EqualTo('m'));
        }
        Assert.That(xml, Does.Contain("<architecture>i386:x86-64</architecture>")
            .And.Contain("org.gnu.gdb.i386.core").And.Contain("org.gnu.gdb.i386.segments")
            .And.Contain("<reg name=\"rip\" bitsize=\"64\"").And.Contain("name=\"fs_base\"").And.Contain("name=\"cr3\"").And.Contain("name=\"efer\""));
        Assert.That(c.Request("qXfer:features:read:nosuch.xml:0,100"), Does.StartWith("E"));
        Assert.That(c.Request("?"), Is.EqualTo("T05thread:1;"));
        Assert.That(c.Request("qC"), Is.EqualTo("QC1"));
        Assert.That(c.Request("qfThreadInfo"), Is.EqualTo("m1"));
        Assert.That(c.Request("qsThreadInfo"), Is.EqualTo("l"));
        Assert.That(c.Request("qAttached"), Is.EqualTo("1"));
        Assert.That(c.Request("Hg0"), Is.EqualTo("OK"));
        Assert.That(c.Request("Hc-1"), Is.EqualTo("OK"));
        Assert.That(c.Request("vCont?"), Does.StartWith("vCont;c;C;s;S"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Registers_after_reset_show_the_reset_vector()
    {
        var (host, c) = Connect(_hello);
        string g = c.Request("g");
        // rax..r15 (16 x 8 bytes), rip (8), eflags (4), cs (4): hex offsets 256, 272, 280.
        Assert.That(Convert.ToUInt64(string.Concat(Enumerable.Range(0, 8).Select(i => g.Substring(256 + 2 * (7 - i), 2))), 16), Is.EqualTo(0xFFF0UL));
        Assert.That(g.Substring(280, 8), Is.EqualTo("00f00000"), "CS = 0xF000");
        Assert.That(g.Substring(272, 8), Is.EqualTo("02000000"), "EFLAGS = 2");
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(0xFFF0UL));
        Assert.That(c.Register(Reg.Cs), Is.EqualTo(0xF000UL));
        Assert.That(c.Register(Reg.Cr0), Is.EqualTo(0x6000_0010UL));
        Assert.That(c.Request("p18"), Does.Match("^x+$"), "st0 is unavailable: the model has no x87");
        Assert.That(c.Request("p999"), Does.StartWith("E"));
        // Writing a register: RAX through P, read back through g.
        Assert.That(c.Request("P0=efcdab8967452301"), Is.EqualTo("OK"));
        Assert.That(c.Request("g")[..16], Is.EqualTo("efcdab8967452301"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Memory_reads_by_virtual_address_through_the_mmu()
    {
        var (host, c) = Connect(_hello);
        var image = FirmwareImages.Hello().Bytes;
        // Paging off: the ROM's low alias at 0xF0000 holds the image's first bytes.
        Assert.That(c.Request($"m{Entry64:x},4"), Is.EqualTo(Convert.ToHexStringLower(image.AsSpan(0, 4))));
        RunToLongMode(c);
        // Paging on: the same bytes through the 2 MiB identity mapping.
        Assert.That(c.Request($"m{Entry64:x},8"), Is.EqualTo(Convert.ToHexStringLower(image.AsSpan(0, 8))));
        // A write and a read back in RAM.
        Assert.That(c.Request("M7000,4:deadbeef"), Is.EqualTo("OK"));
        Assert.That(c.Request("m7000,4"), Is.EqualTo("deadbeef"));
        Assert.That(c.Request("X7004,2:}]}\u0003"), Is.EqualTo("OK"), "X with escaped '}' and '#'");
        Assert.That(c.Request("m7004,2"), Is.EqualTo("7d23"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Faulting_addresses_give_E14_and_not_an_exception()
    {
        var (host, c) = Connect(_hello);
        RunToLongMode(c);
        Assert.That(c.Request("m40000000,8"), Is.EqualTo("E14"), "above the 1 GiB identity map: PDPTE not present");
        Assert.That(c.Request("m8000000000000000,8"), Is.EqualTo("E14"), "not canonical");
        Assert.That(c.Request("M40000000,1:00"), Is.EqualTo("E14"));
        // A read that starts mapped and runs into the hole returns the mapped part.
        Assert.That(c.Request("m3ffffffe,4").Length, Is.EqualTo(4));
        Assert.That(c.Request("mffffffffffffffff,8"), Is.EqualTo("E14"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Debugger_reads_leave_the_tlbs_and_accessed_bits_alone()
    {
        var (host, c) = Connect(_hello);
        RunToLongMode(c);
        string before = c.Monitor("tlb");
        Assert.That(c.Request("m20000000,10"), Has.Length.EqualTo(32));
        Assert.That(c.Monitor("walk 0x20000000"), Does.Contain("allowed"));
        Assert.That(c.Monitor("tlb"), Is.EqualTo(before));
        Assert.That(before, Does.Not.Contain("0x0000000020000000"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Software_breakpoint_stops_before_the_instruction_without_patching_memory()
    {
        var (host, c) = Connect(_hello);
        string original = c.Request($"m{Entry64:x},4");
        Assert.That(c.Request($"Z0,{Entry64:x},1"), Is.EqualTo("OK"));
        Assert.That(c.Request($"m{Entry64:x},4"), Is.EqualTo(original), "no INT3 written");
        Assert.That(c.Request("c"), Is.EqualTo("T05swbreak:;thread:1;"));
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(Entry64));
        Assert.That(c.Register(Reg.Cr0) & 0x8000_0000, Is.Not.Zero, "paging is on");
        Assert.That(host.Out.ToString(), Does.Contain("hello: EDX at reset").And.Not.Contain("long mode"));
        Assert.That(c.Request("?"), Is.EqualTo("T05swbreak:;thread:1;"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Single_step_advances_rip_by_the_instruction_length()
    {
        var (host, c) = Connect(_hello);
        RunToLongMode(c);
        for (int i = 0; i < 5; i++)
        {
            ulong rip = c.Register(Reg.Rip);
            var bytes = Convert.FromHexString(c.Request($"m{rip:x},f"));
            var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes), rip);
            decoder.Decode(out var insn);
            Assert.That(insn.FlowControl, Is.EqualTo(FlowControl.Next), $"straight-line code at 0x{rip:x}");
            string reply = i % 2 == 0 ? c.Request("s") : c.Request("vCont;s:1");
            Assert.That(reply, Is.EqualTo("T05thread:1;"));
            Assert.That(c.Register(Reg.Rip), Is.EqualTo(rip + (ulong)insn.Length), insn.ToString());
        }
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Hardware_breakpoints_are_limited_to_four_and_stop_with_hwbreak()
    {
        var (host, c) = Connect(_hello);
        for (int i = 0; i < 4; i++) Assert.That(c.Request($"Z1,{0x1000 + i:x},1"), Is.EqualTo("OK"));
        Assert.That(c.Request("Z1,2000,1"), Does.StartWith("E"), "a fifth one: DR0-DR3 are full");
        for (int i = 0; i < 4; i++) Assert.That(c.Request($"z1,{0x1000 + i:x},1"), Is.EqualTo("OK"));
        Assert.That(c.Request($"Z1,{Entry64:x},1"), Is.EqualTo("OK"));
        Assert.That(c.Request("vCont;c"), Is.EqualTo("T05hwbreak:;thread:1;"));
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(Entry64));
        Assert.That(c.Request("Z2,7000,4"), Is.Empty, "watchpoints are not supported");
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Breakpoint_inside_a_decoded_block_stops_at_that_instruction()
    {
        var (host, c) = Connect(_hello);
        RunToLongMode(c);
        // Execute the first instructions once (so their block is decoded and cached), then restart at entry64
        // with a breakpoint two instructions into the block.
        ulong second = 0;
        for (int i = 0; i < 2; i++)
        {
            Assert.That(c.Request("s"), Is.EqualTo("T05thread:1;"));
            second = c.Register(Reg.Rip);
        }
        Assert.That(c.Request($"P{Reg.Rip:x}={string.Concat(BitConverter.GetBytes(Entry64).Select(b => b.ToString("x2")))}"), Is.EqualTo("OK"));
        Assert.That(c.Request($"Z0,{second:x},1"), Is.EqualTo("OK"));
        Assert.That(c.Request("c"), Is.EqualTo("T05swbreak:;thread:1;"));
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(second));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Monitor_commands_show_the_mmu_view()
    {
        var (host, c) = Connect(_hello);
        RunToLongMode(c);
        string walk = c.Monitor($"walk 0x{Entry64:x}");
        Assert.That(walk, Does.Contain("PML4E").And.Contain("PDE").And.Contain("allowed: physical address 0xf0000 in a 2M page"));
        string fault = c.Monitor("walk 0x40000000 write user");
        Assert.That(fault, Does.Contain("user-mode write").And.Contain("#PF"));
        Assert.That(c.Monitor("ptdump"), Does.Contain("0x0000000000000000-0x0000000040000000").And.Contain("1G").And.Contain("RW").And.Contain("pmd"));
        Assert.That(c.Monitor("info mem"), Is.EqualTo(c.Monitor("ptdump")));
        string tlb = c.Monitor("tlb");
        Assert.That(tlb, Does.Contain("ITLB").And.Contain("walks"));
        Assert.That(c.Monitor("info tlb"), Is.EqualTo(tlb));
        Assert.That(c.Monitor("help"), Does.Contain("walk VA"));
        Assert.That(c.Monitor("frobnicate"), Does.Contain("unknown monitor command"));
        Assert.That(c.Monitor("walk nowhere"), Does.Contain("is not an address"));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Guest_exit_is_reported_as_W_with_the_exit_status()
    {
        var (host, c) = Connect(_hello);
        Assert.That(c.Request("c"), Is.EqualTo("W01"));
        Assert.That(host.WaitForExit(), Is.EqualTo(1));
        Assert.That(host.Out.ToString(), Is.EqualTo(FirmwareImages.Hello().SdmSerialOutput));
        c.Dispose();
        host.Dispose();
    }

    [Test]
    public void Ctrl_C_interrupts_a_running_guest()
    {
        var (host, c) = Connect(_loop);
        c.SendRaw(RspClient.Frame("c"));
        Assert.That(c.ReadByte(), Is.EqualTo('+'));
        Thread.Sleep(200);
        c.SendRaw("\u0003");
        Assert.That(c.ReadPacket(), Is.EqualTo("T02thread:1;"));
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(0xFFF0UL));
        Assert.That(Kill(host, c), Is.EqualTo(0));
    }

    [Test]
    public void Instruction_budget_ends_the_session_with_W04()
    {
        var (host, c) = Connect(_loop, "--max-instructions", "3000000");
        Assert.That(c.Request("c"), Is.EqualTo("W04"));
        Assert.That(c.Output.ToString(), Does.Contain("instruction limit reached after 3000000 instructions"));
        Assert.That(host.WaitForExit(), Is.EqualTo(RunCommand.ExitInstructionLimit));
        Assert.That(host.Err.ToString(), Does.Contain("instruction limit reached after 3000000 instructions"));
        c.Dispose();
        host.Dispose();
    }

    [Test]
    public void Malformed_packets_get_errors_and_the_session_goes_on()
    {
        var (host, c) = Connect(_hello);
        c.SendRaw("$g#00"); // wrong checksum
        Assert.That(c.ReadByte(), Is.EqualTo('-'));
        Assert.That(c.Request("mzz,4"), Is.EqualTo("E01"));
        Assert.That(c.Request("m1000"), Is.EqualTo("E01"));
        Assert.That(c.Request("M1000,4:12"), Is.EqualTo("E01"));
        Assert.That(c.Request("Pzz"), Does.StartWith("E"));
        Assert.That(c.Request("Z0"), Is.EqualTo("E01"));
        Assert.That(c.Request("qRcmd,zz"), Is.EqualTo("E01"));
        Assert.That(c.Request("vCont;q"), Is.EqualTo("E01"));
        Assert.That(c.Request("Hg7"), Does.StartWith("E"));
        Assert.That(c.Request("jUnknownPacket"), Is.Empty);
        Assert.That(c.Request("G00"), Is.EqualTo("E01"));
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(0xFFF0UL), "still alive and unchanged");
        Assert.That(Kill(host, c), Is.EqualTo(0));
        Assert.That(host.Err.ToString(), Does.Not.Contain("Exception"));
    }

    [Test]
    public void No_ack_mode_turns_acknowledgements_off()
    {
        var (host, c) = Connect(_hello);
        Assert.That(c.Request("QStartNoAckMode"), Is.EqualTo("OK"));
        c.NoAck = true;
        Assert.That(c.Register(Reg.Rip), Is.EqualTo(0xFFF0UL));
        Assert.That(c.Request("qC"), Is.EqualTo("QC1"));
        c.SendRaw(RspClient.Frame("vKill;1"));
        Assert.That(c.ReadPacket(), Is.EqualTo("OK"));
        Assert.That(host.WaitForExit(), Is.EqualTo(0));
        Assert.That(host.Err.ToString(), Does.Contain("killed by GDB"));
        c.Dispose();
        host.Dispose();
    }

    [Test]
    public void Closing_the_socket_ends_the_run_with_a_message()
    {
        var (host, c) = Connect(_hello);
        Assert.That(c.Request("qC"), Is.EqualTo("QC1"));
        c.Dispose();
        Assert.That(host.WaitForExit(), Is.EqualTo(GdbStub.ExitConnectionLost));
        Assert.That(host.Err.ToString(), Does.Contain("GDB closed the connection"));
        host.Dispose();
    }

    [Test]
    public void Closing_the_socket_while_the_guest_runs_ends_the_run()
    {
        var (host, c) = Connect(_loop);
        c.SendRaw(RspClient.Frame("c"));
        Assert.That(c.ReadByte(), Is.EqualTo('+'));
        c.Dispose();
        Assert.That(host.WaitForExit(), Is.EqualTo(GdbStub.ExitConnectionLost));
        Assert.That(host.Err.ToString(), Does.Contain("GDB closed the connection"));
        host.Dispose();
    }

    [Test]
    public void Detach_lets_the_guest_run_to_its_end()
    {
        var (host, c) = Connect(_hello);
        RunToLongMode(c);
        Assert.That(c.Request("D"), Is.EqualTo("OK"));
        Assert.That(host.WaitForExit(), Is.EqualTo(1));
        Assert.That(host.Out.ToString(), Is.EqualTo(FirmwareImages.Hello().SdmSerialOutput));
        c.Dispose();
        host.Dispose();
    }

    [Test]
    public void A_bad_port_is_a_usage_error()
    {
        var o = new StringWriter();
        var e = new StringWriter();
        Assert.That(HwmemCommand.Run(["run", "--bios", _hello, "--gdb", "70000"], o, e), Is.EqualTo(HwmemCommand.ExitUsage));
        Assert.That(e.ToString(), Does.Contain("--gdb 70000 is not a TCP port"));
    }
}
