using Microsoft.Extensions.Logging;
using Onex.Protocol;
using Onex.RegistryNode.Buses;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.RegistryNode.Tenants;
using Onex.RegistryNode.Tools;

namespace Onex.RegistryNode.Nodes;

/// <summary>
/// Known nodes and their health, by node id within their tenant (keyed by <see cref="TenantNames.Key"/>). A node that misses <see cref="NodeOptions.MissedHeartbeatsBeforeUnhealthy"/>
/// heartbeats turns unhealthy (and so do its buses and tools); after <see cref="NodeOptions.UnhealthyGracePeriod"/>
/// it is removed with them and with its port leases. Turning unhealthy does not touch leases (they have their own TTL).
/// </summary>
internal sealed partial class NodeDirectory
{
    private sealed class Entry(NodeRecord record)
    {
        public NodeRecord Record = record;
        public string Tenant => TenantNames.Of(Record.Tenant);
        public string Key => TenantNames.Key(Tenant, Record.NodeId);
        public long UnhealthySince;
        // Added to the node's deadline: time it could not have reached the registry (the registry was down or paused).
        public long Credit;
        // The earliest deadline queued for this node; a popped deadline that differs is stale.
        public long QueuedDeadline = long.MaxValue;
    }

    private readonly NodeOptions _options;
    private readonly ChangeJournal _journal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly BusDirectory _buses;
    private readonly ToolCatalog _tools;
    private readonly PortLeaseManager _leases;
    private readonly Dictionary<string, Entry> _nodes = new(StringComparer.Ordinal);
    private readonly PriorityQueue<string, long> _deadlines = new();
    private readonly StateChanges _changes;

    public NodeDirectory(
        NodeOptions options, ChangeJournal journal, TimeProvider time, ILogger logger,
        BusDirectory buses, ToolCatalog tools, PortLeaseManager leases, StateChanges? changes = null)
    {
        _changes = changes ?? new StateChanges();
        _options = options;
        _journal = journal;
        _time = time;
        _logger = logger;
        _buses = buses;
        _tools = tools;
        _leases = leases;
    }

    /// <summary>Every known node.</summary>
    public IEnumerable<NodeRecord> Nodes => _nodes.Values.Select(e => e.Record);

    /// <summary>How many nodes are known.</summary>
    public int Count => _nodes.Count;

    /// <summary>How many nodes each tenant has.</summary>
    public TenantCounter PerTenant { get; } = new();

    /// <summary>The earliest time (Unix ms) a node may change health, or null.</summary>
    public long? NextDeadline => _deadlines.TryPeek(out _, out var at) ? at : null;

    /// <summary>The stored form of a node (its record and when it turned unhealthy), or null when it is gone.</summary>
    public byte[]? Read(string key) =>
        _nodes.TryGetValue(key, out var entry) ? StoredMeta.RecordAndLongs(RegistryCodec.SerializeBody(entry.Record), entry.UnhealthySince) : null;

    /// <summary>
    /// Puts stored nodes back, each with a fresh heartbeat window (or grace period) from <paramref name="nowMs"/>: no
    /// heartbeat could reach a registry that was down. Called once, before use.
    /// </summary>
    public void Restore(StoredState stored, long nowMs)
    {
        foreach (var row in stored.OfKind(StoredKind.Node))
        {
            var (record, values) = StoredMeta.ReadRecordAndLongs(row.Value);
            var entry = new Entry(StoredRecords.Read<NodeRecord>(record, StoredKind.Node)) { UnhealthySince = values[0] };
            var windowStart = entry.Record.Health == Health.Healthy ? entry.Record.LastSeenAt : entry.UnhealthySince;
            entry.Credit = Math.Max(0, nowMs - windowStart);
            if (!_nodes.TryAdd(entry.Key, entry)) continue;
            PerTenant.Add(entry.Tenant, 1);
            QueueDeadline(entry);
        }
    }

    /// <summary>The registry was paused for <paramref name="pauseMs"/>: every node's deadline moves back by that much.</summary>
    public void ExtendAll(long pauseMs)
    {
        if (pauseMs <= 0) return;
        foreach (var entry in _nodes.Values) entry.Credit += pauseMs;
    }

    /// <summary>The node with this id in <paramref name="tenant"/>, or null.</summary>
    public NodeRecord? Find(string nodeId, string tenant = TenantNames.Default) =>
        _nodes.TryGetValue(TenantNames.Key(tenant, nodeId), out var entry) ? entry.Record : null;

    /// <summary>The node with this id in <paramref name="tenant"/>; NOT_FOUND with a hint to announce when unknown.</summary>
    public NodeRecord Require(string nodeId, string tenant = TenantNames.Default) =>
        Find(nodeId, tenant) ?? throw Reject.NotFound(
            $"Node '{nodeId}' is not known to the registry; send a NodeAnnouncement first.",
            ("nodeId", nodeId), ("hint", "announce"));

