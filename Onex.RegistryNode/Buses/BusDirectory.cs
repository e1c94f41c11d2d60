using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Nodes;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.RegistryNode.Tenants;

namespace Onex.RegistryNode.Buses;

/// <summary>
/// Registered event buses, by name, unique within a tenant (keyed by <see cref="TenantNames.Key"/>). The owner re-registering a name updates it; another node gets
/// NOT_OWNER while the owner lives. A bus's health follows its owner's.
/// </summary>
internal sealed class BusDirectory
{
    private static readonly HashSet<string> Kinds = [BusKinds.Memory, BusKinds.Zmq, BusKinds.Ipc, BusKinds.JetStream];
    private const int MaxEndpoints = 64;

    private readonly ChangeJournal _journal;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, EventBusRecord> _buses = new(StringComparer.Ordinal);
    private readonly StateChanges _changes;

    public BusDirectory(ChangeJournal journal, TimeProvider time, StateChanges? changes = null)
    {
        _journal = journal;
        _time = time;
        _changes = changes ?? new StateChanges();
    }

    /// <summary>The stored form of a bus, or null when it is gone.</summary>
    public byte[]? Read(string key) => _buses.TryGetValue(key, out var bus) ? RegistryCodec.SerializeBody(bus) : null;

    /// <summary>How many buses each tenant has.</summary>
    public TenantCounter PerTenant { get; } = new();

    private static string KeyOf(EventBusRecord bus) => TenantNames.Key(TenantNames.Of(bus.Tenant), bus.Name);

    /// <summary>Puts stored buses back. Called once, before use.</summary>
    public void Restore(StoredState stored)
    {
        foreach (var row in stored.OfKind(StoredKind.Bus))
        {
            var bus = StoredRecords.Read<EventBusRecord>(row.Value, StoredKind.Bus);
            if (_buses.TryAdd(KeyOf(bus), bus)) PerTenant.Add(TenantNames.Of(bus.Tenant), 1);
        }
    }

    private void Set(EventBusRecord bus)
    {
        var key = KeyOf(bus);
        if (_buses.TryAdd(key, bus)) PerTenant.Add(TenantNames.Of(bus.Tenant), 1);
        else _buses[key] = bus;
        _changes.Mark(StoredKind.Bus, key);
    }

    private void Delete(EventBusRecord bus)
    {
        var key = KeyOf(bus);
        if (_buses.Remove(key)) PerTenant.Add(TenantNames.Of(bus.Tenant), -1);
        _changes.Mark(StoredKind.Bus, key);
    }

    /// <summary>Every bus.</summary>
    public IEnumerable<EventBusRecord> Buses => _buses.Values;

    /// <summary>True when a bus of this name is registered here in <paramref name="tenant"/>.</summary>
    public bool Contains(string name, string tenant = TenantNames.Default) => _buses.ContainsKey(TenantNames.Key(tenant, name));

    /// <summary>The bus of this name in <paramref name="tenant"/>, or null.</summary>
    public EventBusRecord? Find(string name, string tenant = TenantNames.Default) => _buses.GetValueOrDefault(TenantNames.Key(tenant, name));

    /// <summary>How many buses are registered.</summary>
    public int Count => _buses.Count;

    /// <summary>Checks a registration's fields (everything but the owner's existence).</summary>
    public static void Validate(EventBusRegistration registration)
    {
        Reject.IfBadIdentifier(registration.Name, "name");
        Reject.IfBadIdentifier(registration.NodeId, "nodeId");
        if (registration.Kind is null || !Kinds.Contains(registration.Kind))
            throw Reject.InvalidArgument("kind", $"Field 'kind' must be one of {string.Join(", ", Kinds)}, not '{registration.Kind}'.",
                ("value", registration.Kind ?? ""), ("allowed", string.Join(",", Kinds)));
        if (registration.Endpoints is null)
            throw Reject.InvalidArgument("endpoints", "Field 'endpoints' must be a list (empty for an in-process bus).");
        if (registration.Endpoints.Count > MaxEndpoints)
            throw Reject.InvalidArgument("endpoints", $"Field 'endpoints' has more than {MaxEndpoints} entries.", ("limit", MaxEndpoints.ToString()));
        foreach (var endpoint in registration.Endpoints)
        {
            if (string.IsNullOrWhiteSpace(endpoint))
                throw Reject.InvalidArgument("endpoints", "Field 'endpoints' holds an empty endpoint.");
            Reject.IfTooLong(endpoint, "endpoints", 1024);
        }
        Reject.IfBadMetadata(registration.Metadata, "metadata");
    }

