using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>What happened to one lease of a <see cref="PortLeaseSet"/>.</summary>
public sealed class PortLeaseEventArgs(PortLease lease, PortLease? previous, string reason) : EventArgs
{
    /// <summary>The lease after the event (for a lost lease: the lease as last known).</summary>
    public PortLease Lease { get; } = lease;

    /// <summary>The lease it replaced, when the lease id or token changed (renewal, re-assertion, conflict).</summary>
    public PortLease? Previous { get; } = previous;

    /// <summary>Why, for people.</summary>
    public string Reason { get; } = reason;
}

/// <summary>
/// Ports leased together from the registry. Renews its leases in the background at about a third of their
/// TTL, takes them back after a registry restart (same ports, new lease ids), and releases them on dispose.
/// A lease that cannot be kept (expired, fenced, taken by the registry) is reported through
/// <see cref="LeaseLost"/> and <see cref="HasLostLeases"/>, never silently.
/// </summary>
public sealed class PortLeaseSet : IAsyncDisposable
{
    private static readonly TimeSpan MinimumRenewalPeriod = TimeSpan.FromMilliseconds(50);

    private readonly RegistryClient _client;
    private readonly object _gate = new();
    private readonly PortLease[] _leases;
    private readonly bool[] _lost;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewals;
    private readonly ILogger _logger;
    private readonly Channel<DateTimeOffset> _schedule =
        Channel.CreateBounded<DateTimeOffset>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropOldest });
    private int _disposed;

    internal PortLeaseSet(RegistryClient client, IReadOnlyList<PortLease> leases, bool renewAutomatically, ILogger logger)
    {
        _client = client;
        _logger = logger;
        _leases = leases.ToArray();
        _lost = new bool[_leases.Length];
        _renewals = renewAutomatically ? Task.Run(() => RenewLoopAsync(_stop.Token)) : Task.CompletedTask;
    }

    /// <summary>The leased ports, in request order. They stay the same for the life of the set, except after a conflict report.</summary>
    public IReadOnlyList<int> Ports
    {
        get { lock (_gate) return _leases.Select(l => l.Port).ToArray(); }
    }

    /// <summary>The current leases (ids and fencing tokens change on renewal and after a registry restart).</summary>
    public IReadOnlyList<PortLease> Leases
    {
        get { lock (_gate) return _leases.ToArray(); }
    }

    /// <summary>True once any lease could not be renewed or reclaimed; see <see cref="LostLeases"/>.</summary>
    public bool HasLostLeases
    {
        get { lock (_gate) return _lost.Any(l => l); }
    }

    /// <summary>The leases that were lost, as last known.</summary>
    public IReadOnlyList<PortLease> LostLeases
    {
        get { lock (_gate) return _leases.Where((_, i) => _lost[i]).ToArray(); }
    }

    /// <summary>Raised (on a background thread) when a lease could not be renewed or reclaimed and is gone.</summary>
    public event EventHandler<PortLeaseEventArgs>? LeaseLost;

    /// <summary>Raised (on a background thread) after each successful renewal.</summary>
    public event EventHandler<PortLeaseEventArgs>? LeaseRenewed;

    /// <summary>Raised (on a background thread) when a lease was replaced: reclaimed after a registry restart, or after a conflict report.</summary>
    public event EventHandler<PortLeaseEventArgs>? LeaseReplaced;

    /// <summary>
    /// Test seam: the due time of each renewal round, written once its timer is set (the last few are kept), so a
    /// test on a fake clock knows when moving the clock will fire it.
    /// </summary>
    internal ChannelReader<DateTimeOffset> RenewalSchedule => _schedule.Reader;

    /// <summary>
    /// Reports that <paramref name="port"/> of this set could not be bound. The registry quarantines it and grants
    /// a replacement, which takes its place in <see cref="Leases"/> and <see cref="Ports"/>.
    /// </summary>
    public ValueTask<PortLease> ReportConflictAsync(int port, string? reason = null, CancellationToken cancellationToken = default)
    {
        PortLease? lease;
        lock (_gate) lease = _leases.FirstOrDefault(l => l.Port == port);
        if (lease is null)
            throw new ArgumentException($"Port {port} is not part of this lease set (ports: {string.Join(", ", Ports)}).", nameof(port));
        return _client.ReportConflictAsync(lease, reason, cancellationToken);
    }

    /// <summary>Stops renewing and releases every lease still held. Release failures are logged, not thrown.</summary>
    public async ValueTask DisposeAsync()
    {
        await ReleaseAsync(singleAttempt: false).ConfigureAwait(false);
    }

    internal async ValueTask ReleaseAsync(bool singleAttempt)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        try
        {
            await _renewals.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // the renewal loop ends by cancellation
        }
        catch (Exception ex) when (ex is OnexException or ObjectDisposedException)
        {
            // Renewal failures are handled per lease; this only guards the release below from a late surprise.
            RegistryClientLog.LeaseRenewalFailed(_logger, "*", 0, (ex as OnexException)?.Code ?? ErrorCodes.Unavailable, ex.Message);
        }
        _client.Forget(this);
        PortLease[] held;
        lock (_gate) held = _leases.Where((_, i) => !_lost[i]).ToArray();
        await Task.WhenAll(held.Select(lease => ReleaseOneAsync(lease, singleAttempt))).ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task ReleaseOneAsync(PortLease lease, bool singleAttempt)
    {
        try
        {
            await _client.ReleaseLeaseAsync(lease, singleAttempt, CancellationToken.None).ConfigureAwait(false);
        }
        catch (OnexException ex)
        {
            RegistryClientLog.LeaseReleaseFailed(_logger, lease.LeaseId, lease.Port, ex.Code, ex.Message);
        }
        catch (ObjectDisposedException ex)
        {
            RegistryClientLog.LeaseReleaseFailed(_logger, lease.LeaseId, lease.Port, ErrorCodes.Unavailable, ex.Message);
        }
    }

    /// <summary>Leases still held, for re-assertion.</summary>
    internal IReadOnlyList<PortLease> HeldLeases
    {
        get { lock (_gate) return _leases.Where((_, i) => !_lost[i]).ToArray(); }
    }

    internal bool Holds(string leaseId)
    {
        lock (_gate) return Array.FindIndex(_leases, l => l.LeaseId == leaseId) is var i && i >= 0 && !_lost[i];
    }

    /// <summary>Puts <paramref name="replacement"/> where the lease <paramref name="leaseId"/> is; false when that lease is no longer held.</summary>
    internal bool TryReplace(string leaseId, PortLease replacement, string reason)
    {
        PortLease previous;
        lock (_gate)
        {
            var index = Array.FindIndex(_leases, l => l.LeaseId == leaseId);
            if (index < 0 || _lost[index]) return false;
            previous = _leases[index];
            _leases[index] = replacement;
        }
        var sameLease = previous.LeaseId == replacement.LeaseId;
        Raise(sameLease ? LeaseRenewed : LeaseReplaced, new PortLeaseEventArgs(replacement, previous, reason));
        return true;
    }

    /// <summary>Marks the lease <paramref name="leaseId"/> lost, once; false when it is not (or no longer) held.</summary>
    internal bool MarkLost(string leaseId, string reason)
    {
        PortLease lease;
        lock (_gate)
        {
            var index = Array.FindIndex(_leases, l => l.LeaseId == leaseId);
            if (index < 0 || _lost[index]) return false;
            _lost[index] = true;
            lease = _leases[index];
        }
        RegistryClientLog.LeaseLost(_logger, lease.LeaseId, lease.Port, reason);
        Raise(LeaseLost, new PortLeaseEventArgs(lease, null, reason));
        return true;
    }

    private async Task RenewLoopAsync(CancellationToken cancellationToken)
    {
        var time = _client.TimeProvider;
        // Renewals in flight by port: a round never waits for a slow one (a retry against an unreachable registry can
        // take a whole request timeout per attempt), it only skips starting a second renewal of the same port.
        var inFlight = new Dictionary<int, Task>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var held = HeldLeases;
                if (held.Count == 0) return;
                // A third of the TTL leaves two more chances before expiry if a renewal is lost.
                var period = TimeSpan.FromMilliseconds(held.Min(l => l.TtlMs) / 3.0);
                if (period < MinimumRenewalPeriod) period = MinimumRenewalPeriod;
                var delay = Task.Delay(period, time, cancellationToken);
                _schedule.Writer.TryWrite(time.GetUtcNow() + period);
                await delay.ConfigureAwait(false);
                foreach (var done in inFlight.Where(r => r.Value.IsCompleted).Select(r => r.Key).ToArray()) inFlight.Remove(done);
                foreach (var lease in HeldLeases)
                    if (!inFlight.ContainsKey(lease.Port)) inFlight[lease.Port] = RenewOneAsync(lease, cancellationToken);
            }
        }
        finally
        {
            await Task.WhenAll(inFlight.Values).ConfigureAwait(false);
        }
    }

    private async Task RenewOneAsync(PortLease lease, CancellationToken cancellationToken)
    {
        try
        {
            var renewed = await _client.RenewLeaseAsync(lease, cancellationToken).ConfigureAwait(false);
            if (TryReplace(lease.LeaseId, renewed, "renewed"))
                RegistryClientLog.LeaseRenewed(_logger, renewed.LeaseId, renewed.Port, renewed.ExpiresAt);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // disposing
        }
        catch (LeaseException ex) when (ex.Code == ErrorCodes.LeaseNotFound)
        {
            // Either the registry restarted (re-assertion takes the port back under a new lease id) or the lease
            // really is gone; only the registry's epoch tells which.
            await _client.CheckEpochAsync(cancellationToken).ConfigureAwait(false);
            if (Holds(lease.LeaseId))
                MarkLost(lease.LeaseId, $"the registry no longer knows lease {lease.LeaseId} ({ex.Message})");
        }
        catch (LeaseException ex) when (ex.Code is ErrorCodes.LeaseExpired or ErrorCodes.Fenced or ErrorCodes.NotOwner)
        {
            MarkLost(lease.LeaseId, $"{ex.Code}: {ex.Message}");
        }
        catch (OnexException ex)
        {
            // Unavailable and anything unexpected: the lease is not lost yet; the next round tries again.
            RegistryClientLog.LeaseRenewalFailed(_logger, lease.LeaseId, lease.Port, ex.Code, ex.Message);
        }
        catch (ObjectDisposedException)
        {
            // the client was disposed under us; its dispose releases this set
        }
    }

    private void Raise(EventHandler<PortLeaseEventArgs>? handler, PortLeaseEventArgs args)
    {
        if (handler is null) return;
        try
        {
            handler(this, args);
        }
        catch (Exception ex)
        {
            // A subscriber's bug must not stop renewals.
            RegistryClientLog.EventHandlerFailed(_logger, args.Lease.LeaseId, ex);
        }
    }
}
