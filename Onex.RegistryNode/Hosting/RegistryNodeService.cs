using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Onex.RegistryNode.Hosting;

/// <summary>
/// The registry node as an <see cref="IHostedService"/>: started with the host (options from
/// <see cref="IOptions{TOptions}"/>, logging and <see cref="TimeProvider"/> from the container), stopped with it (a last
/// heartbeat with <c>stopping=true</c>, sockets closed). Registered by
/// <see cref="RegistryNodeServiceCollectionExtensions.AddOnexRegistryNode(Microsoft.Extensions.DependencyInjection.IServiceCollection, Microsoft.Extensions.Configuration.IConfiguration)"/>.
/// </summary>
public sealed class RegistryNodeService : IHostedService, IAsyncDisposable
{
    private readonly IOptions<RegistryNodeOptions> _options;
    private readonly ILoggerFactory _loggers;
    private readonly TimeProvider _time;
    private readonly TaskCompletionSource<RegistryNodeHost> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RegistryNodeHost? _node;

    /// <summary>Creates the service; the node starts in <see cref="StartAsync"/>.</summary>
    public RegistryNodeService(IOptions<RegistryNodeOptions> options, ILoggerFactory loggers, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        ArgumentNullException.ThrowIfNull(time);
        _options = options;
        _loggers = loggers;
        _time = time;
    }

    /// <summary>The running node (its endpoints and epoch); null before the host started it and after it stopped.</summary>
    public RegistryNodeHost? Node => Volatile.Read(ref _node);

    /// <summary>Completes with the node once it serves; faults when it could not start.</summary>
    public Task<RegistryNodeHost> Started => _started.Task;

    /// <summary>Starts the node: binds both endpoints and opens the store (see <see cref="RegistryNodeHost.StartAsync"/> for the errors).</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var node = await RegistryNodeHost.StartAsync(_options.Value, _loggers, _time, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _node, node);
            _started.TrySetResult(node);
        }
        catch (Exception ex)
        {
            _started.TrySetException(ex);
            throw;
        }
    }

    /// <summary>Stops the node (a last heartbeat with <c>stopping=true</c>, then both sockets closed).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _node, null) is { } node) await node.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the node if the host did not.</summary>
    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));
}
