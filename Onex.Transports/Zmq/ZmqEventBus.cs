using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Zmq;

/// <summary>
/// An <see cref="IEventBus"/> over ZeroMQ (NetMQ), for participants in one or many processes on tcp:// or ipc://.
/// </summary>
/// <remarks>
/// <para><b>Topology.</b> The participant that creates the bus (<see cref="HostAsync"/>) also hosts its
/// forwarder: an XSUB socket bound on <see cref="ZmqEventBusOptions.PublishEndpoint"/> and an XPUB socket bound on
/// <see cref="ZmqEventBusOptions.SubscribeEndpoint"/>, pumped by their own poller thread. Every other participant
/// publishes through a PUB socket connected to the XSUB side; every participant receives through a SUB socket connected
/// to the XPUB side. The host's own events skip the XSUB: the forwarder's thread sends them straight on the XPUB (one
/// hop, like a bare PUB), and the host's SUB connects over inproc://. Other participants, in this
/// process or another, join with the two endpoints (<see cref="JoinAsync"/>). Publishers send everything to the forwarder; subscriptions become prefix filters at
/// the XPUB plus an exact pattern match on receipt. Messages are <c>[topic][OnexEvent MessagePack]</c>, except that
/// events of one topic queued back to back leave as one message whose second frame holds them one after another (up to
/// 16 KiB; nothing waits to fill a batch), which makes a burst cost ZeroMQ one message per batch instead of one per
/// event. High-water marks count messages, so past one a whole batch is dropped.</para>
/// <para><b>Handshakes instead of sleeps.</b> Starting a participant publishes probes on a private control topic
/// until its own SUB receives one: this proves its publish path reaches the forwarder (a joined participant's PUB is
/// connected and subscribed to everything) and the forwarder reaches its SUB. Each <see cref="SubscribeAsync"/> sets the pattern's filter, then a fresh probe filter, and probes until
/// that probe comes back; ZeroMQ applies one socket's filters in order, so the pattern's filter is then in place at
/// the forwarder.</para>
/// <para><b>Guarantee</b> (<see cref="DeliveryGuarantee.AtMostOnceOrdered"/>): an event published by a participant
/// after its <see cref="HostAsync"/>/<see cref="JoinAsync"/> returned, and after a subscriber's
/// <see cref="SubscribeAsync"/> returned, is delivered to that subscription at most once, unless it is dropped by a
/// ZeroMQ high-water mark (publisher to forwarder, forwarder to subscriber: <see cref="ZmqSocketOptions"/>), by the
/// subscription's own full mode (counted in <see cref="IEventSubscription.DroppedCount"/>), or lost while a
/// connection is down. Events of one publishing participant reach each subscription in publish order (callers that
/// publish concurrently on one participant get the order in which their calls entered the queue).</para>
/// <para><b>Restarts.</b> ZeroMQ reconnects on its own and re-sends SUB filters on reconnect; the forwarder
/// subscribes every (re)connecting publisher to everything. So when the forwarder goes away and a new host binds the
/// same endpoints, joined participants publish and receive again without any action, after the reconnect interval;
/// what was published in between may be lost (none is delivered twice).</para>
/// <para><b>Threads.</b> NetMQ sockets are not thread-safe, so each socket belongs to one poller thread: a joined
/// participant's PUB, every participant's SUB, and (on the host) the forwarder's, which also sends the host's events.
/// Every public member is thread-safe; <see cref="PublishAsync"/> encodes on the caller's thread and queues to the
/// sending thread, never blocking on the network.</para>
/// <para><b>Backpressure.</b> One receive loop serves all of a participant's subscriptions, so it never pauses for
/// one: a full subscription drops (the newest event by default, as in NATS; a full Wait-mode subscription drops the
/// incoming one) and reports it in <see cref="Health"/>. The publish queue is bounded
/// (<see cref="ZmqEventBusOptions.PublishQueue"/>) and waits by default.</para>
/// <para><b>ipc://.</b> NetMQ implements ipc:// as TCP on 127.0.0.1 at a port derived from a hash of the name, not as
/// a Unix domain socket: it works between NetMQ processes on one machine, not with libzmq's ipc://, and the derived
/// port can collide with a port in use (binding then fails with PORT_UNAVAILABLE). Use the Unix socket backend for
/// real Unix domain sockets.</para>
/// <para><b>Encryption.</b> With <see cref="ZmqSocketOptions.CurveServerKeys"/> on the host, the forwarder's two
/// endpoints are CurveZMQ servers: traffic is encrypted and only participants that set
/// <see cref="ZmqSocketOptions.CurveServerKey"/> to the host's public key can publish or subscribe. A host registered
/// through <see cref="Buses.EventBusFactory"/> advertises that key in its registration's metadata
/// (<c>curveServerKey</c>), and participants joining by name use it (docs/ENCRYPTION.md).</para>
/// </remarks>
public sealed class ZmqEventBus : IEventBus, IEventBusProbe
{
    private readonly ZmqForwarder? _forwarder;
    private readonly ZmqEventPublisher _publisher;
    private readonly ZmqEventSubscriber _subscriber;
    private readonly TimeProvider _timeProvider;
    private ZmqEventBusOptions _options;
    private int _disposed;

