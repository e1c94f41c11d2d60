using NATS.Client.Core;
using NATS.Client.KeyValueStore;
using NATS.Net;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Cluster;
using Onex.Testing.Nats;
using Onex.Tests.Auth;
using Onex.Tests.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// Tenants across hosts (PROTOCOL.md 16.3 and 18): two registries with the same auth file on a real three-server
/// nats-server cluster (loopback). Names are per tenant across the cluster: two tenants both hold bus <c>orders</c> on
/// different hosts, each seeing only its own on every host, while one tenant's tool version is still one contract across hosts.
/// </summary>
[NonParallelizable]
public class ClusterTenantTests
{
    private NatsTestCluster _nats = null!;

    [OneTimeSetUp]
    public async Task StartNats() => _nats = await NatsTestCluster.StartAsync(3);

    [Test]
    public async Task Two_tenants_hold_bus_orders_on_different_hosts_and_each_sees_only_its_own_on_both()
    {
        using var files = new AuthTestFiles();
        var bucket = Bucket();
        await using var hostA = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0, configure: o => o with { AuthFile = files.Path });
        await using var hostB = await StartHostAsync(Options(_nats.Urls, bucket, "host-b"), 1, configure: o => o with { AuthFile = files.Path });
        // The same node id in both tenants, one on each host.
        await using var tenantAOnA = await ConnectAsync(hostA, "worker-1", files.NodeA);
        await using var tenantBOnB = await ConnectAsync(hostB, "worker-1", files.NodeB);

