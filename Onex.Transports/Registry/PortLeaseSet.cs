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
/// <para>
/// Each lease also has a deadline on this client's own clock (<see cref="RegistryClientOptions.TimeProvider"/>):
/// its TTL counted from when the last renewal that got through was <em>sent</em> (or, before any, from when the
/// lease request was sent). The registry cannot have renewed the lease before that moment, so by then it may
/// already have expired it there. When the deadline passes the lease is lost, even if the registry cannot be
/// reached to say so: a holder never uses a port longer than the registry promised it.
/// </para>
/// A lease that cannot be kept (expired on either side, fenced, taken by the registry) leaves <see cref="Ports"/>
/// and <see cref="Leases"/>, is reported through <see cref="LeaseLost"/>, <see cref="HasLostLeases"/> and
/// <see cref="LostLeases"/>, and cancels the token from <see cref="GetLostToken"/>, never silently.
/// </summary>
public sealed class PortLeaseSet : IAsyncDisposable
{
    private static readonly TimeSpan MinimumRenewalPeriod = TimeSpan.FromMilliseconds(50);

    /// <summary>Pause before a failed renewal is tried again (see <see cref="RenewOneAsync"/>).</summary>
    internal static readonly TimeSpan RenewalRetryPause = TimeSpan.FromMilliseconds(100);

    private readonly RegistryLeases _leases;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private readonly HeldLease[] _slots;
    private readonly List<PortLease> _lost = [];
    // Every port the set ever held: a token asked for after the port was lost or swapped is still answered (cancelled).
    private readonly Dictionary<int, CancellationTokenSource> _lostTokens = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewals;
    private readonly ILogger _logger;
    private readonly Channel<DateTimeOffset> _schedule =
        Channel.CreateBounded<DateTimeOffset>(new BoundedChannelOptions(16) { FullMode = BoundedChannelFullMode.DropOldest });
    private int _disposed;

    /// <summary><paramref name="requestedAt"/>: when the lease request was first sent (a <see cref="TimeProvider.GetTimestamp"/> of the client's clock).</summary>
    internal PortLeaseSet(RegistryLeases owner, IReadOnlyList<PortLease> leases, long requestedAt, bool renewAutomatically, ILogger logger)
    {
        _leases = owner;
        _time = owner.TimeProvider;
        _logger = logger;
        _slots = leases.Select(lease => new HeldLease(lease, DeadlineOf(lease, requestedAt))).ToArray();
        lock (_gate)
        {
            foreach (var slot in _slots)
            {
                _lostTokens[slot.Lease.Port] = new CancellationTokenSource();
                slot.Expiry = _time.CreateTimer(static state => ((ExpiryState)state!).Fire(), new ExpiryState(this, slot),
                    Until(slot.Deadline), Timeout.InfiniteTimeSpan);
            }
        }
        _renewals = renewAutomatically ? Task.Run(() => RenewLoopAsync(_stop.Token)) : Task.CompletedTask;
    }

    /// <summary>
    /// The ports still held, in request order. A lost lease's port leaves the list (see <see cref="LostLeases"/>);
    /// after <see cref="ReportConflictAsync"/> the replacement takes the conflicted port's place.
    /// </summary>
    public IReadOnlyList<int> Ports
    {
        get { lock (_gate) return _slots.Where(s => !s.Lost).Select(s => s.Lease.Port).ToArray(); }
    }

    /// <summary>
    /// The leases still held, in the order of <see cref="Ports"/> (ids and fencing tokens change on renewal and after
    /// a registry restart). Lost leases are in <see cref="LostLeases"/> instead.
    /// </summary>
    public IReadOnlyList<PortLease> Leases
    {
        get { lock (_gate) return _slots.Where(s => !s.Lost).Select(s => s.Lease).ToArray(); }
    }

    /// <summary>True once any lease could not be renewed or reclaimed, or ran out on this client's clock; see <see cref="LostLeases"/>.</summary>
    public bool HasLostLeases
    {
        get { lock (_gate) return _lost.Count > 0; }
    }

    /// <summary>The leases that were lost, as last known, in the order they were lost.</summary>
    public IReadOnlyList<PortLease> LostLeases
    {
        get { lock (_gate) return _lost.ToArray(); }
    }

