using System.Text;

namespace HwMemModel.Kernel;

// SLUB's debug checks and reports (mm/slub.c, CONFIG_SLUB_DEBUG with SLAB_CONSISTENCY_CHECKS always on): red zones,
// poison, padding, and the "BUG <cache> (<taint>): <what>" reports with Linux's layout. Pointers print as %p does
// with no_hash_pointers (16 hex digits).
internal sealed partial class SlabAllocator
{
    internal const byte PoisonInuse = 0x5a;   // POISON_INUSE: padding and never-used bytes
    internal const byte PoisonFree = 0x6b;    // POISON_FREE
    internal const byte PoisonEnd = 0xa5;     // POISON_END: last byte of a poisoned object
    internal const byte RedInactive = 0xbb;   // SLUB_RED_INACTIVE
    internal const byte RedActive = 0xcc;     // SLUB_RED_ACTIVE
    private const string Rule = "=============================================================================";
    private const string Dashes = "-----------------------------------------------------------------------------";

    private byte[] _scratch = new byte[512];
    private bool _taintBadPage;   // TAINT_BAD_PAGE ('B') from the allocator's own BUG reports

    // print_tainted(): "Not tainted", or "Tainted: " and one column per taint flag (19), 'G' for a clear P.
    private string Tainted => _taintBadPage ? "Tainted: G    B             " : "Not tainted";

    // ---------------------------------------------------------------- object debug

    // alloc_debug_processing: the object must still be as free objects are; then it becomes active.
    private bool AllocDebug(KmemCache s, Slab slab, ulong obj, string caller)
    {
        SlabPadCheck(s, slab, caller);
        if (!CheckObject(s, slab, obj, RedInactive, caller))
        {
            // Linux marks every object of the slab used and allocates from another one; the bad slab stays allocated.
            SlabFix(s, "Marking all objects used");
            for (int i = 0; i < slab.FreeCount; i++) slab.Allocated[slab.FreeStack[i]] = true;
            s.Active += slab.FreeCount;
            slab.FreeCount = 0;
            if (slab.OnPartial) RemovePartial(s.Nodes[slab.Node], slab);
            return false;
        }
        InitObject(s, obj, RedActive);
        return true;
    }

    // free_debug_processing: an object whose red zones or padding were overwritten is reported and not freed.
    private bool FreeDebug(KmemCache s, Slab slab, ulong obj, string caller)
    {
        SlabPadCheck(s, slab, caller);
        if (!CheckObject(s, slab, obj, RedActive, caller))
        {
            SlabFix(s, $"Object at 0x{obj:x16} not freed");
            return false;
        }
        InitObject(s, obj, RedInactive);
        return true;
    }

    // init_object: red zones to val; with __OBJECT_POISON the object to POISON_FREE ending in POISON_END (on
    // allocation too, as SLUB does: uninitialised use shows as 0x6b).
    private void InitObject(KmemCache s, ulong obj, byte val)
    {
        if ((s.Flags & SlabFlags.RedZone) != 0) _mem.Fill(obj - s.RedLeftPad, val, s.RedLeftPad);
        if (s.ObjectPoison)
        {
            _mem.Fill(obj, PoisonFree, s.ObjectSize - 1);
            _mem.Write(obj + s.ObjectSize - 1, 1, PoisonEnd);
        }
        if ((s.Flags & SlabFlags.RedZone) != 0) _mem.Fill(obj + s.ObjectSize, val, s.InUse - s.ObjectSize);
    }

    // check_object.
    private bool CheckObject(KmemCache s, Slab slab, ulong obj, byte val, string caller)
    {
        if ((s.Flags & SlabFlags.RedZone) != 0)
        {
            if (!CheckBytesAndReport(s, slab, obj, "Left Redzone", obj - s.RedLeftPad, val, s.RedLeftPad, caller)) return false;
            if (!CheckBytesAndReport(s, slab, obj, "Right Redzone", obj + s.ObjectSize, val, s.InUse - s.ObjectSize, caller)) return false;
        }
        else if ((s.Flags & SlabFlags.Poison) != 0 && s.ObjectSize < s.InUse)
        {
            CheckBytesAndReport(s, slab, obj, "Alignment padding", obj + s.ObjectSize, PoisonInuse, s.InUse - s.ObjectSize, caller);
        }
        if ((s.Flags & SlabFlags.Poison) != 0)
        {
            if (val != RedActive && s.ObjectPoison)
            {
                if (!CheckBytesAndReport(s, slab, obj, "Poison", obj, PoisonFree, s.ObjectSize - 1, caller)) return false;
                if (!CheckBytesAndReport(s, slab, obj, "End Poison", obj + s.ObjectSize - 1, PoisonEnd, 1, caller)) return false;
            }
            // check_pad_bytes: from the end of the metadata to the end of the slot, POISON_INUSE.
            uint off = InfoEnd(s), end = SizeFromObject(s);
            if (off != end) CheckBytesAndReport(s, slab, obj, "Object padding", obj + off, PoisonInuse, end - off, caller);
        }
        return true;
    }

