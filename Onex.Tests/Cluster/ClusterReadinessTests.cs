using System.Net;
using System.Text.Json;
using Onex.RegistryNode.Http;
using Onex.Testing.Nats;
using Onex.Tests.Http;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>/readyz of a registry in cluster mode: a stale cluster view is a degraded state (200, a failing cluster check with its reason).</summary>
[NonParallelizable]
public class ClusterReadinessTests
{
    [Test]
    public async Task Readyz_reports_a_stale_cluster_view_as_degraded_with_a_reason()
    {
        var nats = await NatsTestServer.StartAsync();
        await using var host = await StartAsync(nats);
        await using var http = await RegistryHttpServer.StartAsync(host, "http://127.0.0.1:0", Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        using var client = HttpTestClient.Create(http.Url);
        var current = await HttpTestClient.GetUntilAsync(client, "/readyz", b => b.Contains("\"status\":\"ready\""), "readiness");
        Assert.That(Cluster(current).GetProperty("ok").GetBoolean(), Is.True, current);

        await nats.KillAsync();
        await WaitUntilAsync(() => !host.Cluster!.Current, "the registry to notice it lost NATS");
        using var response = await client.GetAsync("/readyz");
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "still serving its host: not taken out of rotation");
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("status").GetString(), Is.EqualTo("degraded"), body);
        Assert.That(Cluster(body).GetProperty("ok").GetBoolean(), Is.False, body);
        Assert.That(Cluster(body).GetProperty("reason").GetString(), Does.Contain("stale"), body);
    }

    private static Task<Onex.RegistryNode.Hosting.RegistryNodeHost> StartAsync(NatsTestServer nats) =>
        StartHostAsync(Options(nats.Url, Bucket(), "host-r") with { Replicas = 1 }, 0);

    private static JsonElement Cluster(string body) => JsonDocument.Parse(body).RootElement.GetProperty("checks").GetProperty("cluster").Clone();
}
