using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Transports.Registry;
using Onex.Transports.Security;

namespace Onex.Tests.Security;

/// <summary>
/// What someone on the wire sees between a client and the registry: a recording TCP proxy sits between them on both
/// endpoints (requests and broadcasts). With CURVE, neither a known token-like string nor a known payload crosses in
/// the clear; without it, both do (which proves the capture sees the traffic, so the CURVE case can fail).
/// </summary>
public class CurveCaptureTests
{
    [TestCase(true)]
    [TestCase(false)]
    public async Task Captured_bytes_hide_tokens_and_payloads_only_with_curve(bool curve)
    {
        var keys = curve ? CurveKeyPair.Generate() : null;
        await using var registry = await TestRegistry.StartAsync(TestRegistry.Options() with { CurveKeys = keys });
        await using var ports = await OnexTest.LeasePortsAsync(2);
        await using var routerProxy = new RecordingTcpProxy(ports.Ports[0], registry.Host.RouterEndpoint);
        await using var pubProxy = new RecordingTcpProxy(ports.Ports[1], registry.Host.PubEndpoint);

        var token = $"tok_{Guid.NewGuid():N}"; // shaped like a bearer token
        var payload = $"payload-{Guid.NewGuid():N}";
        var options = TestRegistry.ClientOptionsFor(routerProxy.Endpoint, pubProxy.Endpoint) with
        {
            ServerKey = keys?.PublicKey,
            // Room for a starved machine: the first CURVE handshake in a process JIT-compiles the managed cipher.
            RequestTimeout = TimeSpan.FromSeconds(5),
        };
        await using (var client = await RegistryClient.ConnectAsync(options).AsTask().Within("the client to connect through the proxy"))
        {
            await using var watch = client.WatchEvents(ChangeTypes.TopicPrefix);
            await watch.UntilAsync(e => e.Kind == RegistryWatchEventKind.Resynced, "the watch's first snapshot");
            await using var leases = new LeaseSets();
            // A change made before the SUB's subscription reached the PUB comes back as a resync (by snapshot, over the
            // request socket); only a change that arrives as a change proves the broadcast path live. Bounded retries.
            for (var attempt = 1; ; attempt++)
            {
                var lease = await leases.AddAsync(client);
                var seen = await watch.UntilAsync(e => e.Change?.NewValue?.Lease?.LeaseId == lease.LeaseId ||
                    (e.Kind == RegistryWatchEventKind.Resynced && e.Snapshot!.Leases.Any(l => l.LeaseId == lease.LeaseId)), "the lease, as a change or a resync");
                if (seen[^1].Kind == RegistryWatchEventKind.Change) break;
                Assert.That(attempt, Is.LessThan(5), "the broadcast path through the proxy never carried a change");
            }
            await client.RegisterBusAsync("captured", BusKinds.Zmq, ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"],
                new Dictionary<string, string> { ["token"] = token, ["note"] = payload });
            // The broadcast of the registration crossed the PUB proxy: the watch saw it.
            await watch.UntilAsync(e => e.Change?.NewValue?.Bus?.Metadata is { } labels && labels.GetValueOrDefault("note") == payload,
                "the bus registration's broadcast through the proxy");
            var described = await client.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses] });
            Assert.That(described.Buses!.Single(b => b.Name == "captured").Metadata!["token"], Is.EqualTo(token), "the reply carried the token back");
        }

        Assert.Multiple(() =>
        {
            Assert.That(routerProxy.Accepted, Is.GreaterThan(0), "the requests went through the proxy");
            Assert.That(pubProxy.Accepted, Is.GreaterThan(0), "the broadcasts went through the proxy");
            Assert.That(routerProxy.Recorded().Length, Is.GreaterThan(1000), "request traffic was recorded");
            Assert.That(routerProxy.Saw(token), Is.EqualTo(!curve), $"the token on the request connection, CURVE {(curve ? "on" : "off")}");
            Assert.That(routerProxy.Saw(payload), Is.EqualTo(!curve), $"the payload on the request connection, CURVE {(curve ? "on" : "off")}");
            Assert.That(pubProxy.Saw(token), Is.EqualTo(!curve), $"the token on the broadcast connection, CURVE {(curve ? "on" : "off")}");
            Assert.That(pubProxy.Saw(payload), Is.EqualTo(!curve), $"the payload on the broadcast connection, CURVE {(curve ? "on" : "off")}");
            Assert.That(routerProxy.Saw("CURVE"), Is.EqualTo(curve), "the ZMTP greeting names the mechanism");
        });
    }
}

/// <summary>Lease sets a test holds, released together.</summary>
internal sealed class LeaseSets : IAsyncDisposable
{
    private readonly List<PortLeaseSet> _sets = [];

    public async Task<Onex.Protocol.PortLease> AddAsync(RegistryClient client)
    {
        var set = await client.LeasePortAsync();
        _sets.Add(set);
        return set.Leases[0];
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var set in _sets) await set.DisposeAsync();
    }
}
