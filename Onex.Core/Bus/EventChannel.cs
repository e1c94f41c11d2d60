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
/// <para>The queue is its own (a ring under one short lock) rather than a bounded <see cref="Channel{T}"/>: a full queue
/// in a drop mode is the common case for a stalled subscriber, and there every incoming event costs one lock, a slot
/// overwritten and one atomic add to the bus's drop counter; each event's <see cref="PendingSize"/> is computed once,
/// when it is queued.</para>
/// <para>At the byte limit, <see cref="BoundedChannelFullMode.DropOldest"/> evicts queued events from the oldest until the
/// new one fits, while <see cref="BoundedChannelFullMode.DropNewest"/> and <see cref="BoundedChannelFullMode.DropWrite"/>
/// discard the incoming event (the newest one).</para>
/// </remarks>
public sealed class EventChannel : IEventSubscription
{
    private readonly Lock _gate = new();
    private readonly PendingReader _reader;
    private readonly TopicPattern _pattern;
    private readonly Func<EventChannel, ValueTask>? _onUnsubscribe;
    private readonly EventBusHealth? _health;
    private readonly int _capacity;
    private readonly long _maxBytes;
    private readonly string _fullDetail;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The queue, guarded by _gate: a ring of events and, beside it, their pending sizes (kept apart so the array the
    // garbage collector scans holds references only), grown by doubling up to the capacity.
    private OnexEvent?[] _events;
    private long[] _sizes;
    private int _head;
    private int _count;
    private long _pendingBytes;
    private long _droppedCount;
    private Exception? _error;
    private TaskCompletionSource<bool>? _readable;

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
        if (!Enum.IsDefined(FullMode)) throw new ArgumentException($"Unknown full mode {FullMode}.", nameof(options));
        _onUnsubscribe = onUnsubscribe;
        _health = health;
        _capacity = Options.Capacity;
        _maxBytes = Options.MaxPendingBytes;
        _events = new OnexEvent?[Math.Min(_capacity, InitialSlots)];
        _sizes = new long[_events.Length];
        _fullDetail = $"subscription '{_pattern.Pattern}' is full ({Options.Capacity} events or {_maxBytes} bytes pending, {FullMode})";
        _reader = new PendingReader(this);
        if (health is not null) Onex.Diagnostics.BusQueueDepth.Track(this, health, Onex.Diagnostics.BusQueueDepth.Subscription, () => Volatile.Read(ref _count));
    }

    private const int InitialSlots = 64;

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
    public long PendingBytes => Volatile.Read(ref _pendingBytes);

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
    /// <exception cref="ArgumentNullException"><paramref name="evt"/> is null.</exception>
    public bool TryWrite(OnexEvent evt)
    {
        ArgumentNullException.ThrowIfNull(evt);
        var size = PendingSize(evt);
        long dropped = 0;
        TaskCompletionSource<bool>? readable = null;
        lock (_gate)
        {
            if (_completed || !TryQueue(evt, size, ref dropped, ref readable)) return false;
        }
        readable?.TrySetResult(true);
        if (dropped != 0) Report(dropped);
        return true;
    }

