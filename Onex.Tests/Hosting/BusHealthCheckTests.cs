using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Onex.Bus;
using Onex.Extensions.Hosting;
using Onex.Testing.Nats;
using Onex.Tests.Zmq;
using Onex.Transports.Zmq;

namespace Onex.Tests.Hosting;

/// <summary>
/// The bus health check (<c>AddOnexEventBus</c>) against real backends going away and coming back: a nats-server
/// started by the test kit and stopped mid-test, a ZeroMQ forwarder hosted by the test and disposed mid-test.
/// </summary>
public sealed class BusHealthCheckTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private static IHost BuildHost(Dictionary<string, string?> bus)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], DisableDefaults = true, ApplicationName = "bus-health-test" });
        builder.Configuration.AddInMemoryCollection(bus.ToDictionary(e => $"Onex:Bus:{e.Key}", e => e.Value));
        builder.Services.AddOnexEventBus(builder.Configuration.GetSection("Onex:Bus"));
        builder.Services.AddHealthChecks().AddOnexEventBus();
        return builder.Build();
    }

    /// <summary>Runs the check until it reports <paramref name="wanted"/>; fails with the last report after <see cref="Wait"/>.</summary>
    private static async Task<HealthReportEntry> CheckUntilAsync(IHost host, HealthStatus wanted, string what)
    {
        var checks = host.Services.GetRequiredService<HealthCheckService>();
        var elapsed = Stopwatch.StartNew();
        while (true)
        {
            var entry = (await checks.CheckHealthAsync()).Entries["onex-bus"];
            if (entry.Status == wanted) return entry;
            if (elapsed.Elapsed > Wait)
                Assert.Fail($"The bus check did not turn {wanted} ({what}) within {Wait.TotalSeconds} s; last: {entry.Status} {entry.Description}");
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
    }

    [Test]
    public async Task A_jetstream_bus_is_unhealthy_while_its_server_is_stopped_and_healthy_again_when_it_is_back()
    {
        var server = await NatsTestServer.StartAsync();
        var busName = $"health-{Guid.NewGuid():N}"[..20];
        using var host = BuildHost(new() { ["Backend"] = "jetstream", ["Name"] = busName, ["NatsUrl"] = server.Url });
        await host.StartAsync();
        try
        {
            var up = await CheckUntilAsync(host, HealthStatus.Healthy, "with the server running");
            Assert.That(up.Data["probe"] as string, Does.Contain("answered"), "the check asked the server for the bus's stream");

            await server.StopAsync();
            var down = await CheckUntilAsync(host, HealthStatus.Unhealthy, "after the server stopped");
            Assert.That(down.Description, Does.Contain(busName), "the reason names the bus");

            await server.StartAgainAsync();
            var back = await CheckUntilAsync(host, HealthStatus.Healthy, "after the server came back");
            Assert.That(back.Data["state"], Is.EqualTo(nameof(BusConnectionState.Connected)));
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Test]
    public async Task A_joined_zeromq_participant_is_unhealthy_while_its_forwarder_is_gone_and_healthy_again_when_it_is_back()
    {
        var busName = $"health-{Guid.NewGuid():N}"[..20];
        var forwarder = await ZmqTestBus.HostAsync(busName, ipc: false);
        var options = forwarder.Options;
        using var host = BuildHost(new()
        {
            ["Backend"] = "zmq", ["Name"] = busName, ["Role"] = "join",
            ["Endpoints:0"] = forwarder.PublishEndpoint, ["Endpoints:1"] = forwarder.SubscribeEndpoint,
        });
        await host.StartAsync();
        try
        {
            var up = await CheckUntilAsync(host, HealthStatus.Healthy, "with the forwarder running");
            Assert.That(up.Data["probe"] as string, Does.Contain("probe came back"), "the check sent a probe through the forwarder");

            await forwarder.DisposeAsync();
            var down = await CheckUntilAsync(host, HealthStatus.Unhealthy, "after the forwarder stopped");
            Assert.That(down.Description, Does.Contain(busName), "the reason names the bus");

            forwarder = await ZmqEventBus.HostAsync(options);
            await CheckUntilAsync(host, HealthStatus.Healthy, "after the forwarder came back");
        }
        finally
        {
            await host.StopAsync();
            await forwarder.DisposeAsync();
        }
    }

    [Test]
    public async Task Drops_since_the_previous_check_make_the_bus_degraded_once()
    {
        using var host = BuildHost(new() { ["Backend"] = "memory", ["Name"] = $"health-{Guid.NewGuid():N}"[..20] });
        await host.StartAsync();
        try
        {
            var bus = await host.Services.GetRequiredService<OnexEventBusService>().GetBusAsync();
            await using var full = await bus.SubscribeAsync("drops.>", new SubscriptionOptions { Capacity = 1 });
            for (var i = 0; i < 3; i++) await bus.PublishAsync(Onex.Events.OnexEvent.Create("drops.data", new byte[1]));
            var checks = host.Services.GetRequiredService<HealthCheckService>();

            var first = (await checks.CheckHealthAsync()).Entries["onex-bus"];
            var second = (await checks.CheckHealthAsync()).Entries["onex-bus"];

            Assert.Multiple(() =>
            {
                Assert.That(first.Status, Is.EqualTo(HealthStatus.Degraded), first.Description);
                Assert.That(first.Description, Does.Contain("dropped 2 events"));
                Assert.That(first.Data["dropped.subscriber_queue"], Is.EqualTo(2L));
                Assert.That(second.Status, Is.EqualTo(HealthStatus.Healthy), "no new drops since the previous check");
            });
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
