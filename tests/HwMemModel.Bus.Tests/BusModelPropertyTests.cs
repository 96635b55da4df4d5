using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

/// <summary>Random accesses against a byte-by-byte reference model of a small mixed layout.</summary>
public sealed class BusModelPropertyTests
{
    // Layout (addresses 0x0000-0x5fff; everything else unmapped):
    //   0x1000-0x2fff RAM "base" (priority 0), its upper page hidden by
    //   0x2000-0x2fff RAM "over" (priority 1)
    //   0x3000-0x3fff ROM
    //   0x5000-0x57ff alias of base offset 0x1800 (the hidden half of base's upper page)
    //   0x5800-0x5fff MMIO register file accepting any access
    private static byte RomByte(int i) => (byte)(i * 13 + 5);

#pragma warning disable NUnit1027 // FsCheck supplies the arguments.
    [FsCheck.NUnit.Property(MaxTest = 300)]
    public bool Random_accesses_match_a_byte_model((bool IsWrite, ushort Address, byte SizeCode, ulong Value)[] ops)
    {
        var bus = new PhysicalBus(maxPhysAddrBits: 32);
        RamRegion baseRam = bus.AddRam("base", 0x1000, 0x2000);
        bus.AddRam("over", 0x2000, 0x1000, priority: 1);
        bus.AddRom("rom", 0x3000, Enumerable.Range(0, 0x1000).Select(RomByte).ToArray());
        bus.AddAlias("alias", 0x5000, 0x800, baseRam, 0x1800);
        bus.AddMmio("regs", 0x5800, 0x800, new RecordingDevice("regs", 0x800, AccessConstraints.Any, AccessConstraints.Any));

        var baseModel = new byte[0x2000];
        var overModel = new byte[0x1000];
        var regsModel = new byte[0x800];

        foreach ((bool isWrite, ushort address, byte sizeCode, ulong value) in ops)
        {
            ulong pa = address % 0x6100u;
            int size = 1 << (sizeCode & 3);
            if (isWrite)
            {
                bus.Write(pa, size, value, BusAttributes.Cpu(0));
                for (int i = 0; i < size; i++)
                {
                    StoreModel(pa + (ulong)i, (byte)(value >> (8 * i)));
                }
            }
            else
            {
                bus.Read(pa, size, out ulong actual, BusAttributes.Cpu(0));
                ulong expected = 0;
                for (int i = 0; i < size; i++)
                {
                    expected |= (ulong)LoadModel(pa + (ulong)i) << (8 * i);
                }

                if (actual != expected)
                {
                    return false;
                }
            }
        }

        return true;

        byte LoadModel(ulong a) => a switch
        {
            >= 0x1000 and < 0x2000 => baseModel[a - 0x1000],
            >= 0x2000 and < 0x3000 => overModel[a - 0x2000],
            >= 0x3000 and < 0x4000 => RomByte((int)(a - 0x3000)),
            >= 0x5000 and < 0x5800 => baseModel[0x1800 + (a - 0x5000)],
            >= 0x5800 and < 0x6000 => regsModel[a - 0x5800],
            _ => 0xFF,
        };

        void StoreModel(ulong a, byte b)
        {
            switch (a)
            {
                case >= 0x1000 and < 0x2000: baseModel[a - 0x1000] = b; break;
                case >= 0x2000 and < 0x3000: overModel[a - 0x2000] = b; break;
                case >= 0x5000 and < 0x5800: baseModel[0x1800 + (a - 0x5000)] = b; break;
                case >= 0x5800 and < 0x6000: regsModel[a - 0x5800] = b; break;
            }
        }
    }
#pragma warning restore NUnit1027
}
