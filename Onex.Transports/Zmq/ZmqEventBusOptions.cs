using Microsoft.Extensions.Logging;

namespace Onex.Transports.Zmq;

/// <summary>
/// Settings of a <see cref="ZmqEventBus"/> participant. The two endpoints identify the bus: the host binds them,
/// everyone (host included) connects to them.
/// </summary>
/// <example>
/// <code>
/// var options = ZmqEventBusOptions.Default with
/// {
///     Name = "orders",
///     NodeId = "billing-1",
///     PublishEndpoint = "tcp://127.0.0.1:41001",   // two ports leased from the registry
///     SubscribeEndpoint = "tcp://127.0.0.1:41002",
/// };
/// await using var host = await ZmqEventBus.HostAsync(options);
/// // in another process, same endpoints:
/// await using var peer = await ZmqEventBus.JoinAsync(options with { NodeId = "shipping-1" });
/// </code>
/// </example>
public sealed record ZmqEventBusOptions
{
    /// <summary>A bus named <c>default</c> with no endpoints (they must be set), default sockets, a 10 s handshake timeout.</summary>
    public static ZmqEventBusOptions Default { get; } = new();

    /// <summary>The logical bus name (what the registry lists). Must not be empty.</summary>
    public string Name { get; init; } = "default";

    /// <summary>
    /// The node this participant belongs to. When not empty, it is written into
    /// <see cref="Events.OnexEvent.SourceNodeId"/> of events published without one, and it appears in logs.
    /// </summary>
    public string NodeId { get; init; } = "";

    /// <summary>
    /// Where events go in: the forwarder's XSUB socket, which every participant's PUB connects to.
    /// <c>tcp://127.0.0.1:PORT</c> (a port leased from the registry) or <c>ipc://NAME</c>. The host may bind
    /// <c>tcp://127.0.0.1:0</c> and read the chosen port from <see cref="ZmqEventBus.PublishEndpoint"/>.
    /// </summary>
    public string PublishEndpoint { get; init; } = "";

    /// <summary>Where events come out: the forwarder's XPUB socket, which every participant's SUB connects to.</summary>
    public string SubscribeEndpoint { get; init; } = "";

    /// <summary>High-water marks, reconnect intervals, linger and size limits of every socket of the participant.</summary>
    public ZmqSocketOptions Socket { get; init; } = ZmqSocketOptions.Default;

    /// <summary>
    /// How long starting a participant, and each <see cref="ZmqEventBus.SubscribeAsync"/>, may wait for its probe to
    /// come back through the forwarder before failing with code UNAVAILABLE.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Limits and full mode of this participant's outgoing queue.</summary>
    public ZmqPublishQueueOptions PublishQueue { get; init; } = ZmqPublishQueueOptions.Default;

    /// <summary>Where log messages go; nowhere when null.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// The clock that stamps <see cref="Events.OnexEvent.Timestamp"/> on events published without one (timestamp 0)
    /// and times handshakes; <see cref="System.TimeProvider.System"/> when null.
    /// </summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that is missing or out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
            throw new ArgumentException("The bus Name must not be empty.", nameof(Name));
        if (string.IsNullOrWhiteSpace(PublishEndpoint))
            throw new ArgumentException("PublishEndpoint (the forwarder's XSUB side) must be set, e.g. tcp://127.0.0.1:PORT.", nameof(PublishEndpoint));
        if (string.IsNullOrWhiteSpace(SubscribeEndpoint))
            throw new ArgumentException("SubscribeEndpoint (the forwarder's XPUB side) must be set, e.g. tcp://127.0.0.1:PORT.", nameof(SubscribeEndpoint));
        ZmqEndpoints.EnsureValid(PublishEndpoint, nameof(PublishEndpoint));
        ZmqEndpoints.EnsureValid(SubscribeEndpoint, nameof(SubscribeEndpoint));
        if (string.Equals(PublishEndpoint, SubscribeEndpoint, StringComparison.Ordinal) && !IsWildcardPort(PublishEndpoint))
            throw new ArgumentException($"PublishEndpoint and SubscribeEndpoint must differ; both are '{PublishEndpoint}'.", nameof(SubscribeEndpoint));
        if (HandshakeTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(HandshakeTimeout), HandshakeTimeout, "HandshakeTimeout must be positive.");
        ArgumentNullException.ThrowIfNull(Socket, nameof(Socket));
        ArgumentNullException.ThrowIfNull(PublishQueue, nameof(PublishQueue));
        PublishQueue.Validate();
    }

    private static bool IsWildcardPort(string endpoint) => endpoint.EndsWith(":0", StringComparison.Ordinal) || endpoint.EndsWith(":*", StringComparison.Ordinal);
}

/// <summary>
/// Limits of a ZeroMQ participant's outgoing queue (events encoded and waiting for the socket's thread) and what
/// happens when one is reached.
/// </summary>
public sealed record ZmqPublishQueueOptions
{
    /// <summary>65,536 events, 64 MiB, publishers wait when full.</summary>
    public static ZmqPublishQueueOptions Default { get; } = new();

    /// <summary>Most events queued at once.</summary>
    public int Capacity { get; init; } = 65_536;

    /// <summary>Most bytes queued at once (encoded events plus topic frames); one event larger than this still goes out alone.</summary>
    public long MaxBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// When full: <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> (the default, like a NATS client's
    /// publish when its buffer is full) makes <see cref="ZmqEventBus.PublishAsync"/> wait for room; any drop mode
    /// discards the event being published and counts it (<see cref="Onex.Bus.DropCause.PublisherQueue"/>).
    /// </summary>
    public System.Threading.Channels.BoundedChannelFullMode FullMode { get; init; } = System.Threading.Channels.BoundedChannelFullMode.Wait;

    /// <summary>Throws when a limit is out of range.</summary>
    public void Validate()
    {
        if (Capacity < 1) throw new ArgumentOutOfRangeException(nameof(Capacity), Capacity, "Capacity must be at least 1.");
        if (MaxBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, "MaxBytes must be at least 1.");
    }
}
