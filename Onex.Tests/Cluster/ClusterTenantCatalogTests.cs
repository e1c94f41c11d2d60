using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.Tests.Registry;

namespace Onex.Tests.Cluster;

/// <summary>
/// Tenants in the cluster catalogue without NATS (the bucket's keys fed by hand): entries live in the tenant their key
/// names, and keys of the layout before tenants were in keys (a tenant's entry under the token <c>default</c>) are read
/// as their record's tenant, until the host's republication replaces them.
/// </summary>
public class ClusterTenantCatalogTests
{
    private static byte[] Bus(string name, int port, string? tenant) => RegistryCodec.SerializeBody(new EventBusRecord
    {
        Name = name, Kind = BusKinds.Zmq, Endpoints = [$"tcp://127.0.0.1:{port}"], NodeId = "worker-1", Health = Health.Healthy, Tenant = tenant,
    });

    private static void Put(RegistryHarness harness, ClusterCatalog catalog, string key, byte[] value)
    {
        var parsed = ClusterKeys.Parse(key)!.Value;
        catalog.Put(harness.Registry, key, parsed.Host!, parsed.Kind, parsed.Tenant, parsed.Name, value);
    }

    [Test]
    public void Two_tenants_buses_of_one_name_on_two_hosts_are_two_entries()
    {
        using var harness = new RegistryHarness();
        var catalog = new ClusterCatalog();
        Put(harness, catalog, ClusterKeys.Entry("a", "host-a", ClusterKinds.Bus, "orders"), Bus("orders", 1, "a"));
        Put(harness, catalog, ClusterKeys.Entry("b", "host-b", ClusterKinds.Bus, "orders"), Bus("orders", 2, "b"));

        Assert.That(catalog.FindBus("orders", "a")!.Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:1" }));
        Assert.That(catalog.FindBus("orders", "b")!.Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }));
        Assert.That(catalog.FindBus("orders", "default"), Is.Null, "tenant default has no bus orders");
        Assert.That(catalog.Buses(harness.Registry).Select(b => (b.Tenant, b.RegistryHost)), Is.EquivalentTo(new[] { ("a", "host-a"), ("b", "host-b") }));
    }

    [Test]
    public void A_key_naming_another_tenant_than_its_record_is_ignored()
    {
        using var harness = new RegistryHarness();
        var catalog = new ClusterCatalog();
        Put(harness, catalog, ClusterKeys.Entry("b", "host-b", ClusterKinds.Bus, "orders"), Bus("orders", 2, "a"));
        Assert.That(catalog.Buses(harness.Registry), Is.Empty, "a value of tenant a under tenant b's key is not b's, nor a's");
    }

    [Test]
    public void A_legacy_key_is_read_in_its_record_tenant_and_its_deletion_after_the_new_key_keeps_the_entry()
    {
        using var harness = new RegistryHarness();
        var catalog = new ClusterCatalog();
        var legacy = ClusterKeys.Entry("default", "host-a", ClusterKinds.Bus, "orders");
        Put(harness, catalog, legacy, Bus("orders", 1, "a"));
        Assert.That(catalog.FindBus("orders", "a"), Is.Not.Null, "written before tenants were in keys: tenant a's bus");
        Assert.That(catalog.FindBus("orders", "default"), Is.Null);

        // Host A's republication: the new key first, then the legacy key's deletion.
        var current = ClusterKeys.Entry("a", "host-a", ClusterKinds.Bus, "orders");
        Put(harness, catalog, current, Bus("orders", 1, "a"));
        var before = harness.Registry.Journal.Sequence;
        catalog.Delete(harness.Registry, legacy);
        Assert.That(catalog.FindBus("orders", "a"), Is.Not.Null, "the entry now held by the new key stays");
        Assert.That(harness.Registry.Journal.Sequence, Is.EqualTo(before), "no bus.removed for a key that no longer backs the entry");
        catalog.Delete(harness.Registry, current);
        Assert.That(catalog.FindBus("orders", "a"), Is.Null, "deleting the key that holds it removes it");
        Assert.That(harness.Registry.Journal.Sequence, Is.EqualTo(before + 1), "one bus.removed");
    }

    [Test]
    public void A_local_entry_hides_the_remote_one_of_its_tenant_only()
    {
        using var harness = new RegistryHarness();
        var registry = harness.Registry;
        registry.InTenant("a", () => registry.Handle(new NodeAnnouncement { NodeId = "worker-1" }));
        registry.InTenant("a", () => registry.Handle(new EventBusRegistration
        {
            Name = "orders", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:9"], NodeId = "worker-1",
        }));
        var catalog = new ClusterCatalog();
        Put(harness, catalog, ClusterKeys.Entry("a", "host-b", ClusterKinds.Bus, "orders"), Bus("orders", 1, "a"));
        Put(harness, catalog, ClusterKeys.Entry("b", "host-b", ClusterKinds.Bus, "orders"), Bus("orders", 2, "b"));

        Assert.That(catalog.Buses(registry).Select(b => b.Tenant), Is.EqualTo(new[] { "b" }), "a's local orders hides a's remote one, not b's");
    }
}
