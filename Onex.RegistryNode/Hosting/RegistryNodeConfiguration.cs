using Microsoft.Extensions.Configuration;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Storage;

namespace Onex.RegistryNode.Hosting;

/// <summary>
/// The registry node's settings in <see cref="IConfiguration"/> (appsettings.json, environment, command line): the keys
/// of the <c>Registry</c> section and how they become <see cref="RegistryNodeOptions"/>. Durations take a unit
/// (<c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>); a key that is absent keeps the default.
/// </summary>
public static class RegistryNodeConfiguration
{
    /// <summary>The configuration section the node reads (<c>Registry</c>).</summary>
    public const string SectionName = "Registry";

    /// <summary>Key of the ROUTER endpoint (<c>--endpoint</c>, env <c>ONEX_REGISTRY_ENDPOINT</c>).</summary>
    public const string Endpoint = "Endpoint";

    /// <summary>Key of the PUB endpoint (<c>--pub-endpoint</c>, env <c>ONEX_REGISTRY_PUB_ENDPOINT</c>).</summary>
    public const string PubEndpoint = "PubEndpoint";

    /// <summary>Key of the HTTP endpoint, <c>http://IP:PORT</c> or <c>none</c> (<c>--http</c>, env <c>ONEX_REGISTRY_HTTP</c>).</summary>
    public const string Http = "Http";

    /// <summary>Key of the node id written into broadcasts.</summary>
    public const string NodeId = "NodeId";

    /// <summary>Key of the leasable port range, <c>first-last</c> (<c>--port-range</c>).</summary>
    public const string PortRange = "PortRange";

    /// <summary>Key of the host written into leases (<c>--host</c>).</summary>
    public const string Host = "Host";

    /// <summary>Key of the default lease TTL (<c>--default-ttl</c>).</summary>
    public const string DefaultTtl = "DefaultTtl";

    /// <summary>Key of the shortest lease TTL (<c>--min-ttl</c>).</summary>
    public const string MinTtl = "MinTtl";

    /// <summary>Key of the longest lease TTL (<c>--max-ttl</c>).</summary>
    public const string MaxTtl = "MaxTtl";

    /// <summary>Key of the quarantine of released and expired ports (<c>--quarantine</c>).</summary>
    public const string Quarantine = "Quarantine";

    /// <summary>Key of the registry heartbeat period (<c>--heartbeat-interval</c>).</summary>
    public const string HeartbeatInterval = "HeartbeatInterval";

    /// <summary>Key of the unhealthy-node grace period (<c>--grace-period</c>).</summary>
    public const string GracePeriod = "GracePeriod";

    /// <summary>Key of the pause threshold (<c>--pause-threshold</c>).</summary>
    public const string PauseThreshold = "PauseThreshold";

    /// <summary>Key of the store kind, <c>sqlite</c> or <c>memory</c> (<c>--store</c>, env <c>ONEX_REGISTRY_STORE</c>).</summary>
    public const string Store = "Store";

    /// <summary>Key of the sqlite store's data directory (<c>--data-dir</c>, env <c>ONEX_REGISTRY_DATA_DIR</c>).</summary>
    public const string DataDir = "DataDir";

    /// <summary>Key of the durability level, <c>process</c> or <c>power</c> (<c>--durability</c>, env <c>ONEX_REGISTRY_DURABILITY</c>).</summary>
    public const string Durability = "Durability";

    /// <summary>Key of the CURVE key pair file (<c>--curve-key-file</c>, env <c>ONEX_REGISTRY_CURVE_KEY_FILE</c>; docs/ENCRYPTION.md).</summary>
    public const string CurveKeyFile = "CurveKeyFile";

    /// <summary>Key of the auth file (<c>--auth-file</c>, env <c>ONEX_REGISTRY_AUTH_FILE</c>); absent: no access control.</summary>
    public const string AuthFile = "AuthFile";

    /// <summary>Key of the NATS servers of cluster mode, comma-separated <c>nats://HOST:PORT</c> (<c>--cluster</c>, env <c>ONEX_REGISTRY_CLUSTER</c>).</summary>
    public const string Cluster = "Cluster";

    /// <summary>Key of this registry's host name in cluster mode (<c>--host-name</c>, env <c>ONEX_REGISTRY_HOST</c>).</summary>
    public const string HostName = "HostName";

    /// <summary>Key of the cluster's key-value bucket.</summary>
    public const string ClusterBucket = "ClusterBucket";

    /// <summary>Key of the period of this registry's heartbeat key in the cluster bucket.</summary>
    public const string ClusterHeartbeatInterval = "ClusterHeartbeatInterval";

