namespace HwMemModel.Kernel.Process;

/// <summary>
/// The file system user processes see: a host directory as "/", read-only, as after chroot. ".." stops at the root;
/// a symbolic link that leads outside the root is refused (EACCES).
/// </summary>
public sealed class Sandbox
{
    private readonly Dictionary<string, SandboxFile> _files = new(StringComparer.Ordinal);
    private ulong _nextInode = 2;

    /// <summary>Creates a sandbox rooted at <paramref name="root"/>, which must be an existing directory.</summary>
    public Sandbox(string root)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (!Directory.Exists(root)) throw new ArgumentException($"The sandbox root '{root}' is not an existing directory; give a directory that the programs may read.", nameof(root));
        Root = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar);
    }

    /// <summary>The host directory.</summary>
    public string Root { get; }

    /// <summary>Normalises a guest path (absolute or relative to "/") to an absolute guest path.</summary>
    public static string Normalize(string guestPath)
    {
        var parts = new List<string>();
        foreach (var p in guestPath.Split('/'))
        {
            if (p.Length == 0 || p == ".") continue;
            if (p == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); continue; }
            parts.Add(p);
        }
        return "/" + string.Join('/', parts);
    }

    /// <summary>Looks <paramref name="guestPath"/> up: the file, or a negative errno (ENOENT, EACCES, ENAMETOOLONG).</summary>
    public (SandboxFile? File, int Error) Lookup(string guestPath)
    {
        if (guestPath.Length == 0) return (null, -Errno.ENOENT);
        if (guestPath.Length >= 4096) return (null, -Errno.ENAMETOOLONG);
        string g = Normalize(guestPath);
        if (_files.TryGetValue(g, out var known)) return (known, 0);
        string host = g == "/" ? Root : Path.Combine(Root, g[1..].Replace('/', Path.DirectorySeparatorChar));
        bool isDir = Directory.Exists(host);
        if (!isDir && !File.Exists(host)) return (null, -Errno.ENOENT);
        string real;
        try
        {
            FileSystemInfo info = isDir ? new DirectoryInfo(host) : new FileInfo(host);
            real = info.LinkTarget is null ? Path.GetFullPath(host) : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? host;
        }
        catch (IOException) { return (null, -Errno.ELOOP); }
        catch (UnauthorizedAccessException) { return (null, -Errno.EACCES); }
        if (real != Root && !real.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal)) return (null, -Errno.EACCES);
        // A file the host does not let us read is EACCES here, not a host exception at the first read.
        if (!isDir && !CanRead(real)) return (null, -Errno.EACCES);
        var f = new SandboxFile(g, real, _nextInode++, isDir);
        _files[g] = f;
        return (f, 0);
    }

    private static bool CanRead(string hostPath)
    {
        try
        {
            File.OpenHandle(hostPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite).Dispose();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
