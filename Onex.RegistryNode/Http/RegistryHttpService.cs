using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Onex.RegistryNode.Hosting;

namespace Onex.RegistryNode.Http;

/// <summary>
/// The node's HTTP endpoint (<see cref="RegistryNodeOptions.HttpEndpoint"/>) as a hosted service: it starts after the
/// node's own service (registered before it, so the node is serving) and stops before it. Does nothing when the
/// options name no endpoint.
/// </summary>
public sealed class RegistryHttpService(RegistryNodeService node, IOptions<RegistryNodeOptions> options, ILoggerFactory loggers) : IHostedService, IAsyncDisposable
{
    private RegistryHttpServer? _server;

    /// <summary>The address served (with the OS-chosen port for <c>:0</c>), or null when there is no HTTP endpoint.</summary>
    public string? Url => _server?.Url;

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.HttpEndpoint is not { } endpoint) return;
        var host = await node.Started.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _server = await RegistryHttpServer.StartAsync(host, endpoint, loggers, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or ArgumentException or TimeoutException)
        {
            throw new IOException($"the HTTP endpoint {endpoint}: {ex.Message}", ex);
        }
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _server, null) is { } server) await server.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));
}
