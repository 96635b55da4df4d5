using System.Text.RegularExpressions;
using HwMemModel.Cli;
using static HwMemModel.Cli.Tests.CliTestSupport;

namespace HwMemModel.Cli.Tests;

/// <summary>
/// The docs cannot rot: every <c>$ hwmem ...</c> command in a <c>```console</c> block of docs/ is run and its output
/// compared with the lines that follow it in the block (trailing spaces aside).
/// </summary>
public sealed partial class DocsTests
{
    private static IEnumerable<TestCaseData> Examples()
    {
        string root = RepoRoot();
        foreach (string md in Directory.EnumerateFiles(Path.Combine(root, "docs"), "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string rel = Path.GetRelativePath(root, md);
            foreach (Match block in ConsoleBlock().Matches(File.ReadAllText(md)))
            {
                string? command = null;
                var expected = new List<string>();
                foreach (string line in block.Groups["body"].Value.Split('\n'))
                {
                    if (line.StartsWith("$ hwmem ", StringComparison.Ordinal))
                    {
                        if (command is not null) yield return Case(rel, command, expected);
                        command = line[8..];
                        expected = [];
                    }
                    else if (command is not null)
                    {
                        expected.Add(line);
                    }
                }
                if (command is not null) yield return Case(rel, command, expected);
            }
        }
    }

    // "$ hwmem walk ... # exit 3" documents a non-zero exit status.
    private static TestCaseData Case(string file, string command, List<string> expected)
    {
        int status = 0;
        int hash = command.IndexOf(" # exit ", StringComparison.Ordinal);
        if (hash >= 0)
        {
            status = int.Parse(command[(hash + 8)..], System.Globalization.CultureInfo.InvariantCulture);
            command = command[..hash];
        }
        return new TestCaseData(command, string.Join('\n', expected), status).SetName($"{file}: hwmem {command}");
    }

    [TestCaseSource(nameof(Examples))]
    public void Documented_commands_print_what_the_docs_show(string command, string expected, int status)
    {
        string cwd = Environment.CurrentDirectory;
        Environment.CurrentDirectory = RepoRoot();
        try
        {
            var o = new StringWriter();
            var e = new StringWriter();
            int code = HwmemCommand.Run(command.Split(' ', StringSplitOptions.RemoveEmptyEntries), o, e);
            Assert.That(code, Is.EqualTo(status), e.ToString());
            Assert.That(Normalize(o.ToString()), Is.EqualTo(Normalize(expected)));
        }
        finally
        {
            Environment.CurrentDirectory = cwd;
        }
    }

    [Test]
    public void Csharp_examples_quote_code_that_is_compiled_and_run()
    {
        string root = RepoRoot();
        int checkedSnippets = 0;
        foreach (string md in Directory.EnumerateFiles(Path.Combine(root, "docs"), "*.md", SearchOption.AllDirectories))
        {
            foreach (Match m in Snippet().Matches(File.ReadAllText(md)))
            {
                string source = File.ReadAllText(Path.Combine(root, m.Groups["file"].Value));
                string squeezed = Squeeze(source);
                foreach (string line in m.Groups["body"].Value.Split('\n').Where(l => l.Trim().Length > 0))
                    Assert.That(squeezed, Does.Contain(line.Trim()), $"{Path.GetFileName(md)}: this line of the example is not in {m.Groups["file"].Value}");
                checkedSnippets++;
            }
        }
        Assert.That(checkedSnippets, Is.GreaterThanOrEqualTo(1));
    }

    private static string Squeeze(string text) => string.Join('\n', text.Split('\n').Select(l => l.Trim()));

    [GeneratedRegex("<!-- snippet: (?<file>[^ ]+) -->\\n```csharp\\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex Snippet();

    [Test]
    public void The_docs_have_examples_to_check()
        => Assert.That(Examples().Count(), Is.GreaterThanOrEqualTo(3), "the three labs at least");

    private static string Normalize(string text)
        => string.Join('\n', text.Replace("\r", "", StringComparison.Ordinal).Split('\n').Select(l => l.TrimEnd())).TrimEnd('\n');

    [GeneratedRegex("```console\\n(?<body>.*?)```", RegexOptions.Singleline)]
    private static partial Regex ConsoleBlock();
}
