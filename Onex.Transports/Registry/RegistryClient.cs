using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.Errors;
using Onex.Protocol;
using Polly;
using Polly.Retry;

namespace Onex.Transports.Registry;

/// <summary>
/// A connection to a registry node: leases ports, registers buses and tools, validates payloads, introspects
/// and watches changes. One DEALER carries every request, many in flight at once, each matched to its reply by
/// request id. Timeouts are retried with backoff under the same request id, so the registry answers a retry
/// from its reply cache instead of acting twice. Error replies surface as <see cref="OnexException"/>
/// subtypes carrying the catalogue code.
/// <para>
/// When announcing (the default), the client heartbeats its node in the background and, when the registry
/// restarts (a new epoch, or the registry no longer knowing the node), re-announces the node, re-registers its
/// buses and tools and takes back its leased ports.
/// </para>
/// Thread-safe.
/// </summary>
public sealed partial class RegistryClient : IAsyncDisposable
{
    private static readonly IReadOnlyList<string> StatsOnly = [IntrospectionSections.Stats];
    private static readonly TimeSpan MaxRetryWindow = TimeSpan.FromSeconds(60);

    private readonly RegistryClientOptions _options;
    private readonly string? _token;
    private readonly IRegistryRequestTransport _channel;
    private readonly Onex.Transports.Zmq.ZmqSocketOptions _sockets; // the options' sockets, with CURVE when a server key is known
    private readonly ResiliencePipeline _retry;
    private readonly ILogger _logger;
    private readonly ILogger _leaseSetLogger; // one for every set: CreateLogger<T> builds the category name each call
    private readonly ILoggerFactory _loggerFactory;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, EventBusRegistration> _buses = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ToolContractRegistration> _tools = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<PortLeaseSet, byte> _leaseSets = new();
    private readonly SemaphoreSlim _presenceGate = new(1, 1);
    private readonly object _reassertGate = new();
    private Task _reassertion = Task.CompletedTask;
    private Task _heartbeats = Task.CompletedTask;
    private Task _epochListener = Task.CompletedTask;
    private IRegistryBroadcastSource? _epochSource;
    private volatile string? _epoch;
    private volatile bool _present;
    private long _requestCounter;
    private int _disposed;

