namespace HwMemModel.Kernel;

/// <summary>Linux error numbers (include/uapi/asm-generic/errno-base.h, errno.h); kernel calls return them negated.</summary>
public static class Errno
{
    /// <summary>I/O error.</summary>
    public const int EIO = 5;
    /// <summary>No such device or address.</summary>
    public const int ENXIO = 6;
    /// <summary>Out of memory.</summary>
    public const int ENOMEM = 12;
    /// <summary>Device or resource busy.</summary>
    public const int EBUSY = 16;
    /// <summary>File exists.</summary>
    public const int EEXIST = 17;
    /// <summary>No such device.</summary>
    public const int ENODEV = 19;
    /// <summary>Invalid argument.</summary>
    public const int EINVAL = 22;
    /// <summary>No space left on device.</summary>
    public const int ENOSPC = 28;
    /// <summary>Read-only file system.</summary>
    public const int EROFS = 30;
    /// <summary>Operation not supported.</summary>
    public const int EOPNOTSUPP = 95;
    /// <summary>Connection timed out.</summary>
    public const int ETIMEDOUT = 110;
    /// <summary>Driver requests probe retry.</summary>
    public const int EPROBE_DEFER = 517;

    /// <summary>The symbolic name of <paramref name="errno"/> (sign ignored), or the number.</summary>
    public static string Name(int errno) => Math.Abs(errno) switch
    {
        EIO => "EIO", ENXIO => "ENXIO", ENOMEM => "ENOMEM", EBUSY => "EBUSY", EEXIST => "EEXIST", ENODEV => "ENODEV",
        EINVAL => "EINVAL", ENOSPC => "ENOSPC", EROFS => "EROFS", EOPNOTSUPP => "EOPNOTSUPP", ETIMEDOUT => "ETIMEDOUT",
        EPROBE_DEFER => "EPROBE_DEFER", var n => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
