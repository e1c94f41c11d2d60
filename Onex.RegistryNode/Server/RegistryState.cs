using MessagePack;
using Microsoft.Extensions.Logging;
using Onex.Protocol;
using Onex.RegistryNode.Buses;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Nodes;
using Onex.RegistryNode.Storage;
using Onex.RegistryNode.Tenants;
using Onex.RegistryNode.Tools;

namespace Onex.RegistryNode.Server;

/// <summary>
/// The registry's whole state and the operations on it: leases, nodes, buses, tools, the change journal,
/// and the timers that drive expiry, health checks and heartbeats. Everything runs on one thread (the
/// poller's in the node); timers come from the injected <see cref="TimeProvider"/> and hand their work to
/// <c>post</c>, which queues it onto that thread - or, in tests, runs it inline.
/// </summary>
internal sealed class RegistryState : IDisposable, IStoredRows
{
    private static readonly HashSet<string> Sections =
        [IntrospectionSections.Leases, IntrospectionSections.Nodes, IntrospectionSections.Buses, IntrospectionSections.Tools, IntrospectionSections.Stats];
    private static readonly HashSet<string> Kinds = [BusKinds.Memory, BusKinds.Zmq, BusKinds.Ipc, BusKinds.JetStream];

    private readonly RegistryNodeOptions _options;
    private readonly TimeProvider _time;
    private readonly Action<Action> _post;
    private readonly ITimer _housekeepingTimer;
    private readonly ITimer _heartbeatTimer;
    private long _housekeepingAt = long.MaxValue;
    private bool _disposed;

