using Microsoft.Extensions.Logging;
using Onex.Bus;
using Onex.Events;
using Onex.Transports.Registry;

namespace Onex.Transports.Buses;

/// <summary>
/// A hosted bus registered with the registry: on dispose it deregisters, closes the bus, then releases its ports.
/// Its node's heartbeats (the <see cref="RegistryClient"/>'s) keep the registration healthy.
/// </summary>
public sealed partial class RegisteredEventBus : IEventBus
{
    private readonly RegistryClient _registry;
    private readonly IReadOnlyList<PortLeaseSet>? _leases;
    private readonly ILogger _logger;
    private int _disposed;

    internal RegisteredEventBus(IEventBus inner, RegistryClient registry, IReadOnlyList<PortLeaseSet>? leases, ILogger logger)
    {
        Inner = inner;
        _registry = registry;
        _leases = leases;
        _logger = logger;
    }

    /// <summary>The backend's bus.</summary>
    public IEventBus Inner { get; }

    /// <inheritdoc/>
    public string Name => Inner.Name;

    /// <inheritdoc/>
    public DeliveryGuarantee Guarantee => Inner.Guarantee;

    /// <inheritdoc/>
    public EventBusHealth Health => Inner.Health;

    /// <summary>The ports leased for this bus, if any.</summary>
    public IReadOnlyList<int> LeasedPorts => _leases?.SelectMany(set => set.Ports).ToArray() ?? [];

    /// <inheritdoc/>
    public ValueTask PublishAsync(OnexEvent evt, CancellationToken cancellationToken = default) =>
        Inner.PublishAsync(evt, cancellationToken);

    /// <inheritdoc/>
    public ValueTask<IEventSubscription> SubscribeAsync(string pattern, SubscriptionOptions? options = null, CancellationToken cancellationToken = default) =>
        Inner.SubscribeAsync(pattern, options, cancellationToken);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            await _registry.DeregisterBusAsync(Name).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is Errors.OnexException or ObjectDisposedException)
        {
            // The bus still closes; the registry drops the registration with the node if it cannot hear us.
            LogDeregisterFailed(Name, ex.Message);
        }
        await Inner.DisposeAsync().ConfigureAwait(false);
        await HostPorts.ReleaseAsync(_leases).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Inner} (registered)";

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not deregister bus {Bus}: {Reason}")]
    private partial void LogDeregisterFailed(string bus, string reason);
}
