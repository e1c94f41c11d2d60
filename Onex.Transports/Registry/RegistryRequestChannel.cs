using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Monitoring;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Protocol;
using Onex.Transports.Zmq;

namespace Onex.Transports.Registry;

/// <summary>
/// One DEALER connected to the registry's ROUTER, owned by its own poller thread. Callers on any thread hand
/// frames to the poller through a queue and await the reply with the same request id, so many requests can be
/// in flight at once. One attempt per call: retries are the caller's business (<see cref="RegistryClient"/>).
/// </summary>
internal sealed class RegistryRequestChannel : IRegistryRequestTransport, IDisposable
{
    private readonly DealerSocket _socket;
    // Frames to send wait in _outbox; the poller is woken through _wakeUp with at most one token at a time, so callers
    // do not each go through a NetMQ socket (and its lock) per frame, and one wake-up sends every frame queued by then.
    private readonly ConcurrentQueue<byte[]> _outbox = new();
    private readonly NetMQQueue<bool> _wakeUp = new();
    private readonly NetMQPoller _poller;
    private readonly ConcurrentDictionary<string, PendingReply> _pending = new(StringComparer.Ordinal);
    private readonly ReplyDeadlines _deadlines;
    private readonly ILogger _logger;
    private readonly List<byte[]> _frames = new(2); // the poller thread's receive buffer
    private readonly NetMQMonitor _monitor;
    private int _dropsWithoutReply;
    private int _wakeUpPending;
    private int _disposed;

    /// <param name="endpoint">The registry's ROUTER endpoint.</param>
    /// <param name="socketOptions">Settings for the DEALER.</param>
    /// <param name="timeout">How long each attempt waits for its reply.</param>
    /// <param name="time">The clock timeouts are kept by.</param>
    /// <param name="logger">Where undeliverable and unmatched frames are reported.</param>
    public RegistryRequestChannel(string endpoint, ZmqSocketOptions socketOptions, TimeSpan timeout, TimeProvider time, ILogger logger)
    {
        Endpoint = endpoint;
        _logger = logger;
        _socket = new DealerSocket();
        NetMQMonitor? monitor = null;
        try
        {
            socketOptions.ApplyTo(_socket);
            _socket.Options.MaxMsgSize = RegistryCodec.MaxReplyFrameBytes + 1024; // replies may exceed the 1 MiB request limit (PROTOCOL.md 2.3)
            // Connections the peer closes before any reply are what a failed ZeroMQ handshake looks like from here (a
            // CURVE registry and a client without its key, or the other way round): counted to explain a timeout.
            monitor = new NetMQMonitor(_socket, $"inproc://onex-registry-client-monitor-{Guid.NewGuid():N}", SocketEvents.Disconnected);
            _socket.Connect(endpoint);
        }
        catch
        {
            monitor?.Dispose();
            _socket.Dispose();
            _wakeUp.Dispose();
            throw;
        }
        _deadlines = new ReplyDeadlines(timeout, time, TimeOut);
        _socket.ReceiveReady += (_, _) => ReceiveReplies();
        _wakeUp.ReceiveReady += (_, _) => SendQueued();
        _poller = new NetMQPoller { _socket, _wakeUp };
        _monitor = monitor;
        _monitor.Disconnected += (_, _) => Interlocked.Increment(ref _dropsWithoutReply);
        _monitor.AttachToPoller(_poller);
        new Thread(RunPoller) { IsBackground = true, Name = $"onex-registry-client {endpoint}" }.Start();
    }

    private void RunPoller()
    {
        try
        {
            _poller.Run();
        }
        catch (TerminatingException)
        {
            // NetMQConfig.Cleanup ran while this client was still open (a process exiting with a dispose it gave up
            // waiting for): the channel is finished, and its requests time out. On NetMQ's own poller thread this
            // exception was unhandled and crashed the exiting process (`onex ports lease` after a lost lease).
        }
    }

    /// <summary>The ROUTER endpoint this channel is connected to.</summary>
    public string Endpoint { get; }

    /// <summary>
    /// Connections the registry closed since the last reply arrived (none while it answers). Above zero with no reply
    /// at all: the ZeroMQ handshake fails, which is what a mismatch of CURVE settings looks like.
    /// </summary>
    public int DropsWithoutReply => Volatile.Read(ref _dropsWithoutReply);

    /// <summary>Whether any reply has arrived on this channel.</summary>
    public bool EverAnswered { get; private set; }

    /// <summary>Requests awaiting a reply.</summary>
    public int InFlight => _pending.Count;

