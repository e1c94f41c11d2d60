using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.Bus;
using Onex.Errors;
using Onex.InMemory;
using Onex.Protocol;
using Onex.Transports.Ipc;
using Onex.Transports.JetStream;
using Onex.Transports.Registry;
using Onex.Transports.Zmq;

namespace Onex.Transports.Buses;

/// <summary>
/// Creates a bus of the configured backend. There is no fallback: an unknown backend is an
/// <see cref="ArgumentException"/> and an unreachable one an <see cref="UnavailableException"/>, each naming the
/// backend and the reason. With a <see cref="EventBusOptions.Registry"/>, a hosting participant takes its ports
/// from the registry, registers the bus and deregisters it (and releases the ports) when disposed.
/// </summary>
public static partial class EventBusFactory
{
    /// <summary>The backends this factory knows.</summary>
    public static IReadOnlyList<string> Backends { get; } = [BusKinds.Memory, BusKinds.Zmq, BusKinds.Ipc, BusKinds.JetStream];

    /// <summary>Creates (or joins) the bus that <paramref name="options"/> describes.</summary>
    public static async ValueTask<IEventBus> CreateAsync(EventBusOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Backends.Contains(options.Backend))
            throw new ArgumentException(
                $"Unknown bus backend '{options.Backend}' (ONEX_BUS or EventBusOptions.Backend): use one of {string.Join(", ", Backends)}.",
                nameof(options));
        var nodeId = options.NodeId is { Length: > 0 } id ? id : options.Registry?.NodeId ?? "";
        var logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger(typeof(EventBusFactory));

