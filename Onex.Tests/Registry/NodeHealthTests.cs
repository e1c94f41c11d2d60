using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

public class NodeHealthTests
{
    [Test]
    public void A_first_announcement_registers_the_node_and_broadcasts_it()
    {
        using var h = new RegistryHarness();
        var node = h.Announce("n1");
        Assert.That(node.Health, Is.EqualTo(Health.Healthy));
        Assert.That(node.RegisteredAt, Is.EqualTo(h.NowMs));
        Assert.That(h.Sink.Changes.Single().ChangeType, Is.EqualTo(ChangeTypes.NodeRegistered));
    }

    [Test]
    public void Reannouncing_with_changed_details_broadcasts_node_updated()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.Announce("n1", heartbeatIntervalMs: 2000);
        var change = h.Sink.Changes.Last();
        Assert.That(change.ChangeType, Is.EqualTo(ChangeTypes.NodeUpdated));
        Assert.That(change.OldValue?.Node?.HeartbeatIntervalMs, Is.EqualTo(1000));
        Assert.That(change.NewValue?.Node?.HeartbeatIntervalMs, Is.EqualTo(2000));
    }

    [Test]
    public void Reannouncing_unchanged_details_broadcasts_nothing()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.Announce("n1");
        Assert.That(h.Sink.Changes, Has.Count.EqualTo(1));
    }

    [Test]
    public void A_node_that_keeps_heartbeating_stays_healthy()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        for (var i = 0; i < 10; i++)
        {
            h.Time.Advance(TimeSpan.FromMilliseconds(900));
            h.Do(r => r.Handle(new NodeHeartbeat { NodeId = "n1" }));
        }
        Assert.That(h.Registry.Nodes.Find("n1")!.Health, Is.EqualTo(Health.Healthy));
        Assert.That(h.Sink.Changes.Select(c => c.ChangeType), Does.Not.Contain(ChangeTypes.NodeUnhealthy));
    }

    [Test]
    public void A_node_missing_three_heartbeats_turns_unhealthy_with_its_bus_and_tool()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.RegisterBus("bus-a");
        h.RegisterTool("tool-a");
        var before = h.Sink.Changes.Count;

        h.Time.Advance(TimeSpan.FromMilliseconds(2999));
        Assert.That(h.Registry.Nodes.Find("n1")!.Health, Is.EqualTo(Health.Healthy), "unhealthy before three intervals passed");

        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.That(h.Registry.Nodes.Find("n1")!.Health, Is.EqualTo(Health.Unhealthy));
        Assert.That(h.Sink.TypesSince(before), Is.EqualTo(new[] { ChangeTypes.NodeUnhealthy, ChangeTypes.BusUpdated, ChangeTypes.ToolUpdated }));
        Assert.That(h.Registry.Buses.Buses.Single().Health, Is.EqualTo(Health.Unhealthy));
        Assert.That(h.Registry.Tools.Tools.Single().Health, Is.EqualTo(Health.Unhealthy));
    }

    [Test]
    public void A_heartbeat_restores_health_with_broadcasts()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.RegisterBus("bus-a");
        h.Time.Advance(TimeSpan.FromSeconds(3));
        var before = h.Sink.Changes.Count;

        h.Do(r => r.Handle(new NodeHeartbeat { NodeId = "n1" }));

        Assert.That(h.Registry.Nodes.Find("n1")!.Health, Is.EqualTo(Health.Healthy));
        Assert.That(h.Sink.TypesSince(before), Is.EqualTo(new[] { ChangeTypes.NodeHealthy, ChangeTypes.BusUpdated }));
        Assert.That(h.Registry.Buses.Buses.Single().Health, Is.EqualTo(Health.Healthy));
    }

    [Test]
    public void A_recovered_node_turns_unhealthy_again_when_heartbeats_stop_again()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.Time.Advance(TimeSpan.FromSeconds(3));
        h.Do(r => r.Handle(new NodeHeartbeat { NodeId = "n1" }));
        h.Time.Advance(TimeSpan.FromSeconds(3));
        Assert.That(h.Registry.Nodes.Find("n1")!.Health, Is.EqualTo(Health.Unhealthy));
    }

    [Test]
    public void An_unhealthy_node_is_removed_after_the_grace_period_with_its_buses_and_tools()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.RegisterBus("bus-a");
        h.RegisterTool("tool-a");
        h.Time.Advance(TimeSpan.FromSeconds(3));
        var before = h.Sink.Changes.Count;

        h.Time.Advance(TimeSpan.FromSeconds(29));
        Assert.That(h.Registry.Nodes.Find("n1"), Is.Not.Null, "removed before the grace period ended");
        h.Time.Advance(TimeSpan.FromSeconds(1));

        Assert.That(h.Registry.Nodes.Find("n1"), Is.Null, "the node outlived its grace period");
        Assert.That(h.Registry.Buses.Count + h.Registry.Tools.Count, Is.Zero, "the node's buses or tools outlived it");
        Assert.That(h.Sink.TypesSince(before), Is.EqualTo(new[] { ChangeTypes.BusRemoved, ChangeTypes.ToolRemoved, ChangeTypes.NodeRemoved }),
            "removal order: leases, buses, tools, then the node");
    }

    [Test]
    public void Turning_unhealthy_does_not_touch_the_nodes_leases()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        h.Lease("n1", ttlMs: 3_600_000);
        h.Time.Advance(TimeSpan.FromSeconds(3));
        Assert.That(h.Registry.Nodes.Find("n1")!.Health, Is.EqualTo(Health.Unhealthy));
        Assert.That(h.Registry.Leases.Count, Is.EqualTo(1));
    }

    [Test]
    public void Removal_after_the_grace_period_ends_the_nodes_leases()
    {
        using var h = new RegistryHarness();
        h.Announce("n1", heartbeatIntervalMs: 1000);
        var lease = h.Lease("n1", ttlMs: 3_600_000);
        h.Time.Advance(TimeSpan.FromSeconds(3));
        h.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.That(h.Registry.Leases.Count, Is.Zero);
        Assert.That(h.Sink.Changes.Single(c => c.Key == lease.LeaseId && c.ChangeType == ChangeTypes.LeaseExpired), Is.Not.Null);
    }

    [Test]
    public void Departure_of_an_unknown_node_is_acknowledged()
    {
        using var h = new RegistryHarness();
        Assert.That(h.Do(r => r.Handle(new NodeDeparture { NodeId = "ghost" })).Ok, Is.True);
        Assert.That(h.Sink.Changes, Is.Empty);
    }

    [Test]
    public void Departure_of_a_node_that_never_announced_ends_its_leases()
    {
        using var h = new RegistryHarness();
        h.Lease("tester");
        h.Do(r => r.Handle(new NodeDeparture { NodeId = "tester" }));
        Assert.That(h.Registry.Leases.Count, Is.Zero);
    }

    [Test]
    public void Departure_removes_the_node_its_buses_tools_and_leases()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterBus("bus-a");
        h.RegisterTool("tool-a");
        h.Lease("n1");
        var before = h.Sink.Changes.Count;

        h.Do(r => r.Handle(new NodeDeparture { NodeId = "n1" }));

        Assert.That(h.Sink.TypesSince(before), Is.EqualTo(new[] { ChangeTypes.LeaseExpired, ChangeTypes.BusRemoved, ChangeTypes.ToolRemoved, ChangeTypes.NodeRemoved }));
        Assert.That(h.Registry.Leases.Count + h.Registry.Nodes.Count + h.Registry.Buses.Count + h.Registry.Tools.Count, Is.Zero);
    }

    [Test]
    public void A_heartbeat_from_an_unknown_node_is_not_found_with_a_hint_to_announce()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new NodeHeartbeat { NodeId = "ghost" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotFound));
        Assert.That(ex.Details["hint"], Is.EqualTo("announce"));
    }

    [Test]
    public void A_non_positive_heartbeat_interval_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new NodeAnnouncement { NodeId = "n1", HeartbeatIntervalMs = 0 }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("heartbeatIntervalMs"));
    }
}
