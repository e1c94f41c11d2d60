using Onex.Protocol;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>A client re-asserts its node, buses, tools and leases with a registry that restarted.</summary>
public class ReassertionTests
{
    private const string Schema = """{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}""";

    [Test]
    public async Task After_a_registry_restart_the_client_restores_its_node_bus_tool_and_lease_on_the_same_port()
    {
        var ports = await TestPorts.LeaseAsync(2);
        var options = TestRegistry.Options($"tcp://127.0.0.1:{ports[0]}", $"tcp://127.0.0.1:{ports[1]}");
        var first = await TestRegistry.StartAsync(options);
        await using var client = await first.ConnectAsync();
        var reasserted = new TaskCompletionSource<RegistryReassertedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reasserted += (_, args) => reasserted.TrySetResult(args);
        // The lease runs out on the client's clock a TTL after its last renewal was sent, so the TTL has to outlast the
        // restart and re-assertion, plus scheduling stalls when the suite runs in parallel.
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Ttl = TimeSpan.FromSeconds(5), Purpose = "reassert" });
        var before = leases.Leases[0];
        await client.RegisterBusAsync("telemetry", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await client.RegisterToolAsync("greet", "1.0.0", Schema, Schema, "says hello");
        var firstEpoch = first.Host.Epoch;

        await first.DisposeAsync();
        await using var second = await RegistryWatchTests.RestartOnSameEndpointsAsync(options);

        var outcome = await reasserted.Task.Within("the client to re-assert with the restarted registry");
        Assert.That((outcome.PreviousEpoch, outcome.Epoch), Is.EqualTo((firstEpoch, second.Host.Epoch)));
        Assert.That((outcome.Buses, outcome.Tools, outcome.LeasesReclaimed, outcome.LeasesLost), Is.EqualTo((1, 1, 1, 0)));

        await using var observer = await RegistryClient.ConnectAsync(second.ClientOptions() with { AnnounceNode = false });
        var state = await observer.DescribeAsync(new IntrospectionRequest { NodeId = client.NodeId });
        Assert.That(state.Epoch, Is.EqualTo(second.Host.Epoch));
        Assert.That(state.Nodes!.Select(n => n.NodeId), Is.EqualTo(new[] { client.NodeId }), "the node is announced again");
        Assert.That(state.Buses!.Select(b => b.Name), Is.EqualTo(new[] { "telemetry" }), "the bus is registered again");
        Assert.That(state.Tools!.Select(t => $"{t.Name}@{t.Version}"), Is.EqualTo(new[] { "greet@1.0.0" }), "the tool is registered again");
        var lease = state.Leases!.Single();
        Assert.That(lease.Port, Is.EqualTo(before.Port), "the lease is taken back on the same port");
        Assert.That(lease.Purpose, Is.EqualTo("reassert"));
        Assert.That(leases.Leases[0], Is.EqualTo(lease), "the lease set holds the new lease id and token");
        Assert.That(leases.Ports, Is.EqualTo(new[] { before.Port }));
        Assert.That(leases.HasLostLeases, Is.False);
        // Release while the registry still runs (the usings would dispose it first).
        await leases.DisposeAsync();
        await client.DisposeAsync();
    }

    [Test]
    public async Task A_reclaimed_lease_keeps_being_renewed_by_its_set()
    {
        var ports = await TestPorts.LeaseAsync(2);
        var options = TestRegistry.Options($"tcp://127.0.0.1:{ports[0]}", $"tcp://127.0.0.1:{ports[1]}");
        var first = await TestRegistry.StartAsync(options);
        await using var client = await first.ConnectAsync();
        var reasserted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reasserted += (_, _) => reasserted.TrySetResult();
        // A renewal round caught by the restart waits out a request timeout before the set renews the reclaimed lease,
        // so the TTL has to outlast that, plus scheduling stalls when the suite runs in parallel.
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Ttl = TimeSpan.FromSeconds(5) });

        await first.DisposeAsync();
        await using var second = await RegistryWatchTests.RestartOnSameEndpointsAsync(options);
        await reasserted.Task.Within("the re-assertion");
        var reclaimedId = leases.Leases[0].LeaseId;
        var renewedAfter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        leases.LeaseRenewed += (_, args) =>
        {
            if (args.Lease.LeaseId == reclaimedId) renewedAfter.TrySetResult();
        };

        await renewedAfter.Task.Within("a renewal of the reclaimed lease");
        Assert.That(leases.HasLostLeases, Is.False);
        await leases.DisposeAsync();
        await client.DisposeAsync();
    }

    [Test]
    public async Task A_node_removed_behind_its_back_announces_itself_again_on_its_next_heartbeat()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var client = await registry.ConnectAsync();
        var reasserted = new TaskCompletionSource<RegistryReassertedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reasserted += (_, args) => reasserted.TrySetResult(args);
        await client.RegisterBusAsync("telemetry", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        await using var observer = await RegistryClient.ConnectAsync(registry.ClientOptions(client.NodeId) with { AnnounceNode = false, DepartOnDispose = false });

        await observer.RequestAsync<NodeDeparture, Ack>(new NodeDeparture { NodeId = client.NodeId }, CancellationToken.None);

        var outcome = await reasserted.Task.Within("the client to notice NOT_FOUND on its heartbeat and re-assert");
        Assert.That(outcome.Reason, Does.Contain("does not know node"));
        var state = await observer.DescribeAsync(new IntrospectionRequest { NodeId = client.NodeId });
        Assert.That(state.Nodes!.Select(n => n.NodeId), Is.EqualTo(new[] { client.NodeId }));
        Assert.That(state.Buses!.Select(b => b.Name), Is.EqualTo(new[] { "telemetry" }));
    }

    [Test]
    public async Task A_port_the_holder_keeps_bound_is_reclaimed_after_a_registry_restart()
    {
        var ports = await TestPorts.LeaseAsync(2);
        var options = TestRegistry.Options($"tcp://127.0.0.1:{ports[0]}", $"tcp://127.0.0.1:{ports[1]}");
        var first = await TestRegistry.StartAsync(options);
        await using var client = await first.ConnectAsync();
        var reasserted = new TaskCompletionSource<RegistryReassertedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reasserted += (_, args) => reasserted.TrySetResult(args);
        await using var leases = await client.LeasePortAsync(new LeaseRequestOptions { Protocol = PortProtocols.Tcp });
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, leases.Ports[0]);
        listener.Start(); // the holder uses its port, so a free check would now fail
        try
        {
            await first.DisposeAsync();
            await using var second = await RegistryWatchTests.RestartOnSameEndpointsAsync(options);

            var outcome = await reasserted.Task.Within("the re-assertion");

            Assert.That((outcome.LeasesReclaimed, outcome.LeasesLost), Is.EqualTo((1, 0)), "a bound port must be reclaimed, not lost");
            Assert.That(leases.Leases[0].Port, Is.EqualTo(((System.Net.IPEndPoint)listener.LocalEndpoint).Port));
            await leases.DisposeAsync();
            await client.DisposeAsync();
        }
        finally
        {
            listener.Stop();
        }
    }
}
