using NATS.Client.KeyValueStore;
using Onex.Protocol;

namespace Onex.RegistryNode.Cluster;

/// <summary>What one write of this host's heartbeat key found (<see cref="ClusterHostHeartbeat.BeatAsync"/>).</summary>
internal enum HeartbeatOutcome
{
    /// <summary>The heartbeat was written over this host's own last one: nothing happened to the host meanwhile.</summary>
    Written,

    /// <summary>
    /// Another registry judged this host dead and holds its removal marker: nothing was written (the marker stands), and
    /// this host's entries are being deleted. The host waits for the removal to end.
    /// </summary>
    RemovalUnderWay,

    /// <summary>
    /// The heartbeat was written again after this host had been removed (its key deleted) or after a removal of it that
    /// stalled (its marker stood a grace period): the host's entries are gone or going, so it publishes them all again.
    /// </summary>
    Rejoined,

    /// <summary>The key changed between the read and the write (another write of this host's, or a removal starting): try again at the next beat.</summary>
    Contended,
}

/// <summary>
/// This host's own heartbeat key (docs/CLUSTER.md, "Host failure"), written so that a host never overwrites a removal
/// decision it has not seen: every write is a compare-and-set at the revision this writer last wrote or read
/// (update-at-revision), never a plain put. When the key is not at that revision, the writer reads it:
/// <list type="bullet">
/// <item>this host's own heartbeat (written by an earlier session or a barrier): continued at its revision;</item>
/// <item>another registry's removal marker: left alone (<see cref="HeartbeatOutcome.RemovalUnderWay"/>) until the remover
/// deletes the key, or, if the marker stands unchanged for the removal grace period (its remover stalled), taken over at
/// the marker's revision (<see cref="HeartbeatOutcome.Rejoined"/>), as any other registry would take over a stalled removal;</item>
/// <item>deleted (the removal finished): written again, create-if-absent (<see cref="HeartbeatOutcome.Rejoined"/>).</item>
/// </list>
/// Not thread-safe: one writer per host, its calls one at a time. Times are the caller's clock (milliseconds).
/// </summary>
internal sealed class ClusterHostHeartbeat
{
    private readonly string _key;
    private readonly long _graceMs;
    // The revision this writer last wrote or adopted; 0 before the first write (a new process or session reads first).
    private ulong _revision;
    private ulong _markerRevision;
    private long _markerSeenAt;
    private volatile string? _removedBy;

    public ClusterHostHeartbeat(string host, TimeSpan removalGrace)
    {
        _key = ClusterKeys.Heartbeat(host);
        _graceMs = (long)removalGrace.TotalMilliseconds;
    }

    /// <summary>The registry holding this host's removal marker while <see cref="HeartbeatOutcome.RemovalUnderWay"/>; null otherwise. Thread-safe.</summary>
    public string? RemovedBy => _removedBy;

    /// <summary>The revision of the last heartbeat written; 0 before the first.</summary>
    public ulong Revision => _revision;

    /// <summary>Writes <paramref name="value"/> (this host's heartbeat) unless a removal of the host is under way; see the class.</summary>
    public async Task<HeartbeatOutcome> BeatAsync(INatsKVStore store, byte[] value, long nowMs, CancellationToken ct)
    {
        if (_revision != 0)
        {
            var updated = await store.TryUpdateAsync(_key, value, _revision, cancellationToken: ct).ConfigureAwait(false);
            if (updated.Success)
            {
                _revision = updated.Value;
                return HeartbeatOutcome.Written;
            }
        }
        var current = await store.TryGetEntryAsync<byte[]>(_key, cancellationToken: ct).ConfigureAwait(false);
        if (!current.Success || current.Value.Operation != NatsKVOperation.Put || current.Value.Value is null)
        {
            // Deleted: a removal finished (or the key was never written). NATS's create succeeds on a deleted key.
            var wasRemoved = _revision != 0 || _markerRevision != 0;
            var created = await store.TryCreateAsync(_key, value, cancellationToken: ct).ConfigureAwait(false);
            if (!created.Success) return HeartbeatOutcome.Contended;
            Adopt(created.Value);
            return wasRemoved ? HeartbeatOutcome.Rejoined : HeartbeatOutcome.Written;
        }
        var revision = current.Value.Revision;
        var beat = TryDecode(current.Value.Value);
        if (beat?.RemovedBy is not { } remover)
        {
            // This host's own heartbeat, at a revision this writer had not seen (an earlier session's, or a barrier's).
            var continued = await store.TryUpdateAsync(_key, value, revision, cancellationToken: ct).ConfigureAwait(false);
            if (!continued.Success) return HeartbeatOutcome.Contended;
            var wasUnderRemoval = _markerRevision != 0;
            Adopt(continued.Value);
            return wasUnderRemoval ? HeartbeatOutcome.Rejoined : HeartbeatOutcome.Written;
        }
        if (revision != _markerRevision)
        {
            // A removal started (or was taken over by another registry): its remover gets the grace period to finish it.
            _markerRevision = revision;
            _markerSeenAt = nowMs;
            _removedBy = remover;
            return HeartbeatOutcome.RemovalUnderWay;
        }
        if (nowMs - _markerSeenAt < _graceMs) return HeartbeatOutcome.RemovalUnderWay;
        // The marker stood the grace period: its remover stalled. Taken over at the marker's revision (seen, not blind);
        // the stalled remover's finish then fails, so it does not count the removal.
        var taken = await store.TryUpdateAsync(_key, value, revision, cancellationToken: ct).ConfigureAwait(false);
        if (!taken.Success) return HeartbeatOutcome.Contended;
        Adopt(taken.Value);
        return HeartbeatOutcome.Rejoined;
    }

    private void Adopt(ulong revision)
    {
        _revision = revision;
        _markerRevision = 0;
        _markerSeenAt = 0;
        _removedBy = null;
    }

    private static ClusterHeartbeat? TryDecode(byte[] value)
    {
        try
        {
            return RegistryCodec.DeserializeBody<ClusterHeartbeat>(value);
        }
        catch (Onex.Errors.OnexException)
        {
            return null;
        }
    }
}
