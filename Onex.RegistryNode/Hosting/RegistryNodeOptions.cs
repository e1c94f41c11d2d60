using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Nodes;
using Onex.RegistryNode.Storage;

namespace Onex.RegistryNode.Hosting;

/// <summary>
/// Everything a registry node is configured with. Immutable; change with <c>with</c>:
/// <c>RegistryNodeOptions.Default with { Endpoint = "tcp://127.0.0.1:0" }</c>.
/// </summary>
public sealed record RegistryNodeOptions
{
    /// <summary>The default ROUTER endpoint (requests).</summary>
    public const string DefaultEndpoint = "tcp://127.0.0.1:5750";

    /// <summary>The default PUB endpoint (change broadcasts).</summary>
    public const string DefaultPubEndpoint = "tcp://127.0.0.1:5751";

    /// <summary>The HTTP endpoint of the node program (<c>--http</c>): metrics, health, JSON and SSE views, dashboard.</summary>
    public const string DefaultHttpEndpoint = "http://127.0.0.1:5752";

    /// <summary>The defaults below.</summary>
    public static RegistryNodeOptions Default { get; } = new();

    /// <summary>Where the ROUTER socket binds; <c>tcp://127.0.0.1:0</c> lets the OS choose a port (see <see cref="RegistryNodeHost.RouterEndpoint"/>).</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>Where the PUB socket binds; port 0 lets the OS choose (see <see cref="RegistryNodeHost.PubEndpoint"/>).</summary>
    public string PubEndpoint { get; init; } = DefaultPubEndpoint;

    /// <summary>
    /// Where the HTTP endpoint listens (<c>http://host:port</c>; port 0 lets the OS choose), or null for none. The node
    /// program defaults to <see cref="DefaultHttpEndpoint"/>; a node started from code has none unless it asks.
    /// </summary>
    public string? HttpEndpoint { get; init; }

    /// <summary>The node id written as <c>sourceNodeId</c> of every broadcast event.</summary>
    public string NodeId { get; init; } = "onex-registry";

    /// <summary>Port leasing.</summary>
    public LeaseOptions Leases { get; init; } = LeaseOptions.Default;

    /// <summary>Node health.</summary>
    public NodeOptions Nodes { get; init; } = NodeOptions.Default;

    /// <summary>
    /// Where state is kept: SQLite in the per-user data directory by default (survives restarts);
    /// <see cref="RegistryStoreOptions.InMemory"/> for a registry that forgets everything when it stops.
    /// </summary>
    public RegistryStoreOptions Store { get; init; } = RegistryStoreOptions.Default;

    /// <summary>
    /// When the registry's loop finds it has not run for longer than this (the process was stopped, starved or
    /// stalled), it moves every lease expiry and node deadline back by the time lost before judging anything.
    /// </summary>
    public TimeSpan PauseThreshold { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often a <c>registry.heartbeat</c> is broadcast.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How many replies are kept for answering retries (oldest dropped first).</summary>
    public int ReplyCacheCapacity { get; init; } = 100_000;

    /// <summary>How long a reply is kept for answering retries (PROTOCOL.md promises clients at least 60 s).</summary>
    public TimeSpan ReplyCacheRetention { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Most bytes the kept replies (and the request bodies kept to tell retries from id reuse) may take; the oldest
    /// are dropped first. Bounds memory when big replies (snapshots) are many.
    /// </summary>
    public long ReplyCacheMaxBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// The ROUTER socket's receive limit (ZeroMQ <c>MaxMsgSize</c>, checked per frame): default 1 MiB + 64 KiB. A
    /// frame larger than this makes ZeroMQ drop the sender's connection without a reply, so a huge frame cannot exhaust
    /// memory. Frames between <see cref="Onex.Protocol.RegistryCodec.MaxFrameBytes"/> (1 MiB, the largest request) and
    /// this limit get a TOO_LARGE reply. It also bounds the requests one connection can queue: 128 frames of at most this
    /// size (PROTOCOL.md section 14), so raising it raises that bound.
    /// </summary>
    public long MaxReceiveBytes { get; init; } = Onex.Protocol.RegistryCodec.MaxFrameBytes + 64 * 1024;

    /// <summary>
    /// Most bytes the parsed tool schemas kept for validation may take (estimated per schema as the bytes its parse
    /// allocated); the least recently used are dropped and parsed again when next used (PROTOCOL.md section 12).
    /// </summary>
    public long ParsedSchemaMaxBytes { get; init; } = Onex.RegistryNode.Tools.ToolCatalog.DefaultParsedSchemaMaxBytes;

    /// <summary>
    /// A file holding the node's CurveZMQ key pair (written by <c>onex auth keygen</c>; format in
    /// <see cref="Onex.Transports.Security.CurveKeyFile"/>): when set, the ROUTER and PUB endpoints encrypt with CURVE and
    /// clients need the public key (<c>ONEX_REGISTRY_SERVER_KEY</c>). Loaded when the node starts; <c>--curve-key-file</c>,
    /// env <c>ONEX_REGISTRY_CURVE_KEY_FILE</c>, key <c>Registry:CurveKeyFile</c>. Null (the default): no encryption.
    /// </summary>
    public string? CurveKeyFile { get; init; }

    /// <summary>The CurveZMQ key pair itself, for a node started from code (instead of <see cref="CurveKeyFile"/>; not both).</summary>
    public Onex.Transports.Security.CurveKeyPair? CurveKeys { get; init; }

    /// <summary>
    /// The auth file (<c>contracts/files/AuthFile.schema.json</c>): with one, every request must carry a token it lists
    /// (default-deny, tenants, quotas; docs/SECURITY.md); null: the registry runs open, as without access control.
    /// </summary>
    public string? AuthFile { get; init; }

    /// <summary>
    /// Cluster mode (docs/CLUSTER.md): share this host's nodes, buses and tools with the registries of other hosts
    /// through a NATS JetStream key-value bucket, and show theirs. Null (the default): a registry of its own host only.
    /// </summary>
    public Onex.RegistryNode.Cluster.ClusterOptions? Cluster { get; init; }

    /// <summary>Bounds of the change streams opened with Watch (PROTOCOL.md 16.7); tests make them small.</summary>
    internal Onex.RegistryNode.Watches.WatchOptions Watches { get; init; } = Onex.RegistryNode.Watches.WatchOptions.Default;
}
