using System.Collections.Frozen;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.RegistryNode.Metrics;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Turns one request frame into one reply frame: decode the envelope, check the version and message type,
/// answer retries from the <see cref="ReplyCache"/>, decode the body, run the handler, encode the reply.
/// Every failure becomes an Error reply carrying a catalogue code; nothing escapes. Runs on the registry thread.
/// </summary>
internal sealed partial class RequestDispatcher
{
    private sealed record Handler(Type RequestType, Func<RegistryState, RegistryEnvelope, byte[]> Invoke);

    private static readonly FrozenDictionary<string, Handler> Handlers = new[]
    {
        Of<PortRequest, PortGrant>((r, m) => r.Handle(m)),
        Of<LeaseRenewal, PortLease>((r, m) => r.Handle(m)),
        Of<LeaseRelease, Ack>((r, m) => r.Handle(m)),
        Of<PortConflict, PortLease>((r, m) => r.Handle(m)),
        Of<NodeAnnouncement, NodeRecord>((r, m) => r.Handle(m)),
        Of<NodeHeartbeat, Ack>((r, m) => r.Handle(m)),
        Of<NodeDeparture, Ack>((r, m) => r.Handle(m)),
        Of<EventBusRegistration, EventBusRecord>((r, m) => r.Handle(m)),
        Of<EventBusDeregistration, Ack>((r, m) => r.Handle(m)),
        Of<ToolContractRegistration, ToolContractRecord>((r, m) => r.Handle(m)),
        Of<ValidatePayload, ValidationResult>((r, m) => r.Handle(m)),
        Of<IntrospectionRequest, IntrospectionResponse>((r, m) => r.Handle(m)),
        Of<SnapshotRequest, RegistrySnapshot>((r, m) => r.Handle(m)),
        // Answered by the WatchHub (Execute), which needs the peer and the caller.
        Of<Watch, WatchEvent>((_, _) => throw new InvalidOperationException("Watch is answered by the WatchHub.")),
        Of<WatchCredit, Ack>((_, _) => throw new InvalidOperationException("WatchCredit is answered by the WatchHub.")),
        Of<WatchCancel, Ack>((_, _) => throw new InvalidOperationException("WatchCancel is answered by the WatchHub.")),
    }.ToFrozenDictionary(h => MessageTypes.NameOf(h.RequestType), StringComparer.Ordinal);

    // Requests that change state: refused while the store refuses writes, and their replies are stored for retries.
    private static readonly FrozenSet<string> Writes = new[]
    {
        typeof(PortRequest), typeof(LeaseRenewal), typeof(LeaseRelease), typeof(PortConflict), typeof(NodeAnnouncement),
        typeof(NodeHeartbeat), typeof(NodeDeparture), typeof(EventBusRegistration), typeof(EventBusDeregistration),
        typeof(ToolContractRegistration),
    }.Select(MessageTypes.NameOf).ToFrozenSet(StringComparer.Ordinal);

    private RegistryState _registry;
    private ReplyCache _cache;
    private readonly ILogger _logger;
    private readonly RegistryMetrics? _metrics;
    private string _metricType = RegistryMetrics.UnreadableType;
    private string _metricCode = RegistryMetrics.Ok;
    // The server span of the request being dispatched (null when nothing listens); a stopped one is left alone.
    private System.Diagnostics.Activity? _span;
    // Whether a request goes free of its tenant's request rate (an open watch's WatchCredit); one delegate for all requests.
    private readonly Func<RegistryEnvelope, bool> _uncharged;

    public RequestDispatcher(RegistryState registry, ReplyCache cache, ILogger logger, RegistryMetrics? metrics = null)
    {
        _registry = registry;
        _cache = cache;
        _logger = logger;
        _metrics = metrics;
        _uncharged = envelope => Watches?.TakeUncharged(Peer.Identity, envelope) == true;
    }

    /// <summary>Access control (an auth file is configured), or null: the registry runs open.</summary>
    public AuthGate? Auth { get; init; }

    /// <summary>The change streams opened with Watch (PROTOCOL.md 16.7); null: Watch is UNAVAILABLE.</summary>
    public Onex.RegistryNode.Watches.WatchHub? Watches { get; init; }

    /// <summary>The routing identity and framing of the request being dispatched (a watch streams to that peer).</summary>
    public (byte[] Identity, bool ViaReq) Peer { get; set; } = ([], false);

    /// <summary>The state requests run against.</summary>
    public RegistryState Registry => _registry;

    /// <summary>The replies kept for retries.</summary>
    public ReplyCache Cache => _cache;

