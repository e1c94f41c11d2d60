using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;
using Onex.Transports.Zmq;

namespace Onex.RegistryNode.Server;

/// <summary>
/// The ROUTER loop. One <see cref="NetMQPoller"/> thread owns the socket and the whole <see cref="RegistryState"/>:
/// requests are handled as they arrive, and timer work arrives through a <see cref="NetMQQueue{T}"/>, so the
/// state needs no locks. Frames: a DEALER sends <c>[envelope]</c>, a REQ sends <c>[empty][envelope]</c>; the
/// ROUTER sees them behind the peer identity and the reply goes back with the same framing.
/// </summary>
/// <remarks>
/// <para>
/// Write-ahead with group commit: every wake-up of the loop (a batch of requests, or queued timer work) ends with one
/// commit of everything it changed, and only then do its replies and broadcasts leave. When the commit fails (a full
/// disk), the state is reloaded as last committed, every reply of the batch becomes UNAVAILABLE (reason
/// <c>storage</c>), and requests that change state are refused until a probe commit succeeds again.
/// </para>
/// <para>
/// Pause detection: a tick on the poller thread every <see cref="Tick"/> notes that the loop ran. A wake-up that finds
/// the last one further back than <see cref="RegistryNodeOptions.PauseThreshold"/> (the process was stopped, starved
/// or stalled) moves lease expiries and node deadlines back by the time lost before it handles anything, so holders
/// whose renewals waited in the socket lose nothing. It reads the machine's monotonic clock, not the injected
/// <see cref="TimeProvider"/>: a test's jump of a fake clock is the test's intent, not a pause.
/// </para>
/// </remarks>
internal sealed partial class RegistryServer : IDisposable
{
    // Messages handled per wake-up before the poller looks at its other sources (timers, work queue).
    private const int BatchSize = 256;

    /// <summary>
    /// Work per wake-up after which it stops taking requests, commits and sends what it has: replies wait for their
    /// wake-up's commit, so 256 expensive requests (tool registrations parse two schemas each, milliseconds apiece,
    /// and a loaded machine stretches that many times) held the first reply back for seconds. Cheap requests
    /// (tens of microseconds) fill a whole batch well within it.
    /// </summary>
    public static readonly TimeSpan WakeUpWorkBudget = TimeSpan.FromMilliseconds(20);

    /// <summary>How often the loop notes that it runs (pause detection).</summary>
    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RebindPatience = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RebindRetry = TimeSpan.FromMilliseconds(10);

    private readonly RouterSocket _router;
    private readonly NetMQQueue<Action> _work = new();
    private readonly NetMQTimer _tick = new(Tick);
    private readonly NetMQTimer _probe = new(ProbeInterval);
    private readonly NetMQPoller _poller;
    private readonly ILogger _logger;
    private readonly List<(NetMQFrame Identity, bool ViaReq, byte[] Reply, string RequestId, string ClientId)> _outgoing = [];
    private readonly List<TaskCompletionSource> _afterCommit = [];
    // The message being answered, read in place (TryReceiveMessage): identity, then up to two frames; more are only counted.
    private const int MaxKeptFrames = 3;
    private readonly Msg[] _frames = new Msg[MaxKeptFrames];
    private int _kept;
    private int _frameCount;
    // Replies to requests that came another way (the NATS service), released after the wake-up's commit like _outgoing.
    private readonly List<(TaskCompletionSource<byte[]> Done, byte[] Reply, string RequestId, string ClientId)> _outgoingElsewhere = [];
    private RequestDispatcher? _dispatcher;
    private StoreBinding? _storage;
    private long _lastProgress;
    private long _storeFailedAt;

