using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Rights;

/// <summary>
/// The memory type of a translation (SDM Vol. 3A §13.12.3, Table 13-11): the PAT entry selected by
/// PAT*4 + PCD*2 + PWT of the leaf, where PAT is bit 7 of a 4 KiB PTE and bit 12 of a 2 MiB or 1 GiB leaf.
/// </summary>
public sealed class MemoryTypeTests
{
    private const ulong PowerOnPat = 0x0007_0406_0007_0406UL;
    private const ulong LinuxPat = 0x0407_0506_0007_0106UL;

    // SDM Table 13-12 (IA32_PAT power-up value) and Linux arch/x86/mm/pat: slot -> type, written out literally.
    private static readonly MemoryType[] PowerOnSlots =
    [
        MemoryType.WriteBack, MemoryType.WriteThrough, MemoryType.UncacheableMinus, MemoryType.Uncacheable,
        MemoryType.WriteBack, MemoryType.WriteThrough, MemoryType.UncacheableMinus, MemoryType.Uncacheable,
    ];

    private static readonly MemoryType[] LinuxSlots =
    [
        MemoryType.WriteBack, MemoryType.WriteCombining, MemoryType.UncacheableMinus, MemoryType.Uncacheable,
        MemoryType.WriteBack, MemoryType.WriteProtected, MemoryType.UncacheableMinus, MemoryType.WriteThrough,
    ];

    private static ulong IndexBits(int index, PageSize size)
        => ((index & 1) != 0 ? 1UL << 3 : 0) | ((index & 2) != 0 ? 1UL << 4 : 0)
           | ((index & 4) != 0 ? (size == PageSize.Size4K ? 1UL << 7 : 1UL << 12) : 0);

    private static RightsRig Rig(PageSize size) => size switch
    {
        PageSize.Size4K => new RightsRig(size, 0x0000_0055_0000_1234UL, 0x0123_4000UL),
        PageSize.Size2M => new RightsRig(size, 0x0000_0055_0020_1234UL, 0x0120_0000UL),
        _ => new RightsRig(size, 0x0000_0055_4000_1234UL, 0x4000_0000UL),
    };

    [Test]
    public void Power_on_pat_gives_wb_wt_ucminus_uc_by_pcd_pwt_and_repeats_with_pat_bit(
        [Values(PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)] PageSize size, [Range(0, 7)] int index)
    {
        var rig = Rig(size);
        Assert.That(rig.Cpu.PatValue, Is.EqualTo(PowerOnPat), "IA32_PAT power-up value");
        AssertType(rig, index, PowerOnSlots[index]);
    }

    [Test]
    public void Linux_pat_selects_wb_wc_ucminus_uc_wb_wp_ucminus_wt(
        [Values(PageSize.Size4K, PageSize.Size2M, PageSize.Size1G)] PageSize size, [Range(0, 7)] int index)
    {
        var rig = Rig(size);
        Assert.That(rig.Cpu.WritePat(LinuxPat).IsFault, Is.False);
        AssertType(rig, index, LinuxSlots[index]);
    }

    [Test]
    public void Bit_12_of_a_4k_pte_is_an_address_bit_not_pat()
    {
        var rig = Rig(PageSize.Size4K);
        rig.Cpu.SetPat(LinuxPat);
        rig.WriteEntry(1, rig.LeafValue(EntryRights.Permissive) | (1UL << 12));
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.PhysicalAddress, Is.EqualTo((rig.Pa | 0x1000) + 0x234));
        Assert.That(t.MemoryType, Is.EqualTo(MemoryType.WriteBack), "PAT index 0");
    }

    [Test]
    public void Bit_7_of_a_4k_pte_is_pat_not_page_size()
    {
        var rig = Rig(PageSize.Size4K);
        rig.Cpu.SetPat(LinuxPat);
        rig.WriteEntry(1, rig.LeafValue(EntryRights.Permissive) | RightsRig.PS);
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That((t.PageSize, t.PhysicalAddress, t.MemoryType), Is.EqualTo((PageSize.Size4K, rig.Pa + 0x234, MemoryType.WriteBack)), "PAT index 4 = WB");
    }

    [Test]
    public void Pcd_and_pwt_of_non_leaf_entries_do_not_change_the_page_memory_type()
    {
        var rig = Rig(PageSize.Size4K);
        rig.Cpu.SetPat(LinuxPat);
        foreach (int level in new[] { 4, 3, 2 })
            rig.WriteEntry(level, rig.NonLeafValue(level, EntryRights.Permissive) | (1UL << 3) | (1UL << 4));
        rig.WriteEntry(1, rig.LeafValue(EntryRights.Permissive) | IndexBits(1, PageSize.Size4K));
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.MemoryType, Is.EqualTo(MemoryType.WriteCombining), "the leaf selects PAT index 1 (WC)");
    }

    [TestCase(0x0000_0000_0000_0002UL)]
    [TestCase(0x0000_0000_0000_0003UL)]
    [TestCase(0x0000_0000_0000_0008UL)]
    [TestCase(0x0200_0000_0000_0000UL)]
    public void Pat_value_with_reserved_encoding_is_rejected_with_gp(ulong pat)
    {
        var rig = Rig(PageSize.Size4K);
        var f = rig.Cpu.WritePat(pat);
        Assert.That(f.Kind, Is.EqualTo(FaultKind.GeneralProtection));
        Assert.That(rig.Cpu.PatValue, Is.EqualTo(PowerOnPat), "the MSR keeps its value");
    }

    private static void AssertType(RightsRig rig, int index, MemoryType expected)
    {
        rig.WriteEntry(rig.LeafLevel, rig.LeafValue(EntryRights.Permissive) | IndexBits(index, rig.Size));
        rig.Mmu.FlushAll();
        var f = rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t);
        Assert.That(f.IsFault, Is.False, f.ToString());
        Assert.That(t.MemoryType, Is.EqualTo(expected), $"PAT index {index} of a {rig.Size.Label()} leaf");
        Assert.That(t.PhysicalAddress, Is.EqualTo(rig.Pa | (rig.Va & (rig.Size.Bytes() - 1))), "the PAT bit is not an address bit");
        // A second access served by the TLB reports the same type.
        Assert.That(rig.Mmu.Translate(rig.Va, AccessKind.Read, Privilege.Supervisor, out var t2).IsFault, Is.False);
        Assert.That(t2.MemoryType, Is.EqualTo(expected), "memory type from the TLB");
    }
}
