using MessagePack;

namespace Onex.Protocol;

/// <summary>A node introduces itself (or re-introduces itself after a registry restart). Reply: <see cref="NodeRecord"/>.</summary>
[MessagePackObject]
public sealed record NodeAnnouncement
{
    /// <summary>Stable id chosen by the node, unique in the system.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>Human-readable name.</summary>
    [Key("name")] public string Name { get; init; } = "";
    /// <summary>Host the node runs on.</summary>
    [Key("host")] public string Host { get; init; } = "";
    /// <summary>OS process id.</summary>
    [Key("processId")] public int ProcessId { get; init; }
    /// <summary>How often the node promises to heartbeat, milliseconds.</summary>
    [Key("heartbeatIntervalMs")] public long HeartbeatIntervalMs { get; init; } = 5000;
    /// <summary>Free-form labels.</summary>
    [Key("metadata")] public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}

/// <summary>A node says it is alive. Reply: <see cref="Ack"/>. An unknown node gets NOT_FOUND and should announce.</summary>
[MessagePackObject]
public sealed record NodeHeartbeat
{
    /// <summary>The node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
}

/// <summary>A node leaves: its buses, tools and leases go with it. Reply: <see cref="Ack"/>.</summary>
[MessagePackObject]
public sealed record NodeDeparture
{
    /// <summary>The node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
}

/// <summary>Health of a node and of what it owns.</summary>
public static class Health
{
    /// <summary>Heartbeats arrive on time.</summary>
    public const string Healthy = "healthy";
    /// <summary>Heartbeats stopped; removed after the grace period unless they resume.</summary>
    public const string Unhealthy = "unhealthy";
}

/// <summary>A node as the registry records it.</summary>
[MessagePackObject]
public sealed record NodeRecord
{
    /// <summary>The node id.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>Human-readable name.</summary>
    [Key("name")] public string Name { get; init; } = "";
    /// <summary>Host.</summary>
    [Key("host")] public string Host { get; init; } = "";
    /// <summary>OS process id.</summary>
    [Key("processId")] public int ProcessId { get; init; }
    /// <summary>Promised heartbeat interval, ms.</summary>
    [Key("heartbeatIntervalMs")] public long HeartbeatIntervalMs { get; init; }
    /// <summary><c>healthy</c> or <c>unhealthy</c>.</summary>
    [Key("health")] public string Health { get; init; } = Protocol.Health.Healthy;
    /// <summary>When the node first announced itself, Unix ms.</summary>
    [Key("registeredAt")] public long RegisteredAt { get; init; }
    /// <summary>Last heartbeat or announcement, Unix ms.</summary>
    [Key("lastSeenAt")] public long LastSeenAt { get; init; }
    /// <summary>Free-form labels.</summary>
    [Key("metadata")] public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    /// <summary>The host whose registry holds this entry (<c>--host-name</c>) in cluster mode; null outside cluster mode (docs/CLUSTER.md).</summary>
    [Key("registryHost")] public string? RegistryHost { get; init; }
    /// <summary>The tenant owning this entry (PROTOCOL.md section 16.3); null means <c>default</c> (always so without an auth file).</summary>
    [Key("tenant")] public string? Tenant { get; init; }
}
