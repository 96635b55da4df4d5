namespace HwMemModel.Mmu;

/// <summary>Memory types encoded in IA32_PAT entries (SDM Vol. 3A §13.12.2).</summary>
public enum MemoryType : byte
{
    /// <summary>UC, encoding 0.</summary>
    Uncacheable = 0,
    /// <summary>WC, encoding 1.</summary>
    WriteCombining = 1,
    /// <summary>WT, encoding 4.</summary>
    WriteThrough = 4,
    /// <summary>WP, encoding 5.</summary>
    WriteProtected = 5,
    /// <summary>WB, encoding 6.</summary>
    WriteBack = 6,
    /// <summary>UC-, encoding 7.</summary>
    UncacheableMinus = 7,
}

/// <summary>IA32_PAT helpers.</summary>
public static class Pat
{
    /// <summary>The power-up value of IA32_PAT: WB WT UC- UC WB WT UC- UC.</summary>
    public const ulong PowerOnValue = 0x0007_0406_0007_0406UL;

    /// <summary>The PAT index (0-7) of a leaf entry: PAT*4 + PCD*2 + PWT, PAT at bit 7 (4 KiB) or bit 12 (large).</summary>
    public static int Index(ulong leafEntry, bool largePage)
    {
        int pat = largePage ? (int)((leafEntry >> 12) & 1) : (int)((leafEntry >> 7) & 1);
        return (pat << 2) | (int)((leafEntry >> 3) & 3);
    }

    /// <summary>The memory type selected by <paramref name="index"/> in an IA32_PAT value.</summary>
    public static MemoryType TypeAt(ulong pat, int index) => (MemoryType)((pat >> (index * 8)) & 7);

    /// <summary>Validates an IA32_PAT value; returns null when valid or the reason it is not.</summary>
    public static string? Validate(ulong pat)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong b = (pat >> (i * 8)) & 0xFF;
            if (b is 2 or 3 || b > 7)
                return $"IA32_PAT entry {i} is 0x{b:x2}; allowed encodings are 0 (UC), 1 (WC), 4 (WT), 5 (WP), 6 (WB), 7 (UC-)";
        }
        return null;
    }

    /// <summary>The short name Linux uses: "WB", "WC", "UC-", "UC", "WT", "WP".</summary>
    public static string ShortName(this MemoryType type) => type switch
    {
        MemoryType.Uncacheable => "UC",
        MemoryType.WriteCombining => "WC",
        MemoryType.WriteThrough => "WT",
        MemoryType.WriteProtected => "WP",
        MemoryType.WriteBack => "WB",
        MemoryType.UncacheableMinus => "UC-",
        _ => $"?{(int)type}",
    };
}
