using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Http;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using Onex.Tests.Http;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// The decision of the bucket watch's watchdog, check by check: a watch is re-created only when it delivered nothing
/// over a whole check period although the bucket held, at the start of that period, a revision it had not delivered.
/// </summary>
public class ClusterWatchdogTests
{
    // A revision the watch has not delivered at a check, and still has not at the next: stalled there. (delivered,
    // bucketLast) per check; only the last check is a stall.
    [TestCase(new ulong[] { 10, 10 }, new ulong[] { 12, 14 }, TestName = "A watch that delivers nothing while the bucket moves on is stalled at the second check")]
    [TestCase(new ulong[] { 7, 7, 8, 8 }, new ulong[] { 7, 8, 9, 9 }, TestName = "A revision written just before a check gets the next period to arrive")]
    public void A_revision_not_delivered_over_a_whole_period_is_a_stall(ulong[] delivered, ulong[] bucketLast)
    {
        var watchdog = new ClusterWatchdog();
        for (var i = 0; i < delivered.Length - 1; i++)
            Assert.That(watchdog.Check(delivered[i], bucketLast[i]), Is.False, $"check {i}: every awaited revision arrived or may still be on its way");
        Assert.That(watchdog.Check(delivered[^1], bucketLast[^1]), Is.True, "a whole period later nothing came: stalled");
    }

    [Test]
    public void A_watch_that_delivers_something_in_the_period_is_not_stalled_even_if_still_behind()
    {
        var watchdog = new ClusterWatchdog();
        Assert.That(watchdog.Check(10, 20), Is.False);
        Assert.That(watchdog.Check(15, 30), Is.False, "it moved: slow, not stalled");
        Assert.That(watchdog.Check(30, 30), Is.False, "caught up");
    }

    [Test]
    public void A_quiet_bucket_never_makes_a_quiet_watch_stalled()
    {
        var watchdog = new ClusterWatchdog();
        for (var i = 0; i < 5; i++) Assert.That(watchdog.Check(7, 7), Is.False, $"check {i}: nothing to deliver");
    }

    [Test]
    public void After_a_restart_the_new_watch_gets_a_whole_period_before_it_can_be_judged_again()
    {
        var watchdog = new ClusterWatchdog();
        watchdog.Check(0, 5);
        Assert.That(watchdog.Check(0, 5), Is.True, "stalled before delivering anything (a load that never started)");
        Assert.That(watchdog.Check(0, 5), Is.False, "the re-created watch is not judged at its first check");
        Assert.That(watchdog.Check(0, 5), Is.True, "but is at the next if it delivers nothing either");
    }
}

/// <summary>
/// The watchdog's re-creation path on a real nats-server: host A's watch is held (it applies nothing, as NATS.Net's
/// watcher that stopped delivering without an error), host B registers, and A's watchdog re-creates the watch from the
/// revision after the last one it delivered; A's view catches up and the metric counts the one re-creation.
/// </summary>
[NonParallelizable]
public class ClusterWatchRecreationTests
{
    [Test]
    public async Task A_stalled_watch_is_recreated_by_the_watchdog_and_the_view_catches_up()
    {
        await using var nats = await NatsTestServer.StartAsync();
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(nats.Url, bucket, "host-a") with { Replicas = 1 }, 0);
        await using var b = await StartHostAsync(Options(nats.Url, bucket, "host-b") with { Replicas = 1 }, 1);
        await using var http = await RegistryHttpServer.StartAsync(a, "http://127.0.0.1:0", Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        using var metrics = HttpTestClient.Create(http.Url);
        await using var onA = await ConnectAsync(a, "observer-a");
        await using var onB = await ConnectAsync(b, "worker-b");
        var open = new TaskCompletionSource();
        a.Cluster!.HoldWatchDelivery(open.Task);
        try
        {
            await onB.RegisterBusAsync("bus-b", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
            await BoundedAsync(b.Cluster!.FlushAsync(), "B's bus to reach the bucket");

            await WaitUntilAsync(() => a.Cluster.WatchRestarts >= 1, "A's watchdog to re-create the stalled watch", TimeSpan.FromSeconds(60));
            await BoundedAsync(a.Cluster.CatchUpAsync(), "A to catch up with the bucket through the new watch");
            var view = await onA.DescribeAsync();
            Assert.That(view.Buses!.Where(x => x.Name == "bus-b").Select(x => x.RegistryHost), Is.EqualTo(new[] { "host-b" }), "bus-b of host B is on A");
            var exposition = await metrics.GetStringAsync("/metrics");
            Assert.That(PrometheusText.Value(exposition, "onex_registry_cluster_watch_restarts_total"), Is.EqualTo(1), "one re-creation counted");
        }
        finally
        {
            open.TrySetResult();
        }
    }
}
