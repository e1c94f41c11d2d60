using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Onex.Events;

namespace Onex.Bus;

/// <summary>
/// One subscriber's bounded event queue, and the <see cref="IEventSubscription"/> handed to that subscriber.
/// Every backend delivers into it the same way: a matched event goes in with <see cref="TryWrite"/>, and only when
/// that returns false (the queue is full in <see cref="BoundedChannelFullMode.Wait"/> mode) with
/// <see cref="WriteAsync"/>. The queue applies <see cref="SubscriptionOptions.FullMode"/> and counts drops in
/// <see cref="DroppedCount"/>. Disposing it completes the queue (pending reads finish once the queued events are
/// read, blocked writers are released) and then runs the owner's <c>onUnsubscribe</c> hook once, so the owning bus
/// stops routing to it.
/// </summary>
/// <remarks>
/// Continuations of readers never run inline on the writer's thread, so a slow or failing consumer cannot
/// stall or break the code that delivers to it.
/// </remarks>
public sealed class EventChannel : IEventSubscription
{
    private readonly Channel<OnexEvent> _channel;
    private readonly TopicPattern _pattern;
    private readonly Func<EventChannel, ValueTask>? _onUnsubscribe;
    private long _droppedCount;
    private volatile bool _completed;
    private int _disposed;

    /// <summary>
    /// Creates the queue for a subscription to <paramref name="pattern"/>.
    /// </summary>
    /// <param name="pattern">The subscription pattern (syntax in <see cref="Topic"/>).</param>
    /// <param name="options">Capacity and full mode; <see cref="SubscriptionOptions.Default"/> when null.</param>
    /// <param name="onUnsubscribe">
    /// Called once, on the first <see cref="DisposeAsync"/>, after the queue has been completed: the owning bus
    /// removes the subscription from its routing here. Exceptions it throws surface from <see cref="DisposeAsync"/>.
    /// </param>
    /// <exception cref="ArgumentException"><paramref name="pattern"/> is not a valid pattern, or a setting is invalid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SubscriptionOptions.Capacity"/> is less than 1.</exception>
    public EventChannel(string pattern, SubscriptionOptions? options = null, Func<EventChannel, ValueTask>? onUnsubscribe = null)
    {
        _pattern = TopicPattern.Parse(pattern);
        Options = options ?? SubscriptionOptions.Default;
        Options.Validate();
        _onUnsubscribe = onUnsubscribe;
        _channel = Channel.CreateBounded<OnexEvent>(
            new BoundedChannelOptions(Options.Capacity)
            {
                FullMode = Options.FullMode,
                SingleReader = false,
                SingleWriter = false,
                AllowSynchronousContinuations = false,
            },
            _ => Interlocked.Increment(ref _droppedCount));
    }

    /// <inheritdoc/>
    public string Pattern => _pattern.Pattern;

    /// <summary>The capacity and full mode this queue was created with.</summary>
    public SubscriptionOptions Options { get; }

    /// <inheritdoc/>
    public ChannelReader<OnexEvent> Reader => _channel.Reader;

    /// <inheritdoc/>
    public long DroppedCount => Interlocked.Read(ref _droppedCount);

    /// <summary>True once the queue accepts no more events (disposed or <see cref="TryComplete"/> called).</summary>
    public bool IsCompleted => _completed;

    /// <summary>True when the concrete <paramref name="topic"/> matches <see cref="Pattern"/>. Allocates nothing.</summary>
    public bool Matches(string topic) => _pattern.Matches(topic);

    /// <summary>
    /// The synchronous fast path. Returns true when the event was taken: queued, or handled by a drop mode (which may
    /// count it or an older event as dropped). Returns false when the queue is full in
    /// <see cref="BoundedChannelFullMode.Wait"/> mode (call <see cref="WriteAsync"/>) or is completed.
    /// </summary>
    public bool TryWrite(OnexEvent evt) => _channel.Writer.TryWrite(evt);

    /// <summary>
    /// Queues <paramref name="evt"/>, waiting for room in <see cref="BoundedChannelFullMode.Wait"/> mode. Waiting
    /// writers are served in arrival order. Returns false, without throwing, when the queue is or becomes completed
    /// (the subscriber went away): the event is not delivered to it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting.</exception>
    public ValueTask<bool> WriteAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        if (_completed) return new ValueTask<bool>(false);
        var write = _channel.Writer.WriteAsync(evt, cancellationToken);
        return write.IsCompletedSuccessfully ? new ValueTask<bool>(true) : AwaitWriteAsync(write);
    }

    /// <summary>
    /// Completes the queue without unsubscribing: readers drain what is queued and then end, or, with
    /// <paramref name="error"/>, then throw it. A backend calls this when its transport fails or the bus is disposed.
    /// Returns false when the queue was already completed.
    /// </summary>
    public bool TryComplete(Exception? error = null)
    {
        _completed = true;
        return _channel.Writer.TryComplete(error);
    }

    /// <summary>
    /// Enumerates events until the queue is completed and drained. Cancelling <paramref name="cancellationToken"/>
    /// ends this enumeration with <see cref="OperationCanceledException"/>; the subscription stays live and can be
    /// enumerated again.
    /// </summary>
    public IAsyncEnumerator<OnexEvent> GetAsyncEnumerator(CancellationToken cancellationToken = default) =>
        ReadAllAsync(default).GetAsyncEnumerator(cancellationToken);

    /// <summary>Unsubscribes: completes the queue, then runs the <c>onUnsubscribe</c> hook. Idempotent.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return default;
        TryComplete();
        return _onUnsubscribe?.Invoke(this) ?? default;
    }

    /// <inheritdoc/>
    public override string ToString() => $"EventChannel({Pattern}, {Options.Capacity}, {Options.FullMode})";

    private static async ValueTask<bool> AwaitWriteAsync(ValueTask write)
    {
        try
        {
            await write.ConfigureAwait(false);
            return true;
        }
        catch (ChannelClosedException)
        {
            // Completed while this writer waited for room: the subscriber is gone, which is not the publisher's failure.
            return false;
        }
    }

    private async IAsyncEnumerable<OnexEvent> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = _channel.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var evt))
                yield return evt;
        }
    }
}