    /// <summary>
    /// Queues <paramref name="evt"/>, waiting for room (in events and in bytes) in <see cref="BoundedChannelFullMode.Wait"/>
    /// mode. Returns false, without throwing, when the queue is or becomes completed (the subscriber went away): the
    /// event is not delivered to it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting.</exception>
    public ValueTask<bool> WriteAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        if (TryWrite(evt)) return new ValueTask<bool>(true);
        if (_completed) return new ValueTask<bool>(false);
        return WaitForRoomThenWriteAsync(evt, cancellationToken);
    }

    /// <summary>
    /// Counts <paramref name="count"/> events dropped on this subscription's behalf by the backend (for example, at a
    /// full Wait-mode queue that the transport cannot hold back): in <see cref="DroppedCount"/> and in the bus's health.
    /// </summary>
    public void CountDropped(long count)
    {
        if (count <= 0) return;
        lock (_gate) _droppedCount += count;
        Report(count);
    }

    /// <summary>
    /// Completes the queue without unsubscribing: readers drain what is queued and then end, or, with
    /// <paramref name="error"/>, then throw it. A backend calls this when its transport fails or the bus is disposed.
    /// Returns false when the queue was already completed.
    /// </summary>
    public bool TryComplete(Exception? error = null)
    {
        TaskCompletionSource<bool>? readable;
        bool drained;
        lock (_gate)
        {
            if (_completed) return false;
            _completed = true;
            _error = error;
            readable = _readable;
            _readable = null;
            drained = _count == 0;
        }
        Onex.Diagnostics.BusQueueDepth.Untrack(this);
        if (readable is not null)
        {
            // A waiting reader means the queue was empty: it ends now (or throws the error).
            if (error is null) readable.TrySetResult(false);
            else readable.TrySetException(error);
        }
        if (drained) CompleteReader();
        SignalRoom();
        return true;
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

    // Under _gate. An empty queue takes any event, so one larger than the whole limit is never stuck.
    private bool FitsBytes(long size) => _count == 0 || _pendingBytes + size <= _maxBytes;

    // Under _gate. Applies the limits and the full mode; false only for a full queue in Wait mode (nothing changed).
    private bool TryQueue(OnexEvent evt, long size, ref long dropped, ref TaskCompletionSource<bool>? readable)
    {
        if (!FitsBytes(size))
        {
            switch (FullMode)
            {
                case BoundedChannelFullMode.Wait:
                    return false;
                case BoundedChannelFullMode.DropOldest:
                    while (_count > 0 && !FitsBytes(size))
                    {
                        RemoveHead();
                        dropped++;
                    }
                    break;
                default:
                    // DropNewest and DropWrite discard the incoming event at the byte limit.
                    _droppedCount++;
                    dropped = 1;
                    return true;
            }
        }
        if (_count == _capacity)
        {
            switch (FullMode)
            {
                case BoundedChannelFullMode.Wait:
                    return false;
                case BoundedChannelFullMode.DropWrite:
                    _droppedCount += dropped + 1;
                    dropped++;
                    return true;
                case BoundedChannelFullMode.DropNewest:
                    // The newest queued event makes room for the incoming one (as BoundedChannel and NATS.Net): its slot
                    // is overwritten, so a stalled subscription costs each publish one lock and no allocation.
                    var tail = Index(_count - 1);
                    _pendingBytes += size - _sizes[tail];
                    _events[tail] = evt;
                    _sizes[tail] = size;
                    _droppedCount += dropped + 1;
                    dropped++;
                    return true;
                default:
                    RemoveHead();
                    dropped++;
                    break;
            }
        }
        _droppedCount += dropped;
        Append(evt, size);
        readable = _readable;
        _readable = null;
        return true;
    }

    // Under _gate.
    private void Append(OnexEvent evt, long size)
    {
        if (_count == _events.Length)
        {
            var length = (int)Math.Min((long)_events.Length * 2, _capacity);
            var events = new OnexEvent?[length];
            var sizes = new long[length];
            var first = _events.Length - _head;
            Array.Copy(_events, _head, events, 0, first);
            Array.Copy(_events, 0, events, first, _head);
            Array.Copy(_sizes, _head, sizes, 0, first);
            Array.Copy(_sizes, 0, sizes, first, _head);
            _events = events;
            _sizes = sizes;
            _head = 0;
        }
        var slot = Index(_count);
        _events[slot] = evt;
        _sizes[slot] = size;
        _pendingBytes += size;
        Volatile.Write(ref _count, _count + 1);
    }

    // Under _gate: the ring position of the queued event at offset from the oldest (no division on the hot path).
    private int Index(int offset)
    {
        var index = _head + offset;
        return index >= _events.Length ? index - _events.Length : index;
    }

    // Under _gate.
    private OnexEvent RemoveHead()
    {
        var evt = _events[_head]!;
        _events[_head] = null;
        _pendingBytes -= _sizes[_head];
        _head = _head + 1 == _events.Length ? 0 : _head + 1;
        Volatile.Write(ref _count, _count - 1);
        return evt;
    }

    // Outside _gate: the bus's counter (exact once the drop happened), a notice per episode, the meter.
    private void Report(long dropped)
    {
        if (_health is null) return;
        if (Volatile.Read(ref _slowEpisode) == 0 && Interlocked.Exchange(ref _slowEpisode, 1) == 0) _health.ReportSlowConsumer(Pattern, _fullDetail);
        _health.CountDropped(DropCause.SubscriberQueue, dropped, Pattern, _fullDetail);
    }

    private bool TryTake([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out OnexEvent evt)
    {
        bool drained, ended;
        lock (_gate)
        {
            if (_count == 0)
            {
                evt = null;
                return false;
            }
            evt = RemoveHead();
            drained = _count == 0;
            ended = drained && _completed;
        }
        (_health?.Telemetry ?? Onex.Diagnostics.BusTelemetry.Unnamed).Delivered(evt);
        if (drained && Volatile.Read(ref _slowEpisode) != 0) Volatile.Write(ref _slowEpisode, 0);
        if (Volatile.Read(ref _room) is not null) SignalRoom();
        if (ended) CompleteReader();
        return true;
    }

    private bool TryPeekHead([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out OnexEvent evt)
    {
        lock (_gate)
        {
            evt = _count == 0 ? null : _events[_head];
            return evt is not null;
        }
    }

    private ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested) return ValueTask.FromCanceled<bool>(cancellationToken);
        TaskCompletionSource<bool> readable;
        lock (_gate)
        {
            if (_count > 0) return new ValueTask<bool>(true);
            if (_completed) return _error is null ? new ValueTask<bool>(false) : ValueTask.FromException<bool>(_error);
            readable = _readable ??= new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        return new ValueTask<bool>(cancellationToken.CanBeCanceled ? readable.Task.WaitAsync(cancellationToken) : readable.Task);
    }

    // The reader's Completion: done once the queue is completed and drained, faulted with the completion's error.
    private void CompleteReader()
    {
        var error = Volatile.Read(ref _error);
        if (error is null) _completion.TrySetResult();
        else if (error is OperationCanceledException cancelled) _completion.TrySetCanceled(cancelled.CancellationToken);
        else _completion.TrySetException(error);
    }

    private void SignalRoom() => Interlocked.Exchange(ref _room, null)?.TrySetResult();

    private async ValueTask<bool> WaitForRoomThenWriteAsync(OnexEvent evt, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_completed) return false;
            var room = Volatile.Read(ref _room);
            if (room is null)
            {
                var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                room = Interlocked.CompareExchange(ref _room, fresh, null) ?? fresh;
            }
            // A read between the failed write and publishing the signal would be missed: try again before waiting.
            if (TryWrite(evt)) return true;
            if (_completed) return false;
            await room.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
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

    /// <summary>The queue's reader.</summary>
    private sealed class PendingReader(EventChannel owner) : ChannelReader<OnexEvent>
    {
        public override Task Completion => owner._completion.Task;

        public override bool CanCount => true;

        public override int Count => Volatile.Read(ref owner._count);

        public override bool CanPeek => true;

        public override bool TryPeek([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out OnexEvent item) => owner.TryPeekHead(out item);

        public override bool TryRead([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out OnexEvent item) => owner.TryTake(out item);

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => owner.WaitToReadAsync(cancellationToken);
    }
}
