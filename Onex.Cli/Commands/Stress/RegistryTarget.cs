using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Onex.Cli.Commands;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Errors;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli.Commands.Stress;

/// <summary>Which registry the workers lease from; an in-process one is stopped on dispose.</summary>
internal sealed class RegistryTarget : IAsyncDisposable
{
    private readonly RegistryNodeHost? _host;

    private RegistryTarget(string router, string pub, RegistryNodeHost? host)
    {
        Router = router;
        Pub = pub;
        _host = host;
    }

    public string Router { get; }
    public string Pub { get; }
    public string Description => _host is null ? Router : $"in-process {Router}";

    /// <summary>
    /// A registry named by <c>--registry</c> or <c>$ONEX_REGISTRY_ENDPOINT</c> must answer (else UNAVAILABLE, exit 3);
    /// with neither, the default endpoint is tried and, when nothing answers there, a registry is started in this process.
    /// </summary>
    public static async Task<RegistryTarget> ResolveAsync(CliContext context, ParseResult parse, CancellationToken cancellationToken)
    {
        var named = parse.GetValue(CliContext.RegistryOption) is { Length: > 0 }
                    || Environment.GetEnvironmentVariable(RegistryEndpoints.RouterVariable) is { Length: > 0 };
        var options = context.ClientOptions(parse, announce: false, nodeName: "onex ports stress");
        if (!named) options = options with { MaxAttempts = 1, RequestTimeout = TimeSpan.FromMilliseconds(500) };
        await using (var probe = await RegistryClient.ConnectAsync(options, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await probe.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Stats] }, cancellationToken).ConfigureAwait(false);
                return new RegistryTarget(probe.Endpoint, probe.PubEndpoint, null);
            }
            catch (UnavailableException) when (!named)
            {
                // nothing on the default endpoint: run our own below
            }
        }
        var host = await RegistryNodeHost.StartAsync(
            RegistryNodeOptions.Default with
            {
                Endpoint = "tcp://127.0.0.1:0", PubEndpoint = "tcp://127.0.0.1:0", NodeId = "onex-ports-stress",
                Store = Onex.RegistryNode.Storage.RegistryStoreOptions.InMemory,
            },
            ct: cancellationToken).ConfigureAwait(false);
        return new RegistryTarget(host.RouterEndpoint, host.PubEndpoint, host);
    }

    public ValueTask DisposeAsync() => _host?.DisposeAsync() ?? ValueTask.CompletedTask;
}
