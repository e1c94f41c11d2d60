using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NetMQ;
using NetMQ.Sockets;
using Onex.Bus;
using Onex.Diagnostics;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Zmq;

/// <summary>
/// Publishes <see cref="OnexEvent"/>s on a ZeroMQ PUB socket as two frames, <c>[topic][event]</c>, where the
/// event frame is <see cref="OnexEventCodec"/> MessagePack (a bus participant's publisher may put several events of
/// the topic into that frame, see <see cref="ConnectBatching"/>). Subscribers prefix-filter on the topic frame.
/// Thread-safe: events are encoded on the caller's thread and handed to the socket's own poller thread, so
/// events from one caller leave in the order they were published.
/// </summary>
/// <remarks>
/// <para>The hand-over is a lock-free queue drained in batches: only the publish that finds the poller idle wakes it,
/// so a burst costs one wake-up, not one per event. PUB never blocks: past the send high-water mark of a
/// subscriber, ZeroMQ drops for that subscriber.</para>
/// <para>The queue is bounded (<see cref="ZmqPublishQueueOptions"/>: events and bytes) with a declared full mode:
/// <see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/> (the default, like a NATS client whose write
/// buffer is full) makes <see cref="PublishAsync"/> wait for room; the drop modes discard the incoming event and count
/// it in <see cref="DroppedCount"/> and in the bus's health (<see cref="DropCause.PublisherQueue"/>).</para>
/// <para>A bus's host participant publishes through a publisher attached to its forwarder instead
/// (<see cref="Attach"/>): the queue is drained by the forwarder's own thread straight into its XPUB socket, so the
/// host's events skip a socket, an inproc pipe and a thread hand-over.</para>
/// </remarks>
public sealed class ZmqEventPublisher : IAsyncDisposable
{
    // Events sent per wake-up before the poller looks at its other work again.
    private const int DrainBatch = 4096;
    // SpinWait iterations an idle drain waits for the next event before going back to sleep.
    private const int IdleSpins = 12;
    /// <summary>
    /// Largest body a batch of small events grows to. Measured: 16 KiB keeps the throughput of 32 KiB (8 KiB costs about
    /// a tenth) at half the memory a full high-water mark of batches can hold. Every socket accepts messages of this
    /// size whatever its codec limits (<see cref="ZmqSocketOptions"/>), so a batch never exceeds what a receiver takes.
    /// </summary>
    internal const int MaxBatchBytes = 16 * 1024;

    /// <summary>Topics whose sequence numbers a bus publisher keeps before starting over.</summary>
    internal const int MaxNumberedTopics = 65_536;

    private readonly NetMQSocket _socket;
    private readonly bool _attached;
    private readonly ConcurrentQueue<OutgoingMessage> _outbox = new();
    private readonly NetMQQueue<bool> _wakeup = new();
    private readonly NetMQPoller _poller;
    private readonly OnexEventCodec _codec;
    private readonly TopicFrameCache _topicFrames = new();
    private readonly ILogger _logger;
    private readonly int _batchBytes;
    private readonly List<byte[]> _batch = [];
    // Batching (bus) publishers number their events per topic so receivers can count what they lost; drain thread only.
    private readonly long _publisherId = Random.Shared.NextInt64();
    private readonly Dictionary<byte[], long> _topicSequences = new(TopicFrameComparer.Instance);
    private int _wakeupPending;
    private int _disposed;
    private ZmqPublishQueueOptions _limits = ZmqPublishQueueOptions.Default;
    private EventBusHealth? _health;
    private string _fullDetail = "";
    private long _queuedBytes;
    private int _queuedCount;
    private long _dropped;
    private TaskCompletionSource? _room;
    // Set for an XPUB bound with BindForTopics: the only subscriptions it keeps (poller thread only).
    private readonly TopicPrefixes? _keptSubscriptions;
    private long _refusedSubscriptions;
    private bool _peerMessageMore;

