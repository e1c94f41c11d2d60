using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>
/// <see cref="ReplyDeadlines"/>, the one timer behind every attempt's timeout, behaves like a timer per attempt
/// (what it replaced: <c>Task.WaitAsync(timeout)</c>): each attempt expires exactly at its own start plus the
/// timeout, never earlier, whatever else is in flight. On a fake clock, so every instant is exact.
/// </summary>
public class ReplyDeadlinesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    private static (FakeTimeProvider Time, ReplyDeadlines Deadlines, ConcurrentQueue<string> Expired) Create()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        var expired = new ConcurrentQueue<string>();
        return (time, new ReplyDeadlines(Timeout, time, reply => expired.Enqueue(reply.RequestId)), expired);
    }

    [Test]
    public void An_attempt_expires_at_its_timeout_and_not_a_tick_before()
    {
        var (time, deadlines, expired) = Create();
        using var _ = deadlines;
        deadlines.Track(new PendingReply("a"));

        time.Advance(Timeout - TimeSpan.FromTicks(1));
        Assert.That(expired, Is.Empty, "an attempt must not time out before its timeout has passed");
        time.Advance(TimeSpan.FromTicks(1));
        Assert.That(expired, Is.EqualTo(new[] { "a" }), "the attempt should time out exactly when its timeout has passed");
        Assert.That(deadlines.Count, Is.Zero);
    }

    [Test]
    public void Attempts_started_at_different_times_each_expire_at_their_own_deadline()
    {
        var (time, deadlines, expired) = Create();
        using var _ = deadlines;
        var starts = new[] { 0, 300, 300, 1_100, 1_999 }; // ms after the first
        var at = TimeSpan.Zero;
        for (var i = 0; i < starts.Length; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(starts[i]) - at);
            at = TimeSpan.FromMilliseconds(starts[i]);
            deadlines.Track(new PendingReply($"r{i}"));
        }

        // Walk the clock in 1 ms steps and note when each expired, as a timer per attempt would have it.
        var expiredAt = new Dictionary<string, int>();
        for (var ms = starts[^1] + 1; ms <= starts[^1] + 2_001; ms++)
        {
            time.Advance(TimeSpan.FromMilliseconds(1));
            while (expired.TryDequeue(out var id)) expiredAt[id] = ms;
        }

        var expected = starts.Select((start, i) => ($"r{i}", start + (int)Timeout.TotalMilliseconds)).ToDictionary(p => p.Item1, p => p.Item2);
        Assert.That(expiredAt, Is.EqualTo(expected), "each attempt should expire at its own start plus the timeout");
    }

    [Test]
    public void An_untracked_attempt_never_expires_and_does_not_delay_the_others()
    {
        var (time, deadlines, expired) = Create();
        using var _ = deadlines;
        var answered = new PendingReply("answered");
        deadlines.Track(answered);
        time.Advance(TimeSpan.FromMilliseconds(500));
        deadlines.Track(new PendingReply("waiting"));
        deadlines.Untrack(answered);

        time.Advance(Timeout - TimeSpan.FromMilliseconds(500));
        Assert.That(expired, Is.Empty, "an answered attempt must not time out");
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.That(expired, Is.EqualTo(new[] { "waiting" }), "the attempt behind the answered one should expire at its own deadline");
    }

    [Test]
    public void An_attempt_tracked_after_an_idle_spell_still_expires_on_time()
    {
        var (time, deadlines, expired) = Create();
        using var _ = deadlines;
        deadlines.Track(new PendingReply("first"));
        time.Advance(Timeout);
        Assert.That(expired, Has.Count.EqualTo(1));

        time.Advance(TimeSpan.FromMinutes(5)); // nothing in flight: the timer is not running
        deadlines.Track(new PendingReply("later"));
        time.Advance(Timeout);
        Assert.That(expired.Last(), Is.EqualTo("later"), "the timer must be set again for an attempt tracked after the list ran empty");
    }

    [Test]
    public void Tracking_the_same_attempt_twice_keeps_its_first_deadline()
    {
        var (time, deadlines, expired) = Create();
        using var _ = deadlines;
        var reply = new PendingReply("once");
        deadlines.Track(reply);
        time.Advance(TimeSpan.FromSeconds(1));
        deadlines.Track(reply);

        Assert.That(deadlines.Count, Is.EqualTo(1), "an attempt is in the list once");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(expired, Is.EqualTo(new[] { "once" }), "the deadline is set when the attempt is first tracked");
    }

    [Test]
    public void Nothing_expires_after_dispose()
    {
        var (time, deadlines, expired) = Create();
        deadlines.Track(new PendingReply("gone"));
        deadlines.Dispose();
        time.Advance(Timeout * 2);
        Assert.That(expired, Is.Empty);
    }

    [Test]
    public void A_timer_that_fires_early_is_set_again_without_spinning_and_nothing_expires_early()
    {
        // System timers count whole milliseconds and can fire up to one early; this clock's timers fire 0.5 ms early.
        var time = new EarlyTimers(new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000)), TimeSpan.FromMilliseconds(0.5));
        var expiredAt = new List<TimeSpan>();
        var start = time.GetUtcNow();
        using var deadlines = new ReplyDeadlines(Timeout, time, _ => expiredAt.Add(time.GetUtcNow() - start));
        deadlines.Track(new PendingReply("a"));

        for (var i = 0; i < 20_050; i++) time.Fake.Advance(TimeSpan.FromTicks(1_000)); // 0.1 ms steps to 2.005 s

        Assert.That(expiredAt, Has.Count.EqualTo(1), "the attempt should expire once");
        Assert.That(expiredAt[0], Is.GreaterThanOrEqualTo(Timeout), "an early timer must not expire an attempt early");
        Assert.That(expiredAt[0], Is.LessThanOrEqualTo(Timeout + TimeSpan.FromMilliseconds(1)), "it should expire within a millisecond of its deadline");
        Assert.That(time.Fired, Is.LessThanOrEqualTo(3), "an early timer should be set again once, not fire over and over until the deadline");
    }

    /// <summary>A clock whose timers fire <c>early</c> before their due time, like a millisecond-granular system timer.</summary>
    private sealed class EarlyTimers(FakeTimeProvider fake, TimeSpan early) : TimeProvider
    {
        public FakeTimeProvider Fake { get; } = fake;

        public int Fired;

        public override long GetTimestamp() => Fake.GetTimestamp();

        public override long TimestampFrequency => Fake.TimestampFrequency;

        public override DateTimeOffset GetUtcNow() => Fake.GetUtcNow();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            new EarlyTimer(Fake.CreateTimer(s =>
            {
                Interlocked.Increment(ref Fired);
                callback(s);
            }, state, global::System.Threading.Timeout.InfiniteTimeSpan, global::System.Threading.Timeout.InfiniteTimeSpan), early);

        private sealed class EarlyTimer(ITimer inner, TimeSpan early) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) =>
                inner.Change(dueTime == global::System.Threading.Timeout.InfiniteTimeSpan ? dueTime : dueTime > early ? dueTime - early : TimeSpan.Zero, period);

            public void Dispose() => inner.Dispose();

            public ValueTask DisposeAsync() => inner.DisposeAsync();
        }
    }
}
