namespace HwMemModel.Machine.Boot;

/// <summary>
/// An image given to <c>hwmem run</c> (<c>--bios</c> or <c>--kernel</c>) cannot be loaded. The message is one line:
/// the file name, what is wrong with it and what is accepted, ready to print as the command's error.
/// </summary>
public sealed class ImageLoadException : Exception
{
    /// <summary>Creates the exception; <paramref name="message"/> must already name the file.</summary>
    /// <param name="path">The image's path as the user gave it.</param>
    /// <param name="message">One line: the file, the problem, what is accepted.</param>
    public ImageLoadException(string path, string message)
        : base(message)
    {
        ImagePath = path;
    }

    /// <summary>Creates the exception with the exception that revealed the problem.</summary>
    /// <param name="path">The image's path as the user gave it.</param>
    /// <param name="message">One line: the file, the problem, what is accepted.</param>
    /// <param name="innerException">The exception that revealed the problem (for example from ELFSharp).</param>
    public ImageLoadException(string path, string message, Exception innerException)
        : base(message, innerException)
    {
        ImagePath = path;
    }

    /// <summary>The image's path as the user gave it.</summary>
    public string ImagePath { get; }
}
