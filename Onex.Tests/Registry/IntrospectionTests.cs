using Onex.Errors;
using Onex.Protocol;

namespace Onex.Tests.Registry;

public class IntrospectionTests
{
    private static RegistryHarness Populated()
    {
        var h = new RegistryHarness();
        h.Announce("n1");
        h.Announce("n2");
        h.RegisterBus("orders", "n1", BusKinds.Zmq);
        h.RegisterBus("orders-audit", "n2", BusKinds.JetStream);
        h.RegisterBus("metrics", "n2", BusKinds.Zmq);
        h.RegisterTool("order-lookup", nodeId: "n1");
        h.Do(r => r.Handle(new PortRequest { NodeId = "n1", Purpose = "orders-test" }));
        h.Do(r => r.Handle(new PortRequest { NodeId = "n2", Purpose = "metrics-test" }));
        return h;
    }

    [Test]
    public void Without_sections_or_filters_everything_is_returned()
    {
        using var h = Populated();
        var response = h.Do(r => r.Handle(new IntrospectionRequest()));
        Assert.That(response.Nodes, Has.Count.EqualTo(2));
        Assert.That(response.Buses, Has.Count.EqualTo(3));
        Assert.That(response.Tools, Has.Count.EqualTo(1));
        Assert.That(response.Leases, Has.Count.EqualTo(2));
        Assert.That(response.Stats, Is.Not.Null);
        Assert.That(response.Sequence, Is.EqualTo(h.Registry.Journal.Sequence));
    }

    [Test]
    public void Sections_not_asked_for_are_null()
    {
        using var h = Populated();
        var response = h.Do(r => r.Handle(new IntrospectionRequest { Include = [IntrospectionSections.Buses] }));
        Assert.That(response.Buses, Is.Not.Null);
        Assert.That(new object?[] { response.Nodes, response.Tools, response.Leases, response.Stats }, Is.All.Null);
    }

    [Test]
    public void The_node_filter_keeps_only_what_that_node_owns()
    {
        using var h = Populated();
        var response = h.Do(r => r.Handle(new IntrospectionRequest { NodeId = "n2" }));
        Assert.That(response.Buses!.Select(b => b.Name), Is.EqualTo(new[] { "metrics", "orders-audit" }));
        Assert.That(response.Leases!.Select(l => l.NodeId), Is.All.EqualTo("n2"));
        Assert.That(response.Nodes!.Select(n => n.NodeId), Is.EqualTo(new[] { "n2" }));
        Assert.That(response.Tools, Is.Empty);
    }

    [Test]
    public void The_kind_filter_keeps_only_buses_of_that_kind()
    {
        using var h = Populated();
        var response = h.Do(r => r.Handle(new IntrospectionRequest { Kind = BusKinds.Zmq, Include = [IntrospectionSections.Buses] }));
        Assert.That(response.Buses!.Select(b => b.Name), Is.EqualTo(new[] { "metrics", "orders" }));
    }

    [Test]
    public void The_name_prefix_filter_matches_bus_and_tool_names_and_lease_purposes()
    {
        using var h = Populated();
        var response = h.Do(r => r.Handle(new IntrospectionRequest { NamePrefix = "order" }));
        Assert.That(response.Buses!.Select(b => b.Name), Is.EqualTo(new[] { "orders", "orders-audit" }));
        Assert.That(response.Tools!.Select(t => t.Name), Is.EqualTo(new[] { "order-lookup" }));
        Assert.That(response.Leases!.Select(l => l.Purpose), Is.EqualTo(new[] { "orders-test" }));
    }

    [Test]
    public void Stats_count_entities_and_ports()
    {
        using var h = Populated();
        var stats = h.Do(r => r.Handle(new IntrospectionRequest { Include = [IntrospectionSections.Stats] })).Stats!;
        Assert.That((stats.NodeCount, stats.BusCount, stats.ToolCount, stats.LeaseCount), Is.EqualTo((2, 3, 1, 2)));
        Assert.That(stats.FreePorts, Is.EqualTo(8));
        Assert.That(stats.StartedAt, Is.EqualTo(RegistryHarness.Start.ToUnixTimeMilliseconds()));
    }

    [Test]
    public void An_unknown_section_is_an_invalid_argument()
    {
        using var h = new RegistryHarness();
        var ex = h.Fails(r => r.Handle(new IntrospectionRequest { Include = ["everything"] }));
        Assert.That(ex.Code, Is.EqualTo(ErrorCodes.InvalidArgument));
        Assert.That(ex.Details["field"], Is.EqualTo("include"));
    }
}
