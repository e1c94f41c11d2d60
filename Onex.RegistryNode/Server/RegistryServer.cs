using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Zmq;

namespace Onex.RegistryNode.Server;

/// <summary>
/// The ROUTER loop. One <see cref="NetMQPoller"/> thread owns the socket and the whole <see cref="RegistryState"/>:
/// requests are handled as they arrive, and timer work arrives through a <see cref="NetMQQueue{T}"/>, so the
/// state needs no locks. Frames: a DEALER sends <c>[envelope]</c>, a REQ sends <c>[empty][envelope]</c>; the
/// ROUTER sees them behind the peer identity and the reply goes back with the same framing.
/// </summary>
internal sealed partial class RegistryServer : IDisposable
{
    // Messages handled per wake-up before the poller looks at its other sources (timers, work queue).
    private const int BatchSize = 256;

    private readonly RouterSocket _router;
    private readonly NetMQQueue<Action> _work = new();
    private readonly NetMQPoller _poller;
    private readonly ILogger _logger;
    private RequestDispatcher? _dispatcher;
    private int _disposed;

    private RegistryServer(RouterSocket router, string endpoint, ILogger logger)
    {
        _router = router;
        _logger = logger;
        Endpoint = endpoint;
        _router.ReceiveReady += (_, _) => ReceiveBatch();
        _work.ReceiveReady += (_, _) => RunQueuedWork();
        _poller = new NetMQPoller { _router, _work };
    }

    /// <summary>The endpoint bound (with the OS-chosen port for <c>:0</c>).</summary>
    public string Endpoint { get; }

    /// <summary>Binds the ROUTER socket. Throws <see cref="LeaseException"/> PORT_UNAVAILABLE, naming the endpoint, when it is taken.</summary>
    public static RegistryServer Bind(RegistryNodeOptions options, ILogger logger)
    {
        var router = new RouterSocket();
        try
        {
            router.Options.MaxMsgSize = options.MaxReceiveBytes;
            router.Options.ReceiveHighWatermark = 100_000;
            router.Options.SendHighWatermark = 100_000;
            router.Options.Linger = TimeSpan.FromMilliseconds(500);
            ZmqEndpoints.Bind(router, options.Endpoint);
            return new RegistryServer(router, ZmqEndpoints.Resolved(router, options.Endpoint), logger);
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

    /// <summary>Runs <paramref name="action"/> on the registry thread and waits for it.</summary>
    public Task InvokeAsync(Action action)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                action();
                done.SetResult();
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        });
        return done.Task;
    }

    /// <summary>Starts serving with <paramref name="dispatcher"/> on the poller thread.</summary>
    public void Start(RequestDispatcher dispatcher)
    {
        _dispatcher = dispatcher;
        _poller.RunAsync("onex-registry", isBackgroundThread: true);
    }

    /// <summary>Stops the poller; the socket closes (pending replies linger briefly).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_poller.IsRunning) _poller.Stop();
        _poller.Dispose();
        _work.Dispose();
        _router.Dispose();
    }

    private void ReceiveBatch()
    {
        var message = new NetMQMessage();
        for (var i = 0; i < BatchSize; i++)
        {
            if (!_router.TryReceiveMultipartMessage(TimeSpan.Zero, ref message)) return;
            try
            {
                Answer(message);
            }
            catch (Exception ex)
            {
                // Dispatch never throws; this guards the framing code so the loop survives anything.
                LogLoopFailure(ex);
            }
            message.Clear();
        }
    }

    private void Answer(NetMQMessage message)
    {
        var identity = message[0];
        // [identity][envelope] from a DEALER; [identity][empty][envelope] from a REQ. Anything else is bad framing,
        // answered MALFORMED without looking inside, mirroring the framing (PROTOCOL.md 1.1).
        var delimited = message.FrameCount >= 2 && message[1].IsEmpty;
        byte[] reply;
        if (message.FrameCount == 2 && !delimited)
        {
            reply = _dispatcher!.Dispatch(message[1].Buffer.AsMemory(0, message[1].MessageSize));
        }
        else if (message.FrameCount == 3 && delimited && !message[2].IsEmpty)
        {
            reply = _dispatcher!.Dispatch(message[2].Buffer.AsMemory(0, message[2].MessageSize));
        }
        else
        {
            var frames = message.FrameCount - 1;
            reply = _dispatcher!.Fail("", "", ErrorCodes.Malformed,
                $"A request is one non-empty frame, optionally after an empty delimiter frame; got {frames} frame(s).",
                new Dictionary<string, string> { ["reason"] = "frames", ["frames"] = frames.ToString() });
        }

        var viaReq = delimited;
        var outgoing = new NetMQMessage(viaReq ? 3 : 2);
        outgoing.Append(identity);
        if (viaReq) outgoing.AppendEmptyFrame();
        outgoing.Append(reply);
        // ROUTER drops a reply to a peer that is gone or over its high-water mark rather than block the loop.
        _router.TrySendMultipartMessage(outgoing);
    }

    private void RunQueuedWork()
    {
        while (_work.TryDequeue(out var action, TimeSpan.Zero))
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
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Failure in the request loop; the request was dropped")]
    private partial void LogLoopFailure(Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Failure in timer work (reaper, health check or heartbeat)")]
    private partial void LogWorkFailure(Exception exception);
}