    /// <summary>The ids of the request last dispatched (empty when unreadable), to answer it again if its commit fails.</summary>
    public (string RequestId, string ClientId) LastIds { get; private set; } = ("", "");

    /// <summary>
    /// Set while the store refuses writes: requests that change state get UNAVAILABLE (reason <c>storage</c>) and
    /// change nothing; reads and retries answered from the cache keep working.
    /// </summary>
    public bool StoreUnavailable { get; set; }

    /// <summary>True for a message type whose request changes state.</summary>
    public static bool IsWrite(string messageType) => Writes.Contains(messageType);

    /// <summary>Continues with <paramref name="registry"/> and <paramref name="cache"/> (the state as last committed, after a failed commit).</summary>
    public void Replace(RegistryState registry, ReplyCache cache)
    {
        _registry = registry;
        _cache = cache;
    }

    /// <summary>An UNAVAILABLE reply (reason <c>storage</c>) for a request whose changes could not be stored.</summary>
    public byte[] StorageFailed(string requestId, string clientId) =>
        Fail(requestId, clientId, ErrorCodes.Unavailable,
            "The registry could not store the change (disk full or unwritable); nothing was changed. Retry later.",
            new Dictionary<string, string> { ["reason"] = "storage" });

    /// <summary>The message types this registry answers.</summary>
    public static IEnumerable<string> RequestTypes => Handlers.Keys;

    /// <summary>Replies over this size are refused with TOO_LARGE (PROTOCOL.md 2.3: clients accept replies up to 64 MiB).</summary>
    public const int MaxReplyBytes = 64 * 1024 * 1024;

    /// <summary>Set while the node shuts down: requests get UNAVAILABLE (reason <c>stopping</c>) and change nothing.</summary>
    public bool Stopping { get; set; }

    /// <summary>Answers one request frame, checking in PROTOCOL.md's order (section 5). A request that would wait for the cluster is answered UNAVAILABLE.</summary>
    public byte[] Dispatch(ReadOnlyMemory<byte> frame) => Dispatch(frame, answerLater: null)!;

    /// <summary>
    /// Answers one request frame, or parks it and returns null: a registration waiting for a cluster claim is answered
    /// later through <paramref name="answerLater"/>, on the registry thread, inside a wake-up (so its reply goes after
    /// that wake-up's commit like any other), with <see cref="LastIds"/> set to its ids.
    /// </summary>
    public byte[]? Dispatch(ReadOnlyMemory<byte> frame, Action<byte[]>? answerLater)
    {
        if (_metrics is not { RequestsObserved: true }) return DispatchCore(frame, answerLater);
        var started = Registry.Time.GetTimestamp();
        _metricType = RegistryMetrics.UnreadableType;
        _metricCode = RegistryMetrics.Ok;
        var reply = DispatchCore(frame, answerLater);
        if (reply is not null) _metrics.Request(_metricType, _metricCode, Registry.Time.GetElapsedTime(started));
        return reply;
    }

    /// <summary>A MALFORMED reply for a message with the wrong frame count (it never reaches <see cref="Dispatch(ReadOnlyMemory{byte})"/>).</summary>
    public byte[] FailFraming(string message, IReadOnlyDictionary<string, string> details)
    {
        var reply = Fail("", "", ErrorCodes.Malformed, message, details);
        _metrics?.Request(RegistryMetrics.UnreadableType, ErrorCodes.Malformed, took: null);
        return reply;
    }

    private byte[]? DispatchCore(ReadOnlyMemory<byte> frame, Action<byte[]>? answerLater)
    {
        LastIds = ("", "");
        RegistryEnvelope envelope;
        try
        {
            envelope = RegistryCodec.Decode(frame);
        }
        catch (OnexException ex)
        {
            var (requestId, clientId) = IdsOf(ex, frame);
            return Fail(requestId, clientId, ex.Code, ex.Message, ex.Details);
        }
        catch (Exception ex)
        {
            LogUnexpected(ex, "(undecoded)");
            return Fail("", "", ErrorCodes.Internal, "The registry failed to read the frame; nothing was changed.", null);
        }

        // RegistryEnvelope.schema.json: ids of at most 256 characters. A longer one cannot be echoed in a valid reply.
        foreach (var (field, id) in new[] { ("requestId", envelope.RequestId), ("clientId", envelope.ClientId) })
        {
            if (id.Length > Reject.MaxNameLength && Reject.LengthOf(id) > Reject.MaxNameLength)
                return Fail("", "", ErrorCodes.Malformed,
                    $"Field '{field}' is longer than {Reject.MaxNameLength} characters; the reply cannot echo it, so both ids are empty.",
                    new Dictionary<string, string> { ["field"] = field, ["reason"] = "tooLong" });
        }

        LastIds = (envelope.RequestId, envelope.ClientId);
        using var activity = Onex.Diagnostics.OnexRegistryDiagnostics.StartServerActivity(envelope);
        _span = activity; // Fail marks it with the reply's error code while it runs
        // A label from a closed set: the type a client sent is used only when the registry answers it.
        _metricType = Handlers.ContainsKey(envelope.MessageType) ? envelope.MessageType : RegistryMetrics.UnknownType;
        if (envelope.ProtocolVersion != ProtocolVersion.Current)
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.UnsupportedVersion,
                $"Protocol version {envelope.ProtocolVersion} is not supported; this registry speaks {ProtocolVersion.Current}.",
                new Dictionary<string, string> { ["supported"] = ProtocolVersion.Current.ToString(), ["received"] = envelope.ProtocolVersion.ToString() });

