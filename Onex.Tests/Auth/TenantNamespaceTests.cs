using Onex.Errors;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Infrastructure;
using Onex.RegistryNode.Server;
using Onex.Tests.Registry;

namespace Onex.Tests.Auth;

/// <summary>Tenants as namespaces (PROTOCOL.md 16.3): node ids, bus names and tool versions are unique per tenant.</summary>
public class TenantNamespaceTests
{
    private const string NameSchema = """{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}""";
    private const string SizeSchema = """{"type":"object","properties":{"size":{"type":"integer"}},"required":["size"]}""";

    private static ToolContractRegistration Resize(string schema) =>
        new() { Name = "resize", Version = "1.0.0", InputSchema = schema, OutputSchema = schema, NodeId = "worker-1" };

    private static EventBusRegistration Orders(int port) =>
        new() { Name = "orders", Kind = BusKinds.Zmq, Endpoints = [$"tcp://127.0.0.1:{port}"], NodeId = "worker-1" };

    [Test]
    public async Task Two_tenants_hold_the_same_node_id_bus_name_and_tool_version_each_its_own()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        using var a = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        using var b = new TestDealer(host.RouterEndpoint) { Token = files.NodeB };
        foreach (var (dealer, port, schema) in new[] { (a, 1, NameSchema), (b, 2, SizeSchema) })
        {
            dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "worker-1" });
            dealer.Call<EventBusRegistration, EventBusRecord>(Orders(port));
            // The same name and version with another contract: no CONTRACT_CONFLICT across tenants.
            dealer.Call<ToolContractRegistration, ToolContractRecord>(Resize(schema));
            dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "worker-1", Count = 1 });
        }

        var seenByA = a.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        var seenByB = b.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        Assert.That(seenByA.Buses.Single().Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:1" }), "tenant a's bus orders");
        Assert.That(seenByB.Buses.Single().Endpoints, Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "tenant b's bus orders");
        Assert.That(seenByA.Tools.Single().InputSchema, Is.EqualTo(NameSchema));
        Assert.That(seenByB.Tools.Single().InputSchema, Is.EqualTo(SizeSchema));
        Assert.That(seenByA.Leases.Single().Tenant, Is.EqualTo("a"));

        // Validation resolves the tool within the caller's tenant.
        var payload = new ValidatePayload { ToolName = "resize", Version = "1.0.0", Payload = """{"name":"x"}""" };
        Assert.That(a.Call<ValidatePayload, ValidationResult>(payload).Valid, Is.True, "a's resize takes a name");
        Assert.That(b.Call<ValidatePayload, ValidationResult>(payload).Valid, Is.False, "b's resize wants a size");

        // An admin sees both, each naming its tenant.
        using var admin = new TestDealer(host.RouterEndpoint) { Token = files.Admin };
        var all = admin.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
        Assert.That(all.Buses.Select(x => (x.Name, x.Tenant)), Is.EquivalentTo(new[] { ("orders", "a"), ("orders", "b") }));
        Assert.That(all.Nodes.Select(x => (x.NodeId, x.Tenant)), Is.EquivalentTo(new[] { ("worker-1", "a"), ("worker-1", "b") }));
        Assert.That(all.Tools.Select(x => (x.Name, x.Tenant)), Is.EquivalentTo(new[] { ("resize", "a"), ("resize", "b") }));

        // b's node leaving takes b's bus, tool and lease, and nothing of a's.
        b.Call<NodeDeparture, Ack>(new NodeDeparture { NodeId = "worker-1" });
        Assert.That(a.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()) with { TakenAt = 0, Sequence = 0 },
            Is.EqualTo(seenByA with { TakenAt = 0, Sequence = 0 }).Using<RegistrySnapshot>(SameEntries), "tenant a's entries after b's node left");
        Assert.That(b.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Buses, Is.Empty);
    }

    [Test]
    public async Task An_admin_names_the_tenant_of_a_name_several_tenants_use_and_others_may_name_only_their_own()
    {
        using var files = new AuthTestFiles();
        await using var host = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        using var a = new TestDealer(host.RouterEndpoint) { Token = files.NodeA };
        using var b = new TestDealer(host.RouterEndpoint) { Token = files.NodeB };
        a.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "worker-1" });
        a.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "only-in-a" });
        b.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "worker-1" });

        using var admin = new TestDealer(host.RouterEndpoint) { Token = files.Admin };
        var ambiguous = TestDealer.ExpectError(admin.Request(new NodeHeartbeat { NodeId = "worker-1" }));
        Assert.That(ambiguous.Code, Is.EqualTo(ErrorCodes.InvalidArgument), ambiguous.Message);
        Assert.That(ambiguous.Details["field"], Is.EqualTo("tenant"));
        Assert.That(ambiguous.Details["reason"], Is.EqualTo("ambiguous"));
        Assert.That(ambiguous.Details["tenants"], Is.EqualTo("a,b"));

        // A name in one tenant only needs no tenant; a named tenant settles the ambiguous one.
        admin.Call<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = "only-in-a" });
        using var adminInB = new TestDealer(host.RouterEndpoint) { Token = files.Admin, Tenant = "b" };
        adminInB.Call<NodeDeparture, Ack>(new NodeDeparture { NodeId = "worker-1" });
        Assert.That(admin.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Nodes.Select(n => (n.NodeId, n.Tenant)),
            Is.EquivalentTo(new[] { ("only-in-a", "a"), ("worker-1", "a") }), "the admin's departure in b removed b's worker-1 only");
        Assert.That(adminInB.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Nodes, Is.Empty, "an admin's snapshot in b shows b only");

        // A node token naming another tenant is refused; naming its own is fine.
        using var bInA = new TestDealer(host.RouterEndpoint) { Token = files.NodeB, Tenant = "a" };
        var denied = TestDealer.ExpectError(bInA.Request(new SnapshotRequest()));
        Assert.That(denied.Code, Is.EqualTo(ErrorCodes.PermissionDenied));
        Assert.That(denied.Details["reason"], Is.EqualTo("tenant"));
        using var bInB = new TestDealer(host.RouterEndpoint) { Token = files.NodeB, Tenant = "b" };
        Assert.That(bInB.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Nodes, Is.Empty);

        using var adminInNobody = new TestDealer(host.RouterEndpoint) { Token = files.Admin, Tenant = "nobody" };
        var unknown = TestDealer.ExpectError(adminInNobody.Request(new SnapshotRequest()));
        Assert.That(unknown.Code, Is.EqualTo(ErrorCodes.InvalidArgument), "an admin naming a tenant that neither the file nor the state knows");
    }

    [Test]
    public async Task Two_tenants_buses_of_one_name_stay_apart_across_a_kill_9_and_restart_on_SQLite()
    {
        var wait = TimeSpan.FromSeconds(30);
        using var files = new AuthTestFiles();
        using var data = new TemporaryDirectory();
        var ports = await TestPorts.LeaseAsync(2);
        var router = $"tcp://127.0.0.1:{ports[0]}";
        var pool = (await OnexTest.ReservePortRangeAsync()).ToString();
        string[] args = ["--endpoint", router, "--pub-endpoint", $"tcp://127.0.0.1:{ports[1]}", "--port-range", pool,
            "--data-dir", data.Path, "--auth-file", files.Path, "--log-level", "Warning"];
        var node = NodeProcess.Start(args);
        try
        {
            await node.WaitForLineAsync("registry: store", wait);
            using (var a = new TestDealer(router) { Token = files.NodeA })
            using (var b = new TestDealer(router) { Token = files.NodeB })
            {
                foreach (var (dealer, port) in new[] { (a, 1), (b, 2) })
                {
                    dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "worker-1", HeartbeatIntervalMs = 60_000 });
                    dealer.Call<EventBusRegistration, EventBusRecord>(Orders(port));
                }
            }
            // Every reply above was written to SQLite before it was sent: kill -9 loses none of it.
            node.Signal(9);
            await node.WaitForExitAsync(wait);
            node.Dispose();
            node = NodeProcess.Start(args);
            await node.WaitForLineAsync("registry: store", wait);

            using var admin = new TestDealer(router) { Token = files.Admin };
            var all = admin.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
            Assert.That(all.Buses.Select(x => (x.Name, x.Tenant, x.Endpoints.Single())),
                Is.EquivalentTo(new[] { ("orders", "a", "tcp://127.0.0.1:1"), ("orders", "b", "tcp://127.0.0.1:2") }), "both buses orders after the restart");
            Assert.That(all.Nodes.Select(x => (x.NodeId, x.Tenant)), Is.EquivalentTo(new[] { ("worker-1", "a"), ("worker-1", "b") }));
            using var readerB = new TestDealer(router) { Token = files.ReaderB };
            Assert.That(readerB.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Buses.Select(x => x.Endpoints.Single()),
                Is.EqualTo(new[] { "tcp://127.0.0.1:2" }), "tenant b sees its own orders only");
            // Still separate: b's node leaving removes b's orders only.
            using var b2 = new TestDealer(router) { Token = files.NodeB };
            b2.Call<NodeDeparture, Ack>(new NodeDeparture { NodeId = "worker-1" });
            Assert.That(admin.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest()).Buses.Select(x => x.Tenant), Is.EqualTo(new[] { "a" }));
            node.Terminate();
            Assert.That(await node.WaitForExitAsync(wait), Is.Zero, node.Errors);
        }
        finally
        {
            node.KillIfRunning();
            node.Dispose();
        }
    }

    [Test]
    public async Task In_cluster_mode_a_name_another_tenant_holds_on_this_registry_is_free_in_this_tenant()
    {
        using var harness = new RegistryHarness();
        var registry = harness.Registry;
        registry.InTenant("a", () => registry.Handle(new NodeAnnouncement { NodeId = "worker-1" }));
        registry.InTenant("a", () => registry.Handle(Orders(1)));
        // A member that never connects: what needs the bucket parks on a claim, everything else is decided here.
        await using var cluster = new Onex.RegistryNode.Cluster.ClusterMember(
            new Onex.RegistryNode.Cluster.ClusterOptions { Servers = "nats://127.0.0.1:1", HostName = "h1", RequestTimeout = TimeSpan.FromMilliseconds(50) },
            _ => { }, () => registry.Epoch, harness.Time, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        registry.Cluster = cluster;

        var node = registry.InTenant("b", () => registry.Handle(new NodeAnnouncement { NodeId = "worker-1" }));
        Assert.That((node.Tenant, node.RegistryHost), Is.EqualTo(("b", "h1")), "tenant b has its own worker-1");
        // b's orders is b's name to claim across the cluster (tenant b's claim key), not refused as a's.
        Assert.Throws<RequestParkedException>(() => registry.InTenant("b", () => registry.Handle(Orders(2))));
        Assert.That(cluster.Claims.InFlight, Is.EqualTo(1), "one claim under way: tenant b's orders");
        // a re-registering its own orders needs no claim: it already holds the name.
        Assert.That(registry.InTenant("a", () => registry.Handle(Orders(1))).Tenant, Is.EqualTo("a"));
        Assert.That(cluster.Claims.InFlight, Is.EqualTo(1));
    }

    private static bool SameEntries(RegistrySnapshot x, RegistrySnapshot y) =>
        x.Leases.SequenceEqual(y.Leases, ByBytes<PortLease>()) && x.Nodes.Select(n => n.NodeId).SequenceEqual(y.Nodes.Select(n => n.NodeId))
        && x.Buses.SequenceEqual(y.Buses, ByBytes<EventBusRecord>()) && x.Tools.SequenceEqual(y.Tools, ByBytes<ToolContractRecord>());

    private static IEqualityComparer<T> ByBytes<T>() => EqualityComparer<T>.Create(
        (p, q) => RegistryCodec.SerializeBody(p).AsSpan().SequenceEqual(RegistryCodec.SerializeBody(q)), _ => 0);
}
