using Iced.Intel;

namespace HwMemModel.Machine.Processes;

/// <summary>
/// Builds minimal static x86-64 Linux executables from code written with Iced's Assembler: an ELF header, one
/// PT_LOAD program header (read and execute) and the code, loaded at 0x400000 — enough for programs that talk to the
/// kernel through raw system calls (benchmarks, tests without a C compiler).
/// </summary>
public static class StaticElf
{
    /// <summary>Where the image is loaded.</summary>
    public const ulong LoadAddress = 0x40_0000;
    private const int HeaderBytes = 64 + 56;

    /// <summary>The ELF image of <paramref name="code"/> (entered at its first instruction with the initial stack).</summary>
    public static byte[] Build(Action<Assembler> code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var a = new Assembler(64);
        code(a);
        var text = new MemoryStream();
        a.Assemble(new StreamCodeWriter(text), LoadAddress + HeaderBytes);
        byte[] body = text.ToArray();
        // After the code: a section-name string table and two section headers (null, .shstrtab), for ELF readers
        // that insist on a section table; the loader needs only the program header.
        byte[] names = "\0.shstrtab\0"u8.ToArray();
        int namesAt = HeaderBytes + body.Length, shAt = (namesAt + names.Length + 7) & ~7;
        var image = new byte[shAt + 2 * 64];
        var s = image.AsSpan();
        // e_ident: \x7fELF, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV.
        s[0] = 0x7F; s[1] = (byte)'E'; s[2] = (byte)'L'; s[3] = (byte)'F'; s[4] = 2; s[5] = 1; s[6] = 1;
        BitConverter.TryWriteBytes(s[16..], (ushort)2);          // e_type ET_EXEC
        BitConverter.TryWriteBytes(s[18..], (ushort)62);         // e_machine EM_X86_64
        BitConverter.TryWriteBytes(s[20..], 1u);                 // e_version
        BitConverter.TryWriteBytes(s[24..], LoadAddress + HeaderBytes); // e_entry
        BitConverter.TryWriteBytes(s[32..], 64UL);               // e_phoff
        BitConverter.TryWriteBytes(s[52..], (ushort)64);         // e_ehsize
        BitConverter.TryWriteBytes(s[54..], (ushort)56);         // e_phentsize
        BitConverter.TryWriteBytes(s[56..], (ushort)1);          // e_phnum
        BitConverter.TryWriteBytes(s[40..], (ulong)shAt);        // e_shoff
        BitConverter.TryWriteBytes(s[58..], (ushort)64);         // e_shentsize
        BitConverter.TryWriteBytes(s[60..], (ushort)2);          // e_shnum
        BitConverter.TryWriteBytes(s[62..], (ushort)1);          // e_shstrndx
        names.CopyTo(s[namesAt..]);
        var sh = s[(shAt + 64)..];
        BitConverter.TryWriteBytes(sh, 1u);                      // sh_name ".shstrtab"
        BitConverter.TryWriteBytes(sh[4..], 3u);                 // SHT_STRTAB
        BitConverter.TryWriteBytes(sh[24..], (ulong)namesAt);    // sh_offset
        BitConverter.TryWriteBytes(sh[32..], (ulong)names.Length); // sh_size
        BitConverter.TryWriteBytes(sh[48..], 1UL);               // sh_addralign
        var ph = s[64..];
        BitConverter.TryWriteBytes(ph, 1u);                      // PT_LOAD
        BitConverter.TryWriteBytes(ph[4..], 5u);                 // PF_R | PF_X
        BitConverter.TryWriteBytes(ph[8..], 0UL);                // p_offset
        BitConverter.TryWriteBytes(ph[16..], LoadAddress);       // p_vaddr
        BitConverter.TryWriteBytes(ph[24..], LoadAddress);       // p_paddr
        BitConverter.TryWriteBytes(ph[32..], (ulong)image.Length); // p_filesz
        BitConverter.TryWriteBytes(ph[40..], (ulong)image.Length); // p_memsz
        BitConverter.TryWriteBytes(ph[48..], 0x1000UL);          // p_align
        body.CopyTo(s[HeaderBytes..]);
        return image;
    }

