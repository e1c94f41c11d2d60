using System.CommandLine;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Onex.Errors;
using Onex.RegistryNode.Http;
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
    public const string HttpVariable = "ONEX_REGISTRY_HTTP";
    public const string CurveKeyFileVariable = "ONEX_REGISTRY_CURVE_KEY_FILE";
    public const string AuthFileVariable = "ONEX_REGISTRY_AUTH_FILE";
    public const string ClusterVariable = "ONEX_REGISTRY_CLUSTER";
    public const string HostNameVariable = "ONEX_REGISTRY_HOST";

    private static readonly RegistryNodeOptions Defaults = RegistryNodeOptions.Default;

    private static readonly Option<string?> Endpoint = new("--endpoint")
    {
        Description = $"ROUTER endpoint for requests (env {EndpointVariable}; default {RegistryNodeOptions.DefaultEndpoint}). Port 0 lets the OS choose.",
    };
    private static readonly Option<string?> PubEndpoint = new("--pub-endpoint")
    {
        Description = $"PUB endpoint for change broadcasts (env {PubEndpointVariable}; default {RegistryNodeOptions.DefaultPubEndpoint}).",
    };
    private static readonly Option<string?> Http = new("--http")
    {
        Description = $"HTTP endpoint for /metrics, /healthz, /readyz, /api/snapshot, /api/changes and the dashboard (env {HttpVariable}; default {RegistryNodeOptions.DefaultHttpEndpoint}). Port 0 lets the OS choose; none turns it off.",
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
    private static readonly Option<string?> CurveKeyFile = new("--curve-key-file")
    {
        Description = $"Encrypt the ROUTER and PUB endpoints with CurveZMQ using the key pair in FILE (written by onex auth keygen); clients need its public key in ONEX_REGISTRY_SERVER_KEY (env {CurveKeyFileVariable}; default: no encryption).",
        HelpName = "FILE",
    };
    private static readonly Option<string?> AuthFile = new("--auth-file")
    {
        Description = $"Auth file of tenants, token hashes and quotas (env {AuthFileVariable}): every request must then carry a valid token. Re-read on change and on SIGHUP. Without one the node runs open. See docs/SECURITY.md.",
        HelpName = "FILE",
    };
    private static readonly Option<string?> ClusterOption = new("--cluster")
    {
        Description = $"Cluster mode: share this host's nodes, buses and tools through the NATS JetStream cluster at these comma-separated nats://HOST:PORT URLs (env {ClusterVariable}; docs/CLUSTER.md).",
    };
    private static readonly Option<string?> HostNameOption = new("--host-name")
    {
        Description = $"This registry's host name in cluster mode, unique in the cluster (env {HostNameVariable}; default the machine's name).",
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
            Endpoint, PubEndpoint, Http, PortRangeOption, Host, DefaultTtl, MinTtl, MaxTtl, Quarantine, Heartbeat, Grace, Store, DataDir, Durability, PauseThreshold, AuthFile, Level, CurveKeyFile, ClusterOption, HostNameOption,
        };
        command.SetAction(action);
        return command;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, Func<string, string?> environment, CancellationToken ct)
    {
        RegistryNodeHost.StartWarmUp();
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

    /// <summary>What the program sets that a node started from code does not: the HTTP endpoint (PROTOCOL.md, the node README).</summary>
    private static readonly Dictionary<string, string?> ProgramDefaults = new()
    {
        [$"{RegistryNodeConfiguration.SectionName}:{RegistryNodeConfiguration.Http}"] = RegistryNodeOptions.DefaultHttpEndpoint,
    };

    /// <summary>Builds options from the parsed command line and the environment; options beat environment variables.</summary>
    public static RegistryNodeOptions BuildOptions(ParseResult parse, Func<string, string?> environment)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(ProgramDefaults)
            .AddRegistryNodeEnvironmentVariables(environment)
            .AddInMemoryCollection(CommandLineValues(parse))
            .Build();
        return RegistryNodeConfiguration.Read(configuration.GetSection(RegistryNodeConfiguration.SectionName));
    }

    /// <summary>
    /// The node's options given on the command line as configuration values (<c>Registry:Key</c>), each checked here so
    /// a bad one is reported with the option's name. They are the last configuration source: they beat the environment
    /// and appsettings.json.
    /// </summary>
    private static Dictionary<string, string?> CommandLineValues(ParseResult parse)
    {
        var values = new Dictionary<string, string?>();
        void Set(Option<string?> option, string key, Action<string, string>? check = null)
        {
            if (parse.GetValue(option) is not { } value) return;
            check?.Invoke(value, option.Name);
            values[$"{RegistryNodeConfiguration.SectionName}:{key}"] = value;
        }
        static void IsDuration(string text, string name) => RegistryNodeConfiguration.ParseDuration(text, name);
        static void IsEndpoint(string text, string name) => RegistryNodeConfiguration.ParseEndpoint(text, name);
        Set(Endpoint, RegistryNodeConfiguration.Endpoint, IsEndpoint);
        Set(PubEndpoint, RegistryNodeConfiguration.PubEndpoint, IsEndpoint);
        Set(Http, RegistryNodeConfiguration.Http, (text, name) => RegistryNodeConfiguration.ParseHttp(text, name));
        Set(PortRangeOption, RegistryNodeConfiguration.PortRange, (text, name) => RegistryNodeConfiguration.ParsePortRange(text, name));
        Set(Host, RegistryNodeConfiguration.Host);
        Set(DefaultTtl, RegistryNodeConfiguration.DefaultTtl, IsDuration);
        Set(MinTtl, RegistryNodeConfiguration.MinTtl, IsDuration);
        Set(MaxTtl, RegistryNodeConfiguration.MaxTtl, IsDuration);
        Set(Quarantine, RegistryNodeConfiguration.Quarantine, IsDuration);
        Set(Heartbeat, RegistryNodeConfiguration.HeartbeatInterval, IsDuration);
        Set(Grace, RegistryNodeConfiguration.GracePeriod, IsDuration);
        Set(PauseThreshold, RegistryNodeConfiguration.PauseThreshold, IsDuration);
        Set(Store, RegistryNodeConfiguration.Store, (text, name) => RegistryNodeConfiguration.ParseStore(text, name));
        Set(DataDir, RegistryNodeConfiguration.DataDir);
        Set(Durability, RegistryNodeConfiguration.Durability, (text, name) => RegistryNodeConfiguration.ParseDurability(text, name));
        Set(CurveKeyFile, RegistryNodeConfiguration.CurveKeyFile);
        Set(AuthFile, RegistryNodeConfiguration.AuthFile);
        Set(ClusterOption, RegistryNodeConfiguration.Cluster);
        Set(HostNameOption, RegistryNodeConfiguration.HostName);
        // Given explicitly, the level beats appsettings.json's Logging section; otherwise that section (or Information) decides.
        if (parse.GetResult(Level) is { Implicit: false }) values["Logging:LogLevel:Default"] = parse.GetValue(Level).ToString();
        return values;
    }

    /// <summary>
    /// What the node's process is made of, one call per component; a new component (an HTTP endpoint, metrics) is one
    /// more line here, and both the <c>onex-registry</c> program and <c>onex registry serve</c> get it.
    /// </summary>
    private static void AddComponents(HostApplicationBuilder builder)
    {
        builder.Services.AddOnexRegistryNode(builder.Configuration.GetSection(RegistryNodeConfiguration.SectionName));
        builder.Services.AddSystemd();
    }

    /// <summary>Logs go to stderr (stdout carries only the lines scripts read); under systemd in the journal's format.</summary>
    private static void AddLogging(HostApplicationBuilder builder)
    {
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        // A failed start is reported below in one line; the host would log it again with its stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
    }

    private static async Task<int> ServeAsync(ParseResult parse, TextWriter output, TextWriter error, Func<string, string?> environment, CancellationToken ct)
    {
        // appsettings.json (and appsettings.{Environment}.json) in the working directory, DOTNET_ and plain environment
        // variables (Registry__PortRange), then the node's own ONEX_REGISTRY_* variables, then the command line.
        // The files are read once, at start (the node reads its options once): watching them would put an inotify
        // watch on every directory under the working directory, which costs a restart time and the machine watches.
        var hostConfiguration = new ConfigurationManager();
        hostConfiguration.AddInMemoryCollection([new("hostBuilder:reloadConfigOnChange", "false")]);
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], Configuration = hostConfiguration });
        try
        {
            // The program serves HTTP on its default address unless told otherwise; weakest of all sources.
            builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = ProgramDefaults });
            builder.Configuration.AddRegistryNodeEnvironmentVariables(environment);
            builder.Configuration.AddInMemoryCollection(CommandLineValues(parse));
            // Read once here so a bad value is a usage error (exit 2) rather than a failed start.
            RegistryNodeConfiguration.Read(builder.Configuration.GetSection(RegistryNodeConfiguration.SectionName));
        }
        catch (FormatException ex)
        {
            await error.WriteLineAsync($"registry: {ex.Message}").ConfigureAwait(false);
            return UsageExitCode;
        }
        AddLogging(builder);
        AddComponents(builder);

        using var host = builder.Build();
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OnexException or Auth.AuthFileException or ArgumentException or FormatException or IOException or RegistryStoreException or OptionsValidationException)
        {
            await error.WriteLineAsync($"registry: cannot start: {ex.Message}").ConfigureAwait(false);
            return 1;
        }

        var node = host.Services.GetRequiredService<RegistryNodeService>().Node!;
        await output.WriteLineAsync($"registry: router {node.RouterEndpoint}").ConfigureAwait(false);
        await output.WriteLineAsync($"registry: pub {node.PubEndpoint}").ConfigureAwait(false);
        if (host.Services.GetRequiredService<RegistryHttpService>().Url is { } url)
            await output.WriteLineAsync($"registry: http {url}").ConfigureAwait(false);
        if (node.ServerPublicKey is { } serverKey)
            await output.WriteLineAsync($"registry: curve {serverKey}").ConfigureAwait(false);
        await output.WriteLineAsync($"registry: epoch {node.Epoch}").ConfigureAwait(false);
        await output.WriteLineAsync($"registry: store {node.StoreLocation}").ConfigureAwait(false);
        if (node.Options.Cluster is { } cluster)
            await output.WriteLineAsync($"registry: cluster {cluster.HostName} {cluster.Servers}").ConfigureAwait(false);
        await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);

        // Until SIGINT/SIGTERM (the host's lifetime: the console's, or systemd's under systemd) or the caller cancels.
        using var idleMemoryReturn = new IdleMemoryReturn(TimeProvider.System);
        await host.WaitForShutdownAsync(ct).ConfigureAwait(false);
        await output.WriteLineAsync("registry: stopped").ConfigureAwait(false);
        await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        return 0;
    }

}
