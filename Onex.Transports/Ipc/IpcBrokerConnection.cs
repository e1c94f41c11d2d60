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

    // Acknowledgements queued beyond the outbound capacity for a peer that keeps subscribing without reading; a
    // well-behaved participant stays far below (the subscription count is capped too, see IpcFrames).
    private const int MaxControlBacklog = 4_096;

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

    /// <summary>
    /// Shuts the connection down from any thread: the outbound queue discards what it holds and the read loop wakes
    /// and ends. The connection's own thread disposes the socket once its reader released the handle (disposing
    /// it while the reader holds it would spin until then).
    /// </summary>
    public void Abort()
    {
        Outbound.Close();
        ShutdownQuietly();
    }

    /// <summary>Closes a connection whose thread was never started.</summary>
    public void DisposeUnstarted()
    {
        Abort();
        Socket.Dispose();
    }

    /// <summary>
    /// Serves the connection on a dedicated thread (its reads block in <c>poll</c>, see <see cref="IpcFrameReader"/>)
    /// until the peer leaves, breaks the protocol or the broker stops. The task completes when the thread is done;
    /// it never faults.
    /// </summary>
    public Task Start(CancellationToken stopping)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                Run(stopping);
            }
            finally
            {
                done.TrySetResult();
            }
        })
        {
            IsBackground = true,
            Name = $"onex-ipc-broker-{Id}",
        };
        thread.Start();
        return done.Task;
    }

    private void Run(CancellationToken stopping)
    {
        IpcLog.ConnectionAccepted(_logger, Id);
        var reader = new IpcFrameReader(Socket, _broker.Options.MaxFrameBytes);
        try
        {
            if (!Handshake(reader)) return;
            while (!stopping.IsCancellationRequested)
            {
                var frame = reader.ReadFrame();
                if (frame.IsEndOfStream) break;
                WaitFor(HandleFrameAsync(frame, stopping));
            }
        }
        catch (OnexException ex) when (ex.Code is ErrorCodes.TooLarge or ErrorCodes.Malformed or ErrorCodes.UnsupportedVersion
            or ErrorCodes.UnknownMessageType or ErrorCodes.InvalidArgument)
        {
            IpcLog.ProtocolViolation(_logger, Id, PeerNodeId, ex.Code, ex.Message);
            SendErrorAndClose(ex.Code, ex.Message);
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
            SendErrorAndClose(ErrorCodes.Internal, "The broker failed while handling this connection.");
        }
        finally
        {
            Abort();
            reader.Dispose();
            Socket.Dispose();
            IpcLog.ConnectionClosed(_logger, Id, PeerNodeId);
        }
    }

    // This thread exists to read this connection, so blocking it while a Wait-mode target has no room is the
    // backpressure we want: this peer's frames stay in its socket until then.
    private static void WaitFor(ValueTask pending)
    {
        if (pending.IsCompletedSuccessfully) return;
        pending.AsTask().GetAwaiter().GetResult();
    }

    private bool Handshake(IpcFrameReader reader)
    {
        IpcFrame hello;
        using (var timeout = new CancellationTokenSource(_broker.Options.HandshakeTimeout, _broker.TimeProvider))
        using (timeout.Token.Register(static state => ((IpcBrokerConnection)state!).ShutdownQuietly(), this))
        {
            try
            {
                hello = reader.ReadFrame();
            }
            catch (Exception ex) when (timeout.IsCancellationRequested && ex is IOException or MalformedMessageException)
            {
                hello = default;
            }
            if (timeout.IsCancellationRequested)
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
        IpcLog.ParticipantJoined(_logger, Id, PeerNodeId);
        return true;
    }

    private ValueTask HandleFrameAsync(IpcFrame frame, CancellationToken stopping)
    {
        switch (frame.Type)
        {
            case IpcFrameType.Publish:
                // The numbers travel on untouched (the EVENT frame carries the same body); subscribers check them.
                var evt = _broker.Codec.Decode(IpcFrames.ParseEvent(frame.Body).Event);
                return _broker.RouteAsync(evt, null, frame.Body, stopping);
            case IpcFrameType.PublishV1:
                throw IpcFrames.VersionOneEventFrame(frame.Type);
            case IpcFrameType.Subscribe:
                AddSubscription(frame.Body.Span);
                return default;
            case IpcFrameType.Unsubscribe:
                RemoveSubscription(IpcFrames.ParseId(frame.Body.Span, frame.Type));
                return default;
            default:
                throw new UnknownMessageTypeException($"Frame type 0x{(byte)frame.Type:X2} is not one a participant may send to the host.",
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
        if (index < 0 && current.Length >= IpcFrames.MaxSubscriptionsPerConnection)
            throw new InvalidArgumentException($"A connection may hold at most {IpcFrames.MaxSubscriptionsPerConnection} subscriptions.",
                new Dictionary<string, string> { ["limit"] = IpcFrames.MaxSubscriptionsPerConnection.ToString() });
        Volatile.Write(ref _subscriptions, index < 0 ? [.. current, subscription] : [.. current[..index], subscription, .. current[(index + 1)..]]);
        // Registered before the ack goes out: once the participant sees SUBSCRIBED, later events are routed to it.
        if (!Outbound.EnqueueControl(IpcFrames.Subscribed(id), _broker.Options.OutboundQueueCapacity + MaxControlBacklog) && !Outbound.IsClosed)
            throw new InvalidArgumentException("The participant keeps subscribing without reading the acknowledgements.");
    }

    private void RemoveSubscription(uint id)
    {
        var current = _subscriptions;
        var index = Array.FindIndex(current, s => s.Id == id);
        // An unknown id is not an error: UNSUBSCRIBE may cross a reconnect.
        if (index >= 0) Volatile.Write(ref _subscriptions, [.. current[..index], .. current[(index + 1)..]]);
    }

    private void SendErrorAndClose(string code, string message)
    {
        if (Outbound.EnqueueControl(IpcFrames.Error(code, message)))
            Outbound.DrainAsync(ErrorFlushTimeout, _broker.TimeProvider).GetAwaiter().GetResult();
    }

    private void ShutdownQuietly()
    {
        try
        {
            Socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: the blocked read has ended or is about to.
        }
    }

    private void OnSendFailed(Exception ex)
    {
        IpcLog.ConnectionFailed(_logger, Id, PeerNodeId, ex.Message);
        Abort();
    }

    private sealed record RemoteSubscription(uint Id, TopicPattern Pattern, bool Lossless);
}