    /// <summary>Registers or updates a bus owned by <paramref name="owner"/> (in the owner's tenant).</summary>
    public EventBusRecord Register(EventBusRegistration registration, NodeRecord owner)
    {
        Validate(registration);
        if (_buses.TryGetValue(TenantNames.Key(TenantNames.Of(owner.Tenant), registration.Name), out var existing))
        {
            if (existing.NodeId != registration.NodeId)
                throw Reject.NotOwner($"Bus '{registration.Name}' is registered by node '{existing.NodeId}'.",
                    ("name", registration.Name), ("nodeId", registration.NodeId), ("owner", existing.NodeId));
            var updated = existing with
            {
                Kind = registration.Kind,
                Endpoints = registration.Endpoints.ToArray(),
                Metadata = registration.Metadata,
                Health = owner.Health,
            };
            if (Same(existing, updated)) return existing;
            Set(updated);
            _journal.Record(ChangeTypes.BusUpdated, updated.Name, ChangeJournal.Of(updated), ChangeJournal.Of(existing));
            return updated;
        }

        var record = new EventBusRecord
        {
            Name = registration.Name,
            Kind = registration.Kind,
            Endpoints = registration.Endpoints.ToArray(),
            NodeId = registration.NodeId,
            Health = owner.Health,
            RegisteredAt = _time.GetUtcNow().ToUnixTimeMilliseconds(),
            Metadata = registration.Metadata,
            Tenant = owner.Tenant,
        };
        Set(record);
        _journal.Record(ChangeTypes.BusRegistered, record.Name, ChangeJournal.Of(record), null);
        return record;
    }

    /// <summary>Removes a bus of <paramref name="tenant"/>; only its owner may.</summary>
    public void Deregister(EventBusDeregistration deregistration, string tenant = TenantNames.Default)
    {
        Reject.IfBlank(deregistration.Name, "name");
        Reject.IfBlank(deregistration.NodeId, "nodeId");
        if (!_buses.TryGetValue(TenantNames.Key(tenant, deregistration.Name), out var existing))
            throw Reject.NotFound($"No bus named '{deregistration.Name}' is registered.", ("name", deregistration.Name));
        if (existing.NodeId != deregistration.NodeId)
            throw Reject.NotOwner($"Bus '{deregistration.Name}' is registered by node '{existing.NodeId}'.",
                ("name", deregistration.Name), ("nodeId", deregistration.NodeId), ("owner", existing.NodeId));
        Delete(existing);
        _journal.Record(ChangeTypes.BusRemoved, existing.Name, null, ChangeJournal.Of(existing));
    }

    /// <summary>Sets the health of every bus of <paramref name="nodeId"/>, broadcasting <c>bus.updated</c> for each.</summary>
    public void SetHealthOf(string nodeId, string health, string tenant = TenantNames.Default)
    {
        foreach (var bus in OwnedBy(nodeId, tenant))
        {
            if (bus.Health == health) continue;
            var updated = bus with { Health = health };
            Set(updated);
            _journal.Record(ChangeTypes.BusUpdated, bus.Name, ChangeJournal.Of(updated), ChangeJournal.Of(bus));
        }
    }

    /// <summary>Removes every bus of <paramref name="nodeId"/>, broadcasting <c>bus.removed</c> for each.</summary>
    public void RemoveAllOf(string nodeId, string tenant = TenantNames.Default)
    {
        foreach (var bus in OwnedBy(nodeId, tenant))
        {
            Delete(bus);
            _journal.Record(ChangeTypes.BusRemoved, bus.Name, null, ChangeJournal.Of(bus));
        }
    }

    private List<EventBusRecord> OwnedBy(string nodeId, string tenant) =>
        _buses.Values.Where(b => b.NodeId == nodeId && TenantNames.Of(b.Tenant) == tenant).OrderBy(b => b.Name, StringComparer.Ordinal).ToList();

    private static bool Same(EventBusRecord a, EventBusRecord b) =>
        a.Kind == b.Kind && a.Health == b.Health && a.Endpoints.SequenceEqual(b.Endpoints)
        && NodeDirectory.MetadataEquals(a.Metadata, b.Metadata);
}
