namespace HwMemModel.Kernel;

/// <summary>Linux error numbers (include/uapi/asm-generic/errno-base.h, errno.h); kernel calls return them negated.</summary>
public static class Errno
{
    /// <summary>Operation not permitted.</summary>
    public const int EPERM = 1;
    /// <summary>No such file or directory.</summary>
    public const int ENOENT = 2;
    /// <summary>No such process.</summary>
    public const int ESRCH = 3;
    /// <summary>Interrupted system call.</summary>
    public const int EINTR = 4;
    /// <summary>Argument list too long.</summary>
    public const int E2BIG = 7;
    /// <summary>Exec format error.</summary>
    public const int ENOEXEC = 8;
    /// <summary>Bad file number.</summary>
    public const int EBADF = 9;
    /// <summary>No child processes.</summary>
    public const int ECHILD = 10;
    /// <summary>Try again.</summary>
    public const int EAGAIN = 11;
    /// <summary>Permission denied.</summary>
    public const int EACCES = 13;
    /// <summary>Bad address.</summary>
    public const int EFAULT = 14;
    /// <summary>Not a directory.</summary>
    public const int ENOTDIR = 20;
    /// <summary>Is a directory.</summary>
    public const int EISDIR = 21;
    /// <summary>Too many open files.</summary>
    public const int EMFILE = 24;
    /// <summary>Not a typewriter (inappropriate ioctl for device).</summary>
    public const int ENOTTY = 25;
    /// <summary>Illegal seek.</summary>
    public const int ESPIPE = 29;
    /// <summary>Math result not representable.</summary>
    public const int ERANGE = 34;
    /// <summary>File name too long.</summary>
    public const int ENAMETOOLONG = 36;
    /// <summary>Invalid system call number.</summary>
    public const int ENOSYS = 38;
    /// <summary>Too many symbolic links encountered.</summary>
    public const int ELOOP = 40;
    /// <summary>Value too large for defined data type.</summary>
    public const int EOVERFLOW = 75;
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
        EPROBE_DEFER => "EPROBE_DEFER",
        EPERM => "EPERM", ENOENT => "ENOENT", ESRCH => "ESRCH", EINTR => "EINTR", E2BIG => "E2BIG", ENOEXEC => "ENOEXEC", EBADF => "EBADF", ECHILD => "ECHILD", EAGAIN => "EAGAIN", EACCES => "EACCES", EFAULT => "EFAULT", ENOTDIR => "ENOTDIR", EISDIR => "EISDIR", EMFILE => "EMFILE", ENOTTY => "ENOTTY", ESPIPE => "ESPIPE", ERANGE => "ERANGE", ENAMETOOLONG => "ENAMETOOLONG", ENOSYS => "ENOSYS", ELOOP => "ELOOP", EOVERFLOW => "EOVERFLOW", var n => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
