using Microsoft.Extensions.Logging;
using Onex.InMemory;
using Onex.Protocol;
using Onex.Transports.Ipc;
using Onex.Transports.JetStream;
using Onex.Transports.Registry;
using Onex.Transports.Zmq;

namespace Onex.Transports.Buses;

/// <summary>Whether a participant creates the bus or joins one that exists.</summary>
public enum EventBusRole
{
    /// <summary>Creates the bus: binds the ZeroMQ forwarder or the Unix-socket broker, creates the JetStream stream, registers it.</summary>
    Host,

    /// <summary>Joins an existing bus by its endpoints (or by name through the registry).</summary>
    Join,
}

/// <summary>
/// Which backend to use and how: the one configuration record behind <see cref="EventBusFactory"/>.
/// <see cref="FromEnvironment"/> reads <c>ONEX_BUS</c> (memory|zmq|ipc|jetstream), <c>ONEX_BUS_NAME</c>,
/// <c>ONEX_BUS_ROLE</c> (host|join), <c>ONEX_BUS_ENDPOINTS</c> (comma-separated), <c>ONEX_ZMQ_TRANSPORT</c> (tcp|ipc)
/// and <c>ONEX_NATS_URL</c>.
/// </summary>
public sealed record EventBusOptions
{
    /// <summary>An in-memory bus named <c>default</c>.</summary>
    public static EventBusOptions Default { get; } = new();

    /// <summary>The backend: one of <see cref="BusKinds"/> (<c>memory</c>, <c>zmq</c>, <c>ipc</c>, <c>jetstream</c>).</summary>
    public string Backend { get; init; } = BusKinds.Memory;

    /// <summary>The logical bus name (what the registry lists; letters, digits, <c>-</c> and <c>_</c>).</summary>
    public string Name { get; init; } = "default";

    /// <summary>The participant's node id; the registry client's node id when a registry is given and this is empty.</summary>
    public string NodeId { get; init; } = "";

    /// <summary>Create the bus or join it.</summary>
    public EventBusRole Role { get; init; } = EventBusRole.Host;

    /// <summary>
    /// Endpoints. Join: zmq <c>[publish, subscribe]</c> (the forwarder's XSUB and XPUB), ipc <c>[unix:///path/bus.sock]</c>,
    /// jetstream <c>[nats://host:port]</c>; empty means "look the bus up by name in the registry" (or, for ipc, the
    /// default socket path of the name). Host: zmq may name the two endpoints to bind; empty means leased ports
    /// from the registry, or OS-chosen ports without one.
    /// </summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    /// <summary>ZeroMQ transport when hosting without explicit endpoints: <c>tcp</c> or <c>ipc</c>.</summary>
    public string ZmqTransport { get; init; } = "tcp";

    /// <summary>The NATS server for the jetstream backend when <see cref="Endpoints"/> is empty.</summary>
    public string NatsUrl { get; init; } = "nats://127.0.0.1:4222";

    /// <summary>
    /// When set, a hosting participant takes its ports from this registry, registers the bus (an
    /// <see cref="EventBusRegistration"/> owned by the client's node, which heartbeats) and deregisters it on dispose;
    /// a joining participant with no endpoints looks the bus up here.
    /// </summary>
    public RegistryClient? Registry { get; init; }

    /// <summary>
    /// A zmq or Unix-socket participant that joins by name through <see cref="Registry"/> follows the bus: it watches
    /// the registry's change stream and, when the bus is registered again on other endpoints (its host came back on
    /// other ports, or at another socket path), rejoins there by itself, with connection-state notices on the way (PROTOCOL.md, "A host that comes back").
    /// </summary>
    public bool FollowRegistry { get; init; } = true;

    /// <summary>Settings of the in-memory backend (name and node id are taken from this record).</summary>
    public InMemoryEventBusOptions Memory { get; init; } = InMemoryEventBusOptions.Default;

    /// <summary>Settings of the ZeroMQ backend (name, node id and endpoints are taken from this record).</summary>
    public ZmqEventBusOptions Zmq { get; init; } = ZmqEventBusOptions.Default;

    /// <summary>Settings of the Unix-socket backend (name, node id and socket path are taken from this record).</summary>
    public IpcEventBusOptions Ipc { get; init; } = IpcEventBusOptions.Default;

    /// <summary>Settings of the JetStream backend (name, node id and URL are taken from this record).</summary>
    public JetStreamEventBusOptions JetStream { get; init; } = JetStreamEventBusOptions.Default;

    /// <summary>Logging for the backend.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Overlays the <c>ONEX_*</c> environment variables on <paramref name="defaults"/> (or <see cref="Default"/>).
    /// A variable with a value the factory cannot use is reported by <see cref="EventBusFactory.CreateAsync"/>, naming it.
    /// </summary>
    public static EventBusOptions FromEnvironment(EventBusOptions? defaults = null)
    {
        var options = defaults ?? Default;
        if (Read("ONEX_BUS") is { } backend) options = options with { Backend = backend.ToLowerInvariant() };
        if (Read("ONEX_BUS_NAME") is { } name) options = options with { Name = name };
        if (Read("ONEX_BUS_ROLE") is { } role)
            options = options with
            {
                Role = role.ToLowerInvariant() switch
                {
                    "host" => EventBusRole.Host,
                    "join" => EventBusRole.Join,
                    _ => throw new ArgumentException($"ONEX_BUS_ROLE='{role}' is not a bus role: use host or join."),
                },
            };
        if (Read("ONEX_BUS_ENDPOINTS") is { } endpoints)
            options = options with { Endpoints = endpoints.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) };
        if (Read("ONEX_ZMQ_TRANSPORT") is { } transport) options = options with { ZmqTransport = transport.ToLowerInvariant() };
        if (Read("ONEX_NATS_URL") is { } url) options = options with { NatsUrl = url };
        return options;
    }

    private static string? Read(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value ? value.Trim() : null;
}