    /// <summary>Test seam: when set and returning false for a reply, the reply is dropped as if lost on the wire.</summary>
    public Func<RegistryEnvelope, bool>? ReplyFilter { get; set; }

    /// <summary>
    /// Sends <paramref name="frame"/> (which carries <paramref name="requestId"/>) and waits up to the channel's
    /// timeout for the reply. A reply that arrives late for an earlier attempt with the same request id also completes
    /// this one, since retries of one request share its id. Throws <see cref="TimeoutException"/> when nothing arrived
    /// in time.
    /// </summary>
    public Task<RegistryEnvelope> ExchangeAsync(string requestId, byte[] frame, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var reply = _pending.GetOrAdd(requestId, static id => new PendingReply(id));
        if (reply.Task.IsCompleted) return reply.Task;
        _deadlines.Track(reply);
        _outbox.Enqueue(frame);
        if (Interlocked.Exchange(ref _wakeUpPending, 1) == 0) _wakeUp.Enqueue(true);
        return cancellationToken.CanBeCanceled ? WaitAsync(reply, cancellationToken) : reply.Task;
    }

    /// <summary>Forgets <paramref name="requestId"/> once its caller is done with it (answered, failed or given up).</summary>
    public void Complete(string requestId)
    {
        if (_pending.TryRemove(requestId, out var reply)) _deadlines.Untrack(reply);
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _poller.Stop();
        try
        {
            _monitor.DetachFromPoller();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            // The poller is stopped; the monitor's socket goes with it below.
        }
        _monitor.Dispose();
        _poller.Dispose();
        _wakeUp.Dispose();
        _socket.Dispose();
        _deadlines.Dispose();
        foreach (var (_, pending) in _pending)
            pending.TrySetException(new ObjectDisposedException(nameof(RegistryClient), "The registry client was disposed while the request was in flight."));
        _pending.Clear();
    }

    /// <summary>
    /// The attempt's wait with cancellation: a cancelled wait ends the attempt (the caller gives the request up), while
    /// the reply slot stays for <see cref="Complete"/>, as <c>Task.WaitAsync(cancellationToken)</c> did.
    /// </summary>
    private async Task<RegistryEnvelope> WaitAsync(PendingReply reply, CancellationToken cancellationToken)
    {
        try
        {
            return await reply.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _deadlines.Untrack(reply);
            throw;
        }
    }

    /// <summary>
    /// An attempt ran out of time: it fails with <see cref="TimeoutException"/> and a fresh slot takes its place under the
    /// same request id, so that a late reply still completes the next attempt (or is there before it sends).
    /// </summary>
    private void TimeOut(PendingReply expired)
    {
        if (expired.Task.IsCompleted) return;
        _pending.TryUpdate(expired.RequestId, new PendingReply(expired.RequestId), expired);
        expired.TrySetException(new TimeoutException());
    }

    private void SendQueued()
    {
        while (_wakeUp.TryDequeue(out _, TimeSpan.Zero)) { }
        // Re-armed before draining: a frame queued after this point either is drained below or posts a new token.
        Interlocked.Exchange(ref _wakeUpPending, 0);
        while (_outbox.TryDequeue(out var frame))
        {
            // Never block the poller thread: past the high-water mark the request is dropped here and its
            // attempt times out, which the caller's retry policy handles like any lost frame.
            if (!_socket.TrySendFrame(TimeSpan.Zero, frame))
                RegistryClientLog.SendQueueFull(_logger, Endpoint);
        }
    }

    private void ReceiveReplies()
    {
        var frames = _frames;
        while (_socket.TryReceiveMultipartBytes(TimeSpan.Zero, ref frames, 2))
        {
            // A DEALER reply is one frame; a registry that answers REQ-style adds an empty delimiter first.
            var frame = frames[^1];
            if (_dropsWithoutReply != 0) Volatile.Write(ref _dropsWithoutReply, 0);
            EverAnswered = true;
            RegistryEnvelope envelope;
            try
            {
                envelope = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
            }
            catch (OnexException ex)
            {
                RegistryClientLog.UndecodableReply(_logger, Endpoint, ex.Code, ex.Message);
                continue;
            }
            if (ReplyFilter is { } filter && !filter(envelope))
                continue;
            if (_pending.TryGetValue(envelope.RequestId, out var pending))
            {
                _deadlines.Untrack(pending);
                pending.TrySetResult(envelope);
            }
            else
            {
                RegistryClientLog.UnmatchedReply(_logger, envelope.RequestId, envelope.MessageType);
            }
        }
    }
}