        IReadOnlyList<PortLeaseSet>? leases = null;
        try
        {
            var endpoints = options.Endpoints;
            var lookedUp = false;
            // A key given by the application is kept; one learnt from the registry follows the registration.
            var keyGiven = options.Zmq.Socket.CurveServerKey is not null;
            if (options.Role == EventBusRole.Join && endpoints.Count == 0 && options.Registry is { } registry && options.Backend != BusKinds.Memory)
            {
                var record = await LookUpAsync(registry, options, cancellationToken).ConfigureAwait(false);
                endpoints = record.Endpoints;
                options = WithAdvertisedCurveKey(options, record);
                lookedUp = true;
            }

            var leasedHost = options is { Role: EventBusRole.Host, Backend: BusKinds.Zmq, Registry: not null } && endpoints.Count == 0 && options.ZmqTransport == "tcp";
            IEventBus bus;
            IReadOnlyList<string> registered;
            if (leasedHost)
            {
                // A node that hosted this bus before (a restarted process with a stable node id) takes its ports back.
                leases = await HostPorts.TryReclaimAsync(options.Registry!, options.Name, cancellationToken).ConfigureAwait(false);
                var reclaimed = leases is not null;
                leases ??= await HostPorts.LeaseAsync(options.Registry!, options.Name, cancellationToken).ConfigureAwait(false);
                try
                {
                    (bus, registered) = await CreateBackendAsync(options, nodeId, HostPorts.Endpoints(leases), cancellationToken).ConfigureAwait(false);
                }
                catch (LeaseException ex) when (reclaimed && ex.Code == ErrorCodes.PortUnavailable)
                {
                    // A reclaimed port is bound by a process the registry does not know: move to fresh ports.
                    LogReclaimedPortBusy(logger, options.Name, ex.Message);
                    await HostPorts.ReleaseAsync(leases).ConfigureAwait(false);
                    leases = null;
                    leases = await HostPorts.LeaseAsync(options.Registry!, options.Name, cancellationToken).ConfigureAwait(false);
                    (bus, registered) = await CreateBackendAsync(options, nodeId, HostPorts.Endpoints(leases), cancellationToken).ConfigureAwait(false);
                }
            }
            else
            {
                (bus, registered) = await CreateBackendAsync(options, nodeId, endpoints, cancellationToken).ConfigureAwait(false);
            }
            // A memory bus is invisible outside its process, so it is not registered: registering it would only make a
            // second process using the same (default) name fail with "Bus 'default' is registered by node ...".
            if (options.Role != EventBusRole.Host || options.Registry is null || options.Backend == BusKinds.Memory)
            {
                await HostPorts.ReleaseAsync(leases).ConfigureAwait(false);
                if (lookedUp && options.FollowRegistry)
                {
                    if (bus is ZmqEventBus joined) Follow(joined, options, !keyGiven, logger);
                    else if (bus is IpcEventBus joinedIpc) Follow(joinedIpc, options, logger);
                }
                return bus;
            }

            try
            {
                await options.Registry.RegisterBusAsync(options.Name, options.Backend, registered, AdvertisedMetadata(options), cancellationToken)
                    .ConfigureAwait(false);
            }
            catch
            {
                await bus.DisposeAsync().ConfigureAwait(false);
                throw;
            }
            return new RegisteredEventBus(bus, options.Registry, leases, logger);
        }
        catch (Exception ex) when (ex is not OnexException and not ArgumentException and not OperationCanceledException)
        {
            await HostPorts.ReleaseAsync(leases).ConfigureAwait(false);
            throw new UnavailableException(
                $"The {options.Backend} bus '{options.Name}' could not be {(options.Role == EventBusRole.Host ? "created" : "joined")}: {ex.Message}",
                new Dictionary<string, string> { ["backend"] = options.Backend, ["bus"] = options.Name }, ex);
        }
        catch
        {
            await HostPorts.ReleaseAsync(leases).ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask<(IEventBus Bus, IReadOnlyList<string> Endpoints)> CreateBackendAsync(
        EventBusOptions options, string nodeId, IReadOnlyList<string> endpoints, CancellationToken cancellationToken)
    {
        var join = options.Role == EventBusRole.Join;
        switch (options.Backend)
        {
            case BusKinds.Memory:
                if (join)
                    throw new ArgumentException("The memory backend lives in one process and cannot be joined; host it and share the instance (InMemoryEventBus.Join).");
                var memory = new InMemoryEventBus(options.Memory with { Name = options.Name, NodeId = nodeId });
                return (memory, [$"memory://{options.Name}"]);

            case BusKinds.Zmq:
            {
                var (publish, subscribe) = endpoints.Count switch
                {
                    0 when join => throw new ArgumentException("Joining a zmq bus needs its two endpoints (publish, subscribe) or a registry that lists it."),
                    0 => DefaultZmqEndpoints(options),
                    2 => (endpoints[0], endpoints[1]),
                    _ => throw new ArgumentException($"A zmq bus has two endpoints (publish, subscribe); got {endpoints.Count}: {string.Join(", ", endpoints)}."),
                };
                var zmqOptions = options.Zmq with
                {
                    Name = options.Name, NodeId = nodeId, PublishEndpoint = publish, SubscribeEndpoint = subscribe,
                    LoggerFactory = options.Zmq.LoggerFactory ?? options.LoggerFactory,
                };
                var zmq = join
                    ? await ZmqEventBus.JoinAsync(zmqOptions, cancellationToken).ConfigureAwait(false)
                    : await ZmqEventBus.HostAsync(zmqOptions, cancellationToken).ConfigureAwait(false);
                return (zmq, [zmq.PublishEndpoint, zmq.SubscribeEndpoint]);
            }

            case BusKinds.Ipc:
            {
                var ipcOptions = options.Ipc with
                {
                    Name = options.Name, NodeId = nodeId,
                    SocketPath = endpoints.Count > 0 ? endpoints[0] : options.Ipc.SocketPath,
                    LoggerFactory = options.Ipc.LoggerFactory ?? options.LoggerFactory,
                };
                var ipc = join
                    ? await IpcEventBus.JoinAsync(ipcOptions, cancellationToken).ConfigureAwait(false)
                    : await IpcEventBus.HostAsync(ipcOptions, cancellationToken).ConfigureAwait(false);
                return (ipc, [ipc.Endpoint]);
            }

            default:
            {
                var jetStreamOptions = options.JetStream with
                {
                    Name = options.Name, NodeId = nodeId,
                    Url = endpoints.Count > 0 ? endpoints[0] : options.NatsUrl,
                    LoggerFactory = options.JetStream.LoggerFactory ?? options.LoggerFactory,
                };
                var jetStream = await JetStreamEventBus.ConnectAsync(jetStreamOptions, cancellationToken).ConfigureAwait(false);
                return (jetStream, [jetStream.Endpoint]);
            }
        }
    }

    /// <summary>
    /// A zmq participant that joined by name follows the bus when its host comes back elsewhere. (JetStream
    /// participants need not: their endpoint is the NATS server, not the host.)
    /// </summary>
    private static void Follow(ZmqEventBus bus, EventBusOptions options, bool followKey, ILogger logger)
    {
        var follower = new RegistryBusFollower(
            options.Registry!, options.Name, BusKinds.Zmq, [bus.PublishEndpoint, bus.SubscribeEndpoint],
            (endpoints, curveServerKey, cancellationToken) => endpoints.Count == 2
                ? bus.MoveToAsync(endpoints[0], endpoints[1], curveServerKey, cancellationToken)
                : throw new ArgumentException($"A zmq bus has two endpoints; the registry lists {endpoints.Count}."),
            bus.Health, logger, bus.Options.Socket.CurveServerKey, followKey);
        bus.Companion = follower;
        follower.Start();
    }

    /// <summary>
    /// A Unix-socket participant that joined by name follows the bus when its host comes back at another socket path
    /// (another root directory); at the same path its own reconnect loop suffices.
    /// </summary>
    private static void Follow(IpcEventBus bus, EventBusOptions options, ILogger logger)
    {
        var follower = new RegistryBusFollower(
            options.Registry!, options.Name, BusKinds.Ipc, [bus.Endpoint],
            (endpoints, _, cancellationToken) => endpoints.Count == 1
                ? bus.MoveToAsync(endpoints[0], cancellationToken)
                : throw new ArgumentException($"An ipc bus has one endpoint; the registry lists {endpoints.Count}."),
            bus.Health, logger);
        bus.Companion = follower;
        follower.Start();
    }

    private static (string Publish, string Subscribe) DefaultZmqEndpoints(EventBusOptions options) => options.ZmqTransport switch
    {
        "tcp" => ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
        "ipc" => ($"ipc://onex-{options.Name}-{Guid.NewGuid():N}-pub", $"ipc://onex-{options.Name}-{Guid.NewGuid():N}-sub"),
        _ => throw new ArgumentException($"Unknown ZeroMQ transport '{options.ZmqTransport}' (ONEX_ZMQ_TRANSPORT): use tcp or ipc."),
    };

    /// <summary>What a hosted bus's registration tells its peers: the forwarder's CURVE public key when it encrypts; else nothing.</summary>
    private static IReadOnlyDictionary<string, string>? AdvertisedMetadata(EventBusOptions options) =>
        options.Backend == BusKinds.Zmq && options.Zmq.Socket.CurveServerKeys is { } keys
            ? new Dictionary<string, string> { [ZmqCurve.ServerKeyMetadata] = keys.PublicKey }
            : null;

    /// <summary>
    /// A participant joining a zmq bus it found in the registry encrypts to the key the host advertised, unless it was
    /// given one itself. The key is as trustworthy as the registry's answer (over CURVE, that of the registry's key holder).
    /// </summary>
    private static EventBusOptions WithAdvertisedCurveKey(EventBusOptions options, EventBusRecord record)
    {
        if (options.Backend != BusKinds.Zmq || options.Zmq.Socket.CurveServerKey is not null) return options;
        if (record.Metadata is null || !record.Metadata.TryGetValue(ZmqCurve.ServerKeyMetadata, out var key)) return options;
        var checkedKey = Security.CurveKeyPair.CheckPublicKey(key, $"bus '{record.Name}' metadata {ZmqCurve.ServerKeyMetadata}");
        return options with { Zmq = options.Zmq with { Socket = options.Zmq.Socket with { CurveServerKey = checkedKey } } };
    }

    private static async ValueTask<EventBusRecord> LookUpAsync(RegistryClient registry, EventBusOptions options, CancellationToken cancellationToken)
    {
        var found = await registry.DescribeAsync(new IntrospectionRequest
        {
            Include = [IntrospectionSections.Buses],
            NamePrefix = options.Name,
        }, cancellationToken).ConfigureAwait(false);
        var bus = found.Buses?.FirstOrDefault(b => b.Name == options.Name)
            ?? throw new NotFoundException(
                $"No bus named '{options.Name}' is registered at {registry.Endpoint}; host it first or pass its endpoints.",
                new Dictionary<string, string> { ["bus"] = options.Name });
        if (bus.Kind != options.Backend)
            throw new ArgumentException($"Bus '{options.Name}' is a {bus.Kind} bus, not {options.Backend}.");
        return bus;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bus {Bus}: a port taken back from the previous run is in use ({Reason}); hosting on new ports, joined participants follow the registration")]
    private static partial void LogReclaimedPortBusy(ILogger logger, string bus, string reason);
}