    /// <summary>Creates or updates a node of <paramref name="tenant"/>; an announcement also counts as a heartbeat.</summary>
    public NodeRecord Announce(NodeAnnouncement announcement, string tenant = TenantNames.Default)
    {
        Reject.IfBadIdentifier(announcement.NodeId, "nodeId");
        Reject.IfTooLong(announcement.Name, "name", Reject.MaxNameLength);
        Reject.IfTooLong(announcement.Host, "host", Reject.MaxNameLength);
        var interval = announcement.HeartbeatIntervalMs;
        if (interval < (long)_options.MinHeartbeatInterval.TotalMilliseconds || interval > (long)_options.MaxHeartbeatInterval.TotalMilliseconds)
            throw Reject.InvalidArgument("heartbeatIntervalMs",
                $"Field 'heartbeatIntervalMs' must be between {(long)_options.MinHeartbeatInterval.TotalMilliseconds} and {(long)_options.MaxHeartbeatInterval.TotalMilliseconds}.",
                ("value", interval.ToString()), ("min", ((long)_options.MinHeartbeatInterval.TotalMilliseconds).ToString()),
                ("max", ((long)_options.MaxHeartbeatInterval.TotalMilliseconds).ToString()));
        if (announcement.ProcessId < 0)
            throw Reject.InvalidArgument("processId", "Field 'processId' must not be negative.", ("value", announcement.ProcessId.ToString()), ("min", "0"));
        Reject.IfBadMetadata(announcement.Metadata, "metadata");

        var now = NowMs();
        if (!_nodes.TryGetValue(TenantNames.Key(tenant, announcement.NodeId), out var entry))
        {
            var record = new NodeRecord
            {
                NodeId = announcement.NodeId,
                Name = announcement.Name ?? "",
                Host = announcement.Host ?? "",
                ProcessId = announcement.ProcessId,
                HeartbeatIntervalMs = interval,
                Health = Health.Healthy,
                RegisteredAt = now,
                LastSeenAt = now,
                Metadata = announcement.Metadata,
                Tenant = TenantNames.Field(tenant),
            };
            entry = new Entry(record);
            _nodes.Add(entry.Key, entry);
            PerTenant.Add(tenant, 1);
            _changes.Mark(StoredKind.Node, entry.Key);
            QueueDeadline(entry);
            _journal.Record(ChangeTypes.NodeRegistered, record.NodeId, ChangeJournal.Of(record), null);
            LogRegistered(record.NodeId, record.Name, interval);
            return record;
        }

        var old = entry.Record;
        var updated = old with
        {
            Name = announcement.Name ?? "",
            Host = announcement.Host ?? "",
            ProcessId = announcement.ProcessId,
            HeartbeatIntervalMs = interval,
            Metadata = announcement.Metadata,
            LastSeenAt = now,
        };
        entry.Credit = 0;
        if (!SameDetails(old, updated))
        {
            entry.Record = updated;
            _changes.Mark(StoredKind.Node, entry.Key);
            _journal.Record(ChangeTypes.NodeUpdated, updated.NodeId, ChangeJournal.Of(entry.Record), ChangeJournal.Of(old));
        }
        else
        {
            entry.Record = entry.Record with { LastSeenAt = now };
        }
        if (entry.Record.Health == Health.Unhealthy) MarkHealthy(entry);
        QueueDeadline(entry);
        return entry.Record;
    }

    /// <summary>Refreshes <see cref="NodeRecord.LastSeenAt"/>; an unhealthy node becomes healthy again.</summary>
    public void Heartbeat(NodeHeartbeat heartbeat, string tenant = TenantNames.Default)
    {
        Reject.IfBadIdentifier(heartbeat.NodeId, "nodeId"); // the announcement's rules: "a b" is invalid, not unknown
        if (!_nodes.TryGetValue(TenantNames.Key(tenant, heartbeat.NodeId), out var entry))
            throw Reject.NotFound($"Node '{heartbeat.NodeId}' is not known to the registry (removed, or the registry restarted); announce it again.",
                ("nodeId", heartbeat.NodeId), ("hint", "announce"));
        // Not marked for the store: a restart gives every node a fresh window anyway, and heartbeats are many.
        entry.Record = entry.Record with { LastSeenAt = NowMs() };
        entry.Credit = 0;
        if (entry.Record.Health == Health.Unhealthy) MarkHealthy(entry);
    }

    /// <summary>
    /// The node leaves: its leases, buses and tools go with it. Idempotent: an unknown node is acknowledged too,
    /// and leases held under its id (a node may lease without announcing) are still ended.
    /// </summary>
    public void Depart(NodeDeparture departure, string tenant = TenantNames.Default)
    {
        Reject.IfBadIdentifier(departure.NodeId, "nodeId");
        if (_nodes.TryGetValue(TenantNames.Key(tenant, departure.NodeId), out var entry)) Remove(entry, "departed");
        else _leases.EndAllHeldBy(departure.NodeId, tenant);
    }

