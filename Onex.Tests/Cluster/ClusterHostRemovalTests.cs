using Onex.Protocol;
using Onex.RegistryNode.Cluster;

namespace Onex.Tests.Cluster;

/// <summary>
/// The removal of a stale host by two registries, their steps driven one by one in the interleavings that matter, on a
/// real nats-server's bucket: whatever the order, the host is removed (its heartbeat key deleted by a remover's own
/// marker) exactly once. No clocks: each registry's view is the heartbeat-key revision it passes in.
/// </summary>
[NonParallelizable]
public class ClusterHostRemovalTests : BucketTestBase
{
    private const string Dead = "host-b";
    /// <summary>Host B's heartbeat, a bus and a node of its, and its claim of the bus: the revision of its last heartbeat.</summary>
    private async Task<ulong> PublishDeadHostAsync()
    {
        await Store.PutAsync(ClusterKeys.Heartbeat(Dead), Heartbeat(null));
        await Store.PutAsync(ClusterKeys.Entry("default", Dead, ClusterKinds.Node, "worker-b"), new byte[] { 1 });
        await Store.PutAsync(ClusterKeys.Entry("default", Dead, ClusterKinds.Bus, "bus-b"), new byte[] { 2 });
        await Store.PutAsync(ClusterKeys.Claim("default", ClusterKinds.Bus, "bus-b"),
            RegistryCodec.SerializeBody(new ClusterClaim { Host = Dead, NodeId = "worker-b" }));
        return await Store.PutAsync(ClusterKeys.Heartbeat(Dead), Heartbeat(null));
    }

    private static byte[] Heartbeat(string? removedBy) =>
        RegistryCodec.SerializeBody(new ClusterHeartbeat { Host = Dead, IntervalMs = 200, RemovedBy = removedBy });

