using MessagePack;

namespace Onex.Protocol;

/// <summary>Asks for the full state and the sequence number it reflects. Reply: <see cref="RegistrySnapshot"/>.</summary>
[MessagePackObject]
public sealed record SnapshotRequest
{
    /// <summary>Only used to make the map non-empty for strict decoders; send null.</summary>
    [Key("note")] public string? Note { get; init; }
}

/// <summary>All registry state as of <see cref="Sequence"/> (the Clone pattern's snapshot).</summary>
[MessagePackObject]
public sealed record RegistrySnapshot
{
    /// <summary>The registry's instance epoch; changes from another epoch do not apply to this snapshot.</summary>
    [Key("epoch")] public required string Epoch { get; init; }
    /// <summary>The last change included. Apply only changes with a higher sequence.</summary>
    [Key("sequence")] public long Sequence { get; init; }
    /// <summary>When taken, Unix ms.</summary>
    [Key("takenAt")] public long TakenAt { get; init; }
    /// <summary>Every lease.</summary>
    [Key("leases")] public IReadOnlyList<PortLease> Leases { get; init; } = [];
    /// <summary>Every node.</summary>
    [Key("nodes")] public IReadOnlyList<NodeRecord> Nodes { get; init; } = [];
    /// <summary>Every bus.</summary>
    [Key("buses")] public IReadOnlyList<EventBusRecord> Buses { get; init; } = [];
    /// <summary>Every tool contract.</summary>
    [Key("tools")] public IReadOnlyList<ToolContractRecord> Tools { get; init; } = [];
}

/// <summary>One entity's value in a <see cref="RegistryChange"/>: exactly one field is set.</summary>
[MessagePackObject]
public sealed record RegistryEntity
{
    /// <summary>A lease.</summary>
    [Key("lease")] public PortLease? Lease { get; init; }
    /// <summary>A node.</summary>
    [Key("node")] public NodeRecord? Node { get; init; }
    /// <summary>A bus.</summary>
    [Key("bus")] public EventBusRecord? Bus { get; init; }
    /// <summary>A tool contract.</summary>
    [Key("tool")] public ToolContractRecord? Tool { get; init; }
}

/// <summary>
/// A change of registry state, published on the PUB endpoint as the payload of an event with topic
/// <c>registry.</c> + <see cref="ChangeType"/> (see <see cref="ChangeTypes"/>).
/// </summary>
[MessagePackObject]
public sealed record RegistryChange
{
    /// <summary>The registry's instance epoch (new on every start).</summary>
    [Key("epoch")] public required string Epoch { get; init; }
    /// <summary>Strictly increasing within an epoch, starting at 1, no gaps.</summary>
    [Key("sequence")] public long Sequence { get; init; }
    /// <summary>What happened (see <see cref="ChangeTypes"/>).</summary>
    [Key("changeType")] public required string ChangeType { get; init; }
    /// <summary>The entity key: lease id, node id, bus name, or tool <c>name@version</c>.</summary>
    [Key("key")] public required string Key { get; init; }
    /// <summary>When it happened, Unix ms.</summary>
    [Key("timestamp")] public long Timestamp { get; init; }
    /// <summary>The value after the change; null for removals.</summary>
    [Key("newValue")] public RegistryEntity? NewValue { get; init; }
    /// <summary>The value before the change; null for creations.</summary>
    [Key("oldValue")] public RegistryEntity? OldValue { get; init; }
}

/// <summary>
/// Published on topic <c>registry.heartbeat</c> periodically, carrying the current sequence, so a subscriber
/// tells a quiet registry from a dead one and notices missed changes.
/// </summary>
[MessagePackObject]
public sealed record RegistryHeartbeat
{
    /// <summary>The registry's instance epoch.</summary>
    [Key("epoch")] public required string Epoch { get; init; }
    /// <summary>The sequence number of the latest change.</summary>
    [Key("sequence")] public long Sequence { get; init; }
    /// <summary>When sent, Unix ms.</summary>
    [Key("timestamp")] public long Timestamp { get; init; }
    /// <summary>Heartbeat period, ms: a subscriber that hears nothing for three periods treats the registry as gone.</summary>
    [Key("intervalMs")] public long IntervalMs { get; init; }
    /// <summary>True on the last heartbeat before an orderly shutdown.</summary>
    [Key("stopping")] public bool Stopping { get; init; }
}

/// <summary>Change types; the broadcast topic is <c>registry.</c> + the change type.</summary>
public static class ChangeTypes
{
    /// <summary>A lease was granted.</summary>
    public const string LeaseGranted = "lease.granted";
    /// <summary>A lease was renewed.</summary>
    public const string LeaseRenewed = "lease.renewed";
    /// <summary>A lease was released by its holder.</summary>
    public const string LeaseReleased = "lease.released";
    /// <summary>A lease expired (reaper) or was removed with its node.</summary>
    public const string LeaseExpired = "lease.expired";
    /// <summary>A holder reported its port unbindable; the port was quarantined.</summary>
    public const string LeaseConflicted = "lease.conflicted";
    /// <summary>A node announced itself for the first time.</summary>
    public const string NodeRegistered = "node.registered";
    /// <summary>A node re-announced with different details.</summary>
    public const string NodeUpdated = "node.updated";
    /// <summary>A node stopped heartbeating.</summary>
    public const string NodeUnhealthy = "node.unhealthy";
    /// <summary>An unhealthy node heartbeat again.</summary>
    public const string NodeHealthy = "node.healthy";
    /// <summary>A node departed or its grace period ran out.</summary>
    public const string NodeRemoved = "node.removed";
    /// <summary>A bus was registered.</summary>
    public const string BusRegistered = "bus.registered";
    /// <summary>A bus registration changed (endpoints, metadata or health).</summary>
    public const string BusUpdated = "bus.updated";
    /// <summary>A bus was removed.</summary>
    public const string BusRemoved = "bus.removed";
    /// <summary>A tool contract was registered.</summary>
    public const string ToolRegistered = "tool.registered";
    /// <summary>A tool contract changed health.</summary>
    public const string ToolUpdated = "tool.updated";
    /// <summary>A tool contract was removed.</summary>
    public const string ToolRemoved = "tool.removed";

    /// <summary>The topic prefix every registry broadcast starts with.</summary>
    public const string TopicPrefix = "registry.";

    /// <summary>Topic of heartbeats.</summary>
    public const string HeartbeatTopic = "registry.heartbeat";

    /// <summary>The broadcast topic of <paramref name="changeType"/>.</summary>
    public static string TopicOf(string changeType) => TopicPrefix + changeType;
}
