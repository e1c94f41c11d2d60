using System.CommandLine;

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
        // Never reached: RunAsync hands `registry serve ...` to the node before parsing, so the node parses its own options.
        serve.SetAction((_, cancellationToken) => ServeAsync([], context, cancellationToken));
        return new Command("registry", "The registry node.") { serve };
    }

    public static Task<int> ServeAsync(string[] nodeArgs, CliContext context, CancellationToken cancellationToken)
    {
        context.Error.WriteLine("onex: `registry serve` is not available in this build (the registry node host is not merged yet).");
        return Task.FromResult(ExitCodes.Usage);
    }
}
