namespace Onex.Bus;

/// <summary>Whether a bus participant can currently reach its bus.</summary>
public enum BusConnectionState
{
    /// <summary>Started, not yet (or not again) connected.</summary>
    Connecting,

    /// <summary>Connected: events flow.</summary>
    Connected,

    /// <summary>The connection to the bus is down; the participant reconnects by itself. Events sent meanwhile may be lost.</summary>
    Disconnected,

    /// <summary>The participant was disposed.</summary>
    Closed,
}

/// <summary>Where an event was dropped.</summary>
public enum DropCause
{
    /// <summary>A subscription's queue was full (its message or byte limit) in a drop mode: the slow-consumer case.</summary>
    SubscriberQueue,

    /// <summary>This participant's outgoing queue was full (its message or byte limit) and its full mode drops.</summary>
    PublisherQueue,

    /// <summary>
    /// Lost between publisher and subscriber: a transport high-water mark or a connection that was down. Seen by the
    /// receiver as a gap in a publisher's sequence numbers (ZeroMQ) or reported by a broker (Unix sockets).
    /// </summary>
    Transport,
}

/// <summary>What a <see cref="BusNotice"/> reports.</summary>
public enum BusNoticeKind
{
    /// <summary>
    /// <see cref="EventBusHealth.State"/> changed, or news about the connection came while it stayed the same (the bus
    /// moved while the participant was disconnected); <see cref="BusNotice.State"/> is the state after it.
    /// </summary>
    ConnectionChanged,

    /// <summary>A subscription started dropping because its reader does not keep up (once per episode: until its queue drains).</summary>
    SlowConsumer,

    /// <summary>Events were dropped; <see cref="BusNotice.Cause"/> says where, <see cref="BusNotice.Count"/> how many this time.</summary>
    Dropped,
}

/// <summary>One thing a participant should know about its bus: a connection change, a slow consumer, a drop.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="State">The connection state after it.</param>
/// <param name="Cause">For <see cref="BusNoticeKind.Dropped"/> and <see cref="BusNoticeKind.SlowConsumer"/>, where events were dropped.</param>
/// <param name="Count">Events dropped this time (0 for a connection change).</param>
/// <param name="Total">Events dropped for this cause since the participant started.</param>
/// <param name="Pattern">The subscription concerned, when one is.</param>
/// <param name="Detail">A sentence for humans: the endpoint, the limit that was reached.</param>
public sealed record BusNotice(
    BusNoticeKind Kind, BusConnectionState State, DropCause? Cause, long Count, long Total, string? Pattern, string Detail);

/// <summary>
/// A participant's view of its bus, so nothing is lost silently: the connection state and the drops per
/// <see cref="DropCause"/>, as properties and as <see cref="Notice"/>s. Every backend keeps one per participant
/// (<see cref="IEventBus.Health"/>); backends report into it, applications read it.
/// </summary>
/// <remarks>
/// Notices are raised on the thread that noticed (often a transport's receive thread): handlers must be quick and
/// must not block; an exception from a handler is swallowed so it cannot break delivery. Drop notices for single
/// events are spaced exponentially per cause (the 1st, 2nd, 4th, 8th... drop), so a flood of drops does not become
/// a flood of notices; a drop of several events at once (a gap, a broker report) is always noticed. The counters
/// are always exact.
/// </remarks>
public sealed class EventBusHealth
{
    // One counter per cause, each on a cache line of its own (8 longs apart, the first 64 bytes in): a publisher that
    // counts a drop for every event (a stalled subscription) must not evict the line that readers load Telemetry from.
    private const int CounterStride = 8;
    private static readonly int Causes = Enum.GetValues<DropCause>().Length;
    private readonly long[] _dropped = new long[(Causes + 1) * CounterStride];
    private int _state;
    private Onex.Diagnostics.BusTelemetry _telemetry;

    /// <summary>
    /// Creates a health record starting in <paramref name="initial"/>; its drops are also counted in the
    /// <c>Onex.Bus</c> meter under <paramref name="telemetry"/>'s tags (none given: untagged).
    /// </summary>
    public EventBusHealth(BusConnectionState initial = BusConnectionState.Connected, Onex.Diagnostics.BusTelemetry? telemetry = null)
    {
        _state = (int)initial;
        _telemetry = telemetry ?? Onex.Diagnostics.BusTelemetry.Unnamed;
    }