    /// <summary>Key of how long a stale host stays unhealthy before its entries are removed.</summary>
    public const string ClusterRemovalGrace = "ClusterRemovalGrace";

    /// <summary>The environment variables the node has always read, and the key each one sets.</summary>
    internal static readonly IReadOnlyList<(string Variable, string Key)> EnvironmentVariables =
    [
        (RegistryNodeCommandLine.EndpointVariable, Endpoint),
        (RegistryNodeCommandLine.PubEndpointVariable, PubEndpoint),
        (RegistryNodeCommandLine.HttpVariable, Http),
        (RegistryNodeCommandLine.StoreVariable, Store),
        (RegistryNodeCommandLine.DataDirVariable, DataDir),
        (RegistryNodeCommandLine.DurabilityVariable, Durability),
        (RegistryNodeCommandLine.CurveKeyFileVariable, CurveKeyFile),
        (RegistryNodeCommandLine.AuthFileVariable, AuthFile),
        (RegistryNodeCommandLine.ClusterVariable, Cluster),
        (RegistryNodeCommandLine.HostNameVariable, HostName),
    ];

    /// <summary>
    /// Adds the node's environment variables (<c>ONEX_REGISTRY_ENDPOINT</c> and companions) to
    /// <paramref name="configuration"/> under the <c>Registry</c> section; empty variables count as absent.
    /// </summary>
    public static IConfigurationBuilder AddRegistryNodeEnvironmentVariables(this IConfigurationBuilder configuration) =>
        configuration.AddRegistryNodeEnvironmentVariables(Environment.GetEnvironmentVariable);

    internal static IConfigurationBuilder AddRegistryNodeEnvironmentVariables(this IConfigurationBuilder configuration, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var values = new Dictionary<string, string?>();
        foreach (var (variable, key) in EnvironmentVariables)
            if (environment(variable) is { } value && !string.IsNullOrWhiteSpace(value))
                values[$"{SectionName}:{key}"] = value;
        return configuration.AddInMemoryCollection(values);
    }

    /// <summary>
    /// Reads <see cref="RegistryNodeOptions"/> from the <c>Registry</c> section (pass the section itself), starting
    /// from <paramref name="defaults"/> (<see cref="RegistryNodeOptions.Default"/> when null). Throws
    /// <see cref="FormatException"/> naming the key when a value cannot be read.
    /// </summary>
    public static RegistryNodeOptions Read(IConfiguration section, RegistryNodeOptions? defaults = null)
    {
        ArgumentNullException.ThrowIfNull(section);
        var options = defaults ?? RegistryNodeOptions.Default;
        var leases = options.Leases;
        if (Text(section, PortRange) is { } range)
            leases = leases with { PortRange = ParsePortRange(range, Name(PortRange)) };
        if (Text(section, Host) is { } host) leases = leases with { AdvertisedHost = host };
        if (Duration(section, DefaultTtl) is { } ttl) leases = leases with { DefaultTtl = ttl };
        if (Duration(section, MinTtl) is { } min) leases = leases with { MinTtl = min };
        if (Duration(section, MaxTtl) is { } max) leases = leases with { MaxTtl = max };
        if (Duration(section, Quarantine) is { } quarantine) leases = leases with { Quarantine = quarantine };
        options = options with { Leases = leases };
        if (Text(section, Endpoint) is { } endpoint) options = options with { Endpoint = ParseEndpoint(endpoint, Name(Endpoint)) };
        if (Text(section, PubEndpoint) is { } pub) options = options with { PubEndpoint = ParseEndpoint(pub, Name(PubEndpoint)) };
        if (Text(section, Http) is { } http) options = options with { HttpEndpoint = ParseHttp(http, Name(Http)) };
        if (Text(section, NodeId) is { } nodeId) options = options with { NodeId = nodeId };
        if (Duration(section, HeartbeatInterval) is { } heartbeat) options = options with { HeartbeatInterval = heartbeat };
        if (Duration(section, GracePeriod) is { } grace) options = options with { Nodes = options.Nodes with { UnhealthyGracePeriod = grace } };
        if (Duration(section, PauseThreshold) is { } pause) options = options with { PauseThreshold = pause };
        if (Text(section, CurveKeyFile) is { } keyFile) options = options with { CurveKeyFile = keyFile };
        if (Text(section, AuthFile) is { } authFile) options = options with { AuthFile = authFile };

        var store = options.Store;
        if (Text(section, Store) is { } kind) store = store with { Kind = ParseStore(kind, Name(Store)) };
        if (Text(section, DataDir) is { } directory) store = store with { DataDirectory = directory };
        if (Text(section, Durability) is { } durability) store = store with { Durability = ParseDurability(durability, Name(Durability)) };
        CheckTtls(options.Leases);
        options = options with { Store = store };
        if (Text(section, Cluster) is { } servers)
        {
            var cluster = new Onex.RegistryNode.Cluster.ClusterOptions { Servers = servers };
            if (Text(section, HostName) is { } hostName) cluster = cluster with { HostName = hostName };
            if (Text(section, ClusterBucket) is { } bucket) cluster = cluster with { Bucket = bucket };
            if (Duration(section, ClusterHeartbeatInterval) is { } beat) cluster = cluster with { HeartbeatInterval = beat };
            if (Duration(section, ClusterRemovalGrace) is { } removal) cluster = cluster with { RemovalGrace = removal };
            try
            {
                cluster.Check();
            }
            catch (ArgumentException ex)
            {
                throw new FormatException($"{Name(Cluster)}: {ex.Message}");
            }
            options = options with { Cluster = cluster };
        }
        return options;
    }

