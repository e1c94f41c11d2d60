using Onex.Bus;
using Onex.Errors;
using Onex.Events;
using Onex.Protocol;
using Onex.Testing;
using Onex.Tests.Client;
using Onex.Transports.Buses;
using Onex.Transports.Security;
using Onex.Transports.Zmq;

namespace Onex.Tests.Security;

/// <summary>A zmq bus whose host encrypts its forwarder with CURVE: what it advertises, who can join.</summary>
public class CurveBusTests
{
    private static async Task<OnexEvent> RoundTripAsync(IEventBus publisher, IEventBus subscriber)
    {
        await using var subscription = await subscriber.SubscribeAsync("curve.>");
        await publisher.PublishAsync("curve.check", "x"u8.ToArray());
        return await subscription.Reader.ReadAsync().AsTask().Within("the event across the encrypted bus");
    }

    private static EventBusOptions EncryptedHost(string name, Onex.Transports.Registry.RegistryClient client, CurveKeyPair keys) =>
        EventBusOptions.Default with
        {
            Backend = BusKinds.Zmq, Name = name, Registry = client,
            Zmq = ZmqEventBusOptions.Default with { Socket = ZmqSocketOptions.Default with { CurveServerKeys = keys } },
        };

    [Test]
    public async Task A_hosted_encrypted_bus_advertises_its_key_and_a_participant_joining_by_name_uses_it()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var hostClient = await registry.ConnectAsync();
        await using var joinClient = await registry.ConnectAsync();
        var keys = CurveKeyPair.Generate();
        await using var host = await EventBusFactory.CreateAsync(EncryptedHost("curve-bus", hostClient, keys));

        var record = (await joinClient.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Buses] })).Buses!.Single(b => b.Name == "curve-bus");
        Assert.That(record.Metadata?[ZmqCurve.ServerKeyMetadata], Is.EqualTo(keys.PublicKey), "the registration carries the forwarder's public key");

        await using var joined = await EventBusFactory.CreateAsync(EventBusOptions.Default with
        {
            Backend = BusKinds.Zmq, Name = "curve-bus", Role = EventBusRole.Join, Registry = joinClient,
        });
        Assert.That(((ZmqEventBus)joined).Options.Socket.CurveServerKey, Is.EqualTo(keys.PublicKey));
        Assert.That((await RoundTripAsync(joined, host)).Topic, Is.EqualTo("curve.check"));
        Assert.That((await RoundTripAsync(host, joined)).Topic, Is.EqualTo("curve.check"));
    }

    [Test]
    public async Task A_participant_without_the_key_cannot_join_and_is_told_why()
    {
        var keys = CurveKeyPair.Generate();
        await using var ports = await OnexTest.LeasePortsAsync(2);
        var endpoints = ZmqEventBusOptions.Default with
        {
            Name = "curve-plain-join",
            PublishEndpoint = $"tcp://127.0.0.1:{ports.Ports[0]}",
            SubscribeEndpoint = $"tcp://127.0.0.1:{ports.Ports[1]}",
            HandshakeTimeout = TimeSpan.FromSeconds(1),
        };
        await using var host = await ZmqEventBus.HostAsync(endpoints with { Socket = ZmqSocketOptions.Default with { CurveServerKeys = keys } });

        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await ZmqEventBus.JoinAsync(endpoints));
        Assert.That(ex!.Message, Does.Contain("curveServerKey"), ex.Message);

        await using var withKey = await ZmqEventBus.JoinAsync(endpoints with { Socket = ZmqSocketOptions.Default with { CurveServerKey = keys.PublicKey } });
        Assert.That((await RoundTripAsync(withKey, host)).Topic, Is.EqualTo("curve.check"), "the same bus with the key works");
    }

    [Test]
    public async Task Bus_traffic_through_a_recording_proxy_is_encrypted()
    {
        var keys = CurveKeyPair.Generate();
        await using var ports = await OnexTest.LeasePortsAsync(3);
        var host = await ZmqEventBus.HostAsync(ZmqEventBusOptions.Default with
        {
            Name = "curve-captured",
            PublishEndpoint = $"tcp://127.0.0.1:{ports.Ports[0]}",
            SubscribeEndpoint = $"tcp://127.0.0.1:{ports.Ports[1]}",
            Socket = ZmqSocketOptions.Default with { CurveServerKeys = keys },
        });
        await using var _ = host;
        // The joined participant publishes through the proxy into the forwarder's XSUB side.
        await using var proxy = new RecordingTcpProxy(ports.Ports[2], host.PublishEndpoint);
        await using var joined = await ZmqEventBus.JoinAsync(host.Options with
        {
            PublishEndpoint = proxy.Endpoint,
            Socket = ZmqSocketOptions.Default with { CurveServerKey = keys.PublicKey },
        });
        var secret = $"bus-payload-{Guid.NewGuid():N}";
        await using var subscription = await host.SubscribeAsync("curve.>");
        await joined.PublishAsync("curve.secret", System.Text.Encoding.UTF8.GetBytes(secret));
        var received = await subscription.Reader.ReadAsync().AsTask().Within("the event through the proxy");
        Assert.That(System.Text.Encoding.UTF8.GetString(received.Payload.Span), Is.EqualTo(secret));
        Assert.That(proxy.Recorded().Length, Is.GreaterThan(100), "the proxy carried the traffic");
        Assert.That(proxy.Saw(secret), Is.False, "the payload crossed the wire encrypted");
        Assert.That(proxy.Saw("curve.secret"), Is.False, "so did the topic");
    }
}
