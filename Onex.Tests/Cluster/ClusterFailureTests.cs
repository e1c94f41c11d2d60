using Onex.Protocol;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// Failures of a cluster's parts with real nats-server processes on loopback: a registry that dies, a nats-server that
/// dies, a registry cut off from NATS. Short cluster timings (200 ms heartbeats, 1 s removal grace) bound the time.
/// </summary>
[NonParallelizable]
public class ClusterFailureTests
{
    [Test]
    public async Task Killed_registry_entries_turn_unhealthy_then_are_removed_once_and_come_back_when_it_restarts()
    {
        var nats = await NatsTestCluster.StartAsync(3);
        var bucket = Bucket();
        var dataB = Directory.CreateTempSubdirectory("onex-cluster-b-").FullName;
        try
        {
            await using var a = await StartHostAsync(Options(nats.Urls, bucket, "host-a"), 0);
            await using var c = await StartHostAsync(Options(nats.Urls, bucket, "host-c"), 2);
            await using var onA = await ConnectAsync(a, "observer-a");
            await using var changesOnA = onA.WatchEvents("registry.");
            await changesOnA.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the first snapshot of A");
            var b = await StartHostAsync(Options(nats.Urls, bucket, "host-b"), 1, dataB);
            var onB = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(b.RouterEndpoint, b.PubEndpoint, "worker-b") with
            {
                DepartOnDispose = false,
                HeartbeatInterval = TimeSpan.FromSeconds(5),
            });
            await onB.RegisterBusAsync("bus-b", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
            await SyncAsync(b, a);
            // Awaited on A's change stream, not read once: with the tests' 200 ms beat, a loaded machine's 600 ms of
            // silence can show the live host B unhealthy on A for a moment.
            await changesOnA.UntilAsync(e => e.Change is { Key: "bus-b" } ch && ch.NewValue?.Bus?.Health == Health.Healthy, "bus-b healthy on A");

            // The registry of host B dies: no departure, its heartbeat key just stops changing.
            await b.DisposeAsync();
            await onB.DisposeAsync();
            // Node first, then its buses (ClusterCatalog.SetHostHealth), each broadcast on A's own stream.
            await changesOnA.UntilAsync(e => e.Change is { ChangeType: ChangeTypes.BusUpdated, Key: "bus-b" } ch && ch.NewValue!.Bus!.Health == Health.Unhealthy,
                "bus-b unhealthy on A's change stream");
            var unhealthy = await onA.DescribeAsync();
            Assert.That(unhealthy.Nodes!.Single(n => n.NodeId == "worker-b").Health, Is.EqualTo(Health.Unhealthy), "worker-b unhealthy on A");
            Assert.That(unhealthy.Cluster!.Hosts.Single(h => h.Host == "host-b").Health, Is.EqualTo(Health.Unhealthy), "host-b unhealthy on A");
            // The remover deletes host B's keys in the bucket's key order: both removals, in either order.
            var removed = new HashSet<string>();
            await changesOnA.UntilAsync(e =>
            {
                if (e.Change is { ChangeType: ChangeTypes.BusRemoved or ChangeTypes.NodeRemoved } change) removed.Add(change.Key);
                return removed.SetEquals(["bus-b", "worker-b"]);
            }, "bus-b and worker-b removed on A's change stream");
            await WaitUntilAsync(() => a.Cluster!.Status().Hosts.All(h => h.Host != "host-b"), "host B forgotten on A");
            await WaitUntilAsync(() => c.Cluster!.Status().Hosts.All(h => h.Host != "host-b"), "host B forgotten on C");
            await using var onC = await ConnectAsync(c, "observer-c");
            var onCView = await onC.DescribeAsync();
            Assert.That(onCView.Buses!.Select(x => x.Name), Does.Not.Contain("bus-b"), "host B's bus is gone on C too");
            // The remover counts after deleting the heartbeat key, which the others may have seen first.
            await WaitUntilAsync(() => a.Cluster!.HostsRemoved + c.Cluster!.HostsRemoved > 0, "the remover to finish");
            Assert.That(a.Cluster!.HostsRemoved + c.Cluster!.HostsRemoved, Is.EqualTo(1), "exactly one registry removed host B (compare-and-set)");

            // B restarts from its durable store and publishes its entries again.
            await using var restarted = await StartHostAsync(Options(nats.Urls, bucket, "host-b"), 1, dataB);
            await SyncAsync(restarted, a);
            var back = await onA.DescribeAsync();
            Assert.That(back.Nodes!.Select(n => n.NodeId), Does.Contain("worker-b"), "host B's node is back on A");
            Assert.That(back.Buses!.Single(x => x.Name == "bus-b").RegistryHost, Is.EqualTo("host-b"));
        }
        finally
        {
            Directory.Delete(dataB, recursive: true);
        }
    }

