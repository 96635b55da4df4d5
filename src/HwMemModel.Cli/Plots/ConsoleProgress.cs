using Spectre.Console;

namespace HwMemModel.Cli.Plots;

/// <summary>
/// A Spectre.Console progress bar on the terminal, only when standard output is the process's console and is not
/// redirected: tests (which pass their own writers) and pipes get clean text with no control characters.
/// </summary>
internal static class ConsoleProgress
{
    /// <summary>True when <paramref name="stdout"/> is the process's standard output and that is a terminal.</summary>
    public static bool IsTerminal(TextWriter stdout) => ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;

    /// <summary>
    /// Runs <paramref name="work"/>, which calls the step callback once before each of <paramref name="steps"/> steps
    /// with the step's label; on a terminal a transient progress bar shows the steps done and the current label.
    /// </summary>
    public static T Run<T>(TextWriter stdout, string title, int steps, Func<Action<string>, T> work)
    {
        if (!IsTerminal(stdout)) return work(_ => { });
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        return console.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: steps);
                int done = -1;
                var result = work(label =>
                {
                    done++;
                    if (done > 0) task.Increment(1);
                    task.Description = Markup.Escape($"{title}: {label}");
                });
                task.Value = steps;
                return result;
            });
    }
}
