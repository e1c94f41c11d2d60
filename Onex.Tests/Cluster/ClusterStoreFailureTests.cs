using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Storage;
using Onex.Testing;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// A remote change read while this registry's store refuses writes (a full disk, PROTOCOL.md 7) is applied to the view,
/// but its broadcast goes with the failed commit. Once the store takes writes again, the registry skips a sequence
/// number and says so in a heartbeat at once, so a follower of the change stream (PROTOCOL.md 10.1) resyncs from a
/// snapshot that holds the change. The other host is simulated by the test, which writes its keys into the bucket.
/// </summary>
[NonParallelizable]
public class ClusterStoreFailureTests
{
    private const string HostZ = "host-z";
    private static readonly string BusKey = ClusterKeys.Entry("default", HostZ, ClusterKinds.Bus, "bus-z");

    [Test]
    public async Task A_remote_change_whose_broadcast_a_failed_commit_discarded_sends_followers_to_a_snapshot_once_the_store_recovers()
    {
        using var data = new TemporaryDirectory();
        await using var nats = await NatsTestServer.StartAsync();
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(nats.Url, bucket, "host-a") with { Replicas = 1 }, 0, data.Path);
        await using var onA = await ConnectAsync(a, "observer-a");
        await using var connection = new NatsConnection(NatsOpts.Default with { Url = nats.Url });
        var kv = await connection.CreateKeyValueStoreContext().GetStoreAsync(bucket);
        await kv.PutAsync(ClusterKeys.Heartbeat(HostZ), RegistryCodec.SerializeBody(new ClusterHeartbeat { Host = HostZ, IntervalMs = 600_000 }));
        await using var changes = onA.WatchAsync("registry.").GetAsyncEnumerator();
        await changes.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the first snapshot of A");
        await kv.PutAsync(BusKey, Bus(port: 1));
        await changes.UntilAsync(e => e.Change is { ChangeType: ChangeTypes.BusRegistered, Key: "bus-z" }, "bus-z of host Z registered on A");

        var store = (SqliteRegistryStore)a.Store;
        await a.InvokeAsync(_ => { store.RefuseWrites(true); return true; });
        await kv.PutAsync(BusKey, Bus(port: 2));
        await BoundedAsync(a.Cluster!.CatchUpAsync(), "A to apply host Z's update");
        await WaitUntilAsync(() => !a.StoreWritable, "the commit of the wake-up that applied the update to fail");
        var view = await onA.DescribeAsync();
        Assert.That(view.Buses!.Single(b => b.Name == "bus-z").Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "the view holds the update (reads keep working)");

        await a.InvokeAsync(_ => { store.RefuseWrites(false); return true; });
        var seen = await changes.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "a resync of the follower once A's store took writes again");
        Assert.That(seen.Where(e => e.Change is { Key: "bus-z" }), Is.Empty, "the update's own broadcast never went out");
        var resync = seen.Last();
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap), resync.Detail);
        Assert.That(resync.Snapshot!.Buses.Single(b => b.Name == "bus-z").Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "the snapshot holds the update");
    }

    private static byte[] Bus(int port) => RegistryCodec.SerializeBody(new EventBusRecord
    {
        Name = "bus-z", Kind = BusKinds.Zmq, Endpoints = [$"tcp://127.0.0.1:{port}"], NodeId = "worker-z", Health = Health.Healthy,
    });
}