    // Set when a failed commit in cluster mode discarded broadcasts of remote changes that the view (the catalogue,
    // which is not in the local store) kept: the first commit after the store recovers skips a sequence number.
    private bool _sequenceGapOwed;
    private long _repliesDropped;
    // Bytes of the replies in _outgoing: they wait for the wake-up's commit, so a wake-up stops taking requests past a bound.
    private long _outgoingBytes;
    private long _droppedLoggedAt;
    private int _disposed;
    // Set (from a NetMQ I/O thread) when the frames ZeroMQ holds pass PeerBounds.ReceivedBytesTotal: the loop closes every connection.
    private int _cutRequested;
    private long _connectionsCut;
    private IDisposable? _receivedWatch;
    // Where the ROUTER binds again after closing its connections, what NetMQ knows its endpoint by, and whether it is bound.
    private readonly string _bindAddress;
    private readonly string _unbindKey;
    private bool _unbound;
    private long _unboundSince;
    private bool _rebindFailureLogged;
    private readonly NetMQTimer _rebind = new(RebindRetry);

    /// <summary>What the loop commits to and how it rolls back.</summary>
    /// <param name="Store">The store every wake-up commits to.</param>
    /// <param name="Sink">Holds broadcasts until their commit.</param>
    /// <param name="Reload">The state and reply cache as last committed (after a failed commit).</param>
    /// <param name="PauseThreshold">A gap between wake-ups longer than this is a pause.</param>
    public sealed record StoreBinding(IRegistryStore Store, DeferredChangeSink Sink, Func<(RegistryState, ReplyCache)> Reload, TimeSpan PauseThreshold);

    private RegistryServer(RouterSocket router, string endpoint, (string Bind, string Unbind) addresses, ILogger logger)
    {
        _router = router;
        _logger = logger;
        Endpoint = endpoint;
        (_bindAddress, _unbindKey) = addresses;
        _router.ReceiveReady += (_, _) => OnRequests();
        _work.ReceiveReady += (_, _) => RunQueuedWork();
        _tick.Elapsed += (_, _) => OnTick();
        _probe.Elapsed += (_, _) => ProbeStore();
        _probe.Enable = false;
        _rebind.Elapsed += (_, _) => Guard(() =>
        {
            if (_unbound) Rebind();
            else _rebind.Enable = false;
        });
        _rebind.Enable = false;
        _poller = new NetMQPoller { _router, _work, _tick, _probe, _rebind };
    }

    /// <summary>The endpoint bound (with the OS-chosen port for <c>:0</c>).</summary>
    public string Endpoint { get; }

    /// <summary>
    /// Replies dropped because their peer left <see cref="PeerBounds.ReplyHighWatermark"/> replies or
    /// <see cref="PeerBounds.QueuedReplyBytesPerPeer"/> bytes of replies unread (a peer that disconnected before its
    /// reply is not counted). Thread-safe.
    /// </summary>
    public long RepliesDropped => Interlocked.Read(ref _repliesDropped);

    /// <summary>
    /// Times the registry closed every connection of its request socket because ZeroMQ held more than
    /// <see cref="PeerBounds.ReceivedBytesTotal"/> of received frames (PROTOCOL.md section 14). Thread-safe.
    /// </summary>
    public long ConnectionsCut => Interlocked.Read(ref _connectionsCut);

    /// <summary>Binds the ROUTER socket. Throws <see cref="LeaseException"/> PORT_UNAVAILABLE, naming the endpoint, when it is taken.</summary>
    public static RegistryServer Bind(RegistryNodeOptions options, Onex.Transports.Security.CurveKeyPair? curve, ILogger logger)
    {
        var router = new RouterSocket();
        try
        {
            ZmqCurve.Apply(router, curve, serverKey: null);
            router.Options.MaxMsgSize = options.MaxReceiveBytes;
            PeerBounds.ApplyToRouter(router);
            QueuedReplyBytes.Install();
            router.Options.Linger = TimeSpan.FromMilliseconds(500);
            ZmqEndpoints.Bind(router, options.Endpoint);
            var resolved = ZmqEndpoints.Resolved(router, options.Endpoint);
            return new RegistryServer(router, resolved, Addresses(options.Endpoint, resolved), logger);
        }
        catch
        {
            router.Dispose();
            throw;
        }
    }

