using Onex.Errors;
using Onex.Testing.Registry;
using Onex.Transports.Registry;

namespace Onex.Tests.Cluster;

/// <summary>A client over NATS that gets no answer says what to check in NATS terms, not ZeroMQ's.</summary>
public class NatsTimeoutHintTests
{
    [Test]
    public async Task A_timeout_over_nats_hints_at_the_nats_server_and_a_registry_in_cluster_mode()
    {
        var url = await OnexTestEnvironment.NatsUrlAsync();
        var host = $"nobody-{Guid.NewGuid():N}"[..16];
        await using var client = await RegistryClient.ConnectAsync(new RegistryClientOptions
        {
            Endpoint = url,
            HostName = host,
            // Given, so that no discovery runs (it would fail first, with its own message); never connected without a node.
            PubEndpoint = $"ipc://{Path.Combine(Path.GetTempPath(), $"onex-unused-{Guid.NewGuid():N}")}",
            AnnounceNode = false,
            MaxAttempts = 1,
            RequestTimeout = TimeSpan.FromMilliseconds(500),
        });

        var unavailable = Assert.ThrowsAsync<UnavailableException>(async () => await client.SnapshotAsync());
        Assert.That(unavailable!.Message, Does.Contain("NATS server").And.Contain($"--cluster {url} --host-name {host}"),
            "the hint names the NATS transport and how to serve this host");
        Assert.That(unavailable.Message, Does.Not.Contain("is it running? start one with `onex registry serve`"), "no ZeroMQ wording over NATS");
    }
}
