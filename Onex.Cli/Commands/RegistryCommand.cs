using System.CommandLine;
using Onex.RegistryNode.Hosting;

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
        // Reached only through help listings: RunAsync hands `registry serve ...` to the node before parsing,
        // so the node parses (and documents) its own options.
        serve.SetAction((parse, cancellationToken) => ServeAsync(parse.UnmatchedTokens.ToArray(), context, cancellationToken));
        return new Command("registry", "The registry node.") { serve };
    }

    /// <summary>Runs the node's command line (<see cref="RegistryNodeHost.RunAsync"/>) with <paramref name="nodeArgs"/>.</summary>
    public static Task<int> ServeAsync(string[] nodeArgs, CliContext context, CancellationToken cancellationToken) =>
        RegistryNodeHost.RunAsync(nodeArgs, cancellationToken);
}
