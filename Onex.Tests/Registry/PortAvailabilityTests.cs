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
    private static bool KernelListsBoundSockets => OperatingSystem.IsLinux() && Environment.OSVersion.Version >= new Version(6, 10);

    [Test]
    public void The_socket_tables_are_read_exactly_where_the_kernel_lists_bound_only_sockets()
    {
        using var table = SocketTable.TryOpen(new PortAvailability().Ipv6Available);
        Assert.That(table is not null, Is.EqualTo(KernelListsBoundSockets),
            $"kernel {Environment.OSVersion.Version}: the tables are {(table is null ? "not " : "")}read");
    }

    [TestCaseSource(nameof(Holders))]
    public async Task The_socket_tables_find_a_port_in_use_however_it_is_held(Holder holder)
    {
        var availability = new PortAvailability();
        using var table = SocketTable.TryOpen(availability.Ipv6Available);
        if (table is null)
        {
            Assert.That(KernelListsBoundSockets, Is.False, "the tables are not read on a kernel that lists bound-only sockets");
            return;
        }
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
        using var table = SocketTable.TryOpen(availability.Ipv6Available);
        if (table is null)
        {
            Assert.That(KernelListsBoundSockets, Is.False, "the tables are not read on a kernel that lists bound-only sockets");
            return;
        }
        var ports = await TestPorts.LeaseAsync(2);
        using var listener = Listening(Tcp(AddressFamily.InterNetwork), IPAddress.Loopback, ports[0]);
        var used = new bool[Math.Abs(ports[1] - ports[0]) + 1];
        var first = Math.Min(ports[0], ports[1]);
        int Used(int port)
        {
            Assert.That(table.TryFindUsed(first, Math.Max(ports[0], ports[1]), used), Is.True);
            return used[port - first] ? 1 : 0;
        }

        using (var client = Bound(Tcp(AddressFamily.InterNetwork), IPAddress.Loopback, ports[1]))
        {
            client.Connect(listener.LocalEndPoint!);
            using var accepted = listener.Accept();
            Assert.That(Used(ports[1]), Is.EqualTo(1), "a connection's local port is in use");
            // The client closes first, so the TIME_WAIT remnant is its port's.
            client.Shutdown(SocketShutdown.Both);
            client.Close();
            Assert.That(accepted.Receive(new byte[1]), Is.EqualTo(0), "the client's close reached the other end");
        }
        // The kernel moves the client's side on to TIME_WAIT as the last FIN arrives: awaited, bounded.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (Used(ports[1]) == 1 && waited.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(10);
        Assert.That(Used(ports[1]), Is.EqualTo(0), "a TIME_WAIT remnant does not hold the port (a bind with SO_REUSEADDR succeeds beside it)");
        Assert.That(availability.IsFree(ports[1], PortProtocols.Tcp), Is.True, "the bind check agrees");
    }
}
