namespace Onex.Protocol;

/// <summary>
/// One request or reply on the registry's ROUTER endpoint: a single ZeroMQ frame holding a MessagePack map
/// <c>{protocolVersion, messageType, requestId, clientId, body}</c> (<c>contracts/RegistryEnvelope.schema.json</c>).
/// <see cref="Body"/> is the raw MessagePack map of the message named by <see cref="MessageType"/>.
/// </summary>
public sealed record RegistryEnvelope
{
    /// <summary>The protocol version of the sender.</summary>
    public int ProtocolVersion { get; init; } = Protocol.ProtocolVersion.Current;
    /// <summary>The body's message type, e.g. <c>PortRequest</c> (see <see cref="MessageTypes"/>).</summary>
    public required string MessageType { get; init; }
    /// <summary>Chosen by the client, unique among its requests in flight; echoed by the reply.</summary>
    public required string RequestId { get; init; }
    /// <summary>Chosen by the client, stable across its retries; with <see cref="RequestId"/> it makes retries idempotent.</summary>
    public required string ClientId { get; init; }
    /// <summary>
    /// The caller's access token (requests only; PROTOCOL.md section 16): required by a registry with an auth file,
    /// ignored by one without. Null when absent.
    /// </summary>
    public string? Token { get; init; }
    /// <summary>
    /// Requests only, optional (PROTOCOL.md 16.3): the tenant the request acts in. An admin names the tenant of a name
    /// that several tenants use; any other caller may name only its own. Null when absent.
    /// </summary>
    public string? Tenant { get; init; }
    /// <summary>The raw MessagePack map of the body.</summary>
    public ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>Optional: the W3C <c>traceparent</c> of the client's span (PROTOCOL.md, "Trace context"); null when absent or unreadable.</summary>
    public string? TraceParent { get; init; }

    /// <summary>Decodes the body as <typeparamref name="T"/> (see <see cref="RegistryCodec.DecodeBody{T}"/>).</summary>
    public T BodyAs<T>() where T : class => RegistryCodec.DecodeBody<T>(this);
}

/// <summary>Protocol version numbers.</summary>
public static class ProtocolVersion
{
    /// <summary>The version this build speaks.</summary>
    public const int Current = 1;
}
