using MessagePack;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// The value of a host's heartbeat key (<c>TENANT.HOST.host.heartbeat</c>) in the cluster bucket: written by that host's
/// registry every interval; rewritten with <see cref="RemovedBy"/> by the one registry that won the removal of a stale host.
/// </summary>
[MessagePackObject]
public sealed record ClusterHeartbeat
{
    /// <summary>The host.</summary>
    [Key("host")] public required string Host { get; init; }
    /// <summary>Its registry's epoch.</summary>
    [Key("epoch")] public string Epoch { get; init; } = "";
    /// <summary>How often the host writes the key, milliseconds; others judge staleness by it.</summary>
    [Key("intervalMs")] public long IntervalMs { get; init; }
    /// <summary>When written, Unix ms by the writer's clock (for people: staleness is judged by the reader's clock).</summary>
    [Key("sentAt")] public long SentAt { get; init; }
    /// <summary>Null for a heartbeat; the host name of the registry that is removing this stale host's entries.</summary>
    [Key("removedBy")] public string? RemovedBy { get; init; }
}

/// <summary>
/// The value of a cluster-wide claim (<c>TENANT.=claim.bus.NAME</c> or <c>TENANT.=claim.tool.NAME@VERSION</c>): which host
/// and node own a bus name or a tool name and version across the cluster, and the tool's contract fingerprint. Created
/// with the bucket's create-if-absent, taken over only at a known revision, so two hosts never both win.
/// </summary>
[MessagePackObject]
public sealed record ClusterClaim
{
    /// <summary>The owner's host.</summary>
    [Key("host")] public required string Host { get; init; }
    /// <summary>The owner node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>The tool contract's fingerprint; null for a bus.</summary>
    [Key("fingerprint")] public string? Fingerprint { get; init; }
}
