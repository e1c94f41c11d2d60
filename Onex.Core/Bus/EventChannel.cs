using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Onex.Events;

namespace Onex.Bus;

/// <summary>
/// One subscriber's bounded event queue, and the <see cref="IEventSubscription"/> handed to that subscriber.
/// Every backend delivers into it the same way: a matched event goes in with <see cref="TryWrite"/>, and only when
/// that returns false (the queue is full in <see cref="BoundedChannelFullMode.Wait"/> mode) with
/// <see cref="WriteAsync"/>. The queue is bounded in events (<see cref="SubscriptionOptions.Capacity"/>) and in bytes
/// (<see cref="SubscriptionOptions.MaxPendingBytes"/>, counted with <see cref="PendingSize"/>), applies its
/// <see cref="FullMode"/> when either limit is reached, and counts drops in <see cref="DroppedCount"/> and in the
/// bus's <see cref="EventBusHealth"/> (cause <see cref="DropCause.SubscriberQueue"/>, with one
/// <see cref="BusNoticeKind.SlowConsumer"/> notice per episode of drops, which ends when the reader empties the queue). Disposing it completes the queue (pending reads finish once the queued events are
/// read, blocked writers are released) and then runs the owner's <c>onUnsubscribe</c> hook once, so the owning bus
/// stops routing to it.
/// </summary>
/// <remarks>
/// <para>Continuations of readers never run inline on the writer's thread, so a slow or failing consumer cannot
/// stall or break the code that delivers to it.</para>
/// <para>At the byte limit, <see cref="BoundedChannelFullMode.DropOldest"/> evicts queued events from the oldest until the
/// new one fits, while <see cref="BoundedChannelFullMode.DropNewest"/> and <see cref="BoundedChannelFullMode.DropWrite"/>
/// discard the incoming event (the newest one). Concurrent writers may overshoot the byte limit by at most one event
/// each; every backend has one writer per subscription.</para>
/// </remarks>
public sealed class EventChannel : IEventSubscription
{
    private readonly Channel<OnexEvent> _channel;
    private readonly PendingReader _reader;
    private readonly TopicPattern _pattern;
    private readonly Func<EventChannel, ValueTask>? _onUnsubscribe;
    private readonly EventBusHealth? _health;
    private readonly long _maxBytes;
    private readonly string _fullDetail;
    private long _droppedCount;
    // Pending bytes are what writers added minus what readers took (and drops, rollbacks): two counters on cache lines of
    // their own, so the delivering thread and the reading thread do not both write one line for every event.
    private PaddedCounter _bytesIn;
    private PaddedCounter _bytesOut;
    private int _slowEpisode;
    private TaskCompletionSource? _room;
    private volatile bool _completed;
    private int _disposed;

    /// <summary>
    /// Creates the queue for a subscription to <paramref name="pattern"/>.
    /// </summary>
    /// <param name="pattern">The subscription pattern (syntax in <see cref="Topic"/>).</param>
    /// <param name="options">Limits and full mode; <see cref="SubscriptionOptions.Default"/> when null.</param>
    /// <param name="onUnsubscribe">
    /// Called once, on the first <see cref="DisposeAsync"/>, after the queue has been completed: the owning bus
    /// removes the subscription from its routing here. Exceptions it throws surface from <see cref="DisposeAsync"/>.
    /// </param>
    /// <param name="health">The owning participant's health, which counts this queue's drops; none when null.</param>
    /// <param name="defaultFullMode">The backend's full mode for options that leave <see cref="SubscriptionOptions.FullMode"/> null.</param>
    /// <exception cref="ArgumentException"><paramref name="pattern"/> is not a valid pattern, or a setting is invalid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="SubscriptionOptions.Capacity"/> or <see cref="SubscriptionOptions.MaxPendingBytes"/> is less than 1.</exception>
    public EventChannel(
        string pattern,
        SubscriptionOptions? options = null,
        Func<EventChannel, ValueTask>? onUnsubscribe = null,
        EventBusHealth? health = null,
        BoundedChannelFullMode defaultFullMode = BoundedChannelFullMode.DropNewest)
    {
        _pattern = TopicPattern.Parse(pattern);
        Options = options ?? SubscriptionOptions.Default;
        Options.Validate();
        FullMode = Options.FullMode ?? defaultFullMode;
        _onUnsubscribe = onUnsubscribe;
        _health = health;
        _maxBytes = Options.MaxPendingBytes;
        _fullDetail = $"subscription '{_pattern.Pattern}' is full ({Options.Capacity} events or {_maxBytes} bytes pending, {FullMode})";
        _channel = Channel.CreateBounded<OnexEvent>(
            new BoundedChannelOptions(Options.Capacity)
            {
                FullMode = FullMode,
                SingleReader = false,
                SingleWriter = false,
                AllowSynchronousContinuations = false,
            },
            dropped =>
            {
                Interlocked.Add(ref _bytesOut.Value, PendingSize(dropped));
                CountDropped(1);
            });
        _reader = new PendingReader(this);
        if (health is not null) Onex.Diagnostics.BusQueueDepth.Track(this, health, Onex.Diagnostics.BusQueueDepth.Subscription, () => _channel.Reader.Count);
    }

