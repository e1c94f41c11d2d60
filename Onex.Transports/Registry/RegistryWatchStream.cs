using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Zmq;

namespace Onex.Transports.Registry;

/// <summary>
/// A watch over the registry's request endpoint (PROTOCOL.md 16.7), for clients with a token: with access control on,
/// the PUB endpoint carries heartbeats only, and the registry streams each tenant its own changes to its own DEALER.
/// Its own DEALER and poller thread: sends <c>Watch</c>, grants credit as the reader makes room (never more than the
/// channel can take, so the channel never overflows), keeps the watch alive, and turns <c>WatchEvent</c>s into
/// <see cref="RegistryBroadcast"/>s carrying their <c>previous</c> position. When the stream ends (fell behind,
/// expired, the registry restarted) it watches again and tells the reader to resync by snapshot.
/// </summary>
internal sealed class RegistryWatchStream : IRegistryBroadcastSource
{
    private const int Capacity = 4096;
    private const int Window = 1024;
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxKeepAlive = TimeSpan.FromSeconds(1);

    private readonly DealerSocket _socket;
    private readonly NetMQPoller _poller;
    private readonly NetMQTimer _timer = new(Tick);
    private readonly Channel<RegistryBroadcast> _channel;
    private readonly string? _token;
    private readonly string? _tenant;
    private readonly string _clientId;
    private readonly string _prefix;
    private readonly Func<RegistryChange, bool>? _changeFilter;
    private readonly ILogger _logger;
    private List<byte[]> _frames = new(2);
    private string _watchId = "";
    private bool _started;
    private bool _everStarted;
    private string? _lost;
    private long _cursor;
    private long _outstanding;
    private long _counter;
    private long _lastSentAt;
    private TimeSpan _keepAlive = MaxKeepAlive;
    private int _disposed;

    /// <param name="endpoint">The registry's ROUTER endpoint.</param>
    /// <param name="socketOptions">Socket settings (CURVE included).</param>
    /// <param name="token">The access token sent with every request.</param>
    /// <param name="clientId">The client's id on the wire.</param>
    /// <param name="prefix">The topic prefix the registry filters on.</param>
    /// <param name="changeFilter">Test seam: a change for which this returns false is dropped as if lost on the wire.</param>
    /// <param name="logger">Where stream trouble is reported.</param>
    /// <param name="tenant">The tenant the watch acts in (the envelope key <c>tenant</c>); null: the token's.</param>
    public RegistryWatchStream(
        string endpoint, ZmqSocketOptions socketOptions, string? token, string clientId, string prefix,
        Func<RegistryChange, bool>? changeFilter, ILogger logger, string? tenant = null)
    {
        Endpoint = endpoint;
        _token = token;
        _tenant = tenant;
        _clientId = clientId;
        _prefix = prefix.StartsWith(ChangeTypes.TopicPrefix, StringComparison.Ordinal) ? prefix : ChangeTypes.TopicPrefix;
        _changeFilter = changeFilter;
        _logger = logger;
        _channel = Channel.CreateBounded<RegistryBroadcast>(new BoundedChannelOptions(Capacity)
        {
            SingleWriter = true,
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: a full channel refuses (credit keeps that from happening)
        });
        _socket = new DealerSocket();
        try
        {
            socketOptions.ApplyTo(_socket);
            _socket.Options.MaxMsgSize = RegistryCodec.MaxReplyFrameBytes + 1024; // replies may exceed the 1 MiB request limit (PROTOCOL.md 2.3)
            _socket.Connect(endpoint);
            Open(lost: null); // before the poller thread owns the socket
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
        _socket.ReceiveReady += (_, _) => Receive();
        _timer.Elapsed += (_, _) => OnTick();
        _poller = new NetMQPoller { _socket, _timer };
        new Thread(RunPoller) { IsBackground = true, Name = $"onex-registry-watch {endpoint}" }.Start();
    }

    public string Endpoint { get; }

    public ChannelReader<RegistryBroadcast> Reader => _channel.Reader;

    /// <summary>Always 0: nothing is dropped; a stream that loses its place is reopened and the reader told to resync.</summary>
    public long Dropped => 0;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _poller.Stop();
        _poller.Dispose();
        _socket.Dispose();
        _timer.Enable = false;
        _channel.Writer.TryComplete();
    }

    private void RunPoller()
    {
        try
        {
            _poller.Run();
        }
        catch (TerminatingException)
        {
            // NetMQConfig.Cleanup ran while the watch was open (a process exiting): the stream is over.
        }
    }

    /// <summary>Sends a new Watch from now; <paramref name="lost"/> (when set) is told to the reader once it is open.</summary>
    private void Open(string? lost)
    {
        if (_watchId.Length > 0) Send(new WatchCancel { WatchId = _watchId }); // best effort: the old one may be gone
        _watchId = NextId();
        _started = false;
        _lost = lost;
        _outstanding = Window;
        Send(new Watch { Prefix = _prefix, Credit = Window }, _watchId);
    }

    private string NextId() => "w" + (++_counter).ToString("x");

    // Credit requests name their watch, so a refusal of one sent for a watch already replaced is recognised as stale.
    private string CreditId() => _watchId + "." + (++_counter).ToString("x");