        if (Stopping)
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.Unavailable, "The registry is stopping and takes no new requests.",
                new Dictionary<string, string> { ["reason"] = "stopping" });

        // With access control, nothing (not even a remembered reply) goes to a caller without a valid token, and
        // remembered replies are kept per tenant, so a client id chosen in two tenants never shares replies.
        AuthCaller? caller = null;
        var cacheClient = envelope.ClientId;
        if (Auth is { } gate)
        {
            if (gate.Admit(envelope, out caller, _uncharged) is { } refused)
                return Fail(envelope.RequestId, envelope.ClientId, refused.Code, refused.Message, refused.Details);
            cacheClient = caller!.Tenant + "/" + envelope.ClientId;
        }

        // A retry is answered from memory before anything else is looked at (empty ids cannot be told apart).
        // Watch requests act per connection (the WatchHub recognises a retried Watch itself): never answered from memory.
        var rememberable = envelope.ClientId.Length > 0 && envelope.RequestId.Length > 0 && !Onex.RegistryNode.Watches.WatchHub.Handles(envelope.MessageType);
        if (rememberable)
        {
            switch (_cache.Lookup(cacheClient, envelope.RequestId, envelope.MessageType, envelope.Body.Span, out var cached, out var cachedCode))
            {
                case ReplyCache.Outcome.Hit:
                    if (cachedCode is null) _registry.Stats.Served();
                    else
                    {
                        _registry.Stats.Failed(_metricCode = cachedCode);
                        Onex.Diagnostics.OnexRegistryDiagnostics.RecordError(activity, cachedCode, $"{cachedCode}, answered from memory (a retry; PROTOCOL.md 4)");
                    }
                    return cached;
                case ReplyCache.Outcome.Mismatch:
                    return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.InvalidArgument,
                        $"Request id '{envelope.RequestId}' was already used by this client for a different request; use a new id for a new request.",
                        new Dictionary<string, string> { ["field"] = "requestId", ["reason"] = "reused" });
            }
        }

        var write = IsWrite(envelope.MessageType);
        if (write && StoreUnavailable) return StorageFailed(envelope.RequestId, envelope.ClientId);

        var (reply, errorCode) = Execute(envelope, caller, frame, answerLater);
        if (reply is null) return null; // parked: dispatched again when the cluster has decided
        // PROTOCOL.md 4: INTERNAL and UNAVAILABLE left no trace and are not remembered: their retry executes again.
        if (errorCode is ErrorCodes.Internal or ErrorCodes.Unavailable) return reply;
        if (reply.Length > MaxReplyBytes)
        {
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.TooLarge,
                $"The reply to {envelope.MessageType} would be {reply.Length} bytes, over the reply limit of {MaxReplyBytes}; narrow it with filters.",
                new Dictionary<string, string> { ["size"] = reply.Length.ToString(), ["limit"] = MaxReplyBytes.ToString() });
        }
        if (rememberable) _cache.Add(cacheClient, envelope.RequestId, envelope.MessageType, envelope.Body.Span, reply, errorCode, store: write && _registry.Changes.Enabled);
        return reply;
    }

    /// <summary>Runs the handler; returns the reply and, for an Error reply, its code (already counted); a null reply when parked.</summary>
    private (byte[]? Reply, string? ErrorCode) Execute(RegistryEnvelope envelope, AuthCaller? caller, ReadOnlyMemory<byte> frame, Action<byte[]>? answerLater)
    {
        try
        {
            if (!Handlers.TryGetValue(envelope.MessageType, out var handler))
            {
                return (Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.UnknownMessageType,
                    $"Message type '{envelope.MessageType}' is not a request this registry answers.",
                    new Dictionary<string, string> { ["messageType"] = envelope.MessageType, ["supported"] = string.Join(",", Handlers.Keys.Order(StringComparer.Ordinal)) }),
                    ErrorCodes.UnknownMessageType);
            }
            try
            {
                var reply = Onex.RegistryNode.Watches.WatchHub.Handles(envelope.MessageType)
                    ? (Watches ?? throw new UnavailableException("This registry serves no watches.", new Dictionary<string, string> { ["reason"] = "watches" }))
                        .Handle(envelope, caller, Peer.Identity.Length > 0 ? Peer.Identity : throw new UnknownMessageTypeException(
                            $"'{envelope.MessageType}' streams over the ZeroMQ request endpoint only (PROTOCOL.md 16.7), not over NATS.",
                            new Dictionary<string, string> { ["messageType"] = envelope.MessageType, ["reason"] = "transport" }), Peer.ViaReq)
                    : Auth is { } gate && caller is not null
                    ? gate.Invoke(_registry, envelope, caller, handler.Invoke)
                    : handler.Invoke(_registry, envelope);
                _registry.Stats.Served();
                return (reply, null);
            }
            catch (RequestParkedException parked)
            {
                // Nothing was changed: the request runs again, from the start, once the cluster has decided.
                var copy = frame.ToArray();
                if (answerLater is not null && parked.Parking.TryPark(copy.Length, () =>
                    {
                        if (Dispatch(copy, answerLater) is { } later) answerLater(later);
                    }))
                    return (null, null);
                return (Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.Unavailable,
                    $"Too many registrations wait for the cluster's decision; nothing was changed. Retry later with the same ids.",
                    new Dictionary<string, string> { ["reason"] = "cluster" }), ErrorCodes.Unavailable);
            }
            catch (MalformedMessageException ex)
            {
                var details = new Dictionary<string, string>(ex.Details);
                var message = ex.Message;
                if ((!details.TryGetValue("field", out var field) || field == "body")
                    && BodyTypeCheck.FindMistyped(handler.RequestType, envelope.Body) is var (name, expected))
                {
                    details["field"] = name == "body" ? "body" : "body." + name;
                    message = $"Field '{name}' of {envelope.MessageType} must be {expected}.";
                }
                return (Fail(envelope.RequestId, envelope.ClientId, ex.Code, message, details), ex.Code);
            }
            catch (OnexException ex)
            {
                return (Fail(envelope.RequestId, envelope.ClientId, ex.Code, ex.Message, ex.Details), ex.Code);
            }
        }
        catch (Exception ex)
        {
            LogUnexpected(ex, envelope.MessageType);
            return (Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.Internal,
                $"The registry failed while handling {envelope.MessageType}; nothing was changed.", null), ErrorCodes.Internal);
        }
        finally
        {
            _registry.ScheduleHousekeeping();
        }
    }

    /// <summary>An Error reply for a frame that never reached the dispatcher (e.g. a bad frame count).</summary>
    public byte[] Fail(string requestId, string clientId, string code, string message, IReadOnlyDictionary<string, string>? details)
    {
        _registry.Stats.Failed(code);
        _metricCode = code;
        if (_span is { IsStopped: false } span) Onex.Diagnostics.OnexRegistryDiagnostics.RecordError(span, code, message);
        return Encode(requestId, clientId, code, message, details);
    }

    private static byte[] Encode(string requestId, string clientId, string code, string message, IReadOnlyDictionary<string, string>? details)
    {
        var cleaned = new Dictionary<string, string>();
        if (details is not null)
            foreach (var (key, value) in details)
                if (key is not ("requestId" or "clientId")) cleaned[key] = value;
        return RegistryCodec.Encode(requestId, clientId, new Error { Code = code, Message = message, Details = cleaned });
    }

    private static (string RequestId, string ClientId) IdsOf(OnexException ex, ReadOnlyMemory<byte> frame)
    {
        var requestId = ex.Details.GetValueOrDefault("requestId");
        var clientId = ex.Details.GetValueOrDefault("clientId");
        if (requestId is null || clientId is null)
        {
            var (r, c) = RegistryCodec.TryReadIds(frame);
            requestId ??= r;
            clientId ??= c;
        }
        return (requestId ?? "", clientId ?? "");
    }

    private static Handler Of<TRequest, TReply>(Func<RegistryState, TRequest, TReply> handle) where TRequest : class =>
        new(typeof(TRequest), (registry, envelope) => RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, handle(registry, Onex.RegistryNode.Auth.DecodedBody.Of<TRequest>(envelope))));

    [LoggerMessage(Level = LogLevel.Error, Message = "Unexpected failure while handling {MessageType}; replied INTERNAL")]
    private partial void LogUnexpected(Exception exception, string messageType);
}
