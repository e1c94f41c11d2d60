using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NetMQ;
using NetMQ.Sockets;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Zmq;

/// <summary>
/// Publishes <see cref="OnexEvent"/>s on a ZeroMQ PUB socket as two frames, <c>[topic][event]</c>, where the
/// event frame is <see cref="OnexEventCodec"/> MessagePack. Subscribers prefix-filter on the topic frame.
/// Thread-safe: events are encoded on the caller's thread and handed to the socket's own poller thread, so
/// events from one caller leave in the order they were published.
/// </summary>
/// <remarks>
/// The hand-over is a lock-free queue drained in batches: only the publish that finds the poller idle wakes it,
/// so a burst costs one wake-up, not one per event. PUB never blocks: past the send high-water mark of a
/// subscriber, ZeroMQ drops for that subscriber.
/// </remarks>
public sealed class ZmqEventPublisher : IAsyncDisposable
{
    // Events sent per wake-up before the poller looks at its other work again.
    private const int DrainBatch = 4096;
    // SpinWait iterations an idle drain waits for the next event before going back to sleep.
    private const int IdleSpins = 12;

    private readonly PublisherSocket _socket;
    private readonly ConcurrentQueue<OutgoingMessage> _outbox = new();
    private readonly NetMQQueue<bool> _wakeup = new();
    private readonly NetMQPoller _poller;
    private readonly OnexEventCodec _codec;
    private readonly TopicFrameCache _topicFrames = new();
    private readonly ILogger _logger;
    private int _wakeupPending;
    private int _disposed;

    private ZmqEventPublisher(PublisherSocket socket, string endpoint, OnexEventCodec codec, ILogger logger)
    {
        _socket = socket;
        _codec = codec;
        _logger = logger;
        Endpoint = endpoint;
        _wakeup.ReceiveReady += (_, _) => OnWakeup();
        _poller = new NetMQPoller { _wakeup };
        _poller.RunAsync($"onex-pub {endpoint}", isBackgroundThread: true);
    }

    /// <summary>The endpoint bound or connected to; for a bound <c>tcp://host:0</c>, the port actually chosen.</summary>
    public string Endpoint { get; }

    /// <summary>
    /// Binds a PUB socket on <paramref name="endpoint"/>. Throws <see cref="LeaseException"/> with code
    /// PORT_UNAVAILABLE when the address is already in use, naming the endpoint, and <see cref="ArgumentException"/>
    /// when it is not a valid ZeroMQ endpoint.
    /// </summary>
    public static ZmqEventPublisher Bind(string endpoint, ZmqSocketOptions? options = null, ILogger? logger = null) =>
        Create(endpoint, bind: true, options ?? ZmqSocketOptions.Default, logger);

    /// <summary>
    /// Connects a PUB socket to <paramref name="endpoint"/> (e.g. a forwarder's XSUB side). Throws
    /// <see cref="ArgumentException"/> when the endpoint is not a valid ZeroMQ endpoint.
    /// </summary>
    public static ZmqEventPublisher Connect(string endpoint, ZmqSocketOptions? options = null, ILogger? logger = null) =>
        Create(endpoint, bind: false, options ?? ZmqSocketOptions.Default, logger);

    /// <summary>Encodes <paramref name="evt"/> and queues it for sending. Never blocks on the network.</summary>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Publish(evt);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Encodes <paramref name="evt"/> and queues it for sending. Throws <see cref="ArgumentException"/> for an
    /// invalid topic, <see cref="MessageTooLargeException"/> past the codec limits and
    /// <see cref="ObjectDisposedException"/> after disposal.
    /// </summary>
    public void Publish(OnexEvent evt)
    {
        ArgumentNullException.ThrowIfNull(evt);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Topic.EnsureValid(evt.Topic);
        Enqueue(new OutgoingMessage(_topicFrames.Get(evt.Topic), _codec.Encode(evt)));
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
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return ValueTask.CompletedTask;
        _poller.Stop();
        Drain(int.MaxValue); // the poller is stopped, so this thread now owns the socket: flush what is left
        _poller.Dispose();
        _wakeup.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
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
            for (; sent < limit && _outbox.TryDequeue(out var item); sent++)
            {
                // InitGC hands the arrays to ZeroMQ without copying; nothing writes to them afterwards.
                msg.InitGC(item.Topic, item.Topic.Length);
                _socket.TrySend(ref msg, TimeSpan.Zero, more: true);
                msg.InitGC(item.Body, item.Body.Length);
                _socket.TrySend(ref msg, TimeSpan.Zero, more: false);
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

    private static ZmqEventPublisher Create(string endpoint, bool bind, ZmqSocketOptions options, ILogger? logger)
    {
        ZmqEndpoints.EnsureValid(endpoint, nameof(endpoint));
        var socket = new PublisherSocket();
        try
        {
            options.ApplyTo(socket);
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
            return new ZmqEventPublisher(socket, actual, new OnexEventCodec(options.CodecLimits), logger ?? NullLogger.Instance);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private readonly record struct OutgoingMessage(byte[] Topic, byte[] Body);
}
