using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Server;

namespace Onex.Tests.Registry;

/// <summary>
/// What peers can make a node process hold while it receives (PROTOCOL.md section 14, "frames ZeroMQ holds received"):
/// ZeroMQ's receive high-water mark counts finished messages per connection, so neither a multipart message that is
/// never finished nor many connections each filling its queue is bounded by it. The node counts the bytes of received
/// frames in its own process and, past <see cref="PeerBounds.ReceivedBytesTotal"/>, closes every connection of its request
/// socket and listens again. Measured as the node's peak resident memory, against the issue's 300 MB target.
/// </summary>
public class ReceivedBytesBoundTests
{
    private const long RssTarget = 300L * 1000 * 1000; // the issue's target: the node stays under 300 MB under each abuse
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ReplyPatience = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_multipart_message_never_finished_gets_the_connections_closed_at_the_bound_and_a_retry_is_answered_from_the_reply_cache()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var good = new TestDealer(node.Router);
        good.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        const string LeaseRequest = "lease-once";
        var granted = Expect<PortGrant>(Ask(good, LeaseRequest, new PortRequest { NodeId = "n1" }));

        // Frames of 1 MiB with MORE set, forever: before the bound the node took all of them (+269 MB for 256 MiB).
        var sendCap = 4 * PeerBounds.ReceivedBytesTotal;
        long sent = 0;
        var outcome = RawZmtpPeer.Outcome.Sent;
        using (var hostile = new RawZmtpPeer(node.Router, "DEALER"))
        {
            var frame = new byte[1024 * 1024];
            Array.Fill(frame, (byte)'x');
            while (sent < sendCap && (outcome = hostile.SendFrame(frame, more: true, Patience)) == RawZmtpPeer.Outcome.Sent) sent += frame.Length;
        }
        var peak = PeerBoundsTests.PeakRssBytes(node.Process.Id);
        TestContext.Out.WriteLine($"the node closed the connection after {sent / 1048576.0:F0} MiB of an unfinished message; peak RSS {peak / 1048576.0:F1} MiB");
        Assert.That(outcome, Is.EqualTo(RawZmtpPeer.Outcome.Closed), $"the node kept reading {sent / 1048576} MiB of an unfinished message");
        await WaitForCutAsync(node);
        Assert.That(peak, Is.LessThan(RssTarget), "the node's peak resident memory passed the target under an unfinished message");

