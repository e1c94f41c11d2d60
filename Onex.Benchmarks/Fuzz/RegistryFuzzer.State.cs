using System.Text;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Benchmarks.Fuzz;

/// <summary>
/// The exact check after each batch: between the snapshot before and the snapshot after, the watched change stream
/// holds exactly the changes of the requests the fuzzer got a success for (each change attributable to one of them, or
/// to the registry's own timers: expiry, missed heartbeats, a grace period, a removed owner), and the snapshot after
/// equals the snapshot before with those changes applied, for leases, nodes, buses and tools.
/// </summary>
internal sealed partial class RegistryFuzzer
{
    private const string DefaultTenant = "default";

    private readonly Dictionary<(string ClientId, string RequestId), List<byte[]>> _batchFrames = [];
    private readonly Dictionary<(string ClientId, string RequestId), string> _batchCodes = [];
    private readonly List<(RegistryEnvelope Reply, string Tenant)> _acknowledged = [];
    private readonly HashSet<string> _everGranted = new(StringComparer.Ordinal);
    private RegistrySnapshot? _before;
    private long _batch;
    private long _timerChanges;
    private long _attributedChanges;

    /// <summary>Keeps a sent request's frame for this batch's check (by the ids the node will echo).</summary>
    private void Sent(byte[] frame)
    {
        var (requestId, clientId) = RegistryCodec.TryReadIds(frame);
        if (requestId is null || clientId is null) return;
        if (!_batchFrames.TryGetValue((clientId, requestId), out var frames)) _batchFrames[(clientId, requestId)] = frames = [];
        frames.Add(frame);
    }

    /// <summary>Notes a reply for this batch's check; <paramref name="tenant"/> is the tenant the request acted in.</summary>
    private void Replied(byte[] frame, string? tenant)
    {
        RegistryEnvelope reply;
        try
        {
            reply = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
        }
        catch (OnexException)
        {
            return; // counted as a bad reply already
        }
        var ok = reply.MessageType != nameof(Error);
        _batchCodes[(reply.ClientId, reply.RequestId)] = ok ? "OK" : RegistryCodec.DecodeBody<Error>(reply).Code;
        if (ok) _acknowledged.Add((reply, tenant ?? DefaultTenant));
    }

    /// <summary>The snapshot the first batch starts from.</summary>
    private void StartState()
    {
        _before = Snapshot();
        _watch.UpTo(_before.Sequence, what => Problem(what));
        foreach (var lease in _before.Leases) _everGranted.Add(lease.LeaseId);
    }

    private RegistrySnapshot Snapshot() => Expect<RegistrySnapshot>(Call(new SnapshotRequest(), _auth?.A.Admin));

