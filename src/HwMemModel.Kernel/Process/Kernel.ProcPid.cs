using System.Globalization;
using System.Text;
using HwMemModel.Kernel.Process;

namespace HwMemModel.Kernel;

/// <summary>Page counts of one VMA, read from its page-table entries in RAM (what smaps reports).</summary>
public readonly record struct VmaPageCounts(long Rss, long PssBytes, long PssDirtyBytes, long SharedClean, long SharedDirty, long PrivateClean, long PrivateDirty, long Referenced, long Anonymous)
{
    /// <summary>Adds two counts.</summary>
    public static VmaPageCounts operator +(VmaPageCounts a, VmaPageCounts b) => new(a.Rss + b.Rss, a.PssBytes + b.PssBytes, a.PssDirtyBytes + b.PssDirtyBytes, a.SharedClean + b.SharedClean,
        a.SharedDirty + b.SharedDirty, a.PrivateClean + b.PrivateClean, a.PrivateDirty + b.PrivateDirty, a.Referenced + b.Referenced, a.Anonymous + b.Anonymous);
}

public sealed partial class Kernel
{
    /// <summary>The device number the sandbox's files show in /proc/PID/maps (major 0, minor 0x20: a virtual file system).</summary>
    private const string SandboxDevice = "00:20";

    /// <summary>/proc/PID/maps of <paramref name="task"/>, in Linux's format (names start at column 74).</summary>
    public string FormatMaps(TaskStruct task)
    {
        var sb = new StringBuilder();
        foreach (var v in task.Mm?.Vmas ?? []) sb.Append(MapsLine(v)).Append('\n');
        return sb.ToString();
    }

    private static string MapsLine(VmArea v)
    {
        var f = v.Flags;
        string head = string.Create(CultureInfo.InvariantCulture,
            $"{v.Start:x8}-{v.End:x8} {((f & VmaFlags.Read) != 0 ? 'r' : '-')}{((f & VmaFlags.Write) != 0 ? 'w' : '-')}{((f & VmaFlags.Exec) != 0 ? 'x' : '-')}{((f & VmaFlags.MayShare) != 0 ? 's' : 'p')} ");
        string name;
        if (v.File is { } file)
        {
            head += string.Create(CultureInfo.InvariantCulture, $"{v.PageOffset << 12:x8} {SandboxDevice} {file.Inode} ");
            name = file.GuestPath;
        }
        else if (v.Shmem is not null)
        {
            head += string.Create(CultureInfo.InvariantCulture, $"{v.PageOffset << 12:x8} 00:01 {v.SlabObject & 0xFFFFF} ");
            name = "/dev/zero (deleted)";
        }
        else
        {
            head += "00000000 00:00 0 ";
            name = v.Name ?? "";
        }
        if (name.Length == 0) return head;
        return head.PadRight(72) + " " + name;
    }

    /// <summary>The page counts of <paramref name="v"/> in <paramref name="mm"/>, read from its PTEs.</summary>
    public VmaPageCounts CountPages(MmStruct mm, VmArea v)
    {
        long rss = 0, pss = 0, pssDirty = 0, sc = 0, sd = 0, pc = 0, pd = 0, refd = 0, anon = 0;
        for (ulong va = v.Start; va < v.End;)
        {
            ulong ptePa = UserPteOrNext(mm, va, out ulong next);
            va = next;
            if (ptePa == 0) continue;
            ulong pte = ReadPhys(ptePa);
            if ((pte & PtePresent) == 0) continue;
            ulong pa = pte & PteAddr;
            if (pa == User.ZeroPage) continue; // vm_normal_page: the zero page is not counted
            int maps = Math.Max(1, User.MapCount[pa >> 12]);
            bool dirty = (pte & PteDirty) != 0;
            rss += 4096;
            pss += 4096 / maps;
            if (dirty) pssDirty += 4096 / maps;
            if (maps > 1) { if (dirty) sd += 4096; else sc += 4096; }
            else { if (dirty) pd += 4096; else pc += 4096; }
            if ((pte & PteAccessed) != 0) refd += 4096;
            if (KindOf(pa) == PageKind.Anon) anon += 4096;
        }
        return new VmaPageCounts(rss, pss, pssDirty, sc, sd, pc, pd, refd, anon);
    }

