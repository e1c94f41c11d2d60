using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Ipc;

/// <summary>How a connection's subscriptions match a topic.</summary>
internal enum RouteMatch
{
    /// <summary>No subscription matches: nothing is sent.</summary>
    None,

    /// <summary>Only drop-mode subscriptions match: when the outbound queue is full the event is dropped for them.</summary>
    DropOnly,

    /// <summary>A Wait-mode subscription matches: the broker waits for room in the outbound queue.</summary>
    Lossless,
}

/// <summary>
/// The broker's side of one participant's connection: its handshake, its subscriptions (what the broker routes to
/// it) and its outbound queue. Any bad frame ends this connection with an ERROR frame, never the broker.
/// </summary>
internal sealed class IpcBrokerConnection
{
    private static readonly TimeSpan ErrorFlushTimeout = TimeSpan.FromSeconds(1);

    private readonly IpcBroker _broker;
    private readonly ILogger _logger;
    private RemoteSubscription[] _subscriptions = [];
    private long _overflowDrops;

    public IpcBrokerConnection(int id, Socket socket, IpcBroker broker, ILogger logger)
    {
        Id = id;
        Socket = socket;
        _broker = broker;
        _logger = logger;
        Outbound = new IpcOutboundQueue(socket, broker.Options.OutboundQueueCapacity, OnSendFailed);
    }

    public int Id { get; }

    public Socket Socket { get; }

    public IpcOutboundQueue Outbound { get; }

    /// <summary>The node id from the participant's HELLO; <c>?</c> before it.</summary>
    public string PeerNodeId { get; private set; } = "?";

    /// <summary>The largest frame the participant accepts (from its HELLO).</summary>
    public int PeerMaxFrameBytes { get; private set; } = IpcFrames.MinMaxFrameBytes;

    /// <summary>True once the handshake completed: only then are events routed here.</summary>
    public bool IsReady { get; private set; }

    public RouteMatch Match(string topic)
    {
        var result = RouteMatch.None;
        foreach (var subscription in Volatile.Read(ref _subscriptions))
        {
            if (!subscription.Pattern.Matches(topic)) continue;
            if (subscription.Lossless) return RouteMatch.Lossless;
            result = RouteMatch.DropOnly;
        }
        return result;
    }

    /// <summary>Counts an event for <paramref name="topic"/> that could not be queued, against each matching subscription.</summary>
    public void RecordDrops(string topic, bool overflow)
    {
        foreach (var subscription in Volatile.Read(ref _subscriptions))
            if (subscription.Pattern.Matches(topic)) Outbound.RecordDrop(subscription.Id);
        if (!overflow) return;
        var dropped = Interlocked.Increment(ref _overflowDrops);
        // Log the first overflow and then every 1024th, so a stuck participant does not flood the log.
        if (dropped == 1 || dropped % 1024 == 0) IpcLog.OutboundOverflow(_logger, Id, PeerNodeId, dropped);
    }

