using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Onex.Errors;
using Onex.Protocol;

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
/// <remarks>
/// A facade over one part per responsibility: <see cref="RegistryRequestEngine"/> (send, correlate, retry, timeouts),
/// <see cref="NodePresence"/> (announce, heartbeat, re-assert, depart), <see cref="RegistryLeases"/> (what a
/// <see cref="PortLeaseSet"/> calls back) and <see cref="RegistryChangeWatch"/> (PUB watch and token watch stream).
/// </remarks>
public sealed class RegistryClient : IAsyncDisposable
{
    private static readonly TimeSpan MaxRetryWindow = TimeSpan.FromSeconds(60);

    private readonly RegistryClientOptions _options;
    private readonly RegistryRequestEngine _requests;
    private readonly NodePresence _presence;
    private readonly RegistryLeases _leases;
    private readonly RegistryChangeWatch _watch;
    private readonly ILogger _logger;
    private int _disposed;

    private RegistryClient(RegistryClientOptions options)
    {
        _options = options;
        if (options.MaxAttempts < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxAttempts must be at least 1.");
        if (options.RequestTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "RequestTimeout must be positive.");
        if (options.HeartbeatInterval <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), "HeartbeatInterval must be positive.");
        if (options.WatchBufferBytes < 1) throw new ArgumentOutOfRangeException(nameof(options), "WatchBufferBytes must be positive.");
        // The registry remembers replies for at least 60 s; a retry after that could act twice.
        var retryWindow = options.RequestTimeout * options.MaxAttempts + options.RetryMaxDelay * (options.MaxAttempts - 1);
        if (retryWindow > MaxRetryWindow)
            throw new ArgumentOutOfRangeException(nameof(options),
                $"RequestTimeout x MaxAttempts plus backoff ({retryWindow.TotalSeconds:0.#} s) must stay within {MaxRetryWindow.TotalSeconds} s, how long the registry remembers replies.");
        TimeProvider = options.TimeProvider ?? TimeProvider.System;
        var loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        _logger = loggerFactory.CreateLogger<RegistryClient>();
        var leaseSetLogger = loggerFactory.CreateLogger<PortLeaseSet>(); // one for every set: CreateLogger<T> builds the category name each call
        Endpoint = RegistryEndpoints.ResolveRouter(options.Endpoint);
        var token = RegistryToken.Resolve(options.Token);
        PubEndpoint = RegistryEndpoints.ResolvePub(options.PubEndpoint);
        NodeId = !string.IsNullOrWhiteSpace(options.NodeId) ? options.NodeId
            : options.NodeIdFile is { Length: > 0 } idFile ? Onex.Transports.Registry.NodeIdFile.ReadOrCreate(idFile) : DefaultNodeId();
        ClientId = $"{NodeId}/{Guid.NewGuid():N}"; // the protocol's suggested form: stable for this client, unique per instance
        ServerKey = RegistryEndpoints.ResolveServerKey(options.ServerKey);
        var sockets = ServerKey is null ? options.Socket : options.Socket with { CurveServerKey = ServerKey }; // with CURVE when a server key is known
        var tenant = RegistryTenant.Resolve(options.Tenant);
        _requests = new RegistryRequestEngine(options, Endpoint, ServerKey, sockets, ClientId, token, tenant, RegistryHostName(options), TimeProvider, _logger);
        _leases = new RegistryLeases(_requests, NodeId, CheckEpochAsync, _logger, leaseSetLogger);
        _presence = new NodePresence(_requests, _leases, options, NodeId, PubEndpoint, sockets, loggerFactory, _logger, RaiseReasserted);
        _watch = new RegistryChangeWatch(_requests, PubEndpoint, sockets, token, tenant, options.WatchBufferBytes, options.ExpectedRegistryHeartbeatInterval, SnapshotAsync, loggerFactory);
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
    public string? Epoch => _presence.Epoch;

    /// <summary>Requests awaiting a reply right now.</summary>
    public int RequestsInFlight => _requests.InFlight;

    /// <summary>Raised (on a background thread) after the node, buses, tools and leases were re-asserted with a restarted registry.</summary>
    public event EventHandler<RegistryReassertedEventArgs>? Reasserted;

    internal TimeProvider TimeProvider { get; }

    /// <summary>Test seam: drops replies for which it returns false, as if lost on the wire.</summary>
    internal Func<RegistryEnvelope, bool>? ReplyFilter
    {
        get => _requests.ReplyFilter;
        set => _requests.ReplyFilter = value;
    }

    /// <summary>Test seam: watchers started afterwards drop changes for which it returns false, as if lost on the wire.</summary>
    internal Func<RegistryChange, bool>? WatchChangeFilter
    {
        get => _watch.ChangeFilter;
        set => _watch.ChangeFilter = value;
    }

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
            await client._presence.EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
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
        await _presence.EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
        return await _leases.LeaseAsync(count, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Leases one port; the same as <see cref="LeasePortsAsync"/> with a count of one.</summary>
    public ValueTask<PortLeaseSet> LeasePortAsync(LeaseRequestOptions? options = null, CancellationToken cancellationToken = default) =>
        LeasePortsAsync(1, options, cancellationToken);

    /// <summary>
    /// Reports that <paramref name="lease"/>'s port could not be bound. The registry quarantines the port, ends the
    /// lease and grants a replacement, which is returned and, when the lease belongs to a <see cref="PortLeaseSet"/>
    /// of this client, takes its place there.
    /// </summary>
    public ValueTask<PortLease> ReportConflictAsync(PortLease lease, string? reason = null, CancellationToken cancellationToken = default) =>
        _leases.ReportConflictAsync(lease, reason, cancellationToken);

    /// <summary>
    /// Releases <paramref name="lease"/>, presenting its holder node and fencing token. Usually a
    /// <see cref="PortLeaseSet"/> does this on dispose; this is for leases held elsewhere (an operator
    /// releasing a stuck lease). Throws <see cref="LeaseNotFoundException"/>, <see cref="FencedException"/> or <see cref="NotOwnerException"/>.
    /// </summary>
    public ValueTask ReleaseLeaseAsync(PortLease lease, CancellationToken cancellationToken = default) =>
        _leases.ReleaseLeaseAsync(lease, singleAttempt: false, cancellationToken);

    internal ValueTask<PortLease> RenewLeaseAsync(PortLease lease, CancellationToken cancellationToken) =>
        _leases.RenewLeaseAsync(lease, cancellationToken);

    /// <summary>
    /// Registers (or updates) an event bus owned by this node. It is registered again automatically after a
    /// registry restart. Throws <see cref="InvalidArgumentException"/>, or <see cref="NotOwnerException"/> when another node owns a bus by that name.
    /// </summary>
    public async ValueTask<EventBusRecord> RegisterBusAsync(
        string name, string kind, IReadOnlyList<string> endpoints,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        var registration = new EventBusRegistration { Name = name, Kind = kind, Endpoints = endpoints, NodeId = NodeId, Metadata = metadata };
        await _presence.EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
        var record = await RequestAsync<EventBusRegistration, EventBusRecord>(registration, cancellationToken).ConfigureAwait(false);
        _presence.RememberBus(registration);
        return record;
    }

    /// <summary>Removes a bus this node registered. Throws <see cref="NotFoundException"/> when there is none by that name.</summary>
    public async ValueTask DeregisterBusAsync(string name, CancellationToken cancellationToken = default)
    {
        _presence.ForgetBus(name);
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
        await _presence.EnsurePresentAsync(cancellationToken).ConfigureAwait(false);
        var record = await RequestAsync<ToolContractRegistration, ToolContractRecord>(registration, cancellationToken).ConfigureAwait(false);
        _presence.RememberTool(registration);
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
        await foreach (var item in _watch.WatchAsync(topicPrefix, cancellationToken).ConfigureAwait(false))
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
        _requests.Close();
        await _presence.StopAsync().ConfigureAwait(false);
        await _leases.ReleaseAllAsync().ConfigureAwait(false);
        await _presence.DepartAsync().ConfigureAwait(false);
        _presence.Dispose();
        await _requests.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Sends one request through the request engine (<see cref="RegistryRequestEngine.RequestAsync"/>).</summary>
    internal ValueTask<TReply> RequestAsync<TRequest, TReply>(TRequest body, CancellationToken cancellationToken, bool singleAttempt = false)
        where TReply : class =>
        _requests.RequestAsync<TRequest, TReply>(body, cancellationToken, singleAttempt);

    /// <summary>What a <see cref="PortLeaseSet"/> asks when a renewal finds its lease unknown: has the registry restarted?</summary>
    private ValueTask<string?> CheckEpochAsync(CancellationToken cancellationToken) => _presence.CheckEpochAsync(cancellationToken);

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

    /// <summary>The host whose registry a <c>nats://</c> endpoint reaches: the option, else <c>ONEX_REGISTRY_HOST</c>, else this machine's name.</summary>
    private static string RegistryHostName(RegistryClientOptions options) =>
        !string.IsNullOrWhiteSpace(options.HostName) ? options.HostName
        : Environment.GetEnvironmentVariable("ONEX_REGISTRY_HOST") is { Length: > 0 } fromEnvironment ? fromEnvironment
        : Environment.MachineName;

    private static string DefaultNodeId() =>
        $"{Environment.MachineName.ToLowerInvariant()}-{Environment.ProcessId}-{Random.Shared.Next(0x1000000):x6}";
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
