using HwMemModel.Cli;

namespace HwMemModel.Cli.Tests;

/// <summary>Shared helpers of the CLI tests: run the command in-process, find the repository.</summary>
internal static class CliTestSupport
{
    /// <summary>Runs <c>hwmem ARGS</c>; returns the exit status and what it wrote to standard output and error.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = HwmemCommand.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>The repository root (the directory holding HwMemModel.sln above the test's output directory).</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HwMemModel.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("HwMemModel.sln not found above the test directory.");
    }
}
