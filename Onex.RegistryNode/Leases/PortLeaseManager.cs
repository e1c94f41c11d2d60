using MessagePack;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.RegistryNode.Tenants;

namespace Onex.RegistryNode.Leases;

/// <summary>
/// Grants, renews, releases, replaces and expires port leases. Every handler validates the whole request
/// before it changes anything, so a rejected request leaves the state as it was. Owned by the registry thread.
/// </summary>
/// <remarks>
/// Fencing tokens come from one registry-wide counter and change only when ownership of a port changes (grant,
/// replacement, reclaim); a renewal keeps the token. PROTOCOL.md only promises that they increase within an
/// epoch; the counter starts at the instance's start time in ms x 1000, so in practice a restarted registry's
/// tokens are also higher than any from before (as long as the clock moves on).
/// </remarks>
internal sealed partial class PortLeaseManager : IDisposable
{
    private readonly LeaseOptions _options;
    private readonly PortPool _pool;
    private readonly IPortAvailability _availability;
    private readonly VerifiedPorts _verified;
    private readonly ChangeJournal _journal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, PortLease> _leases = new(StringComparer.Ordinal);
    // port -> id of the live lease on it, for a reclaim by the holder itself.
    private readonly Dictionary<int, string> _leaseOfPort = new();
    private readonly StateChanges _changes;
    // One entry per live lease; renewals only move expiry later, so a popped entry that is early is pushed again.
    // Ended leases leave their entry behind until it is popped or the queue is rebuilt (see End).
    private readonly PriorityQueue<string, long> _expiries = new();
    // Ids of expired leases (reaper, departure, node removal) -> when they expired; answered LEASE_EXPIRED.
    private readonly Dictionary<string, long> _expired = new(StringComparer.Ordinal);
    private readonly Queue<(string LeaseId, long ForgetAt)> _expiredOrder = new();
    private long _lastFencingToken;
    private readonly string _leaseIdPrefix;
    private long _leaseCounter;

