using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Onex.Errors;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Storage;

namespace Onex.RegistryNode.Hosting;

/// <summary>The registry node's command line: options, environment variables, start, wait for a signal, stop.</summary>
internal static class RegistryNodeCommandLine
{
    public const string EndpointVariable = "ONEX_REGISTRY_ENDPOINT";
    public const string PubEndpointVariable = "ONEX_REGISTRY_PUB_ENDPOINT";
    public const string StoreVariable = "ONEX_REGISTRY_STORE";
    public const string DataDirVariable = "ONEX_REGISTRY_DATA_DIR";
    public const string DurabilityVariable = "ONEX_REGISTRY_DURABILITY";

    private static readonly RegistryNodeOptions Defaults = RegistryNodeOptions.Default;

    private static readonly Option<string?> Endpoint = new("--endpoint")
    {
        Description = $"ROUTER endpoint for requests (env {EndpointVariable}; default {RegistryNodeOptions.DefaultEndpoint}). Port 0 lets the OS choose.",
    };
    private static readonly Option<string?> PubEndpoint = new("--pub-endpoint")
    {
        Description = $"PUB endpoint for change broadcasts (env {PubEndpointVariable}; default {RegistryNodeOptions.DefaultPubEndpoint}).",
    };
    private static readonly Option<string?> PortRangeOption = new("--port-range")
    {
        Description = $"Ports to lease, first-last (default {Defaults.Leases.PortRange}); the kernel's ephemeral range is always excluded.",
    };
    private static readonly Option<string?> Host = new("--host")
    {
        Description = $"Host written into leases (default {Defaults.Leases.AdvertisedHost}).",
    };
    private static readonly Option<string?> DefaultTtl = new("--default-ttl") { Description = $"Lease TTL when a request names none (default {Durations.Format(Defaults.Leases.DefaultTtl)})." };
    private static readonly Option<string?> MinTtl = new("--min-ttl") { Description = $"Shortest lease TTL granted (default {Durations.Format(Defaults.Leases.MinTtl)})." };
    private static readonly Option<string?> MaxTtl = new("--max-ttl") { Description = $"Longest lease TTL granted (default {Durations.Format(Defaults.Leases.MaxTtl)})." };
    private static readonly Option<string?> Quarantine = new("--quarantine") { Description = $"Rest of a released or expired port before reuse (default {Durations.Format(Defaults.Leases.Quarantine)})." };
    private static readonly Option<string?> Heartbeat = new("--heartbeat-interval") { Description = $"Period of registry.heartbeat broadcasts (default {Durations.Format(Defaults.HeartbeatInterval)})." };
    private static readonly Option<string?> Grace = new("--grace-period") { Description = $"How long an unhealthy node is kept before removal (default {Durations.Format(Defaults.Nodes.UnhealthyGracePeriod)})." };
    private static readonly Option<string?> Store = new("--store")
    {
        Description = $"Where state is kept: sqlite (survives restarts; the default) or memory (forgotten on stop: tests, throwaway registries) (env {StoreVariable}).",
    };
    private static readonly Option<string?> DataDir = new("--data-dir")
    {
        Description = $"Data directory of the sqlite store (env {DataDirVariable}; default {RegistryStoreOptions.DefaultDataDirectory}). One registry per directory.",
    };
    private static readonly Option<string?> Durability = new("--durability")
    {
        Description = $"What a commit survives: process (a crash or kill of the registry; the default) or power (power loss too: fsync per commit) (env {DurabilityVariable}).",
    };
    private static readonly Option<string?> PauseThreshold = new("--pause-threshold")
    {
        Description = $"A stall of the registry longer than this moves lease and node deadlines back by its length (default {Durations.Format(Defaults.PauseThreshold)}).",
    };
    private static readonly Option<LogLevel> Level = new("--log-level")
    {
        Description = "Least severe log level written to stderr: Trace, Debug, Information, Warning, Error, Critical or None.",
        DefaultValueFactory = _ => LogLevel.Information,
        CustomParser = ParseLogLevel,
    };