    private static uint InfoEnd(KmemCache s) => s.FreePointerOffset >= s.InUse ? s.InUse + KmemCache.WordSize : s.InUse;   // get_info_end
    private static uint SizeFromObject(KmemCache s) => s.Size - s.RedLeftPad;                                              // size_from_object

    // check_bytes_and_report: the first and last differing byte, the trailer, then the bytes restored.
    private bool CheckBytesAndReport(KmemCache s, Slab slab, ulong obj, string what, ulong start, byte value, uint bytes, string caller)
    {
        if (bytes == 0) return true;
        var buf = Read(start, bytes);
        int fault = buf.IndexOfAnyExcept(value);
        if (fault < 0) return true;
        int end = buf.Length;
        while (end > fault && buf[end - 1] == value) end--;
        ulong from = start + (ulong)fault, to = start + (ulong)end - 1;
        byte first = buf[fault];
        SlabBug(s, $"{what} overwritten");
        _log.Print($"0x{from:x16}-0x{to:x16} @offset={from - slab.Va}. First byte 0x{first:x} instead of 0x{value:x}");
        PrintTrailer(s, slab, obj, caller);
        _taintBadPage = true;
        SlabFix(s, $"Restoring {what} 0x{from:x16}-0x{to:x16}=0x{value:x}");
        _mem.Fill(from, value, to - from + 1);
        return false;
    }

    // slab_pad_check: with SLAB_POISON the bytes after the last object are POISON_INUSE.
    private bool SlabPadCheck(KmemCache s, Slab slab, string caller)
    {
        if ((s.Flags & SlabFlags.Poison) == 0) return true;
        uint remainder = (uint)(slab.Bytes % s.Size);
        if (remainder == 0) return true;
        ulong pad = slab.Va + slab.Bytes - remainder;
        var buf = Read(pad, remainder);
        int fault = buf.IndexOfAnyExcept(PoisonInuse);
        if (fault < 0) return true;
        int end = buf.Length;
        while (end > fault && buf[end - 1] == PoisonInuse) end--;
        ulong from = pad + (ulong)fault, to = pad + (ulong)end - 1;
        SlabErr(s, slab, $"Padding overwritten. 0x{from:x16}-0x{to:x16} @offset={from - slab.Va}", caller);
        PrintSection("Padding ", pad, remainder);
        SlabFix(s, $"Restoring slab padding 0x{from:x16}-0x{to:x16}=0x{PoisonInuse:x}");
        _mem.Fill(from, PoisonInuse, to - from + 1);
        return false;
    }

    // ---------------------------------------------------------------- reports

    private void InvalidObjectPointer(KmemCache s, Slab slab, ulong va, string caller)
    {
        SlabErr(s, slab, $"Invalid object pointer 0x{va:x16}", caller);
        SlabFix(s, $"Object at 0x{va:x16} not freed");
    }

    private void NonLinearAddress(ulong va, string caller)
    {
        // CONFIG_DEBUG_VIRTUAL's complaint when an address outside the direct map reaches __pa (kfree, ksize).
        _log.Warn($"virt_to_phys used for non-linear address: 0x{va:x16} ({caller})", "arch/x86/mm/physaddr.c:__phys_addr");
    }

    private void NotKmalloc(ulong va, string caller)
    {
        // free_large_kmalloc (6.15+): WARN_ON_ONCE(!folio_test_large_kmalloc(folio)) and dump_page; nothing is freed.
        _log.WarnOnce("slub:free_large_kmalloc:not-large-kmalloc", "------------[ cut here ]------------", "mm/slub.c:free_large_kmalloc");
        _log.Print($"object pointer: 0x{va:x16}");
        _log.Print($"page: pfn:0x{(va - _pageOffset) >> KmemCache.PageShift:x}");
        _log.Print("page dumped because: Not a kmalloc allocation");
        DumpStack(caller);
    }

    private void SlabBug(KmemCache s, string message)
    {
        _log.Print(Rule);
        _log.Print($"BUG {s.Name} ({Tainted}): {message}");
        _log.Print(Dashes);
        _log.Print("");
    }