    [Test]
    public async Task Killing_one_nats_server_keeps_catalogue_reads_and_writes_working_and_loses_nothing_acknowledged()
    {
        var nats = await NatsTestCluster.StartAsync(3);
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(nats.Urls, bucket, "host-a"), 0);
        await using var c = await StartHostAsync(Options(nats.Urls, bucket, "host-c"), 2);
        await using var onA = await ConnectAsync(a, "writer-a");
        await using var onC = await ConnectAsync(c, "reader-c");
        for (var i = 0; i < 5; i++) await onA.RegisterBusAsync($"before-{i}", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await onA.RegisterToolAsync("kept.tool", "1.0.0", InputSchema, OutputSchema);
        await SyncAsync(a, c);
        Assert.That((await onC.DescribeAsync()).Buses!.Count(x => x.Name.StartsWith("before-")), Is.EqualTo(5), "the first buses on C");

        await nats.KillAsync(0);

        // Reads never needed NATS; a registration waits on the registry for the session and the bucket's new leader
        // (bounded), and the client resends what was answered UNAVAILABLE meanwhile.
        for (var i = 0; i < 5; i++) await onA.RegisterBusAsync($"after-{i}", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        var refused = Assert.CatchAsync<Onex.Errors.OnexException>(async () => await onC.RegisterToolAsync("kept.tool", "1.0.0", OtherInputSchema, OutputSchema));
        Assert.That(refused!.Code, Is.EqualTo(Onex.Errors.ErrorCodes.ContractConflict), "the claim made before the kill still holds");
        await SyncAsync(a, c);
        var seen = await onC.DescribeAsync();
        Assert.That(seen.Buses!.Count(x => x.Name.StartsWith("after-")), Is.EqualTo(5), "the later buses on C");
        Assert.That(seen.Buses!.Count(x => x.Name.StartsWith("before-")), Is.EqualTo(5), "nothing acknowledged before the kill was lost");
    }

    [Test]
    public async Task Registry_cut_off_from_nats_serves_its_host_marks_the_view_stale_and_catches_up_on_reconnect()
    {
        var nats = await NatsTestCluster.StartAsync(3);
        var bucket = Bucket();
        // The test cluster does not advertise its servers to clients, so C knows only server 2: killing it cuts C off.
        await using var a = await StartHostAsync(Options($"{nats.UrlOf(0)},{nats.UrlOf(1)}", bucket, "host-a"), 0);
        await using var c = await StartHostAsync(Options(nats.UrlOf(2), bucket, "host-c"), 2);
        await using var onA = await ConnectAsync(a, "writer-a");
        await using var onC = await ConnectAsync(c, "local-c");

        await nats.KillAsync(2);
        await WaitUntilAsync(() => !c.Cluster!.Current, "C to notice it lost NATS");
        var stale = await onC.DescribeAsync();
        Assert.That(stale.Cluster!.Stale, Is.True, "the cluster view is marked stale");
        Assert.That(stale.Cluster.Connected, Is.False);
        await using (var lease = await onC.LeasePortAsync())
            Assert.That(lease.Ports, Has.Count.EqualTo(1), "C keeps leasing its own host's ports");
        await onA.RegisterBusAsync("while-away", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await using var lateC = await ConnectAsync(c, "announced-while-away");

        await nats.StartAgainAsync(2);
        await SyncAsync(a, c);
        var caughtUp = await onC.DescribeAsync();
        Assert.That(caughtUp.Cluster!.Stale, Is.False, "C is current again");
        Assert.That(caughtUp.Buses!.Single(x => x.Name == "while-away").RegistryHost, Is.EqualTo("host-a"), "C caught up with what A registered meanwhile");
        await SyncAsync(c, a);
        var published = await onA.DescribeAsync();
        Assert.That(published.Nodes!.Where(n => n.NodeId == "announced-while-away").Select(n => n.RegistryHost), Is.EqualTo(new[] { "host-c" }),
            "the node C took while cut off, published on reconnect");
    }
}
