using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Tools;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// The other hosts' nodes, buses and tools as read from the cluster bucket, owned by the registry thread (like all
/// state). Every change to it is recorded in this registry's own change journal (its own sequence numbers), so local
/// watchers see the whole cluster through the change stream they already follow. Not stored locally: the bucket is the
/// durable copy, and a (re)load reconciles. A host whose heartbeat went stale shows all its entries unhealthy.
/// An id that exists locally hides the remote entry of the same id (node ids are expected to be unique in the cluster;
/// bus names and tool versions are made unique by claims).
/// </summary>
internal sealed class ClusterCatalog
{
    private sealed class HostEntries
    {
        public readonly Dictionary<string, (NodeRecord Record, byte[] Raw)> Nodes = new(StringComparer.Ordinal);
        public readonly Dictionary<string, (EventBusRecord Record, byte[] Raw)> Buses = new(StringComparer.Ordinal);
        public readonly Dictionary<string, (ToolContractRecord Record, byte[] Raw)> Tools = new(StringComparer.Ordinal);
        public bool Unhealthy;
        public bool IsEmpty => Nodes.Count == 0 && Buses.Count == 0 && Tools.Count == 0;
    }

    private readonly SortedDictionary<string, HostEntries> _hosts = new(StringComparer.Ordinal);
    private readonly ParsedSchemaCache _schemas = new(16L * 1024 * 1024);

    /// <summary>The hosts that have entries here.</summary>
    public IEnumerable<string> Hosts => _hosts.Keys;

    /// <summary>Remote nodes as this registry shows them (health overlaid, host named), not hidden by a local one.</summary>
    public IEnumerable<NodeRecord> Nodes(RegistryState state) =>
        _hosts.SelectMany(h => h.Value.Nodes.Values.Select(e => Show(e.Record, h.Key, h.Value))).Where(n => state.Nodes.Find(n.NodeId) is null);

    public IEnumerable<EventBusRecord> Buses(RegistryState state) =>
        _hosts.SelectMany(h => h.Value.Buses.Values.Select(e => Show(e.Record, h.Key, h.Value))).Where(b => !state.Buses.Contains(b.Name));

    public IEnumerable<ToolContractRecord> Tools(RegistryState state) =>
        _hosts.SelectMany(h => h.Value.Tools.Values.Select(e => Show(e.Record, h.Key, h.Value)))
            .Where(t => !state.Tools.Contains(ToolCatalog.KeyOf(t)));

    /// <summary>The remote bus of this name, or null.</summary>
    public EventBusRecord? FindBus(string name)
    {
        foreach (var (host, entries) in _hosts)
            if (entries.Buses.TryGetValue(name, out var bus)) return Show(bus.Record, host, entries);
        return null;
    }

    /// <summary>The remote tool with this name and version, or null.</summary>
    public ToolContractRecord? FindTool(string name, string version)
    {
        var key = name + "@" + version;
        foreach (var (host, entries) in _hosts)
            if (entries.Tools.TryGetValue(key, out var tool)) return Show(tool.Record, host, entries);
        return null;
    }

    /// <summary>Every remote version of tool <paramref name="name"/>.</summary>
    public IEnumerable<ToolContractRecord> ToolVersionsOf(string name) =>
        _hosts.SelectMany(h => h.Value.Tools.Values.Where(t => t.Record.Name == name).Select(t => Show(t.Record, h.Key, h.Value)));

    /// <summary>Validates a payload against a remote tool's schema (parsed here, with a cache of its own).</summary>
    public List<ValidationIssue> Check(ToolContractRecord tool, string direction, string payload) =>
        ToolCatalog.Check(tool, direction, payload, _schemas, ThreadCpuTime.Instance);

