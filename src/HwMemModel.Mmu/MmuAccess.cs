using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using HwMemModel.Bus;

namespace HwMemModel.Mmu;

public sealed partial class Mmu
{
    /// <summary>
    /// The CPU's fast read: a TLB hit whose rights allow the access outright on a page with cached host memory. Gives
    /// exactly what <see cref="Read(ulong, int, Privilege, out ulong, AccessKind)"/> gives (counted the same), or
    /// false when that full path must run instead (nothing is counted then).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryReadFast(ulong va, int size, Privilege privilege, out ulong value)
    {
        if ((va & 0xFFF) + (ulong)size <= 0x1000)
        {
            ref var e = ref FastHit(va, AccessKind.Read, privilege);
            if (!Unsafe.IsNullRef(ref e))
            {
                var host = e.Host;
                if (host is not null && e.HostGeneration == _bus.LayoutGeneration)
                {
                    _bus.CountFastRead(RequesterKind.Cpu);
                    value = LoadHost(host, e.HostIndex + (int)(va & 0xFFF), size);
                    return true;
                }
                // The lookup was counted: finish this access on the full bus path for this entry.
                var r = e.Size != PageSize.Size4K ? ReadLarge(e.PaBase | FastOffset(in e, va), size, out value)
                    : ReadAndResolveHost(ref e, e.PaBase | (va & 0xFFF), size, out value);
                return r.BusStatus == BusStatus.Ok || ReadFailed(out value);
            }
        }
        value = 0;
        return false;
    }

    /// <summary>The CPU's fast write: the write counterpart of <see cref="TryReadFast"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryWriteFast(ulong va, int size, ulong value, Privilege privilege)
    {
        if ((va & 0xFFF) + (ulong)size <= 0x1000)
        {
            ref var e = ref FastHit(va, AccessKind.Write, privilege);
            if (!Unsafe.IsNullRef(ref e))
            {
                var host = e.WriteHost;
                if (host is not null && e.WriteHostGeneration == _bus.WriteGeneration)
                {
                    _bus.CountFastWrite(RequesterKind.Cpu);
                    StoreHost(host, (int)(va & 0xFFF), size, value);
                    return true;
                }
                WriteAfterHit(ref e, va, size, value); // a device that refuses the write drops it (counted by the bus)
                return true;
            }
        }
        return false;
    }

