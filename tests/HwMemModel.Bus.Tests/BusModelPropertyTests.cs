using FsCheck;
using FsCheck.Fluent;
using HwMemModel.Bus;

namespace HwMemModel.Bus.Tests;

/// <summary>Random accesses against a byte-by-byte reference model of a small mixed layout.</summary>
public sealed class BusModelPropertyTests
{
    // Layout (addresses 0x0000-0x5fff; everything else unmapped):
    //   0x1000-0x2fff RAM "base" (priority 0), its upper page hidden by
    //   0x2000-0x2fff RAM "over" (priority 1)
    //   0x3000-0x3fff ROM
    //   0x4000-0x47ff alias of base offset 0x0400 (also visible at 0x1400-0x13ff)
    //   0x5000-0x57ff alias of base offset 0x1800 (the hidden half of base's upper page)
    //   0x5800-0x5fff MMIO register file accepting any access
    private static byte RomByte(int i) => (byte)(i * 13 + 5);

    /// <summary>One bus access: addresses cluster within 8 bytes of each 256-byte boundary so that accesses collide
    /// and cross page and region boundaries often.</summary>
    private static readonly Gen<BusOp> OpGen =
        from isWrite in Gen.Elements(true, false)
        from block in Gen.Choose(0, 0x60)
        from delta in Gen.Choose(-8, 7)
        from sizeLog in Gen.Choose(0, 3)
        from low in Gen.Choose(int.MinValue, int.MaxValue)
        from high in Gen.Choose(int.MinValue, int.MaxValue)
        select new BusOp(isWrite, (ulong)Math.Max(0, block * 0x100 + delta), 1 << sizeLog, ((ulong)(uint)high << 32) | (uint)low);

    [Test]
    public void Random_accesses_match_a_byte_model()
    {
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300),
            Prop.ForAll(Arb.From(Gen.ArrayOf(OpGen)), (BusOp[] ops) => RunAgainstModel(ops)));
    }

    private static bool RunAgainstModel(BusOp[] ops)
    {
        var bus = new PhysicalBus(maxPhysAddrBits: 32);
        RamRegion baseRam = bus.AddRam("base", 0x1000, 0x2000);
        bus.AddRam("over", 0x2000, 0x1000, priority: 1);
        bus.AddRom("rom", 0x3000, Enumerable.Range(0, 0x1000).Select(RomByte).ToArray());
        bus.AddAlias("alias", 0x4000, 0x800, baseRam, 0x0400);
        bus.AddAlias("hidden", 0x5000, 0x800, baseRam, 0x1800);
        bus.AddMmio("regs", 0x5800, 0x800, new RecordingDevice("regs", 0x800, AccessConstraints.Any, AccessConstraints.Any));

        var baseModel = new byte[0x2000];
        var overModel = new byte[0x1000];
        var regsModel = new byte[0x800];

        foreach (BusOp op in ops)
        {
            if (op.IsWrite)
            {
                bus.Write(op.Pa, op.Size, op.Value, BusAttributes.Cpu(0));
                for (int i = 0; i < op.Size; i++)
                {
                    StoreModel(op.Pa + (ulong)i, (byte)(op.Value >> (8 * i)));
                }
            }
            else
            {
                bus.Read(op.Pa, op.Size, out ulong actual, BusAttributes.Cpu(0));
                ulong expected = 0;
                for (int i = 0; i < op.Size; i++)
                {
                    expected |= (ulong)LoadModel(op.Pa + (ulong)i) << (8 * i);
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
            >= 0x4000 and < 0x4800 => baseModel[0x400 + (a - 0x4000)],
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
                case >= 0x4000 and < 0x4800: baseModel[0x400 + (a - 0x4000)] = b; break;
                case >= 0x5000 and < 0x5800: baseModel[0x1800 + (a - 0x5000)] = b; break;
                case >= 0x5800 and < 0x6000: regsModel[a - 0x5800] = b; break;
            }
        }
    }

    /// <summary>A generated access.</summary>
    public readonly record struct BusOp(bool IsWrite, ulong Pa, int Size, ulong Value)
    {
        /// <inheritdoc/>
        public override string ToString() => $"{(IsWrite ? "W" : "R")}{Size} 0x{Pa:x} 0x{Value:x}";
    }
}