    private void Send<T>(T body, string? requestId = null)
    {
        if (!_socket.TrySendFrame(TimeSpan.Zero, RegistryCodec.Encode(requestId ?? NextId(), _clientId, body, token: _token, tenant: _tenant)))
            RegistryClientLog.SendQueueFull(_logger, Endpoint);
        _lastSentAt = TimeProvider.System.GetTimestamp();
    }

    private void OnTick()
    {
        if (!_started) return;
        if (!Grant() && TimeProvider.System.GetElapsedTime(_lastSentAt) >= _keepAlive)
            Send(new WatchCredit { WatchId = _watchId, Credit = 0 }, CreditId()); // keeps the watch from expiring
    }

    /// <summary>Grants what the channel has room for, once that is at least half a window; true when it sent.</summary>
    private bool Grant()
    {
        var room = Capacity - _channel.Reader.Count - _outstanding;
        var grant = Math.Min(Window - _outstanding, room);
        if (grant < Window / 2) return false;
        _outstanding += grant;
        Send(new WatchCredit { WatchId = _watchId, Credit = (int)grant }, CreditId());
        return true;
    }

    private void Receive()
    {
        while (_socket.TryReceiveMultipartBytes(TimeSpan.Zero, ref _frames, 2))
        {
            RegistryEnvelope envelope;
            try
            {
                envelope = RegistryCodec.Decode(_frames[^1], RegistryCodec.MaxReplyFrameBytes);
            }
            catch (OnexException ex)
            {
                RegistryClientLog.UndecodableReply(_logger, Endpoint, ex.Code, ex.Message);
                continue;
            }
            if (envelope.MessageType == nameof(Error))
            {
                OnError(envelope);
                continue;
            }
            if (envelope.MessageType != nameof(WatchEvent) || envelope.RequestId != _watchId) continue; // Acks; an old stream's stragglers
            WatchEvent evt;
            try
            {
                evt = envelope.BodyAs<WatchEvent>();
            }
            catch (OnexException ex)
            {
                RegistryClientLog.UndecodableReply(_logger, Endpoint, ex.Code, ex.Message);
                continue;
            }
            if (!OnEvent(evt)) break;
        }
        if (_started) Grant();
    }

    private void OnError(RegistryEnvelope envelope)
    {
        var error = envelope.BodyAs<Error>();
        if (envelope.RequestId == _watchId && !_everStarted)
        {
            // The first Watch refused (no valid token, too many watches): the watcher cannot start; say why.
            _channel.Writer.TryComplete(OnexException.FromError(error.Code, error.Message, error.Details, origin: $"registry at {Endpoint}"));
            return;
        }
        if (envelope.RequestId == _watchId || (error.Code == ErrorCodes.NotFound && envelope.RequestId.StartsWith(_watchId + ".", StringComparison.Ordinal)))
        {
            // A reopened Watch refused, or credit for a watch the registry no longer has (it restarted, or expired the watch).
            RegistryClientLog.WatchStreamReopened(_logger, Endpoint, $"{error.Code}: {error.Message}");
            Open($"the registry ended the watch ({error.Code}: {error.Message})");
        }
    }

    /// <summary>Handles one stream message; false when the stream was reopened (the rest of this read is stale).</summary>
    private bool OnEvent(WatchEvent evt)
    {
        switch (evt.Kind)
        {
            case WatchEventKinds.Started:
                _started = true;
                _cursor = evt.Sequence;
                if (evt.IdleTimeoutMs > 0)
                    _keepAlive = TimeSpan.FromMilliseconds(Math.Min(evt.IdleTimeoutMs / 3, (long)MaxKeepAlive.TotalMilliseconds));
                if (_lost is { } lost)
                {
                    _lost = null;
                    return Write(new RegistryBroadcast(null, null, evt.Sequence, Lost: lost));
                }
                _everStarted = true;
                // The first position proves the stream is live, as a first heartbeat proves a subscription.
                return Write(new RegistryBroadcast(null, new RegistryHeartbeat { Epoch = evt.Epoch, Sequence = evt.Sequence }, evt.Sequence));
            case WatchEventKinds.Change or WatchEventKinds.Heartbeat:
                _outstanding--;
                if (evt.Previous != _cursor || (evt.Change is null && evt.Heartbeat is null))
                    return Reopen($"stream message at {evt.Sequence} continues from {evt.Previous}, not from {_cursor}");
                if (evt.Change is { } change && _changeFilter is { } filter && !filter(change))
                    return true; // test seam: lost on the wire; the next message shows the hole
                _cursor = evt.Sequence;
                return Write(new RegistryBroadcast(evt.Change, evt.Heartbeat, evt.Previous));
            case WatchEventKinds.Ended:
                return Reopen($"the registry ended the watch ({evt.Code}: {evt.Message})");
            default:
                return true; // a kind from a newer registry: nothing to apply
        }
    }

    private bool Reopen(string reason)
    {
        RegistryClientLog.WatchStreamReopened(_logger, Endpoint, reason);
        Open(reason);
        return false;
    }

    private bool Write(RegistryBroadcast broadcast) =>
        _channel.Writer.TryWrite(broadcast) || Reopen("the watcher's queue is full");
}
