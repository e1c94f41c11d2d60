using NetMQ;
using Onex.Errors;

namespace Onex.Transports.Zmq;

/// <summary>Binding with errors a person can act on.</summary>
public static class ZmqEndpoints
{
    /// <summary>
    /// Binds <paramref name="socket"/> to <paramref name="endpoint"/>; an address in use becomes a
    /// <see cref="LeaseException"/> with code PORT_UNAVAILABLE that names the endpoint.
    /// </summary>
    public static void Bind(NetMQSocket socket, string endpoint)
    {
        try
        {
            socket.Bind(endpoint);
        }
        catch (AddressAlreadyInUseException ex)
        {
            throw new LeaseException(
                ErrorCodes.PortUnavailable,
                $"Cannot bind {endpoint}: the address is already in use (is another process, perhaps another registry node, listening there?).",
                new Dictionary<string, string> { ["endpoint"] = endpoint, ["reason"] = ex.Message });
        }
    }

    /// <summary>The endpoint as bound: for <c>tcp://host:0</c> or <c>tcp://host:*</c>, with the port the OS chose.</summary>
    public static string Resolved(NetMQSocket socket, string endpoint)
    {
        var last = socket.Options.LastEndpoint;
        return string.IsNullOrEmpty(last) ? endpoint : last;
    }
}
