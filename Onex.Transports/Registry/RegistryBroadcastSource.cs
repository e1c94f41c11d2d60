using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Events;
using Onex.Protocol;
using Onex.Transports.Zmq;

namespace Onex.Transports.Registry;

/// <summary>
/// One broadcast from the registry: a change or a heartbeat (exactly one is set), or from a watch stream (PROTOCOL.md
/// 16.7) a notice that the stream lost its place (<paramref name="Lost"/>, neither set). Stream messages carry the
/// position the stream covered before them (<paramref name="Previous"/>); PUB broadcasts none.
/// </summary>
internal readonly record struct RegistryBroadcast(RegistryChange? Change, RegistryHeartbeat? Heartbeat, long? Previous = null, string? Lost = null)
{
    public static RegistryBroadcast Of(RegistryChange change) => new(change, null);
    public static RegistryBroadcast Of(RegistryHeartbeat heartbeat) => new(null, heartbeat);
}

/// <summary>Where watchers read registry broadcasts from; a seam so the watch state machine can be tested alone.</summary>
internal interface IRegistryBroadcastSource : IDisposable
{
    /// <summary>Broadcasts in arrival order; completes when the source is disposed.</summary>
    ChannelReader<RegistryBroadcast> Reader { get; }

    /// <summary>Broadcasts dropped because the reader fell behind; a dropped change shows up as a sequence gap.</summary>
    long Dropped { get; }
}

/// <summary>
/// A SUB socket on the registry's PUB endpoint, decoding <c>[topic][OnexEvent]</c> frames into
/// <see cref="RegistryBroadcast"/>s on its own poller thread.
/// </summary>
internal sealed class ZmqRegistryBroadcastSource : IRegistryBroadcastSource
{
    private readonly SubscriberSocket _socket;
    private readonly NetMQPoller _poller;
    private readonly Channel<RegistryBroadcast> _channel;
    private readonly OnexEventCodec _codec;
    private readonly Func<RegistryChange, bool>? _changeFilter;
    private readonly ILogger _logger;
    private long _dropped;
    private int _disposed;

    /// <param name="endpoint">The registry's PUB endpoint.</param>
    /// <param name="topicPrefix">ZeroMQ subscription prefix, e.g. <c>registry.</c> or <c>registry.heartbeat</c>.</param>
    /// <param name="socketOptions">Socket settings.</param>
    /// <param name="capacity">Broadcasts buffered for a slow reader before new ones are dropped.</param>
    /// <param name="changeFilter">Test seam: a change for which this returns false is dropped as if lost on the wire.</param>
    /// <param name="logger">Where undecodable frames are reported.</param>
    public ZmqRegistryBroadcastSource(
        string endpoint, string topicPrefix, ZmqSocketOptions socketOptions, int capacity,
        Func<RegistryChange, bool>? changeFilter, ILogger logger)
    {
        Endpoint = endpoint;
        _logger = logger;
        _changeFilter = changeFilter;
        _codec = new OnexEventCodec(socketOptions.CodecLimits);
        _channel = Channel.CreateBounded<RegistryBroadcast>(new BoundedChannelOptions(capacity)
        {
            SingleWriter = true,
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: a full channel refuses, and we count the drop
        });
        _socket = new SubscriberSocket();
        try
        {
            socketOptions.ApplyTo(_socket);
            _socket.Connect(endpoint);
            _socket.Subscribe(topicPrefix);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
        _socket.ReceiveReady += (_, _) => Receive();
        _poller = new NetMQPoller { _socket };
        new Thread(RunPoller) { IsBackground = true, Name = $"onex-registry-sub {endpoint}" }.Start();
    }

    private void RunPoller()
    {
        try
        {
            _poller.Run();
        }
        catch (TerminatingException)
        {
            // NetMQConfig.Cleanup ran while this subscription was still open (a process exiting after giving up on a
            // dispose, as `onex ports lease` does after a lost lease): the broadcasts are over. Unhandled on NetMQ's own
            // poller thread, it crashed the exiting process with a stack trace (same as RegistryRequestChannel).
        }
    }

    public string Endpoint { get; }

    public ChannelReader<RegistryBroadcast> Reader => _channel.Reader;

    public long Dropped => Interlocked.Read(ref _dropped);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _poller.Stop();
        _poller.Dispose();
        _socket.Dispose();
        _channel.Writer.TryComplete();
    }

    private void Receive()
    {
        var frames = new List<byte[]>(2);
        while (_socket.TryReceiveMultipartBytes(TimeSpan.Zero, ref frames, 2))
        {
            if (frames.Count != 2)
            {
                RegistryClientLog.UndecodableBroadcast(_logger, Endpoint, $"expected [topic][event], got {frames.Count} frames");
                continue;
            }
            var topic = System.Text.Encoding.UTF8.GetString(frames[0]);
            RegistryBroadcast broadcast;
            try
            {
                var evt = _codec.Decode(frames[1]);
                if (topic == ChangeTypes.HeartbeatTopic)
                {
                    broadcast = RegistryBroadcast.Of(RegistryCodec.DeserializeBody<RegistryHeartbeat>(evt.Payload));
                }
                else
                {
                    var change = RegistryCodec.DeserializeBody<RegistryChange>(evt.Payload);
                    if (_changeFilter is { } filter && !filter(change)) continue;
                    broadcast = RegistryBroadcast.Of(change);
                }
            }
            catch (OnexException ex)
            {
                RegistryClientLog.UndecodableBroadcast(_logger, Endpoint, $"{topic}: {ex.Code} {ex.Message}");
                continue;
            }
            if (!_channel.Writer.TryWrite(broadcast))
                Interlocked.Increment(ref _dropped);
        }
    }
}
