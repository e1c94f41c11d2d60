using Onex.Errors;
using Onex.Events;
using Onex.Protocol;
using Onex.RegistryNode.Leases;
using Onex.Testing;
using Onex.Testing.Buses;
using Onex.Testing.Registry;
using Onex.Tests.Client;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

namespace Onex.Tests.Testing;

/// <summary>The kit from inside a test: ports, buses and the process-wide registry.</summary>
public class OnexTestTests
{
    // Between probes while a networked subscription propagates; the probe loop ends as soon as one arrives.
    private static readonly TimeSpan ProbeInterval = TimeSpan.FromMilliseconds(50);

    private static readonly Func<string, string?> NoEnvironment = _ => null;

    [Test]
    public async Task Leased_ports_are_recorded_with_the_test_name_as_purpose()
    {
        var leases = await OnexTest.LeasePortsAsync(2);

        var registry = await OnexTestEnvironment.RegistryAsync();
        var held = await registry.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NodeId = registry.NodeId });
        var mine = held.Leases!.Where(l => leases.Ports.Contains(l.Port)).ToList();
        Assert.That(mine.Select(l => l.Purpose), Is.EqualTo(Enumerable.Repeat(TestContext.CurrentContext.Test.FullName, 2)));
    }

    [Test]
    public async Task Concurrent_leases_get_distinct_ports_outside_the_kernels_ephemeral_range()
    {
        var sets = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => OnexTest.LeasePortsAsync(3).AsTask()));

        var ports = sets.SelectMany(s => s.Ports).ToArray();
        Assert.That(ports, Has.Length.EqualTo(60).And.Unique);
        if (EphemeralPorts.Read("/proc/sys/net/ipv4/ip_local_port_range") is { } ephemeral)
            Assert.That(ports.Where(ephemeral.Contains), Is.Empty, $"ports from the kernel's ephemeral range {ephemeral}");
    }

    [Test]
    public async Task Every_call_in_one_test_gets_the_same_reserved_block_of_the_private_range()
    {
        var first = await OnexTest.ReservePortRangeAsync();
        var again = await OnexTest.ReservePortRangeAsync();

        Assert.That(again, Is.EqualTo(first));
        Assert.That((first.Count, OnexTestEnvironment.PrivatePortRange.Contains(first.First), OnexTestEnvironment.PrivatePortRange.Contains(first.Last)),
            Is.EqualTo((PortRangeReservations.BlockSize, true, true)), $"block {first}");
    }

    [Test]
    public async Task Concurrent_claims_get_disjoint_blocks()
    {
        var registry = await OnexTestEnvironment.RegistryAsync();

        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => PortRangeReservations.ClaimAsync(registry, CancellationToken.None)));
        try
        {
            var ports = claims.SelectMany(c => Enumerable.Range(c.Range.First, c.Range.Count)).ToList();
            Assert.That(ports, Is.Unique, $"overlapping blocks: {string.Join(", ", claims.Select(c => c.Range))}");
        }
        finally
        {
            foreach (var (_, claim) in claims) await claim.DisposeAsync();
        }
    }

    [Test]
    public void Bus_names_are_valid_for_every_backend_and_never_repeat()
    {
        var names = Enumerable.Range(0, 50).Select(_ => TestBuses.UniqueName("Some.Fixture.A_test_with_a_long_name_about_ordering_and_retries(\"zmq\",3)")).ToList();

        Assert.That(names, Is.Unique);
        Assert.That(names, Is.All.Match("^a-test-with-a-long-name-about-ordering-a-[0-9a-f]{8}$"));
    }

    [TestCase(BusKinds.Memory)]
    [TestCase(BusKinds.Zmq)]
    [TestCase(BusKinds.Ipc)]
    [TestCase(BusKinds.JetStream)]
    public async Task A_kit_bus_carries_events_from_its_host_to_a_joined_participant(string backend)
    {
        var host = await OnexTest.CreateBusAsync(backend);
        var participant = await OnexTest.JoinBusAsync(host);
        await using var subscription = await participant.SubscribeAsync("kit.>");

        // Networked subscriptions take a moment to reach the publisher; publish until the first one arrives.
        using var timeout = new CancellationTokenSource(Waits.Default);
        var received = subscription.Reader.ReadAsync(timeout.Token).AsTask();
        while (!received.IsCompleted)
        {
            await host.PublishAsync(OnexEvent.Create("kit.check", "x"u8.ToArray(), sourceNodeId: "kit-test"), timeout.Token);
            await Task.WhenAny(received, Task.Delay(ProbeInterval, timeout.Token));
        }

        Assert.That((await received).Topic, Is.EqualTo("kit.check"));
    }

    [Test]
    public async Task A_kit_bus_is_registered_under_a_name_of_its_own()
    {
        var first = await OnexTest.CreateBusAsync(BusKinds.Zmq);
        var second = await OnexTest.CreateBusAsync(BusKinds.Zmq);

        var registry = await OnexTestEnvironment.RegistryAsync();
        var buses = await registry.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NodeId = registry.NodeId });
        Assert.That(first.Name, Is.Not.EqualTo(second.Name));
        Assert.That(buses.Buses!.Select(b => b.Name), Is.SupersetOf(new[] { first.Name, second.Name }));
        Assert.That(((RegisteredEventBus)first).LeasedPorts, Has.Count.EqualTo(2), "a zmq bus binds two leased ports");
    }

    [Test]
    public async Task Without_a_shared_registry_one_is_started_in_this_process_on_a_window_of_the_kits_range()
    {
        await using var connection = await TestRegistryConnection.OpenAsync(OnexTestEnvironmentOptions.Default, "kit-test", NoEnvironment, CancellationToken.None);

        Assert.That(connection.Host, Is.Not.Null, "no in-process registry was started");
        Assert.That(connection.Client.Endpoint, Is.EqualTo(connection.Host!.RouterEndpoint));
        var pool = connection.Host.Options.Leases.PortRange;
        Assert.That((pool.Count, OnexTestEnvironment.DefaultPortRange.Contains(pool.First), OnexTestEnvironment.DefaultPortRange.Contains(pool.Last)),
            Is.EqualTo((OnexTestEnvironmentOptions.Default.PoolWindow, true, true)), $"pool {pool}");
    }

    [Test]
    public async Task A_shared_registry_named_by_the_environment_is_used_instead_of_one_in_this_process()
    {
        await using var shared = await TestRegistry.StartAsync();
        var environment = new Dictionary<string, string?>
        {
            [RegistryEndpoints.RouterVariable] = shared.Host.RouterEndpoint,
            [RegistryEndpoints.PubVariable] = shared.Host.PubEndpoint,
        };

        await using var connection = await TestRegistryConnection.OpenAsync(
            OnexTestEnvironmentOptions.Default, "kit-test", name => environment.GetValueOrDefault(name), CancellationToken.None);

        Assert.That(connection.Host, Is.Null, "a registry was started although a shared one was named");
        await using var observer = await RegistryClient.ConnectAsync(shared.ClientOptions() with { AnnounceNode = false });
        var nodes = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Nodes] });
        Assert.That(nodes.Nodes!.Select(n => n.NodeId), Does.Contain(connection.Client.NodeId), "the kit's node should be announced to the shared registry");
    }

    [Test]
    public void A_shared_registry_without_its_broadcast_endpoint_is_refused_naming_both_variables()
    {
        var environment = new Dictionary<string, string?> { [RegistryEndpoints.RouterVariable] = "tcp://127.0.0.1:5750" };

        var ex = Assert.ThrowsAsync<InvalidOperationException>(async () => await TestRegistryConnection.OpenAsync(
            OnexTestEnvironmentOptions.Default, "kit-test", name => environment.GetValueOrDefault(name), CancellationToken.None));

        Assert.That(ex!.Message, Does.Contain(RegistryEndpoints.RouterVariable).And.Contain(RegistryEndpoints.PubVariable));
    }

    [Test]
    public async Task An_unreachable_shared_registry_fails_naming_the_variable_and_endpoint()
    {
        var silent = (await OnexTest.LeasePortsAsync(2)).Ports; // leased, so nothing listens there
        var router = $"tcp://127.0.0.1:{silent[0]}";
        var environment = new Dictionary<string, string?>
        {
            [RegistryEndpoints.RouterVariable] = router,
            [RegistryEndpoints.PubVariable] = $"tcp://127.0.0.1:{silent[1]}",
        };
        var options = OnexTestEnvironmentOptions.Default with { RequestTimeout = TimeSpan.FromMilliseconds(200) };

        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await TestRegistryConnection.OpenAsync(
            options, "kit-test", name => environment.GetValueOrDefault(name), CancellationToken.None));

        Assert.That(ex!.Message, Does.Contain(RegistryEndpoints.RouterVariable).And.Contain(router));
    }
}
