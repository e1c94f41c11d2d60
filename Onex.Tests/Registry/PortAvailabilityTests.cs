using System.Net;
using System.Net.Sockets;
using Onex.Protocol;
using Onex.RegistryNode.Leases;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

/// <summary>
/// The free check binds one dual-stack socket per protocol where it can; these tests hold a port in each way a
/// process can and check that this answers exactly as binding IPv4 and IPv6 separately (portserver's way) does.
/// </summary>
public class PortAvailabilityTests
{
    /// <summary>A way to hold a port, and whether TCP and UDP checks must then find it in use.</summary>
    public sealed record Holder(string Name, bool Ipv6, bool TcpBusy, bool UdpBusy, Func<int, Socket> Hold)
    {
        public override string ToString() => Name;
    }

    private static Socket Tcp(AddressFamily family, bool? dualMode = null, bool reuseAddress = false)
    {
        var socket = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        if (dualMode is { } dual) socket.DualMode = dual;
        if (reuseAddress) socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        return socket;
    }

    private static Socket Udp(AddressFamily family, bool? dualMode = null, bool reuseAddress = false)
    {
        var socket = new Socket(family, SocketType.Dgram, ProtocolType.Udp);
        if (dualMode is { } dual) socket.DualMode = dual;
        if (reuseAddress) socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        return socket;
    }

    private static Socket Listening(Socket socket, IPAddress address, int port)
    {
        socket.Bind(new IPEndPoint(address, port));
        socket.Listen();
        return socket;
    }

    private static Socket Bound(Socket socket, IPAddress address, int port)
    {
        socket.Bind(new IPEndPoint(address, port));
        return socket;
    }

    public static IEnumerable<Holder> Holders() =>
    [
        new("tcp listener on 127.0.0.1", false, true, false, p => Listening(Tcp(AddressFamily.InterNetwork), IPAddress.Loopback, p)),
        new("tcp listener on 0.0.0.0", false, true, false, p => Listening(Tcp(AddressFamily.InterNetwork), IPAddress.Any, p)),
        new("tcp listener with ReuseAddress", false, true, false, p => Listening(Tcp(AddressFamily.InterNetwork, reuseAddress: true), IPAddress.Loopback, p)),
        new("tcp listener on ::1", true, true, false, p => Listening(Tcp(AddressFamily.InterNetworkV6, dualMode: false), IPAddress.IPv6Loopback, p)),
        new("tcp listener on [::] v6-only", true, true, false, p => Listening(Tcp(AddressFamily.InterNetworkV6, dualMode: false), IPAddress.IPv6Any, p)),
        new("tcp listener on [::] dual-stack", true, true, false, p => Listening(Tcp(AddressFamily.InterNetworkV6, dualMode: true), IPAddress.IPv6Any, p)),
        new("tcp listener on ::ffff:127.0.0.1", true, true, false, p => Listening(Tcp(AddressFamily.InterNetworkV6, dualMode: true), IPAddress.Parse("::ffff:127.0.0.1"), p)),
        new("tcp socket bound, not listening", false, false, false, p => Bound(Tcp(AddressFamily.InterNetwork), IPAddress.Loopback, p)),
        new("udp socket on 127.0.0.1", false, false, true, p => Bound(Udp(AddressFamily.InterNetwork), IPAddress.Loopback, p)),
        new("udp socket on 0.0.0.0", false, false, true, p => Bound(Udp(AddressFamily.InterNetwork), IPAddress.Any, p)),
        new("udp socket with ReuseAddress", false, false, true, p => Bound(Udp(AddressFamily.InterNetwork, reuseAddress: true), IPAddress.Loopback, p)),
        new("udp socket on ::1", true, false, true, p => Bound(Udp(AddressFamily.InterNetworkV6, dualMode: false), IPAddress.IPv6Loopback, p)),
        new("udp socket on [::] v6-only", true, false, true, p => Bound(Udp(AddressFamily.InterNetworkV6, dualMode: false), IPAddress.IPv6Any, p)),
        new("udp socket on [::] dual-stack", true, false, true, p => Bound(Udp(AddressFamily.InterNetworkV6, dualMode: true), IPAddress.IPv6Any, p)),
    ];

    [TestCaseSource(nameof(Holders))]
    public async Task The_dual_stack_check_answers_as_separate_ipv4_and_ipv6_binds_do(Holder holder)
    {
        var dualStack = new PortAvailability();
        var separate = new PortAvailability(preferDualStack: false);
        if (holder.Ipv6 && !separate.Ipv6Available)
        {
            // No IPv6 here: nothing can hold a port on it, and both checks bind IPv4 alone.
            Assert.That((dualStack.Mode, separate.Mode), Is.EqualTo((PortAvailability.Binding.Ipv4, PortAvailability.Binding.Ipv4)));
            return;
        }
        var port = (await TestPorts.LeaseAsync())[0];
        using var held = holder.Hold(port);

        foreach (var (protocol, busy) in new[] { (PortProtocols.Tcp, holder.TcpBusy), (PortProtocols.Udp, holder.UdpBusy), (PortProtocols.Both, holder.TcpBusy || holder.UdpBusy) })
        {
            Assert.That(separate.IsFree(port, protocol), Is.EqualTo(!busy), $"separate binds, {protocol}: expected the port {(busy ? "in use" : "free")}");
            Assert.That(dualStack.IsFree(port, protocol), Is.EqualTo(!busy), $"{dualStack.Mode} check, {protocol}: expected the port {(busy ? "in use" : "free")}");
        }
    }
}
