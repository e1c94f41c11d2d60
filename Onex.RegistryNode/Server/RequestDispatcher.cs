using System.Collections.Frozen;
using Microsoft.Extensions.Logging;
using Onex.Errors;
using Onex.Protocol;

namespace Onex.RegistryNode.Server;

/// <summary>
/// Turns one request frame into one reply frame: decode the envelope, check the version and message type,
/// answer retries from the <see cref="ReplyCache"/>, decode the body, run the handler, encode the reply.
/// Every failure becomes an Error reply carrying a catalogue code; nothing escapes. Runs on the registry thread.
/// </summary>
internal sealed partial class RequestDispatcher
{
    private sealed record Handler(Type RequestType, bool ChangesState, Func<Registry, RegistryEnvelope, byte[]> Invoke);

    private static readonly FrozenDictionary<string, Handler> Handlers = new[]
    {
        Changing<PortRequest, PortGrant>((r, m) => r.Handle(m)),
        Changing<LeaseRenewal, PortLease>((r, m) => r.Handle(m)),
        Changing<LeaseRelease, Ack>((r, m) => r.Handle(m)),
        Changing<PortConflict, PortLease>((r, m) => r.Handle(m)),
        Changing<NodeAnnouncement, NodeRecord>((r, m) => r.Handle(m)),
        // A heartbeat is idempotent by nature; caching it would only push lease replies out of the cache.
        Reading<NodeHeartbeat, Ack>((r, m) => r.Handle(m)),
        Changing<NodeDeparture, Ack>((r, m) => r.Handle(m)),
        Changing<EventBusRegistration, EventBusRecord>((r, m) => r.Handle(m)),
        Changing<EventBusDeregistration, Ack>((r, m) => r.Handle(m)),
        Changing<ToolContractRegistration, ToolContractRecord>((r, m) => r.Handle(m)),
        Reading<ValidatePayload, ValidationResult>((r, m) => r.Handle(m)),
        Reading<IntrospectionRequest, IntrospectionResponse>((r, m) => r.Handle(m)),
        Reading<SnapshotRequest, RegistrySnapshot>((r, m) => r.Handle(m)),
    }.ToFrozenDictionary(h => MessageTypes.NameOf(h.RequestType), StringComparer.Ordinal);

    private readonly Registry _registry;
    private readonly ReplyCache _cache;
    private readonly ILogger _logger;

    public RequestDispatcher(Registry registry, ReplyCache cache, ILogger logger)
    {
        _registry = registry;
        _cache = cache;
        _logger = logger;
    }

    /// <summary>The message types this registry answers.</summary>
    public static IEnumerable<string> RequestTypes => Handlers.Keys;

    /// <summary>Answers one request frame.</summary>
    public byte[] Dispatch(ReadOnlyMemory<byte> frame)
    {
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

        if (envelope.ProtocolVersion != ProtocolVersion.Current)
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.UnsupportedVersion,
                $"Protocol version {envelope.ProtocolVersion} is not supported; this registry speaks {ProtocolVersion.Current}.",
                new Dictionary<string, string> { ["supported"] = ProtocolVersion.Current.ToString(), ["received"] = envelope.ProtocolVersion.ToString() });

        if (!Handlers.TryGetValue(envelope.MessageType, out var handler))
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.UnknownMessageType,
                $"Message type '{envelope.MessageType}' is not a request this registry answers.",
                new Dictionary<string, string> { ["messageType"] = envelope.MessageType, ["supported"] = string.Join(",", Handlers.Keys.Order(StringComparer.Ordinal)) });

        var cacheable = handler.ChangesState && envelope.ClientId.Length > 0;
        if (cacheable)
        {
            switch (_cache.Lookup(envelope.ClientId, envelope.RequestId, envelope.MessageType, envelope.Body.Span, out var cached))
            {
                case ReplyCache.Outcome.Hit:
                    _registry.Stats.Served();
                    return cached;
                case ReplyCache.Outcome.Mismatch:
                    return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.InvalidArgument,
                        $"Request id '{envelope.RequestId}' was already used by this client for a different request; use a new id for a new request.",
                        new Dictionary<string, string> { ["field"] = "requestId" });
            }
        }

        byte[] reply;
        try
        {
            reply = handler.Invoke(_registry, envelope);
            _registry.Stats.Served();
        }
        catch (MalformedMessageException ex)
        {
            var details = new Dictionary<string, string>(ex.Details);
            var message = ex.Message;
            if (!details.TryGetValue("field", out var field) || field == "body")
            {
                if (BodyTypeCheck.FindMistyped(handler.RequestType, envelope.Body) is var (name, expected))
                {
                    details["field"] = name;
                    message = $"Field '{name}' of {envelope.MessageType} must be {expected}.";
                }
            }
            _registry.ScheduleHousekeeping();
            return Fail(envelope.RequestId, envelope.ClientId, ex.Code, message, details);
        }
        catch (OnexException ex)
        {
            reply = Encode(envelope.RequestId, envelope.ClientId, ex.Code, ex.Message, ex.Details);
            _registry.Stats.Failed(ex.Code);
        }
        catch (Exception ex)
        {
            LogUnexpected(ex, envelope.MessageType);
            _registry.ScheduleHousekeeping();
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.Internal,
                $"The registry failed while handling {envelope.MessageType}; nothing was changed.", null);
        }

        if (reply.Length > RegistryCodec.MaxFrameBytes)
        {
            // Only reads (snapshot, introspection) can grow this big; they change nothing, so no cache entry.
            return Fail(envelope.RequestId, envelope.ClientId, ErrorCodes.TooLarge,
                $"The reply to {envelope.MessageType} would be {reply.Length} bytes, over the frame limit of {RegistryCodec.MaxFrameBytes}; narrow it with filters.",
                new Dictionary<string, string> { ["size"] = reply.Length.ToString(), ["limit"] = RegistryCodec.MaxFrameBytes.ToString() });
        }
        if (cacheable) _cache.Add(envelope.ClientId, envelope.RequestId, envelope.MessageType, envelope.Body.Span, reply);
        _registry.ScheduleHousekeeping();
        return reply;
    }

    /// <summary>An Error reply for a frame that never reached the dispatcher (e.g. a bad frame count).</summary>
    public byte[] Fail(string requestId, string clientId, string code, string message, IReadOnlyDictionary<string, string>? details)
    {
        _registry.Stats.Failed(code);
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
            var (r, c) = EnvelopeIds.TryRead(frame);
            requestId ??= r;
            clientId ??= c;
        }
        return (requestId ?? "", clientId ?? "");
    }

    private static Handler Changing<TRequest, TReply>(Func<Registry, TRequest, TReply> handle) where TRequest : class =>
        new(typeof(TRequest), true, (registry, envelope) => RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, handle(registry, envelope.BodyAs<TRequest>())));

    private static Handler Reading<TRequest, TReply>(Func<Registry, TRequest, TReply> handle) where TRequest : class =>
        new(typeof(TRequest), false, (registry, envelope) => RegistryCodec.Encode(envelope.RequestId, envelope.ClientId, handle(registry, envelope.BodyAs<TRequest>())));

    [LoggerMessage(Level = LogLevel.Error, Message = "Unexpected failure while handling {MessageType}; replied INTERNAL")]
    private partial void LogUnexpected(Exception exception, string messageType);
}
