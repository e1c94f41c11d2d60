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
            throw new PortUnavailableException(
                $"Cannot bind {endpoint}: the address is already in use (is another process, perhaps another registry node, listening there?).",
                new Dictionary<string, string> { ["endpoint"] = endpoint, ["reason"] = ex.Message });
        }
    }

    /// <summary>
    /// Moves a connected <paramref name="socket"/> from <paramref name="previous"/> to <paramref name="endpoint"/>
    /// (a bus that moved), encrypting to <paramref name="curveServerKey"/> when given (a host back with new keys; then
    /// it reconnects even to the same endpoint). Runs on the socket's thread. False when there was nothing to do.
    /// </summary>
    internal static bool MoveConnection(NetMQSocket socket, string previous, string endpoint, string? curveServerKey)
    {
        if (previous == endpoint && curveServerKey is null) return false;
        try
        {
            socket.Disconnect(previous);
        }
        catch (EndpointNotFoundException)
        {
            // Never connected there (a connect still in progress is dropped by ZeroMQ anyway).
        }
        // Options are taken at connect time, so the new key applies to this connection.
        if (curveServerKey is not null) ZmqCurve.Apply(socket, null, curveServerKey);
        socket.Connect(endpoint);
        return true;
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> saying what is wrong unless <paramref name="endpoint"/> is a ZeroMQ endpoint
    /// this project uses: <c>tcp://HOST:PORT</c> (PORT 0-65535 or <c>*</c>), <c>ipc://NAME</c> or <c>inproc://NAME</c>.
    /// NetMQ itself reports such mistakes with unrelated exceptions (a FormatException for a bad port, for one).
    /// </summary>
    public static void EnsureValid(string endpoint, string paramName)
    {
        if (string.IsNullOrWhiteSpace(endpoint))
            throw new ArgumentException("The endpoint is empty; expected tcp://HOST:PORT, ipc://NAME or inproc://NAME.", paramName);
        var scheme = endpoint.IndexOf("://", StringComparison.Ordinal);
        var rest = scheme < 0 ? "" : endpoint[(scheme + 3)..];
        var ok = (scheme < 0 ? "" : endpoint[..scheme]) switch
        {
            "tcp" => IsHostAndPort(rest),
            "ipc" or "inproc" => rest.Length > 0,
            _ => false,
        };
        if (!ok)
            throw new ArgumentException(
                $"'{endpoint}' is not a valid endpoint; expected tcp://HOST:PORT (PORT 0-65535 or *), ipc://NAME or inproc://NAME.", paramName);
    }

    /// <summary>The endpoint as bound: for <c>tcp://host:0</c> or <c>tcp://host:*</c>, with the port the OS chose.</summary>
    public static string Resolved(NetMQSocket socket, string endpoint)
    {
        var last = socket.Options.LastEndpoint;
        return string.IsNullOrEmpty(last) ? endpoint : last;
    }

    private static bool IsHostAndPort(string address)
    {
        var colon = address.LastIndexOf(':');
        if (colon <= 0) return false;
        var port = address[(colon + 1)..];
        return port == "*" || ushort.TryParse(port, System.Globalization.NumberStyles.None, null, out _);
    }
}
