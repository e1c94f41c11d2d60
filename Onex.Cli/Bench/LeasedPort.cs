using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Bench;

/// <summary>
/// A TCP port for infrastructure the bench starts (nats-server), leased the project's way: from the registry the user
/// named (<c>--registry</c> or <c>$ONEX_REGISTRY_ENDPOINT</c>), else from a registry node started in this process on
/// OS-chosen loopback ports for the duration of the run. Disposing releases the lease and stops what it started.
/// </summary>
internal sealed class LeasedPort : IAsyncDisposable
{
    private readonly RegistryNodeHost? _host;
    private readonly RegistryClient _client;
    private readonly PortLeaseSet _leases;

    private LeasedPort(RegistryNodeHost? host, RegistryClient client, PortLeaseSet leases)
    {
        _host = host;
        _client = client;
        _leases = leases;
    }

    /// <summary>The leased port (changes after <see cref="ReportConflictAsync"/>; still named after the lease was lost).</summary>
    public int Port => _leases.Ports is [var held, ..] ? held : _leases.LostLeases[^1].Port;

    /// <summary>Where the lease came from, for the report.</summary>
    public string Source => _host is null ? $"registry {_client.Endpoint}" : "a registry node started in-process";

    /// <summary>Leases one TCP port from <paramref name="registry"/>, or from an in-process registry when it is null.</summary>
    public static async Task<LeasedPort> LeaseAsync(RegistryClientOptions? registry, string purpose, CancellationToken cancellationToken)
    {
        RegistryNodeHost? host = null;
        RegistryClient? client = null;
        try
        {
            if (registry is null)
            {
                host = await RegistryNodeHost.StartAsync(
                    RegistryNodeOptions.Default with
                    {
                        Endpoint = "tcp://127.0.0.1:0", PubEndpoint = "tcp://127.0.0.1:0", NodeId = "onex-bench-registry",
                        Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
                    },
                    ct: cancellationToken).ConfigureAwait(false);
                registry = new RegistryClientOptions { Endpoint = host.RouterEndpoint, PubEndpoint = host.PubEndpoint, NodeName = "onex bench" };
            }
            client = await RegistryClient.ConnectAsync(registry, cancellationToken).ConfigureAwait(false);
            var leases = await client.LeasePortAsync(new LeaseRequestOptions { Purpose = purpose, Protocol = PortProtocols.Tcp }, cancellationToken)
                .ConfigureAwait(false);
            return new LeasedPort(host, client, leases);
        }
        catch
        {
            if (client is not null) await client.DisposeAsync().ConfigureAwait(false);
            if (host is not null) await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Tells the registry the port could not be bound; it quarantines it and grants another (now <see cref="Port"/>).</summary>
    public async Task ReportConflictAsync(string reason, CancellationToken cancellationToken) =>
        await _leases.ReportConflictAsync(Port, reason, cancellationToken).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        await _leases.DisposeAsync().ConfigureAwait(false);
        await _client.DisposeAsync().ConfigureAwait(false);
        if (_host is not null) await _host.DisposeAsync().ConfigureAwait(false);
    }
}