        // The well-behaved client's connection was closed too: its DEALER reconnects by itself, and the same request sent
        // again (as a client does until answered) is answered from the reply cache, not run again (one lease, the same one).
        var again = Expect<PortGrant>(AskAsAClient(good, LeaseRequest, new PortRequest { NodeId = "n1" }));
        Assert.That(again.Leases.Single().LeaseId, Is.EqualTo(granted.Leases.Single().LeaseId), "the retry after the cut was run again");
        // A fresh DEALER: the good one may still get a late duplicate answer to one of its resends.
        using var check = new TestDealer(node.Router);
        Assert.That(check.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Leases, Has.Count.EqualTo(1), "the retry after the cut made a second lease");
    }

    [Test]
    public async Task Many_connections_filling_their_queues_of_a_busy_node_get_closed_at_the_bound_and_others_are_answered_after()
    {
        await using var node = await PeerBoundsTests.StartNodeAsync();
        using var busy = new TestDealer(node.Router);
        busy.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
        busy.Call<ToolContractRegistration, ToolContractRecord>(ToolContracts.Registration("nested", inputSchema: HostileSchemaTests.ExponentialSchema));
        using var good = new TestDealer(node.Router);
        good.Call<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = "n1" });

        // Keeps the registry thread busy (each validation runs to its 500 ms CPU budget), so the queues fill: each
        // connection may queue 136 MiB (128 frames of the largest size), which four connections pass together.
        for (var i = 0; i < 6; i++) busy.Send(busy.NextRequestId(), new ValidatePayload { ToolName = "nested", Payload = "{\"v\":\"x\"}" });
        const int Connections = 4;
        var frameBytes = (int)RegistryNodeOptions.Default.MaxReceiveBytes;
        var perConnectionCap = 2 * PeerBounds.QueuedRequestBytesPerPeer(frameBytes);
        // Every connection is made (ZMTP handshake done) before any floods: one made while the node cuts them all would be
        // reset in its handshake, which is the cut working, not what this test is about.
        var hostiles = new List<RawZmtpPeer>();
        (RawZmtpPeer.Outcome Outcome, long Sent)[] floods;
        try
        {
            for (var i = 0; i < Connections; i++) hostiles.Add(new RawZmtpPeer(node.Router, "DEALER"));
            floods = await Task.WhenAll(hostiles.Select(hostile => Task.Run(() =>
            {
                using (hostile)
                {
                    var frame = new byte[frameBytes];
                    Array.Fill(frame, (byte)'x');
                    long sent = 0;
                    var outcome = RawZmtpPeer.Outcome.Sent;
                    while (sent < perConnectionCap && (outcome = hostile.SendFrame(frame, more: false, Patience)) == RawZmtpPeer.Outcome.Sent) sent += frame.Length;
                    return (outcome, sent);
                }
            })));
        }
        finally
        {
            foreach (var hostile in hostiles) hostile.Dispose();
        }
        var peak = PeerBoundsTests.PeakRssBytes(node.Process.Id);
        TestContext.Out.WriteLine($"{Connections} connections sent {string.Join(", ", floods.Select(f => $"{f.Sent / 1048576.0:F0} MiB ({f.Outcome})"))}; peak RSS {peak / 1048576.0:F1} MiB");
        Assert.That(floods.Select(f => f.Outcome), Has.Some.EqualTo(RawZmtpPeer.Outcome.Closed), "the node closed no connection although their queues held more than the bound");
        await WaitForCutAsync(node);
        Assert.That(peak, Is.LessThan(RssTarget), "the node's peak resident memory passed the target under many full queues");

        // A well-behaved client is answered once the validations already taken are done (its DEALER reconnected).
        var reply = AskAsAClient(good, "after-cut", new NodeHeartbeat { NodeId = "n1" });
        Assert.That(reply.RequestId, Is.EqualTo("after-cut"));
    }

    private static RegistryEnvelope Ask<T>(TestDealer dealer, string requestId, T body)
    {
        dealer.Send(requestId, body);
        var reply = dealer.TryReceive(ReplyPatience);
        Assert.That(reply, Is.Not.Null, $"no reply to {requestId} within {ReplyPatience.TotalSeconds} s");
        return reply!;
    }

    /// <summary>
    /// Sends <paramref name="body"/> and, as a client does (PROTOCOL.md section 4), sends it again with the same ids each
    /// <see cref="ResendAfter"/> until it is answered, within <see cref="ReplyPatience"/>. Needed after a cut: the node logs
    /// it when it has asked ZeroMQ to close the connections, which ZeroMQ then does on its own thread, so a request sent
    /// right after the log line can still reach a connection that is about to close, and be dropped with it.
    /// </summary>
    private static RegistryEnvelope AskAsAClient<T>(TestDealer dealer, string requestId, T body)
    {
        var started = TimeProvider.System.GetTimestamp();
        while (TimeProvider.System.GetElapsedTime(started) < ReplyPatience)
        {
            dealer.Send(requestId, body);
            if (dealer.TryReceive(ResendAfter) is { } reply) return reply;
        }
        Assert.Fail($"no reply to {requestId} within {ReplyPatience.TotalSeconds} s, resending it every {ResendAfter.TotalSeconds} s");
        throw new InvalidOperationException("unreachable");
    }

    private static readonly TimeSpan ResendAfter = TimeSpan.FromSeconds(5);

    private static T Expect<T>(RegistryEnvelope reply) where T : class => TestDealer.Expect<T>(reply);

    private static Task WaitForCutAsync(PeerBoundsTests.RunningNode node) =>
        PeerBoundsTests.WaitUntilAsync(() => node.Process.Output.Contains("closed every connection") || node.Process.Errors.Contains("closed every connection"),
            "the node to log that it closed every connection");
}
