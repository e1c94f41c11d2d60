using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Leases;

/// <summary>
/// Grants, renews, releases, replaces and expires port leases. Every handler validates the whole request
/// before it changes anything, so a rejected request leaves the state as it was. Owned by the registry thread.
/// </summary>
/// <remarks>
/// Fencing tokens come from one registry-wide counter and change only when ownership of a port changes (grant,
/// replacement); a renewal keeps the token. The counter starts at the instance's start time in ms x 1000, so
/// tokens handed out by a restarted registry are higher than any from before (as long as the clock moves on).
/// </remarks>
internal sealed partial class PortLeaseManager
{
    private readonly LeaseOptions _options;
    private readonly PortPool _pool;
    private readonly IPortAvailability _availability;
    private readonly ChangeJournal _journal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, PortLease> _leases = new(StringComparer.Ordinal);
    // One entry per live lease; renewals only move expiry later, so a popped entry that is early is pushed again.
    private readonly PriorityQueue<string, long> _expiries = new();
    private readonly Dictionary<string, EndedLease> _ended = new(StringComparer.Ordinal);
    private readonly Queue<(string LeaseId, long ForgetAt)> _endedOrder = new();
    private long _lastFencingToken;

    private readonly record struct EndedLease(string Reason, long EndedAt);

    public PortLeaseManager(
        LeaseOptions options, PortPool pool, IPortAvailability availability, ChangeJournal journal,
        TimeProvider time, ILogger logger, long firstFencingToken)
    {
        _options = options;
        _pool = pool;
        _availability = availability;
        _journal = journal;
        _time = time;
        _logger = logger;
        _lastFencingToken = firstFencingToken - 1;
    }

    /// <summary>The pool the leases come from.</summary>
    public PortPool Pool => _pool;

    /// <summary>Live leases.</summary>
    public IEnumerable<PortLease> Leases => _leases.Values;

    /// <summary>How many leases are live.</summary>
    public int Count => _leases.Count;

    /// <summary>The earliest time (Unix ms) the reaper may have work, or null.</summary>
    public long? NextExpiry => _expiries.TryPeek(out _, out var at) ? at : null;

    /// <summary>Grants <see cref="PortRequest.Count"/> leases, all or nothing.</summary>
    public IReadOnlyList<PortLease> Grant(PortRequest request)
    {
        Reject.IfBlank(request.NodeId, "nodeId");
        if (request.Count < 1 || request.Count > _options.MaxPortsPerRequest)
            throw Reject.InvalidArgument("count", $"Field 'count' must be between 1 and {_options.MaxPortsPerRequest}.", ("max", _options.MaxPortsPerRequest.ToString()));
        var ttl = ClampTtl(request.TtlMs);
        var protocol = CheckProtocol(request.Protocol);
        Reject.IfTooLong(request.Purpose, "purpose", 1024);
        if (request.PreferredPort is { } preferred && !_pool.Contains(preferred))
            throw Reject.InvalidArgument("preferredPort", $"Port {preferred} is not in the registry's pool {_options.PortRange}.", ("range", _options.PortRange.ToString()));

        var now = NowMs();
        _pool.ReleaseQuarantined(now);
        var taken = new List<int>(request.Count);
        // A preferred port that is leased, resting, or fails the free check is not an error: other ports are granted.
        if (request.PreferredPort is { } wanted && _pool.TryTake(wanted))
        {
            if (_availability.IsFree(wanted, protocol)) taken.Add(wanted);
            else QuarantineBusy(wanted, now);
        }
        TakeFreePorts(taken, request.Count, protocol, now);
        if (taken.Count < request.Count)
        {
            _pool.Untake(taken);
            throw Reject.Lease(ErrorCodes.PortExhausted,
                $"Cannot grant {request.Count} port(s): only {_pool.FreeCount} free in the pool ({_pool.QuarantinedCount} in quarantine).",
                ("requested", request.Count.ToString()), ("free", _pool.FreeCount.ToString()), ("quarantined", _pool.QuarantinedCount.ToString()));
        }

        var leases = new PortLease[taken.Count];
        for (var i = 0; i < taken.Count; i++)
        {
            leases[i] = NewLease(taken[i], request.NodeId, protocol, ttl, request.Purpose, now);
            Add(leases[i]);
            _journal.Record(ChangeTypes.LeaseGranted, leases[i].LeaseId, ChangeJournal.Of(leases[i]), null);
            LogGranted(leases[i].LeaseId, leases[i].Port, leases[i].NodeId, leases[i].TtlMs);
        }
        return leases;
    }