    // After a counted fast-path lookup the access is finished here even if a device refuses it (the bus counts the
    // error): a refused read gives all ones, as on a PCI master abort.
    private static bool ReadFailed(out ulong value)
    {
        value = ulong.MaxValue;
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private AccessResult WriteAfterHit(ref TlbEntry e, ulong va, int size, ulong value)
    {
        ulong pa = e.PaBase | FastOffset(in e, va);
        if (e.Size != PageSize.Size4K) return WriteLarge(pa, size, value);
        var status = _bus.Write(pa, size, value, _attrs);
        if (_bus.TryGetWritablePage(pa, out byte[] page))
        {
            e.WriteHost = page;
            e.WriteHostGeneration = _bus.WriteGeneration;
        }
        return new AccessResult(default, status);
    }

    /// <summary>Reads 1, 2, 4 or 8 bytes at <paramref name="va"/> with the current CPL's privilege.</summary>
    public AccessResult Read(ulong va, int size, out ulong value) => Read(va, size, _ctx.CurrentPrivilege, out value);

    /// <summary>
    /// Reads 1, 2, 4 or 8 bytes at <paramref name="va"/> (little-endian). An access that crosses a page boundary
    /// translates both pages before touching the bus. <paramref name="kind"/> is Read or Execute.
    /// </summary>
    public AccessResult Read(ulong va, int size, Privilege privilege, out ulong value, AccessKind kind = AccessKind.Read)
    {
        if (IsSimple(va, size) && kind != AccessKind.Write)
        {
            ref var e = ref FastHit(va, kind, privilege);
            if (!Unsafe.IsNullRef(ref e))
            {
                // The entry keeps the bus's answer for its physical page (like QEMU's TLB addend): a read of RAM or ROM
                // then goes straight to the page's host memory, counted as a bus read; anything else goes through the bus.
                var host = e.Host;
                if (host is not null && e.HostGeneration == _bus.LayoutGeneration)
                {
                    _bus.CountFastRead(RequesterKind.Cpu);
                    value = LoadHost(host, e.HostIndex + (int)(va & 0xFFF), size);
                    return default;
                }
                if (e.Size != PageSize.Size4K) return ReadLarge(e.PaBase | FastOffset(in e, va), size, out value);
                return ReadAndResolveHost(ref e, e.PaBase | (va & 0xFFF), size, out value);
            }
            var f = Translate(va, kind, privilege, out var t);
            if (f.IsFault) { value = 0; return new AccessResult(f, BusStatus.Ok); }
            return new AccessResult(Fault.None, _bus.Read(t.PhysicalAddress, size, out value, _attrs));
        }
        return ReadSplit(va, size, privilege, out value, kind);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private AccessResult ReadAndResolveHost(ref TlbEntry e, ulong pa, int size, out ulong value)
    {
        if (_bus.TryGetReadablePage(pa, out byte[] array, out int index))
        {
            e.Host = array;
            e.HostIndex = index;
            e.HostGeneration = _bus.LayoutGeneration;
        }
        return new AccessResult(default, _bus.Read(pa, size, out value, _attrs));
    }

    // Host pages for accesses through 2 MiB and 1 GiB TLB entries (one entry covers many host pages, so they cannot
    // live in the entry): a small direct-mapped cache keyed by physical page, checked against the bus generations.
    private const int LargeHostSlots = 8;
    private readonly ulong[] _largeReadPage = [ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue];
    private readonly byte[]?[] _largeReadHost = new byte[]?[LargeHostSlots];
    private readonly int[] _largeReadIndex = new int[LargeHostSlots];
    private readonly int[] _largeReadGen = new int[LargeHostSlots];
    private readonly ulong[] _largeWritePage = [ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue, ulong.MaxValue];
    private readonly byte[]?[] _largeWriteHost = new byte[]?[LargeHostSlots];
    private readonly int[] _largeWriteGen = new int[LargeHostSlots];

    private AccessResult ReadLarge(ulong pa, int size, out ulong value)
    {
        ulong page = pa >> 12;
        int slot = (int)(page & (LargeHostSlots - 1));
        var host = _largeReadHost[slot];
        if (_largeReadPage[slot] == page && host is not null && _largeReadGen[slot] == _bus.LayoutGeneration)
        {
            _bus.CountFastRead(RequesterKind.Cpu);
            value = LoadHost(host, _largeReadIndex[slot] + (int)(pa & 0xFFF), size);
            return default;
        }
        var status = _bus.Read(pa, size, out value, _attrs);
        if (_bus.TryGetReadablePage(pa, out byte[] array, out int index))
        {
            _largeReadPage[slot] = page;
            _largeReadHost[slot] = array;
            _largeReadIndex[slot] = index;
            _largeReadGen[slot] = _bus.LayoutGeneration;
        }
        return new AccessResult(default, status);
    }

    private AccessResult WriteLarge(ulong pa, int size, ulong value)
    {
        ulong page = pa >> 12;
        int slot = (int)(page & (LargeHostSlots - 1));
        var host = _largeWriteHost[slot];
        if (_largeWritePage[slot] == page && host is not null && _largeWriteGen[slot] == _bus.WriteGeneration)
        {
            _bus.CountFastWrite(RequesterKind.Cpu);
            StoreHost(host, (int)(pa & 0xFFF), size, value);
            return default;
        }
        var status = _bus.Write(pa, size, value, _attrs);
        if (_bus.TryGetWritablePage(pa, out byte[] array))
        {
            _largeWritePage[slot] = page;
            _largeWriteHost[slot] = array;
            _largeWriteGen[slot] = _bus.WriteGeneration;
        }
        return new AccessResult(default, status);
    }

    /// <summary>Reads 1, 2, 4 or 8 little-endian bytes of a cached host page (no bounds check: the index came from the bus).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong LoadHost(byte[] host, int index, int size)
    {
        ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(host), index);
        return size switch
        {
            8 => Unsafe.ReadUnaligned<ulong>(ref p),
            4 => Unsafe.ReadUnaligned<uint>(ref p),
            2 => Unsafe.ReadUnaligned<ushort>(ref p),
            _ => p,
        };
    }

    /// <summary>Writes the low 1, 2, 4 or 8 bytes of <paramref name="value"/> into a cached host page.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreHost(byte[] host, int index, int size, ulong value)
    {
        ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(host), index);
        switch (size)
        {
            case 8: Unsafe.WriteUnaligned(ref p, value); break;
            case 4: Unsafe.WriteUnaligned(ref p, (uint)value); break;
            case 2: Unsafe.WriteUnaligned(ref p, (ushort)value); break;
            default: p = (byte)value; break;
        }
    }

    // A valid size (1, 2, 4, 8) within one page.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsSimple(ulong va, int size)
        => (uint)(size - 1) < 8 && (size & (size - 1)) == 0 && (va & 0xFFF) + (ulong)size <= 0x1000;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private AccessResult ReadSplit(ulong va, int size, Privilege privilege, out ulong value, AccessKind kind)
    {
        CheckSize(size);
        if (kind == AccessKind.Write) ThrowWriteKind();
        Span<byte> buf = stackalloc byte[8];
        buf.Clear();
        var r = ReadBytes(va, buf[..size], privilege, kind);
        value = r.Fault.IsFault ? 0 : BinaryPrimitives.ReadUInt64LittleEndian(buf);
        return r;
    }

    /// <summary>Writes 1, 2, 4 or 8 bytes at <paramref name="va"/> with the current CPL's privilege.</summary>
    public AccessResult Write(ulong va, int size, ulong value) => Write(va, size, value, _ctx.CurrentPrivilege);

