using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.Bus;
using Onex.Errors;
using Onex.Events;

namespace Onex.Transports.Ipc;

/// <summary>
/// An event bus over a Unix domain socket, for processes of one user on one machine (Linux).
/// </summary>
/// <remarks>
/// <para><b>Topology.</b> One participant hosts the bus (<see cref="HostAsync"/>): it creates
/// <c>&lt;root&gt;/&lt;name&gt;/</c> with mode 0700 (root: <see cref="IpcEventBusOptions.DefaultRootDirectory"/>),
/// takes <c>bus.lock</c>, binds <c>bus.sock</c> and runs a broker. Other participants join by the socket path
/// (<see cref="JoinAsync"/>); each sends SUBSCRIBE/UNSUBSCRIBE and PUBLISH frames, and the broker forwards every
/// event to each participant with a matching subscription, once per participant, and to the host's own
/// subscriptions in-process. The protocol is in <c>Onex.Transports/Ipc/README.md</c>.</para>
/// <para><b>Delivery.</b> At most once, ordered per publisher (<see cref="DeliveryGuarantee.AtMostOnceOrdered"/>).
/// Every subscription's queue applies its own full mode, and a full one never holds up the participant's others. On
/// the host a full Wait-mode subscription holds the publisher back once every other target has the event (as in
/// memory); on a joined participant, whose one reading thread serves all its subscriptions, it drops and counts (as on
/// ZeroMQ). The broker waits for room in its queue towards a participant with a Wait-mode subscription (backpressure to
/// publishers); a participant whose subscriptions all use drop modes never holds it: when its outbound queue at the
/// broker is full its events are dropped and counted in those subscriptions' <see cref="IEventSubscription.DroppedCount"/>.</para>
/// <para><b>Failures.</b> When the host goes away a joined participant reconnects with backoff until the host is back
/// at the same path, then re-subscribes; events published in between are lost, and <see cref="PublishAsync"/> throws
/// <see cref="UnavailableException"/> while disconnected (those already queued for the host when the connection broke
/// are counted as <see cref="DropCause.Transport"/>). A participant that joined by name through the registry follows
/// the bus when its host comes back at another path (<c>bus.updated</c>; <c>EventBusOptions.FollowRegistry</c>). Disposing the host removes its socket, lock and directory;
/// a host that crashed leaves a stale socket, which the next host detects (nobody answers) and replaces.</para>
/// </remarks>
public sealed class IpcEventBus : IEventBus, IEventBusProbe
{
    private const string EndpointScheme = "unix://";

    private readonly IpcLocalSubscriptions _local;
    private readonly OnexEventCodec _codec;
    private readonly IpcEventBusOptions _options;
    private readonly ILogger _logger;
    private readonly IpcBroker? _broker;
    private readonly IpcBusDirectory? _directory;
    private readonly IpcBrokerClient? _client;
    private readonly string _hostSocketPath;
    private int _nextSubscriptionId;
    private int _disposed;