    private ZmqEventPublisher(NetMQSocket socket, NetMQPoller? sharedPoller, string endpoint, OnexEventCodec codec, bool batch, ILogger logger,
        TopicPrefixes? keptSubscriptions = null)
    {
        _keptSubscriptions = keptSubscriptions;
        _socket = socket;
        _codec = codec;
        _logger = logger;
        _batchBytes = batch ? Math.Min(MaxBatchBytes, codec.Limits.MaxFrameBytes) : 0;
        Endpoint = endpoint;
        _wakeup.ReceiveReady += (_, _) => OnWakeup();
        if (sharedPoller is null)
        {
            _poller = new NetMQPoller { _wakeup };
            if (keptSubscriptions is not null)
            {
                // The XPUB hands every subscribe message to this thread, which keeps it or drops it (ReadSubscriptions).
                _socket.ReceiveReady += (_, _) => ReadSubscriptions();
                _poller.Add(_socket);
            }
            _poller.RunAsync($"onex-pub {endpoint}", isBackgroundThread: true);
        }
        else
        {
            // Added on the poller's thread; a publish before that leaves the queue signalled, which the poller sees.
            _attached = true;
            _poller = sharedPoller;
            _poller.Add(_wakeup);
        }
    }

    /// <summary>The endpoint bound or connected to; for a bound <c>tcp://host:0</c>, the port actually chosen.</summary>
    public string Endpoint { get => Volatile.Read(ref _endpoint); private set => Volatile.Write(ref _endpoint, value); }

    private string _endpoint = "";

    /// <summary>
    /// Connects a connected (not bound, not attached) publisher to <paramref name="endpoint"/> instead (the bus moved).
    /// Queued events go to the new peer; per-topic sequence numbers carry on, so receivers count what was lost between.
    /// With <paramref name="curveServerKey"/> (the host came back with new CURVE keys) it reconnects encrypting to that
    /// key, to the same endpoint too.
    /// </summary>
    internal Task MoveToAsync(string endpoint, string? curveServerKey = null)
    {
        ZmqEndpoints.EnsureValid(endpoint, nameof(endpoint));
        if (_attached) throw new InvalidOperationException("A host's publisher is attached to its forwarder and cannot move.");
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return Task.Factory.StartNew(() =>
        {
            if (ZmqEndpoints.MoveConnection(_socket, Endpoint, endpoint, curveServerKey)) Endpoint = endpoint;
        }, CancellationToken.None, TaskCreationOptions.None, _poller);
    }

    /// <summary>
    /// Binds a PUB socket on <paramref name="endpoint"/>. Throws <see cref="LeaseException"/> with code
    /// PORT_UNAVAILABLE when the address is already in use, naming the endpoint, and <see cref="ArgumentException"/>
    /// when it is not a valid ZeroMQ endpoint.
    /// </summary>
    public static ZmqEventPublisher Bind(string endpoint, ZmqSocketOptions? options = null, ILogger? logger = null) =>
        Create(endpoint, bind: true, options ?? ZmqSocketOptions.Default, batch: false, logger);

    /// <summary>
    /// Binds a publisher for a closed set of <paramref name="topics"/> (a registry's broadcast endpoint), bounding what
    /// subscribers can make it hold: it is an XPUB that keeps a subscription only when the subscribed prefix is a prefix
    /// of one of <paramref name="topics"/> (the empty prefix included), so one peer holds at most one entry per such
    /// prefix however many subscribe messages it sends; every other subscription could never match and is dropped
    /// (counted in <see cref="RefusedSubscriptions"/>), as is anything else a peer sends. A message from a peer over
    /// <see cref="MaxSubscriptionMessageBytes"/> closes that peer's connection. Publishing works exactly as with
    /// <see cref="Bind"/>; events on other topics are sent to subscribers of the empty prefix only.
    /// </summary>
    public static ZmqEventPublisher BindForTopics(string endpoint, IEnumerable<string> topics, ZmqSocketOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(topics);
        return Create(endpoint, bind: true, options ?? ZmqSocketOptions.Default, batch: false, logger, new TopicPrefixes(topics));
    }

    /// <summary>Largest message a subscriber may send to a <see cref="BindForTopics"/> publisher (a subscribe message: 1 byte and the prefix).</summary>
    public const int MaxSubscriptionMessageBytes = 1024;

