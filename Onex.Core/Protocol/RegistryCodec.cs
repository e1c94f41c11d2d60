using System.Buffers;
using System.Text;
using MessagePack;
using Onex.Errors;

namespace Onex.Protocol;

/// <summary>
/// Reads and writes <see cref="RegistryEnvelope"/> frames. Decoding is strict: a frame over
/// <see cref="MaxFrameBytes"/> is TOO_LARGE, anything that is not a complete envelope is MALFORMED.
/// When the request id could be read before the failure, the exception's details carry it as <c>requestId</c>
/// (and <c>clientId</c>) so the error reply can still be correlated.
/// </summary>
public static class RegistryCodec
{
    /// <summary>Largest frame accepted on the registry endpoint: 1 MiB.</summary>
    public const int MaxFrameBytes = 1024 * 1024;

    /// <summary>
    /// Largest reply frame a client accepts: 64 MiB. Replies are not bound by <see cref="MaxFrameBytes"/> because a
    /// snapshot or introspection answer of a busy registry can exceed it.
    /// </summary>
    public const int MaxReplyFrameBytes = 64 * 1024 * 1024;

    internal static readonly MessagePackSerializerOptions SerializerOptions =
        MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>
    /// Builds the MessagePack formatters (and nil checks) of every protocol type now, on the calling thread. The first
    /// use of a type otherwise generates its formatter then (tens of milliseconds each, seconds for all of them on a
    /// busy machine); a registry that restores thousands of records, or a client about to make its first request,
    /// can pay that on a spare core instead: <c>_ = Task.Run(RegistryCodec.WarmUp)</c>. Safe to call from any thread,
    /// any number of times; the records a registry stores come first.
    /// </summary>
    public static void WarmUp()
    {
        foreach (var type in WarmUpOrder.Value)
        {
            SerializerOptions.Resolver.GetFormatterDynamic(type);
            MessageShape.Prepare(type);
        }
    }

    private static readonly Lazy<Type[]> WarmUpOrder = new(() =>
    {
        Type[] first = [typeof(PortLease), typeof(ToolContractRecord), typeof(NodeRecord), typeof(EventBusRecord)];
        var rest = typeof(RegistryCodec).Assembly.GetTypes()
            .Where(t => t.IsDefined(typeof(MessagePackObjectAttribute), inherit: false) && !t.IsAbstract && !t.ContainsGenericParameters)
            .Except(first)
            .OrderBy(t => t.FullName, StringComparer.Ordinal);
        return [.. first, .. rest];
    });

    /// <summary>
    /// Encodes an envelope around <paramref name="body"/>; the message type comes from <typeparamref name="T"/>.
    /// <paramref name="token"/> (requests to a registry with access control) is written as the <c>token</c> key, and
    /// <paramref name="traceParent"/> as the optional <c>traceparent</c> key, and <paramref name="tenant"/> as the optional
    /// <c>tenant</c> key (PROTOCOL.md 16.3), each when not null.
    /// </summary>
    public static byte[] Encode<T>(string requestId, string clientId, T body, int protocolVersion = ProtocolVersion.Current, string? token = null,
        string? traceParent = null, string? tenant = null)
    {
        // One buffer per thread, reused: the envelope is written once into it and copied out once, instead of into a
        // new writer that grew (a new array each time) past 256 bytes for a grant.
        var buffer = t_encoding ??= new ArrayBufferWriter<byte>(EncodingCapacity);
        buffer.ResetWrittenCount();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(5 + (token is null ? 0 : 1) + (traceParent is null ? 0 : 1) + (tenant is null ? 0 : 1));
        if (token is not null)
        {
            writer.Write("token");
            writer.Write(token);
        }
        if (tenant is not null)
        {
            writer.Write("tenant");
            writer.Write(tenant);
        }
        writer.Write("protocolVersion");
        writer.Write(protocolVersion);
        writer.Write("messageType");
        writer.Write(MessageTypes.Of<T>());
        writer.Write("requestId");
        writer.Write(requestId);
        writer.Write("clientId");
        writer.Write(clientId);
        writer.Write("body");
        MessagePackSerializer.Serialize(ref writer, body, SerializerOptions);
        if (traceParent is not null)
        {
            writer.Write("traceparent");
            writer.Write(traceParent);
        }
        writer.Flush();
        var encoded = buffer.WrittenSpan.ToArray();
        // A thread that once encoded a large message (a snapshot, a tool's schemas) does not keep that buffer.
        if (buffer.Capacity > MaxKeptEncodingCapacity) t_encoding = null;
        return encoded;
    }

