using Onex.Protocol;
using Onex.Testing.Nats;
using Onex.Tests.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// A registration that needs a cluster claim waits for the bucket off the registry thread: while the bucket cannot
/// answer (its nats-server frozen with SIGSTOP, so the connection stays up and nothing is answered), the registry keeps
/// serving every other request, and the registration is answered once the bucket decides.
/// </summary>
[NonParallelizable]
public class ClusterClaimParkingTests
{
    [Test]
    public async Task Lease_requests_are_answered_while_a_registration_waits_for_a_claim_the_bucket_cannot_decide()
    {
        var nats = await NatsTestServer.StartAsync();
        // A claim bound far above the test's waits: the claim cannot time out while the server is frozen.
        await using var host = await StartHostAsync(Options(nats.Url, Bucket(), "host-a") with { Replicas = 1, RequestTimeout = TimeSpan.FromSeconds(60) }, 0);
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.Send("announce", new NodeAnnouncement { NodeId = "parked-node", Name = "parked", Host = "test", ProcessId = 1, HeartbeatIntervalMs = 60_000 });
        Assert.That(dealer.Receive().MessageType, Is.EqualTo(MessageTypes.Of<NodeRecord>()));
        try
        {
            nats.Pause();
            // One DEALER: the registry takes the frames in this order, so the registration is dispatched before the leases.
            dealer.Send("register", new EventBusRegistration { Name = "waits-for-claim", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = "parked-node" });
            dealer.Send("lease-1", new PortRequest { NodeId = "parked-node" });
            dealer.Send("lease-2", new PortRequest { NodeId = "parked-node", Count = 2 });

            // Each reply within TestDealer.ReplyTimeout (10 s); a registry thread held by the claim would answer nothing for 60 s.
            var first = dealer.Receive();
            var second = dealer.Receive();
            Assert.That((first.RequestId, first.MessageType), Is.EqualTo(("lease-1", MessageTypes.Of<PortGrant>())), "the first lease is answered while the claim waits");
            Assert.That((second.RequestId, second.MessageType), Is.EqualTo(("lease-2", MessageTypes.Of<PortGrant>())), "so is the second");
            Assert.That(second.BodyAs<PortGrant>().Leases, Has.Count.EqualTo(2));
            Assert.That(nats.IsPaused, Is.True, "the nats-server is still stopped (nothing else sent it SIGCONT)");
            var parked = await host.InvokeAsync(state => (state.Cluster!.Claims.Parked, state.Cluster.Claims.InFlight, state.Buses.Contains("waits-for-claim")));
            Assert.That(parked, Is.EqualTo((1, 1, false)), "the registration is parked on its claim and changed nothing yet");
        }
        finally
        {
            nats.Resume();
        }

        var registered = dealer.Receive();
        Assert.That((registered.RequestId, registered.MessageType), Is.EqualTo(("register", MessageTypes.Of<EventBusRecord>())),
            $"the registration is answered once the bucket decides: {Describe(registered)}");
        Assert.That(registered.BodyAs<EventBusRecord>().RegistryHost, Is.EqualTo("host-a"));
        var after = await host.InvokeAsync(state => (state.Cluster!.Claims.Parked, state.Buses.Contains("waits-for-claim")));
        Assert.That(after, Is.EqualTo((0, true)), "nothing parked any more, the bus registered");
    }

    private static string Describe(RegistryEnvelope reply) =>
        reply.MessageType == MessageTypes.Of<Error>() ? $"{reply.BodyAs<Error>().Code} {reply.BodyAs<Error>().Message}" : reply.MessageType;
}
