using System.Net;
using System.Net.Sockets;
using Onex.Protocol;

namespace Onex.RegistryNode.Leases;

/// <summary>Decides whether a port is free to lease right now.</summary>
internal interface IPortAvailability
{
    /// <summary>True when nothing on this host uses <paramref name="port"/> for <paramref name="protocol"/> (see <see cref="PortProtocols"/>).</summary>
    bool IsFree(int port, string protocol);
}

/// <summary>
/// The free check Google's portserver uses: actually bind the port - TCP (and listen, with SO_REUSEADDR so a
/// TIME_WAIT remnant does not count as use) and/or UDP, on the IPv4 wildcard address and, where the
/// machine has IPv6, on the IPv6 wildcard (v6-only, so the two are separate checks). Binding the wildcard fails
/// if any address (127.0.0.1 included) holds the port, so one bind per family covers every local address.
/// Whatever the check binds is closed at once. The kernel's work dominates the cost: about 6 us of CPU per socket
/// created, bound and closed, so a <c>both</c> check with IPv6 (four sockets) costs about 25 us of CPU - which is
/// why most checks are made ahead of demand, off the registry thread (<c>PortVerifier</c>).
/// </summary>
/// <remarks>
/// SO_REUSEADDR is set for TCP only, as a raw option: .NET's <see cref="SocketOptionName.ReuseAddress"/> also sets
/// SO_REUSEPORT on Linux, and with SO_REUSEPORT a bind succeeds beside any socket of the same user that has it
/// (every .NET server that set ReuseAddress, for one) - the check would call a used port free. For UDP, which has
/// no TIME_WAIT, SO_REUSEADDR would only let the bind succeed beside a socket that set it too, so the UDP check
/// binds without it: stricter than portserver, which sets it for both.
/// </remarks>
internal sealed class PortAvailability : IPortAvailability
{
    /// <summary>Probes once whether IPv6 sockets can be bound here (a kernel may support the family but have it disabled).</summary>
    public PortAvailability()
    {
        Ipv6Available = Socket.OSSupportsIPv6 && CanBindIpv6Loopback();
    }

    /// <summary>True when the check also binds the IPv6 wildcard.</summary>
    public bool Ipv6Available { get; }

    /// <inheritdoc />
    public bool IsFree(int port, string protocol)
    {
        var tcp = protocol is PortProtocols.Tcp or PortProtocols.Both;
        var udp = protocol is PortProtocols.Udp or PortProtocols.Both;
        if (tcp && !CanBind(ipv6: false, port, stream: true)) return false;
        if (udp && !CanBind(ipv6: false, port, stream: false)) return false;
        if (Ipv6Available)
        {
            if (tcp && !CanBind(ipv6: true, port, stream: true)) return false;
            if (udp && !CanBind(ipv6: true, port, stream: false)) return false;
        }
        return true;
    }

    // Linux values of SOL_SOCKET and SO_REUSEADDR (asm-generic/socket.h).
    private const int SolSocket = 1;
    private const int SoReuseAddr = 2;
    private static readonly byte[] One = BitConverter.GetBytes(1);

    private static bool CanBind(bool ipv6, int port, bool stream)
    {
        var address = ipv6 ? IPAddress.IPv6Any : IPAddress.Any;
        using var socket = new Socket(address.AddressFamily, stream ? SocketType.Stream : SocketType.Dgram, stream ? ProtocolType.Tcp : ProtocolType.Udp);
        try
        {
            if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = false;
            if (stream && OperatingSystem.IsLinux()) socket.SetRawSocketOption(SolSocket, SoReuseAddr, One);
            socket.Bind(new IPEndPoint(address, port));
            if (stream) socket.Listen(1);
            return true;
        }
        catch (SocketException)
        {
            // Address in use, or not permitted: either way the port cannot be handed out safely.
            return false;
        }
    }

    private static bool CanBindIpv6Loopback()
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            socket.DualMode = false;
            socket.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
