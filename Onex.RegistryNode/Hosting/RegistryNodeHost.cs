using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Changes;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Leases;
using Onex.RegistryNode.Metrics;
using Onex.RegistryNode.Server;
using Onex.RegistryNode.Storage;
using Onex.RegistryNode.Tools;
using Onex.Transports.Zmq;

namespace Onex.RegistryNode.Hosting;

/// <summary>
/// A running registry node: a ROUTER endpoint answering requests and a PUB endpoint broadcasting every change.
/// Start one with <see cref="StartAsync"/>, or run the command line with <see cref="RunAsync(string[], CancellationToken)"/>.
/// Disposing sends a last heartbeat with <c>stopping=true</c> and closes both sockets.
/// </summary>
public sealed partial class RegistryNodeHost : IAsyncDisposable
{
    private readonly RegistryServer _server;
    private readonly ZmqEventPublisher _publisher;
    private readonly RequestDispatcher _dispatcher;
    private readonly IRegistryStore _store;
    private readonly ILogger _logger;
    private int _disposed;

    /// <summary>Tests: the free checks made ahead of demand by this node's lease manager.</summary>
    internal Leases.VerifiedPorts VerifiedPorts => _dispatcher.Registry.Leases.Verified;

    private RegistryNodeHost(
        RegistryServer server, ZmqEventPublisher publisher, RequestDispatcher dispatcher, IRegistryStore store, RegistryNodeOptions options, ILogger logger,
        ObservedChangeSink broadcasts, RegistryMetrics metrics, TimeProvider time, RegistryAuth? auth)
    {
        Auth = auth;
        _server = server;
        Broadcasts = broadcasts;
        Metrics = metrics;
        Time = time;
        _publisher = publisher;
        _dispatcher = dispatcher;
        _store = store;
        _logger = logger;
        Options = options;
    }

    private RegistryState State => _dispatcher.Registry;

    /// <summary>Committed broadcasts, with a hook for an in-process observer (the HTTP endpoint).</summary>
    internal ObservedChangeSink Broadcasts { get; }

    /// <summary>The node's instruments (meter <c>Onex.Registry</c>).</summary>
    internal RegistryMetrics Metrics { get; }

    /// <summary>The node's clock.</summary>
    internal TimeProvider Time { get; }

    /// <summary>False while the store refuses writes (readiness). Read from any thread.</summary>
    internal bool StoreWritable => !_dispatcher.StoreUnavailable;

    /// <summary>True until the node starts stopping (readiness). Read from any thread.</summary>
    internal bool Serving => Volatile.Read(ref _disposed) == 0 && !_dispatcher.Stopping;

    /// <summary>Queues <paramref name="action"/> onto the registry thread, with the registry's state; returns at once.</summary>
    internal void Post(Action<RegistryState> action) => _server.Post(() => action(State));

    /// <summary>
    /// Queues a request frame onto the registry thread, behind the work already queued, as a request over NATS is
    /// (the same dispatcher); completes with its reply after the commit of the wake-up that answered it (tests).
    /// </summary>
    internal Task<byte[]> DispatchAsync(byte[] frame) => _server.DispatchAsync(frame);

    /// <summary>The auth file in force, or null when the node runs open.</summary>
    internal RegistryAuth? Auth { get; }

    /// <summary>This registry's membership of a cluster, or null outside cluster mode.</summary>
    internal ClusterMember? Cluster { get; private init; }

    /// <summary>The change streams opened with Watch (tests read their bounds on the registry thread).</summary>
    internal Watches.WatchHub? Watches => _dispatcher.Watches;

    /// <summary>The store (tests).</summary>
    internal IRegistryStore Store => _store;

    /// <summary>Where the state is kept: the database file, or "memory".</summary>
    public string StoreLocation => _store.Location;

    /// <summary>The ROUTER endpoint requests go to, with the OS-chosen port when the options asked for port 0.</summary>
    public string RouterEndpoint => _server.Endpoint;

    /// <summary>Replies dropped because their peer left too many unread (PROTOCOL.md section 14).</summary>
    internal long RepliesDropped => _server.RepliesDropped;

    /// <summary>Times every connection of the request socket was closed because ZeroMQ held too many received bytes (PROTOCOL.md section 14).</summary>
    internal long ConnectionsCut => _server.ConnectionsCut;

    /// <summary>The PUB endpoint changes are broadcast on, with the OS-chosen port when the options asked for port 0.</summary>
    public string PubEndpoint => _publisher.Endpoint;

