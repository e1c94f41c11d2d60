using Microsoft.Extensions.Time.Testing;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;

namespace Onex.Tests.Registry;

public class RegistryServerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Test]
    public async Task A_dealer_with_100_requests_in_flight_gets_every_reply_with_its_id()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        var sent = Enumerable.Range(0, 100).Select(i => $"req-{i}").ToList();
        foreach (var id in sent) dealer.Send(id, new NodeAnnouncement { NodeId = "node-" + id, HeartbeatIntervalMs = 60_000 });

        var replies = Enumerable.Range(0, 100).Select(_ => dealer.Receive()).ToList();

        Assert.That(replies.Select(r => r.RequestId), Is.EquivalentTo(sent), "some replies are missing or answer unknown ids");
        Assert.That(replies.Select(r => r.ClientId), Is.All.EqualTo(dealer.ClientId));
        Assert.That(replies.Select(r => r.MessageType), Is.All.EqualTo(MessageTypes.Of<NodeRecord>()));
        Assert.That(replies.Select(r => r.BodyAs<NodeRecord>().NodeId), Is.EquivalentTo(sent.Select(id => "node-" + id)));
    }

    [Test]
    public async Task A_req_socket_gets_its_reply_behind_the_empty_delimiter()
    {
        await using var host = await TestNodes.StartAsync();
        using var req = new RequestSocket();
        req.Options.Linger = TimeSpan.Zero;
        req.Connect(host.RouterEndpoint);

        req.SendFrame(RegistryCodec.Encode("req-1", "req-client", new PortRequest { NodeId = "n1" }));
        Assert.That(req.TryReceiveFrameBytes(Wait, out var frame), Is.True, "no reply to the REQ socket");

        var reply = RegistryCodec.Decode(frame!);
        Assert.That((reply.RequestId, reply.ClientId), Is.EqualTo(("req-1", "req-client")));
        Assert.That(TestDealer.Expect<PortGrant>(reply).Leases, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task A_retried_request_returns_the_same_lease_and_creates_no_second_one()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        var request = new PortRequest { NodeId = "n1", Purpose = "retry" };

        dealer.Send("same-id", request);
        var first = dealer.ReceiveFrame();
        dealer.Send("same-id", request);
        var second = dealer.ReceiveFrame();

        Assert.That(second, Is.EqualTo(first), "a retry must get the first reply byte for byte");
        var snapshot = dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        Assert.That(snapshot.Leases, Has.Count.EqualTo(1), "the retry created a second lease");
    }

    [Test]
    public async Task Reusing_a_request_id_for_a_different_request_is_an_invalid_argument()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.Send("id-1", new PortRequest { NodeId = "n1" });
        TestDealer.Expect<PortGrant>(dealer.Receive());

        dealer.Send("id-1", new PortRequest { NodeId = "n2" });
        var error = TestDealer.ExpectError(dealer.Receive());

        Assert.That(error.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That((error.Details["field"], error.Details["reason"]), Is.EqualTo(("requestId", "reused")));
    }

    [Test]
    public async Task Lease_renew_and_release_work_over_the_wire()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases[0];
        var renewed = dealer.Call<LeaseRenewal, PortLease>(new LeaseRenewal { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken });
        Assert.That(renewed.ExpiresAt, Is.GreaterThanOrEqualTo(lease.ExpiresAt));
        var ack = dealer.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken });
        Assert.That(ack.Ok, Is.True);
    }

    [Test]
    public async Task Stats_count_requests_and_errors_by_code()
    {
        await using var host = await TestNodes.StartAsync();
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.Request(new NodeHeartbeat { NodeId = "ghost" });
        dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" });

        var stats = dealer.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }).Stats!;

        Assert.That(stats.RequestsServed, Is.EqualTo(2), "the introspection itself is counted after it is answered");
        Assert.That(stats.ErrorsByCode[ErrorCodes.NotFound], Is.EqualTo(1));
        Assert.That(stats.LeaseCount, Is.EqualTo(1));
    }

    [Test]
    public async Task A_subscriber_sees_lease_granted_changes_with_consecutive_sequence_numbers()
    {
        await using var host = await TestNodes.StartAsync();
        using var subscriber = new TestSubscriber(host.PubEndpoint);
        subscriber.WaitForHeartbeat(Wait); // the subscription is live
        using var dealer = new TestDealer(host.RouterEndpoint);

        var grant = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Count = 2 });

        var first = subscriber.WaitForChange(ChangeTypes.LeaseGranted, Wait);
        var second = subscriber.WaitForChange(ChangeTypes.LeaseGranted, Wait);
        Assert.That(new[] { first.Key, second.Key }, Is.EqualTo(grant.Leases.Select(l => l.LeaseId)));
        Assert.That(second.Sequence, Is.EqualTo(first.Sequence + 1));
        Assert.That(first.Epoch, Is.EqualTo(host.Epoch));
        Assert.That(first.NewValue?.Lease?.Port, Is.EqualTo(grant.Leases[0].Port));
    }

    [Test]
    public async Task Heartbeats_carry_the_epoch_and_current_sequence()
    {
        await using var host = await TestNodes.StartAsync();
        using var subscriber = new TestSubscriber(host.PubEndpoint, ChangeTypes.HeartbeatTopic);
        using var dealer = new TestDealer(host.RouterEndpoint);
        dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" });

        var heartbeat = subscriber.WaitForHeartbeat(Wait, hb => hb.Sequence == 1);

        Assert.That(heartbeat.Epoch, Is.EqualTo(host.Epoch));
        Assert.That(heartbeat.IntervalMs, Is.EqualTo(50));
        Assert.That(heartbeat.Stopping, Is.False);
    }

    [Test]
    public async Task Stopping_the_node_broadcasts_a_stopping_heartbeat()
    {
        var host = await TestNodes.StartAsync();
        using var subscriber = new TestSubscriber(host.PubEndpoint, ChangeTypes.HeartbeatTopic);
        subscriber.WaitForHeartbeat(Wait);

        await host.DisposeAsync();

        var last = subscriber.WaitForHeartbeat(Wait, hb => hb.Stopping);
        Assert.That(last.Epoch, Is.EqualTo(host.Epoch));
    }

    [Test]
    public async Task A_lease_expires_on_the_fake_clock_and_the_expiry_is_broadcast()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
        await using var host = await TestNodes.StartAsync(time: time);
        using var subscriber = new TestSubscriber(host.PubEndpoint);
        // Heartbeats only happen when the fake clock moves: move it until one arrives (the subscription is live).
        var live = false;
        for (var i = 0; i < 200 && !live; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(50));
            live = subscriber.TryReceive(TimeSpan.FromMilliseconds(50)) is not null;
        }
        Assert.That(live, Is.True, "no heartbeat arrived while the fake clock moved");
        using var dealer = new TestDealer(host.RouterEndpoint);
        var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", TtlMs = 5000 }).Leases[0];

        time.Advance(TimeSpan.FromMilliseconds(4999));
        var snapshot = dealer.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        Assert.That(snapshot.Leases.Select(l => l.LeaseId), Does.Contain(lease.LeaseId), "the lease expired before its TTL");
        time.Advance(TimeSpan.FromMilliseconds(1));

        var expired = subscriber.WaitForChange(ChangeTypes.LeaseExpired, Wait);
        Assert.That(expired.Key, Is.EqualTo(lease.LeaseId));
    }

    [Test]
    public async Task A_short_lease_expires_on_the_real_clock_and_the_expiry_is_broadcast()
    {
        await using var host = await TestNodes.StartAsync(o => o with { Leases = o.Leases with { MinTtl = TimeSpan.FromMilliseconds(50) } });
        using var subscriber = new TestSubscriber(host.PubEndpoint);
        subscriber.WaitForHeartbeat(Wait);
        using var dealer = new TestDealer(host.RouterEndpoint);

        var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", TtlMs = 200 }).Leases[0];

        var expired = subscriber.WaitForChange(ChangeTypes.LeaseExpired, Wait, c => c.Key == lease.LeaseId);
        Assert.That(expired.Timestamp, Is.GreaterThanOrEqualTo(lease.ExpiresAt), "the lease expired before its TTL had passed");
    }

    [Test]
    public async Task A_second_node_on_a_router_endpoint_in_use_fails_naming_the_endpoint()
    {
        await using var first = await TestNodes.StartAsync();
        var ex = Assert.ThrowsAsync<PortUnavailableException>(() => RegistryNodeHost.StartAsync(TestNodes.Options(o => o with { Endpoint = first.RouterEndpoint })));
        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.PortUnavailable));
        Assert.That(ex.Message, Does.Contain(first.RouterEndpoint));
    }

    [Test]
    public async Task A_second_node_on_a_pub_endpoint_in_use_fails_naming_the_endpoint()
    {
        await using var first = await TestNodes.StartAsync();
        var ex = Assert.ThrowsAsync<PortUnavailableException>(() => RegistryNodeHost.StartAsync(TestNodes.Options(o => o with { PubEndpoint = first.PubEndpoint })));
        Assert.That(ex!.Message, Does.Contain(first.PubEndpoint));
    }

    [Test]
    public void A_pool_entirely_inside_the_ephemeral_range_fails_at_start()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "20000 29999");
            var ex = Assert.ThrowsAsync<ArgumentException>(() => TestNodes.StartAsync(o => o with { Leases = o.Leases with { EphemeralRangePath = file } }));
            Assert.That(ex!.Message, Does.Contain("ephemeral"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