    /// <summary>Checks the batch that just ended against <paramref name="after"/>; returns how many mismatches it found.</summary>
    private int CheckBatch(RegistrySnapshot after)
    {
        _batch++;
        var mismatches = 0;
        var changes = _watch.UpTo(after.Sequence, what => Problem(what));
        var allowances = Allowances();
        var removedNodes = changes.Where(c => c.ChangeType == ChangeTypes.NodeRemoved).Select(c => EntityKey("node", Tenant(c), c.Key)).ToHashSet(StringComparer.Ordinal);
        var model = State(_before!);
        var pauseEnd = -1;
        for (var i = 0; i < changes.Count; i++)
        {
            var change = changes[i];
            var tenant = Tenant(change);
            var kind = change.ChangeType[..change.ChangeType.IndexOf('.', StringComparison.Ordinal)];
            var key = EntityKey(kind, tenant, change.Key);
            if (change.ChangeType == ChangeTypes.LeaseGranted) _everGranted.Add(change.Key);
            if (change.ChangeType == ChangeTypes.LeaseRenewed && i >= pauseEnd && PauseExtension(changes, i, model) is var extended and > 0)
                pauseEnd = i + extended;
            if (i < pauseEnd) _timerChanges++;
            else if (TakeAllowance(allowances, change, tenant)) _attributedChanges++;
            else if (ByTimer(change, removedNodes)) _timerChanges++;
            else mismatches += Mismatch($"change {change.Sequence} {change.ChangeType} {tenant}/{change.Key} is not attributable to an acknowledged request of the batch", change.Key);

            var old = Normalized(change.OldValue);
            if (old is not null && (!model.TryGetValue(key, out var held) || !held.AsSpan().SequenceEqual(old)))
                mismatches += Mismatch($"change {change.Sequence} {change.ChangeType} {tenant}/{change.Key}: its oldValue is not the state before it", change.Key);
            if (old is null && model.ContainsKey(key))
                mismatches += Mismatch($"change {change.Sequence} {change.ChangeType} {tenant}/{change.Key} adds what the state already held", change.Key);
            if (Normalized(change.NewValue) is { } value) model[key] = value;
            else model.Remove(key);
        }

        // Every new lease an acknowledged grant names was announced; every acknowledged release took its lease away.
        var state = State(after);
        foreach (var (reply, tenant) in _acknowledged)
        {
            if (reply.MessageType == nameof(PortGrant))
            {
                foreach (var lease in RegistryCodec.DecodeBody<PortGrant>(reply).Leases.Where(l => !_everGranted.Contains(l.LeaseId)))
                    mismatches += Mismatch($"lease {lease.LeaseId} of an acknowledged PortGrant ({reply.RequestId}) was never streamed as lease.granted", lease.LeaseId);
            }
            foreach (var release in Requests<LeaseRelease>(reply).Where(r => reply.MessageType == nameof(Ack)))
            {
                if (state.ContainsKey(EntityKey("lease", tenant, release.LeaseId)))
                    mismatches += Mismatch($"lease {release.LeaseId} is still held after an acknowledged LeaseRelease ({reply.RequestId})", release.LeaseId);
            }
        }

        // The snapshot after is the snapshot before with the changes applied.
        foreach (var (key, value) in state)
        {
            if (!model.TryGetValue(key, out var expected)) mismatches += Mismatch($"{key} is in the snapshot at {after.Sequence} but no change of the batch made it", KeyOf(key));
            else if (!expected.AsSpan().SequenceEqual(value)) mismatches += Mismatch($"{key} in the snapshot at {after.Sequence} differs from the state its changes describe", KeyOf(key));
        }
        foreach (var key in model.Keys.Where(k => !state.ContainsKey(k)))
            mismatches += Mismatch($"{key} is missing from the snapshot at {after.Sequence} though no change of the batch removed it", KeyOf(key));

        _before = after;
        _batchFrames.Clear();
        _batchCodes.Clear();
        _acknowledged.Clear();
        return mismatches;
    }

    // What the acknowledged requests of the batch may have changed: "changeFamily|tenant|key" -> how many changes.
    private Dictionary<string, int> Allowances()
    {
        var allowances = new Dictionary<string, int>(StringComparer.Ordinal);
        void Allow(string family, string? tenant, string key, int count = 1) =>
            allowances[$"{family}|{tenant ?? DefaultTenant}|{key}"] = allowances.GetValueOrDefault($"{family}|{tenant ?? DefaultTenant}|{key}") + count;
        foreach (var (reply, tenant) in _acknowledged)
        {
            switch (reply.MessageType)
            {
                case nameof(PortGrant):
                    foreach (var lease in RegistryCodec.DecodeBody<PortGrant>(reply).Leases)
                    {
                        Allow(ChangeTypes.LeaseGranted, lease.Tenant, lease.LeaseId);
                        Allow(ChangeTypes.LeaseRenewed, lease.Tenant, lease.LeaseId); // a reclaim by the holder
                    }
                    break;
                case nameof(PortLease):
                    var renewed = RegistryCodec.DecodeBody<PortLease>(reply);
                    Allow(ChangeTypes.LeaseRenewed, renewed.Tenant, renewed.LeaseId);
                    Allow(ChangeTypes.LeaseGranted, renewed.Tenant, renewed.LeaseId); // the replacement of a PortConflict
                    foreach (var conflict in Requests<PortConflict>(reply)) Allow(ChangeTypes.LeaseConflicted, renewed.Tenant, conflict.LeaseId);
                    break;
                case nameof(NodeRecord):
                    var node = RegistryCodec.DecodeBody<NodeRecord>(reply);
                    Allow("node.set", node.Tenant, node.NodeId, 2); // registered or updated, and healthy again
                    break;
                case nameof(EventBusRecord):
                    var bus = RegistryCodec.DecodeBody<EventBusRecord>(reply);
                    Allow("bus.set", bus.Tenant, bus.Name);
                    break;
                case nameof(ToolContractRecord):
                    var tool = RegistryCodec.DecodeBody<ToolContractRecord>(reply);
                    Allow(ChangeTypes.ToolRegistered, tool.Tenant, $"{tool.Name}@{tool.Version}");
                    break;
                case nameof(Ack):
                    foreach (var release in Requests<LeaseRelease>(reply)) Allow(ChangeTypes.LeaseReleased, tenant, release.LeaseId);
                    foreach (var heartbeat in Requests<NodeHeartbeat>(reply)) Allow("node.set", tenant, heartbeat.NodeId);
                    foreach (var departure in Requests<NodeDeparture>(reply)) Allow(ChangeTypes.NodeRemoved, tenant, departure.NodeId);
                    foreach (var deregistration in Requests<EventBusDeregistration>(reply)) Allow(ChangeTypes.BusRemoved, tenant, deregistration.Name);
                    break;
            }
        }
        return allowances;
    }