    /// <summary>The registry's epoch: kept across restarts by a durable store (new on every start of a memory store); change sequence numbers continue within it.</summary>
    public string Epoch => State.Epoch;

    /// <summary>The options the node runs with.</summary>
    public RegistryNodeOptions Options { get; }

    /// <summary>
    /// The CURVE public key (Z85) clients must know (<c>ONEX_REGISTRY_SERVER_KEY</c>) when the node encrypts its
    /// endpoints; null when it runs without encryption.
    /// </summary>
    public string? ServerPublicKey { get; private init; }

    /// <summary>
    /// Opens the store, loads what it holds, binds the ROUTER and PUB endpoints and starts serving. Fails at once,
    /// naming the endpoint, when one is in use (<see cref="Onex.Errors.LeaseException"/> with code PORT_UNAVAILABLE);
    /// with <see cref="RegistryStoreException"/>, naming the file and what to do, when the store cannot be used; with
    /// <see cref="ArgumentException"/> when the options are inconsistent or leave no port to lease.
    /// </summary>
    /// <param name="options">Endpoints, pool, TTLs and timings.</param>
    /// <param name="loggerFactory">Where logs go; none when null.</param>
    /// <param name="timeProvider">The clock and timers (lease expiry, health checks, heartbeats); the system clock when null.</param>
    /// <param name="ct">Cancels the start.</param>
    public static Task<RegistryNodeHost> StartAsync(
        RegistryNodeOptions options, ILoggerFactory? loggerFactory = null, TimeProvider? timeProvider = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ct.ThrowIfCancellationRequested();
        loggerFactory ??= NullLoggerFactory.Instance;
        timeProvider ??= TimeProvider.System;
        var logger = loggerFactory.CreateLogger<RegistryNodeHost>();
        Check(options);

        var ephemeral = EphemeralPorts.Read(options.Leases.EphemeralRangePath);
        var ports = EphemeralPorts.Exclude(options.Leases.PortRange, ephemeral);
        if (ephemeral is { } range)
        {
            var excluded = options.Leases.PortRange.Count - ports.Count;
            if (excluded > 0) LogEphemeralOverlap(logger, options.Leases.PortRange.ToString(), range.ToString(), options.Leases.EphemeralRangePath!, excluded);
            else LogEphemeral(logger, range.ToString(), options.Leases.EphemeralRangePath!);
        }
        if (ports.Count == 0)
            throw new ArgumentException(
                $"The port range {options.Leases.PortRange} lies entirely inside the kernel's ephemeral range {ephemeral}; choose a range outside it (--port-range).",
                nameof(options));
        var curve = LoadCurveKeys(options, logger);
        var availability = new PortAvailability();
        LogPool(logger, options.Leases.PortRange.ToString(), ports.Count, availability.Ipv6Available);

        // Read before anything is bound: a bad auth file stops the start with a message naming the field.
        var auth = options.AuthFile is { } authFile ? RegistryAuth.Start(authFile, logger) : null;
        if (auth is null) LogOpen(logger);
        IRegistryStore store;
        try
        {
            store = options.Store.Kind == RegistryStoreKind.Memory ? new MemoryRegistryStore() : SqliteRegistryStore.Open(options.Store);
        }
        catch
        {
            auth?.Dispose();
            throw;
        }
        RegistryServer server;
        ZmqEventPublisher publisher;
        try
        {
            server = RegistryServer.Bind(options, curve, loggerFactory.CreateLogger<RegistryServer>());
        }
        catch
        {
            store.Dispose();
            auth?.Dispose();
            throw;
        }
        try
        {
            publisher = ZmqEventPublisher.BindForTopics(options.PubEndpoint, ZmqChangeBroadcaster.Topics, Server.PeerBounds.BroadcastSocket with { CurveServerKeys = curve });
        }
        catch
        {
            server.Dispose();
            store.Dispose();
            auth?.Dispose();
            throw;
        }

        var metrics = new RegistryMetrics();
        metrics.ObserveIntake(() => server.ConnectionsCut, () => Server.QueuedReplyBytes.Instance.Received);
        var bodies = new ChangeBodies(); // one serialisation per change for the watch history and the PUB socket
        IChangeSink pub = new ZmqChangeBroadcaster(publisher, options.NodeId, bodies, timeProvider);
        if (auth is not null) pub = new HeartbeatOnlyChangeSink(pub); // PUB cannot filter by tenant (PROTOCOL.md 16.6)
        RequestDispatcher? running = null;
        var watches = new Watches.WatchHub(options.Watches, bodies, timeProvider, loggerFactory.CreateLogger<Watches.WatchHub>());
        var broadcasts = new ObservedChangeSink(new Watches.WatchFanOut(pub, watches), metrics);
        var cluster = options.Cluster is { } clusterOptions
            ? new ClusterMember(clusterOptions, action => server.Post(() => action(running!.Registry)), () => running?.Registry.Epoch ?? "",
                timeProvider, loggerFactory.CreateLogger<ClusterMember>())
            : null;
        metrics.ObserveFreeChecks(
            () => running?.Registry.Leases.Verified.Verifier is { } v ? v.Checked - v.FromTables : 0,
            () => running?.Registry.Leases.Verified.Verifier.FromTables ?? 0);
        if (cluster is not null) metrics.ObserveCluster(() => cluster.WatchRestarts, () => cluster.Rejoins, () => cluster.HostsRemoved);
        var sink = new DeferredChangeSink(cluster is null ? broadcasts : new ClusterMirrorSink(broadcasts, cluster));
        (RegistryState, ReplyCache) Load()
        {
            var stored = store.Load();
            // The reply cache fills on another core while the state is rebuilt: they share nothing.
            var cache = Task.Run(() =>
            {
                var replies = new ReplyCache(options.ReplyCacheCapacity, options.ReplyCacheRetention, options.ReplyCacheMaxBytes, timeProvider);
                replies.Restore(stored.Replies);
                return replies;
            });
            var state = new RegistryState(options, ports, availability, sink, timeProvider, loggerFactory, server.Post, stored: stored, durable: store.IsDurable);
            if (cluster is not null)
            {
                state.Cluster = cluster;
                state.Journal.HostName = cluster.HostName;
            }
            return (state, cache.GetAwaiter().GetResult());
        }
        StartWarmUp(); // in the background, beside loading the store (already under way when started by the command line)
        var started = timeProvider.GetTimestamp();
        RegistryState registry;
        ReplyCache replies;
        try
        {
            (registry, replies) = Load();
        }
        catch (Exception ex)
        {
            // Nothing was started yet: these stop at once (the start is synchronous up to here).
            cluster?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            publisher.DisposeAsync().AsTask().GetAwaiter().GetResult();
            server.Dispose();
            store.Dispose();
            auth?.Dispose();
            // A row that cannot be read is reported with the file it came from.
            if (ex is RegistryStoreException && !ex.Message.Contains(store.Location, StringComparison.Ordinal))
                throw new RegistryStoreException($"{store.Location}: {ex.Message}", ex);
            throw;
        }
        var dispatcher = new RequestDispatcher(registry, replies, loggerFactory.CreateLogger<RequestDispatcher>(), metrics)
        {
            Auth = auth is null ? null : new AuthGate(auth, timeProvider),
            Watches = watches,
        };
        watches.Start(registry.Epoch, registry.Journal.Sequence);
        running = dispatcher;
        server.Start(dispatcher, new RegistryServer.StoreBinding(store, sink, Load, options.PauseThreshold));
        cluster?.ServeRequests(server.DispatchAsync, new Dictionary<string, string>
        {
            [Onex.Protocol.RegistryNatsService.RouterEndpointMetadata] = server.Endpoint,
            [Onex.Protocol.RegistryNatsService.PubEndpointMetadata] = publisher.Endpoint,
            [Onex.Protocol.RegistryNatsService.ProtocolVersionMetadata] = Onex.Protocol.ProtocolVersion.Current.ToString(),
        });
        cluster?.Start();
        // Leases whose time ran out while the registry was down expire now, before the first heartbeat.
        server.Post(() =>
        {
            dispatcher.Registry.RunHousekeeping();
            dispatcher.Registry.SendHeartbeat();
        });
        if (registry.Restored)
            LogRestored(logger, store.Location, registry.Leases.Count, registry.Nodes.Count, registry.Buses.Count, registry.Tools.Count,
                registry.Journal.Sequence, (long)timeProvider.GetElapsedTime(started).TotalMilliseconds);
        LogStarted(logger, server.Endpoint, publisher.Endpoint, registry.Epoch, store.Location);
        StartSchemaWarmUp();
        return Task.FromResult(new RegistryNodeHost(server, publisher, dispatcher, store, options, logger, broadcasts, metrics, timeProvider, auth)
        {
            ServerPublicKey = curve?.PublicKey,
            Cluster = cluster,
        });
    }

