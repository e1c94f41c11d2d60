using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Tenants;
using Onex.RegistryNode.Tools;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// The other hosts' nodes, buses and tools as read from the cluster bucket, owned by the registry thread (like all
/// state). Every change to it is recorded in this registry's own change journal (its own sequence numbers), so local
/// watchers see the whole cluster through the change stream they already follow. Not stored locally: the bucket is the
/// durable copy, and a (re)load reconciles. A host whose heartbeat went stale shows all its entries unhealthy.
/// Entries live in their tenant (the record's <c>tenant</c>, which the key's first token names); a local entry of the
/// same tenant and id hides the remote one (node ids are expected to be unique in a tenant across the cluster; bus names
/// and tool versions are made unique per tenant by claims). A key under the tenant token <c>default</c> whose record
/// names another tenant was written by a registry of the layout before tenants were in keys: it is read as that
/// tenant's entry (docs/CLUSTER.md, "Upgrading").
/// </summary>
internal sealed class ClusterCatalog
{
    /// <summary>An entry as read, with the bucket key it was read from (a legacy key and its successor may overlap).</summary>
    private readonly record struct Entry<T>(T Record, byte[] Raw, string Source);

    private sealed class HostEntries
    {
        // Keyed by the registry's tenant key of the id (TenantNames.Key).
        public readonly Dictionary<string, Entry<NodeRecord>> Nodes = new(StringComparer.Ordinal);
        public readonly Dictionary<string, Entry<EventBusRecord>> Buses = new(StringComparer.Ordinal);
        public readonly Dictionary<string, Entry<ToolContractRecord>> Tools = new(StringComparer.Ordinal);
        public bool Unhealthy;
        public bool IsEmpty => Nodes.Count == 0 && Buses.Count == 0 && Tools.Count == 0;
    }

    private readonly SortedDictionary<string, HostEntries> _hosts = new(StringComparer.Ordinal);
    // Bucket key -> the entry it holds, so a delete marker (which has no value) finds its entry.
    private readonly Dictionary<string, (string Host, string Kind, string Key)> _sources = new(StringComparer.Ordinal);
    private readonly ParsedSchemaCache _schemas = new(16L * 1024 * 1024);

    /// <summary>The hosts that have entries here.</summary>
    public IEnumerable<string> Hosts => _hosts.Keys;

    /// <summary>Remote nodes as this registry shows them (health overlaid, host named), not hidden by a local one.</summary>
    /// <summary>The remote entries (<paramref name="keep"/>: only those it accepts, asked before any copy is made).</summary>
    public IEnumerable<NodeRecord> Nodes(RegistryState state, Func<NodeRecord, bool>? keep = null) =>
        _hosts.SelectMany(h => h.Value.Nodes.Values.Where(e => keep is null || keep(e.Record)).Select(e => Show(e.Record, h.Key, h.Value)))
            .Where(n => !HiddenByLocal(state, n));

    public IEnumerable<EventBusRecord> Buses(RegistryState state, Func<EventBusRecord, bool>? keep = null) =>
        _hosts.SelectMany(h => h.Value.Buses.Values.Where(e => keep is null || keep(e.Record)).Select(e => Show(e.Record, h.Key, h.Value)))
            .Where(b => !HiddenByLocal(state, b));

    public IEnumerable<ToolContractRecord> Tools(RegistryState state, Func<ToolContractRecord, bool>? keep = null) =>
        _hosts.SelectMany(h => h.Value.Tools.Values.Where(e => keep is null || keep(e.Record)).Select(e => Show(e.Record, h.Key, h.Value)))
            .Where(t => !HiddenByLocal(state, t));

    /// <summary>The remote bus of this name in <paramref name="tenant"/>, or null.</summary>
    public EventBusRecord? FindBus(string name, string tenant)
    {
        var key = TenantNames.Key(tenant, name);
        foreach (var (host, entries) in _hosts)
            if (entries.Buses.TryGetValue(key, out var bus)) return Show(bus.Record, host, entries);
        return null;
    }

    /// <summary>The remote tool with this name and version in <paramref name="tenant"/>, or null.</summary>
    public ToolContractRecord? FindTool(string name, string version, string tenant)
    {
        var key = TenantNames.Key(tenant, name + "@" + version);
        foreach (var (host, entries) in _hosts)
            if (entries.Tools.TryGetValue(key, out var tool)) return Show(tool.Record, host, entries);
        return null;
    }

    /// <summary>Every remote version of tool <paramref name="name"/> in <paramref name="tenant"/>.</summary>
    public IEnumerable<ToolContractRecord> ToolVersionsOf(string name, string tenant) =>
        _hosts.SelectMany(h => h.Value.Tools.Values
            .Where(t => t.Record.Name == name && TenantNames.Of(t.Record.Tenant) == tenant)
            .Select(t => Show(t.Record, h.Key, h.Value)));