    private static bool TakeAllowance(Dictionary<string, int> allowances, RegistryChange change, string tenant)
    {
        var family = change.ChangeType switch
        {
            ChangeTypes.NodeRegistered or ChangeTypes.NodeUpdated or ChangeTypes.NodeHealthy => "node.set",
            ChangeTypes.BusRegistered or ChangeTypes.BusUpdated => "bus.set",
            _ => change.ChangeType,
        };
        var key = $"{family}|{tenant}|{change.Key}";
        if (allowances.GetValueOrDefault(key) <= 0) return false;
        allowances[key]--;
        return true;
    }

    // Changes the registry makes by itself (PROTOCOL.md section 10's table): expiry, missed heartbeats, the grace period,
    // an owner's health or removal.
    private static bool ByTimer(RegistryChange change, HashSet<string> removedNodes)
    {
        var old = change.OldValue;
        var now = change.NewValue;
        var tenant = Tenant(change);
        return change.ChangeType switch
        {
            ChangeTypes.LeaseExpired => old?.Lease is { } lease && (lease.ExpiresAt <= change.Timestamp || removedNodes.Contains(EntityKey("node", tenant, lease.NodeId))),
            ChangeTypes.NodeUnhealthy => old?.Node is { } node && node.LastSeenAt + 3 * node.HeartbeatIntervalMs <= change.Timestamp,
            ChangeTypes.NodeRemoved => old?.Node is { Health: Health.Unhealthy },
            ChangeTypes.BusUpdated => old?.Bus is { } before && now?.Bus is { } bus && Same(before with { Health = bus.Health }, bus),
            ChangeTypes.ToolUpdated => old?.Tool is { } before && now?.Tool is { } tool && Same(before with { Health = tool.Health }, tool),
            ChangeTypes.BusRemoved => old?.Bus is { } bus && removedNodes.Contains(EntityKey("node", tenant, bus.NodeId)),
            ChangeTypes.ToolRemoved => old?.Tool is { } tool && removedNodes.Contains(EntityKey("node", tenant, tool.NodeId)),
            _ => false,
        };
    }