    /// <summary>Subscribe messages queued from one peer of a <see cref="BindForTopics"/> publisher before ZeroMQ stops reading its connection.</summary>
    public const int SubscriptionHighWatermark = 1_000;

    /// <summary>Subscribe and unsubscribe messages (and any other peer messages) a <see cref="BindForTopics"/> publisher dropped.</summary>
    public long RefusedSubscriptions => Interlocked.Read(ref _refusedSubscriptions);

    /// <summary>
    /// Connects a PUB socket to <paramref name="endpoint"/> (e.g. a forwarder's XSUB side). Throws
    /// <see cref="ArgumentException"/> when the endpoint is not a valid ZeroMQ endpoint.
    /// </summary>
    public static ZmqEventPublisher Connect(string endpoint, ZmqSocketOptions? options = null, ILogger? logger = null) =>
        Create(endpoint, bind: false, options ?? ZmqSocketOptions.Default, batch: false, logger);

    /// <summary>
    /// Like <see cref="Connect"/>, but sends in the bus's batched framing: events of one topic that are queued
    /// back to back leave as one message, <c>[topic][event][event]...</c> in one body frame (see
    /// <see cref="ZmqEventBus"/>). Only <see cref="ZmqEventSubscriber"/> reads that framing.
    /// </summary>
    internal static ZmqEventPublisher ConnectBatching(string endpoint, ZmqSocketOptions options, ILogger? logger) =>
        Create(endpoint, bind: false, options, batch: true, logger);

    /// <summary>
    /// A publisher whose queue <paramref name="poller"/>'s thread drains into <paramref name="socket"/>, a socket that
    /// thread owns (a forwarder's XPUB). Disposing it flushes the queue on that thread and detaches; the socket and
    /// the poller stay with their owner, who must not start or stop the poller while this is being disposed.
    /// </summary>
    internal static ZmqEventPublisher Attach(NetMQSocket socket, NetMQPoller poller, string endpoint, ZmqSocketOptions options, ILogger? logger) =>
        new(socket, poller, endpoint, new OnexEventCodec(options.CodecLimits), batch: true, logger ?? NullLogger.Instance);

    /// <summary>Events discarded because the queue was full in a drop mode.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>Bytes queued and not yet handed to the socket (encoded events and their topic frames).</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>The queue's limits and full mode.</summary>
    public ZmqPublishQueueOptions QueueLimits => _limits;