    /// <summary>Extends a lease by its TTL from now; the fencing token stays.</summary>
    public PortLease Renew(LeaseRenewal renewal)
    {
        var lease = FindHeld(renewal.LeaseId, renewal.NodeId, renewal.FencingToken);
        var renewed = lease with { ExpiresAt = NowMs() + lease.TtlMs };
        _leases[lease.LeaseId] = renewed;
        _journal.Record(ChangeTypes.LeaseRenewed, lease.LeaseId, ChangeJournal.Of(renewed), ChangeJournal.Of(lease));
        return renewed;
    }

    /// <summary>Ends a lease at its holder's request; the port goes to quarantine.</summary>
    public void Release(LeaseRelease release)
    {
        var lease = FindHeld(release.LeaseId, release.NodeId, release.FencingToken);
        End(lease, "released", NowMs());
        _journal.Record(ChangeTypes.LeaseReleased, lease.LeaseId, null, ChangeJournal.Of(lease));
    }

    /// <summary>
    /// The holder could not bind its port: quarantine it, end the lease and grant a replacement with the same
    /// node, protocol, TTL and purpose. When no replacement is free the old lease stays as it was (PORT_EXHAUSTED).
    /// </summary>
    public PortLease Replace(PortConflict conflict)
    {
        Reject.IfTooLong(conflict.Reason, "reason");
        var lease = FindHeld(conflict.LeaseId, conflict.NodeId, conflict.FencingToken);
        var now = NowMs();
        _pool.ReleaseQuarantined(now);
        var taken = new List<int>(1);
        TakeFreePorts(taken, 1, lease.Protocol, now);
        if (taken.Count == 0)
            throw Reject.Lease(ErrorCodes.PortExhausted, "No free port is left to replace the conflicted one; the lease is unchanged.",
                ("requested", "1"), ("free", "0"), ("leaseId", lease.LeaseId));

        End(lease, "conflicted", now);
        _journal.Record(ChangeTypes.LeaseConflicted, lease.LeaseId, null, ChangeJournal.Of(lease));
        LogConflicted(lease.LeaseId, lease.Port, lease.NodeId, conflict.Reason ?? "");

        var replacement = NewLease(taken[0], lease.NodeId, lease.Protocol, lease.TtlMs, lease.Purpose, now);
        Add(replacement);
        _journal.Record(ChangeTypes.LeaseGranted, replacement.LeaseId, ChangeJournal.Of(replacement), null);
        LogGranted(replacement.LeaseId, replacement.Port, replacement.NodeId, replacement.TtlMs);
        return replacement;
    }

