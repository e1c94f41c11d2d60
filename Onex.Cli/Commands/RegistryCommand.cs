using System.CommandLine;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;

namespace Onex.Cli.Commands;

/// <summary><c>onex registry serve</c>: runs a registry node in this process.</summary>
internal static class RegistryCommand
{
    public static bool IsServe(string[] args) => args.Length >= 2 && args[0] == "registry" && args[1] == "serve";

    public static Command Build(CliContext context)
    {
        var serve = new Command("serve",
            "Run a registry node in the foreground until Ctrl-C/SIGTERM. Takes the node's own options; see `onex registry serve --help`.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        // RunAsync hands `registry serve ...` to the node before parsing, so the node parses (and documents) its own
        // options. This is reached when global options come first (`onex --registry E registry serve`): the client's
        // endpoints are then where the node serves.
        serve.SetAction(async (parse, cancellationToken) =>
        {
            if (!TryNodeArguments(parse, out var nodeArgs, out var problem))
            {
                await context.Error.WriteLineAsync($"onex: {problem}").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            return await ServeAsync(nodeArgs, context, cancellationToken).ConfigureAwait(false);
        });
        return new Command("registry", "The registry node.") { serve, BuildBackup(context) };
    }

    /// <summary><c>onex registry backup FILE [--data-dir DIR]</c>: an online, consistent copy of a registry's store.</summary>
    private static Command BuildBackup(CliContext context)
    {
        var file = new Argument<string>("FILE") { Description = "The backup file to write (must not exist)." };
        var dataDir = new Option<string?>("--data-dir")
        {
            Description = $"The registry's data directory (env {RegistryNodeCommandLine.DataDirVariable}; default {RegistryStoreOptions.DefaultDataDirectory}).",
        };
        var backup = new Command("backup",
            "Copy a registry's store to FILE while it serves (a consistent copy as of one commit). A registry started from the copy " +
            "(copy it to DIR/registry.db and start with --data-dir DIR) keeps its state and begins a new epoch.")
        {
            file, dataDir,
        };
        backup.SetAction(async (parse, _) =>
        {
            var directory = parse.GetValue(dataDir) ?? NonEmpty(Environment.GetEnvironmentVariable(RegistryNodeCommandLine.DataDirVariable))
                ?? RegistryStoreOptions.DefaultDataDirectory;
            var target = parse.GetValue(file)!;
            try
            {
                SqliteRegistryStore.Backup(directory, target);
            }
            catch (RegistryStoreException ex)
            {
                await context.Error.WriteLineAsync($"onex: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            await context.Output.WriteLineAsync($"backup: {Path.GetFullPath(target)} ({new FileInfo(target).Length} bytes) from {Path.GetFullPath(directory)}").ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return backup;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    /// <summary>
    /// The node's arguments: what followed <c>registry serve</c>, plus <c>--endpoint</c> and <c>--pub-endpoint</c>
    /// from the global <c>--registry</c> and <c>--registry-pub</c> when given. Giving both forms is ambiguous.
    /// </summary>
    private static bool TryNodeArguments(ParseResult parse, out string[] nodeArgs, out string? problem)
    {
        var args = parse.UnmatchedTokens.ToList();
        problem = null;
        foreach (var (global, node) in new[] { (CliContext.RegistryOption, "--endpoint"), (CliContext.RegistryPubOption, "--pub-endpoint") })
        {
            if (parse.GetValue(global) is not { } endpoint) continue;
            if (args.Any(a => a == node || a.StartsWith(node + "=", StringComparison.Ordinal) || a.StartsWith(node + ":", StringComparison.Ordinal)))
            {
                problem = $"registry serve was given both {global.Name} and {node}; give the node's endpoint once ({node}, or {global.Name} before `registry serve`).";
                break;
            }
            args.Add(node);
            args.Add(endpoint);
        }
        nodeArgs = [.. args];
        return problem is null;
    }

    /// <summary>Runs the node's command line (<see cref="RegistryNodeHost.RunAsync"/>) with <paramref name="nodeArgs"/>.</summary>
    public static Task<int> ServeAsync(string[] nodeArgs, CliContext context, CancellationToken cancellationToken) =>
        RegistryNodeHost.RunAsync(nodeArgs, cancellationToken);
}