    private void SlabFix(KmemCache s, string message) => _log.Print($"FIX {s.Name}: {message}");

    private void SlabErr(KmemCache s, Slab slab, string message, string caller)
    {
        SlabBug(s, message);
        PrintSlabInfo(slab);
        DumpStack(caller);
        _taintBadPage = true;
    }

    private void ObjectErr(KmemCache s, Slab slab, ulong obj, string reason, string caller)
    {
        SlabBug(s, reason);
        PrintTrailer(s, slab, obj, caller);
        _taintBadPage = true;
    }

    private void PrintSlabInfo(Slab slab)
    {
        // print_slab_info: the struct slab (its struct page in vmemmap), counts, the free-list head and %pGp flags.
        ulong pfn = slab.Pa >> KmemCache.PageShift;
        ulong fp = slab.FreeCount > 0 ? slab.ObjectAddress(slab.FreeStack[slab.FreeCount - 1]) : 0;
        int zone = (int)_pages.ZoneOf(slab.Pa).Type;
        string flags = slab.Order > 0 ? $"0x40(head|node={slab.Node}|zone={zone})" : $"0x0(node={slab.Node}|zone={zone})";
        _log.Print($"Slab 0x{_vmemmap + pfn * 64:x16} objects={slab.Objects} used={slab.InUse} fp=0x{fp:x16} flags={flags}");
    }

    // print_trailer: slab info, the object line, then hex dumps of red zone / bytes before, object, red zone, padding.
    private void PrintTrailer(KmemCache s, Slab slab, ulong p, string caller)
    {
        PrintSlabInfo(slab);
        _log.Print($"Object 0x{p:x16} @offset={p - slab.Va} fp=0x{NextFree(slab, p):x16}");
        _log.Print("");
        if ((s.Flags & SlabFlags.RedZone) != 0) PrintSection("Redzone  ", p - s.RedLeftPad, s.RedLeftPad);
        else if (p > slab.Va + 16) PrintSection("Bytes b4 ", p - 16, 16);
        PrintSection("Object   ", p, Math.Min(s.ObjectSize, 4096u));
        if ((s.Flags & SlabFlags.RedZone) != 0) PrintSection("Redzone  ", p + s.ObjectSize, s.InUse - s.ObjectSize);
        uint off = InfoEnd(s), end = SizeFromObject(s);
        if (off != end) PrintSection("Padding  ", p + off, end - off);
        DumpStack(caller);
    }

    // get_freepointer for the report: the free object after p in the slab's free list, or 0.
    private static ulong NextFree(Slab slab, ulong p)
    {
        for (int i = slab.FreeCount - 1; i > 0; i--)
            if (slab.ObjectAddress(slab.FreeStack[i]) == p) return slab.ObjectAddress(slab.FreeStack[i - 1]);
        return 0;
    }

    // print_hex_dump(KERN_ERR, text, DUMP_PREFIX_ADDRESS, 16, 1, addr, length, true).
    private void PrintSection(string text, ulong addr, uint length)
    {
        if (length == 0) return;
        var buf = Read(addr, length);
        var line = new StringBuilder(96);
        for (int i = 0; i < buf.Length; i += 16)
        {
            int n = Math.Min(16, buf.Length - i);
            line.Clear().Append(text).Append((addr + (ulong)i).ToString("x16", System.Globalization.CultureInfo.InvariantCulture)).Append(": ");
            int hexStart = line.Length;
            for (int j = 0; j < n; j++)
            {
                if (j > 0) line.Append(' ');
                line.Append(buf[i + j].ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            }
            line.Append(' ', Math.Max(1, 49 - (line.Length - hexStart)));
            for (int j = 0; j < n; j++)
            {
                byte ch = buf[i + j];
                line.Append(ch is >= 0x20 and < 0x7f ? (char)ch : '.');
            }
            _log.Print(line.ToString());
        }
    }

    // dump_stack, reduced to the one frame the model knows: the caller of the slab API.
    private void DumpStack(string caller)
    {
        _log.Print($"CPU: {_kernel.CurrentCpuIndex} UID: 0 PID: 1 Comm: swapper/0 {Tainted}");
        _log.Print("Call Trace:");
        _log.Print(" <TASK>");
        _log.Print($" {caller}");
        _log.Print(" </TASK>");
    }

    private ReadOnlySpan<byte> Read(ulong va, uint length)
    {
        if (_scratch.Length < length) _scratch = new byte[Math.Max(length, (uint)_scratch.Length * 2)];
        var span = _scratch.AsSpan(0, (int)length);
        _mem.ReadBytes(va, span);
        return span;
    }
}
