using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Onex.Bus;
using Onex.Transports.Buses;

namespace Onex.Extensions.Hosting;

/// <summary>
/// The event bus for the life of the host: created (or joined) on start, through the registry when
/// <c>AddOnexRegistryClient</c> was called too (registered there as this node's when it hosts a network bus);
/// closed on stop. Inject it and await <see cref="GetBusAsync"/>; after the host started, <see cref="IEventBus"/>
/// itself can be injected too.
/// </summary>
public sealed class OnexEventBusService : IHostedService, IAsyncDisposable
{
    private readonly IOptions<OnexEventBusSettings> _settings;
    private readonly ILoggerFactory _loggers;
    private readonly OnexRegistryClientService? _registry;
    private readonly TaskCompletionSource<IEventBus> _created = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IEventBus? _bus;

    /// <summary>Creates the service; the bus is created in <see cref="StartAsync"/>.</summary>
    public OnexEventBusService(IOptions<OnexEventBusSettings> settings, ILoggerFactory loggers, OnexRegistryClientService? registry = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(loggers);
        _settings = settings;
        _loggers = loggers;
        _registry = registry;
    }

    /// <summary>The bus; null before the host started and after it stopped.</summary>
    public IEventBus? Bus => Volatile.Read(ref _bus);

    /// <summary>The bus's options as last used (backend, name, role).</summary>
    public EventBusOptions? Options { get; private set; }

    /// <summary>The bus, once the host has started this service; faults if it could not be created.</summary>
    public Task<IEventBus> GetBusAsync(CancellationToken cancellationToken = default) => _created.Task.WaitAsync(cancellationToken);

    /// <summary>Creates or joins the bus.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var registry = _registry is null ? null : await _registry.GetClientAsync(cancellationToken).ConfigureAwait(false);
            var options = _settings.Value.ToOptions(EventBusOptions.FromEnvironment()) with { Registry = registry, LoggerFactory = _loggers };
            Options = options;
            var bus = await EventBusFactory.CreateAsync(options, cancellationToken).ConfigureAwait(false);
            LastConnectionDetail = $"{bus.Health.State}";
            bus.Health.Notice += OnNotice;
            Volatile.Write(ref _bus, bus);
            _created.TrySetResult(bus);
        }
        catch (Exception ex)
        {
            _created.TrySetException(ex);
            throw;
        }
    }

    /// <summary>What the bus last said about its connection (the detail of its latest connection notice).</summary>
    internal string LastConnectionDetail { get; private set; } = "";

    /// <summary>The bus's total drops when the bus health check last looked (to report drops since then).</summary>
    internal long DropsSeenByHealthCheck;

    private void OnNotice(object? sender, BusNotice notice)
    {
        if (notice.Kind == BusNoticeKind.ConnectionChanged) LastConnectionDetail = $"{notice.State}: {notice.Detail}";
    }

    /// <summary>Closes the bus (a hosted bus is deregistered first).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _bus, null) is { } bus)
        {
            bus.Health.Notice -= OnNotice;
            await bus.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Closes the bus if the host did not stop the service.</summary>
    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));
}
