using System.Net;
using System.Net.Sockets;
using Onex.Protocol;
using Onex.RegistryNode.Leases;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Registry;

public class PortPoolTests
{
    [Test]
    public void The_kernel_ephemeral_range_is_excluded_from_the_pool()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "20005\t60999\n");
            var ephemeral = EphemeralPorts.Read(file);
            var ports = EphemeralPorts.Exclude(new PortRange(20000, 20009), ephemeral);
            Assert.That(ports, Is.EqualTo(new[] { 20000, 20001, 20002, 20003, 20004 }));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void A_missing_ephemeral_range_file_excludes_nothing()
    {
        var ephemeral = EphemeralPorts.Read(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N")));
        Assert.That(ephemeral, Is.Null);
        Assert.That(EphemeralPorts.Exclude(new PortRange(20000, 20009), ephemeral), Has.Count.EqualTo(10));
    }

    [Test]
    public void The_machine_ephemeral_range_does_not_overlap_the_default_pool_after_exclusion()
    {
        var ephemeral = EphemeralPorts.Read(LeaseOptions.Default.EphemeralRangePath);
        var ports = EphemeralPorts.Exclude(LeaseOptions.Default.PortRange, ephemeral);
        if (ephemeral is { } range)
            Assert.That(ports.Where(range.Contains), Is.Empty, $"ports of the ephemeral range {range} stayed in the pool");
        Assert.That(ports, Is.All.InRange(20000, 29999));
    }

    [TestCase("20000-29999", 20000, 29999)]
    [TestCase(" 1 - 65535 ", 1, 65535)]
    public void A_port_range_parses_from_first_dash_last(string text, int first, int last)
    {
        Assert.That(PortRange.Parse(text), Is.EqualTo(new PortRange(first, last)));
    }

    [TestCase("29999-20000")]
    [TestCase("0-10")]
    [TestCase("1-70000")]
    [TestCase("20000")]
    public void A_malformed_port_range_is_rejected(string text)
    {
        Assert.That(PortRange.TryParse(text, out _), Is.False, $"'{text}' should not parse");
    }

    [Test]
    public async Task A_port_held_by_a_tcp_listener_fails_the_free_check()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen();
        var check = new PortAvailability();
        Assert.That(check.IsFree(port, PortProtocols.Tcp), Is.False, "a port with a listener on 127.0.0.1 passed the check");
        Assert.That(check.IsFree(port, PortProtocols.Both), Is.False);
    }

    [Test]
    public async Task A_port_held_by_a_listener_with_reuse_address_fails_the_free_check()
    {
        // .NET's ReuseAddress sets SO_REUSEPORT on Linux; a check that set it too would bind beside this listener.
        var port = (await TestPorts.LeaseAsync())[0];
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen();
        Assert.That(new PortAvailability().IsFree(port, PortProtocols.Tcp), Is.False, "a port held by a listener with ReuseAddress passed the check");
    }

    [Test]
    public async Task A_port_held_by_a_udp_socket_with_reuse_address_fails_the_free_check()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
        Assert.That(new PortAvailability().IsFree(port, PortProtocols.Udp), Is.False, "a port held by a UDP socket with ReuseAddress passed the check");
    }

    [Test]
    public async Task A_port_held_by_a_udp_socket_fails_the_udp_check_only()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
        var check = new PortAvailability();
        Assert.That(check.IsFree(port, PortProtocols.Udp), Is.False, "a UDP-bound port passed the UDP check");
        Assert.That(check.IsFree(port, PortProtocols.Both), Is.False);
        Assert.That(check.IsFree(port, PortProtocols.Tcp), Is.True, "a UDP socket should not block TCP");
    }

    [Test]
    public async Task A_port_held_on_ipv6_loopback_fails_the_check_where_ipv6_exists()
    {
        var check = new PortAvailability();
        var port = (await TestPorts.LeaseAsync())[0];
        if (!check.Ipv6Available)
        {
            // No IPv6 here: the check must still work, on IPv4 alone.
            Assert.That(check.IsFree(port, PortProtocols.Tcp), Is.True, "the IPv4-only check failed on an unused port");
            return;
        }
        using var listener = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = false };
        listener.Bind(new IPEndPoint(IPAddress.IPv6Loopback, port));
        listener.Listen();
        Assert.That(check.IsFree(port, PortProtocols.Tcp), Is.False, "a port with a listener on ::1 passed the check");
    }

    [Test]
    public async Task An_unused_port_passes_the_free_check()
    {
        var port = (await TestPorts.LeaseAsync())[0];
        Assert.That(new PortAvailability().IsFree(port, PortProtocols.Both), Is.True);
    }
}
