using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
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
/// SO_REUSEADDR is set for TCP only, never SO_REUSEPORT: .NET's <see cref="SocketOptionName.ReuseAddress"/> sets both
/// on Linux, and with SO_REUSEPORT a bind succeeds beside any socket of the same user that has it
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

    private static bool CanBind(bool ipv6, int port, bool stream) =>
        OperatingSystem.IsLinux() ? LinuxSockets.CanBind(ipv6, port, stream) : CanBindPortably(ipv6, port, stream);

    private static bool CanBindPortably(bool ipv6, int port, bool stream)
    {
        var address = ipv6 ? IPAddress.IPv6Any : IPAddress.Any;
        using var socket = new Socket(address.AddressFamily, stream ? SocketType.Stream : SocketType.Dgram, stream ? ProtocolType.Tcp : ProtocolType.Udp);
        try
        {
            if (address.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = false;
            // No ReuseAddress here: it would add SO_REUSEPORT. .NET's bind sets SO_REUSEADDR for TCP on Unix by itself.
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

    /// <summary>
    /// The same binds through the system calls themselves: socket, setsockopt, bind, listen, close and nothing
    /// else, without the managed socket around them (which also sets options twice). About an eighth cheaper.
    /// </summary>
    private static class LinuxSockets
    {
        // Linux constants (bits/socket.h, asm-generic/socket.h, netinet/in.h).
        private const int AfInet = 2;
        private const int AfInet6 = 10;
        private const int SockStream = 1;
        private const int SockDgram = 2;
        private const int SockCloexec = 0x80000;
        private const int SolSocket = 1;
        private const int SoReuseAddr = 2;
        private const int IpProtoIpv6 = 41;
        private const int Ipv6V6Only = 26;

        public static bool CanBind(bool ipv6, int port, bool stream)
        {
            var family = ipv6 ? AfInet6 : AfInet;
            var fd = Socket(family, (stream ? SockStream : SockDgram) | SockCloexec, 0);
            if (fd < 0) throw new SocketException(Marshal.GetLastPInvokeError()); // no socket at all (EMFILE...): not an answer
            try
            {
                var one = 1;
                if (ipv6 && SetSockOpt(fd, IpProtoIpv6, Ipv6V6Only, ref one, sizeof(int)) != 0) return false;
                if (stream && SetSockOpt(fd, SolSocket, SoReuseAddr, ref one, sizeof(int)) != 0) return false;
                // sockaddr_in / sockaddr_in6 on the wildcard address: family in host order, port in network order.
                var address = new byte[ipv6 ? 28 : 16];
                MemoryMarshal.Write(address, (ushort)family);
                BinaryPrimitives.WriteUInt16BigEndian(address.AsSpan(2), (ushort)port);
                if (Bind(fd, address, address.Length) != 0) return false;
                return !stream || Listen(fd, 1) == 0;
            }
            finally
            {
                _ = Close(fd);
            }
        }

        [DllImport("libc", EntryPoint = "socket", SetLastError = true)]
        private static extern int Socket(int domain, int type, int protocol);

        [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
        private static extern int SetSockOpt(int fd, int level, int name, ref int value, int length);

        [DllImport("libc", EntryPoint = "bind", SetLastError = true)]
        private static extern int Bind(int fd, byte[] address, int length);

        [DllImport("libc", EntryPoint = "listen", SetLastError = true)]
        private static extern int Listen(int fd, int backlog);

        [DllImport("libc", EntryPoint = "close", SetLastError = true)]
        private static extern int Close(int fd);
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