    /// <summary>Turns overdue nodes unhealthy and removes those whose grace period ran out.</summary>
    public void CheckHealth()
    {
        var now = NowMs();
        while (_deadlines.TryPeek(out var key, out var at) && at <= now)
        {
            _deadlines.Dequeue();
            if (!_nodes.TryGetValue(key, out var entry) || entry.QueuedDeadline != at) continue;
            entry.QueuedDeadline = long.MaxValue;
            var deadline = DeadlineOf(entry);
            if (deadline > now)
            {
                QueueDeadline(entry);
            }
            else if (entry.Record.Health == Health.Healthy)
            {
                // Unhealthy since the deadline, not since the timer fired: the grace period must not stretch.
                MarkUnhealthy(entry, deadline);
                QueueDeadline(entry);
            }
            else
            {
                Remove(entry, "grace period over");
            }
        }
    }

    private void MarkUnhealthy(Entry entry, long since)
    {
        var old = entry.Record;
        entry.Record = old with { Health = Health.Unhealthy };
        entry.UnhealthySince = since;
        entry.Credit = 0;
        _changes.Mark(StoredKind.Node, entry.Key);
        _journal.Record(ChangeTypes.NodeUnhealthy, old.NodeId, ChangeJournal.Of(entry.Record), ChangeJournal.Of(old));
        _buses.SetHealthOf(old.NodeId, Health.Unhealthy, entry.Tenant);
        _tools.SetHealthOf(old.NodeId, Health.Unhealthy, entry.Tenant);
        LogUnhealthy(old.NodeId, since - old.LastSeenAt);
    }

    private void MarkHealthy(Entry entry)
    {
        var old = entry.Record;
        entry.Record = old with { Health = Health.Healthy };
        entry.UnhealthySince = 0;
        _changes.Mark(StoredKind.Node, entry.Key);
        _journal.Record(ChangeTypes.NodeHealthy, old.NodeId, ChangeJournal.Of(entry.Record), ChangeJournal.Of(old));
        _buses.SetHealthOf(old.NodeId, Health.Healthy, entry.Tenant);
        _tools.SetHealthOf(old.NodeId, Health.Healthy, entry.Tenant);
        QueueDeadline(entry);
        LogHealthy(old.NodeId);
    }

    private void Remove(Entry entry, string reason)
    {
        // What the node owns goes first, so no broadcast ever shows a lease, bus or tool whose node is gone.
        _leases.EndAllHeldBy(entry.Record.NodeId, entry.Tenant);
        _buses.RemoveAllOf(entry.Record.NodeId, entry.Tenant);
        _tools.RemoveAllOf(entry.Record.NodeId, entry.Tenant);
        if (_nodes.Remove(entry.Key)) PerTenant.Add(entry.Tenant, -1);
        _changes.Mark(StoredKind.Node, entry.Key);
        _journal.Record(ChangeTypes.NodeRemoved, entry.Record.NodeId, null, ChangeJournal.Of(entry.Record));
        LogRemoved(entry.Record.NodeId, reason);
    }

    private long DeadlineOf(Entry entry) => entry.Credit + (entry.Record.Health == Health.Healthy
        ? entry.Record.LastSeenAt + entry.Record.HeartbeatIntervalMs * _options.MissedHeartbeatsBeforeUnhealthy
        : entry.UnhealthySince + (long)_options.UnhealthyGracePeriod.TotalMilliseconds);

    private void QueueDeadline(Entry entry)
    {
        var deadline = DeadlineOf(entry);
        if (deadline >= entry.QueuedDeadline) return;
        entry.QueuedDeadline = deadline;
        _deadlines.Enqueue(entry.Key, deadline);
    }

    private static bool SameDetails(NodeRecord a, NodeRecord b) =>
        a.Name == b.Name && a.Host == b.Host && a.ProcessId == b.ProcessId && a.HeartbeatIntervalMs == b.HeartbeatIntervalMs
        && MetadataEquals(a.Metadata, b.Metadata);

    internal static bool MetadataEquals(IReadOnlyDictionary<string, string>? a, IReadOnlyDictionary<string, string>? b)
    {
        if (a is null || a.Count == 0) return b is null || b.Count == 0;
        if (b is null || a.Count != b.Count) return false;
        foreach (var (key, value) in a)
            if (!b.TryGetValue(key, out var other) || other != value) return false;
        return true;
    }

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId} ({Name}) registered, heartbeat every {IntervalMs} ms")]
    private partial void LogRegistered(string nodeId, string name, long intervalMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {NodeId} is unhealthy: no heartbeat for {SilentMs} ms")]
    private partial void LogUnhealthy(string nodeId, long silentMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId} is healthy again")]
    private partial void LogHealthy(string nodeId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId} removed ({Reason})")]
    private partial void LogRemoved(string nodeId, string reason);
}