    private ZmqEventBus(ZmqEventBusOptions options, ZmqForwarder? forwarder, ZmqEventPublisher publisher, ZmqEventSubscriber subscriber, EventBusHealth health)
    {
        Health = health;
        _options = options;
        _forwarder = forwarder;
        _publisher = publisher;
        _subscriber = subscriber;
        _timeProvider = options.TimeProvider ?? TimeProvider.System;
    }

    /// <summary>The settings this participant runs with; on the host, with the endpoints as bound; on a participant that followed the bus to new endpoints, those.</summary>
    public ZmqEventBusOptions Options => Volatile.Read(ref _options);

    /// <summary>Something that lives and dies with this participant (its registry follower); disposed first.</summary>
    internal IAsyncDisposable? Companion { get; set; }

    /// <summary>
    /// Moves a joined participant to the bus's new endpoints (its host came back elsewhere): the PUB and SUB sockets
    /// connect there, the subscriptions' filters follow, and this completes once a probe came back through the new
    /// path (or the handshake timeout passed; ZeroMQ keeps trying). Connection-state notices report both steps. With
    /// <paramref name="curveServerKey"/> (the host came back with new CURVE keys, endpoints moved or not) both sockets
    /// reconnect encrypting to the new key.
    /// </summary>
    /// <exception cref="InvalidOperationException">This participant hosts the bus.</exception>
    internal async Task MoveToAsync(string publishEndpoint, string subscribeEndpoint, string? curveServerKey, CancellationToken cancellationToken)
    {
        if (IsHost) throw new InvalidOperationException("The host's endpoints are its own; only joined participants move.");
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var from = SubscribeEndpoint;
        var what = from == subscribeEndpoint
            ? $"the bus's host at {from} has a new CURVE key"
            : $"the bus moved from {from} to {subscribeEndpoint}";
        // Reported even when already Disconnected (ZeroMQ's monitor saw the old host go): the move is news.
        Health.ReportConnection(BusConnectionState.Disconnected, $"{what}; rejoining");
        // The new endpoints are in force before the sockets move: the socket monitor's Connected notice, which names
        // the new endpoint, can come on its own thread before MoveToAsync returns, and whoever reads the endpoints on
        // that notice must see where the participant now connects.
        var options = Options with { PublishEndpoint = publishEndpoint, SubscribeEndpoint = subscribeEndpoint };
        if (curveServerKey is not null) options = options with { Socket = options.Socket with { CurveServerKey = curveServerKey } };
        Volatile.Write(ref _options, options);
        await _publisher.MoveToAsync(publishEndpoint, curveServerKey).ConfigureAwait(false);
        await _subscriber.MoveToAsync(subscribeEndpoint, curveServerKey).ConfigureAwait(false);
        await _subscriber.ConfirmPathAsync(cancellationToken).ConfigureAwait(false);
        // Reported even when already Connected: before the move ran on the socket's thread, the old connection's own
        // reconnect may have reached whatever listens on the old port now and set Connected, naming the old endpoint.
        Health.ReportConnection(BusConnectionState.Connected, $"rejoined the bus at {subscribeEndpoint} ({what})");
    }

    /// <inheritdoc/>
    public string Name => Options.Name;

    /// <inheritdoc/>
    public DeliveryGuarantee Guarantee => DeliveryGuarantee.AtMostOnceOrdered;

