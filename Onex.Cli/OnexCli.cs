using System.CommandLine;
using Onex.Cli.Commands;
using Onex.Errors;

namespace Onex.Cli;

/// <summary>
/// The <c>onex</c> command line: building the command tree, running one invocation, and turning failures into
/// the documented exit codes (<see cref="ExitCodes"/>) with messages a person can act on.
/// </summary>
public static class OnexCli
{
    /// <summary>
    /// Runs one invocation with the given console streams (tests pass their own). <paramref name="handleSignals"/>
    /// lets Ctrl-C and SIGTERM cancel the command (for the real process only).
    /// </summary>
    public static async Task<int> RunAsync(
        string[] args, TextWriter output, TextWriter error, TextReader input,
        bool handleSignals = false, CancellationToken cancellationToken = default)
    {
        var context = new CliContext(output, error, input);
        if (RegistryCommand.IsServe(args))
            return await RegistryCommand.ServeAsync(args[2..], context, cancellationToken).ConfigureAwait(false);

        var root = BuildRoot(context);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var parseError in parse.Errors)
                await error.WriteLineAsync($"onex: {parseError.Message}").ConfigureAwait(false);
            await error.WriteLineAsync("Run 'onex --help' for usage.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        var configuration = new InvocationConfiguration
        {
            Output = output,
            Error = error,
            // The real process lets Ctrl-C/SIGTERM cancel the token; an in-process run is cancelled by its caller.
            ProcessTerminationTimeout = handleSignals ? TimeSpan.FromSeconds(5) : null,
            EnableDefaultExceptionHandler = false,
        };
        return await parse.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    private static RootCommand BuildRoot(CliContext context)
    {
        var root = new RootCommand($"onex: talk to an OnexBus registry node.\n\n{ExitCodes.HelpText}")
        {
            CliContext.RegistryOption,
            CliContext.RegistryPubOption,
            CliContext.TimeoutOption,
            RegistryCommand.Build(context),
            DescribeCommand.Build(context),
            StressCommand.AddTo(PortsCommand.Build(context), context),
            BusesCommand.Build(context),
            BusCommand.Build(context),
            ToolsCommand.Build(context),
            WatchCommand.Build(context),
            BenchCommand.Build(context),
        };
        return root;
    }

    /// <summary>
    /// Wraps a command body: registry failures become exit codes and one line on stderr that says what to do.
    /// </summary>
    internal static Func<ParseResult, CancellationToken, Task<int>> Guard(
        CliContext context, Func<ParseResult, CancellationToken, Task<int>> body) => async (parse, cancellationToken) =>
    {
        try
        {
            return await body(parse, cancellationToken).ConfigureAwait(false);
        }
        catch (UnavailableException ex)
        {
            await context.Error.WriteLineAsync($"onex: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Unavailable;
        }
        catch (OnexException ex) when (ex.Code is ErrorCodes.NotFound or ErrorCodes.LeaseNotFound)
        {
            await context.Error.WriteLineAsync($"onex: not found: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
        catch (OnexException ex)
        {
            var details = ex.Details.Count == 0 ? "" : $" ({string.Join(", ", ex.Details.Select(d => $"{d.Key}={d.Value}"))})";
            await context.Error.WriteLineAsync($"onex: the registry refused: {ex.Code}: {ex.Message}{details}").ConfigureAwait(false);
            return ExitCodes.Refused;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await context.Error.WriteLineAsync("onex: interrupted").ConfigureAwait(false);
            return 130;
        }
    };
}
