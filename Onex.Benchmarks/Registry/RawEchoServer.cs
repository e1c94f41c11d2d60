using NetMQ;
using NetMQ.Sockets;

namespace Onex.Benchmarks.Registry;

/// <summary>
/// The baseline: a raw NetMQ ROUTER on its own poller thread that sends every frame straight back to its sender,
/// set up like the registry's ROUTER (same high-water marks, same batch-drain loop). With a PUB socket it also
/// publishes a fixed message before each reply, as the registry broadcasts a change before it answers.
/// The difference between it and the registry is the registry's own work: decode, state, encode, broadcast.
/// </summary>
internal sealed class RawEchoServer : IDisposable
{
    private const int BatchSize = 256;

    private readonly RouterSocket _router = new();
    private readonly PublisherSocket? _publisher;
    private readonly byte[] _topic;
    private readonly byte[] _broadcast;
    private readonly NetMQPoller _poller;

    /// <summary>An echo server; with <paramref name="broadcast"/>, it publishes it on <paramref name="topic"/> before each reply.</summary>
    public RawEchoServer(byte[]? topic = null, byte[]? broadcast = null)
    {
        _router.Options.ReceiveHighWatermark = 100_000;
        _router.Options.SendHighWatermark = 100_000;
        _router.Options.Linger = TimeSpan.Zero;
        _router.Bind("tcp://127.0.0.1:0");
        Endpoint = _router.Options.LastEndpoint!;
        _topic = topic ?? [];
        _broadcast = broadcast ?? [];
        if (broadcast is not null)
        {
            _publisher = new PublisherSocket();
            _publisher.Options.Linger = TimeSpan.Zero;
            _publisher.Bind("tcp://127.0.0.1:0");
            PubEndpoint = _publisher.Options.LastEndpoint!;
        }
        _router.ReceiveReady += (_, _) => EchoBatch();
        _poller = new NetMQPoller { _router };
        _poller.RunAsync("bench-echo", isBackgroundThread: true);
    }

    public string Endpoint { get; }

    public string? PubEndpoint { get; }

    private void EchoBatch()
    {
        var message = new NetMQMessage();
        for (var i = 0; i < BatchSize; i++)
        {
            if (!_router.TryReceiveMultipartMessage(TimeSpan.Zero, ref message)) return;
            if (_publisher is not null)
            {
                _publisher.SendMoreFrame(_topic);
                _publisher.SendFrame(_broadcast);
            }
            _router.TrySendMultipartMessage(message);
            message.Clear();
        }
    }

    public void Dispose()
    {
        _poller.Stop();
        _poller.Dispose();
        _router.Dispose();
        _publisher?.Dispose();
    }
}