    /// <inheritdoc/>
    public string Pattern => _pattern.Pattern;

    /// <summary>The limits and full mode this queue was created with (<see cref="FullMode"/> resolves a null full mode).</summary>
    public SubscriptionOptions Options { get; }

    /// <summary>The full mode in force: the options' or, when they leave it null, the backend's default.</summary>
    public BoundedChannelFullMode FullMode { get; }

    /// <inheritdoc/>
    public ChannelReader<OnexEvent> Reader => _reader;

    /// <inheritdoc/>
    public long DroppedCount => Volatile.Read(ref _droppedCount);

    /// <summary>Bytes queued now, as counted by <see cref="PendingSize"/>.</summary>
    public long PendingBytes
    {
        get
        {
            var taken = Volatile.Read(ref _bytesOut.Value);
            return Volatile.Read(ref _bytesIn.Value) - taken;
        }
    }

    /// <summary>True once the queue accepts no more events (disposed or <see cref="TryComplete"/> called).</summary>
    public bool IsCompleted => _completed;

    /// <summary>
    /// What an event counts against <see cref="SubscriptionOptions.MaxPendingBytes"/>: its payload, its strings
    /// (one byte per character: topics and ids are ASCII) and 64 bytes for the envelope.
    /// </summary>
    public static long PendingSize(OnexEvent evt)
    {
        long size = 64 + evt.Payload.Length + evt.Topic.Length + evt.EventId.Length + evt.EventType.Length
                    + evt.SourceNodeId.Length + (evt.CorrelationId?.Length ?? 0);
        if (evt.Headers.Count > 0)
            foreach (var header in evt.Headers) size += header.Key.Length + header.Value.Length;
        return size;
    }

    /// <summary>True when the concrete <paramref name="topic"/> matches <see cref="Pattern"/>. Allocates nothing.</summary>
    public bool Matches(string topic) => _pattern.Matches(topic);

    /// <summary>
    /// The synchronous fast path. Returns true when the event was taken: queued, or handled by a drop mode (which may
    /// count it or an older event as dropped). Returns false when the queue is full in
    /// <see cref="BoundedChannelFullMode.Wait"/> mode (call <see cref="WriteAsync"/>) or is completed.
    /// </summary>
    public bool TryWrite(OnexEvent evt)
    {
        if (_completed) return false;
        var size = PendingSize(evt);
        if (!FitsBytes(size))
        {
            switch (FullMode)
            {
                case BoundedChannelFullMode.Wait:
                    return false;
                case BoundedChannelFullMode.DropOldest:
                    while (!FitsBytes(size) && _channel.Reader.TryRead(out var oldest))
                    {
                        Interlocked.Add(ref _bytesOut.Value, PendingSize(oldest));
                        CountDropped(1);
                    }
                    break;
                default:
                    CountDropped(1);
                    return true;
            }
        }
        Interlocked.Add(ref _bytesIn.Value, size);
        if (_channel.Writer.TryWrite(evt)) return true;
        Interlocked.Add(ref _bytesOut.Value, size);
        return false;
    }

