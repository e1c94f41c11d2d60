using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// A live host that another registry removed (it judged the host dead: paused, or cut off past the grace period) gets
/// its entries back in the catalogue by itself, with real registries on a three-server nats cluster. The registry that
/// removes it is the test, driving <see cref="ClusterHostRemoval"/>'s steps on the bucket as a stale registry would.
/// </summary>
[NonParallelizable]
public class ClusterRejoinTests
{
    private const string HostB = "host-b";

    /// <summary>Takes the removal of host B at the revision of its heartbeat key just read (again when a beat of B's lands in between).</summary>
    private static async Task<ulong> TakeRemovalOfBAsync(INatsKVStore store)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var seen = await store.GetEntryAsync<byte[]>(ClusterKeys.Heartbeat(HostB));
            if (await ClusterHostRemoval.TakeAsync(store, HostB, seen.Revision, "host-x", 0, CancellationToken.None) is { } marker) return marker;
        }
        Assert.Fail("could not take the removal of host B between two of its heartbeats");
        return 0;
    }

    /// <summary>
    /// Hosts A and B (in-process registries) on a three-server nats cluster, a client of each, B's bus registered and
    /// in A's view, and the test's own connection to the bucket (the remover).
    /// </summary>
    private sealed class TwoHosts : IAsyncDisposable
    {
        private readonly List<IAsyncDisposable> _started = [];

        public NatsTestCluster Nats { get; private set; } = null!;
        public RegistryNodeHost A { get; private set; } = null!;
        public RegistryNodeHost B { get; private set; } = null!;
        public RegistryClient OnA { get; private set; } = null!;
        public RegistryClient OnB { get; private set; } = null!;
        public INatsKVStore Store { get; private set; } = null!;

        /// <param name="grace">The hosts' removal grace period (default 1 s).</param>
        public static async Task<TwoHosts> StartAsync(TimeSpan? grace = null)
        {
            var hosts = new TwoHosts();
            try
            {
                hosts.Nats = hosts.Keep(await NatsTestCluster.StartAsync(3));
                var bucket = Bucket();
                hosts.A = hosts.Keep(await StartHostAsync(Options(hosts.Nats.Urls, bucket, "host-a", grace), 0));
                hosts.B = hosts.Keep(await StartHostAsync(Options(hosts.Nats.Urls, bucket, HostB, grace), 1));
                hosts.OnA = hosts.Keep(await ConnectAsync(hosts.A, "observer-a"));
                hosts.OnB = hosts.Keep(await ConnectAsync(hosts.B, "worker-b"));
                await hosts.OnB.RegisterBusAsync("bus-b", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
                await SyncAsync(hosts.B, hosts.A);
                var connection = hosts.Keep(new NatsConnection(NatsOpts.Default with { Url = hosts.Nats.Urls }));
                hosts.Store = await connection.CreateKeyValueStoreContext().GetStoreAsync(bucket);
                return hosts;
            }
            catch
            {
                await hosts.DisposeAsync();
                throw;
            }
        }

        private T Keep<T>(T started) where T : IAsyncDisposable
        {
            _started.Add(started);
            return started;
        }

        public async ValueTask DisposeAsync()
        {
            for (var i = _started.Count - 1; i >= 0; i--) await _started[i].DisposeAsync();
        }
    }

    [Test]
    public async Task A_live_host_leaves_a_removal_marker_alone_then_publishes_its_entries_again_when_the_removal_ends()
    {
        // Long grace periods: neither A nor B takes over the test's removal while it runs.
        await using var hosts = await TwoHosts.StartAsync(TimeSpan.FromSeconds(60));
        var (a, b, onA, store) = (hosts.A, hosts.B, hosts.OnA, hosts.Store);

        var marker = await TakeRemovalOfBAsync(store);
        // B may publish some of them again as it sees them deleted, before its next beat finds the marker: its
        // rejoining after the removal is what puts everything back.
        Assert.That(await ClusterHostRemoval.DeleteEntriesAsync(store, HostB, CancellationToken.None), Is.GreaterThanOrEqualTo(2), "B's node and bus");
        await WaitUntilAsync(() => b.Cluster!.RemovedBy == "host-x", "B to find the removal marker at its next heartbeat");

        // B beat meanwhile and did not overwrite the marker (before, its plain put did, and its entries stayed gone).
        Assert.That(await ClusterHostRemoval.FinishAsync(store, HostB, marker, CancellationToken.None), Is.True, "the marker stood until the remover finished");
        await WaitUntilAsync(() => b.Cluster!.Rejoins == 1, "B to rejoin once the removal ended");
        await SyncAsync(b, a);
        // Read as a watcher does: A's snapshot, then its changes. B's heartbeats stopped while the marker stood, so A may
        // have judged B stale (600 ms of silence with the tests' 200 ms beat); B beating again turns its node healthy on
        // A, which A broadcasts as node.healthy. A single reading could catch that moment, so the test awaits the change.
        var snapshot = await SnapshotThenAsync(onA,
            s => s.Nodes.Any(n => n.NodeId == "worker-b" && n.Health == Health.Healthy), ChangeTypes.NodeHealthy, "B's node to turn healthy on A");
        Assert.That(snapshot.Nodes.Where(n => n.NodeId == "worker-b").Select(n => n.RegistryHost), Is.EqualTo(new[] { HostB }), "B's node is back on A");
    }

    [Test]
    public async Task A_removal_whose_remover_stalls_is_taken_over_and_the_live_host_ends_with_its_entries_published()
    {
        // 1 s grace: A (as any registry) or B itself takes over the stalled removal soon; whichever does, B ends published.
        await using var hosts = await TwoHosts.StartAsync();
        var (a, b, onA, store) = (hosts.A, hosts.B, hosts.OnA, hosts.Store);

        var marker = await TakeRemovalOfBAsync(store);
        await ClusterHostRemoval.DeleteEntriesAsync(store, HostB, CancellationToken.None);
        // The remover stalls here, before its finish.

        await WaitUntilAsync(() => b.Cluster!.Rejoins >= 1, "B to rejoin (after A's take-over finished, or by taking the stalled removal over itself)");
        Assert.That(await ClusterHostRemoval.FinishAsync(store, HostB, marker, CancellationToken.None), Is.False,
            "the stalled remover, waking up, cannot finish a removal that was taken over");
        await SyncAsync(b, a);
        // Read as a watcher does: A's snapshot, then its changes (one CI run's single reading found bus-b back on A
        // and worker-b not yet); a node that never comes back still fails here, at the watch's bound.
        var snapshot = await SnapshotThenAsync(onA, s => s.Nodes.Any(n => n.NodeId == "worker-b"), ChangeTypes.NodeRegistered, "B's node worker-b back on A");
        Assert.That(snapshot.Buses.Where(x => x.Name == "bus-b").Select(x => x.RegistryHost), Is.EqualTo(new[] { HostB }), "bus-b is B's on A");
    }

    /// <summary>
    /// Reads <paramref name="client"/>'s registry as a watcher does: its snapshot, and when that does not yet show
    /// <paramref name="holds"/>, the <paramref name="changeType"/> change of worker-b that brings it, or a resync that
    /// holds it (bounded by the watch's wait). Returns a snapshot taken once it holds.
    /// </summary>
    private static async Task<RegistrySnapshot> SnapshotThenAsync(RegistryClient client, Func<RegistrySnapshot, bool> holds, string changeType, string what)
    {
        await using var changes = client.WatchEvents("registry.");
        var snapshot = (await changes.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the snapshot"))[^1].Snapshot!;
        if (holds(snapshot)) return snapshot;
        var last = (await changes.UntilStateAsync(c => c is { Key: "worker-b" } && c.ChangeType == changeType, holds, what))[^1];
        return last.Snapshot ?? await client.SnapshotAsync();
    }

    [Test]
    public async Task A_host_entry_deleted_by_someone_else_is_published_again()
    {
        await using var hosts = await TwoHosts.StartAsync();
        var key = ClusterKeys.Entry("default", HostB, ClusterKinds.Bus, "bus-b");
        var before = await hosts.Store.GetEntryAsync<byte[]>(key);

        // A removal's deletion that lands after B took its key back (a stalled remover waking up), or an operator's `nats kv del`.
        await hosts.Store.DeleteAsync(key);

        // The key's revisions since: its delete marker (unless B's put replaced it first: history 1), then B's put.
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var republished = false;
        try
        {
            await foreach (var entry in hosts.Store.WatchAsync<byte[]>(key, opts: new NatsKVWatchOpts { ResumeAtRevision = before.Revision + 1 }, cancellationToken: limit.Token))
            {
                if (entry.Operation != NatsKVOperation.Put) continue;
                republished = true;
                break;
            }
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
        }
        Assert.That(republished, Is.True, "B put bus-b into the bucket again within 30 s");
        // On A the deletion shows as bus.removed then bus.registered, or not at all when B's put replaced the delete
        // marker before A's watch read it (ClusterRemoteDeletionTests pins both): A's view ends with bus-b of B either way.
        await SyncAsync(hosts.B, hosts.A);
        var view = await hosts.OnA.DescribeAsync();
        Assert.That(view.Buses!.Where(x => x.Name == "bus-b").Select(x => x.RegistryHost), Is.EqualTo(new[] { HostB }), "bus-b is B's on A");
    }
}

/// <summary>
/// End to end with a real registry process: host B's registry paused (SIGSTOP, as a long GC pause or an overloaded
/// machine would) past the grace period is removed by A; continued (SIGCONT), it gets its entries back by itself.
/// </summary>
[NonParallelizable]
public class ClusterPausedHostTests
{
    private const int SigStop = 19;
    private const int SigCont = 18;
    // Unhealthy after 3 missed 200 ms heartbeats, removed 1 s later, republished after SIGCONT: bounded generously for a loaded machine.
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Test]
    public async Task A_registry_paused_past_the_grace_period_is_removed_then_republishes_its_entries_when_it_resumes()
    {
        await using var nats = await NatsTestCluster.StartAsync(3);
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(nats.Urls, bucket, "host-a"), 0);
        var ports = await Onex.Tests.Infrastructure.TestPorts.LeaseAsync(2);
        string router = $"tcp://127.0.0.1:{ports[0]}", pub = $"tcp://127.0.0.1:{ports[1]}";
        var pool = (await Onex.Testing.OnexTest.ReservePortRangeAsync()).ToString();
        using var b = Onex.Tests.Registry.NodeProcess.Start(
            ["--cluster", nats.Urls, "--host-name", "host-b", "--endpoint", router, "--pub-endpoint", pub, "--port-range", pool, "--store", "memory",
                "--http", "http://127.0.0.1:0"],
            workingDirectory: null,
            new Dictionary<string, string?>
            {
                ["Registry__ClusterBucket"] = bucket,
                ["Registry__ClusterHeartbeatInterval"] = "200ms",
                ["Registry__ClusterRemovalGrace"] = "1s",
            });
        try
        {
            await b.WaitForLineAsync("registry: router", TimeSpan.FromSeconds(60));
            var metricsUrl = (await b.WaitForLineAsync("registry: http ", TimeSpan.FromSeconds(60)))["registry: http ".Length..].TrimEnd('/') + "/metrics";
            await using var onB = await RegistryClient.ConnectAsync(TestRegistry.ClientOptionsFor(router, pub, "worker-b") with
            {
                DepartOnDispose = false,
                MaxAttempts = 20,
                RetryBaseDelay = TimeSpan.FromMilliseconds(200),
                RetryMaxDelay = TimeSpan.FromSeconds(1),
            });
            await using var onA = await ConnectAsync(a, "observer-a");
            await using var changesOnA = onA.WatchEvents("registry.");
            await changesOnA.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the first snapshot of A");
            await onB.RegisterBusAsync("bus-b", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
            // Each step is read as a watcher reads state: the change, or a resync whose snapshot holds it (one CI run's
            // watch missed the registration on the wire and got it by snapshot, which a change-only wait never saw).
            static bool HasBusB(RegistrySnapshot s) => s.Buses.Any(x => x.Name == "bus-b");
            await changesOnA.UntilStateAsync(c => c is { ChangeType: ChangeTypes.BusRegistered, Key: "bus-b" }, HasBusB, "bus-b of B registered on A", Bound);

            b.Signal(SigStop);
            await changesOnA.UntilStateAsync(c => c is { ChangeType: ChangeTypes.BusRemoved, Key: "bus-b" }, s => !HasBusB(s), "bus-b of the paused host B removed on A", Bound);
            await WaitUntilAsync(() => a.Cluster!.HostsRemoved == 1, "A to count its removal of host B");

            b.Signal(SigCont);
            // Before, B's heartbeat resumed over the removal and its entries stayed gone from the catalogue for good.
            var back = (await changesOnA.UntilStateAsync(
                c => c is { ChangeType: ChangeTypes.BusRegistered, Key: "bus-b" }, HasBusB, "bus-b back on A after B resumed", Bound))[^1];
            var busBack = back.Change?.NewValue?.Bus ?? back.Snapshot!.Buses.Single(x => x.Name == "bus-b");
            Assert.That(busBack.RegistryHost, Is.EqualTo("host-b"), "published again by B");
            Assert.That(a.Cluster!.HostsRemoved, Is.EqualTo(1), "removed once");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var metrics = await http.GetStringAsync(metricsUrl);
            Assert.That(Onex.Tests.Http.PrometheusText.Value(metrics, "onex_registry_cluster_rejoins_total"), Is.EqualTo(1), "B counted its rejoining");
            Assert.That(Onex.Tests.Http.PrometheusText.Value(metrics, "onex_registry_cluster_watch_restarts_total"), Is.Not.Null, "the watch restarts are exposed");
        }
        finally
        {
            b.Signal(SigCont);
            b.KillIfRunning();
        }
    }
}