    /// <summary>
    /// A program that maps <paramref name="pages"/> anonymous pages, writes one byte to each (one demand-zero fault
    /// per page), unmaps them and exits 0.
    /// </summary>
    public static byte[] TouchPages(int pages) => Build(a =>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        MapAndTouch(a, (ulong)pages * 4096);
        a.mov(AssemblerRegisters.rdi, AssemblerRegisters.r12);
        a.mov(AssemblerRegisters.rsi, (ulong)pages * 4096);
        a.mov(AssemblerRegisters.eax, 11); // munmap
        a.syscall();
        Exit(a);
    });

    /// <summary>
    /// A program that maps and writes <paramref name="mebibytes"/> MiB, then <paramref name="forks"/> times forks a
    /// child that exits at once and waits for it; exits 0.
    /// </summary>
    public static byte[] ForkExit(int mebibytes, int forks) => Build(a =>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mebibytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(forks, 1);
        MapAndTouch(a, (ulong)mebibytes << 20);
        a.mov(AssemblerRegisters.r12, (ulong)forks);
        var again = a.CreateLabel();
        var child = a.CreateLabel();
        a.Label(ref again);
        a.mov(AssemblerRegisters.eax, 57); // fork
        a.syscall();
        a.test(AssemblerRegisters.rax, AssemblerRegisters.rax);
        a.jz(child);
        a.mov(AssemblerRegisters.rdi, AssemblerRegisters.rax);
        a.xor(AssemblerRegisters.esi, AssemblerRegisters.esi);
        a.xor(AssemblerRegisters.edx, AssemblerRegisters.edx);
        a.xor(AssemblerRegisters.r10d, AssemblerRegisters.r10d);
        a.mov(AssemblerRegisters.eax, 61); // wait4(pid, NULL, 0, NULL)
        a.syscall();
        a.dec(AssemblerRegisters.r12);
        a.jnz(again);
        Exit(a);
        a.Label(ref child);
        Exit(a);
    });

    /// <summary>mmap(0, len, RW, PRIVATE|ANON, -1, 0) into R12, then one byte written to each page.</summary>
    private static void MapAndTouch(Assembler a, ulong len)
    {
        Syscall6(a, 9, 0, len, 3, 0x22, ulong.MaxValue, 0);
        a.mov(AssemblerRegisters.rbx, AssemblerRegisters.rax);
        a.mov(AssemblerRegisters.r12, AssemblerRegisters.rax);
        a.mov(AssemblerRegisters.r13, len / 4096);
        var loop = a.CreateLabel();
        a.Label(ref loop);
        a.mov(AssemblerRegisters.__byte_ptr[AssemblerRegisters.rbx], 1);
        a.add(AssemblerRegisters.rbx, 4096);
        a.dec(AssemblerRegisters.r13);
        a.jnz(loop);
    }

    private static void Syscall6(Assembler a, int nr, ulong a0, ulong a1, ulong a2, ulong a3, ulong a4, ulong a5)
    {
        a.mov(AssemblerRegisters.rdi, a0);
        a.mov(AssemblerRegisters.rsi, a1);
        a.mov(AssemblerRegisters.rdx, a2);
        a.mov(AssemblerRegisters.r10, a3);
        a.mov(AssemblerRegisters.r8, a4);
        a.mov(AssemblerRegisters.r9, a5);
        a.mov(AssemblerRegisters.eax, nr);
        a.syscall();
    }

    private static void Exit(Assembler a)
    {
        a.xor(AssemblerRegisters.edi, AssemblerRegisters.edi);
        a.mov(AssemblerRegisters.eax, 231); // exit_group(0)
        a.syscall();
    }
}