    /// <summary>The key of every entry held (for reconciling after a load).</summary>
    public IEnumerable<(string Host, string Kind, string Name)> Keys() =>
        _hosts.SelectMany(h => h.Value.Nodes.Keys.Select(n => (h.Key, ClusterKinds.Node, n))
            .Concat(h.Value.Buses.Keys.Select(n => (h.Key, ClusterKinds.Bus, n)))
            .Concat(h.Value.Tools.Keys.Select(n => (h.Key, ClusterKinds.Tool, n)))).ToList();

    /// <summary>A host's entry was written: records the change (registered or updated, or a node's health change). Undecodable values are ignored.</summary>
    public void Put(RegistryState state, string host, string kind, string name, byte[] value)
    {
        var entries = EntriesOf(host);
        switch (kind)
        {
            case ClusterKinds.Node:
            {
                var record = Decode<NodeRecord>(value);
                if (record is null || record.NodeId != name) return;
                entries.Nodes.TryGetValue(name, out var old);
                if (old.Raw is not null && old.Raw.AsSpan().SequenceEqual(value)) return;
                entries.Nodes[name] = (record, value);
                if (state.Nodes.Find(name) is not null) return;
                var shown = Show(record, host, entries);
                if (old.Record is null) Record(state, ChangeTypes.NodeRegistered, name, ChangeJournal.Of(shown), null);
                else
                {
                    var before = Show(old.Record, host, entries);
                    var type = before.Health == shown.Health ? ChangeTypes.NodeUpdated
                        : shown.Health == Health.Healthy ? ChangeTypes.NodeHealthy : ChangeTypes.NodeUnhealthy;
                    Record(state, type, name, ChangeJournal.Of(shown), ChangeJournal.Of(before));
                }
                break;
            }
            case ClusterKinds.Bus:
            {
                var record = Decode<EventBusRecord>(value);
                if (record is null || record.Name != name) return;
                entries.Buses.TryGetValue(name, out var old);
                if (old.Raw is not null && old.Raw.AsSpan().SequenceEqual(value)) return;
                entries.Buses[name] = (record, value);
                if (state.Buses.Contains(name)) return;
                var shown = Show(record, host, entries);
                if (old.Record is null) Record(state, ChangeTypes.BusRegistered, name, ChangeJournal.Of(shown), null);
                else Record(state, ChangeTypes.BusUpdated, name, ChangeJournal.Of(shown), ChangeJournal.Of(Show(old.Record, host, entries)));
                break;
            }
            case ClusterKinds.Tool:
            {
                var record = Decode<ToolContractRecord>(value);
                if (record is null || ToolCatalog.KeyOf(record) != name) return;
                entries.Tools.TryGetValue(name, out var old);
                if (old.Raw is not null && old.Raw.AsSpan().SequenceEqual(value)) return;
                entries.Tools[name] = (record, value);
                if (state.Tools.Contains(name)) return;
                var shown = Show(record, host, entries);
                if (old.Record is null) Record(state, ChangeTypes.ToolRegistered, name, ChangeJournal.Of(shown), null);
                else Record(state, ChangeTypes.ToolUpdated, name, ChangeJournal.Of(shown), ChangeJournal.Of(Show(old.Record, host, entries)));
                break;
            }
        }
    }

    /// <summary>A host's entry was deleted: records its removal.</summary>
    public void Delete(RegistryState state, string host, string kind, string name)
    {
        if (!_hosts.TryGetValue(host, out var entries)) return;
        switch (kind)
        {
            case ClusterKinds.Node when entries.Nodes.Remove(name, out var node):
                if (state.Nodes.Find(name) is null)
                    Record(state, ChangeTypes.NodeRemoved, name, null, ChangeJournal.Of(Show(node.Record, host, entries)));
                break;
            case ClusterKinds.Bus when entries.Buses.Remove(name, out var bus):
                if (!state.Buses.Contains(name))
                    Record(state, ChangeTypes.BusRemoved, name, null, ChangeJournal.Of(Show(bus.Record, host, entries)));
                break;
            case ClusterKinds.Tool when entries.Tools.Remove(name, out var tool):
                if (!state.Tools.Contains(name))
                    Record(state, ChangeTypes.ToolRemoved, name, null, ChangeJournal.Of(Show(tool.Record, host, entries)));
                break;
        }
        if (entries.IsEmpty && !entries.Unhealthy) _hosts.Remove(host);
    }

