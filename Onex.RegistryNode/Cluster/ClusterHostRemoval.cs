using NATS.Client.KeyValueStore;
using Onex.Protocol;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// The removal of a stale host from the bucket, in three steps that keep it exactly once whatever two registries
/// interleave (docs/CLUSTER.md, "Host failure"):
/// <list type="number">
/// <item><see cref="TakeAsync"/>: compare-and-set the host's heartbeat key, at the revision the remover last saw of it
/// (the host's last heartbeat, or a stalled remover's marker, or the deletion that ended an earlier removal), to a marker
/// naming the remover. Never create-if-absent: NATS's create also succeeds on a deleted key, so a registry whose view
/// lags would take a host that another registry has just removed.</item>
/// <item><see cref="DeleteEntriesAsync"/>: the host's entries and claims (idempotent: a registry that takes over a stalled
/// removal deletes what is left).</item>
/// <item><see cref="FinishAsync"/>: delete the heartbeat key at the marker's revision. Only the remover whose finish
/// succeeds has removed the host; a remover taken over (or a host that wrote a heartbeat meanwhile) fails here.</item>
/// </list>
/// </summary>
internal static class ClusterHostRemoval
{
    /// <summary>
    /// Step 1: the revision of this remover's marker, or null when the key is no longer at <paramref name="seenRevision"/>
    /// (another registry took it, or the host is alive) or when no revision was ever seen (0: nothing to compare against).
    /// </summary>
    public static async Task<ulong?> TakeAsync(INatsKVStore store, string host, ulong seenRevision, string remover, long nowMs, CancellationToken ct)
    {
        if (seenRevision == 0) return null;
        var marker = RegistryCodec.SerializeBody(new ClusterHeartbeat { Host = host, RemovedBy = remover, SentAt = nowMs });
        var taken = await store.TryUpdateAsync(ClusterKeys.Heartbeat(host), marker, seenRevision, cancellationToken: ct).ConfigureAwait(false);
        return taken.Success ? taken.Value : null;
    }

    /// <summary>Step 2: deletes the host's entries (every tenant, not its heartbeat key) and the claims it holds; returns how many entries.</summary>
    public static async Task<int> DeleteEntriesAsync(INatsKVStore store, string host, CancellationToken ct)
    {
        var heartbeatKey = ClusterKeys.Heartbeat(host);
        var removed = 0;
        await foreach (var key in store.GetKeysAsync([ClusterKeys.HostPrefix(host)], cancellationToken: ct).ConfigureAwait(false))
        {
            if (key == heartbeatKey) continue;
            await store.DeleteAsync(key, cancellationToken: ct).ConfigureAwait(false);
            removed++;
        }
        await foreach (var key in store.GetKeysAsync([ClusterKeys.ClaimPrefix], cancellationToken: ct).ConfigureAwait(false))
        {
            var entry = await store.TryGetEntryAsync<byte[]>(key, cancellationToken: ct).ConfigureAwait(false);
            if (!entry.Success || entry.Value.Value is not { } value || TryDecodeClaim(value)?.Host != host) continue;
            await store.TryDeleteAsync(key, new NatsKVDeleteOpts { Revision = entry.Value.Revision }, ct).ConfigureAwait(false);
        }
        return removed;
    }

    /// <summary>Step 3: deletes the heartbeat key if it still holds this remover's marker (<paramref name="markerRevision"/>); true when it did.</summary>
    public static async Task<bool> FinishAsync(INatsKVStore store, string host, ulong markerRevision, CancellationToken ct)
    {
        var deleted = await store.TryDeleteAsync(ClusterKeys.Heartbeat(host), new NatsKVDeleteOpts { Revision = markerRevision }, ct).ConfigureAwait(false);
        return deleted.Success;
    }

    private static ClusterClaim? TryDecodeClaim(byte[] value)
    {
        try
        {
            return RegistryCodec.DeserializeBody<ClusterClaim>(value);
        }
        catch (Onex.Errors.OnexException)
        {
            return null;
        }
    }
}
