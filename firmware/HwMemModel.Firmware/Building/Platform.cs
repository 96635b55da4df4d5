namespace HwMemModel.Firmware.Building;

/// <summary>Addresses and ports of the reference machine (QEMU pc subset) the images use.</summary>
internal static class Platform
{
    /// <summary>COM1 base port (THR/RBR, DLL with DLAB=1).</summary>
    public const ushort Com1 = 0x3F8;

    /// <summary>COM1 line status register; bit 5 = transmit holding register empty.</summary>
    public const ushort Com1Lsr = Com1 + 5;

    /// <summary>isa-debug-exit port given on the QEMU command line (iobase=0xf4).</summary>
    public const ushort DebugExitPort = 0xF4;

    /// <summary>HPET MMIO base.</summary>
    public const ulong HpetBase = 0xFED0_0000;

    /// <summary>First address of the 64 KiB BIOS alias below 1 MiB (the ROM's last 64 KiB).</summary>
    public const ulong BiosAlias = 0xF_0000;

    /// <summary>Size of every BIOS image.</summary>
    public const int BiosSize = 0x1_0000;

    /// <summary>IA32_EFER.</summary>
    public const uint MsrEfer = 0xC000_0080;

    /// <summary>Multiboot v1 header magic.</summary>
    public const uint MultibootHeaderMagic = 0x1BAD_B002;

    /// <summary>Value of EAX at a multiboot v1 kernel's entry.</summary>
    public const uint MultibootBootloaderMagic = 0x2BAD_B002;
}
