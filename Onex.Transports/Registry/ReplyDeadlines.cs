using Onex.Protocol;

namespace Onex.Transports.Registry;

/// <summary>One attempt's wait for the reply to a request id; completed by the reply, a timeout, a cancellation or dispose.</summary>
internal sealed class PendingReply(string requestId) : TaskCompletionSource<RegistryEnvelope>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public string RequestId { get; } = requestId;

    // Owned by ReplyDeadlines, under its lock.
    internal long Deadline;
    internal PendingReply? Previous;
    internal PendingReply? Next;
    internal bool Linked;
}

/// <summary>
/// The timeouts of every attempt in flight on one channel, with one timer between them. Every attempt waits the same
/// time, so deadlines come in the order attempts start: a list in that order, unlinked on completion, whose head is the
/// next to expire, and one timer set for the head. Expiring an attempt calls <c>onTimeout</c> at its deadline, exactly
/// as a timer of its own would (never earlier; on a fake clock, on the advance that reaches it). Replaces a timer per
/// attempt (<c>Task.WaitAsync(timeout)</c>), which at tens of thousands of requests a second cost a timer queue entry,
/// a promise task and a continuation each.
/// </summary>
internal sealed class ReplyDeadlines : IDisposable
{
    private static readonly TimeSpan MinimumRearm = TimeSpan.FromMilliseconds(1);

    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly long _timeoutTicks;
    private readonly Action<PendingReply> _onTimeout;
    private readonly ITimer _timer;
    private PendingReply? _head;
    private PendingReply? _tail;
    private long _armedFor = long.MaxValue;
    private bool _disposed;

    /// <param name="timeout">How long every attempt waits.</param>
    /// <param name="time">The clock (and timer) deadlines are kept by.</param>
    /// <param name="onTimeout">Called, outside the lock, for each attempt whose deadline passed while it was still linked.</param>
    public ReplyDeadlines(TimeSpan timeout, TimeProvider time, Action<PendingReply> onTimeout)
    {
        _time = time;
        _timeoutTicks = CeilingTicks(timeout, time.TimestampFrequency);
        _onTimeout = onTimeout;
        _timer = time.CreateTimer(static state => ((ReplyDeadlines)state!).Expire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Attempts waiting right now.</summary>
    public int Count { get; private set; }

    /// <summary>Starts <paramref name="reply"/>'s timeout now.</summary>
    public void Track(PendingReply reply)
    {
        lock (_gate)
        {
            if (_disposed || reply.Linked) return;
            var now = _time.GetTimestamp();
            reply.Deadline = now + _timeoutTicks;
            reply.Previous = _tail;
            reply.Next = null;
            if (_tail is null) _head = reply;
            else _tail.Next = reply;
            _tail = reply;
            reply.Linked = true;
            Count++;
            if (reply.Deadline < _armedFor) Arm(reply.Deadline, now, firedEarly: false);
        }
    }

    /// <summary>Stops <paramref name="reply"/>'s timeout (it was answered, cancelled or given up).</summary>
    public void Untrack(PendingReply reply)
    {
        lock (_gate) Unlink(reply);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            while (_head is { } head) Unlink(head);
        }
        _timer.Dispose();
    }

    private void Expire()
    {
        List<PendingReply>? expired = null;
        lock (_gate)
        {
            var armedFor = _armedFor;
            _armedFor = long.MaxValue;
            if (_disposed) return;
            var now = _time.GetTimestamp();
            while (_head is { } head && head.Deadline <= now)
            {
                Unlink(head);
                (expired ??= []).Add(head);
            }
            if (_head is { } next) Arm(next.Deadline, now, firedEarly: now < armedFor);
        }
        if (expired is null) return;
        foreach (var reply in expired) _onTimeout(reply);
    }

    private void Arm(long deadline, long now, bool firedEarly)
    {
        _armedFor = deadline;
        // Rounded up, so that when the timer fires the clock has reached the deadline (a fake clock moves exactly).
        var dueTicks = deadline - now;
        var due = dueTicks <= 0 ? TimeSpan.Zero : TimeSpan.FromTicks(CeilingDiv(dueTicks * TimeSpan.TicksPerSecond, _time.TimestampFrequency));
        // System timers count whole milliseconds and may fire up to one early; set again for the sub-millisecond rest,
        // they would fire at once, again and again until the deadline. A millisecond later is what such a timer gives anyway.
        if (firedEarly && due < MinimumRearm) due = MinimumRearm;
        _timer.Change(due, Timeout.InfiniteTimeSpan);
    }

    private void Unlink(PendingReply reply)
    {
        if (!reply.Linked) return;
        if (reply.Previous is null) _head = reply.Next;
        else reply.Previous.Next = reply.Next;
        if (reply.Next is null) _tail = reply.Previous;
        else reply.Next.Previous = reply.Previous;
        reply.Previous = reply.Next = null;
        reply.Linked = false;
        Count--;
    }

    private static long CeilingTicks(TimeSpan duration, long frequency) =>
        // Timestamp ticks of the duration, rounded up (frequency is ticks per second).
        (long)Math.Ceiling(duration.Ticks * (double)frequency / TimeSpan.TicksPerSecond);

    private static long CeilingDiv(long a, long b) => (a + b - 1) / b;
}