    /// <summary>TTLs that contradict each other are a usage error naming the options and keys, not a failed start.</summary>
    private static void CheckTtls(LeaseOptions leases)
    {
        if (leases.MinTtl <= TimeSpan.Zero || leases.MinTtl > leases.MaxTtl)
            throw new FormatException(
                $"--min-ttl ({Name(MinTtl)}) {Durations.Format(leases.MinTtl)} must be positive and at most --max-ttl ({Name(MaxTtl)}) {Durations.Format(leases.MaxTtl)}.");
        if (leases.DefaultTtl < leases.MinTtl || leases.DefaultTtl > leases.MaxTtl)
            throw new FormatException(
                $"--default-ttl ({Name(DefaultTtl)}) {Durations.Format(leases.DefaultTtl)} is outside --min-ttl {Durations.Format(leases.MinTtl)} .. --max-ttl " +
                $"{Durations.Format(leases.MaxTtl)}; e.g. --default-ttl 30s.");
    }

    /// <summary>A ZeroMQ endpoint to bind; a malformed one is a <see cref="FormatException"/> naming where it came from.</summary>
    internal static string ParseEndpoint(string text, string name)
    {
        try
        {
            Onex.Transports.Zmq.ZmqEndpoints.EnsureValid(text, name);
        }
        catch (ArgumentException)
        {
            throw new FormatException($"{name}: '{text}' is not an endpoint; write tcp://HOST:PORT, e.g. tcp://127.0.0.1:5750 (port 0 lets the OS choose).");
        }
        return text;
    }

    internal static PortRange ParsePortRange(string text, string name) =>
        Leases.PortRange.TryParse(text, out var range) ? range : throw new FormatException($"{name}: '{text}' is not first-last, e.g. 20000-29999.");

    /// <summary>An HTTP endpoint to serve, or null for <c>none</c>.</summary>
    internal static string? ParseHttp(string text, string name)
    {
        if (text == "none") return null;
        return Onex.RegistryNode.Http.HttpEndpoints.TryParse(text, out _, out var problem)
            ? text
            : throw new FormatException($"{name}: '{text}' {problem}; use http://127.0.0.1:PORT (0: the OS chooses) or none.");
    }

    internal static RegistryStoreKind ParseStore(string text, string name) => text switch
    {
        "sqlite" => RegistryStoreKind.Sqlite,
        "memory" => RegistryStoreKind.Memory,
        _ => throw new FormatException($"{name}: '{text}' is not a store; use sqlite or memory."),
    };

    internal static StoreDurability ParseDurability(string text, string name) => text switch
    {
        "process" => StoreDurability.Process,
        "power" => StoreDurability.Power,
        _ => throw new FormatException($"{name}: '{text}' is not a durability level; use process or power."),
    };

    internal static TimeSpan ParseDuration(string text, string name) =>
        Durations.TryParse(text, out var value) ? value : throw new FormatException($"{name}: '{text}' is not a duration; write 500ms, 30s, 5m or 1h (a bare number is seconds), e.g. 30s.");

    private static string Name(string key) => $"{SectionName}:{key}";

    private static string? Text(IConfiguration section, string key) => section[key] is { } value && !string.IsNullOrWhiteSpace(value) ? value.Trim() : null;

    private static TimeSpan? Duration(IConfiguration section, string key) => Text(section, key) is { } text ? ParseDuration(text, Name(key)) : null;
}