    /// <summary>
    /// A host's heartbeat went stale (or came back): every entry of it turns unhealthy (or healthy), node first, then
    /// its buses and tools, as a local node's health change is broadcast.
    /// </summary>
    public void SetHostHealth(RegistryState state, string host, bool unhealthy)
    {
        var entries = EntriesOf(host);
        if (entries.Unhealthy == unhealthy) return;
        var before = new HostEntries { Unhealthy = entries.Unhealthy };
        entries.Unhealthy = unhealthy;
        foreach (var (id, node) in entries.Nodes.OrderBy(n => n.Key, StringComparer.Ordinal))
        {
            var (old, now) = (Show(node.Record, host, before), Show(node.Record, host, entries));
            if (old.Health == now.Health || state.Nodes.Find(id) is not null) continue;
            Record(state, now.Health == Health.Healthy ? ChangeTypes.NodeHealthy : ChangeTypes.NodeUnhealthy, id, ChangeJournal.Of(now), ChangeJournal.Of(old));
        }
        foreach (var (name, bus) in entries.Buses.OrderBy(n => n.Key, StringComparer.Ordinal))
        {
            var (old, now) = (Show(bus.Record, host, before), Show(bus.Record, host, entries));
            if (old.Health == now.Health || state.Buses.Contains(name)) continue;
            Record(state, ChangeTypes.BusUpdated, name, ChangeJournal.Of(now), ChangeJournal.Of(old));
        }
        foreach (var (key, tool) in entries.Tools.OrderBy(n => n.Key, StringComparer.Ordinal))
        {
            var (old, now) = (Show(tool.Record, host, before), Show(tool.Record, host, entries));
            if (old.Health == now.Health || state.Tools.Contains(key)) continue;
            Record(state, ChangeTypes.ToolUpdated, key, ChangeJournal.Of(now), ChangeJournal.Of(old));
        }
        if (entries.IsEmpty && !entries.Unhealthy) _hosts.Remove(host);
    }

    /// <summary>True when that host is shown unhealthy here.</summary>
    public bool IsUnhealthy(string host) => _hosts.TryGetValue(host, out var entries) && entries.Unhealthy;

    /// <summary>Forgets a host's health mark (it has no entries left, or it was removed).</summary>
    public void ForgetHost(string host)
    {
        if (_hosts.TryGetValue(host, out var entries) && entries.IsEmpty) _hosts.Remove(host);
    }

    private HostEntries EntriesOf(string host)
    {
        if (!_hosts.TryGetValue(host, out var entries)) _hosts[host] = entries = new HostEntries();
        return entries;
    }

    private static void Record(RegistryState state, string type, string key, RegistryEntity? newValue, RegistryEntity? oldValue) =>
        state.Journal.Record(type, key, newValue, oldValue);

    private static NodeRecord Show(NodeRecord record, string host, HostEntries entries) =>
        record with { RegistryHost = host, Health = entries.Unhealthy ? Health.Unhealthy : record.Health };

    private static EventBusRecord Show(EventBusRecord record, string host, HostEntries entries) =>
        record with { RegistryHost = host, Health = entries.Unhealthy ? Health.Unhealthy : record.Health };

    private static ToolContractRecord Show(ToolContractRecord record, string host, HostEntries entries) =>
        record with { RegistryHost = host, Health = entries.Unhealthy ? Health.Unhealthy : record.Health };

    private static T? Decode<T>(byte[] value) where T : class
    {
        try
        {
            return RegistryCodec.DeserializeBody<T>(value);
        }
        catch (Onex.Errors.OnexException)
        {
            return null; // another program's (or a newer version's) value: not ours to show
        }
    }
}
