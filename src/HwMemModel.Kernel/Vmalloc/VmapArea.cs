namespace HwMemModel.Kernel;

/// <summary>vm_struct flags with Linux's values (include/linux/vmalloc.h).</summary>
[Flags]
public enum VmFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,
    /// <summary>VM_IOREMAP: an ioremap area.</summary>
    IoRemap = 0x01,
    /// <summary>VM_ALLOC: a vmalloc area (pages owned by the area).</summary>
    Alloc = 0x02,
    /// <summary>VM_MAP: a vmap area (pages owned by the caller).</summary>
    Map = 0x04,
    /// <summary>VM_USERMAP.</summary>
    UserMap = 0x08,
    /// <summary>VM_DMA_COHERENT.</summary>
    DmaCoherent = 0x10,
    /// <summary>VM_UNINITIALIZED: set while the area is being populated.</summary>
    Uninitialized = 0x20,
    /// <summary>VM_NO_GUARD: no guard page after the area.</summary>
    NoGuard = 0x40,
}

/// <summary>A snapshot of one busy vmalloc-space area (struct vm_struct).</summary>
/// <param name="Address">First byte of the area (vm->addr).</param>
/// <param name="Size">vm->size: the mapped size plus the guard page.</param>
/// <param name="Flags">VM_* flags.</param>
/// <param name="Pages">Physical addresses of the pages the area owns (vmalloc) or maps (vmap); empty for ioremap.</param>
/// <param name="PhysAddr">vm->phys_addr: the page-aligned physical base of an ioremap area, else 0.</param>
/// <param name="Caller">The caller recorded for /proc/vmallocinfo.</param>
public sealed record VmAreaInfo(ulong Address, ulong Size, VmFlags Flags, IReadOnlyList<ulong> Pages, ulong PhysAddr, string Caller)
{
    /// <summary>The size without the guard page (get_vm_area_size).</summary>
    public ulong MappedSize => (Flags & VmFlags.NoGuard) != 0 ? Size : Size - PageAllocator.PageSize;
}

/// <summary>
/// struct vmap_area and its struct vm_struct in one object: a range [Start, End) of the vmalloc space. The same node
/// type sits in the free tree, the busy tree or the lazy (purge) list, as in mm/vmalloc.c.
/// </summary>
internal sealed class VmapArea
{
    public ulong Start;
    public ulong End;

    // Tree links and the augmented value (subtree_max_size) of the tree the node sits in.
    public VmapArea? Left;
    public VmapArea? Right;
    public int Height = 1;
    public ulong SubtreeMaxSize;

    // vm_struct.
    public VmFlags Flags;
    /// <summary>The pages: owned (vmalloc, the first <see cref="NrPages"/>) or the caller's (vmap).</summary>
    public ulong[]? Pages;
    /// <summary>vm->nr_pages: pages the area owns (0 for vmap and ioremap).</summary>
    public int NrPages;
    public ulong PhysAddr;
    public string Caller = "";
    /// <summary>Whether the pages go back to the buddy allocator at purge (a vfree'd vmalloc area under <see cref="VfreePagePolicy.AtPurge"/>).</summary>
    public bool FreePagesAtPurge;

    public VmapArea(ulong start, ulong end)
    {
        Start = start;
        End = end;
        SubtreeMaxSize = end - start;
    }

    public ulong Size => End - Start;

    public VmAreaInfo Snapshot() => new(Start, Size, Flags & ~VmFlags.Uninitialized,
        Pages is null ? [] : (Flags & VmFlags.Alloc) != 0 ? Pages.AsSpan(0, NrPages).ToArray() : [.. Pages], PhysAddr, Caller);
}

/// <summary>
/// An AVL tree of non-overlapping <see cref="VmapArea"/> ranges ordered by start address and augmented with the largest
/// range size in each subtree (Linux uses an augmented red-black tree with subtree_max_size for the same purpose), so
/// the lowest-address first fit is found without visiting subtrees too small to hold the request.
/// </summary>
internal sealed class VmapAreaTree
{
    private VmapArea? _root;

    public int Count { get; private set; }

    public bool IsEmpty => _root is null;

    public void Insert(VmapArea node)
    {
        node.Left = node.Right = null;
        node.Height = 1;
        node.SubtreeMaxSize = node.Size;
        _root = Insert(_root, node);
        Count++;
    }

    public void Remove(VmapArea node)
    {
        _root = Remove(_root, node);
        node.Left = node.Right = null;
        Count--;
    }

    /// <summary>
    /// Recomputes the augmented values on the path to <paramref name="node"/> after its bounds changed in place (its
    /// order among the other ranges unchanged).
    /// </summary>
    public void Update(VmapArea node) => Update(_root, node);

    private static void Update(VmapArea? n, VmapArea node)
    {
        if (n is null) throw new InvalidOperationException($"vmap area 0x{node.Start:x}-0x{node.End:x} is not in the tree.");
        if (!ReferenceEquals(n, node)) Update(node.Start < n.Start ? n.Left : n.Right, node);
        Fix(n);
    }

