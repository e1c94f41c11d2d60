using MessagePack;

namespace Onex.Protocol;

/// <summary>Kinds of event bus (<see cref="EventBusRegistration.Kind"/>).</summary>
public static class BusKinds
{
    /// <summary>In-process.</summary>
    public const string Memory = "memory";
    /// <summary>ZeroMQ over tcp or ipc.</summary>
    public const string Zmq = "zmq";
    /// <summary>Unix domain sockets.</summary>
    public const string Ipc = "ipc";
    /// <summary>NATS JetStream.</summary>
    public const string JetStream = "jetstream";
}

/// <summary>Registers (or updates) an event bus owned by a node. Reply: <see cref="EventBusRecord"/>.</summary>
[MessagePackObject]
public sealed record EventBusRegistration
{
    /// <summary>Bus name, unique per registry; re-registering the same name by its owner updates it.</summary>
    [Key("name")] public required string Name { get; init; }
    /// <summary>One of <see cref="BusKinds"/>.</summary>
    [Key("kind")] public required string Kind { get; init; }
    /// <summary>Where to reach it, e.g. <c>tcp://127.0.0.1:21003</c>, <c>unix:///run/...</c>, <c>nats://127.0.0.1:4222</c>.</summary>
    [Key("endpoints")] public required IReadOnlyList<string> Endpoints { get; init; }
    /// <summary>The owner node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>Free-form labels.</summary>
    [Key("metadata")] public IReadOnlyDictionary<string, string>? Metadata { get; init; }
}

/// <summary>Removes a bus. Reply: <see cref="Ack"/>.</summary>
[MessagePackObject]
public sealed record EventBusDeregistration
{
    /// <summary>Bus name.</summary>
    [Key("name")] public required string Name { get; init; }
    /// <summary>The owner node; must match.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
}

/// <summary>A bus as the registry records it.</summary>
[MessagePackObject]
public sealed record EventBusRecord
{
    /// <summary>Bus name.</summary>
    [Key("name")] public required string Name { get; init; }
    /// <summary>One of <see cref="BusKinds"/>.</summary>
    [Key("kind")] public required string Kind { get; init; }
    /// <summary>Endpoints.</summary>
    [Key("endpoints")] public required IReadOnlyList<string> Endpoints { get; init; }
    /// <summary>Owner node.</summary>
    [Key("nodeId")] public required string NodeId { get; init; }
    /// <summary>The owner's health.</summary>
    [Key("health")] public string Health { get; init; } = Protocol.Health.Healthy;
    /// <summary>When registered, Unix ms.</summary>
    [Key("registeredAt")] public long RegisteredAt { get; init; }
    /// <summary>Free-form labels.</summary>
    [Key("metadata")] public IReadOnlyDictionary<string, string>? Metadata { get; init; }
    /// <summary>The host whose registry holds this entry (<c>--host-name</c>) in cluster mode; null outside cluster mode (docs/CLUSTER.md).</summary>
    [Key("registryHost")] public string? RegistryHost { get; init; }
    /// <summary>The tenant owning this entry (PROTOCOL.md section 16.3); null means <c>default</c> (always so without an auth file).</summary>
    [Key("tenant")] public string? Tenant { get; init; }
}