    /// <summary>Validates a payload against a remote tool's schema (parsed here, with a cache of its own).</summary>
    public List<ValidationIssue> Check(ToolContractRecord tool, string direction, string payload) =>
        ToolCatalog.Check(tool, direction, payload, _schemas, ThreadCpuTime.Instance);

    /// <summary>The bucket key of every entry held (for reconciling after a load).</summary>
    public IEnumerable<string> Sources() => _sources.Keys.ToList();

    /// <summary>
    /// Bucket key <paramref name="source"/> (of <paramref name="host"/>, kind <paramref name="kind"/>, tenant token
    /// <paramref name="keyTenant"/>, id <paramref name="name"/>) was written: records the change (registered or updated,
    /// or a node's health change). Undecodable values, and values whose id or tenant the key does not name, are ignored.
    /// </summary>
    public void Put(RegistryState state, string source, string host, string kind, string keyTenant, string name, byte[] value)
    {
        switch (kind)
        {
            case ClusterKinds.Node:
            {
                var record = Decode<NodeRecord>(value);
                if (record is null || record.NodeId != name || !InKeyTenant(record.Tenant, keyTenant)) return;
                var key = Index(source, host, kind, TenantNames.Key(TenantNames.Of(record.Tenant), name), state);
                var entries = EntriesOf(host);
                entries.Nodes.TryGetValue(key, out var old);
                if (old.Raw is not null && old.Raw.AsSpan().SequenceEqual(value)) { entries.Nodes[key] = old with { Source = source }; return; }
                entries.Nodes[key] = new(record, value, source);
                if (HiddenByLocal(state, record)) return;
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
                if (record is null || record.Name != name || !InKeyTenant(record.Tenant, keyTenant)) return;
                var key = Index(source, host, kind, TenantNames.Key(TenantNames.Of(record.Tenant), name), state);
                var entries = EntriesOf(host);
                entries.Buses.TryGetValue(key, out var old);
                if (old.Raw is not null && old.Raw.AsSpan().SequenceEqual(value)) { entries.Buses[key] = old with { Source = source }; return; }
                entries.Buses[key] = new(record, value, source);
                if (HiddenByLocal(state, record)) return;
                var shown = Show(record, host, entries);
                if (old.Record is null) Record(state, ChangeTypes.BusRegistered, name, ChangeJournal.Of(shown), null);
                else Record(state, ChangeTypes.BusUpdated, name, ChangeJournal.Of(shown), ChangeJournal.Of(Show(old.Record, host, entries)));
                break;
            }
            case ClusterKinds.Tool:
            {
                var record = Decode<ToolContractRecord>(value);
                if (record is null || ToolCatalog.KeyOf(record) != name || !InKeyTenant(record.Tenant, keyTenant)) return;
                var key = Index(source, host, kind, ToolCatalog.StoreKeyOf(record), state);
                var entries = EntriesOf(host);
                entries.Tools.TryGetValue(key, out var old);
                if (old.Raw is not null && old.Raw.AsSpan().SequenceEqual(value)) { entries.Tools[key] = old with { Source = source }; return; }
                entries.Tools[key] = new(record, value, source);
                if (HiddenByLocal(state, record)) return;
                var shown = Show(record, host, entries);
                if (old.Record is null) Record(state, ChangeTypes.ToolRegistered, name, ChangeJournal.Of(shown), null);
                else Record(state, ChangeTypes.ToolUpdated, name, ChangeJournal.Of(shown), ChangeJournal.Of(Show(old.Record, host, entries)));
                break;
            }
        }
    }

    /// <summary>Bucket key <paramref name="source"/> was deleted: records the removal of the entry it held (if still the one shown).</summary>
    public void Delete(RegistryState state, string source)
    {
        if (!_sources.Remove(source, out var at) || !_hosts.TryGetValue(at.Host, out var entries)) return;
        var host = at.Host;
        switch (at.Kind)
        {
            case ClusterKinds.Node when entries.Nodes.TryGetValue(at.Key, out var node) && node.Source == source:
                entries.Nodes.Remove(at.Key);
                if (!HiddenByLocal(state, node.Record))
                    Record(state, ChangeTypes.NodeRemoved, node.Record.NodeId, null, ChangeJournal.Of(Show(node.Record, host, entries)));
                break;
            case ClusterKinds.Bus when entries.Buses.TryGetValue(at.Key, out var bus) && bus.Source == source:
                entries.Buses.Remove(at.Key);
                if (!HiddenByLocal(state, bus.Record))
                    Record(state, ChangeTypes.BusRemoved, bus.Record.Name, null, ChangeJournal.Of(Show(bus.Record, host, entries)));
                break;
            case ClusterKinds.Tool when entries.Tools.TryGetValue(at.Key, out var tool) && tool.Source == source:
                entries.Tools.Remove(at.Key);
                if (!HiddenByLocal(state, tool.Record))
                    Record(state, ChangeTypes.ToolRemoved, ToolCatalog.KeyOf(tool.Record), null, ChangeJournal.Of(Show(tool.Record, host, entries)));
                break;
        }
        if (entries.IsEmpty && !entries.Unhealthy) _hosts.Remove(host);
    }