    /// <summary>Ends every lease held by <paramref name="nodeId"/> (the node departed); broadcast as <c>lease.expired</c>.</summary>
    public int EndAllHeldBy(string nodeId)
    {
        var held = _leases.Values.Where(l => l.NodeId == nodeId).OrderBy(l => l.LeaseId, StringComparer.Ordinal).ToList();
        var now = NowMs();
        foreach (var lease in held)
        {
            End(lease, "departed", now);
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
        ForgetOldEnded(now);
    }

    private void Expire(PortLease lease, long now)
    {
        End(lease, "expired", now);
        _journal.Record(ChangeTypes.LeaseExpired, lease.LeaseId, null, ChangeJournal.Of(lease));
        LogExpired(lease.LeaseId, lease.Port, lease.NodeId);
    }

    private PortLease FindHeld(string leaseId, string nodeId, long fencingToken)
    {
        Reject.IfBlank(leaseId, "leaseId");
        Reject.IfBlank(nodeId, "nodeId");
        var now = NowMs();
        ForgetOldEnded(now);
        if (!_leases.TryGetValue(leaseId, out var lease))
        {
            if (_ended.TryGetValue(leaseId, out var ended))
            {
                return ended.Reason == "expired"
                    ? throw Reject.Lease(ErrorCodes.LeaseExpired, $"Lease {leaseId} expired.", ("leaseId", leaseId), ("endedAt", ended.EndedAt.ToString()))
                    : throw Reject.Lease(ErrorCodes.LeaseNotFound, $"Lease {leaseId} has ended ({ended.Reason}).", ("leaseId", leaseId), ("reason", ended.Reason));
            }
            throw Reject.Lease(ErrorCodes.LeaseNotFound, $"No lease {leaseId} exists.", ("leaseId", leaseId));
        }
        if (lease.NodeId != nodeId)
            throw Reject.Lease(ErrorCodes.NotOwner, $"Lease {leaseId} is held by another node.", ("leaseId", leaseId), ("owner", lease.NodeId));
        if (lease.FencingToken != fencingToken)
            throw Reject.Lease(ErrorCodes.Fenced, $"Fencing token {fencingToken} is not the current token of lease {leaseId}.",
                ("leaseId", leaseId), ("fencingToken", lease.FencingToken.ToString()));
        if (lease.ExpiresAt <= now)
        {
            // Its time is up even if the reaper has not run yet: expire it now rather than resurrect it.
            Expire(lease, now);
            throw Reject.Lease(ErrorCodes.LeaseExpired, $"Lease {leaseId} expired.", ("leaseId", leaseId), ("endedAt", now.ToString()));
        }
        return lease;
    }

    private void TakeFreePorts(List<int> taken, int count, string protocol, long now)
    {
        // Each pass removes a port from the free queue (to the request or to quarantine), so this ends.
        while (taken.Count < count && _pool.TryTakeNext(out var port))
        {
            if (_availability.IsFree(port, protocol)) taken.Add(port);
            else QuarantineBusy(port, now);
        }
    }

    private void QuarantineBusy(int port, long now)
    {
        _pool.Quarantine(port, now + (long)_options.BusyPortQuarantine.TotalMilliseconds);
        LogPortBusy(port);
    }

    private PortLease NewLease(int port, string nodeId, string protocol, long ttlMs, string? purpose, long now) => new()
    {
        LeaseId = "L-" + Guid.CreateVersion7(DateTimeOffset.FromUnixTimeMilliseconds(now)).ToString("N"),
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
        _expiries.Enqueue(lease.LeaseId, lease.ExpiresAt);
    }

    private void End(PortLease lease, string reason, long now)
    {
        _leases.Remove(lease.LeaseId);
        _pool.Quarantine(lease.Port, now + (long)_options.Quarantine.TotalMilliseconds);
        _ended[lease.LeaseId] = new EndedLease(reason, now);
        _endedOrder.Enqueue((lease.LeaseId, now + (long)_options.EndedLeaseMemory.TotalMilliseconds));
    }

    private void ForgetOldEnded(long now)
    {
        while (_endedOrder.TryPeek(out var entry) && entry.ForgetAt <= now)
        {
            _endedOrder.Dequeue();
            _ended.Remove(entry.LeaseId);
        }
    }

    private long ClampTtl(long? requestedMs)
    {
        if (requestedMs is null) return (long)_options.DefaultTtl.TotalMilliseconds;
        if (requestedMs <= 0)
            throw Reject.InvalidArgument("ttlMs", "Field 'ttlMs' must be positive (or absent for the default).");
        return Math.Clamp(requestedMs.Value, (long)_options.MinTtl.TotalMilliseconds, (long)_options.MaxTtl.TotalMilliseconds);
    }

    private static string CheckProtocol(string? protocol) => protocol switch
    {
        PortProtocols.Tcp or PortProtocols.Udp or PortProtocols.Both => protocol,
        _ => throw Reject.InvalidArgument("protocol", $"Field 'protocol' must be tcp, udp or both, not '{protocol}'."),
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
