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

    /// <summary>Linux 6.10 added bound-only TCP sockets to sock_diag's tables; <see cref="SocketTable"/> is used from there on.</summary>
    internal static bool KernelListsBoundSockets => OperatingSystem.IsLinux() && Environment.OSVersion.Version >= new Version(6, 10);

    /// <summary>
    /// The socket-table reader, or null (and the test passes no further) where the kernel cannot list bound-only sockets;
    /// a kernel that can but is not read fails the test.
    /// </summary>
    internal static SocketTable? OpenTableOrConfirmUnsupported(PortAvailability availability)
    {
        var table = SocketTable.TryOpen(availability.Ipv6Available);
        Assert.That(table is not null, Is.EqualTo(KernelListsBoundSockets),
            $"kernel {Environment.OSVersion.Version}: the tables are {(table is null ? "not " : "")}read");
        return table;
    }

    [Test]
    public void The_socket_tables_are_read_exactly_where_the_kernel_lists_bound_only_sockets()
    {
        using var table = OpenTableOrConfirmUnsupported(new PortAvailability());
    }

    [TestCaseSource(nameof(Holders))]
    public async Task The_socket_tables_find_a_port_in_use_however_it_is_held(Holder holder)
    {
        var availability = new PortAvailability();
        using var table = OpenTableOrConfirmUnsupported(availability);
        if (table is null) return;
        if (holder.Ipv6 && !availability.Ipv6Available)
        {
            Assert.That(holder.Hold, Throws.InstanceOf<SocketException>(), "no IPv6 here, so nothing holds a port on it");
            return;
        }
        var ports = await TestPorts.LeaseAsync(3);
        using var held = holder.Hold(ports[1]);
        var first = ports.Min();
        var used = new bool[ports.Max() - first + 1];

        Assert.That(table.TryFindUsed(first, ports.Max(), used), Is.True, "the tables were read whole");

        Assert.That(used[ports[1] - first], Is.True, $"{holder.Name}: the port is held, so it is in use (stricter than a bind where the bind succeeds beside it)");
        Assert.That(used[ports[0] - first] || used[ports[2] - first], Is.False, "the ports beside it are held by nothing");
        if (holder.TcpBusy || holder.UdpBusy)
            Assert.That(availability.IsFree(ports[1], PortProtocols.Both), Is.False, "the bind check agrees where it finds the port in use");
    }

    [Test]
    public async Task The_socket_tables_count_a_connections_local_port_and_not_one_in_time_wait()
    {
        var availability = new PortAvailability();
        using var table = OpenTableOrConfirmUnsupported(availability);
        if (table is null) return;
        var port = (await TestPorts.LeaseAsync())[0];
        var used = new bool[1];
        bool Used()
        {
            Assert.That(table.TryFindUsed(port, port, used), Is.True, "the tables were read whole");
            return used[0];
        }

        using var client = Tcp(AddressFamily.InterNetwork);
        Socket accepted;
        using (var listener = Listening(Tcp(AddressFamily.InterNetwork), IPAddress.Loopback, port))
        {
            client.Connect(listener.LocalEndPoint!);
            accepted = listener.Accept();
        }
        using var connection = accepted;
        // The listener is closed: the accepted connection alone has the port as its local port.
        Assert.That(Used(), Is.True, "a connection's local port is in use");

        // The accepted side closes first, so the TIME_WAIT remnant is its port's. It reads end of stream once the
        // client's FIN arrived, and the kernel turns the connection into its TIME_WAIT remnant while taking that FIN in.
        accepted.Shutdown(SocketShutdown.Send);
        Assert.That(client.Receive(new byte[1]), Is.Zero, "the accepted side's FIN reached the client");
        client.Close();
        Assert.That(accepted.Receive(new byte[1]), Is.Zero, "the client's FIN reached the accepted side");

        Assert.That(Used(), Is.False, "a TIME_WAIT remnant does not hold the port (a bind with SO_REUSEADDR succeeds beside it)");
        Assert.That(availability.IsFree(port, PortProtocols.Tcp), Is.True, "the bind check agrees");
    }
}