    /// <summary>True when another host has an entry of <paramref name="kind"/> with this id (node id, bus name, tool NAME@VERSION) in <paramref name="tenant"/>.</summary>
    public bool Holds(string kind, string tenant, string id)
    {
        var key = TenantNames.Key(tenant, id);
        foreach (var entries in _hosts.Values)
        {
            var held = kind switch
            {
                ClusterKinds.Node => entries.Nodes.ContainsKey(key),
                ClusterKinds.Bus => entries.Buses.ContainsKey(key),
                _ => entries.Tools.ContainsKey(key),
            };
            if (held) return true;
        }
        return false;
    }

    /// <summary>
    /// This host's entry of <paramref name="kind"/> with this id in <paramref name="tenant"/> went away, and with it what hid
    /// other hosts' entries of that id (a node that moved between hosts keeping its id; a name registered here while cut
    /// off): those are shown again, and recorded as registered, since watchers were told of the removal and no longer hold
    /// that id. Nothing when a local entry of that id is back meanwhile.
    /// </summary>
    public void Reveal(RegistryState state, string kind, string tenant, string id)
    {
        var key = TenantNames.Key(tenant, id);
        foreach (var (host, entries) in _hosts)
        {
            switch (kind)
            {
                case ClusterKinds.Node when entries.Nodes.TryGetValue(key, out var node) && !HiddenByLocal(state, node.Record):
                    Record(state, ChangeTypes.NodeRegistered, node.Record.NodeId, ChangeJournal.Of(Show(node.Record, host, entries)), null);
                    break;
                case ClusterKinds.Bus when entries.Buses.TryGetValue(key, out var bus) && !HiddenByLocal(state, bus.Record):
                    Record(state, ChangeTypes.BusRegistered, bus.Record.Name, ChangeJournal.Of(Show(bus.Record, host, entries)), null);
                    break;
                case ClusterKinds.Tool when entries.Tools.TryGetValue(key, out var tool) && !HiddenByLocal(state, tool.Record):
                    Record(state, ChangeTypes.ToolRegistered, ToolCatalog.KeyOf(tool.Record), ChangeJournal.Of(Show(tool.Record, host, entries)), null);
                    break;
            }
        }
    }

    /// <summary>A key names the tenant of its record, or is a key of the layout before tenants (token <c>default</c>).</summary>
    private static bool InKeyTenant(string? recordTenant, string keyTenant) =>
        keyTenant == TenantNames.Default || TenantNames.Of(recordTenant) == keyTenant;

    /// <summary>
    /// Notes which entry <paramref name="source"/> holds. A source that held another entry before (a legacy key whose
    /// record changed tenant) lets go of that one first; an entry read before from another source now belongs to this one.
    /// </summary>
    private string Index(string source, string host, string kind, string key, RegistryState state)
    {
        if (_sources.TryGetValue(source, out var held) && held != (host, kind, key)) Delete(state, source);
        _sources[source] = (host, kind, key);
        return key;
    }

    private static bool HiddenByLocal(RegistryState state, NodeRecord node) => state.Nodes.Find(node.NodeId, TenantNames.Of(node.Tenant)) is not null;

    private static bool HiddenByLocal(RegistryState state, EventBusRecord bus) => state.Buses.Contains(bus.Name, TenantNames.Of(bus.Tenant));

    private static bool HiddenByLocal(RegistryState state, ToolContractRecord tool) => state.Tools.Contains(ToolCatalog.KeyOf(tool), TenantNames.Of(tool.Tenant));

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
        foreach (var (_, node) in entries.Nodes.OrderBy(n => n.Key, StringComparer.Ordinal))
        {
            var (old, now) = (Show(node.Record, host, before), Show(node.Record, host, entries));
            if (old.Health == now.Health || HiddenByLocal(state, node.Record)) continue;
            Record(state, now.Health == Health.Healthy ? ChangeTypes.NodeHealthy : ChangeTypes.NodeUnhealthy, node.Record.NodeId, ChangeJournal.Of(now), ChangeJournal.Of(old));
        }
        foreach (var (_, bus) in entries.Buses.OrderBy(n => n.Key, StringComparer.Ordinal))
        {
            var (old, now) = (Show(bus.Record, host, before), Show(bus.Record, host, entries));
            if (old.Health == now.Health || HiddenByLocal(state, bus.Record)) continue;
            Record(state, ChangeTypes.BusUpdated, bus.Record.Name, ChangeJournal.Of(now), ChangeJournal.Of(old));
        }
        foreach (var (_, tool) in entries.Tools.OrderBy(n => n.Key, StringComparer.Ordinal))
        {
            var (old, now) = (Show(tool.Record, host, before), Show(tool.Record, host, entries));
            if (old.Health == now.Health || HiddenByLocal(state, tool.Record)) continue;
            Record(state, ChangeTypes.ToolUpdated, ToolCatalog.KeyOf(tool.Record), ChangeJournal.Of(now), ChangeJournal.Of(old));
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
