using System.Text.Json;
using NATS.Client.Core;
using Onex.Errors;
using Onex.Protocol;
using Onex.Testing.Nats;
using Onex.Tests.Registry;
using Onex.Transports.Registry;
using static Onex.Tests.Cluster.ClusterHarness;

namespace Onex.Tests.Cluster;

/// <summary>
/// The registry's request protocol as a NATS service (PROTOCOL.md 18.2), against a real nats-server: discoverable with
/// $SRV PING/INFO, usable by a RegistryClient that knows only the NATS URL and the host name, same error replies.
/// </summary>
[NonParallelizable]
public class RegistryOverNatsTests
{
    private NatsTestServer _nats = null!;

    [OneTimeSetUp]
    public async Task StartNats() => _nats = await NatsTestServer.StartAsync();

    private Task<Onex.RegistryNode.Hosting.RegistryNodeHost> StartAsync(string host) =>
        StartHostAsync(Options(_nats.Url, Bucket(), host) with { Replicas = 1 }, 0);

    [Test]
    public async Task Srv_ping_and_info_list_the_registry_service_with_its_host_subject_and_endpoints()
    {
        await using var host = await StartAsync("host-n1");
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = _nats.Url });

        var pings = await CollectAsync(nats, $"$SRV.PING.{RegistryNatsService.ServiceName}");
        var infos = await CollectAsync(nats, $"$SRV.INFO.{RegistryNatsService.ServiceName}");

        var ping = pings.Single(p => p.GetProperty("metadata").GetProperty("host").GetString() == "host-n1");
        Assert.That(ping.GetProperty("name").GetString(), Is.EqualTo(RegistryNatsService.ServiceName));
        Assert.That(ping.GetProperty("type").GetString(), Is.EqualTo("io.nats.micro.v1.ping_response"));
        var info = infos.Single(p => p.GetProperty("metadata").GetProperty("host").GetString() == "host-n1");
        var metadata = info.GetProperty("metadata");
        Assert.That(metadata.GetProperty(RegistryNatsService.PubEndpointMetadata).GetString(), Is.EqualTo(host.PubEndpoint));
        Assert.That(metadata.GetProperty(RegistryNatsService.RouterEndpointMetadata).GetString(), Is.EqualTo(host.RouterEndpoint));
        Assert.That(metadata.GetProperty(RegistryNatsService.ProtocolVersionMetadata).GetString(), Is.EqualTo(ProtocolVersion.Current.ToString()));
        var endpoint = info.GetProperty("endpoints").EnumerateArray().Single();
        Assert.That(endpoint.GetProperty("subject").GetString(), Is.EqualTo("onex.registry.host-n1.requests"), "the subject names the host");
        Assert.That(host.Cluster!.RequestSubject, Is.EqualTo("onex.registry.host-n1.requests"));
    }

    [Test]
    public async Task Client_with_a_nats_endpoint_leases_renews_releases_and_registers_a_bus()
    {
        await using var host = await StartAsync("host-n2");
        await using var client = await RegistryClient.ConnectAsync(new RegistryClientOptions
        {
            Endpoint = _nats.Url, HostName = "host-n2", NodeId = "over-nats",
        });
        Assert.That(client.PubEndpoint, Is.EqualTo(host.PubEndpoint), "the change stream comes from the PUB endpoint the service advertises");

        var set = await client.LeasePortAsync(new LeaseRequestOptions { RenewAutomatically = false, Purpose = "over nats" });
        var lease = set.Leases.Single();
        Assert.That(lease.Port, Is.InRange(host.Options.Leases.PortRange.First, host.Options.Leases.PortRange.Last), "a port of this host's pool");
        var renewed = await client.RenewLeaseAsync(lease, CancellationToken.None);
        Assert.That((renewed.LeaseId, renewed.ExpiresAt >= lease.ExpiresAt), Is.EqualTo((lease.LeaseId, true)), "renewed over NATS");
        await set.DisposeAsync();
        Assert.That(await host.InvokeAsync(s => s.Leases.Leases.Any(l => l.LeaseId == lease.LeaseId)), Is.False, "released over NATS");

        var bus = await client.RegisterBusAsync("bus-over-nats", BusKinds.Zmq, ["tcp://127.0.0.1:1"]);
        Assert.That((bus.NodeId, bus.RegistryHost), Is.EqualTo(("over-nats", "host-n2")));
        var described = await client.DescribeAsync(new IntrospectionRequest { Scope = IntrospectionScopes.Local });
        Assert.That(described.Buses!.Select(b => b.Name), Is.EqualTo(new[] { "bus-over-nats" }));
        Assert.That(described.Nodes!.Select(n => n.NodeId), Does.Contain("over-nats"), "announced over NATS");
    }

    [Test]
    public async Task Malformed_bytes_over_nats_get_a_malformed_error_reply()
    {
        await using var host = await StartAsync("host-n3");
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = _nats.Url });

        var reply = await nats.RequestAsync(RegistryNatsService.RequestSubject("host-n3"), new byte[] { 0xc1, 0x00, 0xff },
            requestSerializer: NatsRawSerializer<byte[]>.Default, replySerializer: NatsRawSerializer<byte[]>.Default,
            replyOpts: new NatsSubOpts { Timeout = TimeSpan.FromSeconds(10) });

        var envelope = TestDealer.DecodeReply(reply.Data!);
        Assert.That(envelope.MessageType, Is.EqualTo(MessageTypes.Of<Error>()));
        Assert.That(envelope.BodyAs<Error>().Code, Is.EqualTo(ErrorCodes.Malformed));
        var stillServing = await RegistryClient.ConnectAsync(new RegistryClientOptions { Endpoint = _nats.Url, HostName = "host-n3", AnnounceNode = false });
        await using (stillServing)
            Assert.That((await stillServing.DescribeAsync()).Epoch, Is.EqualTo(host.Epoch), "the registry keeps serving");
    }

    [Test]
    public async Task Requests_over_nats_follow_the_same_token_rules()
    {
        using var files = new Onex.Tests.Auth.AuthTestFiles();
        await using var host = await StartHostAsync(Options(_nats.Url, Bucket(), "host-n4") with { Replicas = 1 }, 0, configure: o => o with { AuthFile = files.Path });
        await using var nats = new NatsConnection(NatsOpts.Default with { Url = _nats.Url });

        var anonymous = await nats.RequestAsync(RegistryNatsService.RequestSubject("host-n4"),
            RegistryCodec.Encode("r1", "anonymous", new PortRequest { NodeId = "a-node" }),
            requestSerializer: NatsRawSerializer<byte[]>.Default, replySerializer: NatsRawSerializer<byte[]>.Default,
            replyOpts: new NatsSubOpts { Timeout = TimeSpan.FromSeconds(10) });
        var refused = TestDealer.DecodeReply(anonymous.Data!);
        Assert.That(refused.BodyAs<Error>().Code, Is.EqualTo(ErrorCodes.Unauthenticated), "no token, no lease, over NATS as over ZeroMQ");

        await using var client = await RegistryClient.ConnectAsync(new RegistryClientOptions
        {
            Endpoint = _nats.Url, HostName = "host-n4", NodeId = "a-node", Token = files.NodeA,
        });
        await using var set = await client.LeasePortAsync();
        Assert.That(set.Ports, Has.Count.EqualTo(1), "a node token of tenant a leases over NATS");
        var other = Assert.CatchAsync<OnexException>(async () => await RegistryClient.ConnectAsync(new RegistryClientOptions
        {
            Endpoint = _nats.Url, HostName = "host-n4", NodeId = "a-reader-node", Token = files.ReaderA, MaxAttempts = 1,
        }));
        Assert.That((other!.Code, other.Details["reason"]), Is.EqualTo((ErrorCodes.PermissionDenied, "role")), "a reader token cannot announce a node");
    }

    /// <summary>Every answer to a $SRV request within 2 s (each registry answers once).</summary>
    private static async Task<List<JsonElement>> CollectAsync(NatsConnection nats, string subject)
    {
        var answers = new List<JsonElement>();
        await foreach (var message in nats.RequestManyAsync<byte[], byte[]>(subject, [],
                           requestSerializer: NatsRawSerializer<byte[]>.Default, replySerializer: NatsRawSerializer<byte[]>.Default,
                           replyOpts: new NatsSubOpts { Timeout = TimeSpan.FromSeconds(2) }))
            answers.Add(JsonDocument.Parse(message.Data!).RootElement.Clone());
        Assert.That(answers, Is.Not.Empty, $"nobody answered {subject}");
        return answers;
    }
}
