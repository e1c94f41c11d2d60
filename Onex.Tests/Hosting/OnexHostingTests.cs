using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Onex.Bus;
using Onex.Events;
using Onex.Extensions.Hosting;
using Onex.Protocol;
using Onex.Tests.Client;
using Onex.Transports.Registry;

namespace Onex.Tests.Hosting;

/// <summary>Onex.Extensions.Hosting in a real generic host against a real registry node.</summary>
public class OnexHostingTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static IHost BuildHost(TestRegistry registry, string nodeId, Dictionary<string, string?>? bus = null, Dictionary<string, string?>? extra = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true, ApplicationName = "hosting-test" });
        var values = new Dictionary<string, string?>
        {
            ["Onex:Endpoint"] = registry.Host.RouterEndpoint,
            ["Onex:PubEndpoint"] = registry.Host.PubEndpoint,
            ["Onex:NodeId"] = nodeId,
            ["Onex:HeartbeatInterval"] = "00:00:00.200",
            ["Onex:RequestTimeout"] = "00:00:01",
        };
        foreach (var (key, value) in bus ?? []) values[$"Onex:Bus:{key}"] = value;
        foreach (var (key, value) in extra ?? []) values[key] = value;
        builder.Configuration.AddInMemoryCollection(values);
        builder.Services.AddOnexRegistryClient(builder.Configuration.GetSection("Onex"));
        if (bus is not null) builder.Services.AddOnexEventBus(builder.Configuration.GetSection("Onex:Bus"));
        var checks = builder.Services.AddHealthChecks().AddOnexRegistry();
        if (bus is not null) checks.AddOnexEventBus();
        return builder.Build();
    }

    private static async Task<NodeRecord?> NodeAsync(TestRegistry registry, string nodeId)
    {
        await using var observer = await registry.ConnectAsync();
        var answer = await observer.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Nodes], NodeId = nodeId });
        return answer.Nodes?.SingleOrDefault(n => n.NodeId == nodeId);
    }

    [Test]
    public async Task The_hosted_client_announces_the_node_on_start_and_departs_on_stop()
    {
        await using var registry = await TestRegistry.StartAsync();
        var nodeId = $"hosted-{Guid.NewGuid():N}"[..20];
        using var host = BuildHost(registry, nodeId);
        await host.StartAsync();

        var node = await NodeAsync(registry, nodeId);
        Assert.That(node, Is.Not.Null, "the node was not announced when the host started");
        Assert.That(node!.Name, Is.EqualTo("hosting-test"), "the node is named after the application");
        Assert.That(host.Services.GetRequiredService<RegistryClient>().NodeId, Is.EqualTo(nodeId), "RegistryClient resolvable after start");

        await host.StopAsync();
        Assert.That(await NodeAsync(registry, nodeId), Is.Null, "the node did not depart when the host stopped");
    }

    [Test]
    public async Task Health_checks_report_the_registry_and_the_bus_healthy_while_both_are_up()
    {
        await using var registry = await TestRegistry.StartAsync();
        var nodeId = $"hosted-{Guid.NewGuid():N}"[..20];
        var busName = $"hosted-bus-{Guid.NewGuid():N}"[..20];
        using var host = BuildHost(registry, nodeId, new() { ["Backend"] = "zmq", ["Name"] = busName });
        await host.StartAsync();
        try
        {
            var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
            Assert.That(report.Entries.Keys, Is.EquivalentTo(new[] { "onex-registry", "onex-bus" }));
            Assert.That(report.Status, Is.EqualTo(HealthStatus.Healthy),
                string.Join("; ", report.Entries.Select(e => $"{e.Key}: {e.Value.Status} {e.Value.Description}")));
            Assert.That(report.Entries["onex-bus"].Description, Does.Contain("registered"));
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Test]
    public async Task A_joined_bus_is_found_through_the_registry_and_carries_events_from_the_hosting_node()
    {
        await using var registry = await TestRegistry.StartAsync();
        var busName = $"hosted-bus-{Guid.NewGuid():N}"[..20];
        using var hosting = BuildHost(registry, $"host-{Guid.NewGuid():N}"[..16], new() { ["Backend"] = "zmq", ["Name"] = busName });
        using var joining = BuildHost(registry, $"join-{Guid.NewGuid():N}"[..16], new() { ["Backend"] = "zmq", ["Name"] = busName, ["Role"] = "join" });
        await hosting.StartAsync();
        await joining.StartAsync();
        try
        {
            var consumer = hosting.Services.GetRequiredService<IEventBus>();
            var producer = await joining.Services.GetRequiredService<OnexEventBusService>().GetBusAsync();
            await using var subscription = await consumer.SubscribeAsync("orders.>");
            using var cts = new CancellationTokenSource(Wait);
            // ZeroMQ's slow-joiner: events published before the subscription reaches the publisher are lost, so
            // publish until one arrives (at most once, bounded by the test's time limit).
            var received = ReceiveOneAsync(subscription, cts.Token);
            while (!received.IsCompleted)
            {
                await producer.PublishAsync(OnexEvent.Create("orders.1.paid", "{}"u8.ToArray()), cts.Token);
                await Task.WhenAny(received, Task.Delay(50, cts.Token));
            }
            Assert.That((await received).Topic, Is.EqualTo("orders.1.paid"));
        }
        finally
        {
            await joining.StopAsync();
            await hosting.StopAsync();
        }
    }

    private static async Task<OnexEvent> ReceiveOneAsync(IEventSubscription subscription, CancellationToken cancellationToken)
    {
        await foreach (var evt in subscription.WithCancellation(cancellationToken)) return evt;
        throw new AssertionException("the subscription ended without an event");
    }

    [Test]
    public async Task The_registry_health_check_fails_once_the_registry_is_gone()
    {
        var registry = await TestRegistry.StartAsync();
        using var host = BuildHost(registry, $"hosted-{Guid.NewGuid():N}"[..20]);
        await host.StartAsync();
        try
        {
            await registry.DisposeAsync();
            var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
            Assert.That(report.Entries["onex-registry"].Status, Is.EqualTo(HealthStatus.Unhealthy), report.Entries["onex-registry"].Description);
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await host.StopAsync(stop.Token);
        }
    }

    [Test]
    public async Task An_endpoint_without_a_scheme_fails_the_host_at_start_naming_the_setting()
    {
        await using var registry = await TestRegistry.StartAsync();
        using var host = BuildHost(registry, "bad-endpoint", extra: new() { ["Onex:Endpoint"] = "127.0.0.1:5750" });
        var failure = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(failure!.Message, Does.Contain("Onex:Endpoint").And.Contain("tcp://"));
    }

    [Test]
    public async Task An_unknown_bus_backend_fails_the_host_at_start_naming_the_setting()
    {
        await using var registry = await TestRegistry.StartAsync();
        using var host = BuildHost(registry, "bad-backend", new() { ["Backend"] = "kafka" });
        var failure = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(failure!.Message, Does.Contain("Onex:Bus:Backend").And.Contain("kafka"));
    }
}