    /// <summary>
    /// Raised (on a background thread, or inside the <see cref="TimeProvider"/>'s timer callback when the lease ran
    /// out on this client's clock) when a lease could not be renewed or reclaimed and is gone. <see cref="Ports"/>,
    /// <see cref="LostLeases"/> and the lost token already reflect the loss.
    /// </summary>
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
    /// A token cancelled as soon as this set no longer holds <paramref name="port"/>, for code that guards something
    /// with the port (a listener, a child process) and must stop when the port may be granted to someone else:
    /// <list type="bullet">
    /// <item>the lease is lost (cancelled before <see cref="LeaseLost"/> is raised), including when its TTL ran out on
    /// this client's clock while the registry could not be reached;</item>
    /// <item>the port was swapped for another by <see cref="ReportConflictAsync"/>;</item>
    /// <item>the set is disposed (cancelled before the release is sent).</item>
    /// </list>
    /// A port the set held once keeps answering with its (cancelled) token.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="port"/> was never part of this set.</exception>
    public CancellationToken GetLostToken(int port)
    {
        lock (_gate)
        {
            if (_lostTokens.TryGetValue(port, out var source)) return source.Token;
        }
        throw new ArgumentException($"Port {port} is not part of this lease set (ports: {string.Join(", ", Ports)}).", nameof(port));
    }

    /// <summary>
    /// Reports that <paramref name="port"/> of this set could not be bound. The registry quarantines it and grants
    /// a replacement, which takes its place in <see cref="Leases"/> and <see cref="Ports"/>.
    /// </summary>
    public ValueTask<PortLease> ReportConflictAsync(int port, string? reason = null, CancellationToken cancellationToken = default)
    {
        PortLease? lease;
        lock (_gate) lease = _slots.FirstOrDefault(s => !s.Lost && s.Lease.Port == port)?.Lease;
        if (lease is null)
            throw new ArgumentException($"Port {port} is not held by this lease set (ports: {string.Join(", ", Ports)}).", nameof(port));
        return _leases.ReportConflictAsync(lease, reason, cancellationToken);
    }

