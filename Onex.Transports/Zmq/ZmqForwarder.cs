using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Sockets;

namespace Onex.Transports.Zmq;

/// <summary>
/// The hub of a ZeroMQ bus: an XSUB socket that every participant's PUB connects to and an XPUB socket that every
/// participant's SUB connects to, with a pump on its own poller thread copying messages from the first to the second.
/// </summary>
/// <remarks>
/// <para>The XSUB subscribes to everything, once, and does not pass subscribers' filters upstream. Publishers
/// therefore send every event to the forwarder and filtering happens in exactly one place, the XPUB. That removes
/// the publisher-side slow joiner: a publisher whose connection is up (proved by its own probe) has nothing left to
/// learn before its events reach a subscriber that has confirmed its own filter at the XPUB.</para>
/// <para>The hosting participant publishes through <see cref="AttachPublisher"/>: its queue is drained by this
/// forwarder's thread straight into the XPUB, one hop like a bare PUB socket. Its SUB connects to the XPUB's
/// private inproc:// endpoint: same forwarder, same filtering, no TCP.</para>
/// <para>Subscription messages the XPUB reports are read (so they do not pile up) and logged at Debug level.</para>
/// </remarks>
internal sealed class ZmqForwarder : IDisposable
{
    // Messages forwarded per wake-up before the poller looks at its other sockets again.
    private const int ForwardBatch = 4096;
    private static readonly TimeSpan ListenerCloseTimeout = TimeSpan.FromSeconds(2);

    private readonly XSubscriberSocket _xsub;
    private readonly XPublisherSocket _xpub;
    private readonly NetMQPoller _poller;
    private readonly ILogger _logger;
    private readonly string _busName;
    private Msg _frame;
    private long _forwarded;
    private int _disposed;

    private ZmqForwarder(
        XSubscriberSocket xsub, XPublisherSocket xpub, string publishEndpoint, string subscribeEndpoint, string inproc, string busName, ILogger logger)
    {
        _xsub = xsub;
        _xpub = xpub;
        _busName = busName;
        _logger = logger;
        PublishEndpoint = publishEndpoint;
        SubscribeEndpoint = subscribeEndpoint;
        InprocSubscribeEndpoint = inproc;
        _frame = new Msg();
        _frame.InitEmpty();
        _xsub.ReceiveReady += (_, _) => Forward();
        _xpub.ReceiveReady += (_, _) => ReadSubscriptions();
        _poller = new NetMQPoller { _xsub, _xpub };
        _poller.RunAsync($"onex-fwd {busName}", isBackgroundThread: true);
    }

    /// <summary>The XSUB endpoint as bound (publishers connect here).</summary>
    public string PublishEndpoint { get; }

    /// <summary>The XPUB endpoint as bound (subscribers connect here).</summary>
    public string SubscribeEndpoint { get; }

    /// <summary>The XPUB side's inproc:// endpoint, for subscribers in this process.</summary>
    public string InprocSubscribeEndpoint { get; }

    /// <summary>Messages forwarded so far.</summary>
    public long ForwardedCount => Interlocked.Read(ref _forwarded);

    /// <summary>
    /// Binds both endpoints and starts forwarding. Throws <see cref="Errors.LeaseException"/> with code
    /// PORT_UNAVAILABLE, naming the endpoint, when either address is in use.
    /// </summary>
    public static ZmqForwarder Start(string publishEndpoint, string subscribeEndpoint, ZmqSocketOptions options, string busName, ILogger logger)
    {
        var xsub = new XSubscriberSocket();
        var xpub = new XPublisherSocket();
        try
        {
            options.ApplyTo(xsub, binds: true);
            options.ApplyTo(xpub, binds: true);
            ZmqEndpoints.Bind(xsub, publishEndpoint);
            var boundPublish = ZmqEndpoints.Resolved(xsub, publishEndpoint);
            ZmqEndpoints.Bind(xpub, subscribeEndpoint);
            var boundSubscribe = ZmqEndpoints.Resolved(xpub, subscribeEndpoint);
            // Subscribe to everything upstream; XSUB remembers it and sends it to every publisher that connects.
            xsub.SendFrame([1]);
            var inproc = $"inproc://onex-fwd-{Guid.NewGuid():N}";
            xpub.Bind(inproc);
            var forwarder = new ZmqForwarder(xsub, xpub, boundPublish, boundSubscribe, inproc, busName, logger);
            logger.ForwarderStarted(busName, boundPublish, boundSubscribe);
            return forwarder;
        }
        catch
        {
            xsub.Dispose();
            xpub.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A publisher for the hosting participant whose events this forwarder's thread sends straight on the XPUB, in
    /// the order they were queued, interleaved whole with the events it forwards. Dispose it before the forwarder.
    /// </summary>
    public ZmqEventPublisher AttachPublisher(ZmqSocketOptions options, ILogger logger) =>
        ZmqEventPublisher.Attach(_xpub, _poller, SubscribeEndpoint, options, logger);

    /// <summary>
    /// Stops forwarding and closes both sockets; connected participants start reconnecting. Returns once both
    /// listening sockets are closed, so a new forwarder can bind the same endpoints right away.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _poller.Stop();
        _poller.Dispose();
        CloseListener(_xsub, PublishEndpoint);
        CloseListener(_xpub, SubscribeEndpoint);
        _xsub.Dispose();
        _xpub.Dispose();
        _frame.Close();
        _logger.ForwarderStopped(_busName, ForwardedCount);
    }

    // NetMQ closes a listener on its I/O thread after the socket is disposed, so the port would still be taken for a
    // moment; unbinding under a monitor and waiting for its Closed event makes the release deterministic.
    private void CloseListener(NetMQSocket socket, string endpoint)
    {
        var monitorEndpoint = $"inproc://onex-fwd-closed-{Guid.NewGuid():N}";
        socket.Monitor(monitorEndpoint, SocketEvents.Closed | SocketEvents.CloseFailed);
        using var events = new PairSocket();
        events.Options.Linger = TimeSpan.Zero;
        events.Connect(monitorEndpoint);
        socket.Unbind(endpoint);
        if (!events.TryReceiveFrameBytes(ListenerCloseTimeout, out _))
            _logger.ListenerCloseUnconfirmed(_busName, endpoint, ListenerCloseTimeout.TotalMilliseconds);
    }

    private void Forward()
    {
        try
        {
            var forwarded = 0;
            while (forwarded < ForwardBatch && _xsub.TryReceive(ref _frame, TimeSpan.Zero))
            {
                // Multipart messages arrive whole, so the remaining frames are already here.
                var more = _frame.HasMore;
                _xpub.TrySend(ref _frame, TimeSpan.Zero, more);
                while (more)
                {
                    _xsub.TryReceive(ref _frame, SendReceiveConstants.InfiniteTimeout);
                    more = _frame.HasMore;
                    _xpub.TrySend(ref _frame, TimeSpan.Zero, more);
                }
                forwarded++;
            }
            Interlocked.Add(ref _forwarded, forwarded);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.ForwarderFailed(_busName, ex);
        }
    }

    private void ReadSubscriptions()
    {
        try
        {
            while (_xpub.TryReceive(ref _frame, TimeSpan.Zero))
            {
                if (_logger.IsEnabled(LogLevel.Debug) && _frame.Size > 0)
                {
                    var change = _frame[0] == 1 ? "added" : "removed";
                    _logger.ForwarderSubscription(_busName, change, _frame.GetString(System.Text.Encoding.ASCII, 1, _frame.Size - 1));
                }
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.ForwarderFailed(_busName, ex);
        }
    }
}
