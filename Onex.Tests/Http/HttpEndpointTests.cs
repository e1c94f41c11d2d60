using System.Net;
using System.Text.Json;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Http;
using Onex.Tests.Registry;

namespace Onex.Tests.Http;

/// <summary>The registry node's HTTP endpoint, in process: health, readiness, the JSON snapshot and the SSE change stream.</summary>
public class HttpEndpointTests
{
    private static async Task<(RegistryNodeHost Node, RegistryHttpServer Http, HttpClient Client)> StartAsync()
    {
        var node = await TestNodes.StartAsync();
        var http = await RegistryHttpServer.StartAsync(node, "http://127.0.0.1:0", Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        Assert.That(http.Url, Does.Match(@"^http://127\.0\.0\.1:\d+$"), "the bound address with its OS-chosen port");
        return (node, http, HttpTestClient.Create(http.Url));
    }

    private static async Task StopAsync(RegistryNodeHost node, RegistryHttpServer http, HttpClient client)
    {
        client.Dispose();
        await http.DisposeAsync();
        await node.DisposeAsync();
    }

    [Test]
    public async Task Healthz_is_200_and_readyz_is_200_with_every_check_passing()
    {
        var (node, http, client) = await StartAsync();
        try
        {
            using var healthz = await client.GetAsync("/healthz");
            Assert.That(healthz.StatusCode, Is.EqualTo(HttpStatusCode.OK));

            // Ready once the view has its snapshot and heard a heartbeat (the node heartbeats every 50 ms here).
            var body = await HttpTestClient.GetUntilAsync(client, "/readyz", b => b.Contains("\"status\":\"ready\""), "readiness");
            using var json = JsonDocument.Parse(body);
            foreach (var check in new[] { "serving", "store", "pub", "view" })
                Assert.That(json.RootElement.GetProperty("checks").GetProperty(check).GetProperty("ok").GetBoolean(), Is.True, $"check {check}: {body}");
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }

    [Test]
    public async Task Readyz_is_503_with_a_reason_once_the_node_is_stopping()
    {
        var (node, http, client) = await StartAsync();
        try
        {
            await node.DisposeAsync();
            using var response = await client.GetAsync("/readyz");
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), body);
            Assert.That(body, Does.Contain("the registry is stopping"));
            using var healthz = await client.GetAsync("/healthz");
            Assert.That(healthz.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the process is still alive");
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }

    [Test]
    public async Task The_change_stream_starts_with_a_snapshot_then_sends_each_change_with_the_next_sequence()
    {
        var (node, http, client) = await StartAsync();
        try
        {
            await using var stream = await ChangeStreamReader.OpenAsync(client, "/api/changes");
            var (first, snapshot) = await stream.NextNonHeartbeatAsync();
            Assert.That(first, Is.EqualTo("snapshot"));
            var epoch = snapshot.GetProperty("epoch").GetString();
            var sequence = snapshot.GetProperty("sequence").GetInt64();

            using var dealer = new TestDealer(node.RouterEndpoint);
            var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1", Purpose = "http-test" }).Leases[0];

            var (name, change) = await stream.NextNonHeartbeatAsync();
            Assert.That(name, Is.EqualTo("change"));
            Assert.That(change.GetProperty("changeType").GetString(), Is.EqualTo(ChangeTypes.LeaseGranted));
            Assert.That(change.GetProperty("epoch").GetString(), Is.EqualTo(epoch));
            Assert.That(change.GetProperty("sequence").GetInt64(), Is.EqualTo(sequence + 1));
            Assert.That(change.GetProperty("newValue").GetProperty("lease").GetProperty("port").GetInt32(), Is.EqualTo(lease.Port));

            // The JSON snapshot reflects every change the stream has sent.
            using var json = JsonDocument.Parse(await client.GetStringAsync("/api/snapshot"));
            Assert.That(json.RootElement.GetProperty("sequence").GetInt64(), Is.EqualTo(sequence + 1));
            Assert.That(json.RootElement.GetProperty("leases").EnumerateArray().Select(l => l.GetProperty("leaseId").GetString()), Is.EqualTo(new[] { lease.LeaseId }));

            dealer.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "n1", FencingToken = lease.FencingToken });
            (name, change) = await stream.NextNonHeartbeatAsync();
            Assert.That(change.GetProperty("changeType").GetString(), Is.EqualTo(ChangeTypes.LeaseReleased));
            Assert.That(change.GetProperty("sequence").GetInt64(), Is.EqualTo(sequence + 2));
            using var after = JsonDocument.Parse(await client.GetStringAsync("/api/snapshot"));
            Assert.That(after.RootElement.GetProperty("leases").GetArrayLength(), Is.Zero, "a released lease leaves the snapshot");
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }

    [Test]
    public async Task The_change_stream_prefix_keeps_only_matching_change_types()
    {
        var (node, http, client) = await StartAsync();
        try
        {
            await using var stream = await ChangeStreamReader.OpenAsync(client, "/api/changes?prefix=lease.");
            Assert.That((await stream.NextNonHeartbeatAsync()).Event, Is.EqualTo("snapshot"));

            using var dealer = new TestDealer(node.RouterEndpoint);
            dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "n1" });
            dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" });

            var (name, change) = await stream.NextNonHeartbeatAsync();
            Assert.That(name, Is.EqualTo("change"));
            Assert.That(change.GetProperty("changeType").GetString(), Is.EqualTo(ChangeTypes.LeaseGranted), "node.registered should have been filtered out");
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }

    [TestCase("/no/such/thing", HttpStatusCode.NotFound)]
    [TestCase("/api/changes?prefix=Lease%20X", HttpStatusCode.BadRequest)]
    [TestCase("/api/changes?since=3", HttpStatusCode.BadRequest)]
    [TestCase("/api/snapshot?x=1", HttpStatusCode.BadRequest)]
    public async Task Bad_requests_get_a_4xx_with_a_json_reason_and_the_registry_keeps_serving(string path, HttpStatusCode expected)
    {
        var (node, http, client) = await StartAsync();
        try
        {
            using var response = await client.GetAsync(path);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(expected), body);
            using var json = JsonDocument.Parse(body);
            Assert.That(json.RootElement.GetProperty("detail").GetString(), Is.Not.Empty);

            using var dealer = new TestDealer(node.RouterEndpoint);
            Assert.That(dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "n1" }).Leases, Has.Count.EqualTo(1));
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }

    [Test]
    public async Task Huge_headers_get_431_and_the_endpoint_keeps_serving()
    {
        var (node, http, client) = await StartAsync();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/healthz");
            request.Headers.Add("X-Padding", new string('x', 64 * 1024));
            using var response = await client.SendAsync(request);
            Assert.That((int)response.StatusCode, Is.EqualTo(431));
            using var healthz = await client.GetAsync("/healthz");
            Assert.That(healthz.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }

    [Test]
    public async Task A_second_endpoint_on_an_address_in_use_fails_to_start_with_an_io_error()
    {
        var (node, http, client) = await StartAsync();
        try
        {
            Assert.ThrowsAsync(Is.InstanceOf<IOException>(), () => RegistryHttpServer.StartAsync(
                node, http.Url, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance));
        }
        finally
        {
            await StopAsync(node, http, client);
        }
    }
}
