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
/// TIME_WAIT remnant does not count as use) and/or UDP - on the wildcard address of IPv4 and, where the machine
/// has IPv6, of IPv6. Binding the wildcard fails if any address (127.0.0.1 included) holds the port, so this covers
/// every local address. Whatever the check binds is closed at once.
/// </summary>
/// <remarks>
/// <para>
/// Where IPv6 works, one dual-stack socket per protocol does both families: a bind on <c>[::]</c> with IPV6_V6ONLY
/// off claims the port on every IPv4 and IPv6 address at once, so it fails exactly when a bind on <c>0.0.0.0</c> or a
/// v6-only bind on <c>[::]</c> would (portserver's own IPv6 bind is such a dual-stack bind; its IPv4 bind after it
/// adds nothing on Linux). A test holds ports in every way a process can and checks both forms agree. The kernel's
/// work - creating and closing a socket, about 6 us of CPU - dominates the cost, so this halves it: two sockets for
/// <c>both</c> instead of four. Without IPv6, the IPv4 wildcard alone is bound.
/// </para>
/// <para>
/// SO_REUSEADDR is set for TCP only, never SO_REUSEPORT: .NET's <see cref="SocketOptionName.ReuseAddress"/> sets both
/// on Linux, and with SO_REUSEPORT a bind succeeds beside any socket of the same user that has it (every .NET server
/// that set ReuseAddress, for one) - the check would call a used port free. For UDP, which has no TIME_WAIT,
/// SO_REUSEADDR would only let the bind succeed beside a socket that set it too, so the UDP check binds without it:
/// stricter than portserver, which sets it for both.
/// </para>
/// </remarks>
internal sealed class PortAvailability : IPortAvailability
{
    /// <summary>Which wildcard addresses a check binds.</summary>
    public enum Binding
    {
        /// <summary><c>0.0.0.0</c> only (no IPv6 here).</summary>
        Ipv4,
        /// <summary><c>0.0.0.0</c>, then <c>[::]</c> v6-only: two binds per protocol.</summary>
        Ipv4AndIpv6Separately,
        /// <summary><c>[::]</c> dual-stack: one bind per protocol covering both families.</summary>
        DualStack,
    }

    /// <summary>Probes once what this machine can bind, and uses the cheapest form that covers every family it has.</summary>
    public PortAvailability() : this(preferDualStack: true)
    {
    }

    /// <summary>
    /// As the parameterless constructor; with <paramref name="preferDualStack"/> false, IPv4 and IPv6 are bound
    /// separately even where one dual-stack bind would do (for comparing the two).
    /// </summary>
    public PortAvailability(bool preferDualStack)
    {
        var ipv6 = Socket.OSSupportsIPv6 && CanBindIpv6Loopback(dualStack: false);
        Mode = !ipv6 ? Binding.Ipv4
            : preferDualStack && CanBindIpv6Loopback(dualStack: true) ? Binding.DualStack
            : Binding.Ipv4AndIpv6Separately;
    }

    /// <summary>True when the check also covers IPv6.</summary>
    public bool Ipv6Available => Mode != Binding.Ipv4;

    /// <summary>Which wildcard addresses a check binds.</summary>
    public Binding Mode { get; }

    /// <inheritdoc />
    public bool IsFree(int port, string protocol)
    {
        var tcp = protocol is PortProtocols.Tcp or PortProtocols.Both;
        var udp = protocol is PortProtocols.Udp or PortProtocols.Both;
        if (Mode == Binding.DualStack)
            return (!tcp || CanBind(Family.DualStack, port, stream: true)) && (!udp || CanBind(Family.DualStack, port, stream: false));
        if (tcp && !CanBind(Family.Ipv4, port, stream: true)) return false;
        if (udp && !CanBind(Family.Ipv4, port, stream: false)) return false;
        if (Mode == Binding.Ipv4AndIpv6Separately)
        {
            if (tcp && !CanBind(Family.Ipv6Only, port, stream: true)) return false;
            if (udp && !CanBind(Family.Ipv6Only, port, stream: false)) return false;
        }
        return true;
    }

    private enum Family { Ipv4, Ipv6Only, DualStack }

    private static bool CanBind(Family family, int port, bool stream) =>
        OperatingSystem.IsLinux() ? LinuxSockets.CanBind(family, port, stream) : CanBindPortably(family, port, stream);

    private static bool CanBindPortably(Family family, int port, bool stream)
    {
        var address = family == Family.Ipv4 ? IPAddress.Any : IPAddress.IPv6Any;
        using var socket = new Socket(address.AddressFamily, stream ? SocketType.Stream : SocketType.Dgram, stream ? ProtocolType.Tcp : ProtocolType.Udp);
        try
        {
            if (family != Family.Ipv4) socket.DualMode = family == Family.DualStack;
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

        public static bool CanBind(Family family, int port, bool stream)
        {
            var addressFamily = family == Family.Ipv4 ? AfInet : AfInet6;
            var fd = Socket(addressFamily, (stream ? SockStream : SockDgram) | SockCloexec, 0);
            if (fd < 0) throw new SocketException(Marshal.GetLastPInvokeError()); // no socket at all (EMFILE...): not an answer
            try
            {
                var one = 1;
                var v6Only = family == Family.Ipv6Only ? 1 : 0;
                if (family != Family.Ipv4 && SetSockOpt(fd, IpProtoIpv6, Ipv6V6Only, ref v6Only, sizeof(int)) != 0) return false;
                if (stream && SetSockOpt(fd, SolSocket, SoReuseAddr, ref one, sizeof(int)) != 0) return false;
                // sockaddr_in / sockaddr_in6 on the wildcard address: family in host order, port in network order.
                var address = new byte[family == Family.Ipv4 ? 16 : 28];
                MemoryMarshal.Write(address, (ushort)addressFamily);
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

    private static bool CanBindIpv6Loopback(bool dualStack)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
            socket.DualMode = dualStack;
            socket.Bind(new IPEndPoint(dualStack ? IPAddress.IPv6Any : IPAddress.IPv6Loopback, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
