// The worker service of docs/samples/worker.md: OnexBus in a generic host with health checks. Settings come from
// appsettings.json, the environment (Onex__Bus__Backend=zmq) and the command line (--Onex:Bus:Name=orders).
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Onex.Extensions.Hosting;
using Onex.Samples.Worker;

// <readme>
var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddOnexRegistryClient(builder.Configuration.GetSection("Onex"));   // announce, heartbeat, depart
builder.Services.AddOnexEventBus(builder.Configuration.GetSection("Onex:Bus"));      // the bus, through the registry
builder.Services.AddHealthChecks().AddOnexRegistry().AddOnexEventBus();
builder.Services.AddHostedService<OrderTicker>();
await builder.Build().RunAsync();
// </readme>

namespace Onex.Samples.Worker
{
    /// <summary>Publishes an order every second and reports the health checks once, then whenever they change.</summary>
    internal sealed class OrderTicker(OnexEventBusService buses, HealthCheckService health) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            var bus = await buses.GetBusAsync(stoppingToken);
            HealthStatus? last = null;
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            var order = 0;
            do
            {
                await Onex.Bus.EventBusExtensions.PublishAsync(bus, $"orders.{++order}.paid", "{}"u8.ToArray(), cancellationToken: stoppingToken);
                var report = await health.CheckHealthAsync(stoppingToken);
                if (report.Status != last)
                {
                    Console.WriteLine($"worker: health {report.Status} ({string.Join("; ", report.Entries.Select(e => $"{e.Key}: {e.Value.Description}"))})");
                    last = report.Status;
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
    }
}
