using HwMemModel.Mmu;

namespace HwMemModel.Mmu.Tests.Tlb;

/// <summary>
/// What a TLB entry holds besides the frame (SDM Vol. 3A §4.10.2.2): the combined R/W, U/S and XD of all levels, the
/// protection key, the memory type. Control state consulted at use (CR0.WP, CR4.SMEP/SMAP, EFLAGS.AC, PKRU) applies
/// to cached entries without a flush; attributes taken from the tables do not change until the entry is invalidated.
/// </summary>
public sealed class CachedAttributesTests
{
    private const ulong Va = 0x4000_0000;

    [Test]
    public void Pkru_change_applies_to_cached_entry_without_flush()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE | Cr4.PKE);
        rig.Tables.Map(Va, rig.NewFrame4K(), PageSize.Size4K, TlbRig.RW | PteFlags.User, protectionKey: 3);
        rig.Read(Va, privilege: Privilege.User);
        rig.Cpu.Pkru = 1u << 6;                             // AD for key 3
        var r = rig.Mmu.Read(Va, 8, Privilege.User, out _);
        Assert.That(r.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.User | PageFaultErrorCode.ProtectionKey));
        rig.Cpu.Pkru = 0;
        Assert.That(rig.Mmu.Read(Va, 8, Privilege.User, out _).Ok, Is.True);
    }

    [Test]
    public void Protection_key_changed_in_ram_without_flush_is_not_seen()
    {
        var rig = new TlbRig(extraCr4: Cr4.PGE | Cr4.PKE);
        rig.Tables.Map(Va, rig.NewFrame4K(), PageSize.Size4K, TlbRig.RW | PteFlags.User, protectionKey: 3);
        rig.Cpu.Pkru = 1u << 10;                            // AD for key 5
        rig.Read(Va, privilege: Privilege.User);
        rig.SetEntry(Va, 1, (rig.Entry(Va, 1) & ~(0xFUL << 59)) | (5UL << 59));
        Assert.That(rig.Mmu.Read(Va, 8, Privilege.User, out _).Ok, Is.True, "the cached entry still carries key 3");
        rig.Mmu.Invlpg(Va);
        Assert.That(rig.Mmu.Read(Va, 8, Privilege.User, out _).Fault.ErrorCode & PageFaultErrorCode.ProtectionKey, Is.EqualTo(PageFaultErrorCode.ProtectionKey));
    }

    [Test]
    public void Pat_msr_change_is_not_seen_by_cached_translation_until_invalidated()
    {
        var rig = new TlbRig();
        rig.Map4K(Va);                                      // PAT index 0
        Assert.That(rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out var t1).IsFault, Is.False);
        Assert.That(t1.MemoryType, Is.EqualTo(MemoryType.WriteBack));
        rig.Cpu.SetPat((Pat.PowerOnValue & ~0xFFUL) | (ulong)MemoryType.Uncacheable);
        rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out var t2);
        Assert.That(t2.MemoryType, Is.EqualTo(MemoryType.WriteBack), "the memory type is part of the cached translation (SDM §13.12.4: flush the TLBs after changing IA32_PAT)");
        rig.Mmu.Invlpg(Va);
        rig.Mmu.Translate(Va, AccessKind.Read, Privilege.Supervisor, out var t3);
        Assert.That(t3.MemoryType, Is.EqualTo(MemoryType.Uncacheable));
    }

    [Test]
    public void Cached_rights_are_the_combination_of_all_levels()
    {
        var rig = new TlbRig();
        rig.Map4K(Va, TlbRig.RW | PteFlags.User);
        rig.SetEntry(Va, 3, rig.Entry(Va, 3) & ~(ulong)PteFlags.Writable);   // PDPTE read-only
        rig.SetEntry(Va, 2, rig.Entry(Va, 2) | (ulong)PteFlags.NoExecute);   // PDE execute-disable
        rig.Read(Va, privilege: Privilege.User);
        var w = rig.Mmu.Write(Va, 8, 1, Privilege.User);
        Assert.That(w.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.Write | PageFaultErrorCode.User), "R/W=0 in the PDPTE");
        rig.Read(Va, privilege: Privilege.User);
        var x = rig.Mmu.Read(Va, 8, Privilege.User, out _, AccessKind.Execute);
        Assert.That(x.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present | PageFaultErrorCode.User | PageFaultErrorCode.InstructionFetch), "XD=1 in the PDE");
    }

    [Test]
    public void Write_protect_change_applies_to_cached_read_only_entry_without_flush()
    {
        var rig = new TlbRig();
        rig.Map4K(Va, PteFlags.None);
        rig.Read(Va);
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Fault.Kind, Is.EqualTo(FaultKind.PageFault), "CR0.WP=1");
        rig.Read(Va);
        rig.Cpu.SetCr0(rig.Cpu.Cr0Value & ~Cr0.WP);
        Assert.That(rig.Mmu.Write(Va, 8, 1, Privilege.Supervisor).Ok, Is.True, "CR0.WP=0: supervisor writes ignore R/W");
    }

    [Test]
    public void Smap_and_ac_apply_to_cached_user_entry_without_flush()
    {
        var rig = new TlbRig();
        rig.Map4K(Va, TlbRig.RW | PteFlags.User);
        rig.Read(Va);                                       // cached; SMAP off
        rig.Cpu.SetCr4(rig.Cpu.Cr4Value | Cr4.SMAP);
        var r = rig.Mmu.Read(Va, 8, Privilege.Supervisor, out _);
        Assert.That(r.Fault.ErrorCode, Is.EqualTo(PageFaultErrorCode.Present));
        rig.Read(Va, privilege: Privilege.User);
        rig.Cpu.AlignmentCheck = true;
        Assert.That(rig.Mmu.Read(Va, 8, Privilege.Supervisor, out _).Ok, Is.True, "EFLAGS.AC=1 allows explicit supervisor access");
        Assert.That(rig.Mmu.Read(Va, 8, Privilege.ImplicitSupervisor, out _).Fault.Kind, Is.EqualTo(FaultKind.PageFault), "but not implicit ones");
    }
}
