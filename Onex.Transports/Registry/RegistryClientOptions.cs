using Microsoft.Extensions.Logging;
using Onex.Transports.Zmq;

namespace Onex.Transports.Registry;

/// <summary>How a <see cref="RegistryClient"/> reaches the registry, identifies itself and retries.</summary>
public sealed record RegistryClientOptions
{
    /// <summary>The defaults below.</summary>
    public static RegistryClientOptions Default { get; } = new();

    /// <summary>
    /// The registry's request (ROUTER) endpoint, or <c>nats://HOST:PORT[,...]</c> to reach the registry of
    /// <see cref="HostName"/> as a NATS service (a registry in cluster mode; PROTOCOL.md 18.2). Null: the
    /// <c>ONEX_REGISTRY_ENDPOINT</c> environment variable, else <see cref="RegistryEndpoints.DefaultRouter"/>.
    /// </summary>
    public string? Endpoint { get; init; }

    /// <summary>
    /// With a <c>nats://HOST:PORT[,...]</c> <see cref="Endpoint"/>: the host whose registry answers (its registry's
    /// <c>--host-name</c>). Null: the <c>ONEX_REGISTRY_HOST</c> environment variable, else this machine's name (the
    /// registry's default host name). Unused with a ZeroMQ endpoint.
    /// </summary>
    public string? HostName { get; init; }

    /// <summary>
    /// The registry's broadcast (PUB) endpoint. Null: the <c>ONEX_REGISTRY_PUB_ENDPOINT</c> environment variable,
    /// else <see cref="RegistryEndpoints.DefaultPub"/>.
    /// </summary>
    public string? PubEndpoint { get; init; }

    /// <summary>
    /// The registry's CURVE public key (Z85), for a registry that encrypts its endpoints: the request and broadcast
    /// sockets then encrypt and accept only that server. Null: the <c>ONEX_REGISTRY_SERVER_KEY</c> environment variable,
    /// else no encryption.
    /// </summary>
    public string? ServerKey { get; init; }

    /// <summary>
    /// The access token sent with every request (a registry with an auth file requires one). Null: the
    /// <c>ONEX_TOKEN</c> environment variable, else no token. Never logged.
    /// </summary>
    public string? Token { get; init; }

    /// <summary>
    /// The tenant every request acts in, sent as the envelope key <c>tenant</c> (PROTOCOL.md 16.3): an admin token
    /// acting in another tenant names it here; any other token may name only its own (another is
    /// <see cref="Onex.Errors.PermissionDeniedException"/>, reason <c>tenant</c>). Null: the <c>ONEX_TENANT</c>
    /// environment variable, else none (requests act in the token's tenant). A registry without an auth file ignores it.
    /// </summary>
    public string? Tenant { get; init; }

    /// <summary>The default of <see cref="WatchBufferBytes"/>: 64 MiB.</summary>
    public const long DefaultWatchBufferBytes = 64L * 1024 * 1024;

    /// <summary>
    /// How many bytes of broadcasts (their size on the wire) a watch on the PUB endpoint buffers for a consumer that
    /// reads slower than the registry changes, besides at most 65,536 broadcasts. Past it the watch drops its backlog
    /// and resyncs by snapshot (a <see cref="RegistryWatchEventKind.Resynced"/> with reason
    /// <see cref="RegistryResyncReason.Gap"/> saying so) instead of holding more memory. Default 64 MiB.
    /// </summary>
    public long WatchBufferBytes { get; init; } = DefaultWatchBufferBytes;

    /// <summary>
    /// The node id this client announces and owns leases and registrations under. Null: the id in
    /// <see cref="NodeIdFile"/> when set, else <c>machine-pid-random</c> (a new node every run).
    /// </summary>
    public string? NodeId { get; init; }

    /// <summary>
    /// A file keeping this node's id across restarts (created with a new id when missing; see
    /// <see cref="Onex.Transports.Registry.NodeIdFile"/>), used when <see cref="NodeId"/> is null. A restarted process with the same id
    /// takes back its buses and their ports (PROTOCOL.md, "A host that comes back").
    /// </summary>
    public string? NodeIdFile { get; init; }

    /// <summary>Human-readable node name. Null: the process name.</summary>
    public string? NodeName { get; init; }

    /// <summary>Free-form labels announced with the node.</summary>
    public IReadOnlyDictionary<string, string>? NodeMetadata { get; init; }

    /// <summary>
    /// Whether to announce the node on connect, heartbeat in the background and re-assert after a registry restart.
    /// Read-only tools (introspection, watching) turn this off so they leave no trace in the registry.
    /// Leasing ports or registering buses and tools announces the node on first use even when this is off.
    /// </summary>
    public bool AnnounceNode { get; init; } = true;

    /// <summary>How often the node heartbeats (and the interval it promises the registry).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long one attempt of a request waits for its reply.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Attempts per request (first try included) before <see cref="Errors.UnavailableException"/>. All attempts of
    /// one request must fit in 60 s (the registry's reply memory): <c>RequestTimeout × MaxAttempts</c> plus backoff.
    /// </summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>Backoff before the first retry; doubles per retry, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest backoff between two attempts.</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The registry heartbeat period assumed by watchers until the first registry heartbeat tells the real one;
    /// three periods without any broadcast mean "registry silent".
    /// </summary>
    public TimeSpan ExpectedRegistryHeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether disposing the client tells the registry the node departs (its leases and registrations go with it).</summary>
    public bool DepartOnDispose { get; init; } = true;

    /// <summary>ZeroMQ socket settings for the DEALER and SUB sockets.</summary>
    public ZmqSocketOptions Socket { get; init; } = ZmqSocketOptions.Default;

    /// <summary>Where the client logs; null for no logging.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>The clock for timeouts, backoff, heartbeats and renewals; null for <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }
}

/// <summary>What to ask for when leasing ports.</summary>
public sealed record LeaseRequestOptions
{
    /// <summary>The defaults below.</summary>
    public static LeaseRequestOptions Default { get; } = new();

    /// <summary>Requested TTL; the registry clamps it to its bounds. Null: the registry's default.</summary>
    public TimeSpan? Ttl { get; init; }

    /// <summary>A port wanted if it is free (the first port of the request); otherwise any port is granted.</summary>
    public int? PreferredPort { get; init; }

    /// <summary>What the port is checked free for: <c>tcp</c>, <c>udp</c> or <c>both</c> (see <see cref="Protocol.PortProtocols"/>).</summary>
    public string Protocol { get; init; } = Onex.Protocol.PortProtocols.Both;

    /// <summary>Free text recorded with the leases (e.g. a test name), shown by introspection.</summary>
    public string? Purpose { get; init; }

    /// <summary>Whether the lease set renews itself in the background at about a third of the TTL.</summary>
    public bool RenewAutomatically { get; init; } = true;

    /// <summary>
    /// Take back <see cref="PreferredPort"/>, which this node leased before (a restarted process, or a registry restart):
    /// granted without the free check when no other node's live lease holds it, and this node's own live lease on it is
    /// handed back renewed; otherwise PORT_UNAVAILABLE (<see cref="Protocol.PortRequest.Reclaim"/>). One port per request.
    /// </summary>
    public bool Reclaim { get; init; }
}
