using System.Threading.Channels;
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

        // The short handshake wait is for the refused join above; the join with the key gets the default one, as a
        // user's would (1 s was too short for a handshake on a machine at load 75).
        await using var withKey = await ZmqEventBus.JoinAsync(endpoints with
        {
            HandshakeTimeout = ZmqEventBusOptions.Default.HandshakeTimeout,
            Socket = ZmqSocketOptions.Default with { CurveServerKey = keys.PublicKey },
        });
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

    [Test]
    public async Task A_participant_that_joined_by_name_follows_its_host_restarted_with_new_keys()
    {
        await using var registry = await TestRegistry.StartAsync();
        var nodeId = $"curve-{Guid.NewGuid():N}"[..16];
        const string name = "curve-rekeyed";
        await using var firstClient = await registry.ConnectAsync(nodeId);
        var oldKeys = CurveKeyPair.Generate();
        var first = (RegisteredEventBus)await EventBusFactory.CreateAsync(EncryptedHost(name, firstClient, oldKeys));
        await using var joinClient = await registry.ConnectAsync();
        await using var joined = (ZmqEventBus)await EventBusFactory.CreateAsync(EventBusOptions.Default with
        {
            Backend = BusKinds.Zmq, Name = name, Role = EventBusRole.Join, Registry = joinClient,
        });
        Assert.That(joined.Options.Socket.CurveServerKey, Is.EqualTo(oldKeys.PublicKey));
        var notices = Channel.CreateUnbounded<BusNotice>();
        joined.Health.Notice += (_, notice) =>
        {
            if (notice.Kind == BusNoticeKind.ConnectionChanged) notices.Writer.TryWrite(notice);
        };
        await using var subscription = await joined.SubscribeAsync("rekeyed.>");

        // The host's process "dies" (its sockets close; its registration and leases stay) and comes back as the same
        // node with new keys: it takes its ports back and its registration now advertises the new key (bus.updated).
        await first.Inner.DisposeAsync();
        var newKeys = CurveKeyPair.Generate();
        await using var secondClient = await registry.ConnectAsync(nodeId);
        await using var second = (RegisteredEventBus)await EventBusFactory.CreateAsync(EncryptedHost(name, secondClient, newKeys));
        var rehosted = (ZmqEventBus)second.Inner;
        Assert.That((rehosted.PublishEndpoint, rehosted.SubscribeEndpoint), Is.EqualTo((joined.PublishEndpoint, joined.SubscribeEndpoint)),
            "the restarted host reclaimed its endpoints, so only the key changed");

        // The participant reconnects with the new key by itself (a socket with the old key cannot pass the new host's
        // handshake, see A_participant_without_the_key_cannot_join_and_is_told_why), so traffic in both directions is
        // the proof. A subscription may still be on its way (ZeroMQ's slow joiner): each direction publishes until an
        // event arrives, bounded.
        Assert.That((await PublishUntilReceivedAsync(second, "rekeyed.down", subscription))?.Topic, Is.EqualTo("rekeyed.down"),
            "the re-keyed host's event reaches the participant");
        await using var atHost = await second.SubscribeAsync("rekeyed.>");
        Assert.That((await PublishUntilReceivedAsync(joined, "rekeyed.up", atHost))?.Topic, Is.EqualTo("rekeyed.up"),
            "the participant's event reaches the re-keyed host");

        // Its connection-state notices told the application: the connection went down, then came back (the notice may
        // trail the first events: ZeroMQ's socket monitor reports on its own schedule, so it is awaited, bounded).
        var states = new List<BusConnectionState>();
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            while (!(states.Contains(BusConnectionState.Disconnected) && states.LastIndexOf(BusConnectionState.Connected) > states.IndexOf(BusConnectionState.Disconnected)))
                states.Add((await notices.Reader.ReadAsync(wait.Token)).State);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"expected Disconnected then Connected; saw: {string.Join(", ", states)}");
        }
    }

    private static async Task<OnexEvent?> PublishUntilReceivedAsync(IEventBus publisher, string topic, IEventSubscription subscription)
    {
        // Up to 30 s: the participant first learns of the new key from the registry's change stream.
        for (var attempt = 1; attempt <= 150; attempt++)
        {
            await publisher.PublishAsync(OnexEvent.Create(topic, BitConverter.GetBytes(attempt)));
            if (await Onex.Tests.Zmq.ZmqEventBusTests.ReadWithinAsync(subscription, TimeSpan.FromMilliseconds(200)) is { } received) return received;
        }
        return null;
    }
}