    /// <inheritdoc/>
    /// <remarks>
    /// A joined participant follows ZeroMQ's socket monitor on its SUB socket: Disconnected when the connection to
    /// the forwarder drops (ZeroMQ reconnects by itself), Connected when it is back. Drops: a full subscription
    /// (<see cref="DropCause.SubscriberQueue"/>; a full Wait-mode subscription too, since one receive loop serves all
    /// subscriptions and must not pause for one), a full publish queue in a drop mode (<see cref="DropCause.PublisherQueue"/>).
    /// </remarks>
    public EventBusHealth Health { get; }

    /// <summary>Events discarded by this participant's full publish queue (drop modes only).</summary>
    public long PublishDroppedCount => _publisher.DroppedCount;

    /// <summary>The forwarder's XSUB endpoint (publishers connect here), as bound; register this with the registry.</summary>
    public string PublishEndpoint => Options.PublishEndpoint;

    /// <summary>The forwarder's XPUB endpoint (subscribers connect here), as bound; register this with the registry.</summary>
    public string SubscribeEndpoint => Options.SubscribeEndpoint;

    /// <summary>True when this participant hosts the forwarder (created with <see cref="HostAsync"/>).</summary>
    public bool IsHost => _forwarder is not null;

    /// <summary>Messages this participant received and dropped as malformed (counted, logged, never fatal).</summary>
    public long MalformedCount => _subscriber.MalformedCount;