    /// <summary>
    /// Stops renewing, cancels every lost token, and releases every lease still held. Release failures are logged,
    /// not thrown; a release is given up when the lease runs out on this client's clock (the registry expires it).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await ReleaseAsync(singleAttempt: false).ConfigureAwait(false);
    }

    internal async ValueTask ReleaseAsync(bool singleAttempt)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        // Whatever guards a port must stop before the registry may grant it again.
        CancelAll(LostTokenSources());
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
        _leases.Forget(this);
        (PortLease Lease, long Deadline)[] held;
        lock (_gate)
        {
            foreach (var slot in _slots) slot.Expiry?.Dispose();
            held = _slots.Where(s => !s.Lost).Select(s => (s.Lease, s.Deadline)).ToArray();
        }
        await Task.WhenAll(held.Select(h => ReleaseOneAsync(h.Lease, h.Deadline, singleAttempt))).ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task ReleaseOneAsync(PortLease lease, long deadline, bool singleAttempt)
    {
        // Past the lease's deadline the registry expires it anyway: no point waiting on an unreachable one.
        var remaining = Until(deadline);
        using var ranOut = new CancellationTokenSource(remaining, _time);
        try
        {
            await _leases.ReleaseLeaseAsync(lease, singleAttempt, ranOut.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ranOut.IsCancellationRequested)
        {
            RegistryClientLog.LeaseReleaseAbandoned(_logger, lease.LeaseId, lease.Port);
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
    internal IReadOnlyList<PortLease> HeldLeases => Leases;

    internal bool Holds(string leaseId)
    {
        lock (_gate) return HeldSlot(leaseId) is not null;
    }

    /// <summary>True when this set gave the lease up as lost (not when it was released or replaced).</summary>
    private bool LostHere(string leaseId)
    {
        lock (_gate) return _lost.Exists(l => l.LeaseId == leaseId);
    }

    /// <summary>
    /// Puts <paramref name="replacement"/> where the lease <paramref name="leaseId"/> is; false when that lease is no
    /// longer held. <paramref name="sentAt"/> is when the request that produced the replacement was first sent (a
    /// <see cref="TimeProvider.GetTimestamp"/>): the replacement's deadline is its TTL from then.
    /// </summary>
    internal bool TryReplace(string leaseId, PortLease replacement, string reason, long sentAt)
    {
        PortLease previous;
        CancellationTokenSource? swapped = null;
        lock (_gate)
        {
            if (HeldSlot(leaseId) is not { } slot) return false;
            previous = slot.Lease;
            slot.Lease = replacement;
            var deadline = DeadlineOf(replacement, sentAt);
            if (replacement.Port == previous.Port)
            {
                // Replies may come back out of order; a deadline only moves forward for the same port.
                slot.Deadline = Math.Max(slot.Deadline, deadline);
            }
            else
            {
                slot.Deadline = deadline;
                swapped = _lostTokens[previous.Port];
                _lostTokens[replacement.Port] = new CancellationTokenSource();
            }
            slot.Expiry?.Change(Until(slot.Deadline), Timeout.InfiniteTimeSpan);
        }
        if (swapped is not null) CancelAll([swapped]);
        var sameLease = previous.LeaseId == replacement.LeaseId;
        Raise(sameLease ? LeaseRenewed : LeaseReplaced, new PortLeaseEventArgs(replacement, previous, reason));
        return true;
    }

    /// <summary>Marks the lease <paramref name="leaseId"/> lost, once; false when it is not (or no longer) held.</summary>
    internal bool MarkLost(string leaseId, string reason)
    {
        HeldLease? slot;
        lock (_gate)
        {
            slot = HeldSlot(leaseId);
            if (slot is null) return false;
        }
        return MarkLost(slot, reason, onlyIfDue: false);
    }

    private bool MarkLost(HeldLease slot, string reason, bool onlyIfDue)
    {
        PortLease lease;
        CancellationTokenSource lostToken;
        lock (_gate)
        {
            if (slot.Lost) return false;
            if (onlyIfDue)
            {
                // A renewal may have moved the deadline since the timer was set.
                if (Volatile.Read(ref _disposed) != 0) return false;
                var remaining = Until(slot.Deadline);
                if (remaining > TimeSpan.Zero)
                {
                    slot.Expiry?.Change(remaining, Timeout.InfiniteTimeSpan);
                    return false;
                }
            }
            slot.Lost = true;
            slot.Expiry?.Dispose();
            lease = slot.Lease;
            _lost.Add(lease);
            lostToken = _lostTokens[lease.Port];
        }
        RegistryClientLog.LeaseLost(_logger, lease.LeaseId, lease.Port, reason);
        CancelAll([lostToken]);
        Raise(LeaseLost, new PortLeaseEventArgs(lease, null, reason));
        return true;
    }

    private void ExpireIfDue(HeldLease slot)
    {
        PortLease lease;
        lock (_gate) lease = slot.Lease;
        MarkLost(slot,
            $"its TTL of {lease.TtlMs} ms ran out on this client's clock, counted from when the last renewal that got through " +
            "(or the grant) was sent: no renewal got through in time (is the registry reachable?)",
            onlyIfDue: true);
    }

    private HeldLease? HeldSlot(string leaseId) => Array.Find(_slots, s => !s.Lost && s.Lease.LeaseId == leaseId);

    private CancellationTokenSource[] LostTokenSources()
    {
        lock (_gate) return _lostTokens.Values.ToArray();
    }

    private void CancelAll(IEnumerable<CancellationTokenSource> sources)
    {
        foreach (var source in sources)
        {
            try
            {
                source.Cancel();
            }
            catch (AggregateException ex)
            {
                // A callback registered on a lost token threw; the others have run, and renewals go on.
                RegistryClientLog.LostTokenCallbackFailed(_logger, ex);
            }
        }
    }

    private long DeadlineOf(PortLease lease, long sentAt) =>
        sentAt + (long)(lease.TtlMs / 1000.0 * _time.TimestampFrequency);

    /// <summary>Time left until <paramref name="deadline"/> on the client's clock; zero once it has passed.</summary>
    private TimeSpan Until(long deadline)
    {
        var remaining = _time.GetElapsedTime(_time.GetTimestamp(), deadline);
        return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
    }

    private async Task RenewLoopAsync(CancellationToken cancellationToken)
    {
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
                var delay = Task.Delay(period, _time, cancellationToken);
                _schedule.Writer.TryWrite(_time.GetUtcNow() + period);
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

    /// <summary>
    /// Renews <paramref name="lease"/>; a renewal that got no answer (<c>UNAVAILABLE</c>) is tried again after <see cref="RenewalRetryPause"/> until it gets through, the lease is lost, or its deadline
    /// is too close. Waiting for the next round instead would waste the chances the round period leaves: a round
    /// skips a port whose renewal is still in flight, and a renewal that gets no answer stays in flight for all its
    /// attempts (up to MaxAttempts x RequestTimeout, which can exceed a third of the TTL), so a short stall of the
    /// registry would leave a single chance before the deadline instead of two.
    /// </summary>
    private async Task RenewOneAsync(PortLease lease, CancellationToken cancellationToken)
    {
        while (!await TryRenewOnceAsync(lease, cancellationToken).ConfigureAwait(false))
        {
            if (Remaining(lease.LeaseId) <= RenewalRetryPause) return; // lost, replaced, or as good as expired: the expiry timer decides
            try
            {
                await Task.Delay(RenewalRetryPause, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return; // disposing
            }
        }
    }

    /// <summary>Time left until the deadline of <paramref name="leaseId"/> while it is held; zero once it is not.</summary>
    private TimeSpan Remaining(string leaseId)
    {
        lock (_gate) return HeldSlot(leaseId) is { } slot ? Until(slot.Deadline) : TimeSpan.Zero;
    }

    /// <summary>One renewal (with the client's own attempts); false only when it got no answer and may be tried again at once.</summary>
    private async Task<bool> TryRenewOnceAsync(PortLease lease, CancellationToken cancellationToken)
    {
        // Taken before the first attempt: the registry cannot renew before this, so the new deadline is safe even
        // when the reply comes late or only a retry got through.
        var sentAt = _time.GetTimestamp();
        try
        {
            var renewed = await _leases.RenewLeaseAsync(lease, cancellationToken).ConfigureAwait(false);
            if (TryReplace(lease.LeaseId, renewed, "renewed", sentAt))
                RegistryClientLog.LeaseRenewed(_logger, renewed.LeaseId, renewed.Port, renewed.ExpiresAt);
            else if (LostHere(renewed.LeaseId))
            {
                // The reply came after the lease ran out on this client's clock: nothing guards the port any more,
                // so the registry must not keep it for another TTL. One attempt, bounded by the renewed deadline.
                await ReleaseOneAsync(renewed, DeadlineOf(renewed, sentAt), singleAttempt: true).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // disposing
        }
        catch (LeaseException ex) when (ex.Code == ErrorCodes.LeaseNotFound)
        {
            // Either the registry restarted (re-assertion takes the port back under a new lease id) or the lease
            // really is gone; only the registry's epoch tells which.
            await _leases.CheckEpochAsync(cancellationToken).ConfigureAwait(false);
            if (Holds(lease.LeaseId))
                MarkLost(lease.LeaseId, $"the registry no longer knows lease {lease.LeaseId} ({ex.Message})");
        }
        catch (OnexException ex) when (ex is LeaseExpiredException or FencedException or NotOwnerException)
        {
            MarkLost(lease.LeaseId, $"{ex.Code}: {ex.Message}");
        }
        catch (OnexException ex)
        {
            // Not lost yet. No answer (UNAVAILABLE) is tried again until the deadline; anything unexpected waits for the
            // next round, so a registry that keeps refusing is not asked ten times a second.
            RegistryClientLog.LeaseRenewalFailed(_logger, lease.LeaseId, lease.Port, ex.Code, ex.Message);
            return ex.Code != ErrorCodes.Unavailable;
        }
        catch (ObjectDisposedException)
        {
            // the client was disposed under us; its dispose releases this set
        }
        return true;
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

    /// <summary>One lease of the set and its deadline on the client's clock.</summary>
    private sealed class HeldLease(PortLease lease, long deadline)
    {
        public PortLease Lease { get; set; } = lease;

        /// <summary>A <see cref="TimeProvider.GetTimestamp"/> of the client's clock.</summary>
        public long Deadline { get; set; } = deadline;

        public bool Lost { get; set; }

        public ITimer? Expiry { get; set; }
    }

    private sealed class ExpiryState(PortLeaseSet set, HeldLease slot)
    {
        public void Fire() => set.ExpireIfDue(slot);
    }
}