    /// <summary>
    /// The command line of the registry node (also behind <c>onex registry serve</c>): parses
    /// <paramref name="args"/> (see <c>--help</c>), starts the node, prints its endpoints, runs until
    /// <paramref name="ct"/> is cancelled or the process gets SIGINT/SIGTERM, then stops cleanly.
    /// Returns 0 after a clean stop, 1 when the node could not start (e.g. an endpoint in use), and the parser's
    /// code for bad arguments. Meant as the process's program: ZeroMQ's buffers are process-wide, so it also bounds
    /// the bytes of every frame the process receives (PROTOCOL.md section 14), which a node embedded in a process
    /// with sockets of its own does not.
    /// </summary>
    public static Task<int> RunAsync(string[] args, CancellationToken ct)
    {
        // The node's own process: every frame ZeroMQ receives here is the registry's, so it can bound them all (PROTOCOL.md 14).
        Server.QueuedReplyBytes.Instance.GuardReceived();
        return RegistryNodeCommandLine.RunAsync(args, Console.Out, Console.Error, Environment.GetEnvironmentVariable, ct);
    }

    /// <summary>Runs <paramref name="action"/> on the registry thread, with the registry's state (tests and diagnostics).</summary>
    internal async Task<T> InvokeAsync<T>(Func<RegistryState, T> action)
    {
        T result = default!;
        await _server.InvokeAsync(() => result = action(State)).ConfigureAwait(false);
        return result;
    }

