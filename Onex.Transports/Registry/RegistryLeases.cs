using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>
/// The lease side of <see cref="RegistryClient"/>: grants <see cref="PortLeaseSet"/>s, and is what each set calls back
/// to renew, release, report a conflict or check the registry's epoch. It knows every open set, so a conflict
/// replacement or a re-assertion after a registry restart reaches the set holding the lease.
/// </summary>
internal sealed class RegistryLeases(
    RegistryRequestEngine requests, string nodeId, Func<CancellationToken, ValueTask<string?>> checkEpoch, ILogger logger, ILogger leaseSetLogger)
{
    private readonly ConcurrentDictionary<PortLeaseSet, byte> _leaseSets = new();

    public TimeProvider TimeProvider => requests.TimeProvider;

    /// <summary>Leases <paramref name="count"/> ports (all or nothing) for a node already announced.</summary>
    public async ValueTask<PortLeaseSet> LeaseAsync(int count, LeaseRequestOptions options, CancellationToken cancellationToken)
    {
        var requestedAt = TimeProvider.GetTimestamp(); // each lease's local deadline counts from here
        var grant = await requests.RequestAsync<PortRequest, PortGrant>(new PortRequest
        {
            NodeId = nodeId,
            Count = count,
            TtlMs = options.Ttl is { } ttl ? (long)ttl.TotalMilliseconds : null,
            PreferredPort = options.PreferredPort,
            Protocol = options.Protocol,
            Purpose = options.Purpose,
            Reclaim = options.Reclaim,
        }, cancellationToken).ConfigureAwait(false);
        var set = new PortLeaseSet(this, grant.Leases, requestedAt, options.RenewAutomatically, leaseSetLogger);
        _leaseSets.TryAdd(set, 0);
        return set;
    }

    /// <summary>Reports an unbindable port; the replacement takes the lease's place in the set holding it.</summary>
    public async ValueTask<PortLease> ReportConflictAsync(PortLease lease, string? reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var sentAt = TimeProvider.GetTimestamp();
        var replacement = await requests.RequestAsync<PortConflict, PortLease>(new PortConflict
        {
            LeaseId = lease.LeaseId,
            NodeId = lease.NodeId,
            FencingToken = lease.FencingToken,
            Reason = reason,
        }, cancellationToken).ConfigureAwait(false);
        foreach (var set in _leaseSets.Keys)
            if (set.TryReplace(lease.LeaseId, replacement, $"port {lease.Port} conflicted: {reason}", sentAt)) break;
        return replacement;
    }

    public async ValueTask ReleaseLeaseAsync(PortLease lease, bool singleAttempt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        await requests.RequestAsync<LeaseRelease, Ack>(new LeaseRelease
        {
            LeaseId = lease.LeaseId,
            NodeId = lease.NodeId,
            FencingToken = lease.FencingToken,
        }, cancellationToken, singleAttempt).ConfigureAwait(false);
    }

    public ValueTask<PortLease> RenewLeaseAsync(PortLease lease, CancellationToken cancellationToken) =>
        requests.RequestAsync<LeaseRenewal, PortLease>(new LeaseRenewal
        {
            LeaseId = lease.LeaseId,
            NodeId = lease.NodeId,
            FencingToken = lease.FencingToken,
        }, cancellationToken);

    /// <summary>Asks the node's presence to compare epochs (and re-assert on a restart); see <see cref="NodePresence.CheckEpochAsync"/>.</summary>
    public ValueTask<string?> CheckEpochAsync(CancellationToken cancellationToken) => checkEpoch(cancellationToken);

    public void Forget(PortLeaseSet set) => _leaseSets.TryRemove(set, out _);

    /// <summary>Releases every set still open, one attempt each (the client is being disposed).</summary>
    public Task ReleaseAllAsync() =>
        Task.WhenAll(_leaseSets.Keys.Select(set => set.ReleaseAsync(singleAttempt: true).AsTask()));

    /// <summary>Takes back every held lease from a restarted registry; returns how many came back on the same port and how many were lost.</summary>
    public async ValueTask<(int Reclaimed, int Lost)> ReclaimAllAsync(CancellationToken cancellationToken)
    {
        var reclaimed = 0;
        var lost = 0;
        foreach (var set in _leaseSets.Keys)
        {
            foreach (var lease in set.HeldLeases)
            {
                if (await ReclaimAsync(set, lease, cancellationToken).ConfigureAwait(false)) reclaimed++;
                else lost++;
            }
        }
        return (reclaimed, lost);
    }

    /// <summary>
    /// The one place a lease is asked back from a restarted registry: the same port, TTL, protocol and purpose.
    /// The holder may have the port bound, which the registry's free check would reject, so the request is a
    /// <see cref="PortRequest.Reclaim"/>: granted without the free check unless the port is outside the pool or
    /// leased to someone else (PORT_UNAVAILABLE).
    /// </summary>
    public PortRequest BuildReclaimRequest(PortLease lease) => new()
    {
        NodeId = nodeId,
        Count = 1,
        TtlMs = lease.TtlMs,
        PreferredPort = lease.Port,
        Protocol = lease.Protocol,
        Purpose = lease.Purpose,
        Reclaim = true,
    };

    /// <summary>Asks the restarted registry for <paramref name="lease"/>'s port again; true when the same port came back.</summary>
    private async ValueTask<bool> ReclaimAsync(PortLeaseSet set, PortLease lease, CancellationToken cancellationToken)
    {
        PortLease granted;
        var sentAt = TimeProvider.GetTimestamp();
        try
        {
            var grant = await requests.RequestAsync<PortRequest, PortGrant>(BuildReclaimRequest(lease), cancellationToken).ConfigureAwait(false);
            granted = grant.Leases[0];
        }
        catch (OnexException ex) when (ex is LeaseException or NotOwnerException)
        {
            set.MarkLost(lease.LeaseId, $"port {lease.Port} could not be reclaimed after a registry restart: {ex.Code} {ex.Message}");
            return false;
        }
        if (granted.Port == lease.Port)
            return set.TryReplace(lease.LeaseId, granted, "reclaimed after a registry restart", sentAt);

        // A registry without reclaim support may offer another port: of no use to a holder bound to the old one,
        // so give it back and say the lease is lost.
        try
        {
            await ReleaseLeaseAsync(granted, singleAttempt: false, cancellationToken).ConfigureAwait(false);
        }
        catch (OnexException ex)
        {
            RegistryClientLog.LeaseReleaseFailed(logger, granted.LeaseId, granted.Port, ex.Code, ex.Message);
        }
        set.MarkLost(lease.LeaseId, $"port {lease.Port} could not be reclaimed after a registry restart (the registry offered {granted.Port} instead)");
        return false;
    }
}