    /// <summary>/proc/PID/smaps of <paramref name="task"/>, in Linux 6.18's format.</summary>
    public string FormatSmaps(TaskStruct task)
    {
        var sb = new StringBuilder();
        if (task.Mm is not { } mm) return "";
        foreach (var v in mm.Vmas)
        {
            sb.Append(MapsLine(v)).Append('\n');
            var c = CountPages(mm, v);
            void Kb(string label, long bytes) => sb.Append(CultureInfo.InvariantCulture, $"{label,-16}{bytes >> 10,8} kB\n");
            Kb("Size:", (long)v.Size);
            Kb("KernelPageSize:", 4096);
            Kb("MMUPageSize:", 4096);
            Kb("Rss:", c.Rss);
            Kb("Pss:", c.PssBytes);
            Kb("Pss_Dirty:", c.PssDirtyBytes);
            Kb("Shared_Clean:", c.SharedClean);
            Kb("Shared_Dirty:", c.SharedDirty);
            Kb("Private_Clean:", c.PrivateClean);
            Kb("Private_Dirty:", c.PrivateDirty);
            Kb("Referenced:", c.Referenced);
            Kb("Anonymous:", c.Anonymous);
            foreach (var zero in new[] { "KSM:", "LazyFree:", "AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:", "Shared_Hugetlb:", "Private_Hugetlb:", "Swap:", "SwapPss:", "Locked:" })
                Kb(zero, 0);
            sb.Append("THPeligible:    0\n");
            sb.Append("VmFlags: ").Append(VmFlagNames(v.Flags)).Append('\n');
        }
        return sb.ToString();
    }

    private static string VmFlagNames(VmaFlags f)
    {
        var names = new List<string>();
        foreach (var (bit, name) in new[]
        {
            (VmaFlags.Read, "rd"), (VmaFlags.Write, "wr"), (VmaFlags.Exec, "ex"), (VmaFlags.Shared, "sh"), (VmaFlags.MayRead, "mr"),
            (VmaFlags.MayWrite, "mw"), (VmaFlags.MayExec, "me"), (VmaFlags.MayShare, "ms"), (VmaFlags.GrowsDown, "gd"),
            (VmaFlags.Account, "ac"), (VmaFlags.NoReserve, "nr"),
        })
            if ((f & bit) != 0) names.Add(name);
        return string.Join(' ', names) + " ";
    }

    /// <summary>
    /// /proc/PID/status (the memory and fault lines): VmSize, VmRSS with its anonymous, file and shmem parts, VmPTE,
    /// and the task's minor, major and copy-on-write fault counts (the last is the model's addition).
    /// </summary>
    public string FormatStatus(TaskStruct task)
    {
        var sb = new StringBuilder();
        void Line(string label, string value) => sb.Append(CultureInfo.InvariantCulture, $"{label}\t{value}\n");
        Line("Name:", task.Comm);
        Line("State:", task.State switch { TaskState.Runnable => "R (running)", TaskState.WaitingForChild => "S (sleeping)", TaskState.Zombie => "Z (zombie)", _ => "X (dead)" });
        Line("Pid:", task.Pid.ToString(CultureInfo.InvariantCulture));
        Line("PPid:", (task.Parent?.Pid ?? 1).ToString(CultureInfo.InvariantCulture));
        if (task.Mm is { } mm)
        {
            string Kb(long pages) => string.Create(CultureInfo.InvariantCulture, $"{pages * 4,8} kB");
            Line("VmSize:", Kb(mm.TotalVm));
            Line("VmHWM:", Kb(mm.HiwaterRss));
            Line("VmRSS:", Kb(mm.RssAnon + mm.RssFile + mm.RssShmem));
            Line("RssAnon:", Kb(mm.RssAnon));
            Line("RssFile:", Kb(mm.RssFile));
            Line("RssShmem:", Kb(mm.RssShmem));
            Line("VmPTE:", Kb(mm.PageTablePages));
        }
        Line("MinFlt:", task.MinorFaults.ToString(CultureInfo.InvariantCulture));
        Line("MajFlt:", task.MajorFaults.ToString(CultureInfo.InvariantCulture));
        Line("CowFlt:", task.CowFaults.ToString(CultureInfo.InvariantCulture));
        return sb.ToString();
    }
}
