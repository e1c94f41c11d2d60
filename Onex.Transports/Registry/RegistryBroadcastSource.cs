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
/// <para>
/// The backlog a slow reader leaves is bounded in count and in bytes (the frames' size on the wire). Past either
/// bound the backlog is of no more use: the reader must resync by snapshot anyway, so it is dropped at once (memory
/// back) and replaced by one <see cref="RegistryBroadcast.Lost"/> notice, the way a token watch stream reports that it
/// fell behind.
/// </para>
/// </summary>
internal sealed class ZmqRegistryBroadcastSource : IRegistryBroadcastSource
{
    private readonly SubscriberSocket _socket;
    private readonly NetMQPoller _poller;
    private readonly Channel<(RegistryBroadcast Broadcast, int Bytes)> _channel;
    private readonly BacklogReader _reader;
    private readonly long _maxBytes;
    private readonly int _capacity;
    private long _bufferedBytes;
    private readonly OnexEventCodec _codec;
    private readonly Func<RegistryChange, bool>? _changeFilter;
    private readonly ILogger _logger;
    private long _dropped;
    private int _disposed;

    /// <param name="endpoint">The registry's PUB endpoint.</param>
    /// <param name="topicPrefix">ZeroMQ subscription prefix, e.g. <c>registry.</c> or <c>registry.heartbeat</c>.</param>
    /// <param name="socketOptions">Socket settings.</param>
    /// <param name="capacity">Broadcasts buffered for a slow reader before the backlog is dropped for a resync.</param>
    /// <param name="changeFilter">Test seam: a change for which this returns false is dropped as if lost on the wire.</param>
    /// <param name="logger">Where undecodable frames are reported.</param>
    /// <param name="maxBytes">Bytes of broadcasts buffered for a slow reader before the backlog is dropped for a resync.</param>
    public ZmqRegistryBroadcastSource(
        string endpoint, string topicPrefix, ZmqSocketOptions socketOptions, int capacity,
        Func<RegistryChange, bool>? changeFilter, ILogger logger, long maxBytes = RegistryClientOptions.DefaultWatchBufferBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        Endpoint = endpoint;
        _logger = logger;
        _changeFilter = changeFilter;
        _maxBytes = maxBytes;
        _capacity = capacity;
        _codec = new OnexEventCodec(socketOptions.CodecLimits);
        _reader = new BacklogReader(this);
        _channel = Channel.CreateBounded<(RegistryBroadcast, int)>(new BoundedChannelOptions(capacity)
        {
            SingleWriter = true,
            SingleReader = false, // the poller thread also drains a backlog past the byte bound
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

    public ChannelReader<RegistryBroadcast> Reader => _reader;

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Bytes of broadcasts buffered and not yet read; never more than the byte bound.</summary>
    public long BufferedBytes => Interlocked.Read(ref _bufferedBytes);

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
            var bytes = frames[0].Length + frames[1].Length;
            if (Interlocked.Read(ref _bufferedBytes) + bytes > _maxBytes)
            {
                DropBacklog($"more than {_maxBytes} bytes");
                continue;
            }
            Interlocked.Add(ref _bufferedBytes, bytes);
            if (!_channel.Writer.TryWrite((broadcast, bytes)))
            {
                // Full by count: as useless as a backlog past the byte bound, and dropping only the new broadcasts
                // would leave the reader to find out from a sequence gap (or never, for heartbeats). Same treatment.
                Interlocked.Add(ref _bufferedBytes, -bytes);
                DropBacklog($"more than {_capacity} broadcasts");
            }
        }
    }

    /// <summary>
    /// The reader is more than the byte or count bound behind: drops what it has not read and the broadcast that did not fit,
    /// and queues one notice in their place, on which the watcher resyncs by snapshot (RegistryWatcher).
    /// </summary>
    private void DropBacklog(string behind)
    {
        long dropped = 1;
        while (_channel.Reader.TryRead(out var entry))
        {
            Interlocked.Add(ref _bufferedBytes, -entry.Bytes);
            dropped++;
        }
        Interlocked.Add(ref _dropped, dropped);
        RegistryClientLog.WatchBacklogDropped(_logger, Endpoint, dropped, behind);
        _channel.Writer.TryWrite((new RegistryBroadcast(null, null,
            Lost: $"the watch fell {behind} of broadcasts behind ({dropped} dropped); changes since come by snapshot"), 0));
    }

    /// <summary>The reader side: hands out broadcasts and gives their bytes back to the bound.</summary>
    private sealed class BacklogReader(ZmqRegistryBroadcastSource source) : ChannelReader<RegistryBroadcast>
    {
        public override Task Completion => source._channel.Reader.Completion;

        public override bool CanCount => true;

        public override int Count => source._channel.Reader.Count;

        public override bool TryRead(out RegistryBroadcast item)
        {
            if (source._channel.Reader.TryRead(out var entry))
            {
                Interlocked.Add(ref source._bufferedBytes, -entry.Bytes);
                item = entry.Broadcast;
                return true;
            }
            item = default;
            return false;
        }

        public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) =>
            source._channel.Reader.WaitToReadAsync(cancellationToken);
    }
}
