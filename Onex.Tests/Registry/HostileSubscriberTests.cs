using System.Diagnostics;
using System.Text;
using NetMQ;
using NetMQ.Sockets;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;
using Onex.Transports.Zmq;

namespace Onex.Tests.Registry;

/// <summary>
/// Subscribe messages are the one thing a subscriber sends a PUB socket, and ZeroMQ keeps each distinct one in a trie
/// for the connection's life. The registry keeps only prefixes of the topics it publishes (PROTOCOL.md section 14).
/// </summary>
public class HostileSubscriberTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_peer_sending_100k_distinct_subscriptions_leaves_the_node_memory_bounded()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var good = new TestDealer(node.Router);
        using (var warm = new RawSubscriber(node.Pub))
        {
            warm.Send([1, .. Encoding.ASCII.GetBytes(ChangeTypes.HeartbeatTopic)]);
            warm.WaitForMessage(ChangeTypes.HeartbeatTopic, Wait);
        }
        good.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        var peakBefore = PeerBoundsTests.PeakRssBytes(node.Process.Id);

        const int Subscriptions = 100_000;
        using var hostile = new RawSubscriber(node.Pub);
        var padding = new string('x', 200);
        for (var i = 0; i < Subscriptions; i++)
        {
            // Distinct, long, and half of them under the registry's own prefix: none can match a topic it publishes.
            var prefix = i % 2 == 0 ? $"registry.{i:D6}.{padding}" : $"{i:D6}-{padding}";
            hostile.Send([1, .. Encoding.ASCII.GetBytes(prefix)]);
        }
        // Subscriptions from one connection are applied in order: a heartbeat through the last one proves all were read.
        hostile.Send([1, .. Encoding.ASCII.GetBytes(ChangeTypes.HeartbeatTopic)]);
        hostile.WaitForMessage(ChangeTypes.HeartbeatTopic, Wait);

        var growth = PeerBoundsTests.PeakRssBytes(node.Process.Id) - peakBefore;
        var started = Stopwatch.GetTimestamp();
        good.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" });
        var latency = Stopwatch.GetElapsedTime(started);
        TestContext.Out.WriteLine($"peak RSS growth {growth / 1048576.0:F1} MiB after {Subscriptions} distinct ~210-byte subscriptions " +
            $"({Subscriptions * 210L / 1048576.0:F0} MiB sent); a lease then took {latency.TotalMilliseconds:F0} ms");
        // Kept in the PUB's trie, each distinct suffix costs a node per byte (hundreds of MiB for these); dropped, only
        // the garbage of reading them remains.
        Assert.That(growth, Is.LessThan(64L * 1024 * 1024), "the node kept subscriptions that can never match a topic it publishes");
        Assert.That(latency, Is.LessThan(TimeSpan.FromSeconds(5)), "a well-behaved client waited too long after the flood");
    }

    [Test]
    public void The_documented_subscription_bound_is_the_registry_topics_prefixes()
    {
        var prefixes = new TopicPrefixes(Onex.RegistryNode.Changes.ZmqChangeBroadcaster.Topics);
        // PROTOCOL.md section 14 states these figures; a new change type changes them.
        Assert.That((prefixes.Count, prefixes.TotalBytes), Is.EqualTo((157, 2_647L)), "update PROTOCOL.md section 14");
        Assert.That(Onex.RegistryNode.Changes.ZmqChangeBroadcaster.Topics, Does.Contain(ChangeTypes.HeartbeatTopic).And.Contain("registry.lease.granted"));
        Assert.That(prefixes.Contains(Encoding.ASCII.GetBytes("registry.lease.")), Is.True);
        Assert.That(prefixes.Contains([]), Is.True, "the empty prefix (everything) is kept");
        Assert.That(prefixes.Contains(Encoding.ASCII.GetBytes("registry.lease.granted.")), Is.False);
    }

    [Test]
    public async Task A_topic_publisher_keeps_only_subscriptions_that_can_match_and_counts_the_rest()
    {
        var port = (await TestPorts.LeaseAsync(1))[0];
        await using var publisher = ZmqEventPublisher.BindForTopics($"tcp://127.0.0.1:{port}", ["orders.created", "orders.paid"]);
        using var subscriber = new SubscriberSocket();
        subscriber.Options.Linger = TimeSpan.Zero;
        subscriber.Connect(publisher.Endpoint);
        subscriber.Subscribe("orders.created.extra"); // longer than any topic: can never match
        subscriber.Subscribe("invoices.");
        subscriber.Subscribe("orders.p");

        // Until the subscription is applied nothing arrives: publish until the first event gets through.
        var deadline = Stopwatch.GetTimestamp();
        string? topic = null;
        while (topic is null && Stopwatch.GetElapsedTime(deadline) < Wait)
        {
            publisher.Publish(Onex.Events.OnexEvent.Create("orders.paid", new byte[] { 1 }, "test", "t"));
            if (subscriber.TryReceiveFrameString(TimeSpan.FromMilliseconds(100), out var received)) topic = received;
        }
        Assert.That(topic, Is.EqualTo("orders.paid"), "a subscription to a prefix of a published topic must be kept");
        Assert.That(publisher.RefusedSubscriptions, Is.EqualTo(2), "the two subscriptions that can never match are dropped and counted");

        publisher.Publish(Onex.Events.OnexEvent.Create("orders.created", new byte[] { 1 }, "test", "t"));
        subscriber.SkipMultipartMessage(); // the rest of the last orders.paid
        while (subscriber.TryReceiveFrameString(TimeSpan.FromMilliseconds(200), out var later))
        {
            Assert.That(later, Is.EqualTo("orders.paid"), "only the kept subscription may deliver");
            subscriber.SkipFrame();
        }
    }

    /// <summary>
    /// A SUB written from the ZMTP 3.0 spec on a plain TCP socket (<see cref="RawZmtpPeer"/>): unlike a NetMQ SUB it
    /// keeps no subscription table of its own, so it can send any number of them cheaply.
    /// </summary>
    private sealed class RawSubscriber(string endpoint) : IDisposable
    {
        private readonly RawZmtpPeer _peer = new(endpoint, "SUB");

        public void Send(byte[] message) => _peer.Send(message);

        /// <summary>Reads frames until a message frame starting with <paramref name="topic"/> arrives.</summary>
        public void WaitForMessage(string topic, TimeSpan timeout)
        {
            var expected = Encoding.ASCII.GetBytes(topic);
            var deadline = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(deadline) < timeout)
            {
                if (_peer.ReadFrame(timeout).Body.AsSpan().StartsWith(expected)) return;
            }
            Assert.Fail($"no '{topic}' message within {timeout.TotalSeconds} s");
        }

        public void Dispose() => _peer.Dispose();
    }
}
