using Onex.Protocol;
using Onex.RegistryNode.Storage;
using Onex.Tests.Client;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// A remote change read while this registry's store refuses writes (a full disk, PROTOCOL.md 7) is applied to the view,
/// but its broadcast goes with the failed commit. Once the store takes writes again, the registry skips a sequence
/// number and says so in a heartbeat at once, so a follower of the change stream (PROTOCOL.md 10.1) resyncs from a
/// snapshot that holds the change.
/// </summary>
[NonParallelizable]
public class ClusterStoreFailureTests : SimulatedRemoteHostTests
{
    [Test]
    public async Task A_remote_change_whose_broadcast_a_failed_commit_discarded_sends_followers_to_a_snapshot_once_the_store_recovers()
    {
        var store = (SqliteRegistryStore)A.Store;
        await A.InvokeAsync(_ => { store.RefuseWrites(true); return true; });
        await Bucket.PutAsync(BusKey, Bus(port: 2));
        await BoundedAsync(A.Cluster!.CatchUpAsync(), "A to apply host Z's update");
        await WaitUntilAsync(() => !A.StoreWritable, "the commit of the wake-up that applied the update to fail");
        var view = await OnA.DescribeAsync();
        Assert.That(view.Buses!.Single(b => b.Name == "bus-z").Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "the view holds the update (reads keep working)");

        await A.InvokeAsync(_ => { store.RefuseWrites(false); return true; });
        var seen = await ChangesOnA.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "a resync of the follower once A's store took writes again");
        Assert.That(seen.Where(e => e.Change is { Key: "bus-z" }), Is.Empty, "the update's own broadcast never went out");
        var resync = seen.Last();
        Assert.That(resync.ResyncReason, Is.EqualTo(RegistryResyncReason.Gap), resync.Detail);
        Assert.That(resync.Snapshot!.Buses.Single(b => b.Name == "bus-z").Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "the snapshot holds the update");
    }
}
