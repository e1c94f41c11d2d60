using System.CommandLine;
using Onex.Cli.Commands;
using Onex.Cli.Commands.Stress;
using Onex.Cli.Usage;
using Onex.Errors;

namespace Onex.Cli;

/// <summary>
/// The <c>onex</c> command line: building the command tree, running one invocation, and turning failures into
/// the documented exit codes (<see cref="ExitCodes"/>) with one line a person can act on, never a stack trace.
/// </summary>
public static class OnexCli
{
    /// <summary>
    /// Runs one invocation with the given console streams (tests pass their own). <paramref name="handleSignals"/>
    /// marks the real process: Ctrl-C and SIGTERM cancel the command, a terminal on stdin is never read by commands that
    /// hold something, and those also end when the reader of stdout goes away.
    /// </summary>
    public static async Task<int> RunAsync(
        string[] args, TextWriter output, TextWriter error, TextReader input,
        bool handleSignals = false, CancellationToken cancellationToken = default)
    {
        var context = new CliContext(output, error, input)
        {
            InputIsTerminal = handleSignals && !Console.IsInputRedirected,
            WatchOutputReader = handleSignals,
        };
        try
        {
            if (RegistryCommand.IsServe(args))
                return await RegistryCommand.ServeAsync(args[2..], context, cancellationToken).ConfigureAwait(false);

            var root = BuildRoot(context);
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0)
                return await context.FailAsync(parse, ExitCodes.Usage, "USAGE", UsageErrors.Line(parse)).ConfigureAwait(false);
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
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Outside any command body (building, parsing, `registry serve`): still one line, never a stack trace.
            await error.WriteLineAsync(CrashLog.Line(ex, args)).ConfigureAwait(false);
            return ExitCodes.Internal;
        }
    }

    internal static RootCommand BuildRoot(CliContext context)
    {
        var root = new RootCommand($"onex: talk to an OnexBus registry node.\n\n{ExitCodes.HelpText}")
        {
            CliContext.RegistryOption,
            CliContext.RegistryPubOption,
            CliContext.TimeoutOption,
            CliContext.ServerKeyOption,
            CliContext.TokenOption,
            CliContext.TenantOption,
            RegistryCommand.Build(context),
            DescribeCommand.Build(context),
            StressCommand.AddTo(PortsCommand.Build(context), context),
            BusesCommand.Build(context),
            BusCommand.Build(context),
            ToolsCommand.Build(context),
            WatchCommand.Build(context),
            BenchCommand.Build(context),
            TopCommand.Build(context),
            AuthCommand.Build(context),
        };
        root.Add(CompletionCommand.Build(context, () => root));
        return root;
    }

    /// <summary>
    /// Wraps a command body: usage mistakes found late exit 2, registry failures become their exit codes, and anything
    /// unexpected prints one line naming a log file; each as one line on stderr that says what to do.
    /// </summary>
    internal static Func<ParseResult, CancellationToken, Task<int>> Guard(
        CliContext context, Func<ParseResult, CancellationToken, Task<int>> body) => async (parse, cancellationToken) =>
    {
        try
        {
            return await body(parse, cancellationToken).ConfigureAwait(false);
        }
        catch (UsageException ex)
        {
            return await context.FailAsync(parse, ExitCodes.Usage, "USAGE", $"onex: {ex.Message}").ConfigureAwait(false);
        }
        catch (UnavailableException ex)
        {
            return await context.FailAsync(parse, ExitCodes.Unavailable, ex.Code, $"onex: {ex.Message}").ConfigureAwait(false);
        }
        catch (OnexException ex) when (ex.Code is ErrorCodes.NotFound or ErrorCodes.LeaseNotFound)
        {
            return await context.FailAsync(parse, ExitCodes.Failed, ex.Code, $"onex: not found: {ex.Message}").ConfigureAwait(false);
        }
        catch (OnexException ex)
        {
            var details = ex.Details.Count == 0 ? "" : $" ({string.Join(", ", ex.Details.Select(d => $"{d.Key}={d.Value}"))})";
            // Only a peer's answer is a refusal; a failure here (a port in use on this machine) is said as such.
            var line = ex.Origin is { } origin
                ? $"onex: the {origin} refused: {ex.Code}: {ex.Message}{details}"
                : $"onex: {ex.Code}: {ex.Message}{details}";
            return await context.FailAsync(parse, ex.Origin is null ? ExitCodes.Failed : ExitCodes.Refused, ex.Code, line).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return await context.FailAsync(parse, ExitCodes.Interrupted, "INTERRUPTED", "onex: interrupted").ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            return await context.FailAsync(parse, ExitCodes.Internal, "INTERNAL", CrashLog.Line(ex, parse.Tokens.Select(t => t.Value).ToArray()))
                .ConfigureAwait(false);
        }
    };
}
