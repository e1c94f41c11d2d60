using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Onex.Bus;
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
    /// Adds a check of the event bus: Unhealthy when its connection is down (<see cref="IEventBus.Health"/>) or its
    /// backend's active probe fails (JetStream: the server answers for the bus's stream; ZeroMQ: a probe comes back
    /// through the forwarder; Unix sockets: the socket file is there), Degraded when events were dropped since the
    /// previous check or the registry lists this node's bus as not healthy, else Healthy; with the state, drops per
    /// cause and the probe's answer as data. Needs <see cref="OnexServiceCollectionExtensions.AddOnexEventBus"/>.
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

/// <summary>
/// The bus's health from what the participant knows and from an active probe: Unhealthy (the registration's failure
/// status) when <see cref="IEventBus.Health"/> is not Connected or the backend's probe (<see cref="IEventBusProbe"/>)
/// fails; Degraded when events were dropped since the previous check, or the registry lists this node's bus as not
/// healthy; else Healthy. The data carries the state, the drops per cause and the probe's answer.
/// </summary>
internal sealed class EventBusHealthCheck(OnexEventBusService service, OnexRegistryClientService? registry) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (service.Bus is not { } bus || service.Options is not { } options)
            return new HealthCheckResult(context.Registration.FailureStatus, "no event bus (the host has not started, or stopped)");
        var health = bus.Health;
        var data = new Dictionary<string, object>
        {
            ["bus"] = bus.Name,
            ["backend"] = options.Backend,
            ["role"] = options.Role.ToString(),
            ["state"] = health.State.ToString(),
        };
        foreach (var cause in Enum.GetValues<DropCause>()) data["dropped." + Onex.Diagnostics.BusTelemetry.CauseTag(cause)] = health.DroppedCount(cause);
        var what = $"{options.Backend} bus '{bus.Name}'";

        if (health.State != BusConnectionState.Connected)
            return new HealthCheckResult(context.Registration.FailureStatus, $"{what} is {health.State} ({service.LastConnectionDetail})", data: data);

        var backend = bus is Onex.Transports.Buses.RegisteredEventBus registered ? registered.Inner : bus;
        if (backend is IEventBusProbe probe)
        {
            try
            {
                data["probe"] = await probe.ProbeAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is Onex.Errors.OnexException or TimeoutException or ObjectDisposedException)
            {
                data["probe"] = ex.Message;
                return new HealthCheckResult(context.Registration.FailureStatus, $"{what} does not answer: {ex.Message}", ex, data);
            }
            catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
            {
                // The check's own timeout: say which bus did not answer rather than the host's generic timeout message.
                data["probe"] = "no answer within the check's timeout";
                return new HealthCheckResult(context.Registration.FailureStatus, $"{what} did not answer its probe within the check's timeout", ex, data);
            }
        }

        var dropped = health.TotalDropped;
        var newDrops = dropped - Interlocked.Exchange(ref service.DropsSeenByHealthCheck, dropped);
        if (newDrops > 0)
            return HealthCheckResult.Degraded($"{what} dropped {newDrops} events since the previous check ({health})", data: data);

        if (bus is not Onex.Transports.Buses.RegisteredEventBus || registry?.Client is not { } client)
            return HealthCheckResult.Healthy($"{what} is up", data);
        try
        {
            var answer = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses], NamePrefix = bus.Name }, cancellationToken)
                .ConfigureAwait(false);
            var record = answer.Buses?.FirstOrDefault(b => b.Name == bus.Name && b.NodeId == client.NodeId);
            if (record is null) return new HealthCheckResult(context.Registration.FailureStatus, $"the registry does not list bus '{bus.Name}' as this node's", data: data);
            data["health"] = record.Health;
            return record.Health == Health.Healthy
                ? HealthCheckResult.Healthy($"{what} is up and registered", data)
                : HealthCheckResult.Degraded($"the registry lists bus '{bus.Name}' as {record.Health}", data: data);
        }
        catch (Exception ex) when (ex is Onex.Errors.OnexException or TimeoutException)
        {
            return HealthCheckResult.Degraded($"{what} is up; the registry did not answer: {ex.Message}", ex, data);
        }
    }
}