    /// <summary>
    /// Encodes <paramref name="evt"/> and queues it for sending; never blocks on the network. When the queue is full,
    /// waits for room (<see cref="System.Threading.Channels.BoundedChannelFullMode.Wait"/>) or drops the event and
    /// counts it (the drop modes). Throws like <see cref="Publish"/>.
    /// </summary>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var message = Encode(evt);
        if (TryReserve(message))
        {
            Enqueue(message);
            return ValueTask.CompletedTask;
        }
        if (_limits.FullMode == System.Threading.Channels.BoundedChannelFullMode.Wait)
            return WaitForRoomThenEnqueueAsync(message, cancellationToken);
        CountDropped();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Encodes <paramref name="evt"/> and queues it for sending, like <see cref="PublishAsync"/> but blocking the caller
    /// while a Wait-mode queue is full. Throws <see cref="ArgumentException"/> for an invalid topic,
    /// <see cref="MessageTooLargeException"/> past the codec limits and <see cref="ObjectDisposedException"/> after disposal.
    /// </summary>
    public void Publish(OnexEvent evt)
    {
        var message = Encode(evt);
        if (TryReserve(message))
        {
            Enqueue(message);
            return;
        }
        if (_limits.FullMode == System.Threading.Channels.BoundedChannelFullMode.Wait)
            WaitForRoomThenEnqueueAsync(message, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        else
            CountDropped();
    }

    /// <summary>Sets the queue's limits and where its drops are reported; called once, before the first publish.</summary>
    internal ZmqEventPublisher WithQueue(ZmqPublishQueueOptions limits, EventBusHealth? health)
    {
        limits.Validate();
        _limits = limits;
        _health = health;
        if (health is not null) BusQueueDepth.Track(this, health, BusQueueDepth.Publisher, () => Volatile.Read(ref _queuedCount));
        _fullDetail = $"the publish queue towards {Endpoint} is full ({limits.Capacity} events or {limits.MaxBytes} bytes, {limits.FullMode})";
        return this;
    }

    private OutgoingMessage Encode(OnexEvent evt)
    {
        ArgumentNullException.ThrowIfNull(evt);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Topic.EnsureValid(evt.Topic);
        return new OutgoingMessage(_topicFrames.Get(evt.Topic), _codec.Encode(evt));
    }

    // An empty queue takes any event, so one larger than the byte limit still goes out.
    private bool TryReserve(OutgoingMessage message)
    {
        var size = message.Topic.Length + message.Body.Length;
        var count = Interlocked.Increment(ref _queuedCount);
        var bytes = Interlocked.Add(ref _queuedBytes, size);
        if (count == 1 || (count <= _limits.Capacity && bytes <= _limits.MaxBytes)) return true;
        Interlocked.Decrement(ref _queuedCount);
        Interlocked.Add(ref _queuedBytes, -size);
        return false;
    }

    // Control messages (empty body) are never reserved, so they are never counted for release either.
    private static void CountForRelease(in OutgoingMessage message, ref int events, ref long bytes)
    {
        if (message.Body.Length == 0) return;
        events++;
        bytes += message.Topic.Length + message.Body.Length;
    }

    /// <summary>
    /// Gives back the room of <paramref name="events"/> sent events, once per message sent rather than once per event: the
    /// counters are written by every publishing thread, and a drain that wrote them for each event would pull their cache
    /// line across cores once per event whenever publisher and drain run in parallel.
    /// </summary>
    private void Release(int events, long bytes)
    {
        if (events == 0) return;
        Interlocked.Add(ref _queuedCount, -events);
        Interlocked.Add(ref _queuedBytes, -bytes);
        if (Volatile.Read(ref _room) is not null) Interlocked.Exchange(ref _room, null)?.TrySetResult();
    }

    private void CountDropped()
    {
        Interlocked.Increment(ref _dropped);
        _health?.CountDropped(DropCause.PublisherQueue, 1, null, _fullDetail);
    }

    private async ValueTask WaitForRoomThenEnqueueAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        while (!TryReserve(message))
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            var room = Volatile.Read(ref _room);
            if (room is null)
            {
                var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                room = Interlocked.CompareExchange(ref _room, fresh, null) ?? fresh;
            }
            // The drain may have made room before the signal above was in place: try once more before waiting.
            if (TryReserve(message)) break;
            await room.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        Enqueue(message);
    }

