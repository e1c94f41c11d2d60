using System.Diagnostics;
using NetMQ;
using NetMQ.Sockets;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Auth;
using Onex.Testing;
using Onex.Tests.Infrastructure;
using Onex.Tests.Registry;

namespace Onex.Tests.Auth;

/// <summary>
/// One tenant flooding the registry (a real node process) beyond its requests-per-second quota does not starve
/// another tenant of the registry's single thread: the refusals cost next to nothing, and the ROUTER socket takes
/// requests from its peers in turn.
/// </summary>
[NonParallelizable] // it measures reply times; keep the process's other tests out of its timing
public class TenantFairnessTests
{
    private const int FloodSockets = 4, FloodInFlight = 64, FloodMaxRequests = 200_000, Probes = 100, RequestsPerSecond = 200;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    // Generous for a busy 2-core machine; a starved tenant waits for the whole flood (many seconds) instead.
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(3);

    private sealed class Flood
    {
        public long Ok, OverQuota, Other;
        public long Replies => Interlocked.Read(ref Ok) + Interlocked.Read(ref OverQuota) + Interlocked.Read(ref Other);
    }

    [Test]
    public async Task A_tenant_flooding_beyond_its_request_rate_leaves_another_tenant_answered_within_a_bound()
    {
        using var files = new AuthTestFiles(new TenantQuotas { RequestsPerSecond = RequestsPerSecond });
        var ports = await TestPorts.LeaseAsync(2);
        var router = $"tcp://127.0.0.1:{ports[0]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        var node = NodeProcess.Start("--endpoint", router, "--pub-endpoint", $"tcp://127.0.0.1:{ports[1]}", "--port-range", pool,
            "--store", "memory", "--auth-file", files.Path, "--log-level", "Warning");
        var flood = new Flood();
        using var stop = new CancellationTokenSource();
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var flooders = new List<Task>();
        try
        {
            await node.WaitForLineAsync("registry: router", Wait);
            using var b = new TestDealer(router) { Token = files.NodeB };
            b.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "b-worker", HeartbeatIntervalMs = 60_000 });

            for (var i = 0; i < FloodSockets; i++)
            {
                var id = i;
                flooders.Add(Task.Factory.StartNew(() => RunFlood(router, files.NodeA, id, flood, running, stop.Token), TaskCreationOptions.LongRunning));
            }
            await running.Task.WaitAsync(Wait); // the flood is being answered (and refused) before the probes start

            var started = flood.Replies;
            var overQuotaAtStart = Interlocked.Read(ref flood.OverQuota);
            var clock = Stopwatch.StartNew();
            var latencies = new List<TimeSpan>(Probes);
            for (var i = 0; i < Probes; i++)
            {
                var sent = Stopwatch.GetTimestamp();
                var reply = b.Request(new NodeHeartbeat { NodeId = "b-worker" });
                latencies.Add(Stopwatch.GetElapsedTime(sent));
                Assert.That(reply.MessageType, Is.EqualTo(nameof(Ack)),
                    $"probe {i} of tenant b: {(reply.MessageType == nameof(Error) ? reply.BodyAs<Error>().Code + " " + reply.BodyAs<Error>().Message : reply.MessageType)}");
            }
            var probing = clock.Elapsed;
            var floodDuringProbes = flood.Replies - started;
            var refusedDuringProbes = Interlocked.Read(ref flood.OverQuota) - overQuotaAtStart;
            stop.Cancel();
            await Task.WhenAll(flooders).WaitAsync(Wait);

            latencies.Sort();
            var figures = $"tenant b: {Probes} probes in {probing.TotalMilliseconds:F0} ms, median {latencies[Probes / 2].TotalMilliseconds:F1} ms, " +
                $"max {latencies[^1].TotalMilliseconds:F1} ms; tenant a's flood meanwhile: {floodDuringProbes} replies, {refusedDuringProbes} of them QUOTA_EXCEEDED; " +
                $"whole flood: {flood.Ok} served, {flood.OverQuota} over quota, {flood.Other} other";
            TestContext.Out.WriteLine(figures);
            Assert.That(refusedDuringProbes, Is.GreaterThan(Probes), "the flood was not over its quota while tenant b was probing: " + figures);
            Assert.That(flood.Other, Is.Zero, "the flood got answers other than its replies and QUOTA_EXCEEDED: " + figures);
            Assert.That(latencies[^1], Is.LessThan(Bound), "tenant b waited too long for an answer while tenant a flooded: " + figures);
            // The quota held: a's served requests stay near the rate (a burst of one second's worth, plus the time run).
            var allowed = RequestsPerSecond * (2 + (probing.TotalSeconds + Wait.TotalSeconds));
            Assert.That(flood.Ok, Is.LessThanOrEqualTo((long)allowed), "tenant a got more than its rate: " + figures);
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(Wait), Is.Zero, node.Errors);
        }
        finally
        {
            stop.Cancel();
            node.KillIfRunning();
            node.Dispose();
        }
    }

    /// <summary>One flooding DEALER: keeps <see cref="FloodInFlight"/> snapshot requests in flight until stopped (bounded in count).</summary>
    private static void RunFlood(string router, string token, int id, Flood flood, TaskCompletionSource running, CancellationToken stop)
    {
        using var socket = new DealerSocket();
        socket.Options.Linger = TimeSpan.Zero;
        socket.Options.SendHighWatermark = FloodInFlight * 2;
        socket.Options.ReceiveHighWatermark = FloodInFlight * 2;
        socket.Connect(router);
        var sent = 0;
        byte[] Next() => RegistryCodec.Encode($"f{++sent}", $"flood-{id}", new SnapshotRequest(), token: token);
        for (var i = 0; i < FloodInFlight; i++) socket.SendFrame(Next());
        var inFlight = FloodInFlight;
        while (inFlight > 0)
        {
            if (!socket.TryReceiveFrameBytes(TimeSpan.FromSeconds(1), out var frame))
            {
                if (stop.IsCancellationRequested) return; // replies still owed are dropped with the socket
                continue;
            }
            inFlight--;
            var reply = RegistryCodec.Decode(frame, RegistryCodec.MaxReplyFrameBytes);
            if (reply.MessageType == nameof(RegistrySnapshot)) Interlocked.Increment(ref flood.Ok);
            else if (reply.MessageType == nameof(Error) && reply.BodyAs<Error>().Code == ErrorCodes.QuotaExceeded) Interlocked.Increment(ref flood.OverQuota);
            else Interlocked.Increment(ref flood.Other);
            if (flood.Replies >= 1_000) running.TrySetResult();
            if (!stop.IsCancellationRequested && sent < FloodMaxRequests)
            {
                socket.SendFrame(Next());
                inFlight++;
            }
        }
    }
}
