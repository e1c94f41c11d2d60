using Onex.Protocol;

namespace Onex.Tests.Registry;

public class ChangeJournalTests
{
    [Test]
    public void Sequence_numbers_start_at_one_and_increase_without_gaps()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.RegisterBus("bus-a");
        var lease = h.Lease();
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken }));
        h.Time.Advance(TimeSpan.FromSeconds(40)); // unhealthy, then removed

        var sequences = h.Sink.Changes.Select(c => c.Sequence).ToList();
        Assert.That(sequences, Is.EqualTo(Enumerable.Range(1, sequences.Count).Select(i => (long)i)), "sequence numbers must be 1, 2, 3... with no gaps");
        Assert.That(h.Sink.Changes.Select(c => c.Epoch).Distinct().Single(), Is.EqualTo(h.Registry.Epoch));
    }

    [Test]
    public void A_snapshot_reflects_exactly_the_changes_up_to_its_sequence()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterBus("bus-a");
        h.RegisterTool("tool-a");
        var kept = h.Lease();
        var released = h.Lease();
        h.Do(r => r.Handle(new LeaseRelease { LeaseId = released.LeaseId, NodeId = "n1", FencingToken = released.FencingToken }));

        var snapshot = h.Do(r => r.Handle(new SnapshotRequest()));

        Assert.That(snapshot.Sequence, Is.EqualTo(h.Sink.Changes.Last().Sequence));
        Assert.That(snapshot.Epoch, Is.EqualTo(h.Registry.Epoch));
        Assert.That(snapshot.Leases.Select(l => l.LeaseId), Is.EqualTo(new[] { kept.LeaseId }));
        Assert.That(snapshot.Nodes.Select(n => n.NodeId), Is.EqualTo(new[] { "n1" }));
        Assert.That(snapshot.Buses.Select(b => b.Name), Is.EqualTo(new[] { "bus-a" }));
        Assert.That(snapshot.Tools.Select(t => t.Name), Is.EqualTo(new[] { "tool-a" }));
    }

    [Test]
    public void Replaying_the_changes_rebuilds_the_snapshot()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.RegisterBus("bus-a");
        h.Lease();
        var l2 = h.Lease();
        h.Do(r => r.Handle(new LeaseRenewal { LeaseId = l2.LeaseId, NodeId = "n1", FencingToken = l2.FencingToken }));
        h.Time.Advance(TimeSpan.FromSeconds(3)); // node unhealthy: node.unhealthy + bus.updated

        var leases = new Dictionary<string, PortLease>();
        var buses = new Dictionary<string, EventBusRecord>();
        var nodes = new Dictionary<string, NodeRecord>();
        foreach (var change in h.Sink.Changes)
        {
            Apply(leases, change.Key, change.NewValue?.Lease, change.ChangeType.StartsWith("lease."));
            Apply(buses, change.Key, change.ChangeType.StartsWith("bus.") ? change.NewValue?.Bus : null, change.ChangeType.StartsWith("bus."));
            Apply(nodes, change.Key, change.ChangeType.StartsWith("node.") ? change.NewValue?.Node : null, change.ChangeType.StartsWith("node."));
        }
        var snapshot = h.Do(r => r.Handle(new SnapshotRequest()));
        Assert.That(leases.Values.OrderBy(l => l.LeaseId, StringComparer.Ordinal), Is.EqualTo(snapshot.Leases));
        Assert.That(buses.Values, Is.EqualTo(snapshot.Buses));
        Assert.That(nodes.Values, Is.EqualTo(snapshot.Nodes).Using<NodeRecord>((a, b) => a.NodeId == b.NodeId && a.Health == b.Health));
    }

    [Test]
    public void Heartbeats_carry_the_current_sequence_and_interval()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.Time.Advance(TimeSpan.FromSeconds(1));
        var heartbeat = h.Sink.Heartbeats.Last();
        Assert.That(heartbeat.Sequence, Is.EqualTo(1));
        Assert.That(heartbeat.IntervalMs, Is.EqualTo(1000));
        Assert.That(heartbeat.Stopping, Is.False);
    }

    private static void Apply<T>(Dictionary<string, T> state, string key, T? value, bool applies = true) where T : class
    {
        if (!applies) return;
        if (value is null) state.Remove(key);
        else state[key] = value;
    }
}
