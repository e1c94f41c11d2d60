using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onex.Protocol;

namespace Onex.Extensions.Hosting;

/// <summary>Health checks for OnexBus: <c>services.AddHealthChecks().AddOnexRegistry().AddOnexEventBus()</c>.</summary>
public static class OnexHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a check that the registry answers (one request, within <paramref name="timeout"/>, 2 s by default) and
    /// still lists this node as healthy. Needs <see cref="OnexServiceCollectionExtensions.AddOnexRegistryClient"/>.
    /// </summary>
    public static IHealthChecksBuilder AddOnexRegistry(this IHealthChecksBuilder builder, string name = "onex-registry",
        HealthStatus? failureStatus = null, IEnumerable<string>? tags = null, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(name,
            sp => new RegistryHealthCheck(sp.GetRequiredService<OnexRegistryClientService>()), failureStatus, tags, timeout ?? TimeSpan.FromSeconds(2)));
    }

    /// <summary>
    /// Adds a check that the event bus is up; for a bus this node hosts through the registry, also that the registry
    /// lists it as healthy. Needs <see cref="OnexServiceCollectionExtensions.AddOnexEventBus"/>.
    /// </summary>
    public static IHealthChecksBuilder AddOnexEventBus(this IHealthChecksBuilder builder, string name = "onex-bus",
        HealthStatus? failureStatus = null, IEnumerable<string>? tags = null, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(name,
            sp => new EventBusHealthCheck(sp.GetRequiredService<OnexEventBusService>(), sp.GetService<OnexRegistryClientService>()),
            failureStatus, tags, timeout ?? TimeSpan.FromSeconds(2)));
    }
}

/// <summary>Healthy when the registry answers and lists this node as healthy.</summary>
internal sealed class RegistryHealthCheck(OnexRegistryClientService service) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (service.Client is not { } client) return new HealthCheckResult(context.Registration.FailureStatus, "not connected to the registry (the host has not started, or stopped)");
        var data = new Dictionary<string, object> { ["endpoint"] = client.Endpoint, ["nodeId"] = client.NodeId };
        try
        {
            var answer = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Nodes], NodeId = client.NodeId }, cancellationToken)
                .ConfigureAwait(false);
            data["epoch"] = answer.Epoch;
            var node = answer.Nodes?.FirstOrDefault(n => n.NodeId == client.NodeId);
            if (node is null) return new HealthCheckResult(context.Registration.FailureStatus, $"the registry at {client.Endpoint} does not list node {client.NodeId}", data: data);
            data["health"] = node.Health;
            return node.Health == Health.Healthy
                ? HealthCheckResult.Healthy($"registry at {client.Endpoint} answers; node {client.NodeId} is healthy", data)
                : HealthCheckResult.Degraded($"registry at {client.Endpoint} lists node {client.NodeId} as {node.Health}", data: data);
        }
        catch (Exception ex) when (ex is Onex.Errors.OnexException or TimeoutException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"the registry at {client.Endpoint} did not answer: {ex.Message}", ex, data);
        }
    }
}

/// <summary>Healthy when the bus is up and, when this node hosts it through the registry, listed there as healthy.</summary>
internal sealed class EventBusHealthCheck(OnexEventBusService service, OnexRegistryClientService? registry) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (service.Bus is not { } bus || service.Options is not { } options)
            return new HealthCheckResult(context.Registration.FailureStatus, "no event bus (the host has not started, or stopped)");
        var data = new Dictionary<string, object> { ["bus"] = bus.Name, ["backend"] = options.Backend, ["role"] = options.Role.ToString() };
        if (bus is not Onex.Transports.Buses.RegisteredEventBus || registry?.Client is not { } client)
            return HealthCheckResult.Healthy($"{options.Backend} bus '{bus.Name}' is up", data);
        try
        {
            var answer = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NamePrefix = bus.Name }, cancellationToken)
                .ConfigureAwait(false);
            var record = answer.Buses?.FirstOrDefault(b => b.Name == bus.Name && b.NodeId == client.NodeId);
            if (record is null) return new HealthCheckResult(context.Registration.FailureStatus, $"the registry does not list bus '{bus.Name}' as this node's", data: data);
            data["health"] = record.Health;
            return record.Health == Health.Healthy
                ? HealthCheckResult.Healthy($"{options.Backend} bus '{bus.Name}' is up and registered", data)
                : HealthCheckResult.Degraded($"the registry lists bus '{bus.Name}' as {record.Health}", data: data);
        }
        catch (Exception ex) when (ex is Onex.Errors.OnexException or TimeoutException)
        {
            return HealthCheckResult.Degraded($"{options.Backend} bus '{bus.Name}' is up; the registry did not answer: {ex.Message}", ex, data);
        }
    }
}