    /// <summary>
    /// Queues <paramref name="evt"/>, waiting for room (in events and in bytes) in <see cref="BoundedChannelFullMode.Wait"/>
    /// mode. Returns false, without throwing, when the queue is or becomes completed (the subscriber went away): the
    /// event is not delivered to it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting.</exception>
    public ValueTask<bool> WriteAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        if (_completed) return new ValueTask<bool>(false);
        var size = PendingSize(evt);
        if (!FitsBytes(size)) return WaitForBytesThenWriteAsync(evt, size, cancellationToken);
        return QueueAsync(evt, size, cancellationToken);
    }

    /// <summary>
    /// Counts <paramref name="count"/> events dropped on this subscription's behalf by the backend (for example, at a
    /// full Wait-mode queue that the transport cannot hold back): in <see cref="DroppedCount"/> and in the bus's health.
    /// </summary>
    public void CountDropped(long count)
    {
        if (count <= 0) return;
        Interlocked.Add(ref _droppedCount, count);
        if (_health is null) return;
        if (Interlocked.Exchange(ref _slowEpisode, 1) == 0) _health.ReportSlowConsumer(Pattern, _fullDetail);
        _health.CountDropped(DropCause.SubscriberQueue, count, Pattern, _fullDetail);
    }

    /// <summary>
    /// Completes the queue without unsubscribing: readers drain what is queued and then end, or, with
    /// <paramref name="error"/>, then throw it. A backend calls this when its transport fails or the bus is disposed.
    /// Returns false when the queue was already completed.
    /// </summary>
    public bool TryComplete(Exception? error = null)
    {
        _completed = true;
        Onex.Diagnostics.BusQueueDepth.Untrack(this);
        var completed = _channel.Writer.TryComplete(error);
        SignalRoom();
        return completed;
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
    public override string ToString() => $"EventChannel({Pattern}, {Options.Capacity}, {_maxBytes} B, {FullMode})";

    // An empty queue takes any event, so one larger than the whole limit is never stuck.
    private bool FitsBytes(long size)
    {
        // Out first: a read between the two loads can only make the figure larger (safe: at worst a write waits or drops early).
        var taken = Volatile.Read(ref _bytesOut.Value);
        var pending = Volatile.Read(ref _bytesIn.Value) - taken;
        return pending <= 0 || pending + size <= _maxBytes;
    }

    private void Taken(OnexEvent evt)
    {
        Interlocked.Add(ref _bytesOut.Value, PendingSize(evt));
        (_health?.Telemetry ?? Onex.Diagnostics.BusTelemetry.Unnamed).Delivered(evt);
        if (Volatile.Read(ref _slowEpisode) != 0 && _channel.Reader.Count == 0) Volatile.Write(ref _slowEpisode, 0);
        if (Volatile.Read(ref _room) is not null) SignalRoom();
    }

    private void SignalRoom() => Interlocked.Exchange(ref _room, null)?.TrySetResult();

    private async ValueTask<bool> WaitForBytesThenWriteAsync(OnexEvent evt, long size, CancellationToken cancellationToken)
    {
        while (!FitsBytes(size))
        {
            if (_completed) return false;
            var room = Volatile.Read(ref _room);
            if (room is null)
            {
                var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                room = Interlocked.CompareExchange(ref _room, fresh, null) ?? fresh;
            }
            // A read between the check above and publishing the signal would be missed: look again before waiting.
            if (FitsBytes(size) || _completed) continue;
            await room.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        return await QueueAsync(evt, size, cancellationToken).ConfigureAwait(false);
    }

    private ValueTask<bool> QueueAsync(OnexEvent evt, long size, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref _bytesIn.Value, size);
        var write = _channel.Writer.WriteAsync(evt, cancellationToken);
        return write.IsCompletedSuccessfully ? new ValueTask<bool>(true) : AwaitWriteAsync(write, size);
    }

    private async ValueTask<bool> AwaitWriteAsync(ValueTask write, long size)
    {
        try
        {
            await write.ConfigureAwait(false);
            return true;
        }
        catch (ChannelClosedException)
        {
            // Completed while this writer waited for room: the subscriber is gone, which is not the publisher's failure.
            Interlocked.Add(ref _bytesOut.Value, size);
            return false;
        }
        catch (OperationCanceledException)
        {
            Interlocked.Add(ref _bytesOut.Value, size);
            throw;
        }
    }

    private async IAsyncEnumerable<OnexEvent> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var reader = _reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (reader.TryRead(out var evt))
                yield return evt;
        }
    }

    /// <summary>The queue's reader, which gives back the bytes of each event taken.</summary>
    private sealed class PendingReader(EventChannel owner) : ChannelReader<OnexEvent>
    {
        private readonly ChannelReader<OnexEvent> _inner = owner._channel.Reader;

        public override Task Completion => _inner.Completion;

        public override bool CanCount => _inner.CanCount;

        public override int Count => _inner.Count;

        public override bool CanPeek => _inner.CanPeek;

        public override bool TryPeek([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out OnexEvent item) => _inner.TryPeek(out item);

        public override bool TryRead([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out OnexEvent item)
        {
            if (!_inner.TryRead(out item)) return false;
            owner.Taken(item);
            return true;
        }

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => _inner.WaitToReadAsync(cancellationToken);
    }

    /// <summary>A counter alone on its cache line (64 bytes either side), so writing it does not evict its neighbours.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 136)]
    private struct PaddedCounter
    {
        [System.Runtime.InteropServices.FieldOffset(64)]
        public long Value;
    }
}