    /// <summary>
    /// Creates the bus: binds the forwarder on both endpoints, then starts this participant (its events sent by the
    /// forwarder's thread, its SUB on the forwarder's inproc endpoint) and waits until its own probe has come back.
    /// </summary>
    /// <exception cref="ArgumentException">A setting is missing or out of range.</exception>
    /// <exception cref="LeaseException">An endpoint is in use (code PORT_UNAVAILABLE, naming it).</exception>
    /// <exception cref="UnavailableException">The participant's probe did not come back within the handshake timeout.</exception>
    public static async ValueTask<ZmqEventBus> HostAsync(ZmqEventBusOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        var loggers = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var forwarder = ZmqForwarder.Start(
            options.PublishEndpoint, options.SubscribeEndpoint, options.Socket, options.Name, loggers.CreateLogger<ZmqForwarder>());
        try
        {
            var bound = options with { PublishEndpoint = forwarder.PublishEndpoint, SubscribeEndpoint = forwarder.SubscribeEndpoint };
            var health = new EventBusHealth(BusConnectionState.Connecting, new Onex.Diagnostics.BusTelemetry(options.Name, "zmq"));
            var publisher = forwarder.AttachPublisher(options.Socket, loggers.CreateLogger<ZmqEventPublisher>()).WithQueue(options.PublishQueue, health);
            return await StartParticipantAsync(bound, forwarder, publisher, forwarder.InprocSubscribeEndpoint, health, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            forwarder.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Joins the bus whose forwarder listens on the options' endpoints (in this process or another) and waits until
    /// this participant's probe has come back through it, so its publish and receive paths are live. A host that is
    /// still starting is waited for, up to <see cref="ZmqEventBusOptions.HandshakeTimeout"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A setting is missing or out of range.</exception>
    /// <exception cref="UnavailableException">No forwarder answered within the handshake timeout (code UNAVAILABLE).</exception>
    public static ValueTask<ZmqEventBus> JoinAsync(ZmqEventBusOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        var loggers = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var health = new EventBusHealth(BusConnectionState.Connecting, new Onex.Diagnostics.BusTelemetry(options.Name, "zmq"));
        var publisher = ZmqEventPublisher.ConnectBatching(options.PublishEndpoint, options.Socket, loggers.CreateLogger<ZmqEventPublisher>())
            .WithQueue(options.PublishQueue, health);
        return StartParticipantAsync(options, null, publisher, options.SubscribeEndpoint, health, cancellationToken);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Encodes on the caller's thread and queues for sending; completes without waiting for the network, or, when the
    /// publish queue is full in Wait mode, once there is room (see <see cref="ZmqEventBusOptions.PublishQueue"/>).
    /// </remarks>
    /// <exception cref="ArgumentException">The event's topic is not a concrete topic.</exception>
    /// <exception cref="MessageTooLargeException">The event exceeds <see cref="ZmqSocketOptions.CodecLimits"/> (code TOO_LARGE).</exception>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(evt);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        evt = evt.WithSource(Options.NodeId, _timeProvider);
        var telemetry = Health.Telemetry.StartPublish(ref evt);
        if (!telemetry.IsActive) return _publisher.PublishAsync(evt, cancellationToken);
        ValueTask pending;
        try
        {
            pending = _publisher.PublishAsync(evt, cancellationToken);
        }
        catch (Exception ex)
        {
            telemetry.Fail(ex);
            throw;
        }
        return telemetry.Track(pending);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// Sends a probe through the forwarder and waits for it to come back to this participant (the readiness handshake
    /// again, up to <see cref="ZmqEventBusOptions.HandshakeTimeout"/>): the publish path, the forwarder and the receive
    /// path all answer.
    /// </remarks>
    public async ValueTask<string> ProbeAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var started = _timeProvider.GetTimestamp();
        await _subscriber.ConfirmPathAsync(cancellationToken).ConfigureAwait(false);
        return $"a probe came back through {SubscribeEndpoint} in {_timeProvider.GetElapsedTime(started).TotalMilliseconds:0.#} ms";
    }

    /// <inheritdoc/>
    /// <remarks>Completes once a probe has come back through the new filter (see the class remarks).</remarks>
    /// <exception cref="ArgumentException"><paramref name="pattern"/> is not a valid pattern.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The options' capacity is less than 1.</exception>
    /// <exception cref="UnavailableException">The probe did not come back within the handshake timeout.</exception>
    public ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _subscriber.SubscribeAsync(pattern, options, cancellationToken);
    }

    /// <summary>
    /// Completes this participant's subscriptions (pending reads finish), flushes and closes its sockets and, on the
    /// host, stops the forwarder, which ends the bus for every other participant until a host binds the endpoints
    /// again. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Companion is { } companion) await companion.DisposeAsync().ConfigureAwait(false);
        Health.SetState(BusConnectionState.Closed, "disposed");
        await _subscriber.DisposeAsync().ConfigureAwait(false);
        await _publisher.DisposeAsync().ConfigureAwait(false);
        _forwarder?.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"ZmqEventBus({Name}, node '{Options.NodeId}', {(IsHost ? "host" : "joined")}, {PublishEndpoint} -> {SubscribeEndpoint})";

    /// <summary>Connects a participant's SUB beside its publisher and waits until its own probe comes back through the forwarder.</summary>
    /// <param name="options">The participant's settings, with the bus's endpoints as bound.</param>
    /// <param name="forwarder">The forwarder this participant hosts, if any; disposed with it.</param>
    /// <param name="publisher">The participant's publisher: a PUB connected to the bus, or on the host one attached to the forwarder; disposed with it.</param>
    /// <param name="subscribeVia">Where the SUB connects, likewise.</param>
    /// <param name="health">The participant's health, which its publisher and subscriber report into.</param>
    /// <param name="cancellationToken">Cancels the readiness handshake.</param>
    private static async ValueTask<ZmqEventBus> StartParticipantAsync(
        ZmqEventBusOptions options, ZmqForwarder? forwarder, ZmqEventPublisher publisher, string subscribeVia, EventBusHealth health,
        CancellationToken cancellationToken)
    {
        var loggers = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var logger = loggers.CreateLogger<ZmqEventBus>();
        ZmqEventSubscriber? subscriber = null;
        try
        {
            subscriber = ZmqEventSubscriber.Connect(subscribeVia, new ZmqEventSubscriberOptions
            {
                // The host's SUB reaches its own forwarder over inproc://, which has no handshake to encrypt.
                Socket = forwarder is null ? options.Socket : options.Socket with { CurveServerKey = null },
                ProbePublisher = publisher,
                HandshakeTimeout = options.HandshakeTimeout,
                LoggerFactory = options.LoggerFactory,
                TimeProvider = options.TimeProvider,
                PauseWhenFull = false,
                Health = health,
            });
            await subscriber.ConfirmPathAsync(cancellationToken).ConfigureAwait(false);
            health.SetState(BusConnectionState.Connected, $"connected to {options.SubscribeEndpoint}");
            logger.ParticipantReady(options.NodeId, options.Name, forwarder is null ? "joined" : "host", options.PublishEndpoint, options.SubscribeEndpoint);
            return new ZmqEventBus(options, forwarder, publisher, subscriber, health);
        }
        catch
        {
            if (subscriber is not null) await subscriber.DisposeAsync().ConfigureAwait(false);
            await publisher.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

}