    /// <param name="options">Everything the registry is configured with.</param>
    /// <param name="poolPorts">The ports to lease (the ephemeral range already removed).</param>
    /// <param name="availability">The free check.</param>
    /// <param name="sink">Where changes and heartbeats go.</param>
    /// <param name="time">The clock and timers.</param>
    /// <param name="loggers">Logs.</param>
    /// <param name="post">Queues timer work onto the registry thread (or runs it inline, in tests).</param>
    /// <param name="epoch">This instance's epoch; a new one when null.</param>
    /// <param name="verifyPortsInBackground">False: the port verifier checks only when a test says so (<see cref="PortVerifier.RunPending"/>).</param>
    /// <param name="durable">False for a memory store: changes are not tracked for storing.</param>
    /// <param name="stored">
    /// What a durable store held: the registry continues from it (same epoch and sequence, unless it is a backup,
    /// which starts a new epoch). Leases whose time ran out meanwhile expire at the first housekeeping run.
    /// </param>
    public RegistryState(
        RegistryNodeOptions options, IReadOnlyList<int> poolPorts, IPortAvailability availability, IChangeSink sink,
        TimeProvider time, ILoggerFactory loggers, Action<Action> post, string? epoch = null, bool verifyPortsInBackground = true,
        StoredState? stored = null, bool durable = true)
    {
        Changes = new StateChanges(durable);
        _options = options;
        _time = time;
        _post = post;
        StartedAt = time.GetUtcNow().ToUnixTimeMilliseconds();
        stored ??= StoredState.Empty;
        var fromBackup = stored.Find(StoredKind.Meta, StoredMeta.BackupKey) is not null;
        var (storedEpoch, storedSequence) = stored.Find(StoredKind.Meta, StoredMeta.JournalKey) is { } journal && !fromBackup
            ? ReadJournal(journal) : (null, 0L);
        Journal = new ChangeJournal(epoch ?? storedEpoch ?? ChangeJournal.NewEpoch(time), sink, time, loggers.CreateLogger<ChangeJournal>(), Changes, storedSequence);
        Leases = new PortLeaseManager(options.Leases, new PortPool(poolPorts), availability, Journal, time,
            loggers.CreateLogger<PortLeaseManager>(), firstFencingToken: StartedAt * 1000, verifyPortsInBackground, Changes);
        Buses = new BusDirectory(Journal, time, Changes);
        Tools = new ToolCatalog(Journal, time, options.ParsedSchemaMaxBytes, changes: Changes);
        Nodes = new NodeDirectory(options.Nodes, Journal, time, loggers.CreateLogger<NodeDirectory>(), Buses, Tools, Leases, Changes);
        Stats = new RegistryStatsCounter();
        Leases.Restore(stored, newEpoch: fromBackup);
        Buses.Restore(stored);
        Tools.Restore(stored);
        Nodes.Restore(stored, StartedAt);
        Restored = stored.Rows.Count > 0;
        if (fromBackup)
        {
            // The first commit drops the backup's mark and writes the new epoch and every counter.
            Changes.Mark(StoredKind.Meta, StoredMeta.BackupKey);
            Changes.Mark(StoredKind.Meta, StoredMeta.JournalKey);
            Changes.Mark(StoredKind.Meta, StoredMeta.LeasesKey);
        }

        _housekeepingTimer = time.CreateTimer(_ => _post(RunHousekeeping), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _heartbeatTimer = time.CreateTimer(_ => _post(() => SendHeartbeat()), null, options.HeartbeatInterval, options.HeartbeatInterval);
    }

    public long StartedAt { get; }

    /// <summary>The registry's clock.</summary>
    public TimeProvider Time => _time;

    /// <summary>Rows changed since the last commit.</summary>
    public StateChanges Changes { get; }

    /// <summary>Set while the store refuses writes: the reaper and the health check wait (nothing could be stored).</summary>
    public bool Suspended { get; set; }

    /// <summary>True when the state was loaded from a store that held some.</summary>
    public bool Restored { get; }

    /// <summary>Commits the changed rows (their values written straight into the store's buffer) and <paramref name="replies"/>; forgets the marks.</summary>
    public void CommitTo(IRegistryStore store, IReadOnlyList<StoredReply> replies, long oldestReplyKept)
    {
        try
        {
            store.Commit(Changes.Marked, this, replies, oldestReplyKept);
        }
        finally
        {
            Changes.Clear();
        }
    }

    bool IStoredRows.TryWrite(StateKey key, ref MessagePackWriter writer)
    {
        switch (key.Kind)
        {
            case StoredKind.Lease or StoredKind.ExpiredLease or StoredKind.Port:
            case StoredKind.Meta when key.Key == StoredMeta.LeasesKey:
                return Leases.TryWrite(key, ref writer);
            default:
                if (Read(key) is not { } row) return false;
                writer.WriteRaw(row);
                return true;
        }
    }

    /// <summary>The current value of a stored row as an array (null: gone); <see cref="IStoredRows.TryWrite"/> writes the same bytes.</summary>
    internal byte[]? Read(StateKey key) => key.Kind switch
    {
        StoredKind.Meta when key.Key == StoredMeta.JournalKey => Journal.Stored,
        StoredKind.Meta when key.Key == StoredMeta.BackupKey => null,
        StoredKind.Lease or StoredKind.ExpiredLease or StoredKind.Port or StoredKind.Meta => Leases.Read(key),
        StoredKind.Node => Nodes.Read(key.Key),
        StoredKind.Bus => Buses.Read(key.Key),
        StoredKind.Tool => Tools.Read(key.Key),
        _ => null,
    };

    private static (string? Epoch, long Sequence) ReadJournal(byte[] stored)
    {
        var (epoch, values) = StoredMeta.ReadTextAndLongs(stored);
        return (epoch, values[0]);
    }

    /// <summary>
    /// The registry thread did not run for <paramref name="pauseMs"/> (the process was stopped or starved, or the
    /// store refused writes): lease expiries and node deadlines move back by that much before anything is judged.
    /// </summary>
    public void ExtendDeadlines(long pauseMs)
    {
        Leases.ExtendAll(pauseMs);
        Nodes.ExtendAll(pauseMs);
    }

    /// <summary>This registry's membership of a cluster, or null outside cluster mode (docs/CLUSTER.md).</summary>
    public ClusterMember? Cluster { get; set; }

    public ChangeJournal Journal { get; }
    public PortLeaseManager Leases { get; }
    public NodeDirectory Nodes { get; }
    public BusDirectory Buses { get; }
    public ToolCatalog Tools { get; }
    public RegistryStatsCounter Stats { get; }
    public string Epoch => Journal.Epoch;

    /// <summary>
    /// The tenant the request being handled acts in: names in it are looked up and created there (PROTOCOL.md 16.3).
    /// <see cref="TenantNames.Default"/> unless access control runs the request <see cref="InTenant"/> another.
    /// </summary>
    public string Tenant { get; private set; } = TenantNames.Default;

    /// <summary>Runs <paramref name="run"/> (a request's handler) acting in <paramref name="tenant"/>.</summary>
    public T InTenant<T>(string tenant, Func<T> run)
    {
        var outer = Tenant;
        Tenant = tenant;
        try
        {
            return run();
        }
        finally
        {
            Tenant = outer;
        }
    }

    public PortGrant Handle(PortRequest request) => new() { Leases = Leases.Grant(request, Tenant) };
    public PortLease Handle(LeaseRenewal request) => Leases.Renew(request);
    public Ack Handle(LeaseRelease request) { Leases.Release(request); return new Ack(); }
    public PortLease Handle(PortConflict request) => Leases.Replace(request);
    public NodeRecord Handle(NodeAnnouncement request)
    {
        if (Cluster is not { } cluster) return Nodes.Announce(request, Tenant);
        return Nodes.Announce(request, Tenant) with { RegistryHost = cluster.HostName };
    }

    public Ack Handle(NodeHeartbeat request) { Nodes.Heartbeat(request, Tenant); return new Ack(); }
    public Ack Handle(NodeDeparture request) { Nodes.Depart(request, Tenant); return new Ack(); }

    public EventBusRecord Handle(EventBusRegistration request)
    {
        BusDirectory.Validate(request);
        var owner = Nodes.Require(request.NodeId, Tenant);
        if (Cluster is not { } cluster) return Buses.Register(request, owner);
        if (Buses.Contains(request.Name, Tenant)) return Buses.Register(request, owner) with { RegistryHost = cluster.HostName };
        // A bus name is one bus of its tenant across the cluster: another host's bus of this name is NOT_OWNER, decided by the bucket.
        if (cluster.Catalog.FindBus(request.Name, Tenant) is { } remote)
            throw Reject.NotOwner($"Bus '{request.Name}' is registered by node '{remote.NodeId}' on host '{remote.RegistryHost}'.",
                ("name", request.Name), ("nodeId", request.NodeId), ("owner", remote.NodeId), ("host", remote.RegistryHost ?? ""));
        var claimed = cluster.Claims.Require(Tenant, ClusterKinds.Bus, request.Name, request.NodeId, null);
        try
        {
            return Buses.Register(request, owner) with { RegistryHost = cluster.HostName };
        }
        catch when (claimed is { } revision)
        {
            cluster.Unclaim(Tenant, ClusterKinds.Bus, request.Name, revision);
            throw;
        }
    }

    public Ack Handle(EventBusDeregistration request) { Buses.Deregister(request, Tenant); return new Ack(); }

    public ToolContractRecord Handle(ToolContractRegistration request)
    {
        ToolCatalog.Validate(request);
        var owner = Nodes.Require(request.NodeId, Tenant);
        var key = request.Name + "@" + request.Version;
        if (Cluster is not { } cluster) return Tools.Register(request, owner);
        if (Tools.Contains(key, Tenant)) return Tools.Register(request, owner) with { RegistryHost = cluster.HostName };
        // A tool name and version is one contract of its tenant across the cluster, decided by the bucket's compare-and-set.
        var fingerprint = ContractFingerprint.Compute(request.Name, request.Version, request.InputSchema, request.OutputSchema, request.ErrorCodes);
        if (cluster.Catalog.FindTool(request.Name, request.Version, Tenant) is { } remote)
        {
            if (remote.Fingerprint != fingerprint)
                throw Reject.Contract(Onex.Errors.ErrorCodes.ContractConflict,
                    $"Tool {key} is already registered on host '{remote.RegistryHost}' with a different contract; publish a new version instead.",
                    ("tool", key), ("fingerprint", remote.Fingerprint), ("presentedFingerprint", fingerprint), ("owner", remote.NodeId), ("host", remote.RegistryHost ?? ""));
            throw Reject.NotOwner($"Tool {key} is registered by node '{remote.NodeId}' on host '{remote.RegistryHost}'.",
                ("tool", key), ("nodeId", request.NodeId), ("owner", remote.NodeId), ("host", remote.RegistryHost ?? ""));
        }
        var claimed = cluster.Claims.Require(Tenant, ClusterKinds.Tool, key, request.NodeId, fingerprint);
        try
        {
            return Tools.Register(request, owner) with { RegistryHost = cluster.HostName };
        }
        catch when (claimed is { } revision)
        {
            cluster.Unclaim(Tenant, ClusterKinds.Tool, key, revision);
            throw;
        }
    }

    public ValidationResult Handle(ValidatePayload request)
    {
        try
        {
            return Tools.Validate(request, Tenant);
        }
        catch (Onex.Errors.NotFoundException) when (Cluster is { } cluster && RemoteToolFor(cluster, request) is { } remote)
        {
            // Not here but on another host of the cluster: validated against that host's contract as published.
            var issues = cluster.Catalog.Check(remote, request.Direction, request.Payload);
            return new ValidationResult
            {
                Valid = issues.Count == 0, ToolName = remote.Name, Version = remote.Version, Fingerprint = remote.Fingerprint, Errors = issues,
            };
        }
    }

    /// <summary>The remote tool a ValidatePayload that found nothing here names: that version, or the highest of all hosts.</summary>
    private ToolContractRecord? RemoteToolFor(ClusterMember cluster, ValidatePayload request)
    {
        if (request.Version is not null) return cluster.Catalog.FindTool(request.ToolName, request.Version, Tenant);
        if (Tools.Tools.Any(t => t.Name == request.ToolName && TenantNames.Of(t.Tenant) == Tenant)) return null; // a local version exists: the local answer stands
        return cluster.Catalog.ToolVersionsOf(request.ToolName, Tenant)
            .Select(t => (Tool: t, Ok: ToolVersions.TryParse(t.Version, out var v), Version: v))
            .Where(x => x.Ok).MaxBy(x => x.Version, ToolVersions.Precedence).Tool;
    }

    public IntrospectionResponse Handle(IntrospectionRequest request)
    {
        var include = request.Include is { Count: > 0 } asked ? asked : Sections.ToList();
        foreach (var section in include)
            if (section is null || !Sections.Contains(section))
                throw Reject.InvalidArgument("include", $"Unknown section '{section}'; known: {string.Join(", ", Sections)}.",
                    ("value", section ?? ""), ("allowed", string.Join(",", Sections)));
        if (request.Kind is not null && !Kinds.Contains(request.Kind))
            throw Reject.InvalidArgument("kind", $"Field 'kind' must be one of {string.Join(", ", Kinds)}, not '{request.Kind}'.",
                ("value", request.Kind), ("allowed", string.Join(",", Kinds)));
        Reject.IfTooLong(request.NodeId, "nodeId", Reject.MaxNameLength);
        Reject.IfTooLong(request.NamePrefix, "namePrefix", Reject.MaxNameLength);
        if (request.Scope is not (null or IntrospectionScopes.Local or IntrospectionScopes.Cluster))
            throw Reject.InvalidArgument("scope", $"Field 'scope' must be local or cluster, not '{request.Scope}'.",
                ("value", request.Scope), ("allowed", "local,cluster"));
        var remote = request.Scope == IntrospectionScopes.Local ? null : Cluster;

        var nodeId = request.NodeId;
        var prefix = request.NamePrefix;
        bool Owned(string owner) => nodeId is null || owner == nodeId;
        bool Named(string? name) => prefix is null || (name is not null && name.StartsWith(prefix, StringComparison.Ordinal));

        return new IntrospectionResponse
        {
            Epoch = Epoch,
            Sequence = Journal.Sequence,
            // Filtered before anything is copied or sorted: a narrow question about a large catalogue costs what it returns.
            Leases = include.Contains(IntrospectionSections.Leases)
                ? SortedLeases(l => Owned(l.NodeId) && Named(l.Purpose)).ToList() : null,
            Nodes = include.Contains(IntrospectionSections.Nodes)
                ? SortedNodes(remote, n => Owned(n.NodeId) && Named(n.NodeId)).ToList() : null,
            Buses = include.Contains(IntrospectionSections.Buses)
                ? SortedBuses(remote, b => Owned(b.NodeId) && Named(b.Name) && (request.Kind is null || b.Kind == request.Kind)).ToList() : null,
            Tools = include.Contains(IntrospectionSections.Tools)
                ? SortedTools(remote, t => Owned(t.NodeId) && Named(t.Name)).ToList() : null,
            Stats = include.Contains(IntrospectionSections.Stats) ? CurrentStats() : null,
            Cluster = Cluster?.Status(),
        };
    }

    public RegistrySnapshot Handle(SnapshotRequest request) => Snapshot();

    /// <summary>All state and the sequence it reflects; consistent because one thread owns the state.</summary>
    public RegistrySnapshot Snapshot() => new()
    {
        Epoch = Epoch,
        Sequence = Journal.Sequence,
        TakenAt = NowMs(),
        Leases = SortedLeases().ToList(),
        Nodes = SortedNodes(Cluster).ToList(),
        Buses = SortedBuses(Cluster).ToList(),
        Tools = SortedTools(Cluster).ToList(),
    };

    public RegistryStats CurrentStats()
    {
        var now = NowMs();
        Leases.Pool.ReleaseQuarantined(now);
        return new RegistryStats
        {
            StartedAt = StartedAt,
            UptimeMs = now - StartedAt,
            RequestsServed = Stats.RequestsServed,
            ErrorsByCode = Stats.ErrorsByCode,
            LeaseCount = Leases.Count,
            NodeCount = Nodes.Count,
            BusCount = Buses.Count,
            ToolCount = Tools.Count,
            FreePorts = Leases.Pool.FreeCount,
            QuarantinedPorts = Leases.Pool.QuarantinedCount,
        };
    }

    /// <summary>Broadcasts a heartbeat with the current sequence.</summary>
    public RegistryHeartbeat SendHeartbeat(bool stopping = false) => Journal.Heartbeat(_options.HeartbeatInterval, stopping);

    /// <summary>
    /// Arms the housekeeping timer for the earliest lease expiry or node health deadline. Called after every
    /// request; cheap when nothing got earlier (the usual case), so it stays off the hot path's cost.
    /// </summary>
    public void ScheduleHousekeeping()
    {
        if (_disposed || Suspended) return;
        var next = Min(Leases.NextExpiry, Nodes.NextDeadline);
        if (next is not { } at || at >= _housekeepingAt) return;
        _housekeepingAt = at;
        var delay = Math.Max(0, at - NowMs());
        _housekeepingTimer.Change(TimeSpan.FromMilliseconds(delay), Timeout.InfiniteTimeSpan);
    }

    /// <summary>The reaper and the health check: runs whatever is due, then re-arms the timer.</summary>
    public void RunHousekeeping()
    {
        if (_disposed || Suspended) return;
        _housekeepingAt = long.MaxValue;
        Leases.ExpireDue();
        Nodes.CheckHealth();
        ScheduleHousekeeping();
    }

    public void Dispose()
    {
        _disposed = true;
        _housekeepingTimer.Dispose();
        _heartbeatTimer.Dispose();
        Leases.Dispose();
    }

    // Every list is ordered by its entity key, ordinal (PROTOCOL.md 6.5).
    private IEnumerable<PortLease> SortedLeases(Func<PortLease, bool>? keep = null) =>
        Leases.Leases.Where(l => keep is null || keep(l)).OrderBy(l => l.LeaseId, StringComparer.Ordinal);
    // In cluster mode (and scope cluster) the other hosts' entries are merged in; this host's own name their host too.
    // keep filters first (on fields the merge does not change), so only what is kept is copied and sorted.
    private IEnumerable<NodeRecord> SortedNodes(ClusterMember? cluster, Func<NodeRecord, bool>? keep = null)
    {
        var own = Nodes.Nodes.Where(n => keep is null || keep(n));
        return (cluster is null ? own : own.Select(n => n with { RegistryHost = n.RegistryHost ?? cluster.HostName }).Concat(cluster.Catalog.Nodes(this, keep)))
            .OrderBy(n => n.NodeId, StringComparer.Ordinal);
    }
    private IEnumerable<EventBusRecord> SortedBuses(ClusterMember? cluster, Func<EventBusRecord, bool>? keep = null)
    {
        var own = Buses.Buses.Where(b => keep is null || keep(b));
        return (cluster is null ? own : own.Select(b => b with { RegistryHost = b.RegistryHost ?? cluster.HostName }).Concat(cluster.Catalog.Buses(this, keep)))
            .OrderBy(b => b.Name, StringComparer.Ordinal);
    }
    private IEnumerable<ToolContractRecord> SortedTools(ClusterMember? cluster, Func<ToolContractRecord, bool>? keep = null)
    {
        var own = Tools.Tools.Where(t => keep is null || keep(t));
        return (cluster is null ? own : own.Select(t => t with { RegistryHost = t.RegistryHost ?? cluster.HostName }).Concat(cluster.Catalog.Tools(this, keep)))
            .OrderBy(ToolCatalog.KeyOf, StringComparer.Ordinal);
    }

    private static long? Min(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    /// <summary>The registry's clock now (Unix ms).</summary>
    public long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();
}
