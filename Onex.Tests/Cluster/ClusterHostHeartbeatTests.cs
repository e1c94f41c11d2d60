using Onex.Protocol;
using Onex.RegistryNode.Cluster;

namespace Onex.Tests.Cluster;

/// <summary>
/// A live host judged dead (paused or cut off past the grace period) against the registry removing it, their steps
/// driven one by one on a real nats-server's bucket, times passed in by the test: the host never overwrites a removal
/// marker it has not seen, waits for the removal to end, then writes its heartbeat again and is told to publish
/// everything again; a removal whose remover stalled is taken over by the host after the grace period.
/// </summary>
[NonParallelizable]
public class ClusterHostHeartbeatTests : BucketTestBase
{
    private const string Host = "host-b";
    private const long GraceMs = 1_000;

    private static ClusterHostHeartbeat Writer() => new(Host, TimeSpan.FromMilliseconds(GraceMs));

    private static byte[] Beat(long sentAt) => RegistryCodec.SerializeBody(new ClusterHeartbeat { Host = Host, IntervalMs = 200, SentAt = sentAt });

    private Task<HeartbeatOutcome> BeatAsync(ClusterHostHeartbeat writer, long nowMs) => writer.BeatAsync(Store, Beat(nowMs), nowMs, CancellationToken.None);

    /// <summary>The heartbeat key now: its revision and who removes the host (null for a heartbeat); null when deleted.</summary>
    private async Task<(ulong Revision, string? RemovedBy)?> KeyAsync()
    {
        var entry = await Store.TryGetEntryAsync<byte[]>(ClusterKeys.Heartbeat(Host));
        if (!entry.Success) return null;
        return (entry.Value.Revision, RegistryCodec.DeserializeBody<ClusterHeartbeat>(entry.Value.Value!).RemovedBy);
    }

    private Task PutEntryAsync(string bus) => Store.PutAsync(ClusterKeys.Entry("default", Host, ClusterKinds.Bus, bus), new byte[] { 1 }).AsTask();