    /// <summary>The range containing <paramref name="address"/>, or null (__find_vmap_area).</summary>
    public VmapArea? FindContaining(ulong address)
    {
        var n = _root;
        while (n is not null)
        {
            if (address < n.Start) n = n.Left;
            else if (address >= n.End) n = n.Right;
            else return n;
        }
        return null;
    }

    /// <summary>The range with the largest start below <paramref name="address"/>, or null.</summary>
    public VmapArea? Below(ulong address)
    {
        VmapArea? best = null;
        var n = _root;
        while (n is not null)
        {
            if (n.Start < address) { best = n; n = n.Right; }
            else n = n.Left;
        }
        return best;
    }

    /// <summary>The range with the smallest start at or above <paramref name="address"/>, or null.</summary>
    public VmapArea? AtOrAbove(ulong address)
    {
        VmapArea? best = null;
        var n = _root;
        while (n is not null)
        {
            if (n.Start >= address) { best = n; n = n.Left; }
            else n = n.Right;
        }
        return best;
    }

    /// <summary>
    /// find_vmap_lowest_match: the lowest-addressed range that holds <paramref name="size"/> bytes at an address
    /// aligned to <paramref name="align"/>; returns the range and that address.
    /// </summary>
    public VmapArea? FindLowestFit(ulong size, ulong align, out ulong address)
    {
        address = 0;
        return FindLowestFit(_root, size, align, ref address);
    }

    private static VmapArea? FindLowestFit(VmapArea? n, ulong size, ulong align, ref ulong address)
    {
        while (n is not null && n.SubtreeMaxSize >= size)
        {
            var left = FindLowestFit(n.Left, size, align, ref address);
            if (left is not null) return left;
            if (n.Size >= size)
            {
                ulong a = (n.Start + (align - 1)) & ~(align - 1);
                if (a >= n.Start && a < n.End && n.End - a >= size)
                {
                    address = a;
                    return n;
                }
            }
            n = n.Right;
        }
        return null;
    }

    /// <summary>All ranges in address order.</summary>
    public IEnumerable<VmapArea> InOrder()
    {
        var stack = new Stack<VmapArea>();
        var n = _root;
        while (stack.Count > 0 || n is not null)
        {
            while (n is not null) { stack.Push(n); n = n.Left; }
            n = stack.Pop();
            yield return n;
            n = n.Right;
        }
    }

    private static int H(VmapArea? n) => n?.Height ?? 0;

    private static void Fix(VmapArea n)
    {
        n.Height = 1 + Math.Max(H(n.Left), H(n.Right));
        ulong max = n.Size;
        if (n.Left is { } l && l.SubtreeMaxSize > max) max = l.SubtreeMaxSize;
        if (n.Right is { } r && r.SubtreeMaxSize > max) max = r.SubtreeMaxSize;
        n.SubtreeMaxSize = max;
    }

    private static VmapArea RotateRight(VmapArea n)
    {
        var l = n.Left!;
        n.Left = l.Right;
        l.Right = n;
        Fix(n);
        Fix(l);
        return l;
    }

    private static VmapArea RotateLeft(VmapArea n)
    {
        var r = n.Right!;
        n.Right = r.Left;
        r.Left = n;
        Fix(n);
        Fix(r);
        return r;
    }

    private static VmapArea Balance(VmapArea n)
    {
        Fix(n);
        int bf = H(n.Left) - H(n.Right);
        if (bf > 1)
        {
            if (H(n.Left!.Left) < H(n.Left.Right)) n.Left = RotateLeft(n.Left);
            return RotateRight(n);
        }
        if (bf < -1)
        {
            if (H(n.Right!.Right) < H(n.Right.Left)) n.Right = RotateRight(n.Right);
            return RotateLeft(n);
        }
        return n;
    }

    private static VmapArea Insert(VmapArea? n, VmapArea node)
    {
        if (n is null) return node;
        if (node.Start < n.Start) n.Left = Insert(n.Left, node);
        else n.Right = Insert(n.Right, node);
        return Balance(n);
    }

    private static VmapArea? Remove(VmapArea? n, VmapArea node)
    {
        if (n is null) throw new InvalidOperationException($"vmap area 0x{node.Start:x}-0x{node.End:x} is not in the tree.");
        if (node.Start < n.Start) n.Left = Remove(n.Left, node);
        else if (node.Start > n.Start || !ReferenceEquals(n, node)) n.Right = Remove(n.Right, node);
        else
        {
            if (n.Left is null) return n.Right;
            if (n.Right is null) return n.Left;
            // Replace by the smallest node of the right subtree.
            var right = RemoveMin(n.Right, out var min);
            min.Left = n.Left;
            min.Right = right;
            return Balance(min);
        }
        return Balance(n);
    }

    private static VmapArea? RemoveMin(VmapArea n, out VmapArea min)
    {
        if (n.Left is null)
        {
            min = n;
            return n.Right;
        }
        n.Left = RemoveMin(n.Left, out min);
        return Balance(n);
    }
}
