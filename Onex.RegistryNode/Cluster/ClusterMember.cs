using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Tenants;
using Polly;
using Polly.Retry;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// This registry's membership of a cluster (docs/CLUSTER.md): a NATS connection, the replicated key-value bucket,
/// a watch of the whole bucket (every tenant) that feeds <see cref="ClusterCatalog"/> on the registry thread, a writer that mirrors
/// this host's committed changes into the bucket, the host's heartbeat key, and the judge of other hosts' heartbeats.
/// A session is one connected period: it starts with a full load of the bucket and a full re-publication of this host's
/// entries, so a registry that was cut off catches up when it reconnects. No consensus of its own: every decision that
/// two registries could race for is a compare-and-set of the bucket (JetStream's Raft decides).
/// </summary>
internal sealed partial class ClusterMember : IAsyncDisposable
{
    private const int MirrorQueueCapacity = 65_536;

    private readonly ClusterOptions _options;
    private readonly Action<Action<RegistryState>> _post;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<string> _epoch;
    private readonly Channel<MirrorItem> _mirror = Channel.CreateBounded<MirrorItem>(
        new BoundedChannelOptions(MirrorQueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, HostHeartbeat> _heartbeats = new(StringComparer.Ordinal);
    private NatsConnection? _connection;
    private INatsKVStore? _store;
    private Task? _run;
    private volatile bool _connected;
    private volatile bool _loaded;
    private volatile bool _sessionActive;
    private long _hostsRemoved;
    private long _rejoins;
    private long _watchRestarts;
    private int _resyncAsked;
    private readonly ClusterHostHeartbeat _ownBeat;
    // This host's keys its own writer is deleting, with how many deletions of each the watch has still to deliver.
    private readonly ConcurrentDictionary<string, int> _ownDeletes = new(StringComparer.Ordinal);

    /// <summary>What this registry last saw of another host's heartbeat key (times by this registry's clock).</summary>
    private sealed class HostHeartbeat
    {
        public long SeenAt;
        public long IntervalMs;
        /// <summary>
        /// The key's last revision seen (heartbeat, removal marker or deletion): what a removal compare-and-sets against.
        /// 0 until the watch delivers the key (a record made from an entry seen first).
        /// </summary>
        public ulong Revision;
        public long UnhealthySince;
        /// <summary>The host was removed (its heartbeat key deleted); kept for the deletion's revision, out of the status.</summary>
        public volatile bool Gone;
    }

    /// <summary>A change of this host's entries to write into the bucket, in commit order.</summary>
    internal abstract record MirrorItem;

    internal sealed record PutEntry(string Tenant, string Kind, string Name, byte[] Value) : MirrorItem;

    internal sealed record DeleteEntry(string Tenant, string Kind, string Name, string NodeId) : MirrorItem;

    internal sealed record Resync(List<ResyncEntry> Entries, List<TaskCompletionSource> Flushes) : MirrorItem;

    /// <summary>One entry of this host's whole state, with the claim that backs it (buses and tools).</summary>
    internal readonly record struct ResyncEntry(string Tenant, string Kind, string Name, byte[] Value, ClusterClaim? Claim);

    public ClusterMember(ClusterOptions options, Action<Action<RegistryState>> post, Func<string> epoch, TimeProvider time, ILogger logger)
    {
        _options = options;
        _post = post;
        _epoch = epoch;
        _time = time;
        _logger = logger;
        Catalog = new ClusterCatalog();
        _ownBeat = new ClusterHostHeartbeat(options.HostName, options.RemovalGrace);
        Claims = new ClusterClaims(this);
        Inbox = new ClusterInbox(post, logger);
    }

    /// <summary>The other hosts' entries (registry thread only).</summary>
    public ClusterCatalog Catalog { get; }

    /// <summary>What the watch hands the registry thread, applied there in bounded batches (one wake-up and one commit each).</summary>
    public ClusterInbox Inbox { get; }

    /// <summary>The options.</summary>
    public ClusterOptions Options => _options;

    /// <summary>This registry's host name.</summary>
    public string HostName => _options.HostName;

    /// <summary>True while connected and the catalogue is loaded: the cluster view is current.</summary>
    public bool Current => _connected && _loaded;

    /// <summary>How many stale hosts this registry removed from the bucket (it won the compare-and-set).</summary>
    public long HostsRemoved => Interlocked.Read(ref _hostsRemoved);

    /// <summary>How often this host rejoined after another registry removed it (judged dead while alive, or cut off past the grace period).</summary>
    public long Rejoins => Interlocked.Read(ref _rejoins);

    /// <summary>How often the watchdog re-created a watch of the bucket that had stopped delivering (<see cref="ClusterWatchdog"/>).</summary>
    public long WatchRestarts => Interlocked.Read(ref _watchRestarts);

    /// <summary>The registry holding this host's removal marker while another registry removes it; null otherwise.</summary>
    public string? RemovedBy => _ownBeat.RemovedBy;

    private Func<byte[], Task<byte[]>>? _natsDispatch;
    private IReadOnlyDictionary<string, string>? _natsMetadata;
    private RegistryNatsEndpoint? _natsEndpoint;

    /// <summary>
    /// Serves the request protocol over NATS too (PROTOCOL.md 18.2) once connected, with <paramref name="dispatch"/>
    /// answering each request frame, and <paramref name="metadata"/> in the service's info. Call before <see cref="Start"/>.
    /// </summary>
    public void ServeRequests(Func<byte[], Task<byte[]>> dispatch, IReadOnlyDictionary<string, string> metadata)
    {
        _natsDispatch = dispatch;
        _natsMetadata = metadata;
    }

    /// <summary>The NATS subject requests are served on, once the service runs; null before.</summary>
    public string? RequestSubject => Volatile.Read(ref _natsEndpoint)?.Subject;

    /// <summary>Starts connecting and serving in the background; returns at once (a registry serves its host while NATS is away).</summary>
    public void Start() => _run = Task.Run(() => RunAsync(_stop.Token));

    /// <summary>The cluster as this registry sees it (for introspection). Registry thread.</summary>
    public ClusterStatus Status()
    {
        var now = NowMs();
        var hosts = _heartbeats.Where(h => !h.Value.Gone).Select(h => h.Key).Union(Catalog.Hosts).Where(h => h != HostName).Order(StringComparer.Ordinal).Select(host => new ClusterHostStatus
        {
            Host = host,
            Health = Catalog.IsUnhealthy(host) ? Health.Unhealthy : Health.Healthy,
            HeartbeatAgeMs = _heartbeats.TryGetValue(host, out var beat) && !beat.Gone ? Math.Max(0, now - Volatile.Read(ref beat.SeenAt)) : 0,
        }).ToList();
        return new ClusterStatus { Host = HostName, Connected = _connected, Stale = !Current, Hosts = hosts };
    }

    /// <summary>
    /// A committed change of this host's state (registry thread, after the commit): queued for the bucket. While no
    /// session runs, or when the queue is full, nothing is queued: the next session re-publishes everything anyway.
    /// </summary>
    public void Mirror(RegistryChange change)
    {
        var entity = change.NewValue ?? change.OldValue;
        if (entity is null) return;
        if (change.NewValue is null) RevealHidden(entity);
        if (!_sessionActive) return;
        MirrorItem? item = (entity.Node, entity.Bus, entity.Tool) switch
        {
            ({ } node, _, _) when Own(node.RegistryHost) => change.NewValue?.Node is { } n
                ? new PutEntry(TenantNames.Of(n.Tenant), ClusterKinds.Node, n.NodeId, RegistryCodec.SerializeBody(n with { RegistryHost = HostName }))
                : new DeleteEntry(TenantNames.Of(node.Tenant), ClusterKinds.Node, node.NodeId, node.NodeId),
            (_, { } bus, _) when Own(bus.RegistryHost) => change.NewValue?.Bus is { } b
                ? new PutEntry(TenantNames.Of(b.Tenant), ClusterKinds.Bus, b.Name, RegistryCodec.SerializeBody(b with { RegistryHost = HostName }))
                : new DeleteEntry(TenantNames.Of(bus.Tenant), ClusterKinds.Bus, bus.Name, bus.NodeId),
            (_, _, { } tool) when Own(tool.RegistryHost) => change.NewValue?.Tool is { } t
                ? new PutEntry(TenantNames.Of(t.Tenant), ClusterKinds.Tool, Tools.ToolCatalog.KeyOf(t), RegistryCodec.SerializeBody(t with { RegistryHost = HostName }))
                : new DeleteEntry(TenantNames.Of(tool.Tenant), ClusterKinds.Tool, Tools.ToolCatalog.KeyOf(tool), tool.NodeId),
            _ => null,
        };
        if (item is not null && !_mirror.Writer.TryWrite(item)) RequestResync();
    }

    private bool Own(string? host) => host is null || host == HostName;

    /// <summary>
    /// A local entry went away (registry thread, after its commit): other hosts' entries of its id that it hid are shown
    /// again in a later wake-up (<see cref="ClusterCatalog.Reveal"/>), so watchers told of the removal hold them again.
    /// </summary>
    private void RevealHidden(RegistryEntity removed)
    {
        var (kind, tenant, id) = removed switch
        {
            { Node: { } node } when Own(node.RegistryHost) => (ClusterKinds.Node, TenantNames.Of(node.Tenant), node.NodeId),
            { Bus: { } bus } when Own(bus.RegistryHost) => (ClusterKinds.Bus, TenantNames.Of(bus.Tenant), bus.Name),
            { Tool: { } tool } when Own(tool.RegistryHost) => (ClusterKinds.Tool, TenantNames.Of(tool.Tenant), Tools.ToolCatalog.KeyOf(tool)),
            _ => (null, null, null),
        };
        if (kind is null || !Catalog.Holds(kind, tenant!, id!)) return;
        Inbox.Post(state => Catalog.Reveal(state, kind, tenant!, id!));
    }

    /// <summary>The claims under way and the registrations parked on them (registry thread).</summary>
    public ClusterClaims Claims { get; }

    /// <summary>
    /// Claims a bus name or a tool version of <paramref name="tenant"/> for <paramref name="nodeId"/> across the cluster, off the registry thread, and
    /// posts <paramref name="done"/> to the registry thread with the outcome (at most <see cref="ClusterOptions.RequestTimeout"/>
    /// later). Create-if-absent decides between hosts; a claim of this host that no local entry backs is taken over at its
    /// revision. The outcome is the revision of a claim created now (to release it if the local registration then fails),
    /// or null when it was already ours; or NOT_OWNER / CONTRACT_CONFLICT when another host owns it, UNAVAILABLE (reason
    /// <c>cluster</c>) when the cluster could not be asked.
    /// </summary>
    internal void StartClaim(string tenant, string kind, string name, string nodeId, string? fingerprint, Action<ulong?, OnexException?> done)
    {
        _ = Task.Run(async () =>
        {
            ulong? revision = null;
            OnexException? error = null;
            try
            {
                // Within the bound, a session failing over (a nats-server died, the bucket elects a leader) is waited for.
                revision = await BoundedAsync(ct => ClaimRetry.ExecuteAsync(async token =>
                {
                    await WhenCurrentAsync(token).ConfigureAwait(false);
                    var store = Volatile.Read(ref _store) ?? throw new NatsException("The cluster session ended.");
                    return await ClaimAsync(store, tenant, kind, name, nodeId, fingerprint, token).ConfigureAwait(false);
                }, ct).AsTask()).ConfigureAwait(false);
            }
            catch (OnexException ex)
            {
                error = ex;
            }
            catch (Exception ex)
            {
                error = Unreachable($"The cluster could not decide the claim of {kind} '{name}' ({ex.Message}).");
            }
            _post(_ => done(revision, error));
        });
    }

    private async Task<ulong?> ClaimAsync(INatsKVStore store, string tenant, string kind, string name, string nodeId, string? fingerprint, CancellationToken ct)
    {
        var key = ClusterKeys.Claim(tenant, kind, name);
        var value = RegistryCodec.SerializeBody(new ClusterClaim { Host = HostName, NodeId = nodeId, Fingerprint = fingerprint });
        for (var attempt = 0; attempt < 3; attempt++)
        {
            // Create-if-absent first: a name nobody holds (the usual registration) costs one replicated write, not a
            // read and a write. Only when it exists is it read and judged.
            var created = await store.TryCreateAsync(key, value, cancellationToken: ct).ConfigureAwait(false);
            if (created.Success) return created.Value;
            var current = await store.TryGetEntryAsync<byte[]>(key, cancellationToken: ct).ConfigureAwait(false);
            if (!current.Success || current.Value.Operation != NatsKVOperation.Put || current.Value.Value is not { } held)
                continue; // deleted between our create and our read: create again
            var claim = RegistryCodec.DeserializeBody<ClusterClaim>(held);
            if (claim.Host == HostName && claim.NodeId == nodeId && claim.Fingerprint == fingerprint) return null;
            if (claim.Host != HostName)
            {
                if (kind == ClusterKinds.Tool && claim.Fingerprint != fingerprint)
                    throw Reject.Contract(ErrorCodes.ContractConflict,
                        $"Tool {name} is already registered on host '{claim.Host}' with a different contract; publish a new version instead.",
                        ("tool", name), ("fingerprint", claim.Fingerprint ?? ""), ("presentedFingerprint", fingerprint ?? ""), ("owner", claim.NodeId), ("host", claim.Host));
                throw Reject.NotOwner($"{(kind == ClusterKinds.Tool ? "Tool" : "Bus")} '{name}' is registered by node '{claim.NodeId}' on host '{claim.Host}'.",
                    (kind == ClusterKinds.Tool ? "tool" : "name", name), ("nodeId", nodeId), ("owner", claim.NodeId), ("host", claim.Host));
            }
            // This host's own claim that no local entry backs any more (the local registry checked first, and claims
            // of one name run one at a time): take it over at its revision.
            var updated = await store.TryUpdateAsync(key, value, current.Value.Revision, cancellationToken: ct).ConfigureAwait(false);
            if (updated.Success) return updated.Value;
        }
        throw Unreachable($"The claim of {kind} '{name}' kept changing under this registry; retry.");
    }

    /// <summary>Releases a claim created for a registration that then failed or was not made (best effort, off the registry thread).</summary>
    public void Unclaim(string tenant, string kind, string name, ulong revision)
    {
        var store = Volatile.Read(ref _store);
        if (store is null) return;
        _ = Task.Run(async () =>
        {
            try
            {
                await BoundedAsync(async ct =>
                {
                    await store.TryDeleteAsync(ClusterKeys.Claim(tenant, kind, name), new NatsKVDeleteOpts { Revision = revision }, ct).ConfigureAwait(false);
                    return 0;
                }).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Left behind, the claim is this host's: the next registration here takes it over at its revision.
            }
        });
    }

    // A bucket without a leader answers "no responders" or times out: asked again with back-off, within the claim's bound.
    private static readonly ResiliencePipeline ClaimRetry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
    {
        ShouldHandle = new PredicateBuilder().Handle<NatsException>().Handle<TimeoutException>(),
        MaxRetryAttempts = int.MaxValue,
        BackoffType = DelayBackoffType.Exponential,
        UseJitter = true,
        Delay = TimeSpan.FromMilliseconds(50),
        MaxDelay = TimeSpan.FromMilliseconds(500),
    }).Build();

    /// <summary>Runs a bucket operation bounded by <see cref="ClusterOptions.RequestTimeout"/> (real time) and the member's life.</summary>
    private async Task<T> BoundedAsync<T>(Func<CancellationToken, Task<T>> work)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        limit.CancelAfter(_options.RequestTimeout);
        try
        {
            return await work(limit.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or NatsException or TimeoutException)
        {
            throw Unreachable($"The cluster did not answer within {_options.RequestTimeout.TotalMilliseconds:0} ms ({ex.Message}).");
        }
    }

    internal static UnavailableException Unreachable(string message) =>
        new(message + " Retry later with the same ids.", new Dictionary<string, string> { ["reason"] = "cluster" });

    /// <summary>Asks the registry thread for a full re-publication of this host's entries.</summary>
    private void RequestResync()
    {
        // Coalesced: requests made before the registry thread builds the re-publication are covered by it.
        if (Interlocked.Exchange(ref _resyncAsked, 1) == 1) return;
        _post(state =>
        {
            Volatile.Write(ref _resyncAsked, 0);
            EnqueueResync(state);
        });
    }

    /// <summary>Registry thread: queues this host's whole state for the bucket (start of a session, or after anything lost).</summary>
    public void EnqueueResync(RegistryState state)
    {
        // While another registry removes this host, what is written may be deleted: the host's rejoining re-publishes.
        if (!_sessionActive || _ownBeat.RemovedBy is not null) return;
        var entries = new List<ResyncEntry>();
        foreach (var node in state.Nodes.Nodes)
            entries.Add(new(TenantNames.Of(node.Tenant), ClusterKinds.Node, node.NodeId, RegistryCodec.SerializeBody(node with { RegistryHost = HostName }), null));
        foreach (var bus in state.Buses.Buses)
            entries.Add(new(TenantNames.Of(bus.Tenant), ClusterKinds.Bus, bus.Name, RegistryCodec.SerializeBody(bus with { RegistryHost = HostName }),
                new ClusterClaim { Host = HostName, NodeId = bus.NodeId }));
        foreach (var tool in state.Tools.Tools)
            entries.Add(new(TenantNames.Of(tool.Tenant), ClusterKinds.Tool, Tools.ToolCatalog.KeyOf(tool), RegistryCodec.SerializeBody(tool with { RegistryHost = HostName }),
                new ClusterClaim { Host = HostName, NodeId = tool.NodeId, Fingerprint = tool.Fingerprint }));
        // A full queue drops it; the writer then finds the queue was full and asks again.
        var flushes = TakePendingFlushes();
        if (_mirror.Writer.TryWrite(new Resync(entries, flushes)))
        {
            _mirrorOpen = true;
            return;
        }
        _resyncLost = true;
        lock (_signals) _pendingFlushes.AddRange(flushes);
    }

    private volatile bool _resyncLost;

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            try
            {
                await _run.WaitAsync(TimeSpan.FromSeconds(5), TimeProvider.System).ConfigureAwait(false); // a bound on stopping: real time
            }
            catch (TimeoutException)
            {
                // Disposing the connection below ends whatever still waits on it.
            }
        }
        if (_natsEndpoint is not null) await _natsEndpoint.DisposeAsync().ConfigureAwait(false);
        if (_connection is not null) await _connection.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();
}