    /// <summary>What a registry's watch would show of the heartbeat key now: its revision, deletion included.</summary>
    private async Task<ulong> HeartbeatRevisionAsync()
    {
        var entry = await Store.TryGetEntryAsync<byte[]>(ClusterKeys.Heartbeat(Dead));
        if (entry.Success) return entry.Value.Revision;
        // A deleted key: its deletion marker is the last message of its subject, which a watch delivers first.
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var watched in Store.WatchAsync<byte[]>(ClusterKeys.Heartbeat(Dead), cancellationToken: bound.Token))
            return watched.Revision;
        throw new AssertionException("the heartbeat key has no revision");
    }

    private async Task<List<string>> KeysOfDeadHostAsync()
    {
        var keys = new List<string>();
        // One filter per listing: nats-server before 2.10 has no consumers with several filter subjects.
        foreach (var filter in new[] { ClusterKeys.HostPrefix(Dead), ClusterKeys.ClaimPrefix })
            await foreach (var key in Store.GetKeysAsync([filter])) keys.Add(key);
        return keys;
    }

    private async Task<bool> RemoveAsync(string remover, ulong seenRevision)
    {
        var marker = await ClusterHostRemoval.TakeAsync(Store, Dead, seenRevision, remover, 0, CancellationToken.None);
        if (marker is null) return false;
        await ClusterHostRemoval.DeleteEntriesAsync(Store, Dead, CancellationToken.None);
        return await ClusterHostRemoval.FinishAsync(Store, Dead, marker.Value, CancellationToken.None);
    }

    [Test]
    public async Task A_registry_whose_view_lags_cannot_remove_again_a_host_another_registry_removed()
    {
        var lastBeat = await PublishDeadHostAsync();

        Assert.That(await RemoveAsync("host-a", lastBeat), Is.True, "A removes host B at the heartbeat it judged stale");
        Assert.That(await KeysOfDeadHostAsync(), Is.Empty, "B's entries, claim and heartbeat key are gone");
        // C's watch has not delivered A's marker nor the deletion yet: C still holds B's last heartbeat revision.
        Assert.That(await RemoveAsync("host-c", lastBeat), Is.False, "C's compare-and-set at the old revision fails on the deleted key");
        // Nor can a registry that never saw the key (a record made from an entry seen first): no create-if-absent,
        // which NATS lets succeed on a deleted key. That was the double removal.
        Assert.That(await ClusterHostRemoval.TakeAsync(Store, Dead, 0, "host-c", 0, CancellationToken.None), Is.Null,
            "revision 0 takes nothing");
        Assert.That((await Store.TryGetEntryAsync<byte[]>(ClusterKeys.Heartbeat(Dead))).Success, Is.False, "the heartbeat key stays deleted");
    }

    [Test]
    public async Task Two_registries_judging_the_same_heartbeat_stale_remove_the_host_once()
    {
        var lastBeat = await PublishDeadHostAsync();

        var takenByA = await ClusterHostRemoval.TakeAsync(Store, Dead, lastBeat, "host-a", 0, CancellationToken.None);
        var takenByC = await ClusterHostRemoval.TakeAsync(Store, Dead, lastBeat, "host-c", 0, CancellationToken.None);

        Assert.That(takenByA, Is.Not.Null, "the first compare-and-set wins");
        Assert.That(takenByC, Is.Null, "the second, at the same revision, loses");
        Assert.That(await ClusterHostRemoval.DeleteEntriesAsync(Store, Dead, CancellationToken.None), Is.EqualTo(2), "B's node and bus");
        Assert.That(await ClusterHostRemoval.FinishAsync(Store, Dead, takenByA!.Value, CancellationToken.None), Is.True);
        Assert.That(await KeysOfDeadHostAsync(), Is.Empty);
    }

    [Test]
    public async Task A_stalled_removal_taken_over_by_another_registry_is_counted_once_by_the_one_that_finishes()
    {
        var lastBeat = await PublishDeadHostAsync();

        var takenByA = await ClusterHostRemoval.TakeAsync(Store, Dead, lastBeat, "host-a", 0, CancellationToken.None);
        Assert.That(takenByA, Is.Not.Null);
        // A stalls; C sees A's marker, waits its grace period, and takes over at the marker's revision.
        var takenByC = await ClusterHostRemoval.TakeAsync(Store, Dead, await HeartbeatRevisionAsync(), "host-c", 0, CancellationToken.None);
        Assert.That(takenByC, Is.Not.Null, "C takes over at the marker it saw");
        // Both delete (idempotent), and both try to finish: only the marker still in the key can.
        await ClusterHostRemoval.DeleteEntriesAsync(Store, Dead, CancellationToken.None);
        await ClusterHostRemoval.DeleteEntriesAsync(Store, Dead, CancellationToken.None);
        var finishedByA = await ClusterHostRemoval.FinishAsync(Store, Dead, takenByA!.Value, CancellationToken.None);
        var finishedByC = await ClusterHostRemoval.FinishAsync(Store, Dead, takenByC!.Value, CancellationToken.None);

        Assert.That((finishedByA, finishedByC), Is.EqualTo((false, true)), "A was overtaken; C removed host B, once");
        Assert.That(await KeysOfDeadHostAsync(), Is.Empty);
    }

    [Test]
    public async Task A_host_that_writes_a_heartbeat_during_its_removal_is_not_counted_removed()
    {
        var lastBeat = await PublishDeadHostAsync();

        var taken = await ClusterHostRemoval.TakeAsync(Store, Dead, lastBeat, "host-a", 0, CancellationToken.None);
        Assert.That(taken, Is.Not.Null);
        await Store.PutAsync(ClusterKeys.Heartbeat(Dead), Heartbeat(null)); // B was only slow

        Assert.That(await ClusterHostRemoval.FinishAsync(Store, Dead, taken!.Value, CancellationToken.None), Is.False,
            "the finish fails: B's heartbeat replaced the marker");
        Assert.That((await Store.TryGetEntryAsync<byte[]>(ClusterKeys.Heartbeat(Dead))).Success, Is.True, "B's heartbeat key stands");
    }

    [Test]
    public async Task Entries_written_again_after_a_removal_are_removed_at_the_deletion_revision_once()
    {
        var lastBeat = await PublishDeadHostAsync();
        Assert.That(await RemoveAsync("host-a", lastBeat), Is.True);
        // A late write of B's lands after the removal (B died right after it): both registries saw the key's deletion.
        await Store.PutAsync(ClusterKeys.Entry("default", Dead, ClusterKinds.Bus, "late"), new byte[] { 3 });
        var deletion = await HeartbeatRevisionAsync();

        Assert.That(await RemoveAsync("host-a", deletion), Is.True, "the orphan is removed at the deletion's revision");
        Assert.That(await RemoveAsync("host-c", deletion), Is.False, "and only once");
        Assert.That(await KeysOfDeadHostAsync(), Is.Empty);
    }
}