    private IpcEventBus(string name, string socketPath, IpcEventBusOptions options, OnexEventCodec codec, ILogger logger,
        IpcLocalSubscriptions local, IpcBroker? broker, IpcBusDirectory? directory, IpcBrokerClient? client)
    {
        _local = local;
        Name = name;
        _hostSocketPath = socketPath;
        _options = options;
        _codec = codec;
        _logger = logger;
        _broker = broker;
        _directory = directory;
        _client = client;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    /// <remarks>
    /// A joined participant is Disconnected from losing its host until it has reconnected and re-sent its
    /// subscriptions. Drops the host reports (its queue towards this participant was full) count as
    /// <see cref="DropCause.Transport"/>.
    /// </remarks>
    public EventBusHealth Health => _local.Health;

    /// <inheritdoc/>
    public DeliveryGuarantee Guarantee => DeliveryGuarantee.AtMostOnceOrdered;

    /// <summary>True for the participant that hosts the bus (and runs its broker).</summary>
    public bool IsHost => _broker is not null;

    /// <summary>The absolute path of the bus socket (a participant's changes when it follows its host to another path).</summary>
    public string SocketPath => _client?.SocketPath ?? _hostSocketPath;

    /// <summary>Disposed with the bus: the registry follower of a participant that joined by name.</summary>
    internal IAsyncDisposable? Companion { get; set; }

    /// <summary>
    /// Moves a joined participant to the host now at <paramref name="endpoint"/> (a <c>unix://</c> endpoint): it
    /// reports Disconnected, drops its connection and reconnects there, re-sending its subscriptions; Connected follows
    /// once the host answered.
    /// </summary>
    /// <exception cref="ArgumentException">Not a <c>unix://</c> endpoint with an absolute path.</exception>
    /// <exception cref="InvalidOperationException">This is the host.</exception>
    internal Task MoveToAsync(string endpoint, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var client = _client ?? throw new InvalidOperationException("The host of a bus does not move; its participants do.");
        if (!endpoint.StartsWith(EndpointScheme, StringComparison.Ordinal) || !Path.IsPathFullyQualified(SocketPathFromEndpoint(endpoint)))
            throw new ArgumentException($"An ipc bus's endpoint is unix:// followed by an absolute path; the registry lists '{endpoint}'.", nameof(endpoint));
        var from = SocketPath;
        var to = SocketPathFromEndpoint(endpoint);
        // Reported even when already Disconnected (the participant lost the old host first): the move is news.
        Health.ReportConnection(BusConnectionState.Disconnected, $"the bus moved from {from} to {to}; rejoining");
        client.MoveTo(to);
        return Task.CompletedTask;
    }

    /// <summary>The endpoint to register and to join by: <c>unix://</c> followed by the absolute socket path.</summary>
    public string Endpoint => EndpointScheme + SocketPath;

    /// <summary>True while events can flow: always for a live host; for a participant, while connected to the host.</summary>
    public bool IsConnected => Volatile.Read(ref _disposed) == 0 && (_client?.IsConnected ?? true);

    /// <summary>
    /// Hosts the bus <see cref="IpcEventBusOptions.Name"/> under <see cref="IpcEventBusOptions.RootDirectory"/>.
    /// </summary>
    /// <exception cref="IpcBusSetupException">
    /// The root or bus directory is not private to this user, the bus is already hosted by a live process, a
    /// non-socket file sits at the socket path, or the path is too long for a socket address.
    /// </exception>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="PlatformNotSupportedException">Not on Linux.</exception>
    public static async ValueTask<IpcEventBus> HostAsync(IpcEventBusOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsLinux()) throw NotLinux();
        options ??= IpcEventBusOptions.Default;
        options.Validate();
        var logger = CreateLogger(options);
        var root = options.RootDirectory ?? IpcEventBusOptions.DefaultRootDirectory;
        var directory = await IpcBusDirectory.ClaimAsync(root, options.Name, logger, cancellationToken).ConfigureAwait(false);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(directory.SocketPath));
            directory.SocketBound();
            listener.Listen(512);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            listener.Dispose();
            directory.Dispose();
            throw new IpcBusSetupException(IpcSetupFailure.AlreadyHosted,
                $"'{directory.SocketPath}' was bound by another process while this one held the lock; it is already hosted.",
                directory.SocketPath, ex);
        }
        catch
        {
            listener.Dispose();
            directory.Dispose();
            throw;
        }
        var codec = CreateCodec(options);
        var local = new IpcLocalSubscriptions(new Onex.Diagnostics.BusTelemetry(options.Name, "ipc"));
        var broker = IpcBroker.Start(listener, options.Name, options, codec, local, logger);
        IpcLog.Hosting(logger, options.Name, directory.SocketPath);
        return new IpcEventBus(options.Name, directory.SocketPath, options, codec, logger, local, broker, directory, null);
    }

    /// <summary>
    /// Joins a hosted bus: at <see cref="IpcEventBusOptions.SocketPath"/> when set (a path or a <c>unix://</c>
    /// endpoint, all another process needs), else at <c>&lt;RootDirectory&gt;/&lt;Name&gt;/bus.sock</c>. The joined
    /// bus's <see cref="Name"/> is the one the host announces.
    /// </summary>
    /// <exception cref="UnavailableException">No host answers at the socket path (one attempt, no retry).</exception>
    /// <exception cref="IpcBusSetupException">The socket's directory is not private to this user, or the path is too long.</exception>
    /// <exception cref="UnsupportedVersionException">The host speaks another protocol version.</exception>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="PlatformNotSupportedException">Not on Linux.</exception>
    public static async ValueTask<IpcEventBus> JoinAsync(IpcEventBusOptions? options = null, CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsLinux()) throw NotLinux();
        options ??= IpcEventBusOptions.Default;
        options.Validate();
        var logger = CreateLogger(options);
        var socketPath = options.SocketPath is not null
            ? Path.GetFullPath(SocketPathFromEndpoint(options.SocketPath))
            : Path.Combine(Path.GetFullPath(options.RootDirectory ?? IpcEventBusOptions.DefaultRootDirectory), options.Name, IpcBusDirectory.SocketFileName);
        var codec = CreateCodec(options);
        var local = new IpcLocalSubscriptions(new Onex.Diagnostics.BusTelemetry(options.Name, "ipc"), waitWhenFull: false);
        var client = await IpcBrokerClient.ConnectAsync(socketPath, options, codec, local, logger, cancellationToken).ConfigureAwait(false);
        if (client.BusName != options.Name) local.Health.UseTelemetry(new Onex.Diagnostics.BusTelemetry(client.BusName, "ipc"));
        return new IpcEventBus(client.BusName, socketPath, options, codec, logger, local, null, null, client);
    }

    /// <inheritdoc/>
    /// <remarks>Checks that the bus's socket file is still there (a host that went away removes it) and that this participant is connected.</remarks>
    public ValueTask<string> ProbeAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancellationToken.ThrowIfCancellationRequested();
        var details = new Dictionary<string, string> { ["socket"] = SocketPath };
        if (!File.Exists(SocketPath))
            throw new UnavailableException($"Bus '{Name}': the socket file {SocketPath} is gone (its host stopped).", details);
        if (Health.State != BusConnectionState.Connected)
            throw new UnavailableException($"Bus '{Name}': not connected to {SocketPath} ({Health.State}).", details);
        return new ValueTask<string>($"socket file {SocketPath} is present and connected");
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The event's topic is not a concrete topic.</exception>
    /// <exception cref="MessageTooLargeException">The event exceeds the payload or frame limit.</exception>
    /// <exception cref="UnavailableException">A participant lost its host and is reconnecting; the event was not sent.</exception>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(evt);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        Topic.EnsureValid(evt.Topic);
        evt = evt.WithSource(_options.NodeId, _options.TimeProvider ?? TimeProvider.System);
        var telemetry = _local.Health.Telemetry.StartPublish(ref evt);
        if (!telemetry.IsActive) return Send(evt, cancellationToken);
        ValueTask pending;
        try
        {
            pending = Send(evt, cancellationToken);
        }
        catch (Exception ex)
        {
            telemetry.Fail(ex);
            throw;
        }
        return telemetry.Track(pending);
    }

    private ValueTask Send(OnexEvent evt, CancellationToken cancellationToken)
    {
        if (_client is not null) return _client.PublishAsync(evt, cancellationToken);
        var frame = IpcFrames.EncodeEvent(IpcFrameType.Event, evt, _codec, _options.MaxFrameBytes);
        return _broker!.PublishAsync(evt, frame, cancellationToken);
    }

    /// <inheritdoc/>
    /// <remarks>
    /// On a participant this completes when the host acknowledged the subscription. If the host is lost while
    /// waiting, the wait continues across the reconnect; cancel it with <paramref name="cancellationToken"/>.
    /// </remarks>
    /// <exception cref="ArgumentException">The pattern or an option is invalid.</exception>
    /// <exception cref="UnavailableException">A participant is not connected to its host.</exception>
    /// <exception cref="OnexException">
    /// <see cref="ErrorCodes.InvalidArgument"/>: a participant already holds 4096 subscriptions (the per-connection limit).
    /// </exception>
    public async ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var subscription = new IpcSubscription((uint)Interlocked.Increment(ref _nextSubscriptionId), pattern, options, UnsubscribeAsync, _local.Health);
        var limit = _client is null ? int.MaxValue : IpcFrames.MaxSubscriptionsPerConnection;
        if (!_local.TryAdd(subscription, limit)) throw new ObjectDisposedException(nameof(IpcEventBus));
        if (_client is null) return subscription;
        try
        {
            await _client.SubscribeAsync(subscription, cancellationToken).ConfigureAwait(false);
            return subscription;
        }
        catch
        {
            _local.Remove(subscription);
            _client.Unsubscribe(subscription.Id);
            subscription.Channel.TryComplete();
            throw;
        }
    }

    /// <summary>
    /// Leaves the bus. A host stops its broker (participants start reconnecting), removes its socket, lock file and
    /// bus directory; a participant sends what it already published (bounded wait) and disconnects. Pending reads of
    /// every subscription complete after the queued events.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Companion is { } companion) await companion.DisposeAsync().ConfigureAwait(false);
        if (_client is not null) await _client.DisposeAsync().ConfigureAwait(false);
        if (_broker is not null) await _broker.DisposeAsync().ConfigureAwait(false);
        _local.CompleteAll();
        _local.Health.SetState(BusConnectionState.Closed, "disposed");
        if (_directory is not null)
        {
            _directory.Dispose();
            IpcLog.HostStopped(_logger, Name, SocketPath);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"IpcEventBus({Name}, {(IsHost ? "host" : "participant")}, {Endpoint})";

    /// <summary>The socket path in <paramref name="endpointOrPath"/>: a <c>unix://</c> endpoint or a plain path.</summary>
    internal static string SocketPathFromEndpoint(string endpointOrPath) =>
        endpointOrPath.StartsWith(EndpointScheme, StringComparison.Ordinal) ? endpointOrPath[EndpointScheme.Length..] : endpointOrPath;

    private ValueTask UnsubscribeAsync(IpcSubscription subscription)
    {
        if (_local.Remove(subscription)) _client?.Unsubscribe(subscription.Id);
        return default;
    }

    private static ILogger CreateLogger(IpcEventBusOptions options) =>
        options.LoggerFactory?.CreateLogger<IpcEventBus>() ?? NullLogger<IpcEventBus>.Instance;

    private static OnexEventCodec CreateCodec(IpcEventBusOptions options) => new(new EventCodecLimits
    {
        MaxFrameBytes = options.MaxFrameBytes - 1,
        MaxPayloadBytes = Math.Min(EventCodecLimits.Default.MaxPayloadBytes, options.MaxFrameBytes - 1),
    });

    private static PlatformNotSupportedException NotLinux() =>
        new("The Unix-socket bus runs on Linux only (it relies on statx, flock and 0700 directories).");
}
