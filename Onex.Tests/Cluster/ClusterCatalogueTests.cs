using Onex.Errors;
using Onex.Protocol;
using Onex.Testing.Nats;
using Onex.Tests.Client;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// Three registries of simulated hosts A, B and C on one three-server nats-server cluster (real processes, loopback):
/// one catalogue seen from every host, one contract per tool version across hosts, validation against another host's tool.
/// </summary>
[NonParallelizable]
public class ClusterCatalogueTests
{
    private NatsTestCluster _nats = null!;

    [OneTimeSetUp]
    public async Task StartNats() => _nats = await NatsTestCluster.StartAsync(3);

    [Test]
    public async Task Bus_registered_on_host_A_is_in_host_C_introspection_and_change_stream()
    {
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0);
        await using var c = await StartHostAsync(Options(_nats.UrlOf(2), bucket, "host-c"), 2);
        await using var onA = await ConnectAsync(a, "producer-a");
        await using var onC = await ConnectAsync(c, "watcher-c");
        await using var changes = onC.WatchEvents("registry.bus.");
        await changes.UntilAsync(e => e.Kind == Onex.Transports.Registry.RegistryWatchEventKind.Resynced, "the first snapshot of C");

        await onA.RegisterBusAsync("orders", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);

        var seen = await changes.UntilAsync(e => e.Change?.ChangeType == ChangeTypes.BusRegistered && e.Change.Key == "orders", "bus.registered for orders on C's stream");
        var change = seen[^1].Change!;
        Assert.That(change.NewValue!.Bus!.RegistryHost, Is.EqualTo("host-a"), "the record names the host it came from");
        // Broadcast after C's commit: C's introspection holds it from now on.
        var described = await onC.DescribeAsync();
        Assert.That(described.Buses!.Single(b => b.Name == "orders").NodeId, Is.EqualTo("producer-a"));
        Assert.That(described.Nodes!.Single(n => n.NodeId == "producer-a").RegistryHost, Is.EqualTo("host-a"));
        Assert.That(described.Cluster, Is.Not.Null.And.Property(nameof(ClusterStatus.Stale)).False, "C is connected and loaded");
        var local = await onC.DescribeAsync(new IntrospectionRequest { Scope = IntrospectionScopes.Local });
        Assert.That(local.Buses!.Select(b => b.Name), Does.Not.Contain("orders"), "scope local shows C's own entries only");
        var snapshot = await onC.SnapshotAsync();
        Assert.That(snapshot.Buses.Select(b => b.Name), Does.Contain("orders"), "C's snapshot holds what its change stream announced");
        Assert.That(change.Sequence, Is.LessThanOrEqualTo(snapshot.Sequence), "the change carries C's own sequence number");
    }

    [Test]
    public async Task Tool_version_with_another_contract_on_another_host_is_refused()
    {
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0);
        await using var b = await StartHostAsync(Options(_nats.Urls, bucket, "host-b"), 1);
        await using var onA = await ConnectAsync(a, "tool-a");
        await using var onB = await ConnectAsync(b, "tool-b");
        await onA.RegisterToolAsync("billing.charge", "1.0.0", InputSchema, OutputSchema);

        var refused = Assert.ThrowsAsync<ContractConflictException>(async () => await onB.RegisterToolAsync("billing.charge", "1.0.0", OtherInputSchema, OutputSchema));
        Assert.That(refused!.Code, Is.EqualTo(ErrorCodes.ContractConflict));
        Assert.That(refused.Details["host"], Is.EqualTo("host-a"));
        var sameContract = Assert.CatchAsync<OnexException>(async () => await onB.RegisterToolAsync("billing.charge", "1.0.0", InputSchema, OutputSchema));
        Assert.That(sameContract!.Code, Is.EqualTo(ErrorCodes.NotOwner), "the same contract from another host's node is NOT_OWNER, as on one registry");
        var next = await onB.RegisterToolAsync("billing.charge", "1.1.0", OtherInputSchema, OutputSchema);
        Assert.That(next.RegistryHost, Is.EqualTo("host-b"), "a new version is free to register anywhere");
    }

    [Test]
    public async Task Racing_registrations_of_one_tool_version_on_two_hosts_let_exactly_one_win()
    {
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0);
        await using var b = await StartHostAsync(Options(_nats.Urls, bucket, "host-b"), 1);
        await using var onA = await ConnectAsync(a, "race-a");
        await using var onB = await ConnectAsync(b, "race-b");
        for (var round = 0; round < 5; round++)
        {
            var version = $"1.0.{round}";
            var results = await Task.WhenAll(
                Outcome(onA.RegisterToolAsync("race.tool", version, InputSchema, OutputSchema).AsTask()),
                Outcome(onB.RegisterToolAsync("race.tool", version, OtherInputSchema, OutputSchema).AsTask()));
            Assert.That(results.Count(r => r == "OK"), Is.EqualTo(1), $"round {round}: exactly one host wins {version}: {string.Join(", ", results)}");
            Assert.That(results.Count(r => r == ErrorCodes.ContractConflict), Is.EqualTo(1), $"round {round}: the other gets CONTRACT_CONFLICT: {string.Join(", ", results)}");
        }
    }

    [Test]
    public async Task Payload_is_validated_on_host_B_against_a_tool_registered_on_host_A()
    {
        var bucket = Bucket();
        await using var a = await StartHostAsync(Options(_nats.Urls, bucket, "host-a"), 0);
        await using var b = await StartHostAsync(Options(_nats.Urls, bucket, "host-b"), 1);
        await using var onA = await ConnectAsync(a, "tool-owner");
        await using var onB = await ConnectAsync(b, "tool-user");
        var tool = await onA.RegisterToolAsync("orders.create", "2.0.0", InputSchema, OutputSchema);
        await SyncAsync(a, b);

        var valid = await onB.ValidatePayloadAsync("orders.create", """{"id":"o-1"}""");
        var invalid = await onB.ValidatePayloadAsync("orders.create", """{"id":7}""", version: "2.0.0");

        Assert.That(valid.Valid, Is.True, string.Join("; ", valid.Errors.Select(e => e.Message)));
        Assert.That(valid.Fingerprint, Is.EqualTo(tool.Fingerprint), "validated against A's contract");
        Assert.That(invalid.Valid, Is.False);
        Assert.That(invalid.Errors.Select(e => e.Path), Does.Contain("#/id"));
    }

    private static async Task<string> Outcome(Task task)
    {
        try
        {
            await task;
            return "OK";
        }
        catch (OnexException ex)
        {
            return ex.Code;
        }
    }
}