    [Test]
    public async Task A_live_host_waits_for_its_removal_to_end_then_rejoins_without_ever_overwriting_the_marker()
    {
        var host = Writer();
        Assert.That(await BeatAsync(host, 0), Is.EqualTo(HeartbeatOutcome.Written), "first beat");
        await PutEntryAsync("bus-b");
        Assert.That(await BeatAsync(host, 200), Is.EqualTo(HeartbeatOutcome.Written), "second beat, over its own");
        var judged = (await KeyAsync())!.Value.Revision;

        // The host pauses; registry A judges its last heartbeat stale and takes the removal at that revision.
        var marker = await ClusterHostRemoval.TakeAsync(Store, Host, judged, "host-a", 5_000, CancellationToken.None);
        Assert.That(marker, Is.Not.Null, "A takes the removal");

        // The host resumes mid-removal: its beat finds the marker and leaves it (before: a plain put overwrote it).
        Assert.That(await BeatAsync(host, 5_200), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay));
        Assert.That(host.RemovedBy, Is.EqualTo("host-a"));
        Assert.That(await KeyAsync(), Is.EqualTo(((ulong, string?)?)(marker!.Value, "host-a")), "A's marker stands");
        Assert.That(await ClusterHostRemoval.DeleteEntriesAsync(Store, Host, CancellationToken.None), Is.EqualTo(1), "bus-b deleted");
        Assert.That(await BeatAsync(host, 5_400), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay), "still under way, within the grace period");
        Assert.That(await ClusterHostRemoval.FinishAsync(Store, Host, marker.Value, CancellationToken.None), Is.True,
            "A's removal finishes and is counted: the host did not overwrite its marker");

        // The removal is over: the host writes its heartbeat again and is told to publish everything again.
        Assert.That(await BeatAsync(host, 5_600), Is.EqualTo(HeartbeatOutcome.Rejoined));
        Assert.That(host.RemovedBy, Is.Null);
        Assert.That((await KeyAsync())?.RemovedBy, Is.Null, "a heartbeat again");
        Assert.That(await BeatAsync(host, 5_800), Is.EqualTo(HeartbeatOutcome.Written), "then beats as usual");
    }

    [Test]
    public async Task A_removal_whose_remover_stalled_is_taken_over_by_the_live_host_after_the_grace_period_and_not_counted()
    {
        var host = Writer();
        await BeatAsync(host, 0);
        var marker = await ClusterHostRemoval.TakeAsync(Store, Host, (await KeyAsync())!.Value.Revision, "host-a", 5_000, CancellationToken.None);
        Assert.That(marker, Is.Not.Null);
        // A stalls right after taking the removal.
        Assert.That(await BeatAsync(host, 10_000), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay), "marker first seen at 10,000 ms");
        Assert.That(await BeatAsync(host, 10_000 + GraceMs - 1), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay), "the remover's grace is not over");

        Assert.That(await BeatAsync(host, 10_000 + GraceMs), Is.EqualTo(HeartbeatOutcome.Rejoined), "taken over at the marker's revision");
        Assert.That((await KeyAsync())?.RemovedBy, Is.Null);
        Assert.That(await ClusterHostRemoval.FinishAsync(Store, Host, marker!.Value, CancellationToken.None), Is.False,
            "the stalled remover, waking up, cannot count a removal of a host that is back");
    }

    [Test]
    public async Task A_host_cut_off_past_a_whole_removal_rejoins_when_it_beats_again()
    {
        var host = Writer();
        await BeatAsync(host, 0);
        var marker = await ClusterHostRemoval.TakeAsync(Store, Host, (await KeyAsync())!.Value.Revision, "host-a", 5_000, CancellationToken.None);
        await ClusterHostRemoval.DeleteEntriesAsync(Store, Host, CancellationToken.None);
        Assert.That(await ClusterHostRemoval.FinishAsync(Store, Host, marker!.Value, CancellationToken.None), Is.True);

        Assert.That(await BeatAsync(host, 9_000), Is.EqualTo(HeartbeatOutcome.Rejoined), "its key was deleted: it writes it again and republishes");
        Assert.That((await KeyAsync())?.RemovedBy, Is.Null);
    }

    [Test]
    public async Task A_new_session_or_process_leaves_a_removal_under_way_alone_and_continues_its_own_heartbeat_otherwise()
    {
        await BeatAsync(Writer(), 0);
        // A restarted process (a writer that has written nothing) finds its own earlier heartbeat: continued at its revision.
        var restarted = Writer();
        Assert.That(await BeatAsync(restarted, 100), Is.EqualTo(HeartbeatOutcome.Written));
        Assert.That(restarted.Revision, Is.EqualTo((await KeyAsync())!.Value.Revision));

        var marker = await ClusterHostRemoval.TakeAsync(Store, Host, restarted.Revision, "host-a", 5_000, CancellationToken.None);
        var again = Writer();
        Assert.That(await BeatAsync(again, 6_000), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay), "a fresh writer does not overwrite a marker");
        Assert.That(await KeyAsync(), Is.EqualTo(((ulong, string?)?)(marker!.Value, "host-a")));
    }

    [Test]
    public async Task A_removal_taken_over_by_another_registry_restarts_the_hosts_wait()
    {
        var host = Writer();
        await BeatAsync(host, 0);
        var byA = await ClusterHostRemoval.TakeAsync(Store, Host, (await KeyAsync())!.Value.Revision, "host-a", 5_000, CancellationToken.None);
        Assert.That(await BeatAsync(host, 10_000), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay));
        // C takes A's stalled removal over just before the host would have: a new marker, a new grace period for C.
        var byC = await ClusterHostRemoval.TakeAsync(Store, Host, byA!.Value, "host-c", 10_500, CancellationToken.None);
        Assert.That(byC, Is.Not.Null);

        Assert.That(await BeatAsync(host, 10_000 + GraceMs), Is.EqualTo(HeartbeatOutcome.RemovalUnderWay), "C's marker is new to the host");
        Assert.That(host.RemovedBy, Is.EqualTo("host-c"));
        Assert.That(await ClusterHostRemoval.FinishAsync(Store, Host, byC!.Value, CancellationToken.None), Is.True, "C finishes, once");
        Assert.That(await BeatAsync(host, 11_200), Is.EqualTo(HeartbeatOutcome.Rejoined));
    }
}