    /// <summary>The root command (exposed so a host CLI can show the same help).</summary>
    public static RootCommand CreateCommand(Func<ParseResult, CancellationToken, Task<int>> action)
    {
        var command = new RootCommand(
            "OnexBus registry node: leases ports, records nodes, buses and tool contracts, answers introspection, " +
            "broadcasts every change. Durations take a unit: 500ms, 30s, 5m, 1h; a bare number is seconds.")
        {
            Endpoint, PubEndpoint, PortRangeOption, Host, DefaultTtl, MinTtl, MaxTtl, Quarantine, Heartbeat, Grace, Store, DataDir, Durability, PauseThreshold, Level,
        };
        command.SetAction(action);
        return command;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, Func<string, string?> environment, CancellationToken ct)
    {
        var command = CreateCommand((parse, token) => ServeAsync(parse, output, error, environment, token));
        var configuration = new InvocationConfiguration { Output = output, Error = error, ProcessTerminationTimeout = null };
        var parsed = command.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            await error.WriteLineAsync(UsageLine(parsed)).ConfigureAwait(false);
            return UsageExitCode;
        }
        return await parsed.InvokeAsync(configuration, ct).ConfigureAwait(false);
    }

    /// <summary>The exit code of a usage error (an unknown option, a value that does not parse), as <c>onex</c>'s.</summary>
    public const int UsageExitCode = 2;

    /// <summary>One line for the first parse error: what is wrong and where to look (never the whole help, never a CLR type name).</summary>
    internal static string UsageLine(ParseResult parse)
    {
        var message = string.Join(' ', parse.Errors[0].Message.Split((char[])['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(p => p.Trim()));
        const string unrecognized = "Unrecognized command or argument '";
        if (message.StartsWith(unrecognized, StringComparison.Ordinal))
            message = $"there is no option {message[(unrecognized.Length - 1)..].TrimEnd('.')}";
        return $"registry: {message.TrimEnd('.')}; see --help for the options.";
    }

    private static LogLevel ParseLogLevel(System.CommandLine.Parsing.ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (Enum.TryParse<LogLevel>(text, ignoreCase: true, out var level) && Enum.IsDefined(level) && !int.TryParse(text, out _)) return level;
        result.AddError($"--log-level '{text}' is not a level; use Trace, Debug, Information, Warning, Error, Critical or None, e.g. --log-level Warning.");
        return LogLevel.Information;
    }

    /// <summary>Builds options from the parsed command line and the environment; options beat environment variables.</summary>
    public static RegistryNodeOptions BuildOptions(ParseResult parse, Func<string, string?> environment)
    {
        var leases = Defaults.Leases;
        if (parse.GetValue(PortRangeOption) is { } range)
            leases = leases with { PortRange = PortRange.TryParse(range, out var r) ? r : throw new FormatException($"--port-range: '{range}' is not first-last, e.g. 20000-29999.") };
        if (parse.GetValue(Host) is { } host) leases = leases with { AdvertisedHost = host };
        if (Duration(parse, DefaultTtl) is { } ttl) leases = leases with { DefaultTtl = ttl };
        if (Duration(parse, MinTtl) is { } min) leases = leases with { MinTtl = min };
        if (Duration(parse, MaxTtl) is { } max) leases = leases with { MaxTtl = max };
        if (Duration(parse, Quarantine) is { } quarantine) leases = leases with { Quarantine = quarantine };

        var options = Defaults with
        {
            Endpoint = CheckedEndpoint(parse.GetValue(Endpoint), Endpoint.Name, environment(EndpointVariable), EndpointVariable, RegistryNodeOptions.DefaultEndpoint),
            PubEndpoint = CheckedEndpoint(parse.GetValue(PubEndpoint), PubEndpoint.Name, environment(PubEndpointVariable), PubEndpointVariable,
                RegistryNodeOptions.DefaultPubEndpoint),
            Leases = leases,
        };
        if (Duration(parse, Heartbeat) is { } heartbeat) options = options with { HeartbeatInterval = heartbeat };
        if (Duration(parse, Grace) is { } grace) options = options with { Nodes = options.Nodes with { UnhealthyGracePeriod = grace } };
        if (Duration(parse, PauseThreshold) is { } pause) options = options with { PauseThreshold = pause };
        CheckTtls(options.Leases);
        return options with { Store = BuildStore(parse, environment) };
    }

    /// <summary>TTLs that contradict each other are a usage error naming the options, not a failed start.</summary>
    private static void CheckTtls(LeaseOptions leases)
    {
        if (leases.MinTtl <= TimeSpan.Zero || leases.MinTtl > leases.MaxTtl)
            throw new FormatException(
                $"--min-ttl {Durations.Format(leases.MinTtl)} must be positive and at most --max-ttl {Durations.Format(leases.MaxTtl)}.");
        if (leases.DefaultTtl < leases.MinTtl || leases.DefaultTtl > leases.MaxTtl)
            throw new FormatException(
                $"--default-ttl {Durations.Format(leases.DefaultTtl)} is outside --min-ttl {Durations.Format(leases.MinTtl)} .. --max-ttl " +
                $"{Durations.Format(leases.MaxTtl)}; e.g. --default-ttl 30s.");
    }

    private static RegistryStoreOptions BuildStore(ParseResult parse, Func<string, string?> environment)
    {
        var store = RegistryStoreOptions.Default;
        var kind = parse.GetValue(Store) ?? NonEmpty(environment(StoreVariable));
        store = kind switch
        {
            null or "sqlite" => store,
            "memory" => store with { Kind = RegistryStoreKind.Memory },
            _ => throw new FormatException($"--store: '{kind}' is not a store; use sqlite or memory."),
        };
        if ((parse.GetValue(DataDir) ?? NonEmpty(environment(DataDirVariable))) is { } directory) store = store with { DataDirectory = directory };
        var durability = parse.GetValue(Durability) ?? NonEmpty(environment(DurabilityVariable));
        store = durability switch
        {
            null or "process" => store,
            "power" => store with { Durability = StoreDurability.Power },
            _ => throw new FormatException($"--durability: '{durability}' is not a durability level; use process or power."),
        };
        return store;
    }

    private static async Task<int> ServeAsync(ParseResult parse, TextWriter output, TextWriter error, Func<string, string?> environment, CancellationToken ct)
    {
        RegistryNodeOptions options;
        try
        {
            options = BuildOptions(parse, environment);
        }
        catch (FormatException ex)
        {
            await error.WriteLineAsync($"registry: {ex.Message}").ConfigureAwait(false);
            return UsageExitCode;
        }

        using var loggers = LoggerFactory.Create(builder => builder
            .SetMinimumLevel(parse.GetValue(Level))
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            })
            // Logs go to stderr so stdout carries only the lines scripts read (endpoints, epoch).
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));

        RegistryNodeHost host;
        try
        {
            host = await RegistryNodeHost.StartAsync(options, loggers, TimeProvider.System, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OnexException or ArgumentException or FormatException or IOException or RegistryStoreException)
        {
            await error.WriteLineAsync($"registry: cannot start: {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // we stop ourselves, cleanly
            try
            {
                stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // A handler thread that ran late, after another handler of the same signal (System.CommandLine's, under
                // `onex --registry ... registry serve`) had already stopped us and `stop` was disposed: nothing left to
                // stop. Unhandled, it crashed the exiting process with SIGABRT (exit 134) on a loaded machine.
            }
        }

        await output.WriteLineAsync($"registry: router {host.RouterEndpoint}").ConfigureAwait(false);
        await output.WriteLineAsync($"registry: pub {host.PubEndpoint}").ConfigureAwait(false);
        await output.WriteLineAsync($"registry: epoch {host.Epoch}").ConfigureAwait(false);
        await output.WriteLineAsync($"registry: store {host.StoreLocation}").ConfigureAwait(false);
        await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);

        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Signal or caller: either way, stop.
        }
        await host.DisposeAsync().ConfigureAwait(false);
        await output.WriteLineAsync("registry: stopped").ConfigureAwait(false);
        await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        return 0;
    }

    private static TimeSpan? Duration(ParseResult parse, Option<string?> option)
    {
        var text = parse.GetValue(option);
        if (text is null) return null;
        return Durations.TryParse(text, out var value) ? value : throw new FormatException($"{option.Name}: '{text}' is not a duration; write 500ms, 30s, 5m or 1h (a bare number is seconds), e.g. {option.Name} 30s.");
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    /// <summary>The endpoint from the option, else the variable, else the default; a malformed one is a FormatException naming its source.</summary>
    private static string CheckedEndpoint(string? given, string option, string? fromEnvironment, string variable, string fallback)
    {
        var (endpoint, source) = given is not null ? (given.Trim(), option)
            : NonEmpty(fromEnvironment) is { } environment ? (environment.Trim(), variable)
            : (fallback, "default");
        try
        {
            Onex.Transports.Zmq.ZmqEndpoints.EnsureValid(endpoint, option);
        }
        catch (ArgumentException)
        {
            throw new FormatException(
                $"{source}: '{endpoint}' is not an endpoint; write tcp://HOST:PORT, e.g. {option} tcp://127.0.0.1:5750 (port 0 lets the OS choose).");
        }
        return endpoint;
    }
}