    /// <summary>Closes the socket; the read loop ends and the outbound queue discards what it holds.</summary>
    public void Abort()
    {
        Outbound.Close();
        try
        {
            Socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already disconnected by the peer: closing below is all that is left to do.
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        Socket.Dispose();
    }

    /// <summary>Serves the connection until the peer leaves, breaks the protocol or the broker stops. Never throws.</summary>
    public async Task RunAsync(CancellationToken stopping)
    {
        IpcLog.ConnectionAccepted(_logger, Id);
        using var reader = new IpcFrameReader(Socket, _broker.Options.MaxFrameBytes);
        try
        {
            if (!await HandshakeAsync(reader, stopping).ConfigureAwait(false)) return;
            while (true)
            {
                var frame = await reader.ReadFrameAsync(stopping).ConfigureAwait(false);
                if (frame.IsEndOfStream) break;
                await HandleFrameAsync(frame, stopping).ConfigureAwait(false);
            }
        }
        catch (OnexException ex) when (ex.Code is ErrorCodes.TooLarge or ErrorCodes.Malformed or ErrorCodes.UnsupportedVersion or ErrorCodes.UnknownMessageType)
        {
            IpcLog.ProtocolViolation(_logger, Id, PeerNodeId, ex.Code, ex.Message);
            await SendErrorAndCloseAsync(ex.Code, ex.Message).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The broker is stopping; it closes every connection.
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            if (!stopping.IsCancellationRequested) IpcLog.ConnectionFailed(_logger, Id, PeerNodeId, ex.Message);
        }
        catch (Exception ex)
        {
            // A bug on our side must cost this connection, not the broker.
            IpcLog.ConnectionCrashed(_logger, Id, PeerNodeId, ex);
            await SendErrorAndCloseAsync(ErrorCodes.Internal, "The broker failed while handling this connection.").ConfigureAwait(false);
        }
        finally
        {
            IsReady = false;
            Abort();
            IpcLog.ConnectionClosed(_logger, Id, PeerNodeId);
        }
    }

    private async Task<bool> HandshakeAsync(IpcFrameReader reader, CancellationToken stopping)
    {
        IpcFrame hello;
        using (var timeout = new CancellationTokenSource(_broker.Options.HandshakeTimeout, _broker.TimeProvider))
        using (var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, timeout.Token))
        {
            try
            {
                hello = await reader.ReadFrameAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !stopping.IsCancellationRequested)
            {
                IpcLog.HandshakeTimedOut(_logger, Id, _broker.Options.HandshakeTimeout.TotalMilliseconds);
                return false;
            }
        }
        if (hello.IsEndOfStream) return false;
        if (hello.Type != IpcFrameType.Hello)
            throw new MalformedMessageException($"The first frame must be HELLO (0x01), got 0x{(byte)hello.Type:X2}.");
        var (version, maxFrame, nodeId) = IpcFrames.ParseHandshake(hello.Body.Span);
        PeerNodeId = nodeId.Length == 0 ? "?" : nodeId;
        if (version != IpcFrames.ProtocolVersion)
            throw new UnsupportedVersionException(
                $"Protocol version {version} is not supported (this host speaks {IpcFrames.ProtocolVersion}).",
                new Dictionary<string, string> { ["protocolVersion"] = version.ToString() });
        if (maxFrame < IpcFrames.MinMaxFrameBytes)
            throw new MalformedMessageException($"A frame limit of {maxFrame} bytes is below the minimum of {IpcFrames.MinMaxFrameBytes}.");
        PeerMaxFrameBytes = maxFrame;
        Outbound.EnqueueControl(IpcFrames.Welcome(_broker.BusName, _broker.Options.MaxFrameBytes));
        IsReady = true;
        IpcLog.ParticipantJoined(_logger, Id, PeerNodeId);
        return true;
    }

    private ValueTask HandleFrameAsync(IpcFrame frame, CancellationToken stopping)
    {
        switch (frame.Type)
        {
            case IpcFrameType.Publish:
                var evt = _broker.Codec.Decode(frame.Body);
                return _broker.RouteAsync(evt, null, frame.Body, stopping);
            case IpcFrameType.Subscribe:
                AddSubscription(frame.Body.Span);
                return default;
            case IpcFrameType.Unsubscribe:
                RemoveSubscription(IpcFrames.ParseId(frame.Body.Span, frame.Type));
                return default;
            default:
                throw new OnexException(
                    ErrorCodes.UnknownMessageType,
                    $"Frame type 0x{(byte)frame.Type:X2} is not one a participant may send to the host.",
                    new Dictionary<string, string> { ["frameType"] = ((byte)frame.Type).ToString() });
        }
    }

    private void AddSubscription(ReadOnlySpan<byte> body)
    {
        var (id, lossless, pattern) = IpcFrames.ParseSubscribe(body);
        if (!Topic.IsValidPattern(pattern))
            throw new MalformedMessageException($"'{pattern}' is not a valid topic pattern.", new Dictionary<string, string> { ["field"] = "pattern" });
        var subscription = new RemoteSubscription(id, TopicPattern.Parse(pattern), lossless);
        // Only this read loop writes the array; routers read it lock-free.
        var current = _subscriptions;
        var index = Array.FindIndex(current, s => s.Id == id);
        Volatile.Write(ref _subscriptions, index < 0 ? [.. current, subscription] : [.. current[..index], subscription, .. current[(index + 1)..]]);
        // Registered before the ack goes out: once the participant sees SUBSCRIBED, later events are routed to it.
        Outbound.EnqueueControl(IpcFrames.Subscribed(id));
    }

    private void RemoveSubscription(uint id)
    {
        var current = _subscriptions;
        var index = Array.FindIndex(current, s => s.Id == id);
        // An unknown id is not an error: UNSUBSCRIBE may cross a reconnect.
        if (index >= 0) Volatile.Write(ref _subscriptions, [.. current[..index], .. current[(index + 1)..]]);
    }

    private async Task SendErrorAndCloseAsync(string code, string message)
    {
        if (Outbound.EnqueueControl(IpcFrames.Error(code, message)))
            await Outbound.DrainAsync(ErrorFlushTimeout, _broker.TimeProvider).ConfigureAwait(false);
    }

    private void OnSendFailed(Exception ex)
    {
        IpcLog.ConnectionFailed(_logger, Id, PeerNodeId, ex.Message);
        Abort();
    }

    private sealed record RemoteSubscription(uint Id, TopicPattern Pattern, bool Lossless);
}
