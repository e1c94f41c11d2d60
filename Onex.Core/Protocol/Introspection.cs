using MessagePack;

namespace Onex.Protocol;

/// <summary>Sections an <see cref="IntrospectionRequest"/> may ask for.</summary>
public static class IntrospectionSections
{
    /// <summary>Port leases.</summary>
    public const string Leases = "leases";
    /// <summary>Nodes.</summary>
    public const string Nodes = "nodes";
    /// <summary>Event buses.</summary>
    public const string Buses = "buses";
    /// <summary>Tool contracts.</summary>
    public const string Tools = "tools";
    /// <summary>Counters.</summary>
    public const string Stats = "stats";
}

/// <summary>Scopes of an <see cref="IntrospectionRequest"/>.</summary>
public static class IntrospectionScopes
{
    /// <summary>Only what this registry holds for its own host.</summary>
    public const string Local = "local";
    /// <summary>Everything this registry knows: its own host's entries and those of the other hosts of its cluster (the default).</summary>
    public const string Cluster = "cluster";
}

/// <summary>
/// Asks what the registry holds. Empty <see cref="Include"/> means every section. Filters combine with AND
/// and apply to the sections they make sense for. Reply: <see cref="IntrospectionResponse"/>.
/// </summary>
[MessagePackObject]
public sealed record IntrospectionRequest
{
    /// <summary>Sections wanted (see <see cref="IntrospectionSections"/>); empty or null for all.</summary>
    [Key("include")] public IReadOnlyList<string>? Include { get; init; }
    /// <summary>Only entries owned by this node.</summary>
    [Key("nodeId")] public string? NodeId { get; init; }
    /// <summary>Only buses of this kind.</summary>
    [Key("kind")] public string? Kind { get; init; }
    /// <summary>Only entries whose name (bus, tool, node id or lease purpose) starts with this.</summary>
    [Key("namePrefix")] public string? NamePrefix { get; init; }
    /// <summary>
    /// <c>cluster</c> (the default, also for null): this registry's entries and those of every other host in its cluster;
    /// <c>local</c>: this registry's own only. Outside cluster mode both give the same answer (see <see cref="IntrospectionScopes"/>).
    /// </summary>
    [Key("scope")] public string? Scope { get; init; }
}

/// <summary>Counters about the registry itself.</summary>
[MessagePackObject]
public sealed record RegistryStats
{
    /// <summary>When this registry instance started, Unix ms.</summary>
    [Key("startedAt")] public long StartedAt { get; init; }
    /// <summary>Milliseconds since start.</summary>
    [Key("uptimeMs")] public long UptimeMs { get; init; }
    /// <summary>Requests answered (successes and errors).</summary>
    [Key("requestsServed")] public long RequestsServed { get; init; }
    /// <summary>Error replies by code.</summary>
    [Key("errorsByCode")] public IReadOnlyDictionary<string, long> ErrorsByCode { get; init; } = new Dictionary<string, long>();
    /// <summary>Live leases.</summary>
    [Key("leaseCount")] public int LeaseCount { get; init; }
    /// <summary>Known nodes.</summary>
    [Key("nodeCount")] public int NodeCount { get; init; }
    /// <summary>Registered buses.</summary>
    [Key("busCount")] public int BusCount { get; init; }
    /// <summary>Registered tool contracts.</summary>
    [Key("toolCount")] public int ToolCount { get; init; }
    /// <summary>Ports ready to grant.</summary>
    [Key("freePorts")] public int FreePorts { get; init; }
    /// <summary>Ports resting in quarantine.</summary>
    [Key("quarantinedPorts")] public int QuarantinedPorts { get; init; }
}

/// <summary>Reply to <see cref="IntrospectionRequest"/>. Sections not asked for are null.</summary>
[MessagePackObject]
public sealed record IntrospectionResponse
{
    /// <summary>The registry's instance epoch.</summary>
    [Key("epoch")] public required string Epoch { get; init; }
    /// <summary>The change sequence number this answer reflects.</summary>
    [Key("sequence")] public long Sequence { get; init; }
    /// <summary>Leases, or null.</summary>
    [Key("leases")] public IReadOnlyList<PortLease>? Leases { get; init; }
    /// <summary>Nodes, or null.</summary>
    [Key("nodes")] public IReadOnlyList<NodeRecord>? Nodes { get; init; }
    /// <summary>Buses, or null.</summary>
    [Key("buses")] public IReadOnlyList<EventBusRecord>? Buses { get; init; }
    /// <summary>Tools, or null.</summary>
    [Key("tools")] public IReadOnlyList<ToolContractRecord>? Tools { get; init; }
    /// <summary>Stats, or null.</summary>
    [Key("stats")] public RegistryStats? Stats { get; init; }
    /// <summary>The cluster as this registry sees it; null outside cluster mode.</summary>
    [Key("cluster")] public ClusterStatus? Cluster { get; init; }
}

/// <summary>How a registry in cluster mode sees its cluster (PROTOCOL.md section 18).</summary>
[MessagePackObject]
public sealed record ClusterStatus
{
    /// <summary>This registry's host name.</summary>
    [Key("host")] public required string Host { get; init; }
    /// <summary>True while the registry is connected to the NATS cluster and has loaded the catalogue.</summary>
    [Key("connected")] public bool Connected { get; init; }
    /// <summary>True when the other hosts' entries may be out of date (not connected, or not yet loaded).</summary>
    [Key("stale")] public bool Stale { get; init; }
    /// <summary>The other hosts seen in the catalogue, ordered by name.</summary>
    [Key("hosts")] public IReadOnlyList<ClusterHostStatus> Hosts { get; init; } = [];
}

/// <summary>Another host of the cluster, as this registry sees it.</summary>
[MessagePackObject]
public sealed record ClusterHostStatus
{
    /// <summary>The host name.</summary>
    [Key("host")] public required string Host { get; init; }
    /// <summary><c>healthy</c> while its registry's heartbeat key is fresh, <c>unhealthy</c> once it is stale.</summary>
    [Key("health")] public string Health { get; init; } = Protocol.Health.Healthy;
    /// <summary>Milliseconds since this registry last saw that host's heartbeat.</summary>
    [Key("heartbeatAgeMs")] public long HeartbeatAgeMs { get; init; }
}