    /// <summary>
    /// Queues a control message <c>[topic][empty]</c> behind the events already queued. Control topics start with a
    /// character no event topic may contain, so subscribers tell them apart (see <see cref="ZmqControl"/>).
    /// </summary>
    internal void PublishControl(byte[] topic)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Enqueue(new OutgoingMessage(topic, []));
    }

    /// <summary>Sends what is queued, then closes the socket (lingering up to the configured time).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        BusQueueDepth.Untrack(this);
        Interlocked.Exchange(ref _room, null)?.TrySetResult();
        if (_attached)
        {
            // The socket belongs to the poller's thread: flush and detach there (NetMQPoller is a TaskScheduler). Its
            // owner stops the poller only after this (ZmqEventBus disposes its publisher before its forwarder); a
            // poller that is not running has no thread, so this one may flush (into a socket that may be gone).
            void FlushAndDetach()
            {
                Drain(int.MaxValue);
                _poller.Remove(_wakeup);
            }
            if (_poller.IsRunning)
            {
                await Task.Factory.StartNew(FlushAndDetach, CancellationToken.None, TaskCreationOptions.None, _poller).ConfigureAwait(false);
            }
            else
            {
                try
                {
                    FlushAndDetach();
                }
                catch (ObjectDisposedException)
                {
                    // The owner disposed its poller already: nothing is left to detach from.
                }
            }
            _wakeup.Dispose();
            return;
        }
        _poller.Stop();
        Drain(int.MaxValue); // the poller is stopped, so this thread now owns the socket: flush what is left
        _poller.Dispose();
        _wakeup.Dispose();
        _socket.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"ZmqEventPublisher({Endpoint})";

    private void Enqueue(OutgoingMessage message)
    {
        _outbox.Enqueue(message);
        if (Interlocked.Exchange(ref _wakeupPending, 1) != 0) return;
        try
        {
            _wakeup.Enqueue(true);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or TerminatingException)
        {
            // Lost the race with DisposeAsync: the event may or may not have been flushed.
            throw new ObjectDisposedException(ToString(), ex);
        }
    }

    private void OnWakeup()
    {
        // The flag stays set while this thread drains, so publishers do not signal; exactly one signal is ever queued.
        _wakeup.TryDequeue(out _, TimeSpan.Zero);
        var budget = DrainBatch;
        while (true)
        {
            budget -= Drain(budget);
            if (budget <= 0)
            {
                // Let the poller loop run (Stop, for one), then come straight back: the flag is still set.
                _wakeup.Enqueue(true);
                return;
            }
            if (!_outbox.IsEmpty || SpinUntilQueued()) continue;
            // Going idle: clear the flag, then look once more, since a publish just before the clear did not signal.
            Interlocked.Exchange(ref _wakeupPending, 0);
            if (_outbox.IsEmpty || Interlocked.Exchange(ref _wakeupPending, 1) != 0) return;
        }
    }

    // A burst keeps the queue busy: waiting a few microseconds for the next event is cheaper than a wake-up per event.
    private bool SpinUntilQueued()
    {
        var spinner = new SpinWait();
        for (var i = 0; i < IdleSpins; i++)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
            if (!_outbox.IsEmpty) return true;
        }
        return false;
    }

    /// <summary>Sends up to <paramref name="limit"/> queued messages; returns how many.</summary>
    private int Drain(int limit)
    {
        var msg = new Msg();
        msg.InitEmpty();
        var sent = 0;
        try
        {
            while (sent < limit && _outbox.TryDequeue(out var item))
            {
                sent++;
                var releaseEvents = 0;
                var releaseBytes = 0L;
                CountForRelease(item, ref releaseEvents, ref releaseBytes);
                var body = item.Body;
                var events = body.Length > 0 ? 1 : 0;
                if (body.Length > 0 && body.Length < _batchBytes && _outbox.TryPeek(out var next) && TopicFrameCache.SameTopic(next.Topic, item.Topic))
                    body = Coalesce(body, item.Topic, limit, ref sent, out events, ref releaseEvents, ref releaseBytes);
                Release(releaseEvents, releaseBytes);
                var numbered = _batchBytes > 0 && events > 0;
                // InitGC hands the arrays to ZeroMQ without copying; nothing writes to them afterwards.
                msg.InitGC(item.Topic, item.Topic.Length);
                _socket.TrySend(ref msg, TimeSpan.Zero, more: true);
                msg.InitGC(body, body.Length);
                _socket.TrySend(ref msg, TimeSpan.Zero, more: numbered);
                if (numbered)
                {
                    var sequence = NextSequence(item.Topic, events);
                    msg.InitGC(ZmqControl.SequenceFrame(_publisherId, sequence, events), ZmqControl.SequenceFrameBytes);
                    _socket.TrySend(ref msg, TimeSpan.Zero, more: false);
                }
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.SendFailed(Endpoint, ex);
        }
        finally
        {
            msg.Close();
        }
        return sent;
    }

    /// <summary>
    /// Appends the events queued right behind <paramref name="first"/> on the same topic (compared by
    /// content, so a topic whose cached frame was evicted still batches) to one body, up to the batch size. Only this thread dequeues,
    /// so what it peeks is what it then takes.
    /// </summary>
    private byte[] Coalesce(byte[] first, byte[] topic, int limit, ref int sent, out int events, ref int releaseEvents, ref long releaseBytes)
    {
        _batch.Clear();
        _batch.Add(first);
        var total = first.Length;
        while (sent < limit && _outbox.TryPeek(out var next) && TopicFrameCache.SameTopic(next.Topic, topic)
               && total + next.Body.Length <= _batchBytes)
        {
            _outbox.TryDequeue(out _);
            CountForRelease(next, ref releaseEvents, ref releaseBytes);
            _batch.Add(next.Body);
            total += next.Body.Length;
            sent++;
        }
        events = _batch.Count;
        if (_batch.Count == 1)
        {
            _batch.Clear();
            return first;
        }
        var body = new byte[total];
        var offset = 0;
        foreach (var part in _batch)
        {
            part.CopyTo(body, offset);
            offset += part.Length;
        }
        _batch.Clear();
        return body;
    }

    /// <summary>
    /// The sequence number of the first of <paramref name="events"/> events of <paramref name="topic"/> about to be
    /// sent. Bounded: past <see cref="MaxNumberedTopics"/> topics the numbering starts over, which receivers take as a
    /// fresh start (no loss counted) rather than a gap.
    /// </summary>
    private long NextSequence(byte[] topic, int events)
    {
        if (!_topicSequences.TryGetValue(topic, out var next))
        {
            if (_topicSequences.Count >= MaxNumberedTopics) _topicSequences.Clear();
            next = 1;
        }
        _topicSequences[topic] = next + events;
        return next;
    }

    private static ZmqEventPublisher Create(string endpoint, bool bind, ZmqSocketOptions options, bool batch, ILogger? logger,
        TopicPrefixes? keptSubscriptions = null)
    {
        ZmqEndpoints.EnsureValid(endpoint, nameof(endpoint));
        NetMQSocket socket = keptSubscriptions is null ? new PublisherSocket() : new XPublisherSocket();
        try
        {
            options.ApplyTo(socket, bind);
            if (socket is XPublisherSocket xpub)
            {
                // Subscriptions reach the trie only through ReadSubscriptions; peers' messages are small and few in flight.
                xpub.Options.ManualPublisher = true;
                socket.Options.MaxMsgSize = MaxSubscriptionMessageBytes;
                socket.Options.ReceiveHighWatermark = SubscriptionHighWatermark;
                socket.Options.ReceiveLowWatermark = SubscriptionHighWatermark / 2;
            }
            string actual = endpoint;
            if (bind)
            {
                ZmqEndpoints.Bind(socket, endpoint);
                actual = ZmqEndpoints.Resolved(socket, endpoint);
            }
            else
            {
                socket.Connect(endpoint);
            }
            return new ZmqEventPublisher(socket, null, actual, new OnexEventCodec(options.CodecLimits), batch, logger ?? NullLogger.Instance, keptSubscriptions);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Applies the subscribe and unsubscribe messages the XPUB queued (manual mode: nothing reaches its trie otherwise) for
    /// prefixes that can match a topic, and drops the rest and any other message a peer sent. Runs on the poller thread,
    /// which owns the socket; each message is applied to the peer that sent it (the XPUB's last received pipe).
    /// </summary>
    private void ReadSubscriptions()
    {
        var xpub = (XPublisherSocket)_socket;
        var msg = new Msg();
        msg.InitEmpty();
        try
        {
            for (var read = 0; read < DrainBatch && _socket.TryReceive(ref msg, TimeSpan.Zero); read++)
            {
                var first = !_peerMessageMore;
                _peerMessageMore = msg.HasMore;
                var size = msg.Size;
                if (first && !msg.HasMore && size > 0 && msg[0] is 0 or 1 && _keptSubscriptions!.Contains(msg.Slice(1)))
                {
                    var prefix = msg.Slice(1).ToArray();
                    if (msg[0] == 1) xpub.Subscribe(prefix);
                    else xpub.Unsubscribe(prefix);
                    continue;
                }
                Interlocked.Increment(ref _refusedSubscriptions);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.SendFailed(Endpoint, ex);
        }
        finally
        {
            msg.Close();
        }
    }

    private readonly record struct OutgoingMessage(byte[] Topic, byte[] Body);

}

/// <summary>Compares topic frames by content (an evicted cached frame and a fresh one are the same topic).</summary>
internal sealed class TopicFrameComparer : IEqualityComparer<byte[]>
{
    public static readonly TopicFrameComparer Instance = new();

    public bool Equals(byte[]? x, byte[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));

    public int GetHashCode(byte[] obj)
    {
        var hash = new HashCode();
        hash.AddBytes(obj);
        return hash.ToHashCode();
    }
}
