using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace HwMemModel.Firmware.Building;

/// <summary>
/// Serial output routines placed inside a section (32- or 64-bit). Every routine preserves all
/// general registers. 64-bit: putc(AL), puts(RSI), puthex(RDI), putdec(RDI).
/// 32-bit: putc(AL), puts(ESI), puthex(EDX:EAX), putdec(EAX).
/// Output polls LSR bit 5 before each byte, as firmware on real hardware must.
/// </summary>
internal sealed class Runtime
{
    private Runtime(Label putc, Label puts, Label putHex, Label putDec)
    {
        Putc = putc;
        Puts = puts;
        PutHex = putHex;
        PutDec = putDec;
    }

    /// <summary>Writes AL to COM1.</summary>
    public Label Putc { get; }

    /// <summary>Writes the zero-terminated string at RSI/ESI.</summary>
    public Label Puts { get; }

    /// <summary>Writes "0x" and the value's hex digits without leading zeros.</summary>
    public Label PutHex { get; }

    /// <summary>Writes the value in decimal.</summary>
    public Label PutDec { get; }

    /// <summary>Emits the routines at the current position (jump over them first if needed).</summary>
    public static Runtime Emit(Asm asm)
    {
        var rt = asm.Bitness switch
        {
            64 => Emit64(asm),
            32 => Emit32(asm),
            _ => throw new ArgumentOutOfRangeException(nameof(asm), "16-bit code prints nothing"),
        };
        asm.Rt = rt;
        return rt;
    }

    /// <summary>Programs COM1 as firmware does: no interrupts, 115200 baud, 8N1, FIFOs on, DTR/RTS/OUT2.</summary>
    public static void EmitSerialInit(Asm asm)
    {
        var a = asm.A;
        void Out(ushort port, byte value)
        {
            a.mov(dx, port);
            a.mov(al, value);
            a.@out(dx, al);
        }

        Out(Platform.Com1 + 1, 0x00); // IER
        Out(Platform.Com1 + 3, 0x80); // LCR: DLAB
        Out(Platform.Com1 + 0, 0x01); // DLL: 115200
        Out(Platform.Com1 + 1, 0x00); // DLM
        Out(Platform.Com1 + 3, 0x03); // LCR: 8N1
        Out(Platform.Com1 + 2, 0xC7); // FCR: enable, clear, 14-byte trigger
        Out(Platform.Com1 + 4, 0x0B); // MCR: DTR, RTS, OUT2
    }

    private static void EmitPutc(Asm asm, Label putc, bool long64)
    {
        var a = asm.A;
        asm.Bind(ref putc);
        if (long64)
        {
            a.push(rdx);
            a.push(rax);
        }
        else
        {
            a.push(edx);
            a.push(eax);
        }

        a.mov(dx, Platform.Com1Lsr);
        var wait = asm.Here();
        a.@in(al, dx);
        a.test(al, 0x20);
        a.jz(wait);
        if (long64)
        {
            a.pop(rax);
        }
        else
        {
            a.pop(eax);
        }

        a.mov(dx, Platform.Com1);
        a.@out(dx, al);
        if (long64)
        {
            a.pop(rdx);
        }
        else
        {
            a.pop(edx);
        }

        a.ret();
    }

    private static Runtime Emit64(Asm asm)
    {
        var a = asm.A;
        var rt = new Runtime(asm.NewLabel("putc"), asm.NewLabel("puts"), asm.NewLabel("puthex"), asm.NewLabel("putdec"));
        EmitPutc(asm, rt.Putc, long64: true);

        var puts = rt.Puts;
        asm.Bind(ref puts);
        a.push(rax);
        a.push(rsi);
        var loop = asm.Here();
        var done = asm.NewLabel();
        a.mov(al, __byte_ptr[rsi]);
        a.test(al, al);
        a.jz(done);
        a.call(rt.Putc);
        a.inc(rsi);
        a.jmp(loop);
        asm.Bind(ref done);
        a.pop(rsi);
        a.pop(rax);
        a.ret();

        var hex = rt.PutHex;
        asm.Bind(ref hex);
        a.push(rax);
        a.push(rcx);
        a.push(rdx);
        a.push(rsi);
        a.mov(rdx, rdi);
        a.mov(al, (byte)'0');
        a.call(rt.Putc);
        a.mov(al, (byte)'x');
        a.call(rt.Putc);
        a.mov(ecx, 60);
        a.xor(esi, esi);
        EmitNibbleLoop(asm, rt, nibble: () =>
        {
            a.mov(rax, rdx);
            a.shr(rax, cl);
            a.and(eax, 0xF);
        });
        a.pop(rsi);
        a.pop(rdx);
        a.pop(rcx);
        a.pop(rax);
        a.ret();

        var dec = rt.PutDec;
        asm.Bind(ref dec);
        a.push(rax);
        a.push(rcx);
        a.push(rdx);
        a.push(rsi);
        a.mov(rax, rdi);
        a.mov(ecx, 10);
        a.xor(esi, esi);
        var divide = asm.Here();
        a.xor(edx, edx);
        a.div(rcx);
        a.push(rdx);
        a.inc(esi);
        a.test(rax, rax);
        a.jnz(divide);
        var emit = asm.Here();
        a.pop(rax);
        a.add(al, (byte)'0');
        a.call(rt.Putc);
        a.dec(esi);
        a.jnz(emit);
        a.pop(rsi);
        a.pop(rdx);
        a.pop(rcx);
        a.pop(rax);
        a.ret();
        return rt;
    }