    /// <param name="options">Pool, TTLs, quarantines, pre-verification.</param>
    /// <param name="pool">The ports.</param>
    /// <param name="availability">The free check.</param>
    /// <param name="journal">Where changes are recorded and broadcast.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">The log.</param>
    /// <param name="firstFencingToken">The token of the first grant.</param>
    /// <param name="verifyInBackground">
    /// True: a <see cref="PortVerifier"/> checks ports ahead of demand on its own thread. False: its checks wait for
    /// <see cref="PortVerifier.RunPending"/> (tests that decide when checks happen).
    /// </param>
    /// <param name="changes">Where changed rows are marked for the store; none when null.</param>
    public PortLeaseManager(
        LeaseOptions options, PortPool pool, IPortAvailability availability, ChangeJournal journal,
        TimeProvider time, ILogger logger, long firstFencingToken, bool verifyInBackground = true, StateChanges? changes = null)
    {
        _changes = changes ?? new StateChanges();
        _options = options;
        _pool = pool;
        _availability = availability;
        _journal = journal;
        _time = time;
        _logger = logger;
        // Large batches of checks are answered from the kernel's socket tables where it lists them all (Linux 6.10+).
        Func<ISocketTable?>? tables = verifyInBackground && availability is PortAvailability real ? () => SocketTable.TryOpen(real.Ipv6Available) : null;
        var verifier = new PortVerifier(pool, availability, time, logger, verifyInBackground, tables, options.AlwaysReadSocketTables);
        _verified = new VerifiedPorts(pool, verifier, options, time, port => QuarantineBusy(port, NowMs()));
        _lastFencingToken = firstFencingToken - 1;
        _leaseIdPrefix = journal.Epoch.Length > 16 ? journal.Epoch[..16] : journal.Epoch;
        if (_changes.Enabled) _pool.OnChanged(port =>
        {
            _changes.Mark(StoredKind.Port, port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _changes.Mark(StoredKind.Meta, StoredMeta.PoolKey);
        });
    }

    /// <summary>
    /// When the request being handled was taken from the socket (Unix ms), set by the server around each request:
    /// a renewal is judged against it, so a stop of the process between taking a renewal and judging it cannot
    /// expire a lease that was live when the renewal arrived. Null: judged at the current time.
    /// </summary>
    public long? ReceivedAt { get; set; }

    /// <summary>The pool the leases come from.</summary>
    public PortPool Pool => _pool;

    /// <summary>Ports checked ahead of demand (see <see cref="LeaseOptions.VerifiedPortFreshness"/>).</summary>
    public VerifiedPorts Verified => _verified;

    /// <summary>Live leases.</summary>
    public IEnumerable<PortLease> Leases => _leases.Values;

    /// <summary>How many leases are live.</summary>
    public int Count => _leases.Count;

    /// <summary>How many live leases each tenant holds.</summary>
    public TenantCounter PerTenant { get; } = new();

    /// <summary>The live lease with this id (of any tenant), or null.</summary>
    public PortLease? Find(string leaseId) => _leases.GetValueOrDefault(leaseId);

    /// <summary>Entries in the expiry queue: one per live lease, plus those ended leases left behind (diagnostics).</summary>
    public int ExpiryEntries => _expiries.Count;

    /// <summary>The earliest time (Unix ms) the reaper may have work, or null.</summary>
    public long? NextExpiry => _expiries.TryPeek(out _, out var at) ? at : null;

    /// <summary>
    /// Grants <see cref="PortRequest.Count"/> leases, all or nothing (PROTOCOL.md 6.1 and 7). A preferred port is a
    /// soft wish: when it is outside the pool, leased, resting or busy, other ports are granted. With
    /// <see cref="PortRequest.Reclaim"/> the preferred port is granted without the free check (its holder still has
    /// it bound after a registry restart), or the request fails with PORT_UNAVAILABLE.
    /// </summary>
    public IReadOnlyList<PortLease> Grant(PortRequest request, string tenant = TenantNames.Default)
    {
        Reject.IfBadIdentifier(request.NodeId, "nodeId");
        if (request.Count < 1 || request.Count > _options.MaxPortsPerRequest)
            throw Reject.InvalidArgument("count", $"Field 'count' must be between 1 and {_options.MaxPortsPerRequest}.",
                ("value", request.Count.ToString()), ("min", "1"), ("max", _options.MaxPortsPerRequest.ToString()));
        var ttl = ClampTtl(request.TtlMs);
        if (request.PreferredPort is { } asked && (asked < 1 || asked > 65535))
            throw Reject.InvalidArgument("preferredPort", $"Field 'preferredPort' must be between 1 and 65535, not {asked}.",
                ("value", asked.ToString()), ("min", "1"), ("max", "65535"));
        var protocol = CheckProtocol(request.Protocol);
        Reject.IfTooLong(request.Purpose, "purpose", 1024);
        if (request.Reclaim && (request.PreferredPort is null || request.Count != 1))
            throw Reject.InvalidArgument("reclaim", "A reclaim names the port in 'preferredPort' and asks for exactly one ('count' 1).");

        var now = NowMs();
        _pool.ReleaseQuarantined(now);
        if (request.Reclaim) return [Reclaim(request, tenant, request.PreferredPort!.Value, protocol, ttl, now)];

        var taken = new List<int>(request.Count);
        try
        {
            if (request.PreferredPort is { } wanted && _pool.TryTake(wanted)) CheckTaken(taken, wanted, protocol, now);
            TakeFreePorts(taken, request.Count, protocol, now);
        }
        catch
        {
            _pool.Untake(taken); // a failing check must not lose ports
            throw;
        }
        if (taken.Count < request.Count)
        {
            _pool.Untake(taken);
            throw Reject.Lease(ErrorCodes.PortExhausted,
                $"Cannot grant {request.Count} port(s): only {_pool.FreeCount} free in the pool ({_pool.QuarantinedCount} in quarantine).",
                ("requested", request.Count.ToString()), ("free", _pool.FreeCount.ToString()), ("quarantined", _pool.QuarantinedCount.ToString()));
        }

        var leases = new PortLease[taken.Count];
        for (var i = 0; i < taken.Count; i++)
            leases[i] = GrantNew(taken[i], tenant, request.NodeId, protocol, ttl, request.Purpose, now);
        _verified.AfterGrant(leases.Length);
        return leases;
    }

    private PortLease Reclaim(PortRequest request, string tenant, int port, string protocol, long ttl, long now)
    {
        if (!_pool.Contains(port))
            throw Reject.Lease(ErrorCodes.PortUnavailable, $"Port {port} is not in the registry's pool {_options.PortRange}.",
                ("port", port.ToString()), ("reason", "notInPool"));
        if (!_pool.TryReclaim(port))
        {
            // The holder itself asking again (a re-assertion whose reply was lost, or retried under new ids) gets its
            // lease back, renewed, so an interrupted re-assertion never loses a lease.
            if (_leaseOfPort.TryGetValue(port, out var heldId) && _leases.TryGetValue(heldId, out var held) && held.NodeId == request.NodeId
                && TenantNames.Of(held.Tenant) == tenant)
                return RenewHeld(held, now);
            throw Reject.Lease(ErrorCodes.PortUnavailable, $"Port {port} is held by a live lease.", ("port", port.ToString()), ("reason", "leased"));
        }
        return GrantNew(port, tenant, request.NodeId, protocol, ttl, request.Purpose, now);
    }

    private PortLease GrantNew(int port, string tenant, string nodeId, string protocol, long ttl, string? purpose, long now)
    {
        var lease = NewLease(port, nodeId, protocol, ttl, purpose, now) with { Tenant = TenantNames.Field(tenant) };
        Add(lease);
        _journal.Record(ChangeTypes.LeaseGranted, lease.LeaseId, ChangeJournal.Of(lease), null);
        LogGranted(lease.LeaseId, lease.Port, lease.NodeId, lease.TtlMs);
        return lease;
    }

    /// <summary>Extends a lease by its TTL from now; the fencing token stays.</summary>
    public PortLease Renew(LeaseRenewal renewal) => RenewHeld(FindHeld(renewal.LeaseId, renewal.NodeId, renewal.FencingToken), NowMs());

    private PortLease RenewHeld(PortLease lease, long now) => Extend(lease, now + lease.TtlMs);

    private PortLease Extend(PortLease lease, long expiresAt)
    {
        var renewed = lease with { ExpiresAt = expiresAt };
        _leases[lease.LeaseId] = renewed;
        _changes.Mark(StoredKind.Lease, lease.LeaseId);
        _journal.Record(ChangeTypes.LeaseRenewed, lease.LeaseId, ChangeJournal.Of(renewed), ChangeJournal.Of(lease));
        return renewed;
    }

    /// <summary>
    /// The registry was paused (stopped, starved, or its store unavailable) for <paramref name="pauseMs"/>: every live
    /// lease is extended by that much, broadcast as a renewal, since its holder may have renewed on time into a
    /// socket nobody read.
    /// </summary>
    public void ExtendAll(long pauseMs)
    {
        if (pauseMs <= 0) return;
        foreach (var lease in _leases.Values.OrderBy(l => l.LeaseId, StringComparer.Ordinal).ToList())
            Extend(lease, lease.ExpiresAt + pauseMs);
    }

    /// <summary>Ends a lease at its holder's request; the port goes to quarantine.</summary>
    public void Release(LeaseRelease release)
    {
        var lease = FindHeld(release.LeaseId, release.NodeId, release.FencingToken);
        End(lease, NowMs());
        _journal.Record(ChangeTypes.LeaseReleased, lease.LeaseId, null, ChangeJournal.Of(lease));
    }

    /// <summary>
    /// The holder could not bind its port: quarantine it, end the lease and grant a replacement with the same
    /// node, protocol, TTL and purpose. When no replacement is free the old lease stays as it was (PORT_EXHAUSTED).
    /// </summary>
    public PortLease Replace(PortConflict conflict)
    {
        Reject.IfTooLong(conflict.Reason, "reason", 1024); // PortConflict.schema.json
        var lease = FindHeld(conflict.LeaseId, conflict.NodeId, conflict.FencingToken);
        var now = NowMs();
        _pool.ReleaseQuarantined(now);
        var taken = new List<int>(1);
        try
        {
            TakeFreePorts(taken, 1, lease.Protocol, now);
        }
        catch
        {
            _pool.Untake(taken);
            throw;
        }
        if (taken.Count == 0)
            throw Reject.Lease(ErrorCodes.PortExhausted, "No free port is left to replace the conflicted one; the lease is unchanged.",
                ("requested", "1"), ("free", "0"), ("leaseId", lease.LeaseId));

        End(lease, now);
        _journal.Record(ChangeTypes.LeaseConflicted, lease.LeaseId, null, ChangeJournal.Of(lease));
        // The reason is free text for the log only; keep the log line bounded.
        var reason = conflict.Reason is { Length: > 256 } text ? text[..256] + "..." : conflict.Reason ?? "";
        LogConflicted(lease.LeaseId, lease.Port, lease.NodeId, reason);
        var replacement = GrantNew(taken[0], TenantNames.Of(lease.Tenant), lease.NodeId, lease.Protocol, lease.TtlMs, lease.Purpose, now);
        _verified.AfterGrant(1);
        return replacement;
    }

    /// <summary>Ends every lease held by <paramref name="nodeId"/> of <paramref name="tenant"/> (the node departed or was removed); broadcast as <c>lease.expired</c>.</summary>
    public int EndAllHeldBy(string nodeId, string tenant = TenantNames.Default)
    {
        var held = _leases.Values.Where(l => l.NodeId == nodeId && TenantNames.Of(l.Tenant) == tenant).OrderBy(l => l.LeaseId, StringComparer.Ordinal).ToList();
        var now = NowMs();
        foreach (var lease in held)
        {
            End(lease, now);
            RememberExpired(lease.LeaseId, now);
            _journal.Record(ChangeTypes.LeaseExpired, lease.LeaseId, null, ChangeJournal.Of(lease));
        }
        return held.Count;
    }

    /// <summary>The reaper: expires every lease whose expiry time has come.</summary>
    public void ExpireDue()
    {
        var now = NowMs();
        while (_expiries.TryPeek(out var leaseId, out var at) && at <= now)
        {
            _expiries.Dequeue();
            if (!_leases.TryGetValue(leaseId, out var lease)) continue;
            if (lease.ExpiresAt > now)
            {
                _expiries.Enqueue(leaseId, lease.ExpiresAt);
                continue;
            }
            Expire(lease, now);
        }
        ForgetOldExpired(now);
    }

    private void Expire(PortLease lease, long now)
    {
        End(lease, now);
        RememberExpired(lease.LeaseId, lease.ExpiresAt);
        _journal.Record(ChangeTypes.LeaseExpired, lease.LeaseId, null, ChangeJournal.Of(lease));
        LogExpired(lease.LeaseId, lease.Port, lease.NodeId);
    }

    /// <summary>The live lease, checked in PROTOCOL.md's order: exists, not expired, held by this node, this token.</summary>
    private PortLease FindHeld(string leaseId, string nodeId, long fencingToken)
    {
        Reject.IfBlank(leaseId, "leaseId");
        Reject.IfBlank(nodeId, "nodeId");
        var now = ReceivedAt ?? NowMs();
        ForgetOldExpired(now);
        if (!_leases.TryGetValue(leaseId, out var lease))
        {
            if (_expired.TryGetValue(leaseId, out var expiredAt))
                throw Reject.Lease(ErrorCodes.LeaseExpired, $"Lease {leaseId} expired.", ("leaseId", leaseId), ("expiredAt", expiredAt.ToString()));
            throw Reject.Lease(ErrorCodes.LeaseNotFound, $"No live lease {leaseId} exists (never issued in this epoch, released, or expired long ago).",
                ("leaseId", leaseId));
        }
        if (lease.ExpiresAt <= now)
        {
            // Its time is up even if the reaper has not run yet: reap it now rather than resurrect it.
            Expire(lease, now);
            throw Reject.Lease(ErrorCodes.LeaseExpired, $"Lease {leaseId} expired.", ("leaseId", leaseId), ("expiredAt", lease.ExpiresAt.ToString()));
        }
        if (lease.NodeId != nodeId)
            throw Reject.Lease(ErrorCodes.NotOwner, $"Lease {leaseId} is held by node '{lease.NodeId}', not '{nodeId}'.",
                ("leaseId", leaseId), ("nodeId", nodeId), ("owner", lease.NodeId));
        if (lease.FencingToken != fencingToken)
            throw Reject.Lease(ErrorCodes.Fenced, $"Fencing token {fencingToken} is not the current token of lease {leaseId}.",
                ("leaseId", leaseId), ("fencingToken", fencingToken.ToString()));
        return lease;
    }

    private void TakeFreePorts(List<int> taken, int count, string protocol, long now)
    {
        // Each pass removes a port from the free queue (to the request or to quarantine), so this ends.
        while (taken.Count < count)
        {
            // Checked free (for tcp and udp) by the verifier within the freshness window, and free ever since.
            if (_verified.TryTake(out var verified))
            {
                taken.Add(verified);
                continue;
            }
            if (!_pool.TryTakeNext(out var port)) break;
            CheckTaken(taken, port, protocol, now);
        }
    }

    private void CheckTaken(List<int> taken, int port, string protocol, long now)
    {
        // Held in the list while checked, so a check that throws leaves it to be put back.
        taken.Add(port);
        // Both protocols, whatever the request names: a port bound for either by anyone is never granted (a holder
        // that bound only TCP must not lose its port to a request for UDP).
        if (_availability.IsFree(port, PortProtocols.Both)) return;
        taken.RemoveAt(taken.Count - 1);
        QuarantineBusy(port, now);
    }

    private void QuarantineBusy(int port, long now)
    {
        _pool.Quarantine(port, now + (long)_options.BusyPortQuarantine.TotalMilliseconds);
        LogPortBusy(port);
    }

    private PortLease NewLease(int port, string nodeId, string protocol, long ttlMs, string? purpose, long now) => new()
    {
        // Unique across epochs (the epoch's prefix) and sorting in grant order within one (the counter).
        LeaseId = $"L-{_leaseIdPrefix}-{++_leaseCounter:x8}",
        Port = port,
        Host = _options.AdvertisedHost,
        NodeId = nodeId,
        Protocol = protocol,
        TtlMs = ttlMs,
        GrantedAt = now,
        ExpiresAt = now + ttlMs,
        FencingToken = ++_lastFencingToken,
        Purpose = purpose,
    };

    private void Add(PortLease lease)
    {
        _leases.Add(lease.LeaseId, lease);
        PerTenant.Add(TenantNames.Of(lease.Tenant), 1);
        _leaseOfPort[lease.Port] = lease.LeaseId;
        _expiries.Enqueue(lease.LeaseId, lease.ExpiresAt);
        _changes.Mark(StoredKind.Lease, lease.LeaseId);
        _changes.Mark(StoredKind.Meta, StoredMeta.LeasesKey);
    }

    private void End(PortLease lease, long now)
    {
        if (_leases.Remove(lease.LeaseId)) PerTenant.Add(TenantNames.Of(lease.Tenant), -1);
        if (_leaseOfPort.TryGetValue(lease.Port, out var id) && id == lease.LeaseId) _leaseOfPort.Remove(lease.Port);
        _changes.Mark(StoredKind.Lease, lease.LeaseId);
        _pool.Quarantine(lease.Port, now + (long)_options.Quarantine.TotalMilliseconds);
        // Released leases would otherwise keep their entries (and ids) until their TTL passes: at thousands of
        // releases a second that is a queue of millions. Rebuilding from the live leases once the dead entries
        // outnumber them keeps it small at a constant cost per release.
        if (_expiries.Count - _leases.Count > Math.Max(1024, _leases.Count))
        {
            _expiries.Clear();
            foreach (var live in _leases.Values) _expiries.Enqueue(live.LeaseId, live.ExpiresAt);
        }
    }

    private void RememberExpired(string leaseId, long expiredAt)
    {
        _expired[leaseId] = expiredAt;
        _expiredOrder.Enqueue((leaseId, NowMs() + (long)_options.ExpiredLeaseMemory.TotalMilliseconds));
        _changes.Mark(StoredKind.ExpiredLease, leaseId);
        while (_expiredOrder.Count > _options.ExpiredLeaseMemoryCapacity && _expiredOrder.TryDequeue(out var oldest))
            ForgetExpired(oldest.LeaseId);
    }

    private void ForgetOldExpired(long now)
    {
        while (_expiredOrder.TryPeek(out var entry) && entry.ForgetAt <= now)
        {
            _expiredOrder.Dequeue();
            ForgetExpired(entry.LeaseId);
        }
    }

    private void ForgetExpired(string leaseId)
    {
        _expired.Remove(leaseId);
        _changes.Mark(StoredKind.ExpiredLease, leaseId);
    }

    /// <summary>The stored form of a row this manager owns (lease, expired lease, port, counters), or null when it is gone.</summary>
    public byte[]? Read(StateKey key)
    {
        switch (key.Kind)
        {
            case StoredKind.Lease:
                return _leases.TryGetValue(key.Key, out var lease) ? LeaseRow.Encode(lease) : null;
            case StoredKind.ExpiredLease:
                if (!_expired.TryGetValue(key.Key, out var expiredAt)) return null;
                // The forget time is not indexed by id; the memory's length from now is a safe upper bound.
                return StoredMeta.Longs(expiredAt, NowMs() + (long)_options.ExpiredLeaseMemory.TotalMilliseconds);
            case StoredKind.Port:
                var port = int.Parse(key.Key, System.Globalization.CultureInfo.InvariantCulture);
                return _pool.Contains(port) ? StoredMeta.Longs(_pool.Describe(port)) : null;
            case StoredKind.Meta when key.Key == StoredMeta.LeasesKey:
                return StoredMeta.Longs(_lastFencingToken, _leaseCounter);
            case StoredKind.Meta when key.Key == StoredMeta.PoolKey:
                return StoredMeta.Longs(_pool.Counters);
            default:
                return null;
        }
    }

    /// <summary>
    /// Writes the row <see cref="Read"/> would return for <paramref name="key"/> straight into <paramref name="writer"/>
    /// (the same bytes, no array per row); false, writing nothing, when it is gone.
    /// </summary>
    public bool TryWrite(StateKey key, ref MessagePackWriter writer)
    {
        switch (key.Kind)
        {
            case StoredKind.Lease:
                if (!_leases.TryGetValue(key.Key, out var lease)) return false;
                LeaseRow.Write(ref writer, lease);
                return true;
            case StoredKind.ExpiredLease:
                if (!_expired.TryGetValue(key.Key, out var expiredAt)) return false;
                StoredMeta.WriteLongs(ref writer, expiredAt, NowMs() + (long)_options.ExpiredLeaseMemory.TotalMilliseconds);
                return true;
            case StoredKind.Port:
                var port = int.Parse(key.Key, System.Globalization.CultureInfo.InvariantCulture);
                if (!_pool.Contains(port)) return false;
                var (state, order, until, quarantineOrder) = _pool.Place(port);
                StoredMeta.WriteLongs(ref writer, state, order, until, quarantineOrder);
                return true;
            case StoredKind.Meta when key.Key == StoredMeta.LeasesKey:
                StoredMeta.WriteLongs(ref writer, _lastFencingToken, _leaseCounter);
                return true;
            default:
                if (Read(key) is not { } row) return false;
                writer.WriteRaw(row);
                return true;
        }
    }

    /// <summary>
    /// Puts stored leases, expired-lease memory, ports and counters back. A lease whose time ran out while the
    /// registry was down expires at the next reaper run (at once), broadcast as usual. Called once, before use.
    /// </summary>
    public void Restore(StoredState stored, bool newEpoch)
    {
        if (stored.Find(StoredKind.Meta, StoredMeta.LeasesKey) is { } counters)
        {
            var values = StoredMeta.ReadLongs(counters);
            // A token is never issued twice: continue after the stored counter (or later, after a restore from backup).
            _lastFencingToken = Math.Max(_lastFencingToken, values[0]);
            if (!newEpoch) _leaseCounter = values[1];
        }
        var ports = stored.OfKind(StoredKind.Port)
            .Select(r => (Port: int.Parse(r.Key.Key, System.Globalization.CultureInfo.InvariantCulture), Place: StoredMeta.ReadLongs(r.Value)))
            .ToList();
        var poolCounters = stored.Find(StoredKind.Meta, StoredMeta.PoolKey) is { } pool ? StoredMeta.ReadLongs(pool) : null;
        _pool.Restore(ports, poolCounters);
        foreach (var row in stored.OfKind(StoredKind.Lease))
        {
            var lease = LeaseRow.Decode(row.Value);
            if (!_leases.TryAdd(lease.LeaseId, lease)) continue;
            PerTenant.Add(TenantNames.Of(lease.Tenant), 1);
            _leaseOfPort[lease.Port] = lease.LeaseId;
            _expiries.Enqueue(lease.LeaseId, lease.ExpiresAt);
        }
        foreach (var (leaseId, values) in stored.OfKind(StoredKind.ExpiredLease)
                     .Select(r => (r.Key.Key, StoredMeta.ReadLongs(r.Value))).OrderBy(e => e.Item2[1]))
        {
            _expired[leaseId] = values[0];
            _expiredOrder.Enqueue((leaseId, values[1]));
        }
    }

    /// <summary>Stops the background verifier.</summary>
    public void Dispose() => _verified.Verifier.Dispose();

    private long ClampTtl(long? requestedMs)
    {
        if (requestedMs is null) return (long)_options.DefaultTtl.TotalMilliseconds;
        if (requestedMs <= 0)
            throw Reject.InvalidArgument("ttlMs", "Field 'ttlMs' must be positive (or absent for the default).", ("value", requestedMs.Value.ToString()), ("min", "1"));
        return Math.Clamp(requestedMs.Value, (long)_options.MinTtl.TotalMilliseconds, (long)_options.MaxTtl.TotalMilliseconds);
    }

    private static string CheckProtocol(string? protocol) => protocol switch
    {
        PortProtocols.Tcp or PortProtocols.Udp or PortProtocols.Both => protocol,
        _ => throw Reject.InvalidArgument("protocol", $"Field 'protocol' must be tcp, udp or both, not '{protocol}'.",
            ("value", protocol ?? ""), ("allowed", "tcp,udp,both")),
    };

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    [LoggerMessage(Level = LogLevel.Debug, Message = "Granted lease {LeaseId} on port {Port} to {NodeId} for {TtlMs} ms")]
    private partial void LogGranted(string leaseId, int port, string nodeId, long ttlMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Lease {LeaseId} on port {Port} held by {NodeId} expired")]
    private partial void LogExpired(string leaseId, int port, string nodeId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lease {LeaseId}: {NodeId} could not bind port {Port} ({Reason}); port quarantined, replacement granted")]
    private partial void LogConflicted(string leaseId, int port, string nodeId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Port {Port} failed the free check (in use outside the registry); quarantined")]
    private partial void LogPortBusy(int port);
}
