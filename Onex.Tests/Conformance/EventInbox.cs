using Onex.Bus;
using Onex.Events;

namespace Onex.Tests.Conformance;

/// <summary>
/// Reads a subscription continuously in the background (by enumerating it, as a consumer would) and lets a test
/// await conditions on what has arrived so far, each with a timeout and a message saying what did not arrive.
/// </summary>
public sealed class EventInbox : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly List<OnexEvent> _events = [];
    private readonly List<Waiter> _waiters = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;
    private string? _endReason;
    private Exception? _endError;

    private EventInbox(IEventSubscription subscription)
    {
        Subscription = subscription;
        _pump = Task.Run(PumpAsync);
    }

    /// <summary>The subscription being read.</summary>
    public IEventSubscription Subscription { get; }

    /// <summary>Starts reading <paramref name="subscription"/>.</summary>
    public static EventInbox Start(IEventSubscription subscription) => new(subscription);

    /// <summary>A copy of everything received so far, in arrival order.</summary>
    public IReadOnlyList<OnexEvent> Snapshot()
    {
        lock (_gate) return _events.ToArray();
    }

    /// <summary>Waits until at least <paramref name="count"/> events arrived; returns the first <paramref name="count"/>.</summary>
    public async Task<IReadOnlyList<OnexEvent>> WaitForCountAsync(int count, TimeSpan timeout, string what)
    {
        var all = await WaitUntilAsync(events => events.Count >= count, timeout, what).ConfigureAwait(false);
        return all.Take(count).ToArray();
    }

    /// <summary>Waits until an event matching <paramref name="predicate"/> arrived and returns it.</summary>
    public async Task<OnexEvent> WaitForAsync(Func<OnexEvent, bool> predicate, TimeSpan timeout, string what)
    {
        var all = await WaitUntilAsync(events => events.Any(predicate), timeout, what).ConfigureAwait(false);
        return all.First(predicate);
    }

    /// <summary>
    /// Waits until <paramref name="condition"/> holds for the events received so far; fails the test after
    /// <paramref name="timeout"/>, or when the subscription ends first, saying <paramref name="what"/> did not arrive.
    /// </summary>
    public async Task<IReadOnlyList<OnexEvent>> WaitUntilAsync(Func<IReadOnlyList<OnexEvent>, bool> condition, TimeSpan timeout, string what)
    {
        var waiter = new Waiter(condition);
        lock (_gate)
        {
            if (condition(_events)) return _events.ToArray();
            if (_endReason is not null) Fail(what, $"the subscription ended first ({_endReason})", _endError);
            _waiters.Add(waiter);
        }

        try
        {
            await waiter.Done.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            lock (_gate) _waiters.Remove(waiter);
            Fail(what, $"nothing matching arrived within {timeout.TotalSeconds:0.#}s", null);
        }
        catch (InvalidOperationException ended)
        {
            Fail(what, ended.Message, ended.InnerException);
        }
        return Snapshot();
    }

    /// <summary>Stops reading (the subscription itself stays as it is).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _pump.ConfigureAwait(false);
        _stop.Dispose();
    }

    private void Fail(string what, string why, Exception? error)
    {
        IReadOnlyList<OnexEvent> seen = Snapshot();
        var tail = string.Join(", ", seen.TakeLast(5).Select(e => e.Topic));
        Assert.Fail($"Expected {what} on '{Subscription.Pattern}', but {why}. Received {seen.Count} event(s); last topics: [{tail}]."
                    + (error is null ? "" : $" Subscription error: {error}"));
    }

    private async Task PumpAsync()
    {
        try
        {
            await foreach (var evt in Subscription.WithCancellation(_stop.Token).ConfigureAwait(false))
            {
                lock (_gate)
                {
                    _events.Add(evt);
                    for (var i = _waiters.Count - 1; i >= 0; i--)
                    {
                        if (!_waiters[i].Condition(_events)) continue;
                        _waiters[i].Done.TrySetResult();
                        _waiters.RemoveAt(i);
                    }
                }
            }
            End("completed", null);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            End("inbox stopped", null);
        }
        catch (Exception ex)
        {
            End("faulted", ex);
        }
    }

    private void End(string reason, Exception? error)
    {
        lock (_gate)
        {
            _endReason = reason;
            _endError = error;
            foreach (var waiter in _waiters)
                waiter.Done.TrySetException(new InvalidOperationException($"the subscription ended first ({reason})", error));
            _waiters.Clear();
        }
    }

    private sealed class Waiter(Func<IReadOnlyList<OnexEvent>, bool> condition)
    {
        public Func<IReadOnlyList<OnexEvent>, bool> Condition { get; } = condition;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
