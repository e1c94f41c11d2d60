using System.CommandLine;
using Onex.Cli;
using Onex.Cli.Commands;
using Onex.Tests.Client;

namespace Onex.Tests.Cli;

/// <summary>
/// docs/CLI.md against the real command tree (what <c>--help</c> prints comes from the same tree): every visible
/// command is documented as <c>onex PATH</c>, and every one of its options is named on that command's line.
/// </summary>
public class CliDocumentationTests
{
    private static readonly string CliDoc = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "docs", "CLI.md"));

    private static IEnumerable<(string Path, Command Command)> Commands()
    {
        var root = OnexCli.BuildRoot(new CliContext(TextWriter.Null, TextWriter.Null, TextReader.Null));
        var pending = new Stack<(string, Command)>(root.Subcommands.Select(c => ($"onex {c.Name}", c)));
        while (pending.Count > 0)
        {
            var (path, command) = pending.Pop();
            if (command.Hidden) continue;
            yield return (path, command);
            foreach (var sub in command.Subcommands) pending.Push(($"{path} {sub.Name}", sub));
        }
    }

    [Test]
    public void Every_runnable_command_and_its_options_are_documented_in_cli_md()
    {
        var lines = CliDoc.Split('\n');
        Assert.Multiple(() =>
        {
            foreach (var (path, command) in Commands().Where(c => c.Command.Subcommands.Count == 0))
            {
                // The command's row or heading: the first line that names it followed by a space, a backtick or a bracket.
                var documented = lines.Where(l => l.Contains($"`{path} ", StringComparison.Ordinal) || l.Contains($"`{path}`", StringComparison.Ordinal))
                    .ToList();
                Assert.That(documented, Is.Not.Empty, $"docs/CLI.md does not document `{path}`");
                if (documented.Count == 0 || path == "onex registry serve") continue; // the node documents its own options
                var text = string.Join('\n', documented);
                foreach (var option in command.Options.Where(o => !o.Hidden && o.Name is not ("--help" or "-h" or "-?")))
                    Assert.That(text, Does.Contain(option.Name), $"docs/CLI.md's line for `{path}` does not name {option.Name}");
            }
        });
    }

    [Test]
    public void Every_exit_code_is_in_the_table()
    {
        foreach (var code in new[] { ExitCodes.Ok, ExitCodes.Failed, ExitCodes.Usage, ExitCodes.Unavailable, ExitCodes.Refused, ExitCodes.LeaseLost, ExitCodes.Internal, ExitCodes.Interrupted })
            Assert.That(CliDoc, Does.Contain($"\n| {code} |"), $"exit code {code} is missing from docs/CLI.md");
    }
}

/// <summary><c>onex completion bash</c>, loaded into a real bash and asked to complete.</summary>
public class CliCompletionTests
{
    [Test]
    public async Task The_bash_script_completes_commands_and_options_from_the_command_tree()
    {
        var script = await Onex.RunAsync("completion", "bash");
        Assert.That(script.ExitCode, Is.EqualTo(ExitCodes.Ok), script.ToString());
        var file = Path.Combine(TestContext.CurrentContext.WorkDirectory, $"onex-completion-{Guid.NewGuid():N}.bash");
        await File.WriteAllTextAsync(file, script.Output);
        try
        {
            var start = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(
                $"source '{file}'; " +
                "COMP_WORDS=(onex po); COMP_CWORD=1; _onex_complete; echo \"${COMPREPLY[*]}\"; " +
                "COMP_WORDS=(onex ports lease --until); COMP_CWORD=3; _onex_complete; echo \"${COMPREPLY[*]}\"");
            using var bash = System.Diagnostics.Process.Start(start)!;
            var output = await bash.StandardOutput.ReadToEndAsync().Within("bash to complete");
            await bash.WaitForExitAsync().Within("bash to exit");
            var lines = output.Split('\n');
            Assert.That(lines[0], Is.EqualTo("ports"), $"completing 'onex po'; stderr: {await bash.StandardError.ReadToEndAsync()}");
            Assert.That(lines[1].Split(' '), Is.EquivalentTo(new[] { "--until-pid", "--until-signal" }), "completing 'onex ports lease --until'");
        }
        finally
        {
            File.Delete(file);
        }
    }
}
