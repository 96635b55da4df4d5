using HwMemModel.Devices.Common;
using Microsoft.Win32.SafeHandles;

namespace HwMemModel.Devices.Virtio;

/// <summary>
/// The storage behind a block device: a byte-addressed disk image. The device checks every request against
/// <see cref="Length"/> and <see cref="ReadOnly"/> before calling, so implementations see only in-range offsets.
/// A host-side failure is a false result (the device answers VIRTIO_BLK_S_IOERR), never an exception.
/// </summary>
public interface IBlockBackend
{
    /// <summary>Size of the image in bytes; the device's capacity is <c>Length / 512</c> sectors.</summary>
    long Length { get; }

    /// <summary>Whether the image refuses writes (the device then offers VIRTIO_BLK_F_RO).</summary>
    bool ReadOnly { get; }

    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/>; false on a host I/O error.</summary>
    bool Read(long offset, Span<byte> destination);

    /// <summary>Stores <paramref name="source"/> at <paramref name="offset"/>; false on a host I/O error or a read-only image.</summary>
    bool Write(long offset, ReadOnlySpan<byte> source);

    /// <summary>Commits completed writes to stable storage; false on a host I/O error.</summary>
    bool Flush();
}

/// <summary>A disk image held in a byte array: fast, deterministic, gone when the process ends.</summary>
public sealed class MemoryBlockBackend : IBlockBackend
{
    private readonly byte[] _data;

    /// <summary>Creates a zero-filled image of <paramref name="length"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative or larger than an array can hold.</exception>
    public MemoryBlockBackend(long length, bool readOnly = false)
    {
        if (length < 0 || length > Array.MaxLength)
        {
            DeviceThrow.OutOfRange(nameof(length), length,
                $"An in-memory disk of {length} bytes is not possible; use 0 to {Array.MaxLength} bytes (or a FileBlockBackend for larger images).");
        }

        _data = new byte[length];
        ReadOnly = readOnly;
    }

    /// <summary>Uses <paramref name="image"/> as the disk (not copied: the caller sees every write).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="image"/> is null.</exception>
    public MemoryBlockBackend(byte[] image, bool readOnly = false)
    {
        _data = DeviceThrow.NotNull(image, nameof(image), "An in-memory disk");
        ReadOnly = readOnly;
    }

    /// <inheritdoc />
    public long Length => _data.Length;

    /// <inheritdoc />
    public bool ReadOnly { get; }

    /// <summary>The image's bytes (writable by the host whatever <see cref="ReadOnly"/> says).</summary>
    public Span<byte> Data => _data;

    /// <summary>How many times <see cref="Flush"/> was called.</summary>
    public long Flushes { get; private set; }

    /// <inheritdoc />
    public bool Read(long offset, Span<byte> destination)
    {
        if (!InRange(offset, destination.Length))
        {
            return false;
        }

        _data.AsSpan((int)offset, destination.Length).CopyTo(destination);
        return true;
    }

    /// <inheritdoc />
    public bool Write(long offset, ReadOnlySpan<byte> source)
    {
        if (ReadOnly || !InRange(offset, source.Length))
        {
            return false;
        }

        source.CopyTo(_data.AsSpan((int)offset, source.Length));
        return true;
    }

    /// <inheritdoc />
    public bool Flush()
    {
        Flushes++;
        return true;
    }

    private bool InRange(long offset, int length) => offset >= 0 && offset <= _data.Length - (long)length;
}

/// <summary>
/// A disk image in a host file, read and written in place (positional I/O, no buffering in .NET). The length is
/// taken when the file is opened. Host I/O errors become false results. Dispose it when the machine is done.
/// </summary>
public sealed class FileBlockBackend : IBlockBackend, IDisposable
{
    private readonly FileStream _stream;
    private readonly SafeFileHandle _handle;

    /// <summary>Opens an existing image file.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="readOnly">Open for reading only; the device then offers VIRTIO_BLK_F_RO and fails writes.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    /// <exception cref="IOException">The file cannot be opened (missing, locked, ...).</exception>
    /// <exception cref="UnauthorizedAccessException">The file may not be opened with the requested access.</exception>
    public FileBlockBackend(string path, bool readOnly = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        _stream = new FileStream(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite,
            readOnly ? FileShare.Read : FileShare.None, bufferSize: 0, FileOptions.RandomAccess);
        _handle = _stream.SafeFileHandle;
        Path = path;
        ReadOnly = readOnly;
        Length = _stream.Length;
    }

    /// <summary>Creates (or truncates) <paramref name="path"/> as a zero-filled image of <paramref name="length"/> bytes and opens it read-write.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public static FileBlockBackend Create(string path, long length)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (length < 0)
        {
            DeviceThrow.OutOfRange(nameof(length), length, $"A disk image of {length} bytes is not possible; the length must be 0 or more.");
        }

        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.SetLength(length);
        }

        return new FileBlockBackend(path);
    }

    /// <summary>The image file's path.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public long Length { get; }

    /// <inheritdoc />
    public bool ReadOnly { get; }

    /// <summary>Host I/O operations that failed (each answered the guest with VIRTIO_BLK_S_IOERR).</summary>
    public long HostErrors { get; private set; }

    /// <inheritdoc />
    public bool Read(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset > Length - destination.Length)
        {
            return false;
        }

        try
        {
            while (!destination.IsEmpty)
            {
                int n = RandomAccess.Read(_handle, destination, offset);
                if (n <= 0)
                {
                    HostErrors++; // The file shrank under us.
                    return false;
                }

                destination = destination[n..];
                offset += n;
            }

            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException or NotSupportedException)
        {
            HostErrors++;
            return false;
        }
    }

    /// <inheritdoc />
    public bool Write(long offset, ReadOnlySpan<byte> source)
    {
        if (ReadOnly || offset < 0 || offset > Length - source.Length)
        {
            return false;
        }

        try
        {
            RandomAccess.Write(_handle, source, offset);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException or NotSupportedException)
        {
            HostErrors++;
            return false;
        }
    }

    /// <inheritdoc />
    public bool Flush()
    {
        if (ReadOnly)
        {
            return true;
        }

        try
        {
            _stream.Flush(flushToDisk: true);
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            HostErrors++;
            return false;
        }
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _stream.Dispose();
}
