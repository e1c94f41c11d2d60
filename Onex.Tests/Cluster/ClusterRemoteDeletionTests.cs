using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// A deletion on another host reaches this registry's change stream as <c>bus.removed</c>, whichever way the key went:
/// a delete marker, a purge, the removal of a dead host, or while this registry's watch was stalled and re-created by
/// the watchdog. The other host is simulated by the test, which writes its keys into the bucket of a real nats-server
/// (no registry of its own that would publish them again). A deletion that another write of the same key replaced in
/// the bucket before this registry read it is not seen (the bucket keeps one revision per key): the view goes straight
/// to the newer value, as etcd's watchers after a compaction (docs/CLUSTER.md, Limits).
/// </summary>
[NonParallelizable]
public class ClusterRemoteDeletionTests : SimulatedRemoteHostTests
{
    private async Task AssertRemovedOnAAsync()
    {
        await ChangesOnA.UntilAsync(e => e.Change is { ChangeType: ChangeTypes.BusRemoved, Key: "bus-z" }, "bus-z removed on A's change stream");
        var view = await OnA.DescribeAsync();
        Assert.That(view.Buses!.Select(b => b.Name), Does.Not.Contain("bus-z"), "and gone from A's introspection");
    }

    [TestCase("delete")]
    [TestCase("purge")]
    public async Task A_remote_key_deleted_or_purged_is_broadcast_as_removed(string how)
    {
        if (how == "purge") await Bucket.PurgeAsync(BusKey);
        else await Bucket.DeleteAsync(BusKey);
        await AssertRemovedOnAAsync();
    }

    [Test]
    public async Task Entries_deleted_by_the_removal_of_a_dead_host_are_broadcast_as_removed()
    {
        var seen = await Bucket.GetEntryAsync<byte[]>(ClusterKeys.Heartbeat(HostZ));
        var marker = await ClusterHostRemoval.TakeAsync(Bucket, HostZ, seen.Revision, "host-x", 0, CancellationToken.None);
        Assert.That(marker, Is.Not.Null, "the test's removal of host Z took the marker");
        Assert.That(await ClusterHostRemoval.DeleteEntriesAsync(Bucket, HostZ, CancellationToken.None), Is.EqualTo(1), "host Z's bus");
        Assert.That(await ClusterHostRemoval.FinishAsync(Bucket, HostZ, marker!.Value, CancellationToken.None), Is.True);
        await AssertRemovedOnAAsync();
    }

    [Test]
    public async Task A_deletion_made_while_the_watch_was_stalled_is_broadcast_once_the_watchdog_recreated_it()
    {
        var open = new TaskCompletionSource();
        A.Cluster!.HoldWatchDelivery(open.Task);
        try
        {
            await Bucket.DeleteAsync(BusKey);
            // A's own heartbeats move the bucket on while its watch delivers nothing: the watchdog re-creates it.
            await WaitUntilAsync(() => A.Cluster.WatchRestarts == 1, "A's watchdog to re-create the stalled watch", TimeSpan.FromSeconds(60));
            await AssertRemovedOnAAsync();
        }
        finally
        {
            open.TrySetResult();
        }
    }

    [Test]
    public async Task A_deletion_replaced_in_the_bucket_before_the_watch_read_it_goes_straight_to_the_new_value()
    {
        var open = new TaskCompletionSource();
        A.Cluster!.HoldWatchDelivery(open.Task);
        try
        {
            await Bucket.DeleteAsync(BusKey);
            await Bucket.PutAsync(BusKey, Bus(port: 2)); // history 1: the delete marker is gone from the bucket
            await WaitUntilAsync(() => A.Cluster.WatchRestarts == 1, "A's watchdog to re-create the stalled watch", TimeSpan.FromSeconds(60));
            var seen = await ChangesOnA.UntilAsync(e => e.Change is { Key: "bus-z" }, "the next change of bus-z on A");
            Assert.That(seen.Last().Change!.ChangeType, Is.EqualTo(ChangeTypes.BusUpdated), "A never held the deletion: bus-z is updated, not removed");
            await BoundedAsync(A.Cluster.CatchUpAsync(), "A to catch up with the bucket");
            var view = await OnA.DescribeAsync();
            Assert.That(view.Buses!.Single(b => b.Name == "bus-z").Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "A shows the newer value");
        }
        finally
        {
            open.TrySetResult();
        }
    }
}

/// <summary>
/// A local entry hides another host's entry of the same id (a node that moved to this host keeping its id): when the
/// local one goes away, the other host's entry is shown again and broadcast as registered, so a watcher told of the
/// local removal holds what the snapshot holds.
/// </summary>
[NonParallelizable]
public class ClusterHiddenEntryTests
{
    [Test]
    public async Task A_node_that_leaves_this_host_shows_the_same_node_of_another_host_again_on_the_change_stream()
    {
        await using var nats = await NatsTestServer.StartAsync();
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(nats.Url, bucket, "host-a") with { Replicas = 1 }, 0);
        await using var b = await StartHostAsync(Options(nats.Url, bucket, "host-b") with { Replicas = 1 }, 1);
        await using var onB = await ConnectAsync(b, "worker-1");
        await SyncAsync(b, a);
        await using var observer = await ConnectAsync(a, "observer-a");
        await using var changesOnA = observer.WatchEvents("registry.node.");
        await changesOnA.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the first snapshot of A");

        await using var onA = await ConnectAsync(a, "worker-1"); // the same node id on host A: A shows its own
        await changesOnA.UntilAsync(e => e.Change is { ChangeType: ChangeTypes.NodeRegistered, Key: "worker-1" } c && c.NewValue!.Node!.RegistryHost == "host-a",
            "worker-1 of host A registered on A");
        await onA.DisposeAsync(); // departs from A

        await changesOnA.UntilAsync(e => e.Change is { ChangeType: ChangeTypes.NodeRemoved, Key: "worker-1" }, "worker-1 of host A removed on A");
        var shown = await changesOnA.UntilAsync(e => e.Change is { Key: "worker-1" }, "worker-1 of host B shown again on A");
        Assert.That(shown[^1].Change!.ChangeType, Is.EqualTo(ChangeTypes.NodeRegistered), "registered again for watchers that dropped it");
        Assert.That(shown[^1].Change!.NewValue!.Node!.RegistryHost, Is.EqualTo("host-b"));
        var view = await observer.DescribeAsync();
        Assert.That(view.Nodes!.Where(n => n.NodeId == "worker-1").Select(n => n.RegistryHost), Is.EqualTo(new[] { "host-b" }), "the snapshot agrees");
    }
}