    /// <summary>Writes the low 1, 2, 4 or 8 bytes of <paramref name="value"/> at <paramref name="va"/>; a page-crossing write translates both pages first.</summary>
    public AccessResult Write(ulong va, int size, ulong value, Privilege privilege)
    {
        if (IsSimple(va, size))
        {
            ref var e = ref FastHit(va, AccessKind.Write, privilege);
            if (!Unsafe.IsNullRef(ref e))
            {
                var host = e.WriteHost;
                if (host is not null && e.WriteHostGeneration == _bus.WriteGeneration)
                {
                    _bus.CountFastWrite(RequesterKind.Cpu);
                    StoreHost(host, (int)(va & 0xFFF), size, value);
                    return default;
                }
                ulong pa = e.PaBase | FastOffset(in e, va);
                if (e.Size != PageSize.Size4K) return WriteLarge(pa, size, value);
                var status = _bus.Write(pa, size, value, _attrs);
                if (e.Size == PageSize.Size4K && _bus.TryGetWritablePage(pa, out byte[] page))
                {
                    e.WriteHost = page;
                    e.WriteHostGeneration = _bus.WriteGeneration;
                }
                return new AccessResult(default, status);
            }
            var f = Translate(va, AccessKind.Write, privilege, out var t);
            if (f.IsFault) return new AccessResult(f, BusStatus.Ok);
            return new AccessResult(Fault.None, _bus.Write(t.PhysicalAddress, size, value, _attrs));
        }
        return WriteSplit(va, size, value, privilege);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private AccessResult WriteSplit(ulong va, int size, ulong value, Privilege privilege)
    {
        CheckSize(size);
        Span<byte> buf = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buf, value);
        return WriteBytes(va, buf[..size], privilege);
    }

    /// <summary>
    /// Reads a byte range through translation, page by page; every page is translated before any bus read, so a fault
    /// leaves nothing read. Linear addresses wrap modulo 2^64.
    /// </summary>
    public AccessResult ReadBytes(ulong va, Span<byte> destination, Privilege privilege, AccessKind kind = AccessKind.Read)
    {
        if (kind == AccessKind.Write) ThrowWriteKind();
        var f = ProbeRange(va, destination.Length, kind, privilege);
        if (f.IsFault) return new AccessResult(f, BusStatus.Ok);
        var status = BusStatus.Ok;
        for (int done = 0; done < destination.Length;)
        {
            ulong cur = va + (ulong)done;
            int chunk = ChunkAt(cur, destination.Length - done);
            f = Translate(cur, kind, privilege, out var t);
            if (f.IsFault) return new AccessResult(f, status);
            var s = _bus.ReadBytes(t.PhysicalAddress, destination.Slice(done, chunk), _attrs);
            if (status == BusStatus.Ok) status = s;
            done += chunk;
        }
        return new AccessResult(Fault.None, status);
    }

    /// <summary>
    /// Writes a byte range through translation; every page is translated for writing before any bus write, so a fault
    /// leaves memory unchanged. Linear addresses wrap modulo 2^64.
    /// </summary>
    public AccessResult WriteBytes(ulong va, ReadOnlySpan<byte> source, Privilege privilege)
    {
        var f = ProbeRange(va, source.Length, AccessKind.Write, privilege);
        if (f.IsFault) return new AccessResult(f, BusStatus.Ok);
        var status = BusStatus.Ok;
        for (int done = 0; done < source.Length;)
        {
            ulong cur = va + (ulong)done;
            int chunk = ChunkAt(cur, source.Length - done);
            f = Translate(cur, AccessKind.Write, privilege, out var t);
            if (f.IsFault) return new AccessResult(f, status);
            var s = _bus.WriteBytes(t.PhysicalAddress, source.Slice(done, chunk), _attrs);
            if (status == BusStatus.Ok) status = s;
            done += chunk;
        }
        return new AccessResult(Fault.None, status);
    }

    /// <summary>Bytes from <paramref name="va"/> to the end of its page, at most <paramref name="remaining"/>.</summary>
    private static int ChunkAt(ulong va, int remaining) => (int)Math.Min((ulong)remaining, 0x1000 - (va & 0xFFF));

    private Fault ProbeRange(ulong va, int length, AccessKind kind, Privilege privilege)
    {
        for (int done = 0; done < length;)
        {
            ulong cur = va + (ulong)done;
            var f = Translate(cur, kind, privilege, out _);
            if (f.IsFault) return f;
            done += ChunkAt(cur, length - done);
        }
        return Fault.None;
    }

    private static void CheckSize(int size)
    {
        if (size is not (1 or 2 or 4 or 8)) ThrowSize(size);
    }

    [DoesNotReturn]
    private static void ThrowSize(int size)
        => throw new ArgumentOutOfRangeException(nameof(size), size, "Access size must be 1, 2, 4 or 8 bytes; use ReadBytes/WriteBytes for other lengths.");

    [DoesNotReturn]
    private static void ThrowWriteKind()
        => throw new ArgumentException("A read takes AccessKind.Read or AccessKind.Execute; use Write for writes.", "kind");
}