    /// <summary>Sends the last heartbeat (<c>stopping=true</c>), stops serving and closes both endpoints.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            await _server.InvokeAsync(() =>
            {
                _dispatcher.Stopping = true;
                State.SendHeartbeat(stopping: true);
                State.Dispose();
            }).WaitAsync(TimeSpan.FromSeconds(5), TimeProvider.System).ConfigureAwait(false); // a bound on a stuck thread: real time, whatever clock the registry runs on
        }
        catch (TimeoutException ex)
        {
            LogStopTimeout(_logger, ex);
        }
        if (Cluster is not null) await Cluster.DisposeAsync().ConfigureAwait(false);
        _server.Dispose();
        _store.Dispose();
        Auth?.Dispose();
        await _publisher.DisposeAsync().ConfigureAwait(false);
        Metrics.Dispose();
        LogStopped(_logger, RouterEndpoint);
    }

    /// <summary>
    /// Starts, once per process and on a thread-pool thread, what loading the store would otherwise pay for on its
    /// critical path: generating the MessagePack formatters of the records it restores and answers with. The command
    /// line calls it before it builds the host, so a restart overlaps the two.
    /// </summary>
    internal static void StartWarmUp() => _ = WarmUpCodec.Value;

    /// <summary>
    /// Loads NJsonSchema on a thread-pool thread, once per process. Called once the node serves: on two cores, loading
    /// it beside the store (about 0.3 s of CPU) delayed serving by as much, and nothing before the first tool
    /// registration or validation needs it (Onex.Benchmarks/results/RegistryMemory.md).
    /// </summary>
    internal static void StartSchemaWarmUp() => _ = WarmUpSchemas.Value;

    private static readonly Lazy<Task> WarmUpCodec = new(() => Task.Run(Onex.Protocol.RegistryCodec.WarmUp));

    // The first schema a process parses pays for loading and compiling NJsonSchema (seconds on a starved machine):
    // paid once per process on a thread-pool thread as the node starts, not by the single registry thread mid-request.
    private static readonly Lazy<Task> WarmUpSchemas = new(() => Task.Run(() =>
    {
        var schema = BoundedSchema.Load("""{"type":"object","properties":{"a":{"type":"string","pattern":"^a"}},"required":["a"]}""", Onex.Protocol.PayloadDirections.Input);
        schema.Validate("""{"a":"ab"}""", TimeProvider.System, long.MaxValue);
    }));

    internal static void Check(RegistryNodeOptions options)
    {
        var leases = options.Leases;
        if (leases.PortRange.Count <= 0 || leases.PortRange.First < 1 || leases.PortRange.Last > 65535)
            throw new ArgumentException($"Port range {leases.PortRange} is not a range of ports between 1 and 65535.", nameof(options));
        if (leases.MinTtl <= TimeSpan.Zero || leases.MinTtl > leases.MaxTtl)
            throw new ArgumentException($"Lease TTL bounds are inconsistent: min {leases.MinTtl}, max {leases.MaxTtl}.", nameof(options));
        if (leases.DefaultTtl < leases.MinTtl || leases.DefaultTtl > leases.MaxTtl)
            throw new ArgumentException($"The default lease TTL {leases.DefaultTtl} is outside [{leases.MinTtl}, {leases.MaxTtl}].", nameof(options));
        if (leases.Quarantine < TimeSpan.Zero || leases.BusyPortQuarantine < TimeSpan.Zero)
            throw new ArgumentException("Quarantine durations must not be negative.", nameof(options));
        if (leases.MaxPortsPerRequest < 1)
            throw new ArgumentException("MaxPortsPerRequest must be at least 1.", nameof(options));
        if (options.HeartbeatInterval <= TimeSpan.Zero)
            throw new ArgumentException("The heartbeat interval must be positive.", nameof(options));
        if (options.Nodes.MissedHeartbeatsBeforeUnhealthy < 1 || options.Nodes.UnhealthyGracePeriod < TimeSpan.Zero)
            throw new ArgumentException("Node health settings are inconsistent.", nameof(options));
        options.Cluster?.Check();
        if (options.MaxReceiveBytes < Onex.Protocol.RegistryCodec.MaxFrameBytes)
            throw new ArgumentException($"MaxReceiveBytes must be at least the frame limit ({Onex.Protocol.RegistryCodec.MaxFrameBytes}).", nameof(options));
    }

    /// <summary>The key pair from the options or their key file; null when neither is set (no encryption, as before).</summary>
    private static Onex.Transports.Security.CurveKeyPair? LoadCurveKeys(RegistryNodeOptions options, ILogger logger)
    {
        if (options.CurveKeys is not null && options.CurveKeyFile is not null)
            throw new ArgumentException("Give the CURVE key pair either as CurveKeys or as CurveKeyFile, not both.", nameof(options));
        var keys = options.CurveKeys;
        if (options.CurveKeyFile is { } path)
        {
            var loaded = Onex.Transports.Security.CurveKeyFile.Load(path);
            if (loaded.PermissionProblem is { } problem) LogKeyFilePermissions(logger, problem);
            keys = loaded.Keys;
        }
        if (keys is null) LogPlaintext(logger);
        else LogCurve(logger, keys.PublicKey);
        return keys;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "CURVE encryption on the ROUTER and PUB endpoints; server public key {PublicKey} (clients: ONEX_REGISTRY_SERVER_KEY)")]
    private static partial void LogCurve(ILogger logger, string publicKey);

    [LoggerMessage(Level = LogLevel.Information, Message = "No CURVE key file: the ROUTER and PUB endpoints are not encrypted (see docs/ENCRYPTION.md)")]
    private static partial void LogPlaintext(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Problem}")]
    private static partial void LogKeyFilePermissions(ILogger logger, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "Kernel ephemeral range {EphemeralRange} (from {Path}) does not overlap the pool")]
    private static partial void LogEphemeral(ILogger logger, string ephemeralRange, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Port range {PortRange} overlaps the kernel's ephemeral range {EphemeralRange} (from {Path}): {Excluded} port(s) removed from the pool")]
    private static partial void LogEphemeralOverlap(ILogger logger, string portRange, string ephemeralRange, string path, int excluded);

    [LoggerMessage(Level = LogLevel.Information, Message = "Port pool {Range}: {Ports} port(s) leasable; free check on IPv4{Ipv6Note}")]
    private static partial void LogPoolCore(ILogger logger, string range, int ports, string ipv6Note);

    private static void LogPool(ILogger logger, string range, int ports, bool ipv6) =>
        LogPoolCore(logger, range, ports, ipv6 ? " and IPv6" : " only (no IPv6 here)");

    [LoggerMessage(Level = LogLevel.Information, Message = "Registry serving on {RouterEndpoint}, broadcasting on {PubEndpoint}, epoch {Epoch}, state in {Store}")]
    private static partial void LogStarted(ILogger logger, string routerEndpoint, string pubEndpoint, string epoch, string store);

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded {Store}: {Leases} lease(s), {Nodes} node(s), {Buses} bus(es), {Tools} tool(s), sequence {Sequence}, in {ElapsedMs} ms")]
    private static partial void LogRestored(ILogger logger, string store, int leases, int nodes, int buses, int tools, long sequence, long elapsedMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Access control off (no auth file): the registry runs open; anyone who reaches its endpoints can lease, register and read everything (docs/SECURITY.md)")]
    private static partial void LogOpen(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Registry on {RouterEndpoint} stopped")]
    private static partial void LogStopped(ILogger logger, string routerEndpoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The registry thread did not answer the stop request in time; closing anyway")]
    private static partial void LogStopTimeout(ILogger logger, Exception exception);
}
