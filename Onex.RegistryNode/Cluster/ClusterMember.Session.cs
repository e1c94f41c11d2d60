using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Protocol;
using Polly;
using Polly.Retry;

namespace Onex.RegistryNode.Cluster;

internal sealed partial class ClusterMember
{
    /// <summary>Connects, then runs one session per connected period until the registry stops.</summary>
    private async Task RunAsync(CancellationToken ct)
    {
        var connection = new NatsConnection(NatsOpts.Default with
        {
            Url = _options.Servers,
            Name = $"onex-registry {HostName}",
            MaxReconnectRetry = -1,
            RetryOnInitialConnect = true,
            ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
            ReconnectWaitMax = TimeSpan.FromSeconds(2),
            RequestTimeout = _options.RequestTimeout,
        });
        _connection = connection;
        var disconnected = new SemaphoreSlim(0);
        connection.ConnectionDisconnected += (_, _) =>
        {
            _connected = false;
            SignalCurrent(false);
            disconnected.Release();
            return ValueTask.CompletedTask;
        };
        // A session that fails (JetStream not ready yet, the server went away mid-load) starts again after a backoff.
        var retry = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException || !ct.IsCancellationRequested),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(100),
            MaxDelay = TimeSpan.FromSeconds(2),
            OnRetry = args =>
            {
                LogSessionFailed(args.Outcome.Exception?.Message ?? "ended");
                return ValueTask.CompletedTask;
            },
        }).Build();
        try
        {
            await retry.ExecuteAsync(async token =>
            {
                while (!token.IsCancellationRequested)
                {
                    await connection.ConnectAsync().ConfigureAwait(false);
                    // Core NATS subscriptions come back by themselves after a reconnect: the service is added once.
                    if (_natsDispatch is { } dispatch && _natsEndpoint is null)
                        Volatile.Write(ref _natsEndpoint, await RegistryNatsEndpoint.StartAsync(connection, HostName, _natsMetadata!, dispatch, _logger, token).ConfigureAwait(false));
                    while (disconnected.CurrentCount > 0) await disconnected.WaitAsync(token).ConfigureAwait(false);
                    await RunSessionAsync(connection, disconnected, token).ConfigureAwait(false);
                }
            }, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>One connected period: bucket, full load, full re-publication, then watch, mirror, heartbeat and judge until it ends.</summary>
    private async Task RunSessionAsync(NatsConnection connection, SemaphoreSlim disconnected, CancellationToken ct)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var kv = connection.CreateKeyValueStoreContext();
        var store = await OpenBucketAsync(connection, kv, session.Token).ConfigureAwait(false);
        _loaded = false;
        _connected = true;
        // Anything queued before this session is covered by the full re-publication below.
        while (_mirror.Reader.TryRead(out var dropped)) KeepFlushes(dropped);
        _sessionActive = true;
        Volatile.Write(ref _store, store);
        LogSessionStarted(HostName, _options.Bucket);
        try
        {
            // Other hosts' heartbeats restart their window: nothing could be judged while this registry was away.
            var now = NowMs();
            foreach (var beat in _heartbeats.Values) Volatile.Write(ref beat.SeenAt, now);
            _ownDeletes.Clear();
            // Unless another registry is removing this host (then its rejoining re-publishes), everything is published again.
            await BeatAsync(store, rejoinOnly: false, session.Token).ConfigureAwait(false);
            var tasks = new[]
            {
                WatchAsync(store, session.Token),
                WriteMirrorAsync(store, session.Token),
                HeartbeatAsync(store, session.Token),
                disconnected.WaitAsync(session.Token),
            };
            var ended = await Task.WhenAny(tasks).ConfigureAwait(false);
            await session.CancelAsync().ConfigureAwait(false);
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            catch (Exception) when (session.IsCancellationRequested)
            {
                // The other loops end with the session.
            }
            await ended.ConfigureAwait(false); // rethrows the failure that ended the session, if any
            if (!ct.IsCancellationRequested) LogDisconnected(HostName);
        }
        finally
        {
            _sessionActive = false;
            _mirrorOpen = false;
            _connected = false;
            SignalCurrent(false);
            _loaded = false;
            Volatile.Write(ref _store, null);
        }
    }

    private async Task<INatsKVStore> OpenBucketAsync(NatsConnection connection, INatsKVContext kv, CancellationToken ct)
    {
        try
        {
            return await kv.GetStoreAsync(_options.Bucket, ct).ConfigureAwait(false);
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
        }
        // R3 on a cluster of at least three servers (JetStream's Raft then survives the loss of one), R1 on a single server.
        var servers = Math.Max(_options.Servers.Split(',').Length, connection.ServerInfo?.ClientConnectUrls?.Count() ?? 0);
        var replicas = _options.Replicas ?? (servers >= 3 ? 3 : 1);
        var config = new NatsKVConfig(_options.Bucket)
        {
            Description = "OnexBus registry catalogue (docs/CLUSTER.md)",
            History = 1,
            NumberOfReplicas = replicas,
            Storage = NatsKVStorageType.File,
            MaxValueSize = 4 * 1024 * 1024,
        };
        var store = await kv.CreateStoreAsync(config, ct).ConfigureAwait(false);
        LogBucketCreated(_options.Bucket, replicas);
        return store;
    }

    private async Task HeartbeatAsync(INatsKVStore store, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, _time);
        while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
        {
            await BeatAsync(store, rejoinOnly: true, ct).ConfigureAwait(false);
            if (_resyncLost)
            {
                _resyncLost = false;
                RequestResync();
            }
            if (_loaded) await JudgeHostsAsync(store, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Writes this host's heartbeat key at the revision last written (<see cref="ClusterHostHeartbeat"/>): never over a
    /// removal marker this registry has not seen; a removal that ended (or stalled) makes the host rejoin. Asks for a
    /// full re-publication when the host rejoined, or at every outcome but a removal under way unless <paramref name="rejoinOnly"/>.
    /// </summary>
    private async Task<HeartbeatOutcome> BeatAsync(INatsKVStore store, bool rejoinOnly, CancellationToken ct)
    {
        var wasRemoved = _ownBeat.RemovedBy is not null;
        var outcome = await _ownBeat.BeatAsync(store, HeartbeatValue(), NowMs(), ct).ConfigureAwait(false);
        switch (outcome)
        {
            case HeartbeatOutcome.RemovalUnderWay when !wasRemoved:
                LogRemovedByOther(_ownBeat.RemovedBy ?? "another registry");
                break;
            case HeartbeatOutcome.Rejoined:
                LogRejoined(HostName);
                break;
        }
        if (outcome == HeartbeatOutcome.RemovalUnderWay) return outcome;
        if (outcome == HeartbeatOutcome.Rejoined || !rejoinOnly) RequestResync();
        // Counted once the re-publication is asked for: a flush asked for after a caller sees the count waits for it.
        if (outcome == HeartbeatOutcome.Rejoined) Interlocked.Increment(ref _rejoins);
        return outcome;
    }

    /// <summary>Other hosts whose heartbeat is stale turn unhealthy here; after the grace period, one registry removes them.</summary>
    private async Task JudgeHostsAsync(INatsKVStore store, CancellationToken ct)
    {
        var now = NowMs();
        foreach (var (host, beat) in _heartbeats)
        {
            if (beat.Gone) continue;
            var silent = now - Volatile.Read(ref beat.SeenAt);
            var unhealthySince = Volatile.Read(ref beat.UnhealthySince);
            if (unhealthySince == 0)
            {
                if (silent <= beat.IntervalMs * _options.MissedHeartbeats) continue;
                Volatile.Write(ref beat.UnhealthySince, now);
                LogHostUnhealthy(host, silent);
                Inbox.Post(state => Catalog.SetHostHealth(state, host, unhealthy: true));
            }
            else if (now - unhealthySince >= (long)_options.RemovalGrace.TotalMilliseconds)
            {
                await TryRemoveHostAsync(store, host, beat, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Removes a stale host's entries and claims, exactly once in the cluster (<see cref="ClusterHostRemoval"/>): only the
    /// registry whose compare-and-set of the host's heartbeat key, at the revision it last saw, succeeds goes on, and only
    /// the one whose marker is still there at the end counts the removal. The heartbeat key is deleted last, which tells
    /// the host itself (if it comes back) to publish again.
    /// </summary>
    private async Task TryRemoveHostAsync(INatsKVStore store, string host, HostHeartbeat beat, CancellationToken ct)
    {
        var seen = Interlocked.Read(ref beat.Revision);
        var marker = await ClusterHostRemoval.TakeAsync(store, host, seen, HostName, NowMs(), ct).ConfigureAwait(false);
        if (marker is not { } markerRevision)
        {
            // Another registry took it, or the host wrote a heartbeat meanwhile, or this registry has not seen the key
            // yet: the watch shows which. Asked again a grace period later at the revision seen by then.
            Volatile.Write(ref beat.UnhealthySince, NowMs());
            return;
        }
        var removed = await ClusterHostRemoval.DeleteEntriesAsync(store, host, ct).ConfigureAwait(false);
        if (!await ClusterHostRemoval.FinishAsync(store, host, markerRevision, ct).ConfigureAwait(false))
        {
            LogRemovalOvertaken(host);
            return;
        }
        Interlocked.Increment(ref _hostsRemoved);
        LogHostRemoved(host, removed);
    }

    /// <summary>
    /// Feeds every change of the bucket (every tenant) to the catalogue; the first pass is a full load, reconciled at its
    /// end. A watchdog (<see cref="ClusterWatchdog"/>) re-creates a watch that stopped delivering from the revision after
    /// the last one it delivered.
    /// </summary>
    private async Task WatchAsync(INatsKVStore store, CancellationToken ct)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var seenHosts = new HashSet<string>(StringComparer.Ordinal);
        var loading = true;
        long delivered = 0;
        void FinishLoad()
        {
            if (!loading) return;
            loading = false;
            var present = seen;
            Inbox.Post(state =>
            {
                foreach (var source in Catalog.Sources().Where(k => !present.Contains(k))) Catalog.Delete(state, source);
                foreach (var host in Catalog.Hosts.ToList()) Catalog.ForgetHost(host);
                _loaded = true;
                SignalCurrent(Current);
            });
            LogLoaded(present.Count, seenHosts.Count);
        }
        var watchdog = new ClusterWatchdog();
        while (true)
        {
            var generation = Interlocked.Increment(ref _watchGeneration);
            using var watch = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var last = (ulong)Interlocked.Read(ref delivered);
            var options = new NatsKVWatchOpts
            {
                OnNoData = _ =>
                {
                    FinishLoad();
                    return ValueTask.FromResult(false);
                },
                // Re-created after a stall: from the revision after the last one delivered (0: from the start, a full load).
                ResumeAtRevision = last == 0 ? 0 : last + 1,
            };
            var guard = GuardWatchAsync(store, watchdog, () => (ulong)Interlocked.Read(ref delivered), watch);
            try
            {
                await foreach (var entry in store.WatchAsync<byte[]>(ClusterKeys.All, opts: options, cancellationToken: watch.Token).ConfigureAwait(false))
                {
                    if (Volatile.Read(ref _heldWatch) is { } held && held.Generation == generation)
                        await held.Open.WaitAsync(watch.Token).ConfigureAwait(false);
                    Apply(entry, loading ? seen : null, seenHosts);
                    NoteWatched(entry.Revision);
                    Interlocked.Exchange(ref delivered, (long)entry.Revision);
                    if (loading && entry.Delta == 0) FinishLoad();
                }
                // The watch ended by itself: so does the session, which starts again. Unless the watchdog ended it.
                if (!watch.IsCancellationRequested || ct.IsCancellationRequested) return;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // Only the watchdog cancels this watch alone.
            }
            finally
            {
                await watch.CancelAsync().ConfigureAwait(false);
                try
                {
                    await guard.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
            Interlocked.Increment(ref _watchRestarts);
            LogWatchStalled((ulong)Interlocked.Read(ref delivered));
        }
    }

    // Test hook (HoldWatchDelivery): the watch whose delivery is held, and what opens it.
    private long _watchGeneration;
    private HeldWatch? _heldWatch;

    private sealed record HeldWatch(long Generation, Task Open);

    /// <summary>
    /// Test hook: the bucket's watch running now applies nothing more until <paramref name="open"/> completes, as the
    /// stall of NATS.Net's watcher seen on the build machine (docs/CLUSTER.md, Limits). A watch the watchdog re-creates
    /// meanwhile is not held, so a test sees the re-creation and the view catching up.
    /// </summary>
    internal void HoldWatchDelivery(Task open) =>
        Volatile.Write(ref _heldWatch, new HeldWatch(Interlocked.Read(ref _watchGeneration), open));

    /// <summary>How often the watchdog compares the watch with the bucket: five heartbeats, at least 2 s.</summary>
    private TimeSpan WatchCheckInterval => TimeSpan.FromTicks(Math.Max(_options.HeartbeatInterval.Ticks * 5, TimeSpan.FromSeconds(2).Ticks));

    /// <summary>Checks the watch every <see cref="WatchCheckInterval"/>; cancels <paramref name="watch"/> when it stalled.</summary>
    private async Task GuardWatchAsync(INatsKVStore store, ClusterWatchdog watchdog, Func<ulong> delivered, CancellationTokenSource watch)
    {
        using var timer = new PeriodicTimer(WatchCheckInterval, _time);
        while (await timer.WaitForNextTickAsync(watch.Token).ConfigureAwait(false))
        {
            ulong last;
            try
            {
                last = (await store.GetStatusAsync(watch.Token).ConfigureAwait(false)).Info.State.LastSeq;
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException)
            {
                continue; // the bucket is failing over: judged at the next check
            }
            if (!watchdog.Check(delivered(), last)) continue;
            await watch.CancelAsync().ConfigureAwait(false);
            return;
        }
    }

    private void Apply(NatsKVEntry<byte[]> entry, HashSet<string>? seen, HashSet<string> seenHosts)
    {
        if (ClusterKeys.Parse(entry.Key) is not { Host: { } host } key) return; // claims are read when needed
        var put = entry.Operation == NatsKVOperation.Put && entry.Value is not null;
        if (key.Kind == ClusterKinds.Host)
        {
            if (entry.Key != ClusterKeys.Heartbeat(host)) return; // not a key this layout writes
            var beat = put ? TryDecode<ClusterHeartbeat>(entry.Value!) : null;
            // This host's own key: its heartbeat writer reads it at the next beat (and rejoins after a removal).
            if (host == HostName) return;
            var state = _heartbeats.GetOrAdd(host, _ => new HostHeartbeat { SeenAt = NowMs(), IntervalMs = (long)_options.HeartbeatInterval.TotalMilliseconds });
            // Every revision of the key is kept, deletion included: a removal compare-and-sets against the last one seen.
            Interlocked.Exchange(ref state.Revision, entry.Revision);
            if (!put)
            {
                // Removed (its entries were deleted before this key): forget the host once they are gone here too.
                Volatile.Write(ref state.UnhealthySince, 0);
                state.Gone = true;
                Inbox.Post(_ => Catalog.ForgetHost(host));
                return;
            }
            state.Gone = false;
            if (beat is null) return; // not a value this layout writes
            if (beat.RemovedBy is not null)
            {
                // A removal under way: its remover gets a grace period before another registry takes over at this revision.
                if (Volatile.Read(ref state.UnhealthySince) != 0) Volatile.Write(ref state.UnhealthySince, NowMs());
                else Volatile.Write(ref state.SeenAt, NowMs());
                return;
            }
            state.IntervalMs = Math.Max(1, beat.IntervalMs);
            Volatile.Write(ref state.SeenAt, NowMs());
            if (Volatile.Read(ref state.UnhealthySince) != 0)
            {
                Volatile.Write(ref state.UnhealthySince, 0);
                LogHostBack(host);
                Inbox.Post(s => Catalog.SetHostHealth(s, host, unhealthy: false));
            }
            return;
        }
        if (host == HostName)
        {
            // This host's own entries come from its own state. One deleted by someone else (a removal of this host that
            // a heartbeat raced, an operator) is published again; the deletions of its own writer are expected.
            if (!put && !TakeOwnDelete(entry.Key) && seen is null)
            {
                LogOwnEntryDeleted(entry.Key);
                RequestResync();
            }
            return;
        }
        if (put)
        {
            if (seen is not null)
            {
                seen.Add(entry.Key);
                seenHosts.Add(host);
            }
            // A host that has entries but no heartbeat yet gets a window from now; so does one written again after its removal.
            var record = _heartbeats.GetOrAdd(host, _ => new HostHeartbeat { SeenAt = NowMs(), IntervalMs = (long)_options.HeartbeatInterval.TotalMilliseconds });
            if (record.Gone)
            {
                Volatile.Write(ref record.SeenAt, NowMs());
                record.Gone = false;
            }
            var value = entry.Value!;
            var source = entry.Key;
            Inbox.Post(state => Catalog.Put(state, source, host, key.Kind, key.Tenant, key.Name, value));
        }
        else
        {
            var source = entry.Key;
            Inbox.Post(state => Catalog.Delete(state, source));
        }
    }

    /// <summary>Writes this host's committed changes into the bucket, in order; a full re-publication replaces whatever was there.</summary>
    private async Task WriteMirrorAsync(INatsKVStore store, CancellationToken ct)
    {
        await foreach (var item in _mirror.Reader.ReadAllAsync(ct).ConfigureAwait(false))
        {
            switch (item)
            {
                case PutEntry put:
                    await store.PutAsync(ClusterKeys.Entry(put.Tenant, HostName, put.Kind, put.Name), put.Value, cancellationToken: ct).ConfigureAwait(false);
                    break;
                case DeleteEntry delete:
                    await DeleteOwnAsync(store, ClusterKeys.Entry(delete.Tenant, HostName, delete.Kind, delete.Name), ct).ConfigureAwait(false);
                    if (delete.Kind != ClusterKinds.Node)
                        await ReleaseClaimAsync(store, ClusterKeys.Claim(delete.Tenant, delete.Kind, delete.Name), delete.NodeId, ct).ConfigureAwait(false);
                    break;
                case Resync resync:
                    try
                    {
                        await RepublishAsync(store, resync, ct).ConfigureAwait(false);
                    }
                    catch
                    {
                        KeepFlushes(resync);
                        throw;
                    }
                    foreach (var done in resync.Flushes) done.TrySetResult();
                    break;
                case Flush flush:
                    flush.Done.TrySetResult();
                    break;
            }
        }
    }

    /// <summary>Deletes claim <paramref name="key"/> when it is this host's for <paramref name="nodeId"/> (at the revision read).</summary>
    private async Task ReleaseClaimAsync(INatsKVStore store, string key, string nodeId, CancellationToken ct)
    {
        var entry = await store.TryGetEntryAsync<byte[]>(key, cancellationToken: ct).ConfigureAwait(false);
        if (!entry.Success || entry.Value.Value is not { } value) return;
        var claim = TryDecode<ClusterClaim>(value);
        if (claim is null || claim.Host != HostName || claim.NodeId != nodeId) return;
        await store.TryDeleteAsync(key, new NatsKVDeleteOpts { Revision = entry.Value.Revision }, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes this host's whole state (every tenant) with its claims, then deletes the keys of this host it no longer
    /// holds, with the claims they had: entries removed while no session ran, and keys of the layout before tenants were
    /// in keys (a tenant's entry under the token <c>default</c>, now written under its tenant's token). Pipelined: up
    /// to <see cref="ClusterOptions.RepublishInFlight"/> entries at once (64), each entry's own steps in order (a claim is still a
    /// create-if-absent); the first failure ends the re-publication and the session, which starts it again.
    /// </summary>
    private async Task RepublishAsync(INatsKVStore store, Resync resync, CancellationToken ct)
    {
        var wanted = new HashSet<string>(StringComparer.Ordinal) { ClusterKeys.Heartbeat(HostName) };
        var wantedClaims = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (tenant, kind, name, _, claim) in resync.Entries)
        {
            wanted.Add(ClusterKeys.Entry(tenant, HostName, kind, name));
            if (claim is not null) wantedClaims.Add(ClusterKeys.Claim(tenant, kind, name));
        }
        var pipeline = new ParallelOptions { MaxDegreeOfParallelism = _options.RepublishInFlight, CancellationToken = ct };
        await Parallel.ForEachAsync(resync.Entries, pipeline, async (entry, token) =>
        {
            var (tenant, kind, name, value, claim) = entry;
            await store.PutAsync(ClusterKeys.Entry(tenant, HostName, kind, name), value, cancellationToken: token).ConfigureAwait(false);
            if (claim is null) return;
            var claimKey = ClusterKeys.Claim(tenant, kind, name);
            var created = await store.TryCreateAsync(claimKey, RegistryCodec.SerializeBody(claim), cancellationToken: token).ConfigureAwait(false);
            if (created.Success) return;
            var held = await store.TryGetEntryAsync<byte[]>(claimKey, cancellationToken: token).ConfigureAwait(false);
            if (held.Success && held.Value.Value is { } heldValue && TryDecode<ClusterClaim>(heldValue) is { } other && other.Host != HostName)
                LogClaimClash(kind, name, other.Host); // registered here while cut off from the cluster; the other host's claim stands
        }).ConfigureAwait(false);
        var stale = new List<string>();
        await foreach (var key in store.GetKeysAsync([ClusterKeys.HostPrefix(HostName)], cancellationToken: ct).ConfigureAwait(false))
            if (!wanted.Contains(key)) stale.Add(key);
        await Parallel.ForEachAsync(stale, pipeline, async (key, token) =>
        {
            // The owner of a bus or tool is in its value: its claim goes with it, unless an entry held now still needs that claim.
            string? owner = null;
            var parsed = ClusterKeys.Parse(key);
            if (parsed is { Kind: ClusterKinds.Bus or ClusterKinds.Tool }
                && await store.TryGetEntryAsync<byte[]>(key, cancellationToken: token).ConfigureAwait(false) is { Success: true, Value.Value: { } held })
                owner = parsed.Value.Kind == ClusterKinds.Bus ? TryDecode<EventBusRecord>(held)?.NodeId : TryDecode<ToolContractRecord>(held)?.NodeId;
            await DeleteOwnAsync(store, key, token).ConfigureAwait(false);
            if (owner is null) return;
            var claimKey = ClusterKeys.Claim(parsed!.Value.Tenant, parsed.Value.Kind, parsed.Value.Name);
            if (!wantedClaims.Contains(claimKey)) await ReleaseClaimAsync(store, claimKey, owner, token).ConfigureAwait(false);
        }).ConfigureAwait(false);
        LogRepublished(resync.Entries.Count, stale.Count);
    }

    /// <summary>Deletes one of this host's keys, noted first so that the watch does not take the deletion for someone else's.</summary>
    private async Task DeleteOwnAsync(INatsKVStore store, string key, CancellationToken ct)
    {
        _ownDeletes.AddOrUpdate(key, 1, (_, n) => n + 1);
        try
        {
            await store.DeleteAsync(key, cancellationToken: ct).ConfigureAwait(false);
        }
        catch
        {
            TakeOwnDelete(key);
            throw;
        }
    }

    /// <summary>True when a deletion of <paramref name="key"/> by this host's writer was awaited (and no longer is).</summary>
    private bool TakeOwnDelete(string key)
    {
        while (_ownDeletes.TryGetValue(key, out var pending))
        {
            if (pending <= 1 ? _ownDeletes.TryRemove(new KeyValuePair<string, int>(key, pending)) : _ownDeletes.TryUpdate(key, pending - 1, pending))
                return true;
        }
        return false;
    }

    private static T? TryDecode<T>(byte[] value) where T : class
    {
        try
        {
            return RegistryCodec.DeserializeBody<T>(value);
        }
        catch (Onex.Errors.OnexException)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster: host {Host} connected, bucket {Bucket}")]
    private partial void LogSessionStarted(string host, string bucket);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: host {Host} lost its NATS connection; serving this host, the cluster view is stale until it reconnects")]
    private partial void LogDisconnected(string host);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: session ended ({Reason}); starting again")]
    private partial void LogSessionFailed(string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster: created bucket {Bucket} with {Replicas} replica(s)")]
    private partial void LogBucketCreated(string bucket, int replicas);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster: loaded {Entries} entries of {Hosts} other host(s)")]
    private partial void LogLoaded(int entries, int hosts);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster: published {Entries} entries of this host, deleted {Stale} stale key(s)")]
    private partial void LogRepublished(int entries, int stale);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: host {Host} missed its heartbeats for {SilentMs} ms; its entries are unhealthy")]
    private partial void LogHostUnhealthy(string host, long silentMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster: host {Host} is back")]
    private partial void LogHostBack(string host);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: removed stale host {Host} and its {Entries} entries from the bucket")]
    private partial void LogHostRemoved(string host, int entries);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cluster: the removal of host {Host} was taken over by another registry, or the host came back; not counted here")]
    private partial void LogRemovalOvertaken(string host);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: host removal by {Remover} under way (this host was thought dead); its heartbeat waits for the removal to end, then this host publishes again")]
    private partial void LogRemovedByOther(string remover);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: this host's removal is over (or its remover stalled); heartbeat written again, publishing every entry of host {Host} again")]
    private partial void LogRejoined(string host);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: key {Key} of this host was deleted by another registry; publishing this host's entries again")]
    private partial void LogOwnEntryDeleted(string key);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: the bucket's watch delivered nothing for a whole check although the bucket moved past revision {Revision}; watching again from the next revision")]
    private partial void LogWatchStalled(ulong revision);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cluster: {Kind} '{Name}' registered here is claimed by host {Host}; that claim stands")]
    private partial void LogClaimClash(string kind, string name, string host);
}
