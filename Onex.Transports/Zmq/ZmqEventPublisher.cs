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
public sealed class ZmqEventPublisher : IAsyncDisposable
{
    private readonly PublisherSocket _socket;
    private readonly NetMQQueue<(string Topic, byte[] Event)> _outbox = new();
    private readonly NetMQPoller _poller;
    private readonly OnexEventCodec _codec;
    private int _disposed;

    private ZmqEventPublisher(PublisherSocket socket, string endpoint, OnexEventCodec codec)
    {
        _socket = socket;
        _codec = codec;
        Endpoint = endpoint;
        _outbox.ReceiveReady += (_, _) => Drain();
        _poller = new NetMQPoller { _outbox };
        _poller.RunAsync($"onex-pub {endpoint}", isBackgroundThread: true);
    }

    /// <summary>The endpoint bound or connected to; for a bound <c>tcp://host:0</c>, the port actually chosen.</summary>
    public string Endpoint { get; }

    /// <summary>
    /// Binds a PUB socket on <paramref name="endpoint"/>. Throws <see cref="LeaseException"/> with code
    /// PORT_UNAVAILABLE when the address is already in use, naming the endpoint.
    /// </summary>
    public static ZmqEventPublisher Bind(string endpoint, ZmqSocketOptions? options = null) =>
        Create(endpoint, bind: true, options ?? ZmqSocketOptions.Default);

    /// <summary>Connects a PUB socket to <paramref name="endpoint"/> (e.g. a forwarder's XSUB side).</summary>
    public static ZmqEventPublisher Connect(string endpoint, ZmqSocketOptions? options = null) =>
        Create(endpoint, bind: false, options ?? ZmqSocketOptions.Default);

    /// <summary>Encodes <paramref name="evt"/> and queues it for sending. Never blocks on the network.</summary>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Publish(evt);
        return ValueTask.CompletedTask;
    }

    /// <summary>Encodes <paramref name="evt"/> and queues it for sending.</summary>
    public void Publish(OnexEvent evt)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Topic.EnsureValid(evt.Topic);
        _outbox.Enqueue((evt.Topic, _codec.Encode(evt)));
    }

    /// <summary>Sends what is queued, then closes the socket (lingering up to the configured time).</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return ValueTask.CompletedTask;
        _poller.Stop();
        Drain(); // the poller is stopped, so this thread now owns the socket: flush what is left
        _poller.Dispose();
        _outbox.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Drain()
    {
        while (_outbox.TryDequeue(out var item, TimeSpan.Zero))
        {
            // PUB never blocks: past the high-water mark ZeroMQ drops for that subscriber.
            _socket.SendMoreFrame(item.Topic).SendFrame(item.Event);
        }
    }

    private static ZmqEventPublisher Create(string endpoint, bool bind, ZmqSocketOptions options)
    {
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
            return new ZmqEventPublisher(socket, actual, new OnexEventCodec(options.CodecLimits));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
