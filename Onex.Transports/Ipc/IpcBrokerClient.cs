using System.Collections.Concurrent;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Events;
using Polly;
using Polly.Retry;

namespace Onex.Transports.Ipc;

/// <summary>
/// A joined participant's connection to the host. One read loop delivers EVENT frames to the local subscriptions and
/// completes subscription acks; when the connection breaks, a supervisor reconnects with exponential backoff and
/// jitter (Polly) until the host is back at the same path (or at the path <see cref="MoveTo"/> gave) or the participant
/// is disposed, then re-sends every subscription. Events published while disconnected are lost, as at-most-once
/// delivery allows: <see cref="PublishAsync"/> refuses them, and those still queued for the host when the connection
/// broke are counted as <see cref="Onex.Bus.DropCause.Transport"/>.
/// </summary>
internal sealed class IpcBrokerClient : IAsyncDisposable
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    private volatile string _socketPath;
    private readonly IpcEventBusOptions _options;
    private readonly OnexEventCodec _codec;
    private readonly IpcLocalSubscriptions _local;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<uint, TaskCompletionSource> _pendingAcks = new();
    private readonly ResiliencePipeline _reconnect;
    // Kept across reconnects: a publisher's numbers and a subscriber's expectations must span the outage to count it.
    private readonly IpcEventNumbering _numbering = new();
    private readonly IpcGapCheck _gaps = new();
    private volatile Session? _session;
    private CancellationTokenSource? _reconnecting;
    private Task _supervisor = Task.CompletedTask;

    private IpcBrokerClient(string socketPath, IpcEventBusOptions options, OnexEventCodec codec, IpcLocalSubscriptions local, ILogger logger)
    {
        _socketPath = socketPath;
        _options = options;
        _codec = codec;
        _local = local;
        _logger = logger;
        _timeProvider = options.TimeProvider ?? TimeProvider.System;
        _reconnect = new ResiliencePipelineBuilder { TimeProvider = _timeProvider }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not OperationCanceledException),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.ReconnectMinDelay,
                MaxDelay = options.ReconnectMaxDelay,
                MaxRetryAttempts = int.MaxValue,
                OnRetry = args =>
                {
                    IpcLog.ReconnectFailed(_logger, args.AttemptNumber + 1, _socketPath,
                        args.Outcome.Exception?.Message ?? "unknown", args.RetryDelay.TotalMilliseconds);
                    return default;
                },
            })
            .Build();
    }

    /// <summary>The bus name the host announced in WELCOME.</summary>
    public string BusName { get; private set; } = "";

    /// <summary>The socket path this participant connects (and reconnects) to.</summary>
    public string SocketPath => _socketPath;

    /// <summary>True while a connection to the host is up.</summary>
    public bool IsConnected => _session is not null;

    /// <summary>Connects and completes the handshake once; no retry, so a missing host fails fast.</summary>
    /// <exception cref="UnavailableException">No host answers at <paramref name="socketPath"/>.</exception>
    public static async Task<IpcBrokerClient> ConnectAsync(
        string socketPath, IpcEventBusOptions options, OnexEventCodec codec, IpcLocalSubscriptions local, ILogger logger, CancellationToken cancellationToken)
    {
        var client = new IpcBrokerClient(socketPath, options, codec, local, logger);
        var session = await client.OpenSessionAsync(cancellationToken).ConfigureAwait(false);
        client.BusName = session.BusName;
        client._session = session;
        client._supervisor = Task.Run(() => client.SuperviseAsync(session));
        IpcLog.Joined(logger, session.BusName, socketPath);
        return client;
    }

    /// <summary>Sends a PUBLISH frame, waiting for room in the outbound queue.</summary>
    /// <exception cref="UnavailableException">The host is lost (reconnecting); the event was not sent.</exception>
    /// <exception cref="MessageTooLargeException">The event exceeds this side's or the host's frame limit.</exception>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken)
    {
        var session = _session ?? throw HostLost();
        var frame = IpcFrames.EncodeEvent(IpcFrameType.Publish, evt, _codec, Math.Min(_options.MaxFrameBytes, session.HostMaxFrameBytes));
        var enqueue = session.Outbound.EnqueueAsync(frame, cancellationToken, _numbering, evt.Topic);
        if (enqueue.IsCompletedSuccessfully)
            return enqueue.Result ? default : ValueTask.FromException(HostLost());
        return AwaitEnqueueAsync(enqueue);
    }

    /// <summary>
    /// Sends SUBSCRIBE for <paramref name="subscription"/> (already in the local table) and waits for SUBSCRIBED. If
    /// the host is lost meanwhile the wait continues: the reconnect re-sends the subscription and the new host acks it.
    /// </summary>
    /// <exception cref="UnavailableException">Not connected when called.</exception>
    public async ValueTask SubscribeAsync(IpcSubscription subscription, CancellationToken cancellationToken)
    {
        var session = _session ?? throw HostLost();
        // What arrives for the new pattern may follow events nobody here subscribed to: that is no loss.
        _gaps.ForgetAll();
        var ack = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pendingAcks[subscription.Id] = ack;
        if (_stopping.IsCancellationRequested) ack.TrySetException(new ObjectDisposedException(nameof(IpcEventBus)));
        session.Outbound.EnqueueControl(IpcFrames.Subscribe(subscription.Id, subscription.Lossless, subscription.Pattern));
        try
        {
            await ack.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _pendingAcks.TryRemove(new KeyValuePair<uint, TaskCompletionSource>(subscription.Id, ack));
        }
    }

    /// <summary>Tells the host to stop routing to <paramref name="subscriptionId"/> (best effort: a lost host forgot it anyway).</summary>
    public void Unsubscribe(uint subscriptionId)
    {
        if (_pendingAcks.TryRemove(subscriptionId, out var ack))
            ack.TrySetCanceled();
        _session?.Outbound.EnqueueControl(IpcFrames.Unsubscribe(subscriptionId));
    }

    /// <summary>
    /// Reconnects at <paramref name="socketPath"/> from now on (the host came back elsewhere): drops the current
    /// connection, or cuts the current reconnect wait short, so the supervisor connects there without waiting out its
    /// backoff. Subscriptions are re-sent as after any reconnect.
    /// </summary>
    public void MoveTo(string socketPath)
    {
        _socketPath = socketPath;
        _session?.Close();
        try
        {
            Volatile.Read(ref _reconnecting)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // That reconnect attempt has just ended; the next one reads the new path.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        var session = _session;
        // Let what was published go out before closing; bounded, since the host may not be reading.
        if (session is not null) await session.Outbound.DrainAsync(DrainTimeout, _timeProvider).ConfigureAwait(false);
        _stopping.Cancel();
        _session?.Close();
        try
        {
            await _supervisor.WaitAsync(StopTimeout, _timeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The socket is closed; the loop ends when its pending call returns.
        }
        foreach (var ack in _pendingAcks.Values)
            ack.TrySetException(new ObjectDisposedException(nameof(IpcEventBus)));
        IpcLog.Left(_logger, BusName, _socketPath);
    }

    private static async ValueTask AwaitEnqueueAsync(ValueTask<bool> enqueue)
    {
        if (!await enqueue.ConfigureAwait(false)) throw HostLost();
    }

    private static UnavailableException HostLost() =>
        new("The bus host is not connected (reconnecting); the event was not sent.");

    private async Task SuperviseAsync(Session session)
    {
        var stopping = _stopping.Token;
        while (true)
        {
            var reason = await ReadOnThreadAsync(session, stopping).ConfigureAwait(false);
            _session = null;
            if (stopping.IsCancellationRequested) return;
            IpcLog.HostLost(_logger, BusName, session.SocketPath, reason);
            _local.Health.SetState(Onex.Bus.BusConnectionState.Disconnected, $"lost the host at {session.SocketPath}: {reason}; reconnecting");
            if (await ReconnectAsync(stopping).ConfigureAwait(false) is not { } reconnected) return;
            session = reconnected;
            // Publish the session before re-sending, so a subscription added meanwhile is either re-sent here or
            // sends itself on the new session (a duplicate SUBSCRIBE just replaces the broker's entry).
            _session = session;
            if (session.SocketPath != _socketPath)
            {
                // MoveTo ran while this attempt connected to the previous path: end it; the loop reconnects at the new one.
                session.Close();
                continue;
            }
            var subscriptions = _local.Snapshot;
            foreach (var subscription in subscriptions)
                session.Outbound.EnqueueControl(IpcFrames.Subscribe(subscription.Id, subscription.Lossless, subscription.Pattern));
            IpcLog.Reconnected(_logger, session.BusName, session.SocketPath, subscriptions.Length);
            _local.Health.SetState(Onex.Bus.BusConnectionState.Connected, $"reconnected to {session.SocketPath}");
            if (stopping.IsCancellationRequested)
            {
                _session = null;
                session.DisposeUnread();
                return;
            }
        }
    }

    // Reconnects with backoff; a MoveTo cancels the attempt under way and the loop starts over at the new path at once.
    // Null when the participant is disposed.
    private async Task<Session?> ReconnectAsync(CancellationToken stopping)
    {
        while (true)
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            Volatile.Write(ref _reconnecting, attempt);
            try
            {
                return await _reconnect.ExecuteAsync(OpenSessionAsync, attempt.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                // Moved: try the new path now.
            }
            catch (OperationCanceledException)
            {
                return null;
            }
            finally
            {
                Interlocked.CompareExchange(ref _reconnecting, null, attempt);
            }
        }
    }

    // Runs the session's read loop on a dedicated thread (reads block in poll, see IpcFrameReader); completes with
    // why the connection ended, for the log.
    private Task<string> ReadOnThreadAsync(Session session, CancellationToken stopping)
    {
        var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() => done.TrySetResult(ReadUntilClosed(session, stopping)))
        {
            IsBackground = true,
            Name = "onex-ipc-participant",
        };
        thread.Start();
        return done.Task;
    }

    private string ReadUntilClosed(Session session, CancellationToken stopping)
    {
        try
        {
            while (true)
            {
                var frame = session.Reader.ReadFrame();
                switch (frame.Type)
                {
                    case IpcFrameType.None:
                        return "the host closed the connection";
                    case IpcFrameType.Event:
                        var (publisherId, sequence, eventBytes) = IpcFrames.ParseEvent(frame.Body);
                        var evt = _codec.Decode(eventBytes);
                        var lost = _gaps.Check(publisherId, evt.Topic, sequence);
                        if (lost > 0)
                            _local.Health.CountDropped(Onex.Bus.DropCause.Transport, lost, null,
                                $"{lost} event(s) of topic '{evt.Topic}' from publisher {publisherId:x16} never arrived through {session.SocketPath} (published while a participant was reconnecting, or lost with the host)");
                        // Blocking this thread while a Wait-mode queue is full leaves the host's frames in the socket:
                        // that is the backpressure Wait mode asks for.
                        var delivering = _local.DeliverAsync(evt, stopping);
                        if (!delivering.IsCompletedSuccessfully) delivering.AsTask().GetAwaiter().GetResult();
                        break;
                    case IpcFrameType.Subscribed:
                        if (_pendingAcks.TryGetValue(IpcFrames.ParseId(frame.Body.Span, frame.Type), out var ack)) ack.TrySetResult();
                        break;
                    case IpcFrameType.Dropped:
                        var (id, count) = IpcFrames.ParseDropped(frame.Body.Span);
                        _local.Find(id)?.AddRemoteDrops(count);
                        // The host sends DROPPED where it dropped: the jump its drops leave is counted already.
                        _gaps.ForgetNow();
                        break;
                    case IpcFrameType.EventV1:
                        throw IpcFrames.VersionOneEventFrame(frame.Type);
                    case IpcFrameType.Error:
                        var (code, message) = IpcFrames.ParseError(frame.Body.Span);
                        IpcLog.HostSentError(_logger, BusName, code, message);
                        return $"the host sent error {code}";
                    default:
                        throw new MalformedMessageException($"Frame type 0x{(byte)frame.Type:X2} is not one the host may send.");
                }
            }
        }
        catch (OnexException ex)
        {
            IpcLog.HostProtocolViolation(_logger, BusName, ex.Code, ex.Message);
            return ex.Message;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return "disposed";
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            return ex.Message;
        }
        catch (Exception ex)
        {
            IpcLog.ClientCrashed(_logger, BusName, ex);
            return ex.Message;
        }
        finally
        {
            // Release the reader's hold on the handle before disposing the socket (the other order spins).
            session.Close();
            session.Reader.Dispose();
            session.DisposeSocket();
        }
    }

    private async ValueTask<Session> OpenSessionAsync(CancellationToken cancellationToken)
    {
        var socketPath = _socketPath;
        IpcBusDirectory.VerifyJoinable(socketPath);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        IpcFrameReader? reader = null;
        try
        {
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                throw new UnavailableException(
                    $"No bus host answers at '{socketPath}' ({ex.SocketErrorCode}).",
                    new Dictionary<string, string> { ["path"] = socketPath },
                    ex);
            }
            reader = new IpcFrameReader(socket, _options.MaxFrameBytes);
            Session? session = null;
            var outbound = new IpcOutboundQueue(socket, _options.OutboundQueueCapacity, _ => session?.Close());
            outbound.EnqueueControl(IpcFrames.Hello(_options.NodeId, _options.MaxFrameBytes));

            IpcFrame welcome;
            using (var timeout = new CancellationTokenSource(_options.HandshakeTimeout, _timeProvider))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token))
            {
                try
                {
                    welcome = await reader.ReadFrameAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw new UnavailableException($"The bus host at '{socketPath}' sent no WELCOME within {_options.HandshakeTimeout.TotalMilliseconds} ms.");
                }
            }
            if (welcome.Type == IpcFrameType.Error)
            {
                var (code, message) = IpcFrames.ParseError(welcome.Body.Span);
                throw OnexException.FromError(code, $"The bus host refused the connection: {message}", origin: $"bus host at {socketPath}");
            }
            if (welcome.Type != IpcFrameType.Welcome)
                throw welcome.IsEndOfStream
                    ? new UnavailableException($"The bus host at '{socketPath}' closed the connection during the handshake.")
                    : new MalformedMessageException($"Expected WELCOME (0x02) from the host, got 0x{(byte)welcome.Type:X2}.");
            var (version, hostMaxFrame, busName) = IpcFrames.ParseHandshake(welcome.Body.Span);
            if (version != IpcFrames.ProtocolVersion)
                throw new UnsupportedVersionException($"The bus host speaks protocol version {version}; this side speaks {IpcFrames.ProtocolVersion}.");
            session = new Session(socket, reader, outbound, busName, Math.Max(hostMaxFrame, IpcFrames.MinMaxFrameBytes), socketPath, _local.Health);
            return session;
        }
        catch
        {
            reader?.Dispose();
            socket.Dispose();
            throw;
        }
    }

    private sealed class Session(
        Socket socket, IpcFrameReader reader, IpcOutboundQueue outbound, string busName, int hostMaxFrameBytes, string socketPath, Onex.Bus.EventBusHealth health)
    {
        public IpcFrameReader Reader { get; } = reader;

        public IpcOutboundQueue Outbound { get; } = outbound;

        public string BusName { get; } = busName;

        public int HostMaxFrameBytes { get; } = hostMaxFrameBytes;

        public string SocketPath { get; } = socketPath;

        /// <summary>Shuts the connection down from any thread; the read loop wakes, ends and disposes the socket.</summary>
        public void Close()
        {
            // Events published and not yet written to the host are lost with the connection: count them, as ZeroMQ
            // counts a gap (written to the socket but unread by a host that died is beyond anyone's count).
            var lost = Outbound.Close();
            health.CountDropped(Onex.Bus.DropCause.Transport, lost, null,
                $"{lost} published event(s) were still queued for the host at {SocketPath} when the connection ended");
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Already disconnected or closed: the read loop has ended or is about to.
            }
        }

        /// <summary>Called by the read loop's thread after the reader released the handle.</summary>
        public void DisposeSocket() => socket.Dispose();

        /// <summary>Closes a session whose read loop never started.</summary>
        public void DisposeUnread()
        {
            Close();
            Reader.Dispose();
            socket.Dispose();
        }
    }
}
