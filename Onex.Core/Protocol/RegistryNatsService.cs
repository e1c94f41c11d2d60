namespace Onex.Protocol;

/// <summary>
/// The registry's request protocol served as a NATS service (PROTOCOL.md 18.2): the same envelopes as on the ROUTER
/// socket, one request per NATS message on the subject of the registry's host, the reply in the NATS reply. The service
/// is discoverable with the standard <c>$SRV.PING</c> / <c>$SRV.INFO</c> requests under <see cref="ServiceName"/>.
/// </summary>
public static class RegistryNatsService
{
    /// <summary>The NATS service name every registry registers (one instance per host).</summary>
    public const string ServiceName = "onex-registry";

    /// <summary>The service's endpoint name.</summary>
    public const string EndpointName = "requests";

    /// <summary>Metadata key: the registry's host name (unescaped).</summary>
    public const string HostMetadata = "host";

    /// <summary>Metadata key: the registry's ZeroMQ request (ROUTER) endpoint.</summary>
    public const string RouterEndpointMetadata = "routerEndpoint";

    /// <summary>Metadata key: the registry's ZeroMQ change broadcast (PUB) endpoint, where the change stream is read.</summary>
    public const string PubEndpointMetadata = "pubEndpoint";

    /// <summary>Metadata key: the protocol version the registry speaks.</summary>
    public const string ProtocolVersionMetadata = "protocolVersion";

    /// <summary>
    /// The subject the registry of <paramref name="hostName"/> answers on: <c>onex.registry.HOST.requests</c>, HOST escaped
    /// into one subject token by <see cref="NatsToken.Escape"/> (<c>A-Z a-z 0-9 -</c> stay, every other UTF-8 byte is
    /// written <c>_XX</c>, upper-case hex), as the cluster bucket's keys are (docs/CLUSTER.md).
    /// </summary>
    public static string RequestSubject(string hostName)
    {
        ArgumentException.ThrowIfNullOrEmpty(hostName);
        return $"onex.registry.{NatsToken.Escape(hostName)}.{EndpointName}";
    }
}
