using System.Text;

namespace HwMemModel.Machine.Boot;

public static partial class MultibootLoader
{
    /// <summary>
    /// Splits an <c>--initrd</c> argument into modules as QEMU 7.2 does for <c>-initrd</c> with a multiboot kernel
    /// (hw/i386/multiboot.c with util/qemu-option.c's get_opt_value): items are separated by commas, a doubled comma
    /// stands for a comma inside an item, each item becomes one module in order (the first is module 0) whose string
    /// is the whole item, and the file loaded is the item's text before its first space (the rest are the module's
    /// arguments, passed only in its string). "a.bin arg,b.bin" gives module 0 "a.bin arg" (file a.bin) and module 1
    /// "b.bin"; an empty argument gives one module with an empty name, which no file matches.
    /// </summary>
    /// <param name="initrd">The option's value.</param>
    /// <param name="readFile">Reads a module file by path (for example <see cref="File.ReadAllBytes(string)"/>).</param>
    /// <returns>The modules, in order.</returns>
    /// <exception cref="ImageLoadException">A module file cannot be read; the message names it as QEMU's does ("Failed to open file").</exception>
    public static IReadOnlyList<MultibootModule> ModulesFromInitrd(string initrd, Func<string, byte[]> readFile)
    {
        ArgumentNullException.ThrowIfNull(initrd);
        ArgumentNullException.ThrowIfNull(readFile);
        var modules = new List<MultibootModule>();
        foreach (string item in SplitInitrd(initrd))
        {
            int space = item.IndexOf(' ', StringComparison.Ordinal);
            string file = space < 0 ? item : item[..space];
            byte[] image;
            try
            {
                image = readFile(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw new ImageLoadException(file, $"{file}: Failed to open file '{file}' for --initrd module {modules.Count}: {e.Message}", e);
            }

            modules.Add(new MultibootModule(item, image));
        }

        return modules;
    }

    /// <summary>The items of an <c>-initrd</c> value: split at single commas, ",," kept as a comma.</summary>
    public static IReadOnlyList<string> SplitInitrd(string initrd)
    {
        ArgumentNullException.ThrowIfNull(initrd);
        var items = new List<string>();
        var current = new StringBuilder();
        for (int i = 0; i < initrd.Length; i++)
        {
            if (initrd[i] != ',')
            {
                current.Append(initrd[i]);
            }
            else if (i + 1 < initrd.Length && initrd[i + 1] == ',')
            {
                current.Append(',');
                i++;
            }
            else
            {
                items.Add(current.ToString());
                current.Clear();
            }
        }

        items.Add(current.ToString());
        return items;
    }
}