    // A registry that finds it was paused extends every live lease by the pause, as consecutive lease.renewed changes in
    // lease id order with one timestamp (PROTOCOL.md section 7). Returns how many changes from index start are such a
    // run covering every lease of the state, else 0.
    private static int PauseExtension(List<RegistryChange> changes, int start, Dictionary<string, byte[]> model)
    {
        var held = model.Keys.Where(k => k.StartsWith("lease|", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var count = held.Count;
        if (count == 0 || start + count > changes.Count) return 0;
        var first = changes[start];
        long? delta = null;
        for (var i = start; i < start + count; i++)
        {
            var change = changes[i];
            if (change.ChangeType != ChangeTypes.LeaseRenewed || change.Timestamp != first.Timestamp
                || change.OldValue?.Lease is not { } old || change.NewValue?.Lease is not { } renewed
                || !held.Remove(EntityKey("lease", old.Tenant, old.LeaseId))
                || !Same(old with { ExpiresAt = renewed.ExpiresAt }, renewed))
                return 0;
            delta ??= renewed.ExpiresAt - old.ExpiresAt;
            if (delta <= 0 || renewed.ExpiresAt - old.ExpiresAt != delta) return 0;
        }
        return count;
    }

    private static bool Same<T>(T a, T b) => RegistryCodec.SerializeBody(a).AsSpan().SequenceEqual(RegistryCodec.SerializeBody(b));

    // The requests of type T sent this batch under the reply's ids (several when mutated copies shared them).
    private IEnumerable<T> Requests<T>(RegistryEnvelope reply) where T : class
    {
        if (!_batchFrames.TryGetValue((reply.ClientId, reply.RequestId), out var frames)) yield break;
        foreach (var frame in frames)
        {
            T? request = null;
            try
            {
                var envelope = RegistryCodec.Decode(frame);
                if (envelope.MessageType == MessageTypes.Of<T>()) request = RegistryCodec.DecodeBody<T>(envelope);
            }
            catch (OnexException)
            {
                // a mutated copy the node refused
            }
            if (request is not null) yield return request;
        }
    }

    // "kind|tenant|key" -> the record's bytes (a node's lastSeenAt left out: heartbeats move it without a change).
    private static Dictionary<string, byte[]> State(RegistrySnapshot snapshot)
    {
        var state = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var lease in snapshot.Leases) state[EntityKey("lease", lease.Tenant, lease.LeaseId)] = Normalized(new RegistryEntity { Lease = lease })!;
        foreach (var node in snapshot.Nodes) state[EntityKey("node", node.Tenant, node.NodeId)] = Normalized(new RegistryEntity { Node = node })!;
        foreach (var bus in snapshot.Buses) state[EntityKey("bus", bus.Tenant, bus.Name)] = Normalized(new RegistryEntity { Bus = bus })!;
        foreach (var tool in snapshot.Tools) state[EntityKey("tool", tool.Tenant, $"{tool.Name}@{tool.Version}")] = Normalized(new RegistryEntity { Tool = tool })!;
        return state;
    }

    private static byte[]? Normalized(RegistryEntity? entity) => entity switch
    {
        { Lease: { } lease } => RegistryCodec.SerializeBody(lease),
        { Node: { } node } => RegistryCodec.SerializeBody(node with { LastSeenAt = 0 }),
        { Bus: { } bus } => RegistryCodec.SerializeBody(bus),
        { Tool: { } tool } => RegistryCodec.SerializeBody(tool),
        _ => null,
    };

    private static string Tenant(RegistryChange change)
    {
        var entity = change.NewValue ?? change.OldValue;
        return (entity?.Lease?.Tenant ?? entity?.Node?.Tenant ?? entity?.Bus?.Tenant ?? entity?.Tool?.Tenant) ?? DefaultTenant;
    }

    private static string EntityKey(string kind, string? tenant, string key) => $"{kind}|{tenant ?? DefaultTenant}|{key}";

    private static string KeyOf(string entityKey) => entityKey[(entityKey.LastIndexOf('|') + 1)..];

    // A mismatch with the seed, the batch and the requests of the batch that name the key (the suspects), so the run
    // can be repeated and the message found.
    private int Mismatch(string what, string key)
    {
        var needle = Encoding.UTF8.GetBytes(key);
        var suspects = _batchFrames
            .SelectMany(entry => entry.Value.Select(frame => (entry.Key, Frame: frame)))
            .Where(s => s.Frame.AsSpan().IndexOf(needle) >= 0)
            .Take(3)
            .Select(s => $"{s.Key.RequestId} ({_batchCodes.GetValueOrDefault(s.Key, "no reply")}): {Convert.ToBase64String(s.Frame)}");
        Problem($"seed {_seed}, batch {_batch}: {what}; requests naming it: [{string.Join("; ", suspects)}]");
        return 1;
    }
}
