using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Onex.Transports.Registry;

namespace Onex.Extensions.Hosting;

/// <summary>
/// This process as a node of the registry, for the life of the host: on start it connects and announces the node
/// (then heartbeats in the background); on stop it departs, so the registry drops the node's buses and tools at once.
/// Logging and the clock come from the container. Inject it and await <see cref="GetClientAsync"/>; after the host
/// started, <see cref="RegistryClient"/> itself can be injected too.
/// </summary>
public sealed class OnexRegistryClientService : IHostedService, IAsyncDisposable
{
    private readonly IOptions<OnexRegistrySettings> _settings;
    private readonly ILoggerFactory _loggers;
    private readonly TimeProvider _time;
    private readonly string _applicationName;
    private readonly TaskCompletionSource<RegistryClient> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RegistryClient? _client;

    /// <summary>Creates the service; it connects in <see cref="StartAsync"/>.</summary>
    public OnexRegistryClientService(IOptions<OnexRegistrySettings> settings, ILoggerFactory loggers, TimeProvider time, IHostEnvironment? environment = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(loggers);
        ArgumentNullException.ThrowIfNull(time);
        _settings = settings;
        _loggers = loggers;
        _time = time;
        _applicationName = environment?.ApplicationName ?? "onex-node";
    }

    /// <summary>The connected client; null before the host started and after it stopped.</summary>
    public RegistryClient? Client => Volatile.Read(ref _client);

    /// <summary>The connected client, once the host has started this service; faults if it could not connect.</summary>
    public Task<RegistryClient> GetClientAsync(CancellationToken cancellationToken = default) => _connected.Task.WaitAsync(cancellationToken);

    /// <summary>The options the client is created with (settings over the defaults, logging and clock from the container).</summary>
    public RegistryClientOptions Options => _settings.Value.ToOptions() is var options && options.NodeName is null
        ? options with { NodeName = _applicationName, LoggerFactory = _loggers, TimeProvider = _time }
        : options with { LoggerFactory = _loggers, TimeProvider = _time };

    /// <summary>Connects to the registry and announces this node (fails the host's start when the registry cannot be reached).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var client = await RegistryClient.ConnectAsync(Options, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _client, client);
            _connected.TrySetResult(client);
        }
        catch (Exception ex)
        {
            _connected.TrySetException(ex);
            throw;
        }
    }

    /// <summary>Departs from the registry and closes the client.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _client, null) is { } client) await client.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Departs if the host did not stop the service.</summary>
    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));
}
