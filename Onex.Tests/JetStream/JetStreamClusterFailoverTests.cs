using NATS.Client.Core;
using NATS.Client.JetStream;
using Onex.Errors;
using Onex.Events;
using Onex.Testing.Nats;
using Onex.Transports.JetStream;
using static Onex.Tests.JetStream.JetStreamTesting;

namespace Onex.Tests.JetStream;

/// <summary>
/// The JetStream bus on a three-server nats-server cluster with R3 streams (issue 15): a server dies mid-stream while a
/// publisher publishes numbered events, each awaited until JetStream acknowledged it, and a durable consumer reads.
/// Nothing acknowledged is lost: every acknowledged number reaches the consumer (at least once).
/// </summary>
[NonParallelizable]
public class JetStreamClusterFailoverTests
{
    private const int Events = 300;
    private const int KillAfter = 100;

    [Test]
    public async Task Killing_the_stream_leader_mid_stream_loses_no_acknowledged_event()
    {
        await using var nats = await NatsTestCluster.StartAsync(3);
        var busName = UniqueBusName("r3");
        var options = JetStreamEventBusOptions.Default with
        {
            Url = nats.Urls,
            Name = busName,
            NodeId = "test",
            Replicas = 3,
            DeleteStreamOnDispose = true,
            ReconnectWaitMin = TimeSpan.FromMilliseconds(100),
            ReconnectWaitMax = TimeSpan.FromMilliseconds(500),
            PullExpiry = TimeSpan.FromSeconds(2),
            PublishTimeout = TimeSpan.FromSeconds(5),
        };
        await using var publisher = await JetStreamEventBus.ConnectAsync(options);
        await using var consumerBus = await JetStreamEventBus.ConnectAsync(options with { DeleteStreamOnDispose = false });
        await using var subscription = await consumerBus.SubscribeAsync("numbered.>", new() { DurableName = "reader", Capacity = 4 * Events });

        // The reader completes allArrived once every acknowledged number (known when publishing ends) has been read.
        var received = new HashSet<int>();
        var receivedLock = new Lock();
        List<int>? expected = null;
        var allArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void CheckArrived()
        {
            if (expected is not null && expected.All(received.Contains)) allArrived.TrySetResult();
        }
        using var stopReading = new CancellationTokenSource();
        var reading = Task.Run(async () =>
        {
            await foreach (var evt in subscription.Reader.ReadAllAsync(stopReading.Token))
                lock (receivedLock)
                {
                    received.Add(NumberOf(evt));
                    CheckArrived();
                }
        });

        var acknowledged = new List<int>();
        var refusals = 0;
        var killed = -1;
        for (var number = 1; number <= Events; number++)
        {
            if (number == KillAfter + 1)
            {
                killed = await StreamLeaderAsync(nats, busName);
                await nats.KillAsync(killed);
            }
            // Until acknowledged: a refusal during the failover (no leader yet) is not an acknowledgement, so the
            // publisher sends that number again, as an application would; bounded.
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await publisher.PublishAsync(Numbered("numbered.event", number));
                    acknowledged.Add(number);
                    break;
                }
                catch (UnavailableException) when (attempt < 20)
                {
                    refusals++;
                }
            }
        }
        Assert.That(nats.IsRunning(killed), Is.False, "a server was killed mid-stream");

        // Every acknowledged number arrives (bounded wait).
        lock (receivedLock)
        {
            expected = acknowledged;
            CheckArrived();
        }
        try
        {
            await allArrived.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            // Reported below with the numbers that did not arrive.
        }
        await stopReading.CancelAsync();
        try
        {
            await reading;
        }
        catch (OperationCanceledException)
        {
        }
        List<int> missing;
        lock (receivedLock) missing = acknowledged.Where(n => !received.Contains(n)).ToList();
        TestContext.Progress.WriteLine($"r3 failover: killed server {killed}, {acknowledged.Count} acknowledged, {refusals} refused during the failover");
        Assert.That(acknowledged, Has.Count.EqualTo(Events), "every number was acknowledged in the end (the two survivors keep a quorum)");
        Assert.That(missing, Is.Empty, $"acknowledged events lost: {string.Join(", ", missing.Take(20))}");
    }

    /// <summary>The index of the server leading the bus's stream (the one whose loss forces an election), or 0 when none is named.</summary>
    private static async Task<int> StreamLeaderAsync(NatsTestCluster nats, string busName)
    {
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = nats.Urls, Name = "onex-test-raw" });
        var js = new NatsJSContext(connection);
        await foreach (var name in js.ListStreamNamesAsync())
        {
            if (!name.EndsWith(busName, StringComparison.Ordinal)) continue;
            var stream = await js.GetStreamAsync(name);
            var leader = stream.Info.Cluster?.Leader;
            Assert.That(stream.Info.Config.NumReplicas, Is.EqualTo(3), "the bus declared an R3 stream");
            if (leader is not null && leader.StartsWith("onex-n", StringComparison.Ordinal) && int.TryParse(leader["onex-n".Length..], out var index)) return index;
        }
        return 0;
    }
}