    /// <summary>Queues <paramref name="action"/> to run on the registry thread. Thread-safe.</summary>
    public void Post(Action action)
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        _work.Enqueue(action);
    }

    /// <summary>Runs <paramref name="action"/> on the registry thread and waits until what it changed is stored and broadcast.</summary>
    public Task InvokeAsync(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                action();
                _afterCommit.Add(done);
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        });
        return done.Task;
    }

    /// <summary>
    /// Dispatches a request frame that arrived another way than the ROUTER (the NATS service) on the registry thread,
    /// through the same dispatcher (auth, reply cache, parking); completes with its reply after the commit of the
    /// wake-up that answered it (or UNAVAILABLE, reason <c>storage</c>, when that commit failed). Thread-safe.
    /// </summary>
    public Task<byte[]> DispatchAsync(byte[] frame)
    {
        var done = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            NotePause();
            void Answer(byte[] reply)
            {
                var (requestId, clientId) = _dispatcher!.LastIds;
                _outgoingElsewhere.Add((done, reply, requestId, clientId));
            }
            var leases = _dispatcher!.Registry.Leases;
            leases.ReceivedAt = _dispatcher.Registry.NowMs();
            _dispatcher.Peer = ([], false); // no ROUTER peer: a Watch cannot stream over this path
            try
            {
                if (_dispatcher.Dispatch(frame, Answer) is { } reply) Answer(reply);
            }
            finally
            {
                leases.ReceivedAt = null;
            }
        });
        return done.Task;
    }

    /// <summary>Starts serving with <paramref name="dispatcher"/> on the poller thread, committing to <paramref name="storage"/>.</summary>
    public void Start(RequestDispatcher dispatcher, StoreBinding storage)
    {
        _dispatcher = dispatcher;
        _storage = storage;
        dispatcher.Watches?.Attach(SendStream);
        _lastProgress = TimeProvider.System.GetTimestamp();
        _receivedWatch = QueuedReplyBytes.Instance.WatchReceived(OnReceivedOverCap);
        _poller.RunAsync("onex-registry", isBackgroundThread: true);
    }

    /// <summary>Stops the poller; the socket closes (pending replies linger briefly).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _receivedWatch?.Dispose();
        if (_poller.IsRunning) _poller.Stop();
        _poller.Dispose();
        _work.Dispose();
        _router.Dispose();
    }

    private void OnRequests()
    {
        Guard(() =>
        {
            NotePause();
            CutIfOverReceived();
            ReceiveBatch();
            CompleteWakeUp();
        });
    }

    private void RunQueuedWork()
    {
        Guard(() =>
        {
            NotePause();
            CutIfOverReceived();
            // Requests already received are answered before timer work (the reaper above all) judges anything.
            for (var i = 0; i < 4 && ReceiveBatch() == BatchSize; i++)
            {
            }
            // Only the work queued when this wake-up began: work that queues more (a batch of the cluster's inbox posting
            // the next) runs in a later wake-up, after the requests that arrived meanwhile and this one's commit.
            for (var queued = _work.Count; queued > 0 && _work.TryDequeue(out var action, TimeSpan.Zero); queued--)
            {
                try
                {
                    action();
                }
                catch (Exception ex)
                {
                    LogWorkFailure(ex);
                }
            }
            CompleteWakeUp();
        });
    }

    private void OnTick()
    {
        Guard(() =>
        {
            NotePause();
            CutIfOverReceived();
            CompleteWakeUp();
        });
    }

    private void Guard(Action wakeUp)
    {
        try
        {
            wakeUp();
        }
        catch (Exception ex)
        {
            // Dispatch never throws; this guards the framing and commit code so the loop survives anything.
            LogLoopFailure(ex);
        }
    }

    /// <summary>Moves deadlines back when the loop has not run for longer than the pause threshold.</summary>
    private void NotePause()
    {
        var now = TimeProvider.System.GetTimestamp();
        var gap = TimeProvider.System.GetElapsedTime(_lastProgress, now);
        _lastProgress = now;
        // While the store refuses writes nothing expires anyway, and recovery moves deadlines back by the whole outage.
        if (gap <= _storage!.PauseThreshold || _dispatcher!.StoreUnavailable) return;
        var lost = (long)(gap - Tick).TotalMilliseconds;
        LogPaused((long)gap.TotalMilliseconds, lost);
        _dispatcher!.Registry.ExtendDeadlines(lost);
    }

    private int ReceiveBatch()
    {
        var received = 0;
        var began = TimeProvider.System.GetTimestamp();
        // Replies wait for the wake-up's commit: past PeerBounds.WakeUpReplyBytes of them, send before taking more requests
        // (600 queued snapshot requests of ~1 MB each held ~1 GB at once); likewise past WakeUpWorkBudget of work.
        for (; received < BatchSize && _outgoingBytes < PeerBounds.WakeUpReplyBytes; received++)
        {
            if (received > 0 && TimeProvider.System.GetElapsedTime(began) >= WakeUpWorkBudget) break;
            if (Volatile.Read(ref _cutRequested) != 0) break; // the next wake-up closes the connections first
            if (!TryReceiveMessage()) break;
            // Per message, not per wake-up: a stop can land in the middle of a batch, and the requests after it
            // (renewals sent on time) must see the deadlines moved back. Reading the clock costs nanoseconds.
            NotePause();
            var leases = _dispatcher!.Registry.Leases;
            leases.ReceivedAt = _dispatcher.Registry.NowMs();
            try
            {
                Answer();
            }
            catch (Exception ex)
            {
                LogLoopFailure(ex);
            }
            finally
            {
                leases.ReceivedAt = null;
                CloseFrames();
            }
        }
        return received;
    }

    /// <summary>
    /// Takes the next whole message off the ROUTER into <see cref="_frames"/> (its first <see cref="MaxKeptFrames"/>
    /// frames; the others are counted and closed). The frames stay ZeroMQ's buffers, read in place and closed after the
    /// answer: no copy of a request (a frame of 1 MiB was a large-object-heap copy, garbage until a full collection).
    /// </summary>
    private bool TryReceiveMessage()
    {
        var socket = (IReceivingSocket)_router;
        _frames[0].InitEmpty();
        if (!socket.TryReceive(ref _frames[0], TimeSpan.Zero))
        {
            _frames[0].Close();
            return false;
        }
        _kept = 1;
        _frameCount = 1;
        var more = _frames[0].HasMore;
        while (more)
        {
            var frame = new Msg();
            frame.InitEmpty();
            // ZeroMQ delivers a message whole: its other frames are there.
            if (!socket.TryReceive(ref frame, TimeSpan.Zero))
            {
                frame.Close();
                break;
            }
            more = frame.HasMore;
            _frameCount++;
            if (_kept < MaxKeptFrames) _frames[_kept++] = frame;
            else frame.Close();
        }
        return true;
    }

    private void CloseFrames()
    {
        for (var i = 0; i < _kept; i++) _frames[i].Close();
        _kept = 0;
    }

    private void Answer()
    {
        var identity = new NetMQFrame(_frames[0].ToArray());
        // [identity][envelope] from a DEALER; [identity][empty][envelope] from a REQ. Anything else is bad framing,
        // answered MALFORMED without looking inside, mirroring the framing (PROTOCOL.md 1.1).
        var delimited = _frameCount >= 2 && _frames[1].Size == 0;
        byte[]? reply;
        _dispatcher!.Peer = (identity.Buffer, delimited);
        // A request parked for the cluster is answered in a later wake-up, after that wake-up's commit.
        void AnswerLater(byte[] later) => Queue(identity, delimited, later);
        if (_frameCount == 2 && !delimited)
        {
            reply = _dispatcher!.Dispatch(_frames[1].SliceAsMemory(), AnswerLater);
        }
        else if (_frameCount == 3 && delimited && _frames[2].Size != 0)
        {
            reply = _dispatcher!.Dispatch(_frames[2].SliceAsMemory(), AnswerLater);
        }
        else
        {
            var frames = _frameCount - 1;
            reply = _dispatcher!.FailFraming(
                $"A request is one non-empty frame, optionally after an empty delimiter frame; got {frames} frame(s).",
                new Dictionary<string, string> { ["reason"] = "frames", ["frames"] = frames.ToString() });
        }
        if (reply is not null) Queue(identity, delimited, reply);
    }

    /// <summary>On a NetMQ I/O thread: received frames passed the bound. Only wakes the loop, which does the rest.</summary>
    private void OnReceivedOverCap()
    {
        if (Interlocked.Exchange(ref _cutRequested, 1) == 0) Post(static () => { });
    }

    /// <summary>
    /// When ZeroMQ holds more than <see cref="PeerBounds.ReceivedBytesTotal"/> of received frames (a message whose last
    /// frame never comes, or many connections each filling its queue while the registry is busy): closes every
    /// connection of the request socket and listens again on the same endpoint. ZeroMQ has no byte bound of its own
    /// for either and cannot close one peer of a ROUTER, so all go; well-behaved clients reconnect by themselves and
    /// retry with the same ids, answered from the reply cache (PROTOCOL.md section 14).
    /// </summary>
    private void CutIfOverReceived()
    {
        if (Interlocked.Exchange(ref _cutRequested, 0) == 0) return;
        var pool = QueuedReplyBytes.Instance;
        var held = pool.Received;
        if (held <= PeerBounds.ReceivedBytesTotal)
        {
            pool.Rearm(); // the loop caught up meanwhile
            return;
        }
        // Unbind closes the listener and every connection it accepted (they are its children in ZeroMQ); each connection's
        // pipe drops its unfinished message. The buffers counted now belong to them; any ZeroMQ drops without returning
        // must not stay counted.
        _router.Unbind(_unbindKey);
        _unbound = true;
        _unboundSince = 0;
        _rebindFailureLogged = false;
        pool.ForgetReceived();
        _dispatcher?.Watches?.DropAll(); // their connections are gone
        var cut = Interlocked.Increment(ref _connectionsCut);
        LogConnectionsCut(held, PeerBounds.ReceivedBytesTotal, cut);
        Rebind();
    }

    /// <summary>
    /// Listens on the endpoint again. ZeroMQ closes the old listener on its I/O thread, so the address may still be taken
    /// for a moment: then the rebind timer tries again every <see cref="RebindRetry"/>.
    /// </summary>
    private void Rebind()
    {
        try
        {
            _router.Bind(_bindAddress);
            _unbound = false;
            _rebind.Enable = false;
            if (_unboundSince != 0) LogRebound(_bindAddress, (long)TimeProvider.System.GetElapsedTime(_unboundSince).TotalMilliseconds);
            _unboundSince = 0;
        }
        catch (AddressAlreadyInUseException ex)
        {
            if (_unboundSince == 0) _unboundSince = TimeProvider.System.GetTimestamp();
            else if (TimeProvider.System.GetElapsedTime(_unboundSince) >= RebindPatience && !_rebindFailureLogged)
            {
                _rebindFailureLogged = true;
                LogRebindFailed(ex, _bindAddress);
            }
            _rebind.Enable = true;
        }
    }

    /// <summary>
    /// What to bind again (the configured address with the port chosen at the first bind) and what NetMQ registered the
    /// endpoint under, which <c>Unbind</c> needs: for tcp, <c>SocketBase.Bind</c> keeps "tcp://" + the address up to its
    /// first ':' + ":" + the port (so an IPv6 address is registered under a truncated form).
    /// </summary>
    private static (string Bind, string Unbind) Addresses(string configured, string resolved)
    {
        const string Tcp = "tcp://";
        if (!configured.StartsWith(Tcp, StringComparison.Ordinal)) return (configured, configured);
        var address = configured[Tcp.Length..];
        var port = resolved[(resolved.LastIndexOf(':') + 1)..];
        return ($"{Tcp}{address[..address.LastIndexOf(':')]}:{port}", $"{Tcp}{address[..address.IndexOf(':', StringComparison.Ordinal)]}:{port}");
    }

    /// <summary>Holds a reply (of the request last dispatched) until the wake-up's commit.</summary>
    private void Queue(NetMQFrame identity, bool viaReq, byte[] reply)
    {
        var (requestId, clientId) = _dispatcher!.LastIds;
        _outgoing.Add((identity, viaReq, reply, requestId, clientId));
        _outgoingBytes += reply.Length;
    }

    /// <summary>Commits what this wake-up changed, then lets its replies and broadcasts go (or rolls back).</summary>
    private void CompleteWakeUp()
    {
        var dispatcher = _dispatcher!;
        var storage = _storage!;
        var registry = dispatcher.Registry;
        var replies = dispatcher.Cache.TakeUnstored();
        if (registry.Changes.Any || replies.Count > 0)
        {
            try
            {
                registry.CommitTo(storage.Store, replies, dispatcher.Cache.OldestStoredAt);
            }
            catch (StoreWriteException ex)
            {
                RollBack(ex);
                return;
            }
        }
        storage.Sink.Flush((ex, item) => LogBroadcastFailed(ex, item.GetType().Name));
        foreach (var (identity, viaReq, reply, _, _) in _outgoing) Send(identity, viaReq, reply);
        _outgoing.Clear();
        _outgoingBytes = 0;
        foreach (var (done, reply, _, _) in _outgoingElsewhere) done.TrySetResult(reply);
        _outgoingElsewhere.Clear();
        dispatcher.Watches?.Pump(); // after the replies: a Watch's reply goes before its stream
        foreach (var done in _afterCommit) done.TrySetResult();
        _afterCommit.Clear();
    }

    private void RollBack(StoreWriteException failure)
    {
        var dispatcher = _dispatcher!;
        var storage = _storage!;
        storage.Sink.Discard();
        var old = dispatcher.Registry;
        var (registry, cache) = storage.Reload();
        old.Dispose();
        dispatcher.Replace(registry, cache);
        dispatcher.Watches?.DropAll(); // their positions may be past the state as last committed
        dispatcher.StoreUnavailable = true;
        registry.Suspended = true;
        if (old.Cluster is not null) _sequenceGapOwed = true;
        if (!_probe.Enable)
        {
            _storeFailedAt = TimeProvider.System.GetTimestamp();
            _probe.Enable = true;
        }
        LogStoreFailed(failure, storage.Store.Location, _outgoing.Count);
        foreach (var (identity, viaReq, _, requestId, clientId) in _outgoing) Send(identity, viaReq, dispatcher.StorageFailed(requestId, clientId));
        _outgoing.Clear();
        _outgoingBytes = 0;
        foreach (var (done, _, requestId, clientId) in _outgoingElsewhere) done.TrySetResult(dispatcher.StorageFailed(requestId, clientId));
        _outgoingElsewhere.Clear();
        foreach (var done in _afterCommit) done.TrySetException(new UnavailableException(failure.Message, null, failure));
        _afterCommit.Clear();
    }

    /// <summary>While the store refuses writes: tries one small commit; on success serving resumes.</summary>
    private void ProbeStore()
    {
        Guard(() =>
        {
            NotePause();
            var registry = _dispatcher!.Registry;
            try
            {
                registry.Changes.Mark(StoredKind.Meta, StoredMeta.JournalKey);
                registry.CommitTo(_storage!.Store, [], _dispatcher.Cache.OldestStoredAt);
            }
            catch (StoreWriteException)
            {
                return; // still refused; the next probe tries again
            }
            var down = TimeProvider.System.GetElapsedTime(_storeFailedAt);
            _probe.Enable = false;
            _dispatcher.StoreUnavailable = false;
            registry.Suspended = false;
            // Nobody could renew or heartbeat while writes were refused: that time is a pause too.
            registry.ExtendDeadlines((long)down.TotalMilliseconds);
            registry.RunHousekeeping();
            LogStoreRecovered(_storage.Store.Location, (long)down.TotalMilliseconds);
            if (_sequenceGapOwed)
            {
                // Remote changes whose broadcasts were discarded: a gap, announced by a heartbeat at once, sends every
                // follower of the change stream to a snapshot, which holds them (PROTOCOL.md 10.1). Stored and sent
                // with this wake-up's commit; if that fails, the rollback owes the gap again.
                _sequenceGapOwed = false;
                registry.Journal.SkipOne();
                registry.SendHeartbeat();
            }
            CompleteWakeUp();
        });
    }

    private void Send(NetMQFrame identity, bool viaReq, byte[] reply)
    {
        // Never blocks the loop: a reply to a peer over its bounds (section 14) is dropped and counted (the peer's retry
        // is answered from the reply cache); one to a peer that disconnected is dropped (ROUTER semantics, section 1.1).
        try
        {
            if (reply.Length >= PeerBounds.LargeReplyBytes ? SendLarge(identity, viaReq, reply) : SendSmall(identity, viaReq, reply)) return;
        }
        catch (HostUnreachableException)
        {
            return;
        }
        var dropped = Interlocked.Increment(ref _repliesDropped);
        var now = TimeProvider.System.GetTimestamp();
        if (dropped == 1 || TimeProvider.System.GetElapsedTime(_droppedLoggedAt, now) >= TimeSpan.FromSeconds(10))
        {
            _droppedLoggedAt = now;
            LogRepliesDropped(PeerBounds.ReplyHighWatermark, PeerBounds.QueuedReplyBytesPerPeer, dropped);
        }
    }

    private bool SendSmall(NetMQFrame identity, bool viaReq, byte[] reply)
    {
        var outgoing = new NetMQMessage(viaReq ? 3 : 2);
        outgoing.Append(identity);
        if (viaReq) outgoing.AppendEmptyFrame();
        outgoing.Append(reply);
        return _router.TrySendMultipartMessage(outgoing);
    }

    /// <summary>Sends a reply that counts against its peer's queued bytes, or returns false when it would exceed them.</summary>
    private bool SendLarge(NetMQFrame identity, bool viaReq, byte[] reply)
    {
        var queued = QueuedReplyBytes.Instance;
        var peer = Convert.ToHexString(identity.Buffer, 0, identity.MessageSize);
        var ofPeer = queued.Of(peer);
        // One reply always fits an idle peer (replies reach 64 MiB); more must fit the peer's share and the total.
        if (ofPeer > 0 && ofPeer + reply.Length > PeerBounds.QueuedReplyBytesPerPeer) return false;
        if (queued.Total + reply.Length > PeerBounds.QueuedReplyBytesTotal) return false;
        if (!_router.TrySendFrame(TimeSpan.Zero, identity.Buffer, identity.MessageSize, more: true)) return false;
        if (viaReq) _router.SendMoreFrameEmpty();
        var msg = queued.Charge(peer, reply);
        if (((IOutgoingSocket)_router).TrySend(ref msg, TimeSpan.Zero, more: false)) return true;
        msg.Close();
        return false;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Failure in the request loop; the request was dropped")]
    private partial void LogLoopFailure(Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A peer left {Limit} replies or {Bytes} bytes of replies unread: further replies to it are dropped ({Dropped} dropped since start)")]
    private partial void LogRepliesDropped(int limit, long bytes, long dropped);

    [LoggerMessage(Level = LogLevel.Warning, Message = "ZeroMQ held {Held} bytes of received frames, over the bound of {Bound} (a message whose last frame never comes, or many connections filling their queues): closed every connection of the request socket; clients reconnect and retry ({Cuts} since start)")]
    private partial void LogConnectionsCut(long held, long bound, long cuts);

    [LoggerMessage(Level = LogLevel.Information, Message = "Listening on {Endpoint} again {Ms} ms after closing its connections")]
    private partial void LogRebound(string endpoint, long ms);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not listen on {Endpoint} again after closing its connections for 2 s; still trying")]
    private partial void LogRebindFailed(Exception exception, string endpoint);

    [LoggerMessage(Level = LogLevel.Error, Message = "Failure in timer work (reaper, health check or heartbeat)")]
    private partial void LogWorkFailure(Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not broadcast a {Kind}; subscribers will resync")]
    private partial void LogBroadcastFailed(Exception exception, string kind);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The registry did not run for {GapMs} ms (paused or starved): lease expiries and node deadlines moved back by {LostMs} ms")]
    private partial void LogPaused(long gapMs, long lostMs);

    [LoggerMessage(Level = LogLevel.Error, Message = "The store {Location} refused a commit: state rolled back to the last commit, {Requests} request(s) answered UNAVAILABLE, changes refused until it accepts writes again")]
    private partial void LogStoreFailed(Exception exception, string location, int requests);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The store {Location} accepts writes again after {DownMs} ms; serving changes resumes")]
    private partial void LogStoreRecovered(string location, long downMs);
}