    private const int EncodingCapacity = 1024;
    private const int MaxKeptEncodingCapacity = 64 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_encoding;

    /// <summary>Serializes a message body alone (as it appears under <c>body</c>, or as an event payload).</summary>
    public static byte[] SerializeBody<T>(T body) => MessagePackSerializer.Serialize(body, SerializerOptions);

    /// <summary>Serializes a message body alone into <paramref name="buffer"/> (a buffer the caller reuses).</summary>
    public static void SerializeBodyTo<T>(IBufferWriter<byte> buffer, T body) => MessagePackSerializer.Serialize(buffer, body, SerializerOptions);

    /// <summary>Deserializes a message body alone; throws <see cref="MalformedMessageException"/> when it does not fit <typeparamref name="T"/>.</summary>
    public static T DeserializeBody<T>(ReadOnlyMemory<byte> bytes) where T : class
    {
        try
        {
            var reader = new MessagePackReader(bytes);
            if (reader.NextMessagePackType != MessagePackType.Map)
                throw new MalformedMessageException($"The body of {typeof(T).Name} must be a map.", Field("body"));
            var value = MessagePackSerializer.Deserialize<T>(ref reader, SerializerOptions);
            if (!reader.End)
                throw new MalformedMessageException("Trailing bytes after the body.", Field("body"));
            if (value is null)
                throw new MalformedMessageException($"The body of {typeof(T).Name} must not be nil.", Field("body"));
            Utf8Strings.EnsureValid(bytes, "body");
            var missing = MessageShape.FindMissing(value);
            if (missing is not null)
                throw new MalformedMessageException(
                    $"Field '{missing}' of {typeof(T).Name} is missing or nil.",
                    new Dictionary<string, string> { ["field"] = "body." + missing });
            return value;
        }
        catch (MessagePackSerializationException ex)
        {
            throw new MalformedMessageException($"The body is not a valid {typeof(T).Name}: {Innermost(ex).Message}", Field("body"), ex);
        }
        catch (EndOfStreamException ex)
        {
            throw new MalformedMessageException($"The body of {typeof(T).Name} is truncated.", Field("body"), ex);
        }
    }

    /// <summary>Decodes the body of <paramref name="envelope"/> as <typeparamref name="T"/>, keeping the envelope's ids in error details.</summary>
    public static T DecodeBody<T>(RegistryEnvelope envelope) where T : class
    {
        try
        {
            return DeserializeBody<T>(envelope.Body);
        }
        catch (MalformedMessageException ex)
        {
            throw new MalformedMessageException(ex.Message, WithIds(ex.Details, envelope.RequestId, envelope.ClientId), ex.InnerException);
        }
    }