    /// <summary>The participant's tracing and metrics (bus name and backend tags), used by its backend and queues.</summary>
    public Onex.Diagnostics.BusTelemetry Telemetry => Volatile.Read(ref _telemetry);

    /// <summary>For backends that learn the bus's name only once connected (a joined Unix-socket participant): replaces <see cref="Telemetry"/>.</summary>
    public void UseTelemetry(Onex.Diagnostics.BusTelemetry telemetry)
    {
        ArgumentNullException.ThrowIfNull(telemetry);
        Volatile.Write(ref _telemetry, telemetry);
    }

    /// <summary>Raised for every connection change, slow-consumer episode and (spaced) drop; see the remarks.</summary>
    public event EventHandler<BusNotice>? Notice;

    /// <summary>The current connection state.</summary>
    public BusConnectionState State => (BusConnectionState)Volatile.Read(ref _state);

    /// <summary>Events dropped for <paramref name="cause"/> since the participant started.</summary>
    public long DroppedCount(DropCause cause) => Interlocked.Read(ref Counter(cause));

    /// <summary>Events dropped for any cause.</summary>
    public long TotalDropped
    {
        get
        {
            long total = 0;
            for (var i = 0; i < Causes; i++) total += Interlocked.Read(ref Counter((DropCause)i));
            return total;
        }
    }

    /// <summary>For backends: sets the state and raises a notice when it changed. Closed is final.</summary>
    public void SetState(BusConnectionState state, string detail)
    {
        int previous;
        do
        {
            previous = Volatile.Read(ref _state);
            if (previous == (int)state || previous == (int)BusConnectionState.Closed) return;
        }
        while (Interlocked.CompareExchange(ref _state, (int)state, previous) != previous);
        Raise(new BusNotice(BusNoticeKind.ConnectionChanged, state, null, 0, 0, null, detail));
    }

    /// <summary>
    /// For backends: reports news about the connection that a user must see even when the state stays what it was,
    /// such as the bus moving (or being removed) while this participant was already <see cref="BusConnectionState.Disconnected"/>:
    /// sets the state and always raises a <see cref="BusNoticeKind.ConnectionChanged"/> notice. Closed is final.
    /// </summary>
    public void ReportConnection(BusConnectionState state, string detail)
    {
        int previous;
        do
        {
            previous = Volatile.Read(ref _state);
            if (previous == (int)BusConnectionState.Closed) return;
        }
        while (Interlocked.CompareExchange(ref _state, (int)state, previous) != previous);
        Raise(new BusNotice(BusNoticeKind.ConnectionChanged, state, null, 0, 0, null, detail));
    }

    /// <summary>For backends: counts <paramref name="count"/> events dropped for <paramref name="cause"/>.</summary>
    public void CountDropped(DropCause cause, long count, string? pattern, string detail)
    {
        if (count <= 0) return;
        var total = Interlocked.Add(ref Counter(cause), count);
        Telemetry.Dropped(cause, count);
        if (count > 1 || (total & (total - 1)) == 0)
            Raise(new BusNotice(BusNoticeKind.Dropped, State, cause, count, total, pattern, detail));
    }

    /// <summary>For backends: a subscription began dropping (its reader is behind); raised once per episode by its queue.</summary>
    public void ReportSlowConsumer(string pattern, string detail) =>
        Raise(new BusNotice(BusNoticeKind.SlowConsumer, State, DropCause.SubscriberQueue, 0, DroppedCount(DropCause.SubscriberQueue), pattern, detail));

    /// <inheritdoc/>
    public override string ToString() =>
        $"{State}, dropped: subscriber queue {DroppedCount(DropCause.SubscriberQueue)}, publisher queue {DroppedCount(DropCause.PublisherQueue)}, transport {DroppedCount(DropCause.Transport)}";

    private ref long Counter(DropCause cause) => ref _dropped[((int)cause + 1) * CounterStride];

    private void Raise(BusNotice notice)
    {
        var handlers = Notice;
        if (handlers is null) return;
        foreach (EventHandler<BusNotice> handler in handlers.GetInvocationList())
        {
            try
            {
                handler(this, notice);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A handler's failure must not break the transport thread that reported.
            }
        }
    }
}
