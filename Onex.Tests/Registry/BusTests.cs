using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

public class BusTests
{
    [Test]
    public void Registering_a_bus_requires_an_announced_node()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new EventBusRegistration { Name = "b", Kind = BusKinds.Zmq, Endpoints = [], NodeId = "n1" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotFound));
        Assert.That(ex.Details["hint"], Is.EqualTo("announce"));
    }

    [Test]
    public void A_registered_bus_is_recorded_and_broadcast()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var bus = h.RegisterBus("bus-a");
        Assert.That(bus.NodeId, Is.EqualTo("n1"));
        Assert.That(bus.Health, Is.EqualTo(Health.Healthy));
        Assert.That(h.Sink.Changes.Last().ChangeType, Is.EqualTo(ChangeTypes.BusRegistered));
    }

    [Test]
    public void A_bus_name_held_by_another_node_is_not_owner()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.Announce("n2");
        h.RegisterBus("bus-a", "n1");
        var ex = h.Fails(r => r.Handle(new EventBusRegistration { Name = "bus-a", Kind = BusKinds.Zmq, Endpoints = [], NodeId = "n2" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotOwner));
        Assert.That(ex.Details["owner"], Is.EqualTo("n1"));
    }

    [Test]
    public void The_owner_reregistering_a_bus_updates_it()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterBus("bus-a");
        var updated = h.Do(r => r.Handle(new EventBusRegistration { Name = "bus-a", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:21001"], NodeId = "n1" }));
        Assert.That(updated.Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:21001" }));
        Assert.That(h.Sink.Changes.Last().ChangeType, Is.EqualTo(ChangeTypes.BusUpdated));
    }

    [Test]
    public void An_unknown_bus_kind_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        var ex = h.Fails(r => r.Handle(new EventBusRegistration { Name = "b", Kind = "kafka", Endpoints = [], NodeId = "n1" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("kind"));
    }

    [Test]
    public void Deregistering_a_bus_removes_it_with_a_broadcast()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterBus("bus-a");
        h.Do(r => r.Handle(new EventBusDeregistration { Name = "bus-a", NodeId = "n1" }));
        Assert.That(h.Registry.Buses.Count, Is.Zero);
        Assert.That(h.Sink.Changes.Last().ChangeType, Is.EqualTo(ChangeTypes.BusRemoved));
    }

    [Test]
    public void Deregistering_another_nodes_bus_is_not_owner()
    {
        using var h = new RegistryHarness();
        h.Announce("n1");
        h.RegisterBus("bus-a");
        var ex = h.Fails(r => r.Handle(new EventBusDeregistration { Name = "bus-a", NodeId = "n2" }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.NotOwner));
        Assert.That(h.Registry.Buses.Count, Is.EqualTo(1));
    }
}
