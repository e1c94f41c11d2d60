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
}