    /// <summary>
    /// Decodes one frame into an envelope (the body stays raw). Does not check the protocol version.
    /// <c>requestId</c> and <c>clientId</c> must be non-empty, except in an <see cref="Error"/> reply, where empty
    /// ids mean the request they answer could not be read. Frames over <paramref name="maxFrameBytes"/> are TOO_LARGE:
    /// the registry keeps the default (<see cref="MaxFrameBytes"/>), clients decoding replies pass <see cref="MaxReplyFrameBytes"/>.
    /// </summary>
    public static RegistryEnvelope Decode(ReadOnlyMemory<byte> frame, int maxFrameBytes = MaxFrameBytes)
    {
        if (frame.Length > maxFrameBytes)
        {
            // Still try to read the ids so the TOO_LARGE reply can be correlated by the sender.
            var (oversizedRequestId, oversizedClientId) = TryReadIds(frame);
            throw new MessageTooLargeException(
                $"Frame of {frame.Length} bytes exceeds the limit of {maxFrameBytes} bytes.",
                WithIds(new Dictionary<string, string> { ["size"] = frame.Length.ToString(), ["limit"] = maxFrameBytes.ToString() },
                    oversizedRequestId, oversizedClientId));
        }

        int? version = null;
        string? messageType = null, requestId = null, clientId = null, token = null, traceParent = null, tenant = null;
        ReadOnlyMemory<byte>? body = null;
        try
        {
            var reader = new MessagePackReader(frame);
            if (reader.NextMessagePackType != MessagePackType.Map)
                throw new MalformedMessageException("A frame must be a MessagePack map.");
            var count = reader.ReadMapHeader();
            for (var i = 0; i < count; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                    throw new MalformedMessageException("Envelope keys must be strings.");
                var key = KeyOf(ref reader);
                switch (key)
                {
                    case "protocolVersion": version = ReadInt(ref reader, key); break;
                    case "messageType": messageType = ReadText(ref reader, key); break;
                    case "requestId": requestId = ReadText(ref reader, key); break;
                    case "clientId": clientId = ReadText(ref reader, key); break;
                    case "token":
                        if (!reader.TryReadNil()) token = ReadText(ref reader, key);
                        break;
                    case "tenant":
                        if (!reader.TryReadNil()) tenant = ReadText(ref reader, key);
                        break;
                    case "body":
                        var start = reader.Consumed;
                        reader.Skip();
                        body = frame.Slice((int)start, (int)(reader.Consumed - start));
                        break;
                    case "traceparent":
                        // Optional and advisory: anything but a string of sensible length is ignored, never an error.
                        if (reader.NextMessagePackType != MessagePackType.String)
                        {
                            reader.Skip();
                            break;
                        }
                        if (Utf8Strings.TryRead(ref reader, out var traceValue)
                            && traceValue.Length <= Onex.Diagnostics.OnexRegistryDiagnostics.MaxTraceParentLength) traceParent = traceValue;
                        break;
                    default:
                        // Unknown keys are ignored for forward compatibility, but their strings must still be UTF-8.
                        if (Utf8Strings.FindInvalid(ref reader) is { } path) throw Utf8Strings.Invalid(key + path);
                        break;
                }
            }
            if (!reader.End)
                throw new MalformedMessageException($"{frame.Length - reader.Consumed} trailing bytes after the envelope.",
                    new Dictionary<string, string> { ["trailingBytes"] = (frame.Length - reader.Consumed).ToString() });
        }
        catch (MalformedMessageException ex)
        {
            throw new MalformedMessageException(ex.Message, WithIds(ex.Details, requestId, clientId));
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or InvalidOperationException or OverflowException
            or ArgumentOutOfRangeException)
        {
            throw new MalformedMessageException($"The frame is not valid MessagePack: {Innermost(ex).Message}", WithIds(null, requestId, clientId), ex);
        }

        var missing = new List<string>();
        if (version is null) missing.Add("protocolVersion");
        if (string.IsNullOrEmpty(messageType)) missing.Add("messageType");
        var idsMayBeEmpty = messageType == MessageTypes.Of<Error>();
        if (requestId is null || (requestId.Length == 0 && !idsMayBeEmpty)) missing.Add("requestId");
        if (clientId is null || (clientId.Length == 0 && !idsMayBeEmpty)) missing.Add("clientId");
        if (body is null) missing.Add("body");
        if (missing.Count > 0)
            throw new MalformedMessageException(
                $"The envelope lacks {string.Join(", ", missing)}.",
                WithIds(new Dictionary<string, string> { ["missing"] = string.Join(",", missing) }, requestId, clientId));

        return new RegistryEnvelope
        {
            ProtocolVersion = version!.Value,
            MessageType = messageType!,
            RequestId = requestId!,
            ClientId = clientId!,
            Token = token,
            Tenant = tenant,
            Body = body!.Value,
            TraceParent = traceParent,
        };
    }