    private static Runtime Emit32(Asm asm)
    {
        var a = asm.A;
        var rt = new Runtime(asm.NewLabel("putc"), asm.NewLabel("puts"), asm.NewLabel("puthex"), asm.NewLabel("putdec"));
        EmitPutc(asm, rt.Putc, long64: false);

        var puts = rt.Puts;
        asm.Bind(ref puts);
        a.push(eax);
        a.push(esi);
        var loop = asm.Here();
        var done = asm.NewLabel();
        a.mov(al, __byte_ptr[esi]);
        a.test(al, al);
        a.jz(done);
        a.call(rt.Putc);
        a.inc(esi);
        a.jmp(loop);
        asm.Bind(ref done);
        a.pop(esi);
        a.pop(eax);
        a.ret();

        // puthex: EDX:EAX.
        var hex = rt.PutHex;
        asm.Bind(ref hex);
        a.pushad();
        a.mov(ebx, eax);
        a.mov(edi, edx);
        a.mov(al, (byte)'0');
        a.call(rt.Putc);
        a.mov(al, (byte)'x');
        a.call(rt.Putc);
        a.mov(ecx, 60);
        a.xor(esi, esi);
        EmitNibbleLoop(asm, rt, nibble: () =>
        {
            var low = asm.NewLabel();
            var got = asm.NewLabel();
            a.cmp(ecx, 32);
            a.jb(low);
            a.mov(eax, edi);
            a.sub(ecx, 32);
            a.shr(eax, cl);
            a.add(ecx, 32);
            a.jmp(got);
            asm.Bind(ref low);
            a.mov(eax, ebx);
            a.shr(eax, cl);
            asm.Bind(ref got);
            a.and(eax, 0xF);
        });
        a.popad();
        a.ret();

        // putdec: EAX.
        var dec = rt.PutDec;
        asm.Bind(ref dec);
        a.pushad();
        a.mov(ecx, 10);
        a.xor(esi, esi);
        var divide = asm.Here();
        a.xor(edx, edx);
        a.div(ecx);
        a.push(edx);
        a.inc(esi);
        a.test(eax, eax);
        a.jnz(divide);
        var emit = asm.Here();
        a.pop(eax);
        a.add(al, (byte)'0');
        a.call(rt.Putc);
        a.dec(esi);
        a.jnz(emit);
        a.popad();
        a.ret();
        return rt;
    }

    /// <summary>ECX counts 60..0 by 4, ESI = "a digit was printed"; nibble() leaves the nibble in EAX.</summary>
    private static void EmitNibbleLoop(Asm asm, Runtime rt, Action nibble)
    {
        var a = asm.A;
        var loop = asm.Here();
        var print = asm.NewLabel();
        var digit = asm.NewLabel();
        var next = asm.NewLabel();
        nibble();
        a.test(esi, esi);
        a.jnz(print);
        a.test(eax, eax);
        a.jnz(print);
        a.test(ecx, ecx);
        a.jnz(next);
        asm.Bind(ref print);
        a.mov(esi, 1);
        a.cmp(eax, 10);
        a.jb(digit);
        a.add(eax, 'a' - 10 - '0');
        asm.Bind(ref digit);
        a.add(eax, '0');
        a.call(rt.Putc);
        asm.Bind(ref next);
        a.sub(ecx, 4);
        a.jns(loop);
    }
}