        await tenantAOnA.RegisterBusAsync("orders", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await tenantBOnB.RegisterBusAsync("orders", BusKinds.Zmq, ["tcp://127.0.0.1:2"]);
        await SyncAsync(hostA, hostB);
        await SyncAsync(hostB, hostA);

        foreach (var (host, name) in new[] { (hostA, "host A"), (hostB, "host B") })
        {
            using var readerA = new TestDealer(host.RouterEndpoint) { Token = files.ReaderA };
            using var readerB = new TestDealer(host.RouterEndpoint) { Token = files.ReaderB };
            var seenByA = readerA.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest());
            var seenByB = readerB.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest());
            Assert.That(seenByA.Buses!.Select(b => (b.Name, b.Tenant, b.RegistryHost, b.Endpoints.Single())),
                Is.EqualTo(new[] { ("orders", "a", "host-a", "tcp://127.0.0.1:1") }), $"tenant a on {name} sees its orders only");
            Assert.That(seenByB.Buses!.Select(b => (b.Name, b.Tenant, b.RegistryHost, b.Endpoints.Single())),
                Is.EqualTo(new[] { ("orders", "b", "host-b", "tcp://127.0.0.1:2") }), $"tenant b on {name} sees its orders only");
            Assert.That(seenByA.Nodes!.Select(n => (n.NodeId, n.Tenant)), Is.EqualTo(new[] { ("worker-1", "a") }), $"tenant a's worker-1 on {name}");
            var snapshotOfB = readerB.Call<SnapshotRequest, RegistrySnapshot>(new SnapshotRequest());
            Assert.That(snapshotOfB.Buses.Select(b => (b.Tenant, b.RegistryHost)), Is.EqualTo(new[] { ("b", "host-b") }), $"tenant b's snapshot on {name}");
            using var admin = new TestDealer(host.RouterEndpoint) { Token = files.Admin };
            var all = admin.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest());
            Assert.That(all.Buses!.Select(b => (b.Tenant, b.RegistryHost)), Is.EquivalentTo(new[] { ("a", "host-a"), ("b", "host-b") }),
                $"an admin on {name} sees both, each naming its tenant and host");
        }
    }

    [Test]
    public async Task A_tool_version_is_one_contract_within_a_tenant_across_hosts_and_free_in_another_tenant()
    {
        using var files = new AuthTestFiles();
        var bucket = Bucket();
        await using var hostA = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0, configure: o => o with { AuthFile = files.Path });
        await using var hostB = await StartHostAsync(Options(_nats.Urls, bucket, "host-b"), 1, configure: o => o with { AuthFile = files.Path });
        await using var tenantAOnA = await ConnectAsync(hostA, "tool-a1", files.NodeA);
        await using var tenantAOnB = await ConnectAsync(hostB, "tool-a2", files.NodeA);
        await using var tenantBOnB = await ConnectAsync(hostB, "tool-b1", files.NodeB);
        await tenantAOnA.RegisterToolAsync("resize", "1.0.0", InputSchema, OutputSchema);

        var refused = Assert.ThrowsAsync<ContractConflictException>(async () => await tenantAOnB.RegisterToolAsync("resize", "1.0.0", OtherInputSchema, OutputSchema));
        Assert.That(refused!.Details["host"], Is.EqualTo("host-a"), "tenant a's resize@1.0.0 is held on host A");
        var other = await tenantBOnB.RegisterToolAsync("resize", "1.0.0", OtherInputSchema, OutputSchema);
        Assert.That((other.Tenant, other.RegistryHost), Is.EqualTo(("b", "host-b")), "tenant b registers its own resize@1.0.0 with another contract");
        // Both claims stand: tenant a's from host B is still refused, tenant b's is the owner's own.
        var again = Assert.CatchAsync<OnexException>(async () => await tenantAOnB.RegisterToolAsync("resize", "1.0.0", InputSchema, OutputSchema));
        Assert.That(again!.Code, Is.EqualTo(ErrorCodes.NotOwner), "the same contract from another node of tenant a is NOT_OWNER");
    }

    [Test]
    public async Task Entries_of_the_layout_without_tenants_are_read_in_their_tenant_and_migrated_by_their_host()
    {
        using var files = new AuthTestFiles();
        var bucket = Bucket();
        // A long removal grace: host A stays silent until it starts below, and nobody removes it meanwhile.
        await using var hostB = await StartHostAsync(Options(_nats.Urls, bucket, "host-b", TimeSpan.FromMinutes(5)), 1, configure: o => o with { AuthFile = files.Path });
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = _nats.UrlOf(0) });
        var store = await nats.CreateKeyValueStoreContext().GetStoreAsync(bucket);
        // What a registry of the old layout on host A wrote for tenant a's bus: entry and claim under the token default.
        var legacyEntry = ClusterKeys.Entry("default", "host-a", ClusterKinds.Bus, "orders");
        var legacyClaim = ClusterKeys.Claim("default", ClusterKinds.Bus, "orders");
        await store.PutAsync(legacyEntry, RegistryCodec.SerializeBody(new EventBusRecord
        {
            Name = "orders", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:1"], NodeId = "worker-1", Tenant = "a", RegistryHost = "host-a",
        }));
        await store.PutAsync(legacyClaim, RegistryCodec.SerializeBody(new ClusterClaim { Host = "host-a", NodeId = "worker-1" }));
        await BoundedAsync(hostB.Cluster!.CatchUpAsync(), "host B to catch up with the bucket");

        using (var readerA = new TestDealer(hostB.RouterEndpoint) { Token = files.ReaderA })
        using (var admin = new TestDealer(hostB.RouterEndpoint) { Token = files.Admin })
        {
            var seenByA = readerA.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest());
            Assert.That(seenByA.Buses!.Select(b => (b.Name, b.Tenant, b.RegistryHost)), Is.EqualTo(new[] { ("orders", "a", "host-a") }),
                "an old-layout entry is tenant a's, as its record says");
            var all = admin.Call<IntrospectionRequest, IntrospectionResponse>(new IntrospectionRequest());
            Assert.That(all.Buses!.Select(b => b.Tenant), Is.EqualTo(new[] { "a" }), "and in no other tenant");
        }
        // The old claim sits under the token default: there, it keeps the name taken until its host migrates it.
        using var inDefault = new TestDealer(hostB.RouterEndpoint) { Token = files.Admin, Tenant = "default" };
        inDefault.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "worker-d" });
        var ordersOfDefault = new EventBusRegistration { Name = "orders", Kind = BusKinds.Zmq, Endpoints = ["tcp://127.0.0.1:3"], NodeId = "worker-d" };
        var taken = TestDealer.ExpectError(inDefault.Request(ordersOfDefault));
        Assert.That((taken.Code, taken.Details!["host"]), Is.EqualTo((ErrorCodes.NotOwner, "host-a")), "tenant default's orders is held by the old claim");

        // Host A's registry, upgraded, starts (holding nothing now): its republication deletes its old keys and their claims.
        await using var hostA = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0, configure: o => o with { AuthFile = files.Path });
        await BoundedAsync(hostA.Cluster!.FlushAsync(), "host A's republication");
        Assert.That((await store.TryGetEntryAsync<byte[]>(legacyEntry)).Success, Is.False, "the old-layout entry is deleted by its host");
        Assert.That((await store.TryGetEntryAsync<byte[]>(legacyClaim)).Success, Is.False, "with the claim it held");
        var freed = inDefault.Call<EventBusRegistration, EventBusRecord>(ordersOfDefault);
        Assert.That((freed.Tenant, freed.RegistryHost), Is.EqualTo(((string?)null, "host-b")), "tenant default's orders is free once host A migrated");
    }
}