    /// <summary>
    /// Best-effort reading of <c>requestId</c> and <c>clientId</c> from a frame that failed to decode, so an Error
    /// reply can still be correlated; null for whatever could not be read.
    /// </summary>
    public static (string? RequestId, string? ClientId) TryReadIds(ReadOnlyMemory<byte> frame)
    {
        string? requestId = null, clientId = null;
        try
        {
            var reader = new MessagePackReader(frame);
            if (reader.NextMessagePackType != MessagePackType.Map) return (null, null);
            var count = reader.ReadMapHeader();
            for (var i = 0; i < count && (requestId is null || clientId is null); i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                {
                    // A key that is not a string makes the envelope MALFORMED, but ids after it are still worth echoing.
                    reader.Skip();
                    reader.Skip();
                    continue;
                }
                var key = reader.ReadString();
                if (key is "requestId" or "clientId" && reader.NextMessagePackType == MessagePackType.String)
                {
                    // An id that is not valid UTF-8 cannot be echoed as sent: it counts as unreadable.
                    var valid = Utf8Strings.TryRead(ref reader, out var id);
                    if (valid && key == "requestId") requestId = id;
                    else if (valid) clientId = id;
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or InvalidOperationException or OverflowException
            or ArgumentOutOfRangeException)
        {
            // Best effort only: whatever was read before the damage is still worth echoing.
            return (requestId, clientId);
        }
        return (requestId, clientId);
    }

    private static int ReadInt(ref MessagePackReader reader, string key)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
            throw new MalformedMessageException($"Field '{key}' must be an integer.", Field(key));
        return reader.ReadInt32();
    }

    // The envelope's own keys, as UTF-8 and as the strings the switch in Decode matches.
    private static readonly (byte[] Utf8, string Name)[] EnvelopeKeys =
        [.. new[] { "protocolVersion", "messageType", "requestId", "clientId", "body", "token", "tenant", "traceparent" }.Select(k => (Encoding.UTF8.GetBytes(k), k))];

    /// <summary>An envelope key: one of the known keys without decoding it (every request has five), else decoded and checked.</summary>
    private static string KeyOf(ref MessagePackReader reader)
    {
        var bytes = reader.ReadStringSequence()!.Value;
        if (bytes.IsSingleSegment)
        {
            foreach (var (utf8, name) in EnvelopeKeys)
                if (bytes.FirstSpan.SequenceEqual(utf8)) return name;
        }
        var key = Encoding.UTF8.GetString(bytes);
        return Utf8Strings.IsValid(bytes) ? key : throw Utf8Strings.Invalid(key);
    }

    private static string ReadText(ref MessagePackReader reader, string key)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
            throw new MalformedMessageException($"Field '{key}' must be a string.", Field(key));
        return Utf8Strings.TryRead(ref reader, out var value) ? value : throw Utf8Strings.Invalid(key);
    }

    private static Dictionary<string, string> Field(string name) => new() { ["field"] = name };

    private static Dictionary<string, string> WithIds(IReadOnlyDictionary<string, string>? details, string? requestId, string? clientId)
    {
        var result = details is null ? new Dictionary<string, string>() : new Dictionary<string, string>(details);
        if (!string.IsNullOrEmpty(requestId)) result["requestId"] = requestId;
        if (clientId is not null) result["clientId"] = clientId;
        return result;
    }

    private static Exception Innermost(Exception ex)
    {
        while (ex.InnerException is not null) ex = ex.InnerException;
        return ex;
    }
}