    private RegistryClient(RegistryClientOptions options)
    {
        _options = options;
        if (options.MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxAttempts must be at least 1.");
        if (options.RequestTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "RequestTimeout must be positive.");
        if (options.HeartbeatInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "HeartbeatInterval must be positive.");
        // The registry remembers replies for at least 60 s; a retry after that could act twice.
        var retryWindow = options.RequestTimeout * options.MaxAttempts + options.RetryMaxDelay * (options.MaxAttempts - 1);
        if (retryWindow > MaxRetryWindow)
            throw new ArgumentOutOfRangeException(nameof(options),
                $"RequestTimeout x MaxAttempts plus backoff ({retryWindow.TotalSeconds:0.#} s) must stay within {MaxRetryWindow.TotalSeconds} s, how long the registry remembers replies.");
        TimeProvider = options.TimeProvider ?? TimeProvider.System;
        _loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<RegistryClient>();
        _leaseSetLogger = _loggerFactory.CreateLogger<PortLeaseSet>();
        Endpoint = RegistryEndpoints.ResolveRouter(options.Endpoint);
        _token = RegistryToken.Resolve(options.Token);
        PubEndpoint = RegistryEndpoints.ResolvePub(options.PubEndpoint);
        NodeId = !string.IsNullOrWhiteSpace(options.NodeId) ? options.NodeId
            : options.NodeIdFile is { Length: > 0 } idFile ? Onex.Transports.Registry.NodeIdFile.ReadOrCreate(idFile) : DefaultNodeId();
        ClientId = $"{NodeId}/{Guid.NewGuid():N}"; // the protocol's suggested form: stable for this client, unique per instance
        ServerKey = RegistryEndpoints.ResolveServerKey(options.ServerKey);
        _sockets = ServerKey is null ? options.Socket : options.Socket with { CurveServerKey = ServerKey };
        _channel = NatsRegistryRequestChannel.IsNatsEndpoint(Endpoint)
            ? new NatsRegistryRequestChannel(Endpoint, RegistryHostName(options), options.RequestTimeout, _logger)
            : new RegistryRequestChannel(Endpoint, _sockets, options.RequestTimeout, TimeProvider, _logger);
        _retry = BuildRetryPipeline();
    }

    /// <summary>The registry's request endpoint this client talks to.</summary>
    public string Endpoint { get; }

    /// <summary>The registry's broadcast endpoint watchers subscribe to.</summary>
    public string PubEndpoint { get; }

    /// <summary>The registry's CURVE public key this client encrypts to; null when it does not encrypt.</summary>
    public string? ServerKey { get; }

    /// <summary>The node this client announces; leases and registrations are owned by it.</summary>
    public string NodeId { get; }

    /// <summary>This client's id on the wire; with a request id it makes retries idempotent.</summary>
    public string ClientId { get; }

    /// <summary>The registry epoch this client last asserted its node in; null before the node is announced.</summary>
    public string? Epoch => _epoch;

    /// <summary>Requests awaiting a reply right now.</summary>
    public int RequestsInFlight => _channel.InFlight;

    /// <summary>Raised (on a background thread) after the node, buses, tools and leases were re-asserted with a restarted registry.</summary>
    public event EventHandler<RegistryReassertedEventArgs>? Reasserted;

    internal TimeProvider TimeProvider { get; }

    /// <summary>Test seam: drops replies for which it returns false, as if lost on the wire.</summary>
    internal Func<RegistryEnvelope, bool>? ReplyFilter
    {
        get => _channel.ReplyFilter;
        set => _channel.ReplyFilter = value;
    }

    /// <summary>Test seam: watchers started afterwards drop changes for which it returns false, as if lost on the wire.</summary>
    internal Func<RegistryChange, bool>? WatchChangeFilter { get; set; }

    /// <summary>
    /// Connects to the registry. With <see cref="RegistryClientOptions.AnnounceNode"/> (the default) the node is
    /// announced before this returns, so an unreachable registry fails here with <see cref="UnavailableException"/>
    /// naming the endpoint; otherwise nothing is sent until the first request.
    /// </summary>
    public static async ValueTask<RegistryClient> ConnectAsync(RegistryClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= RegistryClientOptions.Default;
        // Over NATS the change stream is read from the PUB endpoint the registry advertises in its service info.
        if (options.PubEndpoint is null && NatsRegistryRequestChannel.IsNatsEndpoint(RegistryEndpoints.ResolveRouter(options.Endpoint)))
            options = options with
            {
                PubEndpoint = await NatsRegistryRequestChannel.DiscoverPubEndpointAsync(RegistryEndpoints.ResolveRouter(options.Endpoint),
                    RegistryHostName(options), options.RequestTimeout, cancellationToken).ConfigureAwait(false),
            };
        var client = new RegistryClient(options);
        if (!client._options.AnnounceNode) return client;
        try
        {
            await client.EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Leases <paramref name="count"/> ports (all or nothing). The set renews itself in the background and
    /// releases the ports when disposed. Throws <see cref="LeaseException"/> (PORT_EXHAUSTED, PORT_UNAVAILABLE)
    /// or <see cref="OnexException"/> (INVALID_ARGUMENT) when the registry refuses.
    /// </summary>
    public async ValueTask<PortLeaseSet> LeasePortsAsync(int count, LeaseRequestOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        options ??= LeaseRequestOptions.Default;
        await EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
        var requestedAt = TimeProvider.GetTimestamp(); // each lease's local deadline counts from here
        var grant = await RequestAsync<PortRequest, PortGrant>(new PortRequest
        {
            NodeId = NodeId,
            Count = count,
            TtlMs = options.Ttl is { } ttl ? (long)ttl.TotalMilliseconds : null,
            PreferredPort = options.PreferredPort,
            Protocol = options.Protocol,
            Purpose = options.Purpose,
            Reclaim = options.Reclaim,
        }, cancellationToken).ConfigureAwait(false);
        var set = new PortLeaseSet(this, grant.Leases, requestedAt, options.RenewAutomatically, _leaseSetLogger);
        _leaseSets.TryAdd(set, 0);
        return set;
    }

    /// <summary>Leases one port; the same as <see cref="LeasePortsAsync"/> with a count of one.</summary>
    public ValueTask<PortLeaseSet> LeasePortAsync(LeaseRequestOptions? options = null, CancellationToken cancellationToken = default) =>
        LeasePortsAsync(1, options, cancellationToken);

    /// <summary>
    /// Reports that <paramref name="lease"/>'s port could not be bound. The registry quarantines the port, ends the
    /// lease and grants a replacement, which is returned and, when the lease belongs to a <see cref="PortLeaseSet"/>
    /// of this client, takes its place there.
    /// </summary>
    public async ValueTask<PortLease> ReportConflictAsync(PortLease lease, string? reason = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var sentAt = TimeProvider.GetTimestamp();
        var replacement = await RequestAsync<PortConflict, PortLease>(new PortConflict
        {
            LeaseId = lease.LeaseId,
            NodeId = lease.NodeId,
            FencingToken = lease.FencingToken,
            Reason = reason,
        }, cancellationToken).ConfigureAwait(false);
        foreach (var set in _leaseSets.Keys)
            if (set.TryReplace(lease.LeaseId, replacement, $"port {lease.Port} conflicted: {reason}", sentAt)) break;
        return replacement;
    }

    /// <summary>
    /// Releases <paramref name="lease"/>, presenting its holder node and fencing token. Usually a
    /// <see cref="PortLeaseSet"/> does this on dispose; this is for leases held elsewhere (an operator
    /// releasing a stuck lease). Throws <see cref="LeaseNotFoundException"/>, <see cref="FencedException"/> or <see cref="NotOwnerException"/>.
    /// </summary>
    public ValueTask ReleaseLeaseAsync(PortLease lease, CancellationToken cancellationToken = default) =>
        ReleaseLeaseAsync(lease, singleAttempt: false, cancellationToken);

    internal async ValueTask ReleaseLeaseAsync(PortLease lease, bool singleAttempt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        await RequestAsync<LeaseRelease, Ack>(new LeaseRelease
        {
            LeaseId = lease.LeaseId,
            NodeId = lease.NodeId,
            FencingToken = lease.FencingToken,
        }, cancellationToken, singleAttempt).ConfigureAwait(false);
    }

    internal ValueTask<PortLease> RenewLeaseAsync(PortLease lease, CancellationToken cancellationToken) =>
        RequestAsync<LeaseRenewal, PortLease>(new LeaseRenewal
        {
            LeaseId = lease.LeaseId,
            NodeId = lease.NodeId,
            FencingToken = lease.FencingToken,
        }, cancellationToken);

    /// <summary>
    /// Registers (or updates) an event bus owned by this node. It is registered again automatically after a
    /// registry restart. Throws <see cref="InvalidArgumentException"/>, or <see cref="NotOwnerException"/> when another node owns a bus by that name.
    /// </summary>
    public async ValueTask<EventBusRecord> RegisterBusAsync(
        string name, string kind, IReadOnlyList<string> endpoints,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        var registration = new EventBusRegistration { Name = name, Kind = kind, Endpoints = endpoints, NodeId = NodeId, Metadata = metadata };
        await EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
        var record = await RequestAsync<EventBusRegistration, EventBusRecord>(registration, cancellationToken).ConfigureAwait(false);
        _buses[name] = registration;
        return record;
    }

    /// <summary>Removes a bus this node registered. Throws <see cref="NotFoundException"/> when there is none by that name.</summary>
    public async ValueTask DeregisterBusAsync(string name, CancellationToken cancellationToken = default)
    {
        _buses.TryRemove(name, out _);
        await RequestAsync<EventBusDeregistration, Ack>(new EventBusDeregistration { Name = name, NodeId = NodeId }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Registers a tool contract owned by this node; schemas are JSON Schema documents as JSON text. The same
    /// name and version with the same contract is idempotent; with a different one the registry refuses with
    /// <see cref="ContractException"/> (CONTRACT_CONFLICT); an invalid schema is SCHEMA_INVALID. Registered again
    /// automatically after a registry restart.
    /// </summary>
    public async ValueTask<ToolContractRecord> RegisterToolAsync(
        string name, string version, string inputSchema, string outputSchema, string description = "",
        IReadOnlyList<ToolErrorCode>? errorCodes = null, CancellationToken cancellationToken = default)
    {
        var registration = new ToolContractRegistration
        {
            Name = name,
            Version = version,
            Description = description,
            InputSchema = inputSchema,
            OutputSchema = outputSchema,
            ErrorCodes = errorCodes ?? [],
            NodeId = NodeId,
        };
        await EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
        var record = await RequestAsync<ToolContractRegistration, ToolContractRecord>(registration, cancellationToken).ConfigureAwait(false);
        _tools[$"{name}@{version}"] = registration;
        return record;
    }

    /// <summary>
    /// Validates <paramref name="payloadJson"/> against a tool's input or output schema (<see cref="PayloadDirections"/>);
    /// a null <paramref name="version"/> means the highest registered. An invalid payload is a result with errors,
    /// not an exception; an unknown tool is <see cref="NotFoundException"/>.
    /// </summary>
    public ValueTask<ValidationResult> ValidatePayloadAsync(
        string toolName, string payloadJson, string direction = PayloadDirections.Input, string? version = null,
        CancellationToken cancellationToken = default) =>
        RequestAsync<ValidatePayload, ValidationResult>(new ValidatePayload
        {
            ToolName = toolName,
            Version = version,
            Direction = direction,
            Payload = payloadJson,
        }, cancellationToken);

    /// <summary>Asks what the registry holds: everything, or the sections and filters of <paramref name="request"/>.</summary>
    public ValueTask<IntrospectionResponse> DescribeAsync(IntrospectionRequest? request = null, CancellationToken cancellationToken = default) =>
        RequestAsync<IntrospectionRequest, IntrospectionResponse>(request ?? new IntrospectionRequest(), cancellationToken);

    /// <summary>All registry state and the change sequence it reflects.</summary>
    public ValueTask<RegistrySnapshot> SnapshotAsync(CancellationToken cancellationToken = default) =>
        RequestAsync<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest(), cancellationToken);

    /// <summary>
    /// Streams registry changes whose topic starts with <paramref name="topicPrefix"/>. The first item is a
    /// <see cref="RegistryWatchEventKind.Resynced"/> carrying the snapshot; after it come changes in sequence
    /// order. A missed change or a registry restart is followed by another resync that says why, never skipped
    /// silently; three heartbeat periods without a broadcast yield <see cref="RegistryWatchEventKind.RegistrySilent"/>
    /// and the watch keeps listening. Throws <see cref="UnavailableException"/> when the first snapshot cannot be taken.
    /// </summary>
    public async IAsyncEnumerable<RegistryWatchEvent> WatchAsync(
        string topicPrefix = ChangeTypes.TopicPrefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topicPrefix);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        // With a token, changes come over the request endpoint, filtered to the token's tenant (PROTOCOL.md 16.7): a
        // registry with access control sends none on PUB. Without one, subscribe to every PUB broadcast: gaps can only
        // be seen on the full sequence. The prefix filters what is yielded either way.
        using IRegistryBroadcastSource source = _token is not null
            ? new RegistryWatchStream(Endpoint, _sockets, _token, ClientId, topicPrefix, WatchChangeFilter, _loggerFactory.CreateLogger<RegistryWatchStream>())
            : new ZmqRegistryBroadcastSource(
                PubEndpoint, ChangeTypes.TopicPrefix, _sockets, capacity: 65_536, WatchChangeFilter,
                _loggerFactory.CreateLogger<ZmqRegistryBroadcastSource>());
        var watcher = new RegistryWatcher(
            source, SnapshotAsync, topicPrefix, _options.ExpectedRegistryHeartbeatInterval, TimeProvider,
            _loggerFactory.CreateLogger<RegistryWatcher>());
        await foreach (var item in watcher.RunAsync(cancellationToken).ConfigureAwait(false))
            yield return item;
    }

    /// <summary>
    /// Stops heartbeating, releases the leases of every <see cref="PortLeaseSet"/> still open, and (unless
    /// <see cref="RegistryClientOptions.DepartOnDispose"/> is off) tells the registry the node departs. Each of
    /// those gets one attempt, so disposing does not hang on an unreachable registry.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        foreach (var background in new[] { _heartbeats, _epochListener, _reassertion })
        {
            try
            {
                await background.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                // Stopped by _stop; or a loop that had just woken sent a request after _disposed was set, and that
                // request refused with ObjectDisposedException (seen on a loaded machine): stopped either way.
            }
        }
        await Task.WhenAll(_leaseSets.Keys.Select(set => set.ReleaseAsync(singleAttempt: true).AsTask())).ConfigureAwait(false);
        if (_present && _options.DepartOnDispose)
        {
            try
            {
                await RequestAsync<NodeDeparture, Ack>(new NodeDeparture { NodeId = NodeId }, CancellationToken.None, singleAttempt: true).ConfigureAwait(false);
            }
            catch (OnexException ex)
            {
                RegistryClientLog.DepartureFailed(_logger, NodeId, ex.Code, ex.Message);
            }
        }
        _epochSource?.Dispose();
        await _channel.DisposeAsync().ConfigureAwait(false);
        _presenceGate.Dispose();
        _stop.Dispose();
    }

    internal void Forget(PortLeaseSet set) => _leaseSets.TryRemove(set, out _);

    /// <summary>
    /// Sends one request and returns its reply body. Transient failures (no reply in time, an UNAVAILABLE error
    /// reply) are retried with backoff under the same request id; after the last attempt an
    /// <see cref="UnavailableException"/> names the endpoint. Other error replies throw at once.
    /// </summary>
    internal async ValueTask<TReply> RequestAsync<TRequest, TReply>(TRequest body, CancellationToken cancellationToken, bool singleAttempt = false)
        where TReply : class
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0 && !singleAttempt, this);
        var requestId = Interlocked.Increment(ref _requestCounter).ToString("x");
        using var activity = Onex.Diagnostics.OnexRegistryDiagnostics.StartClientActivity(MessageTypes.Of<TRequest>());
        var frame = RegistryCodec.Encode(requestId, ClientId, body, token: _token,
            traceParent: activity is null ? null : Onex.Diagnostics.OnexBusDiagnostics.FormatTraceParent(activity.Context));
        var exchange = new Exchange(this, requestId, frame, MessageTypes.Of<TRequest>());
        var started = TimeProvider.GetTimestamp();
        try
        {
            if (singleAttempt || _options.MaxAttempts == 1)
                return await exchange.SendAsync<TReply>(cancellationToken).ConfigureAwait(false);
            // The first attempt goes straight out; the retry pipeline is entered only when it failed transiently, and
            // replays that failure as its own first attempt, so backoff and attempt count are the pipeline's as before.
            // Like the pipeline, send nothing for a caller that has already given up.
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return await exchange.SendAsync<TReply>(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsRetried(ex))
            {
                exchange.FirstFailure = ExceptionDispatchInfo.Capture(ex);
            }
            return await _retry.ExecuteAsync(
                static (state, token) => state.SendAsync<TReply>(token), exchange, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not TimeoutException && Onex.Diagnostics.OnexRegistryDiagnostics.RecordFailure(activity, ex))
        {
            throw; // never reached: the filter records the failure on the client span and does not catch
        }
        catch (TimeoutException ex)
        {
            var elapsed = TimeProvider.GetElapsedTime(started);
            var attempts = singleAttempt ? 1 : _options.MaxAttempts;
            var details = new Dictionary<string, string>
            {
                ["endpoint"] = Endpoint,
                ["attempts"] = attempts.ToString(),
                ["elapsedMs"] = ((long)elapsed.TotalMilliseconds).ToString(),
                ["messageType"] = exchange.MessageType,
                ["requestId"] = requestId,
            };
            var hint = "is it running? start one with `onex registry serve`";
            if (_channel.DropsWithoutReply > 0)
            {
                // The registry accepted the TCP connection and closed it during the ZeroMQ handshake (RegistryClient.Curve.cs).
                details["reason"] = "handshake";
                details["connectionsClosed"] = _channel.DropsWithoutReply.ToString();
                details["curve"] = ServerKey is null ? "off" : "on";
                hint = HandshakeHint();
            }
            var unavailable = new UnavailableException(
                $"registry at {Endpoint} did not answer within {FormatSeconds(elapsed)} ({attempts} attempt{(attempts == 1 ? "" : "s")}); {hint}",
                details, ex);
            Onex.Diagnostics.OnexRegistryDiagnostics.RecordFailure(activity, unavailable);
            throw unavailable;
        }
        finally
        {
            _channel.Complete(requestId);
        }
    }

    /// <summary>
    /// Compares the registry's epoch with the one this node was asserted in, and re-asserts (or waits for the
    /// re-assertion under way) when they differ. Failures are logged: the caller decides what a missing lease means.
    /// </summary>
    /// <returns>The epoch the request endpoint answered with, or null when it could not be asked.</returns>
    internal async ValueTask<string?> CheckEpochAsync(CancellationToken cancellationToken)
    {
        try
        {
            var stats = await DescribeAsync(new IntrospectionRequest { Include = StatsOnly }, cancellationToken).ConfigureAwait(false);
            if (_present && stats.Epoch != _epoch)
                await TriggerReassertion($"registry epoch is {stats.Epoch}, node was asserted in {_epoch}").ConfigureAwait(false);
            return stats.Epoch;
        }
        catch (OnexException ex)
        {
            RegistryClientLog.ReassertFailed(_logger, NodeId, ex.Code, ex.Message);
        }
        catch (ObjectDisposedException ex)
        {
            RegistryClientLog.ReassertFailed(_logger, NodeId, ErrorCodes.Unavailable, ex.Message);
        }
        return null;
    }

    /// <summary>
    /// The one place a lease is asked back from a restarted registry: the same port, TTL, protocol and purpose.
    /// The holder may have the port bound, which the registry's free check would reject, so the request is a
    /// <see cref="PortRequest.Reclaim"/>: granted without the free check unless the port is outside the pool or
    /// leased to someone else (PORT_UNAVAILABLE).
    /// </summary>
    internal PortRequest BuildReclaimRequest(PortLease lease) => new()
    {
        NodeId = NodeId,
        Count = 1,
        TtlMs = lease.TtlMs,
        PreferredPort = lease.Port,
        Protocol = lease.Protocol,
        Purpose = lease.Purpose,
        Reclaim = true,
    };

    private async ValueTask EnsurePresentAsync(CancellationToken cancellationToken)
    {
        if (_present) return;
        await _presenceGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_present) return;
            var epoch = await AnnounceAsync(cancellationToken).ConfigureAwait(false);
            _epoch = epoch;
            _present = true;
            RegistryClientLog.Announced(_logger, NodeId, Endpoint, epoch);
            _epochSource = new ZmqRegistryBroadcastSource(
                PubEndpoint, ChangeTypes.HeartbeatTopic, _sockets, capacity: 1024, changeFilter: null,
                _loggerFactory.CreateLogger<ZmqRegistryBroadcastSource>());
            _heartbeats = Task.Run(() => HeartbeatLoopAsync(_stop.Token));
            _epochListener = Task.Run(() => EpochListenerLoopAsync(_epochSource, _stop.Token));
        }
        finally
        {
            _presenceGate.Release();
        }
    }

    /// <summary>Announces the node and returns the registry epoch it was announced in.</summary>
    private async ValueTask<string> AnnounceAsync(CancellationToken cancellationToken)
    {
        // The epoch is read first: if the registry restarts in between, the node is announced to the new
        // instance under the old epoch, and the epoch listener notices the difference and re-asserts.
        var stats = await DescribeAsync(new IntrospectionRequest { Include = StatsOnly }, cancellationToken).ConfigureAwait(false);
        await RequestAsync<NodeAnnouncement, NodeRecord>(new NodeAnnouncement
        {
            NodeId = NodeId,
            Name = _options.NodeName ?? DefaultNodeName(),
            Host = Environment.MachineName,
            ProcessId = Environment.ProcessId,
            HeartbeatIntervalMs = (long)_options.HeartbeatInterval.TotalMilliseconds,
            Metadata = _options.NodeMetadata,
        }, cancellationToken).ConfigureAwait(false);
        return stats.Epoch;
    }

    private async Task HeartbeatLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, TimeProvider);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await RequestAsync<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = NodeId }, cancellationToken).ConfigureAwait(false);
            }
            catch (NotFoundException ex)
            {
                // The registry does not know this node: it restarted, or dropped the node after a long silence.
                _ = TriggerReassertion($"the registry does not know node {NodeId} ({ex.Message})");
            }
            catch (OnexException ex)
            {
                RegistryClientLog.HeartbeatFailed(_logger, NodeId, ex.Code, ex.Message);
            }
        }
    }

    private async Task EpochListenerLoopAsync(IRegistryBroadcastSource source, CancellationToken cancellationToken)
    {
        // An epoch heard on PUB that the request endpoint did not confirm: the PUB endpoint belongs to another
        // registry (a misconfiguration), so its heartbeats must not trigger a re-assertion every second.
        string? unconfirmedEpoch = null;
        await foreach (var broadcast in source.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (broadcast.Heartbeat is not { } heartbeat || heartbeat.Stopping) continue;
            var known = _epoch;
            if (known is null || heartbeat.Epoch == known || heartbeat.Epoch == unconfirmedEpoch || !_reassertion.IsCompleted) continue;
            RegistryClientLog.EpochChanged(_logger, known, heartbeat.Epoch);
            // The request endpoint is the authority: re-assert only when it is in a new epoch too.
            var routerEpoch = await CheckEpochAsync(cancellationToken).ConfigureAwait(false);
            if (routerEpoch is not null && routerEpoch != heartbeat.Epoch)
            {
                unconfirmedEpoch = heartbeat.Epoch;
                RegistryClientLog.ForeignBroadcasts(_logger, PubEndpoint, heartbeat.Epoch, Endpoint, routerEpoch);
            }
        }
    }

    /// <summary>Starts a re-assertion, or returns the one under way (there is only ever one at a time).</summary>
    private Task TriggerReassertion(string reason)
    {
        lock (_reassertGate)
        {
            if (!_reassertion.IsCompleted || Volatile.Read(ref _disposed) != 0) return _reassertion;
            _reassertion = Task.Run(() => ReassertAsync(reason, _stop.Token));
            return _reassertion;
        }
    }

    private async Task ReassertAsync(string reason, CancellationToken cancellationToken)
    {
        RegistryClientLog.Reasserting(_logger, NodeId, reason);
        try
        {
            var epoch = await AnnounceAsync(cancellationToken).ConfigureAwait(false);
            var buses = 0;
            foreach (var registration in _buses.Values)
            {
                if (await RestoreAsync<EventBusRegistration, EventBusRecord>(registration, $"bus {registration.Name}", cancellationToken).ConfigureAwait(false))
                    buses++;
            }
            var tools = 0;
            foreach (var registration in _tools.Values)
            {
                if (await RestoreAsync<ToolContractRegistration, ToolContractRecord>(
                        registration, $"tool {registration.Name}@{registration.Version}", cancellationToken).ConfigureAwait(false))
                    tools++;
            }
            var reclaimed = 0;
            var lost = 0;
            foreach (var set in _leaseSets.Keys)
            {
                foreach (var lease in set.HeldLeases)
                {
                    if (await ReclaimAsync(set, lease, cancellationToken).ConfigureAwait(false)) reclaimed++;
                    else lost++;
                }
            }
            var previous = _epoch;
            _epoch = epoch;
            RegistryClientLog.Reasserted(_logger, NodeId, epoch, buses, tools, reclaimed, lost);
            RaiseReasserted(new RegistryReassertedEventArgs(previous, epoch, buses, tools, reclaimed, lost, reason));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is OnexException or ObjectDisposedException)
        {
            // The next registry heartbeat in the new epoch, or the next NOT_FOUND, triggers another attempt.
            RegistryClientLog.ReassertFailed(_logger, NodeId, (ex as OnexException)?.Code ?? ErrorCodes.Unavailable, ex.Message);
        }
    }

    /// <summary>
    /// Registers one bus or tool again. A refusal (say, another node took the bus name meanwhile) is logged and
    /// skipped so the rest is still restored; an unreachable registry aborts the whole re-assertion for a retry.
    /// </summary>
    private async ValueTask<bool> RestoreAsync<TRequest, TReply>(TRequest registration, string what, CancellationToken cancellationToken)
        where TReply : class
    {
        try
        {
            await RequestAsync<TRequest, TReply>(registration, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (OnexException ex) when (ex is not UnavailableException)
        {
            RegistryClientLog.RestoreRefused(_logger, NodeId, what, ex.Code, ex.Message);
            return false;
        }
    }

    /// <summary>Asks the restarted registry for <paramref name="lease"/>'s port again; true when the same port came back.</summary>
    private async ValueTask<bool> ReclaimAsync(PortLeaseSet set, PortLease lease, CancellationToken cancellationToken)
    {
        PortLease granted;
        var sentAt = TimeProvider.GetTimestamp();
        try
        {
            var grant = await RequestAsync<PortRequest, PortGrant>(BuildReclaimRequest(lease), cancellationToken).ConfigureAwait(false);
            granted = grant.Leases[0];
        }
        catch (OnexException ex) when (ex is LeaseException or NotOwnerException)
        {
            set.MarkLost(lease.LeaseId, $"port {lease.Port} could not be reclaimed after a registry restart: {ex.Code} {ex.Message}");
            return false;
        }
        if (granted.Port == lease.Port)
            return set.TryReplace(lease.LeaseId, granted, "reclaimed after a registry restart", sentAt);

        // A registry without reclaim support may offer another port: of no use to a holder bound to the old one,
        // so give it back and say the lease is lost.
        try
        {
            await ReleaseLeaseAsync(granted, singleAttempt: false, cancellationToken).ConfigureAwait(false);
        }
        catch (OnexException ex)
        {
            RegistryClientLog.LeaseReleaseFailed(_logger, granted.LeaseId, granted.Port, ex.Code, ex.Message);
        }
        set.MarkLost(lease.LeaseId, $"port {lease.Port} could not be reclaimed after a registry restart (the registry offered {granted.Port} instead)");
        return false;
    }

    private void RaiseReasserted(RegistryReassertedEventArgs args)
    {
        try
        {
            Reasserted?.Invoke(this, args);
        }
        catch (Exception ex)
        {
            RegistryClientLog.ReassertedHandlerFailed(_logger, NodeId, ex);
        }
    }

    /// <summary>The failures the retry pipeline retries: no reply in time, or an UNAVAILABLE error reply.</summary>
    private static bool IsRetried(Exception ex) => ex is TimeoutException or UnavailableException;

    private ResiliencePipeline BuildRetryPipeline() => _options.MaxAttempts == 1 ? ResiliencePipeline.Empty : new ResiliencePipelineBuilder { TimeProvider = TimeProvider }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(IsRetried),
            MaxRetryAttempts = _options.MaxAttempts - 1,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = _options.RetryBaseDelay,
            MaxDelay = _options.RetryMaxDelay,
        })
        .Build();

    /// <summary>The host whose registry a <c>nats://</c> endpoint reaches: the option, else <c>ONEX_REGISTRY_HOST</c>, else this machine's name.</summary>
    private static string RegistryHostName(RegistryClientOptions options) =>
        !string.IsNullOrWhiteSpace(options.HostName) ? options.HostName
        : Environment.GetEnvironmentVariable("ONEX_REGISTRY_HOST") is { Length: > 0 } fromEnvironment ? fromEnvironment
        : Environment.MachineName;

    private static string DefaultNodeId() =>
        $"{Environment.MachineName.ToLowerInvariant()}-{Environment.ProcessId}-{Random.Shared.Next(0x1000000):x6}";

    private static string DefaultNodeName() =>
        Environment.ProcessPath is { } path ? Path.GetFileNameWithoutExtension(path) : "";

    private static string FormatSeconds(TimeSpan elapsed) =>
        elapsed.TotalSeconds >= 10 ? $"{elapsed.TotalSeconds:0} s" : $"{elapsed.TotalSeconds:0.#} s";

    /// <summary>One request's attempts: the same frame and request id each time.</summary>
    private sealed class Exchange(RegistryClient client, string requestId, byte[] frame, string messageType)
    {
        private int _attempts;

        public string MessageType { get; } = messageType;

        /// <summary>The transient failure of an attempt made outside the retry pipeline, to be replayed as its first attempt.</summary>
        public ExceptionDispatchInfo? FirstFailure { get; set; }

        public async ValueTask<TReply> SendAsync<TReply>(CancellationToken cancellationToken) where TReply : class
        {
            if (FirstFailure is { } failure)
            {
                // The first attempt ran outside the retry pipeline (RequestAsync); its failure is the pipeline's first outcome.
                FirstFailure = null;
                failure.Throw();
            }
            if (++_attempts > 1)
                RegistryClientLog.Retrying(client._logger, MessageType, requestId, _attempts);
            var reply = await client._channel.ExchangeAsync(requestId, frame, cancellationToken).ConfigureAwait(false);
            if (reply.MessageType == MessageTypes.Of<Error>())
            {
                // Forget this reply so that a retry (of UNAVAILABLE) is sent afresh instead of reading it again.
                client._channel.Complete(requestId);
                var error = reply.BodyAs<Error>();
                throw OnexException.FromError(error.Code, error.Message, error.Details, origin: $"registry at {client.Endpoint}");
            }
            if (reply.MessageType != MessageTypes.Of<TReply>())
                throw new MalformedMessageException(
                    $"The registry answered {MessageType} with {reply.MessageType}, expected {MessageTypes.Of<TReply>()}.",
                    new Dictionary<string, string> { ["requestId"] = requestId, ["messageType"] = reply.MessageType });
            return reply.BodyAs<TReply>();
        }
    }
}

/// <summary>The outcome of a re-assertion after a registry restart.</summary>
public sealed class RegistryReassertedEventArgs(
    string? previousEpoch, string epoch, int buses, int tools, int leasesReclaimed, int leasesLost, string reason) : EventArgs
{
    /// <summary>The epoch the node was asserted in before.</summary>
    public string? PreviousEpoch { get; } = previousEpoch;

    /// <summary>The registry epoch the node is now asserted in.</summary>
    public string Epoch { get; } = epoch;

    /// <summary>Buses registered again.</summary>
    public int Buses { get; } = buses;

    /// <summary>Tool contracts registered again.</summary>
    public int Tools { get; } = tools;

    /// <summary>Leases taken back on the same port.</summary>
    public int LeasesReclaimed { get; } = leasesReclaimed;

    /// <summary>Leases that could not be taken back (reported on their <see cref="PortLeaseSet"/>).</summary>
    public int LeasesLost { get; } = leasesLost;

    /// <summary>What triggered it.</summary>
    public string Reason { get; } = reason;
}
