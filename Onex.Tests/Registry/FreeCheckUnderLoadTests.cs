using System.Net;
using System.Net.Sockets;
using Onex.Protocol;
using Onex.Tests.Client;

namespace Onex.Tests.Registry;

/// <summary>
/// The background free check of a real registry under lease churn, every batch answered from the kernel's socket tables
/// (where they can be read; Linux 6.10+): a port something else holds in its pool is never granted.
/// </summary>
public class FreeCheckUnderLoadTests
{
    private const int InFlight = 32;
    private const int Rounds = 100;

    [Test]
    public async Task Under_lease_churn_no_port_held_by_another_socket_is_granted_from_a_check_read_in_the_socket_tables()
    {
        var options = await TestRegistry.PoolOfItsOwnAsync(TestRegistry.Options() with
        {
            Leases = TestRegistry.Options().Leases with { AlwaysReadSocketTables = true },
        });
        var range = options.Leases.PortRange;
        // Ports of the test's own block, spread over the pool, held as servers hold them: TCP listeners (IPv4, IPv6) and UDP
        // sockets. (Not a bound-only TCP socket: the tables count it, but a grant's inline bind check, with SO_REUSEADDR,
        // succeeds beside one that set it too, as every .NET socket does; PROTOCOL.md section 7.)
        var held = new List<Socket>();
        var heldPorts = new HashSet<int>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                var port = range.First + 5 + i * 29;
                var (family, type, address) = (i % 3) switch
                {
                    0 => (AddressFamily.InterNetwork, SocketType.Stream, IPAddress.Loopback),
                    1 => (AddressFamily.InterNetwork, SocketType.Dgram, IPAddress.Any),
                    _ => (AddressFamily.InterNetworkV6, SocketType.Stream, IPAddress.IPv6Loopback),
                };
                var socket = new Socket(family, type, type == SocketType.Stream ? ProtocolType.Tcp : ProtocolType.Udp);
                held.Add(socket);
                socket.Bind(new IPEndPoint(address, port));
                if (type == SocketType.Stream) socket.Listen();
                heldPorts.Add(port);
            }

            await using var registry = await TestRegistry.StartAsync(options);
            using var dealer = new TestDealer(registry.Host.RouterEndpoint);
            var granted = new List<int>();
            for (var round = 0; round < Rounds; round++)
            {
                // Pipelined as a loaded client does: a window of requests, then each grant released.
                for (var i = 0; i < InFlight; i++) dealer.Send(dealer.NextRequestId(), new PortRequest { NodeId = "churn" });
                var leases = new List<PortLease>();
                for (var i = 0; i < InFlight; i++)
                {
                    var reply = dealer.Receive();
                    Assert.That(reply.MessageType, Is.EqualTo(nameof(PortGrant)), () => $"round {round}: {reply.BodyAs<Error>().Code} {reply.BodyAs<Error>().Message}");
                    leases.AddRange(reply.BodyAs<PortGrant>().Leases);
                }
                foreach (var lease in leases)
                    dealer.Send(dealer.NextRequestId(), new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "churn", FencingToken = lease.FencingToken });
                for (var i = 0; i < leases.Count; i++) Assert.That(dealer.Receive().MessageType, Is.EqualTo(nameof(Ack)));
                granted.AddRange(leases.Select(l => l.Port));
            }

            var verified = registry.Host.VerifiedPorts;
            var verifier = verified.Verifier;
            var tables = Onex.Tests.Registry.PortAvailabilityTests.KernelListsBoundSockets;
            TestContext.Out.WriteLine($"{granted.Count} grants on {granted.Distinct().Count()} ports; background checks: {verifier.FromTables} from "
                + $"{verifier.Scans} readings of the tables, {verifier.Checked - verifier.FromTables} bound; {verified.Used} grants took a port checked ahead");
            Assert.That(granted, Has.Count.EqualTo(Rounds * InFlight), "every request was granted");
            Assert.That(granted.Where(heldPorts.Contains), Is.Empty, "a port held by another socket was granted");
            Assert.That(verifier.FromTables > 0, Is.EqualTo(tables), $"kernel {Environment.OSVersion.Version}: checks answered from the socket tables");
            if (tables)
            {
                Assert.That(verifier.Checked, Is.EqualTo(verifier.FromTables), "every background check was read from the tables");
                Assert.That(verified.Used, Is.GreaterThan(Rounds * InFlight / 2), "most grants took a port the tables said free");
            }
        }
        finally
        {
            foreach (var socket in held) socket.Dispose();
        }
    }
}
